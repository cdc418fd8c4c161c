"""ShopWorld: a seeded simulator of an online shop that knows the truth.

Public explanation data sets record what people wrote, never *why* they bought. ShopWorld draws
users with hidden preferences (categories, the aspects they weigh, colour and pattern taste,
price sensitivity, brand loyalty), items with hidden per-aspect quality, and lets a utility model
choose every view, click, cart and purchase. So for any (user, item) we know the true drivers of
the choice, and a generated reason can be checked for faithfulness.

    world = generate(WorldConfig(n_users=1500, n_items=2000, seed=0))
    world.tables["events"]          # clean behaviour log
    write_world(world, "datasets/shopworld")

Command line: ``python -m helpers.data.shopworld --users 100000 --items 20000 --out /tmp/big``.

Everything is drawn from one ``numpy.random.Generator``; the same seed and pinned versions give
byte-identical files (a test checks).
"""
from __future__ import annotations

import gzip
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.assets import sha256_file
from helpers.core.checks import DataError, ParameterError, require_columns
from helpers.data import vocab as V

__all__ = ["WorldConfig", "World", "generate", "write_world", "aspect_vocabulary",
           "true_drivers", "reference_reason", "DIRT_RATES", "draw_item_image",
           "favourite_colour_share"]

T0 = 1_735_689_600          # 2025-01-01 00:00 UTC: the log window opens
WINDOW_DAYS = 182           # ... and runs for about six months
DAY = 86_400

DIRT_RATES = {
    "duplicate_events": 0.02,        # exact copies of logged events
    "event_type_case": 0.03,         # 'View', ' PURCHASE' ... instead of 'view', 'purchase'
    "out_of_order_rows": 0.05,       # rows moved away from time order in the log file
    "orphan_events": 0.01,           # events for item IDs the catalogue does not have
    "bot_users": 0.01,               # extra users that only fire views, seconds apart
    "brand_category_format": 0.10,   # catalogue rows with odd casing / whitespace
    "duplicate_catalogue_rows": 0.03,  # items listed twice, differing only in formatting
    "price_in_cents": 0.005,         # prices entered in cents (x100)
    "missing_price": 0.01,           # price left blank
    "missing_description": 0.02,     # description left blank
}


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and knobs of a world. The defaults make the committed quick-profile world."""

    n_users: int = 2000
    n_items: int = 2000
    seed: int = 0
    candidates_per_session: int = 24
    mean_log_activity: float = 1.3      # sessions per user ~ 1 + Poisson(lognormal)
    review_rate: float = 0.8            # share of purchases that get a review
    colour_in_text_rate: float = 0.5    # share of items whose text states colour and pattern
    new_item_rate: float = 0.3          # items launched inside the log window
    colour_taste_max: float = 0.8       # a user's colour taste ~ U(0, this): how much colour counts
    images: bool = True
    dirt: bool = True
    dirt_rates: dict = field(default_factory=lambda: dict(DIRT_RATES))

    def __post_init__(self):
        for name in ("n_users", "n_items", "candidates_per_session"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value!r}")
        if self.n_items < 8 * 4:
            raise ParameterError(f"n_items must be at least 32 (4 per category), got {self.n_items}")
        for name in ("review_rate", "colour_in_text_rate", "new_item_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if (isinstance(self.colour_taste_max, bool)
                or not isinstance(self.colour_taste_max, (int, float))
                or not 0 <= self.colour_taste_max < float("inf")):
            raise ParameterError("colour_taste_max must be a finite number >= 0 (0.8 makes the "
                                 f"committed world), got {self.colour_taste_max!r}")
        unknown = set(self.dirt_rates) - set(DIRT_RATES)
        if unknown:
            raise ParameterError(f"unknown dirt kinds {sorted(unknown)}; known: {sorted(DIRT_RATES)}")


@dataclass
class World:
    """A generated world: named tables (pandas) plus images, dirt truth and timings."""

    config: WorldConfig
    tables: dict[str, pd.DataFrame]
    images: dict[int, bytes]
    dirt: dict
    timings: dict[str, float]


def aspect_vocabulary() -> list[str]:
    """Every aspect, in a fixed order: each category's own, then the shared ones."""
    seen = []
    for spec in V.CATEGORIES.values():
        seen += [a for a in spec["aspects"] if a not in seen]
    return seen + V.SHARED_ASPECTS


def quality_column(aspect: str) -> str:
    """The catalogue column holding an aspect's quality: ``'battery life'`` -> ``'q_battery_life'``.
    """
    return "q_" + aspect.replace(" ", "_")


