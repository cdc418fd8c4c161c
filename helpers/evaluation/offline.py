"""Chapter 07's evaluation toolkit: one harness for every recommender, uncertainty on every
number, what accuracy leaves out, and how true a reason is.

    per_user = evaluation.per_user_metrics(recs, test, k=10)      # one row per test user
    table = evaluation.compare({"EASE": a, "BPR": b}, "ndcg@10", baseline="BPR")

* **Per-user metrics** (:func:`per_user_metrics`): HR, NDCG, MRR, recall and precision at k of
  each test user, from a recommender's top-k DataFrame (``model.recommend``). Every model is then
  scored on the same users, so two models can be compared user by user (a *paired* test).
* **Uncertainty**: :func:`paired_bootstrap` (an interval for a mean difference),
  :func:`permutation_test` (a p-value for it, by flipping the sign of each user's difference),
  :func:`holm` (many comparisons at once), :func:`compare` (the table with all of them),
  :func:`ratio_ci` and :func:`paired_ratio_diff` (a ratio of sums, such as a precision pooled
  over reasons, and the paired test of two). ``metrics.bootstrap_ci`` gives a single mean's.
* **Beyond accuracy**: :func:`intra_list_diversity`, :func:`novelty`,
  :func:`popularity_lift`, :func:`gini`, :func:`calibration_kl` (Steck, 2018) on
  :func:`category_mix` distributions, and :func:`calibration` for every user at once.
* **Reasons against the truth**: :func:`driver_scores` and :func:`reason_prf` — the articles'
  "reason accuracy, recall and F1" defined: the precision of a reason's claims about *why*
  against the true drivers of the purchase, and the share of true drivers it names.

The text scores that need a model (BERTScore, an LM's likelihood, an LM judge) live in
:mod:`helpers.evaluation.textscore`; the simulated user study and A/B test in :mod:`helpers.evaluation.simulate`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from helpers.core.checks import (
    DataError,
    require_columns,
    require_count,
    require_level,
    require_values,
)
from helpers.metrics.ranking import hits_at_k, ndcg_rows, ranked_lists, top_matrix
from helpers.metrics.stats import bootstrap_ci, holm, paired_bootstrap, permutation_test
from helpers.reasons.claims import FALLBACK_PREFIX, extract_claims
from helpers.reasons.planner import driver_of, drivers_of

__all__ = ["per_user_metrics", "paired_bootstrap", "permutation_test", "holm", "compare",
           "intra_list_diversity", "novelty", "popularity_lift", "gini",
           "category_mix", "category_mixes", "calibration_kl", "calibration", "driver_scores", "reason_prf"]


# ----------------------------------------------------------------------------- per-user metrics
def per_user_metrics(recommendations: pd.DataFrame, test: pd.DataFrame, k: int = 10, *,
                     col_user: str = "user_id", col_item: str = "item_id",
                     col_rank: str = "rank") -> pd.DataFrame:
    """Each test user's ranking metrics at ``k`` (binary relevance; the conventions of
    :mod:`helpers.metrics.ranking`): columns ``hr@k``, ``ndcg@k``, ``mrr@k``, ``recall@k``,
    ``precision@k``, one row per user of ``test``, indexed by user ID (sorted).

    ``recommendations``: (user, item, rank 1..k) rows, e.g. ``model.recommend(users, k)``.
    A test user without recommendations scores 0 (a miss, never dropped). Their means equal
    :func:`helpers.metrics.ranking.evaluate_ranking`'s.

    >>> recs = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [7, 8, 9, 7], "rank": [1, 2, 1, 2]})
    >>> test = pd.DataFrame({"user_id": [1, 2], "item_id": [8, 5]})
    >>> per_user_metrics(recs, test, k=2)[["hr@2", "mrr@2"]].to_dict("index")
    {1: {'hr@2': 1.0, 'mrr@2': 0.5}, 2: {'hr@2': 0.0, 'mrr@2': 0.0}}
    """
    require_count("k", k)
    require_columns(test, [col_user, col_item], "the test data")
    if len(test) == 0:
        raise DataError("the test data is empty: nothing to score.")
    users = np.sort(test[col_user].unique())
    top = top_matrix(ranked_lists(recommendations, k, col_user=col_user, col_item=col_item,
                                  col_rank=col_rank), users, k)
    relevant = test.groupby(col_user)[col_item].apply(set).reindex(users).tolist()
    hits, n_rel = hits_at_k(top, relevant, k)
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    return pd.DataFrame({f"hr@{k}": hits.any(1).astype(float),
                         f"ndcg@{k}": ndcg_rows(hits, n_rel),
                         f"mrr@{k}": 1.0 / first,
                         f"recall@{k}": hits.sum(1) / n_rel,
                         f"precision@{k}": hits.sum(1) / k},
                        index=pd.Index(users, name=col_user))


# ----------------------------------------------------------------------------- comparison table
def compare(per_user: dict, metric: str, baseline: str, *, n_boot: int = 2000,
            n_perm: int = 10_000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """A results table with error bars: for every model its mean ``metric`` with a bootstrap
    interval, and against ``baseline`` the paired difference, its interval, a permutation
    p-value and the Holm-adjusted p over all the comparisons.

    ``per_user``: model name -> DataFrame of :func:`per_user_metrics` (same test users).
    """
    if not isinstance(per_user, dict) or len(per_user) < 2:
        raise DataError("per_user must map at least two model names to their per-user metrics.")
    if baseline not in per_user:
        raise DataError(f"baseline {baseline!r} is not one of the models: {list(per_user)}.")
    cols = {}
    for name, df in per_user.items():
        if not isinstance(df, pd.DataFrame) or metric not in df:
            raise DataError(f"{name!r}: expected a per_user_metrics DataFrame with a "
                            f"{metric!r} column.")
        cols[name] = df[metric]
    rows = {}
    base = cols[baseline]
    for name, s in cols.items():
        lo, hi = bootstrap_ci(require_values(s, name), n_boot=n_boot, level=level, seed=seed)
        row = {metric: float(s.mean()), "lo": lo, "hi": hi}
        if name != baseline:
            d = paired_bootstrap(s, base, n_boot=n_boot, level=level, seed=seed)
            row.update({"diff": d["diff"], "diff lo": d["lo"], "diff hi": d["hi"],
                        "p": permutation_test(s, base, n_perm=n_perm, seed=seed)})
        rows[name] = row
    table = pd.DataFrame(rows).T
    tested = table["p"].notna()
    table["p (Holm)"] = np.nan
    table.loc[tested, "p (Holm)"] = holm(table.loc[tested, "p"].to_numpy())
    return table


# ----------------------------------------------------------------------------- beyond accuracy
def _lists(recommendations, col_user, col_item, col_rank) -> pd.Series:
    if isinstance(recommendations, pd.DataFrame) and len(recommendations) == 0:
        raise DataError("the recommendations are empty.")
    return ranked_lists(recommendations, col_user=col_user, col_item=col_item, col_rank=col_rank)


def intra_list_diversity(recommendations: pd.DataFrame, item_vectors: pd.DataFrame, *,
                         col_user: str = "user_id", col_item: str = "item_id",
                         col_rank: str = "rank") -> pd.Series:
    """Each user's intra-list diversity: the mean cosine *distance* (1 - cos) over all pairs of
    items in their list (Ziegler et al., 2005). ``item_vectors``: one row per item ID (index),
    e.g. text embeddings or one-hot categories. Lists shorter than 2 are an error."""
    if not isinstance(item_vectors, pd.DataFrame):
        raise DataError("item_vectors must be a DataFrame indexed by item ID (one row each).")
    if item_vectors.index.has_duplicates:
        raise DataError("item_vectors has duplicate item IDs.")
    v = item_vectors.to_numpy(dtype=np.float64)
    if not np.isfinite(v).all():
        raise DataError("item_vectors holds NaN or inf.")
    norms = np.linalg.norm(v, axis=1)
    if (norms == 0).any():
        raise DataError("some item vectors are all zero: their cosine is undefined.")
    v = v / norms[:, None]
    lists = _lists(recommendations, col_user, col_item, col_rank)
    out = {}
    for u, items in lists.items():
        if len(items) < 2:
            raise DataError(f"user {u} has a list of {len(items)} item(s); diversity needs >= 2.")
        rows = item_vectors.index.get_indexer(items)
        if (rows < 0).any():
            raise DataError(f"items {[i for i, r in zip(items, rows) if r < 0][:3]} have no "
                            "vector in item_vectors.")
        sim = v[rows] @ v[rows].T
        n = len(items)
        out[u] = float((n * (n - 1) - (sim.sum() - np.trace(sim))) / (n * (n - 1)))
    return pd.Series(out, name="ILD").rename_axis(col_user)


def _popularity(train: pd.DataFrame, col_user, col_item) -> pd.Series:
    require_columns(train, [col_user, col_item], "the training data")
    if len(train) == 0:
        raise DataError("the training data is empty.")
    # the share of users who interacted with each item
    return (train.drop_duplicates([col_user, col_item]).groupby(col_item).size()
            / train[col_user].nunique())


def novelty(recommendations: pd.DataFrame, train: pd.DataFrame, *, col_user: str = "user_id",
            col_item: str = "item_id", col_rank: str = "rank") -> pd.Series:
    """Each user's mean self-information ``-log2 p(i)`` of their recommended items, where p(i)
    is the share of training users who interacted with item i (Zhou et al., 2010). An item no
    training user touched gets p = 1 / (n_users + 1): new, not infinitely novel."""
    pop = _popularity(train, col_user, col_item)
    floor = 1.0 / (train[col_user].nunique() + 1)
    lists = _lists(recommendations, col_user, col_item, col_rank)
    return pd.Series({u: float(np.mean(-np.log2(pop.reindex(items).fillna(floor).to_numpy())))
                      for u, items in lists.items()}, name="novelty").rename_axis(col_user)


def popularity_lift(recommendations: pd.DataFrame, train: pd.DataFrame, *,
                    col_user: str = "user_id", col_item: str = "item_id",
                    col_rank: str = "rank") -> float:
    """Popularity bias: the mean popularity of recommended items (average recommendation
    popularity, Abdollahpouri et al.) divided by the mean popularity of the items users
    interacted with in ``train``. 1 = lists as popular as what people do; above 1 = the
    recommender pushes the head."""
    pop = _popularity(train, col_user, col_item)
    lists = _lists(recommendations, col_user, col_item, col_rank)
    arp = np.mean([pop.reindex(items).fillna(0).mean() for items in lists])
    seen = train.drop_duplicates([col_user, col_item])
    profile = seen[col_item].map(pop).groupby(seen[col_user]).mean().mean()
    return float(arp / profile)


def gini(counts) -> float:
    """Gini coefficient of how often each catalogue item is recommended (include the zeros):
    0 = every item equally often, near 1 = a few items take every slot."""
    c = np.sort(require_values(counts, "counts"))
    if (c < 0).any() or c.sum() == 0:
        raise DataError("counts must be >= 0 with a positive sum.")
    n = len(c)
    return float((2 * np.arange(1, n + 1) - n - 1) @ c / (n * c.sum()))


def category_mix(items, item_category: pd.Series, categories, weights=None) -> np.ndarray:
    """The distribution over ``categories`` of ``items`` (raw IDs), each weighted by
    ``weights`` (default 1): the p(c|u) or q(c|u) of :func:`calibration_kl`."""
    cats = item_category.reindex(list(items))
    if cats.isna().any():
        raise DataError(f"items {list(cats.index[cats.isna()][:3])} have no category.")
    w = np.ones(len(cats)) if weights is None else require_values(weights, "weights")
    mix = pd.Series(w, index=cats.to_numpy()).groupby(level=0).sum()
    mix = mix.reindex(list(categories), fill_value=0.0).to_numpy()
    if mix.sum() == 0:
        raise DataError("no items to take a category mix of.")
    return mix / mix.sum()


def _calibration_kl(p, q, alpha=0.01):
    """Chapter 07's exercise 3, line for line (tests/test_mirror.py keeps them the same)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    q_t = (1 - alpha) * q + alpha * p
    on = p > 0
    return float(np.sum(p[on] * np.log(p[on] / q_t[on])))


