"""Plan, then say it: choose *which* claims this shopper should hear about this item.

A reason has two jobs: be true, and be about what drove *this* purchase. A generator that writes
freely has to do both at once. A **content planner** splits them: it picks, from the claims the
shop can back up (the item's stated facts), the ones most likely to be this user's drivers; a
**realiser** (a template, or a language model conditioned on the plan, :mod:`helpers.nlg.lm`)
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

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data import DataError, require_columns
from .claims import Claim
from .explainers import _one_id

POPULARITY = Claim("popularity", "popularity")
_KINDS = ("aspect", "price", "colour", "pattern", "brand", "popularity")
_EVENT_WEIGHT = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 4.0}


def driver_of(claim: Claim) -> str:
    """The driver name a claim speaks to: 'comfort', 'price', 'colour', ..., 'popularity'."""
    if claim.kind == "aspect":
        return claim.name
    return claim.kind


def drivers_of(text: str) -> set[str]:
    """``'durability;comfort'`` (ShopWorld's drivers column) -> ``{'durability', 'comfort'}``."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"a drivers entry must be a non-empty string such as 'comfort;price', "
                        f"got {text!r}")
    return {d.strip() for d in text.split(";") if d.strip()}


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

    def __init__(self, facts: dict, profile: pd.DataFrame, train_events: pd.DataFrame, *,
                 second_threshold: float = 0.5, C: float = 1.0, seed: int = 0):
        if not isinstance(facts, dict) or not facts:
            raise DataError("facts must be a non-empty item_facts() dict")
        if not 0 < second_threshold <= 1:
            raise ValueError(f"second_threshold must be in (0, 1], got {second_threshold!r}")
        cols = [c for c in profile.columns if c.startswith("aspect_")]
        require_columns(profile, ["user_id"] + cols, "the profile")
        self.facts, self.second_threshold, self.C, self.seed = facts, second_threshold, C, seed
        self.rank = {int(u): {a: k for k, a in enumerate(row) if isinstance(a, str)}
                     for u, row in zip(profile["user_id"], profile[cols].to_numpy())}
        self.history = _History(train_events, facts)
        self.max_buys = max(self.history.item_buys.values(), default=1)

    # ------------------------------------------------------------------ features
    FEATURES = (["bias_" + k for k in _KINDS] +
                ["aspect_rank1", "aspect_rank2", "aspect_rank3", "aspect_in_profile",
                 "price_user_cheap", "price_item_cheap",
                 "colour_share", "colour_top", "pattern_share", "pattern_top",
                 "brand_share", "brand_top",
                 "pop_item", "pop_user_unknown"])

    def _features(self, user: int, item: int, cand: Claim) -> np.ndarray:
        x = dict.fromkeys(self.FEATURES, 0.0)
        kind = "price" if cand.kind == "aspect" and cand.name == "price" else cand.kind
        x["bias_" + kind] = 1.0
        h = self.history
        if kind == "aspect":
            r = self.rank.get(user, {}).get(cand.name)
            if r is not None:
                x["aspect_in_profile"] = 1.0
                if r < 3:
                    x[f"aspect_rank{r + 1}"] = 1.0
        elif kind == "price":
            x["price_user_cheap"] = 0.5 - h.price.get(user, 0.5)
            x["price_item_cheap"] = 0.5 - self.facts[item].get("price_pct", 0.5)
        elif kind in ("colour", "pattern", "brand"):
            s = h.share(kind, user, cand.name)
            counts = getattr(h, kind)[user]
            x[f"{kind}_share"] = s
            x[f"{kind}_top"] = float(bool(counts) and counts.most_common(1)[0][0] == cand.name)
        else:
            x["pop_item"] = math.log1p(h.item_buys.get(item, 0)) / math.log1p(self.max_buys)
            x["pop_user_unknown"] = float(user not in self.rank)
        return np.fromiter(x.values(), dtype=np.float64, count=len(x))

    def _rows(self, users, items):
        rows, owner, cands = [], [], []
        for n, (u, i) in enumerate(zip(users, items)):
            f = self.facts.get(int(i))
            if f is None:
                raise DataError(f"item {i} has no stated facts (not in the catalogue?)")
            for c in candidates(f):
                rows.append(self._features(int(u), int(i), c))
                owner.append(n)
                cands.append(c)
        return np.vstack(rows), np.asarray(owner), cands

    # ------------------------------------------------------------------ learn, plan
    def fit(self, pairs: pd.DataFrame, progress: bool = True) -> "ContentPlanner":
        from sklearn.linear_model import LogisticRegression

        require_columns(pairs, ["user_id", "item_id", "drivers"], "the training pairs")
        if len(pairs) == 0:
            raise DataError("no training pairs to learn the planner from")
        X, owner, cands = self._rows(pairs["user_id"].to_numpy(), pairs["item_id"].to_numpy())
        drivers = [drivers_of(d) for d in tqdm(pairs["drivers"], desc="planner", leave=False,
                                                disable=not progress)]
        y = np.array([driver_of(c) in drivers[o] for c, o in zip(cands, owner)])
        if y.all() or not y.any():
            raise DataError("every candidate has the same label; the planner cannot learn")
        self.model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y)
        return self

    def scores(self, user: int, item: int) -> list[tuple[Claim, float]]:
        """Every candidate claim of the pair with its probability of being a driver, best first
        (ties keep the candidates' fixed order)."""
        if not hasattr(self, "model"):
            raise RuntimeError("call fit() before planning")
        user, item = _one_id(user, "user"), _one_id(item, "item")
        f = self.facts.get(item)
        if f is None:
            return [(POPULARITY, float("nan"))]
        cands = candidates(f)
        p = self.model.predict_proba(np.vstack([self._features(user, item, c) for c in cands]))[:, 1]
        order = np.argsort(-p, kind="stable")
        return [(cands[k], float(p[k])) for k in order]

    def plan(self, user: int, item: int) -> list[Claim]:
        ranked = self.scores(user, item)
        best = [ranked[0][0]]
        if best[0].kind == "aspect" and best[0].name != "price" and len(ranked) > 1:
            c, p = ranked[1]
            if c.kind == "aspect" and c.name != "price" and p >= self.second_threshold:
                best.append(c)
        return best

    def plans(self, users, items, progress: bool = True) -> list[list[Claim]]:
        """Plans for many pairs at once (one model call per batch of candidates)."""
        from .explainers import _pairs

        if not hasattr(self, "model"):
            raise RuntimeError("call fit() before planning")
        users, items = _pairs(users, items)
        unknown = sorted({int(i) for i in items} - set(self.facts))
        if unknown:
            raise DataError(f"{len(unknown)} items have no stated facts (e.g. {unknown[0]}): "
                            "not in the catalogue the planner was built on")
        X, owner, cands = self._rows(users, items)
        p = self.model.predict_proba(X)[:, 1]
        out: list[list[Claim]] = [[] for _ in range(len(users))]
        ranked = defaultdict(list)
        for k in range(len(cands)):
            ranked[owner[k]].append((cands[k], p[k], k))
        for n in tqdm(range(len(users)), desc="plan", leave=False, disable=not progress):
            r = sorted(ranked[n], key=lambda t: (-t[1], t[2]))
            best = [r[0][0]]
            if best[0].kind == "aspect" and best[0].name != "price" and len(r) > 1:
                c, pc, _ = r[1]
                if c.kind == "aspect" and c.name != "price" and pc >= self.second_threshold:
                    best.append(c)
            out[n] = best
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
