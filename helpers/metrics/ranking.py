"""Metrics for recommendations: rating error and top-k ranking quality. (The reasons' metrics are
in :mod:`helpers.metrics.text`, intervals in :mod:`helpers.metrics.stats`.)

Rating metrics take aligned arrays. Ranking metrics take each user's top-k list and the set of
items that user actually interacted with in the test data (binary relevance):

    top = rank_from_scores(model.scores(user_idx), k=10)       # (n_users, 10) item indices
    ranking_metrics(top, relevant, k=10, n_items=n_items)        # dict of means

(``model.recommend`` returns the same lists as a DataFrame; :func:`evaluate_ranking` scores
those.)

>>> top = rank_from_scores(np.array([[0.1, 0.9, 0.5], [0.8, 0.2, 0.3]]), k=2)
>>> top.tolist()
[[1, 2], [0, 2]]
>>> round(ndcg_at_k(top, [{2}, {0}], k=2), 3)      # user 0 hits at rank 2, user 1 at rank 1
0.815

Conventions (state them when you report numbers):
- a user with no relevant test items is left out of the averages (their metric is undefined);
- NDCG uses binary gains and log2 discounts, ideal DCG from min(|relevant|, k) hits;
- recall divides by |relevant| (not min(|relevant|, k));
- ties in scores are broken towards the lower item index (``rank_from_scores``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.core.checks import DataError, require_columns, require_count

__all__ = ["rmse", "mae", "rank_from_scores", "hits_at_k", "precision_at_k", "recall_at_k",
           "ndcg_at_k", "ndcg_per_user", "mrr_at_k", "hit_rate_at_k", "catalogue_coverage",
           "ranking_metrics",
           "evaluate_ranking", "ranked_lists", "top_matrix", "sampled_metrics", "ndcg_rows"]


def _aligned(y_true, y_pred):
    try:
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("y_true and y_pred must hold numbers (ratings); convert them first, e.g. "
                        "pd.to_numeric(...).") from None
    if t.shape != p.shape or t.ndim != 1:
        raise DataError(f"y_true and y_pred must be 1-D and the same length, got shapes "
                        f"{t.shape} and {p.shape}.")
    if t.size == 0:
        raise DataError("No ratings to score: y_true is empty.")
    if np.isnan(t).any() or np.isnan(p).any():
        raise DataError("NaN in y_true or y_pred: a model predicted NaN, or test data has "
                        "missing ratings. Fix that first; metrics never skip rows silently.")
    if np.isinf(t).any() or np.isinf(p).any():
        raise DataError("inf in y_true or y_pred: a model diverged or a rating is corrupt. Fix "
                        "that first; an infinite error says nothing about the model.")
    return t, p


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    t, p = _aligned(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    t, p = _aligned(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rank_from_scores(scores, k: int, exclude=None) -> np.ndarray:
    """Top-``k`` item indices per row of ``scores`` (``(n_users, n_items)``), best first.

    ``exclude``: optional boolean mask or scipy sparse matrix of the same shape; excluded
    items (e.g. seen in training) are never returned. Ties go to the lower item index.
    ``k`` larger than the number of items is clipped to it.
    """
    s = _score_matrix(scores)
    require_count("k", k)
    excluded = np.zeros(s.shape, dtype=bool)
    if exclude is not None:
        mask = exclude.toarray() if hasattr(exclude, "toarray") else np.asarray(exclude)
        if mask.shape != s.shape:
            raise DataError(f"exclude has shape {mask.shape} but scores {s.shape}: the mask "
                            "must have one entry per (user, item) score, e.g. model.seen[idx].")
        excluded = mask.astype(bool)
        s[excluded] = -np.inf
    k = min(k, s.shape[1])
    # stable sort on -score keeps the lower index first among equal scores
    part = np.argsort(-s, axis=1, kind="stable")[:, :k]
    # a row with fewer than k items left is padded with -1, never with an excluded item
    part[np.take_along_axis(excluded, part, 1)] = -1
    return part


def _score_matrix(scores) -> np.ndarray:
    try:
        s = np.array(scores, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise DataError("scores must be a numeric (users x items) array, got "
                        f"{type(scores).__name__}.") from None
    if s.ndim != 2:
        raise DataError(f"scores must be 2-D (users x items), got shape {s.shape}")
    if np.isnan(s).any():
        raise DataError(f"{int(np.isnan(s).sum())} scores are NaN (e.g. row "
                        f"{int(np.argwhere(np.isnan(s))[0][0])}): a model produced NaN. Fix the "
                        "model; NaN cannot be ranked.")
    return s


def hits_at_k(top: np.ndarray, relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, n_relevant)``: ``hits[u, r]`` is True when the item at rank ``r`` of user
    ``u``'s list is relevant; ``n_relevant[u] = |relevant[u]|``.

    ``relevant`` is a sequence of sets (one per row of ``top``).
    """
    require_count("k", k)
    top = np.asarray(top)
    if top.ndim != 2:
        raise DataError(f"top must be 2-D (users x ranks), got shape {top.shape}")
    if len(relevant) != len(top):
        raise DataError(f"relevant has {len(relevant)} entries but top has {len(top)} rows: "
                        "one set of relevant items per user, in the same order.")
    odd = [r for r in relevant if not isinstance(r, (set, frozenset, list, tuple))]
    if odd:
        raise DataError("relevant must hold one collection (a set) of relevant item indices per "
                        f"user, e.g. [{{3, 7}}, {{1}}]; got {type(odd[0]).__name__}.")
    relevant = [set(rel) for rel in relevant]
    top = top[:, :k]
    hits = np.array([[item in rel for item in row] for row, rel in zip(top, relevant)],
                    dtype=bool).reshape(top.shape)
    n_rel = np.array([len(rel) for rel in relevant])
    return hits, n_rel


