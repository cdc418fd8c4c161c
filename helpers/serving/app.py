"""The capstone (chapter 09): the whole system behind one page a person can click.

    shop = app.Shop.build()              # ~10 s: ALS + fold-in, the planner, the guard
    page = shop.page(user)               # interests, top 10, one checked reason each
    page = shop.act(user, item, "purchase")   # the event folded in; the new page
    app.ShopApp(shop).show()             # the same as ipywidgets, in a notebook or Voilà

Two layers, so the logic is tested without a browser:

* :class:`Shop` — the engine. A recommender kept current by fold-in (chapter 08b: implicit ALS,
  the shopper's factors re-solved on every click), optionally diversified by MMR (chapter 08a),
  and a reason for every slot: chapter 05's content planner picks the claims, its phrasing bank
  says them, the closed-world guard checks them (the marked template when nothing passes), and
  a reason calls important to the shopper only what the page shows as their interests
  (:meth:`Shop.cares`, the guard's ``personal``); and
  :class:`~helpers.serving.rerank.DiversityGuard` adds "Something different from your usual" only when
  the shopper's history makes it true. Reviews a shopper posts are untrusted text: they are
  stored and shown as reviews, never read by the reason path, and a review offered *as* a
  reason goes through the guard like any sentence (:meth:`Shop.guard_check`).
* :class:`ShopApp` — ipywidgets over a ``Shop``: pick or create a shopper, ten rows with
  click / cart / buy buttons (interactions the model learns from; a view, as in chapter 01, is
  only logged and has no button), a diversity slider, a switch that shows the guard at work, and
  a review box. Every handler is a method, so tests click the buttons with ``.click()``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.core.checks import DataError, require_number
from helpers.data import preprocess as pp
from helpers.evaluation.offline import category_mixes
from helpers.models import cf, interest as I
from helpers.reasons import explainers, guard, phrasing, planner as PL, world as W_
from helpers.serving import online, rerank

__all__ = ["Page", "Shop", "ShopApp", "ACTIONS", "HISTORY_DRIVERS", "NEW_SHOPPER", "VALUE",
           "VALUE_SHOPPER", "render_row"]

ACTIONS = ("view", "click", "add_to_cart", "purchase")
"""What a shopper can do to an item on the page. A view is logged but, as everywhere in the
course, only clicks, carts and purchases are interactions the recommender learns from."""

VALUE = "value for money"
"""How :meth:`Shop.interests` names the aspect ``price`` (good value for money)."""

VALUE_SHOPPER = 0.35
"""A shopper whose purchases sit, on average, at most this far up their categories' price
ranking is shown *value for money* as an interest (the cheapest 35 % are stated good value)."""

HISTORY_DRIVERS = frozenset({"popularity", "colour", "pattern", "brand"})
"""Drivers a reason may name without calling them important to the shopper: what similar
shoppers chose, and the colours, patterns and brands of the shopper's own history."""

NEW_SHOPPER = "It is popular with shoppers."
"""The reason for a shopper with no history at all: the one thing the shop knows."""


@dataclass
class Page:
    """What the app shows one shopper: ``items`` has one row per slot (rank, item_id, title,
    category, price, reason, fallback, different); ``rejected`` the guard's rejections when
    asked for; ``ms`` the time the engine took."""
    user: int
    interests: list
    items: pd.DataFrame
    rejected: list = field(default_factory=list)
    ms: float = 0.0


