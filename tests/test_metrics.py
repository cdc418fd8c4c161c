"""Every metric against an independent implementation (scikit-learn or a plain loop) on
random cases, including ties and users with no relevant items."""
import numpy as np
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_squared_error,
    ndcg_score,
    precision_score,
    recall_score,
)

from helpers.core.checks import DataError, ParameterError
from helpers.metrics import ranking


def test_rating_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    t, p = rng.integers(1, 6, 500).astype(float), rng.uniform(1, 5, 500)
    assert ranking.rmse(t, p) == pytest.approx(np.sqrt(mean_squared_error(t, p)))
    assert ranking.mae(t, p) == pytest.approx(mean_absolute_error(t, p))


@pytest.mark.parametrize("t,p,msg", [([], [], "empty"), ([1, 2], [1], "same length"),
                                     ([1, np.nan], [1, 2], "NaN")])
def test_rating_metrics_reject_bad_input(t, p, msg):
    with pytest.raises(DataError, match=msg):
        ranking.rmse(t, p)


def _random_case(seed, n_users=40, n_items=30, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, n_items))
    if ties:
        scores = np.round(scores, 0)  # many equal scores
    truth = rng.random((n_users, n_items)) < 0.15
    truth[:3] = False  # users with no relevant items
    return scores, truth


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 10])
def test_ndcg_matches_sklearn(seed, k):
    scores, truth = _random_case(seed)
    top = ranking.rank_from_scores(scores, k)
    relevant = [set(np.flatnonzero(row)) for row in truth]
    ok = truth.any(1)
    ref = ndcg_score(truth[ok].astype(float), scores[ok], k=k)
    assert ranking.ndcg_at_k(top, relevant, k) == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_ties_are_broken_towards_the_lower_index_like_sklearn_ignore_ties(seed):
    scores, truth = _random_case(seed, ties=True)
    k = 5
    top = ranking.rank_from_scores(scores, k)
    for row, s in zip(top, scores):
        assert all(s[a] > s[b] or (s[a] == s[b] and a < b) for a, b in zip(row, row[1:]))
    # sklearn with ignore_ties=True ranks by a stable argsort of -score too; rescale the
    # scores so its order equals ours and compare the values
    relevant = [set(np.flatnonzero(r)) for r in truth]
    order_scores = -np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1).astype(float)
    ok = truth.any(1)
    ref = ndcg_score(truth[ok].astype(float), order_scores[ok], k=k, ignore_ties=True)
    assert ranking.ndcg_at_k(top, relevant, k) == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_precision_and_recall_match_sklearn_per_user(seed):
    scores, truth = _random_case(seed)
    k = 7
    top = ranking.rank_from_scores(scores, k)
    relevant = [set(np.flatnonzero(r)) for r in truth]
    p_ref, r_ref = [], []
    for row, t in zip(top, truth):
        if not t.any():
            continue
        pred = np.zeros_like(t)
        pred[row] = True
        p_ref.append(precision_score(t, pred))
        r_ref.append(recall_score(t, pred))
    assert ranking.precision_at_k(top, relevant, k) == pytest.approx(np.mean(p_ref))
    assert ranking.recall_at_k(top, relevant, k) == pytest.approx(np.mean(r_ref))


def test_mrr_and_hit_rate_match_a_plain_loop():
    scores, truth = _random_case(11)
    k = 10
    top = ranking.rank_from_scores(scores, k)
    relevant = [set(np.flatnonzero(r)) for r in truth]
    rr, hr = [], []
    for row, rel in zip(top, relevant):
        if not rel:
            continue
        ranks = [r + 1 for r, item in enumerate(row) if item in rel]
        rr.append(1 / ranks[0] if ranks else 0.0)
        hr.append(1.0 if ranks else 0.0)
    assert ranking.mrr_at_k(top, relevant, k) == pytest.approx(np.mean(rr))
    assert ranking.hit_rate_at_k(top, relevant, k) == pytest.approx(np.mean(hr))


def test_exclusion_and_coverage():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    top = ranking.rank_from_scores(scores, 2, exclude=np.array([[1, 0, 0], [0, 0, 0]], bool))
    np.testing.assert_array_equal(top, [[1, 2], [2, 1]])
    assert ranking.catalogue_coverage(top, 4) == 0.5
    assert ranking.rank_from_scores(scores, 10).shape == (2, 3)  # k clipped to the catalogue


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_an_error(k):
    with pytest.raises(ParameterError, match="k must be"):
        ranking.ndcg_at_k(np.zeros((1, 3), int), [{0}], k)


def test_users_without_relevant_items_only_everywhere_is_an_error():
    with pytest.raises(DataError, match="No user"):
        ranking.ndcg_at_k(np.zeros((2, 3), int), [set(), set()], 3)
    with pytest.raises(DataError, match="one set of relevant items per user"):
        ranking.ndcg_at_k(np.zeros((2, 3), int), [{1}], 3)


def test_evaluate_ranking_from_dataframes():
    import pandas as pd

    recs = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 12, 13],
                         "rank": [1, 2, 1, 2]})
    test = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [11, 99, 10]})
    out = ranking.evaluate_ranking(recs, test, k=2)
    assert out["hr@2"] == pytest.approx(1 / 3)          # user 3 has no list: a miss
    assert out["mrr@2"] == pytest.approx((1 / 2) / 3)


def test_sampled_metrics_rank_against_negatives_only():
    # 1 user, 6 items; test item 0 scores 0.5; items 1-2 beat it, 3-5 do not
    scores = np.array([[0.5, 0.9, 0.8, 0.1, 0.2, 0.3]])
    full = ranking.sampled_metrics(scores, [0], k=1, n_negatives=5)
    assert full["hr@1"] == 0.0  # all 5 negatives drawn: rank 3
    out = ranking.sampled_metrics(scores, [0], k=3, n_negatives=5)
    assert out["hr@3"] == 1.0 and out["ndcg@3"] == pytest.approx(1 / np.log2(4))
    excl = np.array([[0, 1, 1, 0, 0, 0]], bool)  # seen items are never negatives
    assert ranking.sampled_metrics(scores, [0], k=1, n_negatives=3, exclude=excl)["hr@1"] == 1.0
    with pytest.raises(DataError, match="possible negatives"):
        ranking.sampled_metrics(scores, [0], k=1, n_negatives=4, exclude=excl)


@pytest.mark.parametrize("seed", range(3))
def test_ndcg_per_user_matches_sklearn_user_by_user(seed):
    scores, truth = _random_case(seed)
    top = ranking.rank_from_scores(scores, 5)
    relevant = [set(np.flatnonzero(row)) for row in truth]
    per_user = ranking.ndcg_per_user(top, relevant, 5)
    ok = truth.any(1)
    assert np.isnan(per_user[~ok]).all()
    for u in np.flatnonzero(ok):
        assert per_user[u] == pytest.approx(ndcg_score(truth[u:u + 1].astype(float),
                                                       scores[u:u + 1], k=5), abs=1e-10)
    assert np.nanmean(per_user) == pytest.approx(ranking.ndcg_at_k(top, relevant, 5), abs=1e-12)
