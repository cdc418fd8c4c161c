"""Plan, then say it: choose *which* claims this shopper should hear about this item.

A reason has two jobs: be true, and be about what drove *this* purchase. A generator that writes
freely has to do both at once. A **content planner** splits them: it picks, from the claims the
shop can back up (the item's stated facts), the ones most likely to be this user's drivers; a
**realiser** (a template, or a language model conditioned on the plan, :mod:`helpers.reasons.lm`)
only has to put them into words.

The planner is a logistic regression over (user, item, candidate claim) rows, learned from the
training purchases, whose labels are ShopWorld's true drivers. Its features are what the shop
knows from the training period: the user's inferred aspect profile (chapter 04), the colours,
patterns, brands and price levels of what they browsed and bought, and how popular the item is.

Driver names and claims line up one to one: an aspect driver ``comfort`` is the claim
``aspect:comfort``; ``price`` is ``aspect:price`` ("good value"); ``colour``, ``pattern`` and
``brand`` are the item's colour/pattern/brand; ``popularity`` is "popular with shoppers like you".
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from helpers.core.checks import DataError, ParameterError, require_columns
from helpers.data import loaders
from helpers.models import interest as I
from helpers.reasons.claims import (
    Claim,
    category_aspects,
    driver_of,
    drivers_of,
    extract_claims,
    item_facts,
)
from helpers.reasons.explainers import require_id, require_id_pairs

POPULARITY = Claim("popularity", "popularity")
_KINDS = ("aspect", "price", "colour", "pattern", "brand", "popularity")
_EVENT_WEIGHT = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 4.0}


def _key(claim: Claim) -> str:
    return claim.key if claim.kind != "popularity" else "popularity"


def candidates(facts: dict) -> list[Claim]:
    """Every claim the shop can back up about one item (its :func:`item_facts` entry): each
    aspect it is stated to be good at ('high'; price 'high' = good value), its stated colour and
    pattern, its brand, and popularity (always true, never false)."""
    out = [Claim("aspect", a, "high") for a, b in sorted(facts.get("aspects", {}).items())
           if b == "high"]
    out += [Claim(k, facts[k]) for k in ("colour", "pattern", "brand") if facts.get(k)]
    return out + [POPULARITY]


class _History:
    """What the shop saw each user do before the cut: weighted counts of the colours,
    patterns and brands of the items they touched, and the price level of what they bought."""

    def __init__(self, events: pd.DataFrame, facts: dict):
        require_columns(events, ["user_id", "item_id", "event_type"], "the training events")
        self.colour = defaultdict(Counter)
        self.pattern = defaultdict(Counter)
        self.brand = defaultdict(Counter)
        self.total = Counter()
        price = defaultdict(list)
        weight = events["event_type"].map(_EVENT_WEIGHT).fillna(1.0).to_numpy()
        for u, i, e, w in zip(events["user_id"].to_numpy(), events["item_id"].to_numpy(),
                              events["event_type"].to_numpy(), weight):
            f = facts.get(int(i))
            if f is None:
                continue
            u = int(u)
            self.total[u] += w
            for k, counter in (("colour", self.colour), ("pattern", self.pattern),
                               ("brand", self.brand)):
                if f.get(k):
                    counter[u][f[k]] += w
            if e == "purchase" and "price_pct" in f:
                price[u].append(f["price_pct"])
        self.price = {u: float(np.mean(v)) for u, v in price.items()}
        self.seen = {int(i) for i in events["item_id"].unique()}
        bought = events.loc[events["event_type"] == "purchase", "item_id"]
        self.item_buys = Counter(int(i) for i in bought)

    def share(self, kind: str, user: int, value: str) -> float:
        c = getattr(self, kind)[user]
        n = sum(c.values())
        return c[value] / n if n else 0.0


class ContentPlanner:
    """Learned choice of the claims to state. ``fit(pairs)`` on training purchases (columns
    user_id, item_id, drivers); ``plan(user, item)`` returns one or two claims, best first.

    ``second_threshold``: a second aspect is added when the model gives it at least this
    probability (two-aspect reasons exist when two aspects drove the purchase)."""

    def __init__(self, facts: dict, profile: pd.DataFrame, train_events: pd.DataFrame,
                 past_reasons: pd.DataFrame | None = None, lex=None, *,
                 second_threshold: float = 0.5, C: float = 1.0, seed: int = 0):
        if not isinstance(facts, dict) or not facts:
            raise DataError("facts must be a non-empty item_facts() dict")
        if not 0 < second_threshold <= 1:
            raise ParameterError(f"second_threshold must be in (0, 1], got {second_threshold!r}")
        cols = [c for c in profile.columns if c.startswith("aspect_")]
        require_columns(profile, ["user_id"] + cols, "the profile")
        self.facts, self.second_threshold, self.C, self.seed = facts, second_threshold, C, seed
        self.rank = {int(u): {a: k for k, a in enumerate(row) if isinstance(a, str)}
                     for u, row in zip(profile["user_id"], profile[cols].to_numpy())}
        # with a full profile (every aspect ranked), each user's score of every aspect they have
        # evidence on: a finite score means the user touched a category that has the aspect
        scols = [c.replace("aspect_", "score_") for c in cols]
        self.score = ({int(u): {a: float(v) for a, v in zip(row, sc)
                                if isinstance(a, str) and np.isfinite(v)}
                       for u, row, sc in zip(profile["user_id"], profile[cols].to_numpy(),
                                             profile[scols].to_numpy(dtype=float))}
                      if all(c in profile.columns for c in scols) else {})
        self.history = _History(train_events, facts)
        # what the user's earlier reasons said: the claims of their training reference reasons
        self.past: dict[int, Counter] = defaultdict(Counter)
        self._own: dict[tuple[int, int], Counter] = {}
        if past_reasons is not None:

            if lex is None:
                raise DataError("past_reasons need lex (claims.lexicon(catalogue)) to read them")
            require_columns(past_reasons, ["user_id", "item_id", "reason"], "past reasons")
            for u, i, r in zip(past_reasons["user_id"], past_reasons["item_id"],
                               past_reasons["reason"]):
                keys = Counter({_key(c) for c in extract_claims(r, lex)})
                self.past[int(u)] += keys
                self._own[(int(u), int(i))] = self._own.get((int(u), int(i)), Counter()) + keys
        self._exclude: Counter | None = None
        self.prior: dict[tuple[str, str], float] = {}
        self.popularity_offset = 0.0
        self.new_item_offset: float | None = None    # None: the same as popularity_offset
        self.max_buys = max(self.history.item_buys.values(), default=1)

    # ------------------------------------------------------------------ features
    FEATURES = (["bias_" + k for k in _KINDS] +
                ["aspect_rank1", "aspect_rank2", "aspect_rank3", "aspect_in_profile",
                 "aspect_cat_rank1", "aspect_cat_rank2", "aspect_cat_unknown",
                 "aspect_level", "aspect_score", "price_user_cheap", "price_item_cheap",
                 "price_interaction",
                 "colour_share", "colour_top", "pattern_share", "pattern_top",
                 "brand_share", "brand_top",
                 "pop_item", "pop_user_unknown", "pop_profile_match", "pop_max_share",
                 "pop_item_cheap", "past_said", "past_said_pop", "past_n", "category_prior"])

    def _features(self, user: int, item: int, cand: Claim, context: dict | None = None
                  ) -> np.ndarray:
        x = dict.fromkeys(self.FEATURES, 0.0)
        kind = "price" if cand.kind == "aspect" and cand.name == "price" else cand.kind
        x["bias_" + kind] = 1.0
        h, f = self.history, self.facts[item]
        if kind == "aspect":
            ranks = self.rank.get(user, {})
            r = ranks.get(cand.name)
            if r is not None and r < 3:
                x["aspect_in_profile"] = 1.0
                x[f"aspect_rank{r + 1}"] = 1.0
            # the user's order of this category's aspects (a full profile ranks them all)
            sc = self.score.get(user, {})
            own = [a for a in category_aspects(f.get("category")) if a in sc]
            if cand.name in own:
                k = sorted(own, key=lambda a: ranks.get(a, 99)).index(cand.name)
                if k < 2:
                    x[f"aspect_cat_rank{k + 1}"] = 1.0
            else:
                x["aspect_cat_unknown"] = 1.0
            best = max((sc[a] for a in own), default=0.0)
            if cand.name in sc and best > 0:
                x["aspect_score"] = max(min(sc[cand.name] / best, 1.0), -1.0)
            x["aspect_level"] = (f.get("review_level", {}).get(cand.name, 4.5) - 3) / 2
        elif kind == "price":
            cheap_user = 0.5 - h.price.get(user, 0.5)
            cheap_item = -f.get("price_log_ratio", 0.0)
            x["price_user_cheap"], x["price_item_cheap"] = cheap_user, cheap_item
            x["price_interaction"] = cheap_user * cheap_item
        elif kind in ("colour", "pattern", "brand"):
            s = h.share(kind, user, cand.name)
            counts = getattr(h, kind)[user]
            x[f"{kind}_share"] = s
            x[f"{kind}_top"] = float(bool(counts) and counts.most_common(1)[0][0] == cand.name)
        else:
            c = context or {}
            x["pop_item"] = math.log1p(h.item_buys.get(item, 0)) / math.log1p(self.max_buys)
            x["pop_user_unknown"] = float(user not in self.rank)
            x["pop_profile_match"] = c.get("profile_match", 0.0)
            x["pop_max_share"] = c.get("max_share", 0.0)
            x["pop_item_cheap"] = -f.get("price_log_ratio", 0.0)
        # how often this driver moved training purchases in the item's category: what is known
        # about a shopper who never touched the category, or an item nobody has bought yet
        x["category_prior"] = self.prior.get((f.get("category"), driver_of(cand)), 0.0)
        past = self.past.get(user, Counter())
        if self._exclude is not None:           # fitting: the pair's own reason is not "past"
            past = past - self._exclude
        n = sum(past.values())
        if n:
            said = past[_key(cand)] / n
            x["past_said_pop" if kind == "popularity" else "past_said"] = said
        x["past_n"] = math.log1p(n) * (kind == "popularity")
        return np.fromiter(x.values(), dtype=np.float64, count=len(x))

    def _pair_rows(self, user: int, item: int) -> tuple[list[np.ndarray], list[Claim]]:
        cands = candidates(self.facts[item])
        ranks = self.rank.get(user, {})
        context = {"profile_match": float(any(c.kind == "aspect" and ranks.get(c.name, 9) < 3
                                              for c in cands)),
                   "max_share": max([self.history.share(c.kind, user, c.name) for c in cands
                                     if c.kind in ("colour", "pattern", "brand")], default=0.0)}
        return [self._features(user, item, c, context) for c in cands], cands

    def _rows(self, users, items, leave_out: bool = False):
        rows, owner, cands = [], [], []
        for n, (u, i) in enumerate(zip(users, items)):
            if int(i) not in self.facts:
                raise DataError(f"item {i} has no stated facts (not in the catalogue?)")
            self._exclude = self._own.get((int(u), int(i))) if leave_out else None
            r, c = self._pair_rows(int(u), int(i))
            rows += r
            cands += c
            owner += [n] * len(c)
        self._exclude = None
        return np.vstack(rows), np.asarray(owner), cands

    # ------------------------------------------------------------------ learn, plan
    def fit(self, pairs: pd.DataFrame, progress: bool = True) -> "ContentPlanner":
        """Learn the weights (see :meth:`_fit_weights`); :func:`fit_planner` also sets
        :attr:`popularity_offset` on a validation period."""
        require_columns(pairs, ["user_id", "item_id", "drivers"], "the training pairs")
        return self._fit_weights(pairs, progress)

    def _fit_weights(self, pairs: pd.DataFrame, progress: bool = True) -> "ContentPlanner":
        """Learn the weights of a *conditional logit*: per pair, a softmax over its candidate
        claims, trained to put its mass on the oracle plan's first claim (the first true driver
        the shop can back up; popularity when there is none). A softmax, not one yes/no per
        candidate, because the question is *which* claim, among this item's, comes first."""
        import torch

        require_columns(pairs, ["user_id", "item_id", "drivers"], "the training pairs")
        if len(pairs) == 0:
            raise DataError("no training pairs to learn the planner from")
        unknown = sorted({int(i) for i in pairs["item_id"]} - set(self.facts))
        if unknown:
            raise DataError(f"{len(unknown)} training items have no stated facts (e.g. "
                            f"{unknown[0]}): not in the catalogue the planner was built on")
        # per category and driver: of the training purchases whose item could have been
        # said to have it (a candidate claim), the share it truly drove
        offered, hits = Counter(), Counter()
        for i, ds in zip(pairs["item_id"], pairs["drivers"]):
            f, true = self.facts[int(i)], drivers_of(ds)
            for d in {driver_of(c) for c in candidates(f)}:
                offered[(f.get("category"), d)] += 1
                hits[(f.get("category"), d)] += d in true
        self.prior = {k: hits[k] / n for k, n in offered.items()}
        X, owner, cands = self._rows(pairs["user_id"].to_numpy(), pairs["item_id"].to_numpy(),
                                     leave_out=True)
        first = [oracle_plan(self.facts[int(i)], d)[0]
                 for i, d in tqdm(zip(pairs["item_id"], pairs["drivers"]), total=len(pairs),
                                  desc="planner", leave=False, disable=not progress)]
        y = np.array([c == first[o] for c, o in zip(cands, owner)], dtype=np.float64)
        torch.manual_seed(self.seed)
        Xt, yt = torch.tensor(X), torch.tensor(y)
        own = torch.tensor(owner)
        w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
        n_pairs = len(pairs)

        def loss_fn():
            opt.zero_grad()
            s = Xt @ w
            # per-pair log-sum-exp of candidate scores
            m = torch.full((n_pairs,), -torch.inf, dtype=s.dtype).scatter_reduce(
                0, own, s, reduce="amax")
            lse = m + torch.zeros(n_pairs, dtype=s.dtype).index_add(
                0, own, torch.exp(s - m[own])).log()
            loss = -(yt * (s - lse[own])).sum() / n_pairs + (w ** 2).sum() / (2 * self.C * n_pairs)
            loss.backward()
            return loss

        opt.step(loss_fn)
        self.weights = w.detach().numpy().copy()
        self.model = self
        return self

    def _offset(self, item: int) -> float:
        """The popularity offset for this item: new items (no training events) have their own."""
        if self.new_item_offset is not None and int(item) not in self.history.seen:
            return self.new_item_offset
        return self.popularity_offset

    def _softmax_by_owner(self, X, owner, items):
        off = np.array([self._offset(items[o]) for o in owner])
        s = X @ self.weights + off * X[:, self.FEATURES.index("bias_popularity")]
        out = np.empty_like(s)
        for o in np.unique(owner):
            k = owner == o
            e = np.exp(s[k] - s[k].max())
            out[k] = e / e.sum()
        return out

    def scores(self, user: int, item: int) -> list[tuple[Claim, float]]:
        """Every candidate claim of the pair with its probability of coming first, best first
        (ties keep the candidates' fixed order)."""
        if not hasattr(self, "weights"):
            raise RuntimeError("call fit() before planning")
        user, item = require_id(user, "user"), require_id(item, "item")
        if item not in self.facts:
            return [(POPULARITY, float("nan"))]
        rows, cands = self._pair_rows(user, item)
        X = np.vstack(rows)
        p = self._softmax_by_owner(X, np.zeros(len(X), dtype=int), [item])
        order = np.argsort(-p, kind="stable")
        return [(cands[k], float(p[k])) for k in order]

    def _choose(self, ranked: list[tuple[Claim, float]]) -> list[Claim]:
        best = [ranked[0][0]]
        if best[0].kind == "aspect" and best[0].name != "price" and len(ranked) > 1:
            c, p = ranked[1]
            if c.kind == "aspect" and c.name != "price" and p >= self.second_threshold * ranked[0][1]:
                best.append(c)
        return best

    def plan(self, user: int, item: int) -> list[Claim]:
        """One or two claims: the most likely first driver, and a second aspect when the model
        finds it at least ``second_threshold`` times as likely as the first."""
        return self._choose(self.scores(user, item))

    def plans(self, users, items, progress: bool = True,
              allowed: Callable[[int], set[str]] | None = None) -> list[list[Claim]]:
        """:meth:`plan` for many pairs at once. ``allowed(user)``, if given, is the set of
        drivers the plan may name for that shopper (chapter 09's page: only the interests it
        shows): the item's other claims are left out of the ranking before the choice, and a
        pair with none left gets popularity."""

        if not hasattr(self, "weights"):
            raise RuntimeError("call fit() before planning")
        users, items = require_id_pairs(users, items)
        unknown = sorted({int(i) for i in items} - set(self.facts))
        if unknown:
            raise DataError(f"{len(unknown)} items have no stated facts (e.g. {unknown[0]}): "
                            "not in the catalogue the planner was built on")
        X, owner, cands = self._rows(users, items)
        p = self._softmax_by_owner(X, owner, [int(i) for i in items])
        ranked = defaultdict(list)
        for k in range(len(cands)):
            ranked[owner[k]].append((cands[k], p[k], k))
        out = []
        for n in tqdm(range(len(users)), desc="plan", leave=False, disable=not progress):
            r = sorted(ranked[n], key=lambda t: (-t[1], t[2]))
            if allowed is not None:
                keep = allowed(int(users[n]))
                r = [t for t in r if driver_of(t[0]) in keep]
            out.append(self._choose([(c, pc) for c, pc, _ in r]) if r else [POPULARITY])
        return out