# ----------------------------------------------------------------------------- items
def _items(cfg: WorldConfig, rng: np.random.Generator):
    cats = list(V.CATEGORIES)
    aspects = aspect_vocabulary()
    a_index = {a: j for j, a in enumerate(aspects)}
    n = cfg.n_items
    # every category gets at least 4 items; the rest follow uneven category sizes
    weights = rng.dirichlet(np.full(len(cats), 4.0))
    cat = np.concatenate([np.repeat(np.arange(len(cats)), 4),
                          rng.choice(len(cats), size=n - 4 * len(cats), p=weights)])
    rng.shuffle(cat)
    quality = np.zeros((n, len(aspects)), dtype=np.int8)
    brand = np.empty(n, dtype=object)
    base = np.array([V.CATEGORIES[c]["base_price"] for c in cats])[cat]
    for k, c in enumerate(cats):
        rows = np.flatnonzero(cat == k)
        cols = [a_index[a] for a in V.CATEGORIES[c]["aspects"]]
        # item "tier" correlates the aspects a little; each aspect still varies
        tier = rng.normal(0, 0.8, size=(len(rows), 1))
        raw = 3 + tier + rng.normal(0, 1.0, size=(len(rows), len(cols)))
        quality[np.ix_(rows, cols)] = np.clip(np.rint(raw), 1, 5).astype(np.int8)
        brand[rows] = rng.choice(V.CATEGORIES[c]["brands"], size=len(rows))
    mean_q = np.array([quality[i][quality[i] > 0].mean() for i in range(n)])
    price = base * np.exp(0.25 * (mean_q - 3) + rng.normal(0, 0.35, size=n))
    price = np.minimum(price, 8 * base)  # clean prices never look like outliers
    price = np.round(price, 2)
    # price quality: 5 = cheapest fifth of its category, 1 = dearest fifth
    pq = np.zeros(n, dtype=np.int8)
    for k in range(len(cats)):
        rows = np.flatnonzero(cat == k)
        ranks = price[rows].argsort().argsort() / max(len(rows) - 1, 1)
        pq[rows] = 5 - np.minimum((ranks * 5).astype(int), 4)
    quality[:, a_index["price"]] = pq
    colour = rng.choice(list(V.COLOURS), size=n)
    pattern = rng.choice(V.PATTERNS, size=n, p=[0.4, 0.2, 0.2, 0.2])
    buzz = rng.normal(0, 1.0, size=n)  # latent popularity -> long tail
    is_new = rng.random(n) < cfg.new_item_rate
    launch = np.where(is_new, T0 + rng.integers(0, WINDOW_DAYS * DAY, size=n),
                      T0 - rng.integers(1, 365 * DAY, size=n)).astype(np.int64)
    colour_in_text = rng.random(n) < cfg.colour_in_text_rate
    items = pd.DataFrame({
        "item_id": np.arange(1, n + 1, dtype=np.int64), "category": np.array(cats)[cat],
        "brand": brand.astype(str), "price": price, "launch_ts": launch,
        "colour": colour, "pattern": pattern, "colour_in_text": colour_in_text,
        "buzz": np.round(buzz, 4),
    })
    for j, a in enumerate(aspects):
        items[quality_column(a)] = quality[:, j]
    items["title"], items["description"] = _item_texts(items, rng)
    return items, quality


def _model_name(rng, n):
    syll = np.array(V.MODEL_SYLLABLES)
    first = rng.choice(syll, size=(n, 2))
    numbers = rng.integers(1, 99, size=n)
    suffix = rng.choice(["", " Pro", " Lite", " Max", " X", " Air", " Plus"], size=n)
    return [f"{a.capitalize()}{b} {num}{s}" for (a, b), num, s in zip(first, numbers, suffix)]


def _item_texts(items: pd.DataFrame, rng: np.random.Generator):
    n = len(items)
    names = _model_name(rng, n)
    titles, descs = [], []
    seen = set()
    picks = rng.integers(0, 1 << 30, size=(n, 12))
    for i, row in enumerate(items.itertuples(index=False)):
        spec = V.CATEGORIES[row.category]
        p = picks[i]
        noun = spec["nouns"][p[0] % len(spec["nouns"])]
        title = f"{row.brand} {names[i]} {noun}"
        while title in seen:  # model names are random; make titles unique
            title = f"{row.brand} {names[i]}{p[1] % 9 + 2} {noun}"
            p[1] += 1
        seen.add(title)
        use = spec["uses"][p[2] % len(spec["uses"])]
        parts = [V.OPENERS[p[3] % len(V.OPENERS)].format(title=title, use=use)]
        qs = [(a, getattr(row, quality_column(a))) for a in spec["aspects"]]
        order = [qs[j] for j in np.argsort(-np.array([q for _, q in qs]) + (p[4] % 7) * 1e-3)]
        shown = order[: 2 + p[5] % 2]  # the two or three strongest aspects, as marketing does
        k = 0
        while k < len(shown):
            tmpl = V.ASPECT_SENTENCES[(p[6] + k) % len(V.ASPECT_SENTENCES)]
            a, q = shown[k]
            adj = _marketing(q, p[7] + k)
            if "{aspect2}" in tmpl and k + 1 < len(shown):
                a2, q2 = shown[k + 1]
                parts.append(tmpl.format(adj=adj, aspect=a, adj2=_marketing(q2, p[8] + k),
                                         aspect2=a2))
                k += 2
            else:
                if "{aspect2}" in tmpl:
                    tmpl = "It offers {adj} {aspect}."
                parts.append(tmpl.format(adj=adj, aspect=a))
                k += 1
        if row.colour_in_text:
            parts.append(V.COLOUR_SENTENCES[p[9] % len(V.COLOUR_SENTENCES)].format(
                colour=row.colour, pattern=V.PATTERN_PHRASES[row.pattern]))
        closer = V.CLOSERS[p[10] % len(V.CLOSERS)]
        if closer:
            parts.append(closer)
        text = " ".join(parts)
        descs.append(text[0].upper() + text[1:])
        titles.append(title)
    return titles, descs


def _marketing(q: int, pick: int) -> str:
    band = "high" if q >= 4 else "mid" if q == 3 else "low"
    words = V.MARKETING[band]
    return words[pick % len(words)]