def _mean_over_users(values: np.ndarray, n_rel: np.ndarray) -> float:
    ok = n_rel > 0
    if not ok.any():
        raise DataError("No user has any relevant item in the test data; nothing to score.")
    return float(values[ok].mean())


def precision_at_k(top, relevant, k: int) -> float:
    """Share of the top-k that is relevant, averaged over users with relevant items."""
    hits, n_rel = hits_at_k(top, relevant, k)
    return _mean_over_users(hits.sum(1) / k, n_rel)


def recall_at_k(top, relevant, k: int) -> float:
    """Share of a user's relevant items found in their top-k, averaged over users."""
    hits, n_rel = hits_at_k(top, relevant, k)
    return _mean_over_users(hits.sum(1) / np.maximum(n_rel, 1), n_rel)


def _dcg(hits: np.ndarray) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    return (hits * discounts).sum(1)


def ndcg_per_user(top, relevant, k: int) -> np.ndarray:
    """Each user's NDCG@k (see :func:`ndcg_at_k`), NaN for a user with no relevant item: the
    per-user values a paired bootstrap between two models resamples."""
    return ndcg_rows(*hits_at_k(top, relevant, k))


def ndcg_rows(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    """NDCG of each row of ``hits`` (as from :func:`hits_at_k`), NaN where ``n_rel`` is 0."""
    ideal = np.zeros_like(hits, dtype=float)
    for u, n in enumerate(np.minimum(n_rel, hits.shape[1])):
        ideal[u, :n] = 1
    idcg = _dcg(ideal)
    return np.where(n_rel > 0, _dcg(hits) / np.where(idcg > 0, idcg, 1), np.nan)


def ndcg_at_k(top, relevant, k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance.

    ``DCG = Σ_r rel_r / log2(r + 1)`` over ranks r = 1..k; divided by the DCG of a perfect list.
    """
    values = ndcg_per_user(top, relevant, k)
    return _mean_over_users(np.nan_to_num(values), np.isfinite(values).astype(int))


def mrr_at_k(top, relevant, k: int) -> float:
    """Mean reciprocal rank of the first relevant item in the top-k (0 if none)."""
    hits, n_rel = hits_at_k(top, relevant, k)
    first = np.where(hits.any(1), hits.argmax(1) + 1, np.inf)
    return _mean_over_users(1.0 / first, n_rel)


def hit_rate_at_k(top, relevant, k: int) -> float:
    """Share of users with at least one relevant item in their top-k (HR@k)."""
    hits, n_rel = hits_at_k(top, relevant, k)
    return _mean_over_users(hits.any(1).astype(float), n_rel)


def catalogue_coverage(top, n_items: int) -> float:
    """Share of the catalogue that appears in anyone's top-k list."""
    require_count("n_items", n_items)
    top = np.asarray(top)
    return len(np.unique(top[top >= 0])) / n_items  # -1 pads a short list


def ranking_metrics(top, relevant, k: int, n_items: int | None = None) -> dict[str, float]:
    """Precision, recall, NDCG, MRR and hit rate at k (and coverage if ``n_items`` given)."""
    out = {f"precision@{k}": precision_at_k(top, relevant, k),
           f"recall@{k}": recall_at_k(top, relevant, k),
           f"ndcg@{k}": ndcg_at_k(top, relevant, k),
           f"mrr@{k}": mrr_at_k(top, relevant, k),
           f"hr@{k}": hit_rate_at_k(top, relevant, k)}
    if n_items is not None:
        out["coverage"] = catalogue_coverage(np.asarray(top)[:, :k], n_items)
    return out


def evaluate_ranking(recommendations: pd.DataFrame, test: pd.DataFrame, k: int, *,
                     col_user: str = "user_id", col_item: str = "item_id",
                     col_rank: str = "rank", n_items: int | None = None) -> dict[str, float]:
    """Ranking metrics from DataFrames: ``recommendations`` (user, item, rank 1..k) and
    ``test`` (user, item) pairs. Users in ``test`` without recommendations count as misses."""
    require_columns(test, [col_user, col_item], "test")
    if len(test) == 0:
        raise DataError("test is empty")
    require_count("k", k)
    users = np.sort(test[col_user].unique())
    by_user = ranked_lists(recommendations, k, col_user=col_user, col_item=col_item,
                           col_rank=col_rank)
    top = top_matrix(by_user, users, k)
    relevant = test.groupby(col_user)[col_item].apply(set).reindex(users).tolist()
    result = ranking_metrics(top, relevant, k)
    if n_items is not None:
        result["coverage"] = by_user.explode().nunique() / n_items
    return result


def ranked_lists(recommendations: pd.DataFrame, k: int | None = None, *,
                 col_user: str = "user_id", col_item: str = "item_id",
                 col_rank: str = "rank") -> pd.Series:
    """Each user's recommended items in rank order (the first ``k``; all when None), as a
    Series of lists indexed by user ID (sorted). Refuses a list that repeats an item or a
    rank."""
    require_columns(recommendations, [col_user, col_item, col_rank], "recommendations")
    twice = recommendations.duplicated([col_user, col_item])
    if twice.any():
        raise DataError(f"{int(twice.sum())} recommendations repeat an item for the same user "
                        f"(e.g. rows {recommendations.index[twice][:5].tolist()}); a list holds "
                        "each item once. De-duplicate the recommender's output first.")
    if recommendations.duplicated([col_user, col_rank]).any():
        raise DataError("two recommendations of one user share a rank; ranks must be 1..k, "
                        "each once per user.")
    recs = recommendations if k is None else recommendations[recommendations[col_rank] <= k]
    return recs.sort_values([col_user, col_rank]).groupby(col_user, sort=True)[col_item] \
        .apply(list)


def top_matrix(by_user: pd.Series, users, k: int) -> np.ndarray:
    """``(len(users), k)`` array of each user's first ``k`` items (:func:`ranked_lists`), -1
    where a list is shorter or a user has none: the ``top`` the ranking metrics take."""
    top = np.full((len(users), k), -1, dtype=object)
    for row, u in enumerate(users):
        items = by_user.get(u, [])[:k]
        top[row, :len(items)] = items
    return top


def sampled_metrics(scores, test_items, k: int, n_negatives: int = 100, exclude=None,
                    seed: int = 0) -> dict[str, float]:
    """HR@k and NDCG@k of the *sampled* protocol: each user's single held-out item is ranked
    against ``n_negatives`` random items they never interacted with, not the whole catalogue.

    Common in papers, and misleading: with 100 negatives almost any model looks good and the
    order of models can change (Krichene & Rendle, 2020). Shown here to compare with full
    ranking. ``scores``: (n_users, n_items); ``test_items``: one item index per user.
    """
    s = _score_matrix(scores)
    test_items = np.asarray(test_items)
    require_count("k", k)
    require_count("n_negatives", n_negatives)
    if len(test_items) != len(s) or test_items.ndim != 1:
        raise DataError("scores must be (n_users, n_items) with one test item per user")
    if not np.issubdtype(test_items.dtype, np.integer) or test_items.min(initial=0) < 0 \
            or test_items.max(initial=0) >= s.shape[1]:
        raise DataError(f"test_items must be integer item indices in [0, {s.shape[1] - 1}]; got "
                        f"dtype {test_items.dtype}. Encode raw IDs with the model's item_map.")
    if np.isinf(s[np.arange(len(s)), test_items]).any():
        raise DataError("some test items have an infinite score (excluded from ranking?); a "
                        "held-out item must be rankable.")
    rng = np.random.default_rng(seed)
    mask = np.zeros_like(s, dtype=bool) if exclude is None else (
        exclude.toarray() if hasattr(exclude, "toarray") else np.asarray(exclude)).astype(bool)
    hits, gains = [], []
    for u in range(len(s)):
        allowed = np.flatnonzero(~mask[u])
        allowed = allowed[allowed != test_items[u]]
        if len(allowed) < n_negatives:
            raise DataError(f"user row {u} has only {len(allowed)} possible negatives")
        neg = rng.choice(allowed, size=n_negatives, replace=False)
        # rank of the test item among itself + negatives (ties count against it)
        rank = 1 + int((s[u, neg] >= s[u, test_items[u]]).sum())
        hits.append(rank <= k)
        gains.append(1 / np.log2(rank + 1) if rank <= k else 0.0)
    return {f"hr@{k}": float(np.mean(hits)), f"ndcg@{k}": float(np.mean(gains))}