def calibration_kl(p, q, alpha: float = 0.01) -> float:
    """Miscalibration of a list (Steck, 2018): ``KL(p || q~) = sum_c p(c) log(p(c) / q~(c))``
    with ``q~ = (1 - alpha) q + alpha p``, where p is the user's category mix (history) and q
    the list's. The small ``alpha`` keeps the KL finite when the list misses a category the user
    buys. Returns a float >= 0; 0 = the list mirrors the user's tastes in proportion. A
    :class:`DataError` when p or q is not a distribution over the same categories, or when
    ``alpha = 0`` leaves the KL infinite."""
    p, q = require_values(p, "p"), require_values(q, "q")
    if p.shape != q.shape:
        raise DataError(f"p and q must cover the same categories, got {len(p)} and {len(q)}.")
    for name, x in (("p", p), ("q", q)):
        if (x < 0).any() or not math.isclose(x.sum(), 1.0, abs_tol=1e-6):
            raise DataError(f"{name} must be a distribution (>= 0, summing to 1); got sum "
                            f"{x.sum():.4f}. Use category_mix(...).")
    if not 0 <= alpha < 1:
        raise DataError(f"alpha must be in [0, 1), got {alpha!r}.")
    if alpha == 0 and (q[p > 0] == 0).any():
        raise DataError("the list misses a category the user has (KL is infinite): use "
                        "alpha > 0.")
    return _calibration_kl(p, q, alpha)