class Shop:
    """The engine behind the app (see the module docstring). Build it with :meth:`build`, or
    pass the parts: ``model`` a fitted :class:`~helpers.models.cf.ImplicitALS`, ``world`` chapter 05's
    :func:`~helpers.reasons.world.reason_world`, ``planner`` its fitted planner, ``item_vectors``
    the items' text embeddings (for MMR)."""

    def __init__(self, model, world, planner, item_vectors: pd.DataFrame, *, k: int = 10,
                 n_candidates: int = 100):
        self.live = online.FoldIn(model)
        self.model = model
        self.world, self.planner = world, planner
        self.catalogue = world.catalogue.set_index("item_id")
        self.category = self.catalogue["category"]
        unit = item_vectors.to_numpy(np.float64)
        self.unit = pd.DataFrame(unit / np.linalg.norm(unit, axis=1, keepdims=True),
                                 index=item_vectors.index)
        self.k, self.n_candidates, self.lam = k, n_candidates, 1.0
        self.template = explainers.TemplateExplainer(world.facts, world.profile)
        # one truth about the shopper: the guard lets a reason call important to them only what
        # the page shows as their interests (:meth:`cares`), besides the item's stated facts
        self.guard = guard.ClosedWorldGuard(world.facts, world.lex, personal=self.cares,
                                            fallback=self.template)
        # the template (a shopper the planner does not know) names only their profile's
        # aspects, by construction, or says what is true of the item for anyone ("good value
        # for money in its category"): checked against the item's facts alone
        self.item_guard = guard.ClosedWorldGuard(world.facts, world.lex, fallback=self.template)
        seen = model.seen.tocoo()
        history = pd.DataFrame({"user_id": model.user_map.decode(seen.row),
                                "item_id": model.item_map.decode(seen.col)})
        # chapter 08a's rule for "different from your usual", on each shopper's category mix;
        # a shopper's row is recomputed from the model's own history after each folded-in click
        self.diversity = rerank.DiversityGuard(self.guard, category_mixes(history, self.category),
                                               self.category)
        self.profile = explainers.profile_map(world.profile)
        self.clock = int(world.events["timestamp"].max())
        self.log: list[dict] = []                  # every action, views included
        self.reviews: list[dict] = []              # posted reviews: untrusted, never in a reason
        self._next_user = int(max(model.user_map.ids.max(), world.events["user_id"].max())) + 1

    @classmethod
    def build(cls, seed: int = 0, progress: bool = False) -> "Shop":
        """The course's pipeline on all of ShopWorld's clicks, carts and purchases: implicit
        ALS (64 factors), chapter 05's planner and facts, chapter 04's MiniLM item vectors."""

        world = W_.reason_world()
        inter = world.events[world.events["event_type"] != "view"]
        model = cf.ImplicitALS(64, n_iter=15, seed=seed).fit(
            inter, pp.build_id_map(inter["user_id"]), pp.build_id_map(world.catalogue["item_id"]))
        texts = I.item_texts(world.catalogue)
        vectors = pd.DataFrame(I.encode_items(texts).numpy(), index=texts.index)   # cached, ch. 04
        return cls(model, world, PL.fit_planner(world, progress=progress), vectors)

    # ------------------------------------------------------------------ shoppers
    def users(self) -> np.ndarray:
        """The shoppers the model knows, in ID order."""
        return np.sort(self.model.user_map.ids)

    def new_user(self) -> int:
        """A brand-new shopper's ID: no history until their first click."""
        u = self._next_user
        self._next_user += 1
        return u

    def _check_user(self, user) -> int:
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)):
            raise DataError(f"a shopper is an integer ID, got {type(user).__name__} {user!r}.")
        return int(user)

    def _check_item(self, item) -> int:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)) \
                or int(item) not in self.category.index:
            raise DataError(f"unknown item {item!r}: not in the catalogue.")
        return int(item)

    def interests(self, user: int) -> list[str]:
        """What the shop believes this shopper cares about: the aspects of their profile
        (chapter 04) and their usual categories (at least ``usual``, 10 %, of their history)."""
        mix = self.diversity.mix
        shares = (mix.loc[user].sort_values(ascending=False, kind="stable")
                  if user in mix.index else pd.Series(dtype=float))
        usual = [f"{cat.replace('_', ' ')} ({v:.0%})" for cat, v in shares.items()
                 if v >= self.diversity.usual]
        return self._aspects(user) + usual

    def _aspects(self, user: int) -> list[str]:
        """The aspects the shop believes this shopper cares about: their profile's (chapter 04),
        and value for money when their purchases lean to the cheap end of their categories (a
        mean price percentile of at most :data:`VALUE_SHOPPER`, the band the shop calls good
        value)."""
        aspects = list(self.profile.get(user, []))
        if self.planner.history.price.get(user, 1.0) <= VALUE_SHOPPER:
            aspects.append(VALUE)
        return aspects

    def cares(self, user: int, item: int | None = None) -> set[str]:
        """The drivers a reason may name for ``user`` (the guard's ``personal``): the aspects
        :meth:`interests` shows (an aspect, or value for money, is "important to you" only if it
        is listed there), popularity, and the colour, pattern or brand of their own history."""
        return {"price" if a == VALUE else a for a in self._aspects(user)} | HISTORY_DRIVERS

    # ------------------------------------------------------------------ the page
    def set_diversity(self, lam: float) -> None:
        """MMR's knob (chapter 08a): 1 = the model's own order, lower = more varied lists."""
        self.lam = require_number("lam", lam, low=0.0, high=1.0)

    def _top(self, user: int) -> np.ndarray:
        m = self.model
        if user not in m.user_map._index:            # brand-new: the most popular items
            return m.item_map.ids[np.argsort(-m.popularity, kind="stable")[:self.k]]
        cand = m.recommend([user], k=self.n_candidates)
        items = cand["item_id"].to_numpy()
        if self.lam >= 1.0:
            return items[:self.k]
        x = self.unit.loc[items].to_numpy()
        return items[rerank.mmr(cand["score"].to_numpy(), x @ x.T, self.k, self.lam)]

    def _is_different(self, user: int, item: int) -> bool:
        """DiversityGuard's rule on the live history (a shopper without one has no usual)."""
        return user in self.diversity.mix.index and self.diversity.is_different(user, item)

    def page(self, user, show_guard: bool = False) -> Page:
        """The shopper's page: interests, top ``k`` and a checked reason per slot."""
        t0 = time.perf_counter()
        user = self._check_user(user)
        items = self._top(user)
        # the planner knows the shoppers of its training data; anyone else (a new shopper) gets
        # the template, which claims nothing personal it has no evidence for
        known = user in self.planner.history.total
        # the planner's choice among the claims the page can stand behind for this shopper:
        # those whose driver :meth:`cares` lists
        plans = self.planner.plans([user] * len(items), items, progress=False,
                                   allowed=self.cares) if known else [None] * len(items)
        rows, rejected = [], []
        for rank, (item, plan) in enumerate(zip(items, plans), start=1):
            item = int(item)
            if plan is not None:
                said = phrasing.say(plan, self.world.facts[item])
            elif not self._met(user):
                said = NEW_SHOPPER
            else:
                said = self.template.explain_one(user, item)
            g = self.guard if plan is not None else self.item_guard
            reason, fallback = g.choose([said], user, item)
            if show_guard and fallback:
                rejected.append({"item_id": item, "candidate": said,
                                 "problems": g.problems(said, user, item)})
            different = self._is_different(user, item)
            if different and not fallback:          # the fallback keeps its own marker first
                reason = rerank.DIFFERENT + reason
            rows.append({"rank": rank, "item_id": item, "title": self.catalogue.at[item, "title"],
                         "category": self.category.at[item],
                         "price": float(self.catalogue.at[item, "price"]), "reason": reason,
                         "fallback": fallback, "different": different})
        if show_guard:
            rejected += self.guard_check(user, items)
        return Page(user, self.interests(user), pd.DataFrame(rows), rejected,
                    1e3 * (time.perf_counter() - t0))

    def act(self, user, item, action: str, show_guard: bool = False) -> Page:
        """The shopper does ``action`` ("view", "click", "add_to_cart", "purchase") on
        ``item``: logged, folded into the model unless it is a view, and the new page."""
        user, item = self._check_user(user), self._check_item(item)
        if action not in ACTIONS:
            raise DataError(f"action must be one of {ACTIONS}, got {action!r}.")
        self.clock += 1
        self.log.append({"user_id": user, "item_id": item, "event_type": action,
                         "timestamp": self.clock})
        if action != "view":
            self.live.update(pd.DataFrame({"user_id": [user], "item_id": [item],
                                           "timestamp": [self.clock]}))
            met = self.category.reindex(list(self._met(user)))    # each item once
            self.diversity.mix.loc[user] = met.value_counts(normalize=True).reindex(
                self.diversity.mix.columns, fill_value=0.0)
        return self.page(user, show_guard)

    def _met(self, user: int) -> set:
        m = self.model
        if user not in m.user_map._index:
            return set()
        r = m.user_map.encode([user])[0]
        return set(m.item_map.decode(m.seen.indices[m.seen.indptr[r]:m.seen.indptr[r + 1]]))

    # ------------------------------------------------------------------ untrusted text
    def post_review(self, user, item, text: str) -> None:
        """Store a shopper's review (untrusted: shown as a review, never read by a reason)."""
        user, item = self._check_user(user), self._check_item(item)
        if not isinstance(text, str) or not text.strip():
            raise DataError("a review must be non-empty text.")
        self.reviews.append({"user_id": user, "item_id": item, "text": text[:2000]})

    def guard_check(self, user: int, items) -> list[dict]:
        """What the guard says about every posted review of ``items`` offered as a reason for
        ``user``: the sentences it rejects and why (the switch "show the guard at work")."""
        items = {int(i) for i in items}
        out = []
        for r in self.reviews:
            if r["item_id"] in items:
                out.append({"item_id": r["item_id"], "candidate": r["text"],
                            "problems": self.guard.problems(r["text"], user, r["item_id"])})
        return out


