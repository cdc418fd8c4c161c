"""Metrics for recommendations (rating error, top-k ranking quality) and, at the end, for the
reasons that explain them (BLEU, ROUGE, USR, FMR, FCR, DIV, faithfulness, hallucination).

Rating metrics take aligned arrays. Ranking metrics take each user's top-k list and the set of
items that user actually interacted with in the test data (binary relevance):

    top = model.recommend(users, k=10)                          # (n_users, 10) item indices
    ranking_metrics(top, relevant, k=10, n_items=n_items)        # dict of means

Conventions (state them when you report numbers):
- a user with no relevant test items is left out of the averages (their metric is undefined);
- NDCG uses binary gains and log2 discounts, ideal DCG from min(|relevant|, k) hits;
- recall divides by |relevant| (not min(|relevant|, k));
- ties in scores are broken towards the lower item index (``rank_from_scores``).
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from .data import DataError, require_columns

__all__ = ["rmse", "mae", "rank_from_scores", "hits_at_k", "precision_at_k", "recall_at_k",
           "ndcg_at_k", "ndcg_per_user", "mrr_at_k", "hit_rate_at_k", "catalogue_coverage",
           "ranking_metrics",
           "evaluate_ranking", "ranked_lists", "top_matrix", "sampled_metrics", "tokenize", "bleu", "rouge",
           "unique_sentence_ratio", "feature_matching_ratio", "feature_coverage_ratio",
           "feature_diversity", "faithfulness", "hallucination_rate"]


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
    _check_k(k)
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


def _check_k(k, name="k"):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"{name} must be a positive integer, got {type(k).__name__} {k!r}; e.g. "
                        f"{name}=10.")


def hits_at_k(top: np.ndarray, relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, n_relevant)``: ``hits[u, r]`` is True when the item at rank ``r`` of user
    ``u``'s list is relevant; ``n_relevant[u] = |relevant[u]|``.

    ``relevant`` is a sequence of sets (one per row of ``top``).
    """
    _check_k(k)
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
    return _ndcg_rows(*hits_at_k(top, relevant, k))


def _ndcg_rows(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
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
    _check_k(n_items, "n_items")
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
    _check_k(k)
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
    _check_k(k)
    _check_k(n_negatives, "n_negatives")
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


# ----------------------------------------------------------------------------- text
# Explanation benchmarks (NRT, PETER, ...) score generated reasons against one reference each:
# corpus-level BLEU, ROUGE F1 per sentence then averaged, and counts of the features (aspects,
# colours, brands...) the reasons mention. Texts are tokenised with ``tokenize`` (lower-cased
# words, punctuation marks as tokens).
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: the tokens BLEU/ROUGE count and PETER reads."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def _texts(hypotheses, references=None):
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise DataError("pass lists of texts, not one string (a string would be read letter by "
                        "letter); wrap a single text in a list.")
    hyp = list(hypotheses)
    if not hyp:
        raise DataError("no generated texts to score: pass a non-empty list of reasons")
    bad = [k for k, h in enumerate(hyp) if not isinstance(h, str)]
    if bad:
        raise DataError(f"generated text {bad[0]} is a {type(hyp[bad[0]]).__name__}, not a string "
                        "(a missing reason must be an empty string, and is scored as one)")
    if references is None:
        return hyp
    ref = list(references)
    if len(ref) != len(hyp):
        raise DataError(f"{len(hyp)} generated texts but {len(ref)} references; each reason "
                        "needs exactly one reference")
    if any(not isinstance(r, str) or not r.strip() for r in ref):
        raise DataError("a reference is empty or not a string; drop that pair from the test set "
                        "first (and say so)")
    return hyp, ref


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(hypotheses, references, max_order: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002) with one reference per text, no smoothing, in [0, 1]:
    clipped n-gram precisions 1..max_order pooled over the corpus, geometric mean, brevity
    penalty from the corpus lengths. ``max_order=1`` is BLEU-1, 4 is BLEU-4. Equals sacrebleu's
    ``corpus_bleu(..., tokenize='none', smooth_method='none')`` / 100 on pre-tokenised text."""
    hyp, ref = _texts(hypotheses, references)
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    match, total = np.zeros(max_order), np.zeros(max_order)
    hyp_len = ref_len = 0
    for h, r in zip(hyp, ref):
        h, r = tokenize(h), tokenize(r)
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, max_order + 1):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            match[n - 1] += sum(min(c, rn[g]) for g, c in hn.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or (match == 0).any():
        return 0.0
    log_p = np.log(match / total).mean()
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return float(bp * math.exp(log_p))


def _lcs(a, b) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _f1(overlap, n_hyp, n_ref):
    if overlap == 0:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def _f_beta_lcs(lcs: int, n_hyp: int, n_ref: int) -> float:
    """The explanation papers' ROUGE-L: F_beta with beta = P/R (the old TensorFlow ``rouge.py``
    that NRT, PETER and PEPLER report), not F1."""
    r, p = lcs / n_ref, lcs / n_hyp
    beta2 = (p / (r + 1e-12)) ** 2
    return (1 + beta2) * r * p / (r + beta2 * p + 1e-12)


def rouge(hypotheses, references) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 (clipped n-gram overlap) and ROUGE-L (longest common subsequence) F1
    per text, averaged over texts, in [0, 1]. Equals Google's ``rouge-score`` package given the
    same tokens (its default tokenizer drops punctuation; ours keeps it). ``rougeL_fbeta`` is
    ROUGE-L as the explainable-recommendation papers (NRT, PETER, PEPLER) compute it: F_beta
    with beta = P/R per text; it is what their tables report, usually a little below F1."""
    hyp, ref = _texts(hypotheses, references)
    out = {"rouge1": [], "rouge2": [], "rougeL": [], "rougeL_fbeta": []}
    for h, r in zip(hyp, ref):
        h, r = tokenize(h), tokenize(r)
        for n in (1, 2):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            overlap = sum(min(c, rn[g]) for g, c in hn.items())
            out[f"rouge{n}"].append(_f1(overlap, sum(hn.values()), sum(rn.values())))
        lcs = _lcs(h, r)
        out["rougeL"].append(_f1(lcs, len(h), len(r)))
        out["rougeL_fbeta"].append(_f_beta_lcs(lcs, len(h), len(r)) if h and r else 0.0)
    return {k: float(np.mean(v)) for k, v in out.items()}