def oracle_plan(facts: dict, drivers: str) -> list[Claim]:
    """The best plan a generator that only says what the shop states could have: the pair's
    true drivers that are among the item's candidate claims, in the drivers' order; popularity
    when none is (e.g. the driver is a colour the shop never wrote down). An upper bound for
    every planner, not a method: it reads the hidden truth."""
    cands = {driver_of(c): c for c in candidates(facts)}
    chosen = [cands[d] for d in drivers.split(";") if d in cands and d != "popularity"]
    return chosen or [POPULARITY]


def plan_scores(plans: list[list[Claim]], drivers) -> dict[str, float]:
    """Precision and recall of plans against the true drivers (ShopWorld's drivers column),
    micro-averaged over claims, and the share of pairs whose plan names at least one driver."""
    drivers = [drivers_of(d) for d in drivers]
    if len(plans) != len(drivers):
        raise DataError(f"{len(plans)} plans for {len(drivers)} driver entries")
    hit = sum(len({driver_of(c) for c in p} & d) for p, d in zip(plans, drivers))
    n_plan = sum(len({driver_of(c) for c in p}) for p in plans)
    n_true = sum(len(d) for d in drivers)
    any_hit = np.mean([bool({driver_of(c) for c in p} & d) for p, d in zip(plans, drivers)])
    return {"precision": hit / max(n_plan, 1), "recall": hit / max(n_true, 1),
            "names a driver": float(any_hit)}