# ----------------------------------------------------------------------------- users
def _users(cfg: WorldConfig, rng: np.random.Generator, items: pd.DataFrame):
    cats = list(V.CATEGORIES)
    aspects = aspect_vocabulary()
    n = cfg.n_users
    affinity = rng.dirichlet(np.full(len(cats), 0.35), size=n)      # a few favourite categories
    top2 = np.argsort(-affinity, axis=1)[:, :2]
    weights = np.zeros((n, len(aspects)))
    chosen = []
    for u in range(n):
        pool = sorted({a for k in top2[u] for a in V.CATEGORIES[cats[k]]["aspects"]})
        pick = rng.choice(pool, size=3, replace=False)
        w = np.sort(rng.dirichlet(np.full(3, 2.0)))[::-1]
        for a, wa in zip(pick, w):
            weights[u, aspects.index(a)] = wa
        chosen.append(list(zip(pick, w)))
    all_brands = sorted({b for s in V.CATEGORIES.values() for b in s["brands"]})
    users = pd.DataFrame({
        "user_id": np.arange(1, n + 1, dtype=np.int64),
        "age_band": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], size=n,
                               p=[0.18, 0.32, 0.24, 0.15, 0.11]),
        "region": rng.choice(["north", "south", "east", "west", "central"], size=n),
        "signup_ts": np.where(rng.random(n) < 0.7, T0 - rng.integers(1, 720 * DAY, size=n),
                              T0 + rng.integers(0, WINDOW_DAYS * DAY * 3 // 4, size=n)
                              ).astype(np.int64),
        "fav_colour": rng.choice(list(V.COLOURS), size=n),
        "colour_taste": np.round(rng.uniform(0, cfg.colour_taste_max, size=n), 3),
        "fav_pattern": rng.choice(V.PATTERNS, size=n),
        "pattern_taste": np.round(rng.uniform(0, 0.5, size=n), 3),
        "price_sensitivity": np.round(rng.beta(2, 3, size=n) * 1.5, 3),
        "fav_brand": rng.choice(all_brands, size=n),
        "brand_loyalty": np.round(rng.exponential(0.4, size=n), 3),
        "activity": np.round(rng.lognormal(cfg.mean_log_activity, 0.9, size=n), 3),
    })
    for k, c in enumerate(cats):
        users[f"aff_{c}"] = np.round(affinity[:, k], 4)
    for r in range(3):
        users[f"aspect_{r + 1}"] = [ch[r][0] for ch in chosen]
        users[f"weight_{r + 1}"] = np.round([ch[r][1] for ch in chosen], 4)
    return users, affinity, weights


# ----------------------------------------------------------------------------- utility
BETA_ASPECT, BETA_POP = 2.5, 0.6


def utility_parts(users: pd.DataFrame, weights: np.ndarray, items: pd.DataFrame,
                   quality: np.ndarray, u_idx: np.ndarray, i_idx: np.ndarray) -> dict:
    """Each term of the utility for user rows ``u_idx`` and item rows ``i_idx`` (same shape)."""
    q = quality[i_idx].astype(np.float32)                         # (..., A)
    w = weights[u_idx]                                            # (..., A)
    applicable = q > 0
    aspect_terms = BETA_ASPECT * w * np.where(applicable, (q - 3) / 2, 0.0)
    med = items.groupby("category")["price"].transform("median").to_numpy()
    return {
        "aspects": aspect_terms,                                  # (..., A)
        "colour": users["colour_taste"].to_numpy()[u_idx]
        * (items["colour"].to_numpy()[i_idx] == users["fav_colour"].to_numpy()[u_idx]),
        "pattern": users["pattern_taste"].to_numpy()[u_idx]
        * (items["pattern"].to_numpy()[i_idx] == users["fav_pattern"].to_numpy()[u_idx]),
        "brand": users["brand_loyalty"].to_numpy()[u_idx]
        * (items["brand"].to_numpy()[i_idx] == users["fav_brand"].to_numpy()[u_idx]),
        "price": -users["price_sensitivity"].to_numpy()[u_idx]
        * np.log(items["price"].to_numpy()[i_idx] / med[i_idx]),
        "popularity": BETA_POP * items["buzz"].to_numpy()[i_idx],
    }


def utility(parts: dict) -> np.ndarray:
    """A shopper's total utility for each item: the sum of the parts :func:`utility_parts` returns
    (aspects, colour, pattern, brand, price, popularity).
    """
    return (parts["aspects"].sum(-1) + parts["colour"] + parts["pattern"] + parts["brand"]
            + parts["price"] + parts["popularity"])


