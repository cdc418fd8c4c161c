"""Simulated people (chapter 07): a user study and an online A/B test run on ShopWorld, whose
users' hidden preferences are known, so every assumption is written down and can be changed.

    pairs = simulate.read_reasons(reasons, users, items, world)       # what each reader learns
    stars = simulate.rate(pairs, simulate.Reader(), seed=0)            # 1..5 per (item, reason)
    out = simulate.ab_test(panel, simulate.Funnel(), simulate.Reader(), sessions=20, seed=0)

Nothing here is evidence about real people. A simulation answers "if people behaved like this,
what would we measure?": it shows how an offline metric, a judge and an online test can
disagree, and how a conclusion moves when an assumption moves (``sensitivity``).

The model, stated once:

* a shopper reads a reason and believes it; each claim about something they truly care about
  (an aspect among their three, their favourite colour, pattern or brand, price if they are
  price-sensitive: ``claims.user_truth_facts``) makes them likelier to click and to buy;
* whether they like the item itself is ShopWorld's own utility of the pair (the generator's
  ``utility_parts``, without its random noise);
* after buying, every claim is checked against the item's hidden truth: a false claim about
  something they care about leads to a return with a stated probability, and every false claim
  costs satisfaction.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from helpers.core.checks import DataError, require_columns, require_int
from helpers.data import shopworld as SW
from helpers.reasons.claims import FALLBACK_PREFIX, extract_claims, judge_claims

__all__ = ["true_utility", "read_reasons", "Reader", "rate", "Funnel", "ab_test",
           "arm_summary", "two_proportion_n"]


# ----------------------------------------------------------------------------- the truth
def true_utility(users, items, user_truth: pd.DataFrame, item_truth: pd.DataFrame,
                 catalogue: pd.DataFrame) -> np.ndarray:
    """ShopWorld's utility of each (user, item) pair, as its behaviour model computes it
    (aspects the user weighs x the item's quality, colour/pattern/brand matches, price,
    popularity), without the per-session noise. ``users``/``items``: raw IDs, same length;
    the three tables: ``data.load_shopworld("user_truth" / "item_truth" / "catalogue")``
    (the raw catalogue: the truth's prices and brands)."""
    users, items = np.asarray(users), np.asarray(items)
    if users.shape != items.shape or users.ndim != 1 or users.size == 0:
        raise DataError(f"users and items must be 1-D, non-empty and pair up; got shapes "
                        f"{users.shape} and {items.shape}.")
    require_columns(user_truth, ["user_id", "aspect_1", "weight_1"], "user_truth")
    require_columns(item_truth, ["item_id", "colour", "pattern", "buzz"], "item_truth")
    require_columns(catalogue, ["item_id", "category", "brand", "price"], "catalogue")
    ut = user_truth.set_index("user_id")
    it = item_truth.set_index("item_id").join(
        catalogue.set_index("item_id")[["category", "brand", "price"]], how="inner")
    for what, ids, index in (("user", users, ut.index), ("item", items, it.index)):
        missing = pd.Index(ids).difference(index)
        if len(missing):
            raise DataError(f"{len(missing)} {what} IDs are not in the truth tables (e.g. "
                            f"{list(missing[:3])}).")
    aspects = SW.aspect_vocabulary()
    weights = np.zeros((len(ut), len(aspects)))
    for r in (1, 2, 3):
        col = ut[f"aspect_{r}"].map({a: k for k, a in enumerate(aspects)}).to_numpy()
        weights[np.arange(len(ut)), col] = ut[f"weight_{r}"].to_numpy()
    quality = it[[SW.quality_column(a) for a in aspects]].to_numpy()
    u_idx, i_idx = ut.index.get_indexer(users), it.index.get_indexer(items)
    parts = SW.utility_parts(ut.reset_index(), weights, it.reset_index(), quality, u_idx, i_idx)
    return SW.utility(parts)


def read_reasons(reasons, users, items, lex, items_truth: dict, users_truth: dict
                 ) -> pd.DataFrame:
    """What each reader takes from a reason, judged against the hidden truth (one row per
    pair): ``claims``, ``cared`` (claims about something the user cares about, true or not:
    they believe them), ``cared_true``, ``false`` (claims false of the item) and
    ``cared_false``. ``None`` or ``""`` = no reason shown (all zeros)."""

    reasons, users, items = list(reasons), list(users), list(items)
    if not (len(reasons) == len(users) == len(items)):
        raise DataError(f"reasons, users and items must be the same length, got {len(reasons)}, "
                        f"{len(users)}, {len(items)}.")
    if not reasons:
        raise DataError("no reasons to read.")
    rows = []
    for r, u, i in zip(reasons, users, items):
        if r is not None and not isinstance(r, str):
            raise DataError(f"a reason must be a string or None, got {type(r).__name__}.")
        if int(i) not in items_truth or int(u) not in users_truth:
            raise DataError(f"pair (user {u}, item {i}) is not in the truth tables.")
        v = judge_claims(extract_claims(r.removeprefix(FALLBACK_PREFIX), lex),
                         items_truth[int(i)], users_truth[int(u)]) if r else []
        rows.append({"claims": len(v), "cared": sum(c for _, c in v),
                     "cared_true": sum(t and c for t, c in v),
                     "false": sum(not t for t, _ in v),
                     "cared_false": sum((not t) and c for t, c in v)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the user study
def _replace(assumptions, changes: dict):
    names = {f.name for f in fields(assumptions)}
    unknown = set(changes) - names
    if unknown:
        raise DataError(f"unknown {type(assumptions).__name__} assumptions {sorted(unknown)}; "
                        f"known: {sorted(names)}.")
    return dataclasses.replace(assumptions, **changes)


@dataclass(frozen=True)
class Reader:
    """How a simulated shopper rates an (item, reason) after using the item, 1..5 stars:

    ``base + like * tanh(utility) + per_cared * cared_true + per_false * false + noise``,
    rounded and clipped. Each coefficient is an assumption; :func:`rate` takes another."""

    base: float = 3.2          # an item shown with no reason, liked neither way
    like: float = 1.0          # how much liking the item itself moves the stars
    per_cared: float = 0.5     # each true claim about something the shopper cares about
    per_false: float = -1.5    # each claim that proved false after purchase
    noise_sd: float = 0.6      # everything else about a person's day

    def replace(self, **changes) -> "Reader":
        """A copy with some assumptions changed (an unknown name is an error)."""
        return _replace(self, changes)


def _utility_col(pairs: pd.DataFrame) -> np.ndarray:
    require_columns(pairs, ["utility", "cared", "cared_true", "false", "cared_false"],
                    "the read pairs (read_reasons + a 'utility' column)")
    u = pairs["utility"].to_numpy(dtype=np.float64)
    if not np.isfinite(u).all():
        raise DataError("utility holds NaN or inf.")
    return u


def rate(pairs: pd.DataFrame, reader: Reader | None = None, seed: int = 0) -> np.ndarray:
    """Stars 1..5 (integers) each simulated reader gives: ``pairs`` = :func:`read_reasons`'s
    table with a ``utility`` column (:func:`true_utility`)."""
    reader = reader or Reader()
    u = _utility_col(pairs)
    rng = np.random.default_rng(seed)
    raw = (reader.base + reader.like * np.tanh(u) + reader.per_cared * pairs["cared_true"]
           + reader.per_false * pairs["false"] + rng.normal(0, reader.noise_sd, len(u)))
    return np.clip(np.rint(raw), 1, 5).astype(int)


# ----------------------------------------------------------------------------- the A/B test
@dataclass(frozen=True)
class Funnel:
    """The simulated shop's funnel for one recommendation shown with one reason (logits, per
    unit of utility or per claim the shopper cares about), and what a false claim costs."""

    click: float = -2.0        # base logit of a click on a recommendation with no reason
    click_utility: float = 0.8
    click_cared: float = 0.4   # each claim about something the shopper cares about (believed)
    buy: float = -1.2          # base logit of a purchase after a click
    buy_utility: float = 1.0
    buy_cared: float = 0.3
    returns: float = 0.05      # chance a purchase goes back anyway
    return_false: float = 0.6  # chance it goes back when a claim the shopper cared about is false

    def replace(self, **changes) -> "Funnel":
        """A copy with some assumptions changed (an unknown name is an error)."""
        return _replace(self, changes)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ab_test(panel: pd.DataFrame, funnel: Funnel | None = None, reader: Reader | None = None, *,
            sessions: int = 20, seed: int = 0) -> pd.DataFrame:
    """Each panel user visits ``sessions`` times and is shown their recommendation with their
    arm's reason; returns one row per user (the unit of randomisation, so the unit of
    analysis): ``arm``, ``sessions``, ``clicks``, ``purchases``, ``returns``, ``kept`` and
    ``stars`` (the sum of the stars of their purchases, :func:`rate`).

    ``panel``: one row per user: ``user_id``, ``arm``, ``utility`` and the columns of
    :func:`read_reasons` for the (item, reason) they are shown."""
    funnel, reader = funnel or Funnel(), reader or Reader()
    require_columns(panel, ["user_id", "arm"], "the panel")
    if panel["user_id"].duplicated().any():
        raise DataError("the panel lists a user twice: one row (one arm) per user.")
    require_int("sessions", sessions, 1)
    u = _utility_col(panel)
    rng = np.random.default_rng(seed)
    n = len(panel)
    cared = panel["cared"].to_numpy()
    p_click = _sigmoid(funnel.click + funnel.click_utility * u + funnel.click_cared * cared)
    p_buy = _sigmoid(funnel.buy + funnel.buy_utility * u + funnel.buy_cared * cared)
    p_return = np.where(panel["cared_false"].to_numpy() > 0, funnel.return_false,
                        funnel.returns)
    clicks = rng.binomial(sessions, p_click)
    purchases = rng.binomial(clicks, p_buy)
    returns = rng.binomial(purchases, p_return)
    # every purchase is rated on its own: one row per purchase, one draw of noise each
    bought = np.repeat(np.arange(n), purchases)
    stars = np.zeros(n)
    if len(bought):
        np.add.at(stars, bought, rate(panel.iloc[bought], reader, seed=int(rng.integers(2**31))))
    return pd.DataFrame({"user_id": panel["user_id"].to_numpy(), "arm": panel["arm"].to_numpy(),
                         "sessions": sessions, "clicks": clicks, "purchases": purchases,
                         "returns": returns, "kept": purchases - returns, "stars": stars})


def arm_summary(outcomes: pd.DataFrame, control: str, *, n_boot: int = 2000,
                seed: int = 0) -> pd.DataFrame:
    """Per arm: CTR (clicks / sessions), conversion (purchases / sessions), return rate
    (returns / purchases), kept purchases per 100 sessions and mean stars per purchase, each
    pooled over the arm's users; and for every other arm the difference from ``control`` with a
    95 % bootstrap interval over *users* (each arm resampled on its own: different people)
    and a permutation p-value (arm labels shuffled across the two arms' users)."""
    require_columns(outcomes, ["arm", "sessions", "clicks", "purchases", "returns", "kept",
                               "stars"], "the A/B outcomes")
    if control not in set(outcomes["arm"]):
        raise DataError(f"control arm {control!r} is not among {sorted(set(outcomes['arm']))}.")
    ratios = {"CTR": ("clicks", "sessions"), "conversion": ("purchases", "sessions"),
              "return rate": ("returns", "purchases"), "kept / 100 sessions": ("kept", "sessions"),
              "stars": ("stars", "purchases")}
    scale = {"kept / 100 sessions": 100.0}

    def pooled(num, den):            # sum over the last axis: one ratio per row of resamples
        return num.sum(-1) / np.maximum(den.sum(-1), 1)

    rng = np.random.default_rng(seed)
    groups = {a: g for a, g in outcomes.groupby("arm", sort=False)}
    rows = {arm: {"users": len(g), **{name: scale.get(name, 1.0) * pooled(
                g[num].to_numpy(float), g[den].to_numpy(float))
                for name, (num, den) in ratios.items()}}
            for arm, g in groups.items()}
    ctrl = groups[control]
    for arm, g in groups.items():
        if arm == control:
            continue
        for name, (num, den) in ratios.items():
            s = scale.get(name, 1.0)
            a_num, a_den = g[num].to_numpy(float), g[den].to_numpy(float)
            c_num, c_den = ctrl[num].to_numpy(float), ctrl[den].to_numpy(float)
            ia = rng.integers(0, len(g), size=(n_boot, len(g)))
            ic = rng.integers(0, len(ctrl), size=(n_boot, len(ctrl)))
            diffs = s * (pooled(a_num[ia], a_den[ia]) - pooled(c_num[ic], c_den[ic]))
            lo, hi = np.quantile(diffs, [0.025, 0.975])
            observed = rows[arm][name] - rows[control][name]
            both_num = np.concatenate([a_num, c_num])
            both_den = np.concatenate([a_den, c_den])
            null = np.empty(n_boot)
            for b in range(n_boot):
                perm = rng.permutation(len(both_num))
                x, y = perm[:len(g)], perm[len(g):]
                null[b] = s * (pooled(both_num[x], both_den[x]) - pooled(both_num[y], both_den[y]))
            p = (np.sum(np.abs(null) >= abs(observed) - 1e-12) + 1) / (n_boot + 1)
            rows[arm].update({f"{name} diff": observed, f"{name} lo": lo, f"{name} hi": hi,
                              f"{name} p": p})
    return pd.DataFrame(rows).T


def two_proportion_n(p_control: float, p_treatment: float, alpha: float = 0.05,
                     power: float = 0.8) -> int:
    """Units per arm a two-sided two-proportion z-test needs to detect ``p_control`` ->
    ``p_treatment`` with the given ``power`` at level ``alpha`` (the normal approximation):
    ``n = (z_{1-a/2} sqrt(2 p(1-p)) + z_{power} sqrt(p1(1-p1) + p2(1-p2)))^2 / (p1 - p2)^2``
    with p the mean of the two. Compute it *before* the test: a test too small to see the effect
    you care about cannot tell "no effect" from "not enough data".

    >>> two_proportion_n(0.10, 0.12)          # a 2-point lift on a 10 % click rate
    3841
    """
    from scipy.stats import norm

    for name, v in (("p_control", p_control), ("p_treatment", p_treatment)):
        if not isinstance(v, (int, float)) or not 0 < v < 1:
            raise DataError(f"{name} must be a probability in (0, 1), got {v!r}.")
    if p_control == p_treatment:
        raise DataError("p_control and p_treatment are equal: no effect to detect.")
    for name, v in (("alpha", alpha), ("power", power)):
        if not isinstance(v, (int, float)) or not 0 < v < 1:
            raise DataError(f"{name} must be in (0, 1), got {v!r}.")
    p1, p2 = p_control, p_treatment
    p = (p1 + p2) / 2
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = (z_a * np.sqrt(2 * p * (1 - p)) + z_b * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 \
        / (p1 - p2) ** 2
    return int(np.ceil(n))