def fit_planner(world, validation_share: float = 0.2, progress: bool = True) -> ContentPlanner:
    """The chapter's planner: fitted on every training purchase of ``world``
    (:func:`~helpers.reasons.world.reason_world`), with its popularity offset chosen the honest way.

    In training, the profile and the user's other reasons were computed from data that includes
    the very purchase being explained, so features look more telling than they will be on
    future purchases, and the model leans on them too much or too little. So the last
    ``validation_share`` of the training period (by time) is held out, a planner built only from
    the data before it (profile, browsing history, reasons) plans it, and the offset on the
    popularity claim that names a true driver most often there is kept for the final planner:
    one offset for items the early period had seen, one for items new to it (shared with the
    seen one when fewer than 30 validation pairs are new). The offset is added to the popularity
    claim's score before the softmax; a negative one makes popularity less readily chosen.
    On the same held-out pairs, ``second_threshold`` (how nearly as likely as the first a
    second aspect must be to join the plan) is chosen by the F1 of the plans' precision and
    recall of the true drivers: saying more raises recall and costs precision.
    ``validation_pairs`` keeps how many held-out pairs each offset was chosen on."""

    if not 0 < validation_share < 1:
        raise ParameterError(f"validation_share must be in (0, 1), got {validation_share!r}")
    train = world.train.sort_values("timestamp", kind="stable")
    cut_time = float(train["timestamp"].quantile(1 - validation_share))
    early, late = train[train["timestamp"] < cut_time], train[train["timestamp"] >= cut_time]
    events = world.events[world.events["timestamp"] < cut_time]
    reviews = world.train_reviews[world.train_reviews["timestamp"] < cut_time]
    early_facts = item_facts(world.catalogue, reviews)   # the facts as they were at the cut
    cats = loaders.vocabulary()["categories"]
    every = len({a for v in cats.values() for a in v})      # rank every aspect, not a top 3
    profile = I.aspect_profile(events, reviews, world.catalogue, cats, top=every)
    sub = ContentPlanner(early_facts, profile, events, early, world.lex).fit(early, progress)
    # two offsets: items the early period had seen, and items new to it (a cold item at test
    # time is new in the same way), each chosen on its own validation pairs
    new = ~late["item_id"].isin(list(sub.history.seen)).to_numpy()
    offsets = {}
    for name, part in (("seen", late[~new]), ("new", late[new])):
        best = (-1.0, 0.0)
        for offset in np.arange(-3.0, 1.01, 0.25):
            sub.popularity_offset = sub.new_item_offset = float(offset)
            hit = plan_scores(sub.plans(part["user_id"], part["item_id"], progress=False),
                              part["drivers"])["names a driver"] if len(part) else 0.0
            if hit > best[0] + 1e-12:
                best = (hit, float(offset))
        offsets[name] = best + (len(part),)
    # too few new-item validation pairs to trust their own offset: share the other one
    new_item_offset = offsets["new"][1] if offsets["new"][2] >= 30 else None
    sub.popularity_offset, sub.new_item_offset = offsets["seen"][1], new_item_offset
    # a second aspect when the model finds it nearly as likely as the first: how nearly is
    # chosen by the F1 of plans against the validation pairs' drivers (saying more raises
    # recall and costs precision)
    best_f1 = (-1.0, 0.5)
    for th in (1.0, 0.7, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05):
        sub.second_threshold = th
        sc = plan_scores(sub.plans(late["user_id"], late["item_id"], progress=False),
                         late["drivers"])
        f1 = 2 * sc["precision"] * sc["recall"] / max(sc["precision"] + sc["recall"], 1e-12)
        if f1 > best_f1[0] + 1e-12:
            best_f1 = (f1, th)
    full = I.aspect_profile(world.train_events, world.train_reviews, world.catalogue, cats,
                            top=every)
    final = ContentPlanner(world.facts, full, world.train_events, world.train,
                           world.lex).fit(world.train, progress)
    final.second_threshold = best_f1[1]
    final.popularity_offset, final.new_item_offset = offsets["seen"][1], new_item_offset
    final.validation_hit = {k: v[0] for k, v in offsets.items()}
    final.validation_pairs = {k: v[2] for k, v in offsets.items()}
    return final