# ----------------------------------------------------------------------------- behaviour
NEW_ARRIVALS = 4  # extra candidates per session from items launched in the last 30 days


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _behaviour(cfg, rng, users, affinity, weights, items, quality):
    n_users = len(users)
    cats = list(V.CATEGORIES)
    n_sess = 1 + rng.poisson(users["activity"].to_numpy())
    s_user = np.repeat(np.arange(n_users), n_sess)
    start = np.maximum(users["signup_ts"].to_numpy()[s_user], T0)
    end = T0 + WINDOW_DAYS * DAY
    s_time = start + (rng.random(len(s_user)) * (end - start)).astype(np.int64)
    # a session's category follows the user's affinities (inverse-CDF sampling, vectorised)
    cdf = np.cumsum(affinity, axis=1)[s_user]
    s_cat = (rng.random(len(s_user))[:, None] > cdf).sum(1).clip(max=len(cats) - 1)
    K_shelf = cfg.candidates_per_session
    K = K_shelf + NEW_ARRIVALS
    cand = np.zeros((len(s_user), K), dtype=np.int64)
    item_cat = pd.Categorical(items["category"], categories=cats).codes
    buzz = items["buzz"].to_numpy()
    launch_ts = items["launch_ts"].to_numpy()
    for k in range(len(cats)):
        rows = np.flatnonzero(s_cat == k)
        pool = np.flatnonzero(item_cat == k)
        if len(rows) == 0:
            continue
        p = np.exp(buzz[pool])
        cand[rows, :K_shelf] = pool[rng.choice(len(pool), size=(len(rows), K_shelf),
                                               p=p / p.sum())]
        # the "new arrivals" shelf: items of the category launched in the last 30 days
        by_launch = pool[np.argsort(launch_ts[pool], kind="stable")]
        lo = np.searchsorted(launch_ts[by_launch], s_time[rows] - 30 * DAY, side="left")
        hi = np.searchsorted(launch_ts[by_launch], s_time[rows], side="right")
        pick = lo[:, None] + (rng.random((len(rows), NEW_ARRIVALS))
                              * np.maximum(hi - lo, 1)[:, None]).astype(np.int64)
        fresh = by_launch[np.minimum(pick, len(by_launch) - 1)]
        none = (hi - lo) == 0  # no new arrivals: repeat a shelf item (masked as a repeat below)
        cand[rows, K_shelf:] = np.where(none[:, None], cand[rows, :1], fresh)
    launched = items["launch_ts"].to_numpy()[cand] <= s_time[:, None]
    # candidates are drawn with replacement: a repeat of an item in a session is not offered
    by_id = np.argsort(cand, axis=1, kind="stable")
    sorted_c = np.take_along_axis(cand, by_id, axis=1)
    repeat_sorted = np.zeros(cand.shape, dtype=bool)
    repeat_sorted[:, 1:] = sorted_c[:, 1:] == sorted_c[:, :-1]
    repeat = np.zeros_like(repeat_sorted)
    np.put_along_axis(repeat, by_id, repeat_sorted, axis=1)
    launched &= ~repeat
    events = []
    chunk = 50_000
    for lo in range(0, len(s_user), chunk):
        hi = min(lo + chunk, len(s_user))
        u = np.broadcast_to(s_user[lo:hi, None], (hi - lo, K))
        util = utility(utility_parts(users, weights, items, quality, u, cand[lo:hi]))
        util = util + rng.gumbel(size=util.shape) * 0.7
        util = np.where(launched[lo:hi], util, -np.inf)
        n_view = np.minimum(1 + rng.poisson(2.5, size=hi - lo), launched[lo:hi].sum(1))
        order = np.argsort(-util, axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(K)[None, :].repeat(hi - lo, 0), axis=1)
        viewed = rank < n_view[:, None]
        # the funnel depends on how much better an item is than the session's alternatives
        valid = np.where(launched[lo:hi], util, np.nan)
        rel = util - np.nanmean(valid, axis=1, keepdims=True)
        clicked = viewed & (rng.random(util.shape) < _sigmoid(rel - 2.8))
        carted = clicked & (rng.random(util.shape) < _sigmoid(rel - 2.6))
        bought = carted & (rng.random(util.shape) < _sigmoid(rel - 1.6))
        si, ci = np.nonzero(viewed)
        t_view = s_time[lo + si] + rank[si, ci] * 90 + rng.integers(0, 40, size=len(si))
        t_click = t_view + rng.integers(3, 30, size=len(si))
        t_cart = t_click + rng.integers(10, 40, size=len(si))
        t_buy = t_cart + rng.integers(5, 10, size=len(si))
        for kind, mask, t in (("view", np.ones(len(si), bool), t_view),
                              ("click", clicked[si, ci], t_click),
                              ("add_to_cart", carted[si, ci], t_cart),
                              ("purchase", bought[si, ci], t_buy)):
            events.append(pd.DataFrame({
                "user_id": s_user[lo + si][mask] + 1, "session_id": lo + si[mask] + 1,
                "item_id": cand[lo + si, ci][mask] + 1, "event_type": kind,
                "timestamp": t[mask].astype(np.int64)}))
    ev = pd.concat(events, ignore_index=True)
    ev["event_type"] = pd.Categorical(ev["event_type"],
                                      categories=["view", "click", "add_to_cart", "purchase"])
    ev = ev.sort_values(["timestamp", "user_id", "item_id", "event_type"], kind="stable")
    ev = ev.drop_duplicates(["user_id", "item_id", "event_type", "timestamp"])
    ev = ev.reset_index(drop=True)
    # ratings for purchases: the user's satisfaction with the aspects they weigh
    buy = ev["event_type"].to_numpy() == "purchase"
    u_i, i_i = ev.loc[buy, "user_id"].to_numpy() - 1, ev.loc[buy, "item_id"].to_numpy() - 1
    parts = utility_parts(users, weights, items, quality, u_i, i_i)
    satisfaction = parts["aspects"].sum(-1) / BETA_ASPECT            # in [-1, 1]
    rating = np.clip(np.rint(3.6 + 1.8 * satisfaction + rng.normal(0, 0.6, size=buy.sum())),
                     1, 5)
    ev["rating"] = np.nan
    ev.loc[buy, "rating"] = rating
    return ev


def favourite_colour_share(events: pd.DataFrame, item_truth: pd.DataFrame,
                           user_truth: pd.DataFrame) -> float:
    """Share of the purchases in ``events`` whose item has the buyer's favourite colour (chance
    is 1 / 10): how much colour decides in a world. ``item_truth`` and ``user_truth`` are the
    world's truth tables (columns ``item_id``, ``colour`` and ``user_id``, ``fav_colour``)."""

    require_columns(events, ["user_id", "item_id", "event_type"], "events")
    require_columns(item_truth, ["item_id", "colour"], "item_truth")
    require_columns(user_truth, ["user_id", "fav_colour"], "user_truth")
    buys = events[events["event_type"] == "purchase"]
    if buys.empty:
        raise DataError("events hold no purchase: pass the world's whole log")
    colour = item_truth.set_index("item_id")["colour"]
    favourite = user_truth.set_index("user_id")["fav_colour"]
    for ids, known, what in ((buys["item_id"], colour.index, "item"),
                             (buys["user_id"], favourite.index, "user")):
        unknown = ~ids.isin(known)
        if unknown.any():
            raise DataError(f"{int(unknown.sum())} purchases name a {what} the truth table does "
                            f"not know (e.g. {ids[unknown].iloc[0]}): pass one world's tables")
    return float((colour.loc[buys["item_id"]].to_numpy()
                  == favourite.loc[buys["user_id"]].to_numpy()).mean())


# ----------------------------------------------------------------------------- truth: reasons
def true_drivers(parts: dict, aspects: list[str], threshold: float = 0.25, top: int = 2):
    """The utility terms that push a pair's utility up the most, largest first.

    ``parts`` holds 1-D arrays (one entry per pair) as made by ``utility_parts``. Returns a
    list (one per pair) of up to ``top`` ``(driver, contribution)`` tuples above ``threshold``;
    a pair with none is driven by 'popularity'.
    """
    # 'price' is both a column of the aspect block (users never weigh it there: it stays 0)
    # and the price-sensitivity term; only the latter can drive a choice
    names = aspects + ["colour", "pattern", "brand", "price"]
    contrib = np.column_stack([parts["aspects"], parts["colour"], parts["pattern"],
                               parts["brand"], parts["price"]])
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
    out = []
    for r in range(len(contrib)):
        drivers = [(names[j], float(contrib[r, j])) for j in order[r] if contrib[r, j] > threshold]
        out.append(drivers or [("popularity", float(parts["popularity"][r]))])
    return out


