"""Chapter 07's evaluation helpers, each against an established implementation (scipy,
scikit-learn, helpers.metrics.ranking' own ranking metrics) or a brute-force reference, with a broken
version shown to fail the same check."""
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics.pairwise import cosine_distances

from helpers.core.checks import DataError, ParameterError
from helpers.evaluation import offline as E
from helpers.metrics import ranking, stats as ST


def _recs(rng, n_users=30, n_items=40, k=10):
    rows = [pd.DataFrame({"user_id": u, "item_id": rng.choice(n_items, k, replace=False),
                          "rank": np.arange(1, k + 1)}) for u in range(n_users)]
    return pd.concat(rows, ignore_index=True)


def test_per_user_metrics_match_the_library_means_and_a_hand_example():
    rng = np.random.default_rng(0)
    recs = _recs(rng)
    test = pd.DataFrame({"user_id": np.repeat(np.arange(30), 2), "item_id": rng.integers(0, 40, 60)})
    test = test.drop_duplicates()
    per = E.per_user_metrics(recs, test, k=10)
    ref = ranking.evaluate_ranking(recs, test, 10)
    for m in ("hr@10", "ndcg@10", "mrr@10", "recall@10", "precision@10"):
        assert per[m].mean() == pytest.approx(ref[m], abs=1e-12)
    one = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [7, 8, 9], "rank": [1, 2, 3]})
    got = E.per_user_metrics(one, pd.DataFrame({"user_id": [1, 2], "item_id": [8, 5]}), k=3)
    assert got.loc[1, "ndcg@3"] == pytest.approx(1 / np.log2(3))
    assert got.loc[1, "mrr@3"] == pytest.approx(0.5)
    assert got.loc[2].sum() == 0                       # no list: a miss, not dropped


def test_per_user_metrics_reject_bad_lists():
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": [3, 3], "rank": [1, 2]})
    with pytest.raises(DataError, match="repeat an item"):
        E.per_user_metrics(recs, pd.DataFrame({"user_id": [1], "item_id": [3]}), k=2)
    ok = pd.DataFrame({"user_id": [1], "item_id": [3], "rank": [1]})
    with pytest.raises(ParameterError, match="positive integer"):
        E.per_user_metrics(ok, pd.DataFrame({"user_id": [1], "item_id": [3]}), k=0)
    with pytest.raises(DataError, match="empty"):
        E.per_user_metrics(ok, pd.DataFrame({"user_id": [], "item_id": []}), k=1)


def test_paired_bootstrap_matches_scipy_and_beats_the_unpaired_interval():
    rng = np.random.default_rng(1)
    user = rng.exponential(size=300)                   # some users are easy for both models
    a, b = user + rng.normal(0.05, 0.1, 300), user
    got = ST.paired_bootstrap(a, b, n_boot=4000)
    ref = stats.bootstrap((a - b,), np.mean, n_resamples=4000, method="percentile",
                          random_state=0).confidence_interval
    assert got["lo"] == pytest.approx(ref.low, abs=0.004)
    assert got["hi"] == pytest.approx(ref.high, abs=0.004)
    # the broken version: resample the two models separately (ignores the pairing)
    lo_a, hi_a = ST.bootstrap_ci(a)
    lo_b, hi_b = ST.bootstrap_ci(b)
    assert got["hi"] - got["lo"] < 0.25 * ((hi_a - lo_a) + (hi_b - lo_b))
    assert got["lo"] > 0 and lo_a < hi_b            # paired: sure; overlapping intervals: not


def test_permutation_test_matches_exact_enumeration_and_scipy():
    rng = np.random.default_rng(2)
    d = rng.normal(0.4, 1, 11)
    b = rng.normal(size=11)
    exact = np.mean([abs((np.array(s) * d).mean()) >= abs(d.mean()) - 1e-12
                     for s in itertools.product((-1, 1), repeat=11)])
    assert ST.permutation_test(b + d, b, n_perm=20_000) == pytest.approx(exact, abs=0.01)
    a, c = rng.normal(0.2, 1, 40), rng.normal(0, 1, 40)
    ref = stats.permutation_test((a, c), lambda x, y: np.mean(x - y), permutation_type="samples",
                                 n_resamples=20_000, random_state=0).pvalue
    assert ST.permutation_test(a, c, n_perm=20_000) == pytest.approx(ref, abs=0.015)
    assert ST.permutation_test(a, c, alternative="greater") < ST.permutation_test(a, c)
    same = rng.normal(size=30)
    assert ST.permutation_test(same, same) == 1.0


def test_holm_matches_its_step_down_definition():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.uniform(0, 0.2, 7)
        adj = ST.holm(p)
        for alpha in (0.01, 0.05, 0.1):
            # Holm's procedure: reject the sorted p_(j) while p_(j) <= alpha / (m - j + 1)
            rejected = set()
            for j, i in enumerate(np.argsort(p)):
                if p[i] > alpha / (len(p) - j):
                    break
                rejected.add(i)
            assert {i for i in range(len(p)) if adj[i] <= alpha} == rejected
    assert (ST.holm(p) >= p).all() and ST.holm([0.5]) == pytest.approx([0.5])