def render_row(rank: int, title: str, category: str, price: float, reason: str) -> str:
    """One row of the page as HTML. Titles, brands and reasons are text from outside the code
    (the catalogue, shoppers): escaped, so a browser shows them and never runs them."""
    import html

    esc = html.escape
    return (f"<b>{rank}. {esc(title)}</b> · {esc(category.replace('_', ' '))} · "
            f"${price:.2f}<br>{esc(reason)}")


class ShopApp:
    """ipywidgets over a :class:`Shop`: shows in a notebook (``.show()``) or as a page with
    Voilà. Every control's handler is a method; tests press buttons with ``.click()``."""

    def __init__(self, shop: Shop, users=None):
        import ipywidgets as W

        self.shop = shop
        options = [int(u) for u in (users if users is not None else shop.users()[:50])]
        self.user_box = W.Dropdown(options=options, value=options[0], description="Shopper")
        self.new_button = W.Button(description="New shopper", icon="user-plus")
        self.diversity = W.FloatSlider(value=1.0, min=0.3, max=1.0, step=0.1,
                                       description="Relevance λ", continuous_update=False)
        self.show_guard = W.Checkbox(value=False, description="Show the guard at work")
        self.interests = W.HTML()
        self.status = W.HTML()
        self.rows = []
        for _ in range(shop.k):
            text = W.HTML(layout=W.Layout(width="70%"))
            buttons = {a: W.Button(description=label, layout=W.Layout(width="70px"))
                       for a, label in (("click", "click"), ("add_to_cart", "cart"),
                                        ("purchase", "buy"))}
            row = {"text": text, **buttons, "item": None}
            for action, b in buttons.items():
                b.on_click(lambda _b, row=row, action=action: self.on_action(row, action))
            self.rows.append(row)
        self.review_text = W.Text(placeholder="Write a review of the first item",
                                  layout=W.Layout(width="60%"))
        self.review_button = W.Button(description="Post review")
        self.guard_out = W.HTML()
        self.user_box.observe(lambda ch: self.refresh(), names="value")
        self.new_button.on_click(lambda _b: self.on_new_user())
        self.diversity.observe(lambda ch: self.on_diversity(), names="value")
        self.show_guard.observe(lambda ch: self.refresh(), names="value")
        self.review_button.on_click(lambda _b: self.on_review())
        self.page: Page | None = None
        self.widget = W.VBox(
            [W.HBox([self.user_box, self.new_button]), self.interests,
             W.HBox([self.diversity, self.show_guard]), self.status]
            + [W.HBox([r["text"], r["click"], r["add_to_cart"], r["purchase"]])
               for r in self.rows]
            + [W.HBox([self.review_text, self.review_button]), self.guard_out])
        self.refresh()

    def show(self):
        """Display the page in the notebook."""
        from IPython.display import display

        display(self.widget)

    def _render(self, page: Page) -> None:
        import html

        self.page = page
        self.interests.value = ("<b>What we think you like:</b> "
                                + (html.escape(", ".join(page.interests)) or
                                   "nothing yet: you are new here"))
        for row, (_, it) in zip(self.rows, page.items.iterrows()):
            row["item"] = int(it["item_id"])
            mark = " <i>(template)</i>" if it["fallback"] else ""
            row["text"].value = render_row(it["rank"], it["title"], it["category"], it["price"],
                                           it["reason"]) + mark
        self.status.value = f"<small>updated in {page.ms:.0f} ms</small>"
        if self.show_guard.value:
            lines = [f"<li>item {r['item_id']}: “{html.escape(r['candidate'])}” — rejected: "
                     f"{html.escape('; '.join(r['problems']) or 'passes')}</li>"
                     for r in page.rejected]
            self.guard_out.value = ("<b>The guard at work</b> (sentences offered as reasons and "
                                    "what it found):<ul>" + "".join(lines) + "</ul>"
                                    if lines else "<b>The guard at work:</b> every reason on "
                                    "this page passed; post a review to offer it one.")
        else:
            self.guard_out.value = ""

    def refresh(self) -> None:
        """Render the chosen shopper's page again."""
        self._render(self.shop.page(self.user_box.value, self.show_guard.value))

    def on_action(self, row: dict, action: str) -> None:
        """A click on a row's button (an action :meth:`Shop.act` takes): record it and render
        the next page."""
        self._render(self.shop.act(self.user_box.value, row["item"], action,
                                   self.show_guard.value))

    def on_new_user(self) -> None:
        """Add a shopper with no history and show their page."""
        u = self.shop.new_user()
        self.user_box.options = [u] + list(self.user_box.options)
        self.user_box.value = u                    # triggers refresh

    def on_diversity(self) -> None:
        """Apply the diversity slider's value and render again."""
        self.shop.set_diversity(self.diversity.value)
        self.refresh()

    def on_review(self) -> None:
        """Post the text box's review for the first item on the page (through the guard) and render
        again.
        """
        if self.page is None or not self.review_text.value.strip():
            return
        self.shop.post_review(self.user_box.value, int(self.page.items["item_id"].iloc[0]),
                              self.review_text.value)
        self.review_text.value = ""
        self.refresh()