def _opinion(q: int, pick: int) -> str:
    words = V.OPINIONS[int(q)]
    return words[pick % len(words)]


def reference_reason(drivers, item: dict, pick: int = 0) -> str:
    """A reference reason sentence for one pair, from its true drivers and the item's facts."""
    first = drivers[0][0]
    aspects = [a for a in aspect_vocabulary() if a not in V.SHARED_ASPECTS]
    if first == "price":  # the price-sensitivity term, not an aspect the user weighs
        return V.REASON_TEMPLATES["price"]
    if first in aspects:
        q1 = item[quality_column(first)]
        if len(drivers) > 1 and drivers[1][0] in aspects:
            q2 = item[quality_column(drivers[1][0])]
            tmpl = V.REASON_TEMPLATES["two_aspects"][pick % 2]
            return tmpl.format(aspect=first, opinion=_opinion(q1, pick), aspect2=drivers[1][0],
                               opinion2=_opinion(q2, pick + 1))
        tmpl = V.REASON_TEMPLATES["aspect"][pick % 3]
        return tmpl.format(aspect=first, opinion=_opinion(q1, pick))
    return V.REASON_TEMPLATES[first].format(colour=item["colour"], brand=item["brand"],
                                          pattern=V.PATTERN_PHRASES[item["pattern"]])


def _reasons(rng, users, weights, items, quality, events):
    buys = events.loc[events["event_type"] == "purchase", ["user_id", "item_id", "timestamp"]]
    u_i, i_i = buys["user_id"].to_numpy() - 1, buys["item_id"].to_numpy() - 1
    parts = utility_parts(users, weights, items, quality, u_i, i_i)
    drivers = true_drivers(parts, aspect_vocabulary())
    picks = rng.integers(0, 1 << 20, size=len(buys))
    records = items.to_dict("records")
    reasons = [reference_reason(d, records[i], int(p)) for d, i, p in zip(drivers, i_i, picks)]
    return pd.DataFrame({"user_id": buys["user_id"].to_numpy(),
                         "item_id": buys["item_id"].to_numpy(),
                         "timestamp": buys["timestamp"].to_numpy(),
                         "drivers": [";".join(d for d, _ in ds) for ds in drivers],
                         "reason": reasons})


# ----------------------------------------------------------------------------- reviews
def _reviews(cfg, rng, users, items, events):
    buys = events.loc[events["event_type"] == "purchase"].reset_index(drop=True)
    keep = rng.random(len(buys)) < cfg.review_rate
    buys = buys.loc[keep].reset_index(drop=True)
    cats = items["category"].to_numpy()
    rows = []
    picks = rng.integers(0, 1 << 30, size=(len(buys), 8))
    extra = rng.random(len(buys))
    u_aspects = users[["aspect_1", "aspect_2", "aspect_3"]].to_numpy()
    for r, b in enumerate(buys.itertuples(index=False)):
        i = b.item_id - 1
        applicable = V.CATEGORIES[cats[i]]["aspects"] + ["price"]
        mine = [a for a in u_aspects[b.user_id - 1] if a in applicable]
        others = [a for a in applicable if a not in mine]
        if not mine or extra[r] < 0.3:  # sometimes also remark on another aspect
            mine = mine + [others[picks[r, 0] % len(others)]]
        for s, aspect in enumerate(mine[:3]):
            q = int(items.at[i, quality_column(aspect)])
            opinion = _opinion(q, picks[r, 1 + s])
            polarity = 1 if q >= 4 else -1 if q <= 2 else 0
            tmpl = V.REVIEW_TEMPLATES[picks[r, 4 + s] % len(V.REVIEW_TEMPLATES)]
            tails = V.REVIEW_TAILS[polarity]
            sentence = tmpl.format(aspect=aspect, opinion=opinion,
                                   Opinion=opinion[0].upper() + opinion[1:],
                                   tail=tails[picks[r, 7] % len(tails)])
            rows.append((r + 1, b.user_id, b.item_id, int(b.rating), b.timestamp, s, aspect,
                         opinion, sentence, polarity))
    return pd.DataFrame(rows, columns=["review_id", "user_id", "item_id", "rating", "timestamp",
                                       "sentence_idx", "aspect", "opinion", "sentence",
                                       "polarity"])