# ----------------------------------------------------------------------------- reasons
def driver_scores(generated, drivers, lex) -> pd.DataFrame:
    """How well each reason says *why*, against the purchase's true drivers (one row per pair):

    * ``named`` — the drivers the reason's claims name (an aspect, colour, pattern, brand,
      price, or popularity: ``claims.driver_of``);
    * ``correct`` — how many of them are true drivers; ``n_true`` — how many true drivers;
    * the seed's *reason accuracy* is then sum(correct) / sum(named) (precision), *recall*
      sum(correct) / sum(n_true), F1 their harmonic mean (:func:`ratio_ci` for intervals).

    ``generated``: reasons (strings); ``drivers``: the pairs' ``drivers`` strings (as in
    chapter 05's tables); ``lex``: the world's lexicon."""

    gen, drv = list(generated), list(drivers)
    if len(gen) != len(drv):
        raise DataError(f"{len(gen)} reasons for {len(drv)} pairs: one reason per pair.")
    if not gen:
        raise DataError("no reasons to score.")
    bad = [type(g).__name__ for g in gen if not isinstance(g, str)]
    if bad:
        raise DataError(f"reasons must be strings, got {bad[0]}.")
    rows = []
    for g, d in zip(gen, drv):
        named = {driver_of(c) for c in extract_claims(g.removeprefix(FALLBACK_PREFIX), lex)}
        true = drivers_of(d)
        rows.append({"named": len(named), "correct": len(named & true), "n_true": len(true)})
    return pd.DataFrame(rows)