def test_compare_builds_the_table():
    rng = np.random.default_rng(4)
    users = pd.Index(range(200), name="user_id")
    base = rng.uniform(size=200)
    per = {"base": pd.DataFrame({"ndcg@10": base}, index=users),
           "better": pd.DataFrame({"ndcg@10": base + 0.1}, index=users),
           "same": pd.DataFrame({"ndcg@10": base + rng.normal(0, 0.01, 200)}, index=users)}
    t = E.compare(per, "ndcg@10", baseline="base", n_perm=2000)
    assert t.loc["better", "diff"] == pytest.approx(0.1)
    assert t.loc["better", "p (Holm)"] < 0.01 and t.loc["same", "p"] > 0.01
    assert np.isnan(t.loc["base", "p"])
    with pytest.raises(DataError, match="baseline"):
        E.compare(per, "ndcg@10", baseline="nope")
    shifted = dict(per, other=pd.DataFrame({"ndcg@10": base}, index=users + 1))
    with pytest.raises(DataError, match="same users"):
        E.compare(shifted, "ndcg@10", baseline="other")


@pytest.mark.parametrize("bad,match", [([], "empty"), ([1.0, np.nan], "NaN"), (["a"], "numbers"),
                                       ([[1.0, 2.0]], "1-D")])
def test_uncertainty_helpers_reject_bad_values(bad, match):
    with pytest.raises(DataError, match=match):
        ST.permutation_test(bad, bad)


def test_paired_tests_reject_mismatched_lengths():
    with pytest.raises(DataError, match="same order"):
        ST.paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ParameterError, match="probability"):
        ST.paired_bootstrap([1.0, 2.0], [1.0, 2.0], level=95)


def test_ratios_pool_and_test_correctly():
    num, den = np.array([1, 0, 2, 1]), np.array([2, 1, 2, 1])
    r, lo, hi = ST.ratio_ci(num, den)
    assert r == pytest.approx(4 / 6) and lo <= r <= hi
    with pytest.raises(DataError, match="positive sum"):
        ST.ratio_ci([0, 0], [0, 0])
    rng = np.random.default_rng(5)
    n = rng.integers(1, 4, 200)
    a = rng.binomial(n, 0.7)
    same = ST.paired_ratio_diff(a, n, a, n)
    assert same["diff"] == 0 and same["p"] == 1.0
    b = rng.binomial(n, 0.4)
    t = ST.paired_ratio_diff(a, n, b, n)
    assert t["diff"] == pytest.approx(a.sum() / n.sum() - b.sum() / n.sum())
    assert t["p"] < 0.01 and t["lo"] > 0
    with pytest.raises(DataError, match="same units"):
        ST.paired_ratio_diff(a, n, b[:-1], n[:-1])


def test_intra_list_diversity_equals_sklearn_cosine_distances():
    rng = np.random.default_rng(6)
    vec = pd.DataFrame(rng.normal(size=(40, 5)))
    recs = _recs(rng, n_users=5, k=4)
    got = E.intra_list_diversity(recs, vec)
    for u, items in recs.groupby("user_id")["item_id"]:
        dist = cosine_distances(vec.loc[items.to_numpy()])
        assert got[u] == pytest.approx(dist[np.triu_indices(4, 1)].mean())
    with pytest.raises(DataError, match="no vector"):
        E.intra_list_diversity(recs, vec.iloc[:3])


def test_novelty_popularity_and_gini():
    train = pd.DataFrame({"user_id": [1, 2, 3, 4, 1], "item_id": [10, 10, 10, 11, 11]})
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 12], "rank": [1, 2]})
    nov = E.novelty(recs, train)
    assert nov[1] == pytest.approx(np.mean([-np.log2(3 / 4), -np.log2(1 / 5)]))
    lift = E.popularity_lift(recs, train)
    assert lift == pytest.approx(np.mean([0.75, 0.0]) / np.mean([(0.75 + 0.5) / 2, 0.75, 0.75, 0.5]))
    x = np.random.default_rng(7).integers(0, 20, 50).astype(float)
    # the reference: mean absolute difference over twice the mean
    ref = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert E.gini(x) == pytest.approx(ref)
    assert E.gini(np.ones(10)) == pytest.approx(0)


def test_calibration_kl_equals_scipy_entropy():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.2, 0.8])
    assert E.calibration_kl(p, q, 0.01) == pytest.approx(stats.entropy(p, 0.99 * q + 0.01 * p))
    assert E.calibration_kl(p, p) == pytest.approx(0)
    with pytest.raises(DataError, match="infinite"):
        E.calibration_kl(p, q, alpha=0.0)
    with pytest.raises(DataError, match="distribution"):
        E.calibration_kl([0.5, 0.6], [0.5, 0.5])