def unique_sentence_ratio(texts) -> float:
    """USR: distinct texts / texts (after lower-casing and tokenising: 'Great.' == 'great .')."""
    hyp = _texts(texts)
    return len({tuple(tokenize(t)) for t in hyp}) / len(hyp)


def _feature_sets(features, name="features"):
    if isinstance(features, str) or any(isinstance(f, str) for f in features):
        raise DataError(f"{name} must be a list of feature collections (one set per reason, e.g. "
                        "[{'comfort'}, set()]), not strings: a string would be split into letters.")
    sets = [set(f) for f in features]
    if not sets:
        raise DataError(f"{name} is empty")
    return sets


def feature_matching_ratio(generated_features, reference_features) -> float:
    """FMR: among pairs whose reference names at least one feature, the share whose generated
    reason names one of them. Pairs with a featureless reference are left out (stated)."""
    gen = _feature_sets(generated_features, "generated_features")
    ref = _feature_sets(reference_features, "reference_features")
    if len(gen) != len(ref):
        raise DataError(f"{len(gen)} generated feature sets but {len(ref)} reference ones")
    scored = [bool(g & r) for g, r in zip(gen, ref) if r]
    if not scored:
        raise DataError("no reference names a feature; FMR is undefined")
    return float(np.mean(scored))


def feature_coverage_ratio(generated_features, n_features: int) -> float:
    """FCR: distinct features named anywhere in the generated reasons / all features."""
    _check_k(n_features, "n_features")
    return len(set().union(*_feature_sets(generated_features, "generated_features"))) / n_features


def feature_diversity(generated_features) -> float:
    """DIV: mean over all pairs of reasons of how many features they share (lower = more
    diverse). Computed from per-feature counts, sum_f C(n_f, 2) / C(N, 2): O(N), not O(N^2)."""
    sets = _feature_sets(generated_features, "generated_features")
    if len(sets) < 2:
        raise DataError("DIV needs at least two reasons")
    counts = np.array(list(Counter(f for s in sets for f in s).values()), dtype=np.float64)
    n = len(sets)
    return float((counts * (counts - 1) / 2).sum() / (n * (n - 1) / 2))


def _verdicts(verdicts):
    v = list(verdicts)
    if not v:
        raise DataError("no judged reasons: pass one list of (true, important) verdicts per "
                        "reason (nlg.judge_claims)")
    return v


def faithfulness(verdicts) -> float:
    """Share of reasons whose claims are all true of the item and at least one of which matters
    to the user. ``verdicts``: per reason, a list of (true_of_item, important) per claim (see
    ``nlg.judge_claims``). A reason that claims nothing is not faithful: it tells the user
    nothing about why."""
    return float(np.mean([bool(v) and all(t for t, _ in v) and any(i for _, i in v)
                          for v in _verdicts(verdicts)]))


def hallucination_rate(verdicts) -> float:
    """Share of reasons with at least one claim that is false of the item."""
    return float(np.mean([any(not t for t, _ in v) for v in _verdicts(verdicts)]))


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``values`` (one number per test pair):
    resample the pairs with replacement ``n_boot`` times and take the middle ``level`` of the
    means. NaN is refused: pass only the pairs a metric applies to."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise DataError("no values to bootstrap")
    if not np.isfinite(x).all():
        raise DataError("values contain NaN or inf; pass only the pairs the metric applies to")
    _check_k(n_boot, "n_boot")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, 256):          # blocks keep memory at 256 x n
        k = min(256, n_boot - s)
        means[s:s + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