# ----------------------------------------------------------------------------- images
def draw_item_image(category: str, colour: str, pattern: str, size: int = 64) -> bytes:
    """A small PNG: the category's silhouette, filled with the colour, overlaid with the
    pattern. Deterministic: the same arguments give the same bytes."""
    from PIL import Image, ImageDraw

    s = size / 64
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)

    def box(*xy):
        return [v * s for v in xy]

    if category == "headphones":
        d.arc(box(12, 8, 52, 48), 180, 360, fill=255, width=int(6 * s))
        d.ellipse(box(8, 28, 24, 50), fill=255)
        d.ellipse(box(40, 28, 56, 50), fill=255)
    elif category == "running_shoes":
        d.polygon(box(6, 44, 10, 24, 26, 26, 34, 36, 56, 40, 58, 50, 6, 50), fill=255)
    elif category == "backpacks":
        d.rounded_rectangle(box(14, 10, 50, 56), radius=8 * s, fill=255)
        d.arc(box(22, 2, 42, 20), 180, 360, fill=255, width=int(4 * s))
    elif category == "coffee_makers":
        d.rectangle(box(14, 8, 50, 18), fill=255)
        d.rectangle(box(14, 8, 22, 56), fill=255)
        d.rectangle(box(14, 50, 50, 56), fill=255)
        d.polygon(box(28, 30, 48, 30, 46, 48, 30, 48), fill=255)
    elif category == "jackets":
        d.polygon(box(22, 8, 42, 8, 58, 20, 52, 30, 46, 26, 46, 56, 18, 56, 18, 26, 12, 30,
                      6, 20), fill=255)
    elif category == "books":
        d.rectangle(box(14, 6, 50, 58), fill=255)
    elif category == "smartwatches":
        d.rectangle(box(24, 2, 40, 62), fill=255)
        d.rounded_rectangle(box(16, 18, 48, 46), radius=6 * s, fill=255)
    elif category == "desk_lamps":
        d.polygon(box(16, 8, 40, 8, 48, 26, 8, 26), fill=255)
        d.rectangle(box(26, 26, 30, 52), fill=255)
        d.rectangle(box(14, 52, 44, 58), fill=255)
    else:
        raise DataError(f"unknown category {category!r}")
    rgb = V.COLOURS[colour]
    fill = Image.new("RGB", (size, size), rgb)
    if pattern != "solid":
        ink = (250, 250, 250) if sum(rgb) < 400 else (20, 20, 20)
        p = ImageDraw.Draw(fill)
        step = int(8 * s)
        if pattern == "striped":
            for x in range(-size, size, step):
                p.line([(x, size), (x + size, 0)], fill=ink, width=max(1, int(2 * s)))
        elif pattern == "dotted":
            for y in range(step // 2, size, step):
                for x in range(step // 2, size, step):
                    p.ellipse([x - 1.5 * s, y - 1.5 * s, x + 1.5 * s, y + 1.5 * s], fill=ink)
        elif pattern == "checked":
            for y in range(0, size, step):
                for x in range(0, size, step):
                    if (x // step + y // step) % 2 == 0:
                        p.rectangle([x, y, x + step // 2, y + step // 2], fill=ink)
    from PIL import ImageFilter

    img = Image.new("RGB", (size, size), (246, 246, 242))
    outline = mask.filter(ImageFilter.MaxFilter(3))  # a 1-pixel dark rim: white items show
    img.paste(Image.new("RGB", (size, size), (70, 70, 70)), (0, 0), outline)
    img.paste(fill, (0, 0), mask)
    if category == "books":  # a spine line
        ImageDraw.Draw(img).line(box(18, 6, 18, 58), fill=(60, 60, 60), width=int(2 * s))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


# ----------------------------------------------------------------------------- dirt
_CASE_STYLES = [str.upper, str.lower, lambda x: f"  {x}", lambda x: f"{x}  ",
                lambda x: x.replace("_", " ").title(), lambda x: x.replace("_", "-")]


def _dirty(cfg, rng, items, events):
    """Raw catalogue and log, plus an exact account of every injected problem."""
    rates = cfg.dirt_rates
    truth = {"rates": rates}
    cat = items[["item_id", "category", "brand", "title", "description", "price",
                 "launch_ts"]].copy()
    n = len(cat)
    fmt = rng.random(n) < rates["brand_category_format"]
    styles = rng.integers(0, len(_CASE_STYLES), size=(n, 2))
    cat["brand"] = [(_CASE_STYLES[s[0]](b) if f else b)
                    for b, f, s in zip(cat["brand"], fmt, styles)]
    cat["category"] = [(_CASE_STYLES[s[1]](c) if f else c)
                       for c, f, s in zip(cat["category"], fmt, styles)]
    truth["reformatted_items"] = cat.loc[fmt, "item_id"].tolist()
    cents = rng.random(n) < rates["price_in_cents"]
    cat.loc[cents, "price"] = np.round(cat.loc[cents, "price"] * 100, 2)
    truth["price_in_cents_items"] = cat.loc[cents, "item_id"].tolist()
    no_price = (rng.random(n) < rates["missing_price"]) & ~cents
    cat.loc[no_price, "price"] = np.nan
    truth["missing_price_items"] = cat.loc[no_price, "item_id"].tolist()
    no_desc = rng.random(n) < rates["missing_description"]
    cat.loc[no_desc, "description"] = ""
    truth["missing_description_items"] = cat.loc[no_desc, "item_id"].tolist()
    dup = np.flatnonzero(rng.random(n) < rates["duplicate_catalogue_rows"])
    copies = cat.iloc[dup].copy()
    copies["brand"] = [_CASE_STYLES[k](b.strip()) for b, k in
                       zip(copies["brand"], rng.integers(0, 4, size=len(copies)))]
    truth["duplicated_items"] = copies["item_id"].tolist()
    cat = pd.concat([cat, copies]).sample(frac=1.0, random_state=rng.integers(1 << 31))
    cat = cat.reset_index(drop=True)

    ev = events[["user_id", "session_id", "item_id", "event_type", "timestamp",
                 "rating"]].copy()
    ev["event_type"] = ev["event_type"].astype(str)
    m = len(ev)
    case = rng.random(m) < rates["event_type_case"]
    ev.loc[case, "event_type"] = [_CASE_STYLES[k](t) for t, k in
                                  zip(ev.loc[case, "event_type"],
                                      rng.integers(0, 4, size=case.sum()))]
    truth["event_type_reformatted"] = int(case.sum())
    dups = ev.iloc[np.flatnonzero(rng.random(m) < rates["duplicate_events"])]
    truth["duplicate_events"] = len(dups)
    # orphans: events for items that are not (or no longer) in the catalogue
    n_orphan = int(round(m * rates["orphan_events"]))
    orphan_ids = np.arange(n + 1, n + 1 + max(1, n // 50))
    orphans = ev.iloc[rng.integers(0, m, size=n_orphan)].copy()
    orphans["item_id"] = rng.choice(orphan_ids, size=n_orphan)
    orphans["event_type"] = "view"
    orphans["rating"] = np.nan
    orphans["timestamp"] += rng.integers(1, 5, size=n_orphan)
    truth["orphan_events"] = n_orphan
    truth["orphan_item_ids"] = sorted(set(orphans["item_id"].tolist()))
    # bots: view-only users firing events a few seconds apart
    n_users = int(events["user_id"].max())
    n_bots = max(1, int(round(n_users * rates["bot_users"])))
    bot_rows = []
    for b in range(n_bots):
        count = int(rng.integers(150, 400))
        start = T0 + int(rng.integers(0, WINDOW_DAYS * DAY - DAY))
        ts = start + np.cumsum(rng.integers(1, 4, size=count))
        bot_rows.append(pd.DataFrame({
            "user_id": n_users + 1 + b, "session_id": -(b + 1),
            "item_id": rng.integers(1, n + 1, size=count), "event_type": "view",
            "timestamp": ts.astype(np.int64), "rating": np.nan}))
    bots = pd.concat(bot_rows, ignore_index=True)
    truth["bot_user_ids"] = list(range(n_users + 1, n_users + 1 + n_bots))
    truth["bot_events"] = len(bots)
    raw = pd.concat([ev, dups, orphans, bots], ignore_index=True)
    raw = raw.sort_values("timestamp", kind="stable").reset_index(drop=True)
    # out-of-order: move a share of rows to random places in the file
    k = int(round(len(raw) * rates["out_of_order_rows"]))
    src = rng.choice(len(raw), size=k, replace=False)
    # moved rows get random sort keys, the others keep their position
    keys = np.arange(len(raw), dtype=np.float64)
    keys[src] = rng.random(k) * len(raw)
    raw = raw.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)
    truth["out_of_order_rows"] = k
    raw["session_id"] = raw["session_id"].astype(np.int64)
    raw["rating"] = raw["rating"].astype("Float64")
    truth["raw_rows"] = {"events": len(raw), "catalogue": len(cat)}
    truth["clean_rows"] = {"events": len(events), "catalogue": len(items)}
    return cat, raw, truth


# ----------------------------------------------------------------------------- generate
def generate(cfg: WorldConfig | None = None, progress: bool = True) -> World:
    """Draw a whole world. Deterministic in ``cfg`` (its seed included)."""
    from tqdm.auto import tqdm

    cfg = cfg or WorldConfig()
    rng = np.random.default_rng(cfg.seed)
    timings = {}
    steps = ["items", "users", "behaviour", "reasons", "reviews", "images", "dirt"]
    bar = tqdm(steps, desc="ShopWorld", disable=not progress)
    t = time.perf_counter()

    def tick(name):
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now
        bar.update(1)
        bar.set_postfix_str(name)

    items, quality = _items(cfg, rng)
    tick("items")
    users, affinity, weights = _users(cfg, rng, items)
    tick("users")
    events = _behaviour(cfg, rng, users, affinity, weights, items, quality)
    tick("behaviour")
    reasons = _reasons(rng, users, weights, items, quality, events)
    tick("reasons")
    reviews = _reviews(cfg, rng, users, items, events)
    tick("reviews")
    images = ({int(r.item_id): draw_item_image(r.category, r.colour, r.pattern)
               for r in items.itertuples(index=False)} if cfg.images else {})
    tick("images")
    tables = {
        "catalogue": items[["item_id", "category", "brand", "title", "description", "price",
                            "launch_ts"]],
        "item_truth": items.drop(columns=["category", "brand", "title", "description", "price",
                                          "launch_ts"]),
        "users": users[["user_id", "age_band", "region", "signup_ts"]],
        "user_truth": users.drop(columns=["age_band", "region", "signup_ts"]),
        "events": events, "reviews": reviews, "reasons": reasons,
    }
    dirt = {}
    if cfg.dirt:
        raw_cat, raw_ev, dirt = _dirty(cfg, rng, items, events)
        tables["raw_catalogue"], tables["raw_events"] = raw_cat, raw_ev
    tick("dirt")
    bar.close()
    return World(cfg, tables, images, dirt, timings)


# ----------------------------------------------------------------------------- writing
IMAGES_FILE = "images.parquet"
FILES = {  # table -> file name (relative to the world's folder)
    "catalogue": "catalogue.parquet", "item_truth": "truth/items.parquet",
    "users": "users.parquet", "user_truth": "truth/users.parquet",
    "events": "events.parquet", "reviews": "reviews.parquet", "reasons": "truth/reasons.parquet",
    "raw_catalogue": "raw/catalogue.csv", "raw_events": "raw/events.csv.gz",
}


def _write_table(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False, compression="zstd")
    elif path.name.endswith(".csv.gz"):
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                    filename="") as gz:
            gz.write(df.to_csv(index=False, lineterminator="\n").encode())
    else:
        path.write_text(df.to_csv(index=False, lineterminator="\n"))


def write_world(world: World, out: str | Path) -> dict[str, str]:
    """Write every table, the images, the dirt truth, the vocabulary, a data card and a
    ``MANIFEST.sha256``. Returns ``{relative path: sha256}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in world.tables.items():
        _write_table(df, out / FILES[name])
    if world.images:
        imgs = pd.DataFrame({"item_id": list(world.images),
                             "png": list(world.images.values())})
        _write_table(imgs, out / IMAGES_FILE)
    (out / "truth").mkdir(exist_ok=True)
    (out / "truth" / "dirt.json").write_text(json.dumps(world.dirt, indent=1, sort_keys=True,
                                                        default=int) + "\n")
    vocab = {"categories": {c: s["aspects"] for c, s in V.CATEGORIES.items()},
             "shared_aspects": V.SHARED_ASPECTS, "aspects": aspect_vocabulary(),
             "colours": list(V.COLOURS), "patterns": V.PATTERNS, "opinions": V.OPINIONS,
             "config": {k: v for k, v in asdict(world.config).items()}}
    (out / "vocabulary.json").write_text(json.dumps(vocab, indent=1, sort_keys=True) + "\n")
    (out / "DATACARD.md").write_text(_datacard(world))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256")
    manifest = {str(p.relative_to(out)): sha256_file(p) for p in files}
    (out / "MANIFEST.sha256").write_text(
        "".join(f"{h}  {name}\n" for name, h in manifest.items()))
    return manifest


def _datacard(world: World) -> str:
    cfg, t, d = world.config, world.tables, world.dirt
    ev = t["events"]
    counts = ev["event_type"].value_counts().reindex(["view", "click", "add_to_cart",
                                                      "purchase"])
    density = ev.drop_duplicates(["user_id", "item_id"]).shape[0] / (cfg.n_users * cfg.n_items)
    lines = [
        "# ShopWorld data card", "",
        f"A simulated online shop generated by `helpers.data.shopworld` with seed {cfg.seed}: "
        f"{cfg.n_users} users, {cfg.n_items} items in {len(V.CATEGORIES)} categories, "
        f"{len(ev)} clean events over {WINDOW_DAYS} days from 2025-01-01 (UTC epoch seconds).",
        "Regenerate byte for byte with `python -m helpers.data.shopworld --out datasets/shopworld` "
        "(same seed and pinned package versions). Licence: CC0 (synthetic).", "",
        "## Files", "",
        "| file | rows | what |", "|---|---:|---|",
        f"| catalogue.parquet | {len(t['catalogue'])} | item_id, category, brand, title, "
        "description, price, launch_ts — what a shop shows |",
        f"| users.parquet | {len(t['users'])} | user_id, age_band, region, signup_ts |",
        f"| events.parquet | {len(ev)} | clean log: user_id, session_id, item_id, event_type, "
        "timestamp, rating (purchases only, 1–5) |",
        f"| reviews.parquet | {len(t['reviews'])} | one row per review sentence: review_id, "
        "user_id, item_id, rating, aspect, opinion, sentence, polarity (+1/0/-1) |",
        f"| images.parquet | {len(world.images)} | item_id, png (64×64) |",
        f"| truth/items.parquet | {len(t['item_truth'])} | colour, pattern, colour_in_text, "
        "buzz (latent popularity), q_<aspect> quality 1–5 (0 = not applicable) |",
        f"| truth/users.parquet | {len(t['user_truth'])} | aff_<category>, aspect_1..3 with "
        "weight_1..3, fav_colour/colour_taste, fav_pattern/pattern_taste, price_sensitivity, "
        "fav_brand/brand_loyalty, activity |",
        f"| truth/reasons.parquet | {len(t['reasons'])} | for every purchase: the true "
        "drivers of the choice and a reference reason sentence |",
        "| raw/catalogue.csv, raw/events.csv.gz | | the same data with dirt injected (below) |",
        "| truth/dirt.json | | exactly which rows each kind of dirt touched |",
        "| vocabulary.json | | categories, aspects, colours, patterns, opinion words, config |",
        "", "## Behaviour", "",
        "Each user has 1 + Poisson(activity) sessions (activity log-normal: a long tail). A "
        "session picks a category by the user's affinities, samples "
        f"{cfg.candidates_per_session} launched items of it (more often popular ones), and "
        f"plus up to {NEW_ARRIVALS} of its new arrivals (launched in the last 30 days), and "
        "ranks them by utility = Σ_aspects 2.5·w·(quality−3)/2 + colour/pattern taste + brand "
        "loyalty − price_sensitivity·log(price/category median) + 0.6·buzz + Gumbel noise. "
        "The top few are viewed; clicks, carts and purchases follow with probabilities rising "
        "in utility. Ratings (purchases) = round(3.6 + 1.8·satisfaction + noise), clipped 1–5.",
        "",
        f"Events: {counts.to_dict()}; user–item density {density:.4f}.", "",
        "## Text and images", "",
        "Titles and descriptions come from a grammar: the item's strongest aspects in "
        "marketing words (premium/reliable/basic by quality). Colour and pattern are stated in "
        f"the text for about {cfg.colour_in_text_rate:.0%} of items only; every image shows "
        "them, so some of what users like is visible only in the picture.", "",
        f"Reviews ({cfg.review_rate:.0%} of purchases) talk about the aspects the reviewer weighs, with "
        "opinion words that follow the item's true quality (5 excellent … 1 terrible; polarity "
        "+1 for 4–5, 0 for 3, −1 for 1–2), sometimes plus one other aspect.", "",
        "## Dirt (raw/ only) and its truth", "",
        "| kind | rate | affected |", "|---|---:|---:|",
    ]
    if d:
        affected = {
            "duplicate_events": d["duplicate_events"],
            "event_type_case": d["event_type_reformatted"],
            "out_of_order_rows": d["out_of_order_rows"],
            "orphan_events": d["orphan_events"],
            "bot_users": f"{len(d['bot_user_ids'])} users, {d['bot_events']} events",
            "brand_category_format": len(d["reformatted_items"]),
            "duplicate_catalogue_rows": len(d["duplicated_items"]),
            "price_in_cents": len(d["price_in_cents_items"]),
            "missing_price": len(d["missing_price_items"]),
            "missing_description": len(d["missing_description_items"]),
        }
        lines += [f"| {k} | {d['rates'][k]:.3f} | {v} |" for k, v in affected.items()]
    lines += ["", "Everything but missing prices and descriptions is reversible: cleaning the "
              "raw files recovers events.parquet exactly, and the catalogue up to the imputed "
              "cells, which truth/dirt.json lists.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m helpers.data.shopworld --users N --items M --seed S OUT``);
    returns the exit status.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.data.shopworld",
                                     description="Generate a ShopWorld and write it to a folder.")
    parser.add_argument("--users", type=int, default=WorldConfig.n_users)
    parser.add_argument("--items", type=int, default=WorldConfig.n_items)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--colour-taste-max", type=float, default=WorldConfig.colour_taste_max,
                        help="users' colour taste ~ U(0, this); chapter 06 raises it")
    parser.add_argument("--no-images", action="store_true")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    world = generate(WorldConfig(n_users=args.users, n_items=args.items, seed=args.seed,
                                 colour_taste_max=args.colour_taste_max,
                                 images=not args.no_images))
    t1 = time.perf_counter()
    manifest = write_world(world, args.out)
    t2 = time.perf_counter()
    size = sum((Path(args.out) / f).stat().st_size for f in manifest)
    print(f"generated in {t1 - t0:.1f} s ({world.timings}), written in {t2 - t1:.1f} s: "
          f"{len(world.tables['events'])} events, {len(manifest)} files, {size / 2**20:.1f} MiB "
          f"in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