def test_vectorised_calibration_equals_the_per_user_formula():
    rng = np.random.default_rng(8)
    cat = pd.Series(rng.choice(list("abcd"), 50))
    hist = pd.DataFrame({"user_id": rng.integers(0, 10, 200), "item_id": rng.integers(0, 50, 200)})
    recs = _recs(rng, n_users=10, n_items=50, k=5)
    got = E.calibration(recs, hist, cat)
    cats = sorted(cat.unique())
    for u in range(10):
        h = hist[hist["user_id"] == u].drop_duplicates()["item_id"]
        r = recs[recs["user_id"] == u]["item_id"]
        want = E.calibration_kl(E.category_mix(h, cat, cats), E.category_mix(r, cat, cats))
        assert got[u] == pytest.approx(want)
    with pytest.raises(DataError, match="no history"):
        E.calibration(recs, hist[hist["user_id"] != 3], cat)


def test_driver_scores_and_the_seed_table():
    from helpers.reasons import claims
    lex = claims.lexicon()
    reasons = ["You care about warmth; this has outstanding warmth and solid fit.",
               "It is popular with shoppers who like what you like.", "Nothing to say."]
    s = E.driver_scores(reasons, ["warmth;price", "popularity", "comfort"], lex)
    assert s.to_dict("list") == {"named": [2, 1, 0], "correct": [1, 1, 0], "n_true": [2, 1, 1]}
    prf = E.reason_prf(s)
    assert prf["precision"] == pytest.approx(2 / 3) and prf["recall"] == pytest.approx(2 / 4)
    assert prf["F1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert prf["precision lo"] <= prf["precision"] <= prf["precision hi"]
    with pytest.raises(DataError, match="one reason per pair"):
        E.driver_scores(reasons, ["warmth"], lex)
    with pytest.raises(DataError, match="strings"):
        E.driver_scores([None], ["warmth"], lex)


# ----------------------------------------------------------------------------- judges (section 7)
def _raters(rng, n, p_agree):
    t = rng.random(n) < 0.7
    v = np.where(rng.random(n) < p_agree, t, ~t)
    return t, v


def test_cohen_kappa_equals_sklearn_and_a_broken_kappa_does_not():
    from sklearn.metrics import cohen_kappa_score

    from helpers.evaluation import judging as J
    rng = np.random.default_rng(0)
    cases = [_raters(rng, n, p) for n, p in [(20, 0.5), (64, 0.8), (128, 0.95), (7, 0.6)]]
    cases.append((np.array([1, 1, 1, 0, 1]), np.ones(5, dtype=int)))     # a constant judge
    broken = lambda t, v: float((np.asarray(t) == np.asarray(v)).mean())  # agreement, no chance term
    for t, v in cases:
        assert J.cohen_kappa(t, v) == pytest.approx(cohen_kappa_score(t, v), abs=1e-12)
    assert any(abs(broken(t, v) - cohen_kappa_score(t, v)) > 0.1 for t, v in cases)
    assert J.cohen_kappa([1, 1, 1, 0, 1], [1] * 5) == 0.0                # however often it agrees
    assert np.isnan(J.cohen_kappa([1, 1], [1, 1]))                       # 0/0, as in sklearn


def test_agreement_intervals_are_the_percentile_bootstrap_over_reasons():
    from helpers.evaluation import judging as J
    t, v = _raters(np.random.default_rng(1), 80, 0.8)
    a = J.agreement(t, v, n_boot=2000, seed=3)
    assert a["agreement"] == pytest.approx((t == v).mean())
    assert (a["agreement lo"], a["agreement hi"]) == pytest.approx(
        ST.bootstrap_ci((t == v).astype(float), n_boot=2000, seed=3))
    assert a["kappa lo"] < a["kappa"] < a["kappa hi"]
    assert a["says True"] == pytest.approx(v.mean()) and a["truly True"] == pytest.approx(t.mean())
    constant = J.agreement(t, np.ones_like(t))
    assert constant["kappa"] == constant["kappa lo"] == constant["kappa hi"] == 0.0


def test_position_flips_counts_a_choice_that_follows_the_order():
    from helpers.evaluation import judging as J
    assert J.position_flips([0.9, 0.8], [0.7, 0.6]) == 1.0               # always "A"
    assert J.position_flips([0.9, 0.2], [0.1, 0.8]) == 0.0               # reads the reasons
    with pytest.raises(DataError, match="one length"):
        J.position_flips([0.9], [0.1, 0.2])
    with pytest.raises(DataError, match="probabilities"):
        J.position_flips([1.5], [0.1])


@pytest.mark.parametrize("call,error,match", [
    (lambda J, f: J.agreement([0, 1], [0, 1], n_boot=0), ParameterError, "n_boot"),
    (lambda J, f: J.agreement([0, 1], [0, 1], level=1.5), ParameterError, "level"),
    (lambda J, f: J.cohen_kappa([0.2, 0.9], [0, 1]), DataError, "threshold"),
    (lambda J, f: J.agreement([0, 1], [0, 1, 1]), DataError, "one verdict per"),
    (lambda J, f: J.agreement("yes", "no"), DataError, "string"),
])
def test_judging_rejects_bad_input(call, error, match):
    from helpers.evaluation import judging as J
    with pytest.raises(error, match=match):
        call(J, np.random.default_rng(0).normal(size=(10, 4)))