def reason_prf(scores: pd.DataFrame, n_boot: int = 2000, level: float = 0.95,
               seed: int = 0) -> dict:
    """The seed's "reason accuracy / recall / F1", pooled over pairs, each with a bootstrap
    interval (pairs resampled; F1 recomputed in every resample): ``scores`` is
    :func:`driver_scores`'s table. Returns precision, recall, F1 and ``<name> lo/hi``."""
    require_columns(scores, ["named", "correct", "n_true"], "the driver scores")
    if len(scores) == 0:
        raise DataError("no scored reasons.")
    require_count("n_boot", n_boot)
    require_level(level)
    c, n, t = (scores[k].to_numpy(np.float64) for k in ("correct", "named", "n_true"))
    if n.sum() == 0:
        raise DataError("no reason names any driver: precision is undefined.")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(c), size=(n_boot, len(c)))
    cs, ns, ts = c[idx].sum(1), n[idx].sum(1), t[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_b, r_b = cs / ns, cs / ts
        f_b = 2 * p_b * r_b / (p_b + r_b)
    p, r = c.sum() / n.sum(), c.sum() / t.sum()
    out = {"precision": p, "recall": r, "F1": 2 * p * r / (p + r) if p + r else 0.0}
    q = [(1 - level) / 2, (1 + level) / 2]
    for name, b in (("precision", p_b), ("recall", r_b), ("F1", f_b)):
        b = np.nan_to_num(b[np.isfinite(p_b)], nan=0.0)
        out[f"{name} lo"], out[f"{name} hi"] = (float(v) for v in np.quantile(b, q))
    return {k: float(v) for k, v in out.items()}


def category_mixes(interactions: pd.DataFrame, item_category: pd.Series, *,
                   col_user: str = "user_id", col_item: str = "item_id",
                   what: str = "interactions") -> pd.DataFrame:
    """Every user's category distribution (users x the sorted categories of ``item_category``)
    over the distinct items of ``interactions``: a (user, item) pair counts once, however many
    events it has. The p(c|u) of :func:`calibration` and of ``rerank.calibrated``."""
    require_columns(interactions, [col_user, col_item], f"the {what}")
    missing = pd.Index(interactions[col_item].unique()).difference(item_category.index)
    if len(missing):
        raise DataError(f"{len(missing)} items of the {what} have no category (e.g. "
                        f"{list(missing[:3])}).")
    pairs = interactions.drop_duplicates([col_user, col_item])
    c = pd.crosstab(pairs[col_user].to_numpy(), item_category.reindex(pairs[col_item]).to_numpy())
    c = c.reindex(columns=sorted(item_category.unique()), fill_value=0)
    return c.div(c.sum(axis=1), axis=0)


def calibration(recommendations: pd.DataFrame, history: pd.DataFrame, item_category: pd.Series,
                alpha: float = 0.01, *, col_user: str = "user_id", col_item: str = "item_id",
                col_rank: str = "rank") -> pd.Series:
    """Each user's :func:`calibration_kl` between the category mix of their ``history``
    (interactions, each counted once) and that of their list; users with a list but no history
    are an error (their p is undefined). The vectorised form of calling
    :func:`calibration_kl` (same formula) on :func:`category_mix` user by user."""
    _lists(recommendations, col_user, col_item, col_rank)          # validates the lists
    if not 0 <= alpha < 1:
        raise DataError(f"alpha must be in [0, 1), got {alpha!r}.")
    q = category_mixes(recommendations, item_category, col_user=col_user, col_item=col_item,
                       what="recommendations")
    p = category_mixes(history, item_category, col_user=col_user, col_item=col_item,
                       what="history")
    no_history = q.index.difference(p.index)
    if len(no_history):
        raise DataError(f"{len(no_history)} users have a list but no history (e.g. "
                        f"{list(no_history[:3])}): calibration needs their category mix.")
    p = p.reindex(q.index).to_numpy()
    q_t = (1 - alpha) * q.to_numpy() + alpha * p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q_t), 0.0)
    return pd.Series(terms.sum(1), index=q.index, name="calibration KL")
