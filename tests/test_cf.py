"""CF models on tiny hand-checked cases and against independent references."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics.pairwise import cosine_similarity

from helpers.core.checks import DataError, ParameterError
from helpers.data.preprocess import build_id_map
from helpers.models import cf


def _additive(n_u=12, n_i=9, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 0.5, n_u), rng.normal(0, 0.5, n_i)
    u, i = np.meshgrid(np.arange(n_u), np.arange(n_i), indexing="ij")
    return pd.DataFrame({"user_id": u.ravel() + 1, "item_id": i.ravel() + 101,
                         "rating": 3.0 + a[u.ravel()] + b[i.ravel()]})


def test_biases_recover_an_additive_model_exactly():
    df = _additive()
    m = cf.Biases(reg_user=0, reg_item=0, n_iter=50).fit(df)
    np.testing.assert_allclose(m.predict(df.user_id, df.item_id), df.rating, atol=1e-8)
    # unknown user: global mean plus the item bias only
    assert m.predict([999], [101])[0] == pytest.approx(m.mu + m.bi[0])


def test_als_ridge_step_matches_sklearn_ridge():
    rng = np.random.default_rng(1)
    n_groups, n_other, d = 5, 8, 3
    mask = rng.random((n_groups, n_other)) < 0.7
    g, o = np.nonzero(mask)
    x, y = rng.normal(size=(n_other, d)), rng.normal(size=len(g))
    lam = np.full(n_groups, 0.3)
    rows = sp.csr_matrix((np.ones(len(g)), (g, o)), shape=(n_groups, n_other))
    w = cf.BiasedMF._ridge(rows, x, y, g, o, lam)
    for grp in range(n_groups):
        sel = g == grp
        ref = Ridge(alpha=0.3, fit_intercept=False).fit(x[o[sel]], y[sel]).coef_
        np.testing.assert_allclose(w[grp], ref, atol=1e-5)


@pytest.mark.parametrize("solver,kwargs", [("als", dict(n_epochs=20, reg=0.01)),
                                           ("adam", dict(n_epochs=400, reg=1e-4, lr=0.05))])
def test_biased_mf_learns_a_low_rank_matrix(solver, kwargs):
    rng = np.random.default_rng(2)
    P, Q = rng.normal(size=(60, 2)), rng.normal(size=(40, 2))
    full = 3 + 0.6 * P @ Q.T
    u, i = np.nonzero(rng.random(full.shape) < 0.6)
    df = pd.DataFrame({"user_id": u, "item_id": i, "rating": full[u, i]})
    held = np.nonzero(rng.random(full.shape) < 0.1)
    m = cf.BiasedMF(n_factors=2, solver=solver, **kwargs).fit(df)
    pred = m.predict(held[0], held[1])
    known = np.isin(held[0], u) & np.isin(held[1], i)
    rmse = np.sqrt(np.mean((pred[known] - full[held][known]) ** 2))
    assert rmse < 0.15, rmse
    assert m.history[-1] < m.history[0]


def test_item_knn_similarity_matches_sklearn_cosine():
    rng = np.random.default_rng(3)
    dense = (rng.random((30, 12)) < 0.3).astype(float)
    u, i = np.nonzero(dense)
    df = pd.DataFrame({"user_id": u, "item_id": i})
    m = cf.KNN("item", k=11, similarity="cosine", shrink=0).fit(df)
    ref = cosine_similarity(dense.T)
    np.fill_diagonal(ref, 0)
    cols = build_id_map(i).ids
    np.testing.assert_allclose(m.neighbours.toarray(), ref[np.ix_(cols, cols)], atol=1e-12)
    # implicit scores: the user's row times the neighbour weights
    s = m.scores(np.array([0]))
    np.testing.assert_allclose(s[0], dense[0, cols] @ ref[np.ix_(cols, cols)].T, atol=1e-12)


def test_item_knn_rating_prediction_by_hand():
    # items 1 and 2 are rated identically by users 1-3 (similarity 1); user 4 rated item 1 only
    df = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3, 4],
                       "item_id": [1, 2, 1, 2, 1, 2, 1],
                       "rating": [5.0, 5.0, 1.0, 1.0, 3.0, 3.0, 5.0]})
    m = cf.KNN("item", k=5, similarity="cosine", shrink=0, explicit=True).fit(df)
    base = m.base.baseline(*m._pairs([4], [2]))
    resid_41 = 5.0 - m.base.baseline(*m._pairs([4], [1]))[0]
    assert m.predict([4], [2])[0] == pytest.approx(base[0] + resid_41)


def test_bpr_separates_two_taste_groups():
    rng = np.random.default_rng(4)
    rows = []
    for user in range(60):
        group = user % 2
        items = rng.choice(np.arange(group * 20, group * 20 + 20), size=8, replace=False)
        rows += [(user, item) for item in items]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    m = cf.BPR(n_factors=8, n_epochs=40, lr=0.05, seed=0).fit(df)
    s = m.scores(np.arange(60))
    own = np.array([s[u, (u % 2) * 20:(u % 2) * 20 + 20].mean() for u in range(60)])
    other = np.array([s[u, (1 - u % 2) * 20:(1 - u % 2) * 20 + 20].mean() for u in range(60)])
    assert (own > other).mean() > 0.95
    assert m.history[-1] < m.history[0]


def test_recommend_excludes_seen_falls_back_for_unknown_users_and_checks_k():
    df = pd.DataFrame({"user_id": [1, 1, 2, 3, 3, 3], "item_id": [10, 11, 10, 10, 11, 12]})
    m = cf.MostPopular().fit(df)
    recs = m.recommend([1], k=2)
    assert recs["item_id"].tolist()[:1] == [12]
    assert not set(recs["item_id"]) & {10, 11}
    with pytest.warns(UserWarning, match="not seen in training"):
        cold = m.recommend([99], k=2)
    assert cold["item_id"].tolist() == [10, 11]
    with pytest.raises(ParameterError, match="k must be"):
        m.recommend([1], k=0)
    with pytest.warns(UserWarning, match="larger than the catalogue"):
        assert len(m.recommend([2], k=50, exclude_seen=False)) == 3


@pytest.mark.parametrize("model", [cf.Biases, cf.BiasedMF, cf.GlobalMean, cf.BayesianMF])
def test_rating_models_refuse_bad_training_data(model):
    with pytest.raises(DataError, match="empty"):
        model().fit(pd.DataFrame({"user_id": [], "item_id": [], "rating": []}))
    with pytest.raises(DataError, match="NaN"):
        model().fit(pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [np.nan]}))
    with pytest.raises(DataError, match="missing column"):
        model().fit(pd.DataFrame({"user_id": [1], "item_id": [2]}))


def test_mismatched_id_maps_are_an_error():
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20], "rating": [4.0, 3.0]})
    with pytest.raises(DataError, match=r"Unknown item\(s\) \[20\]"):
        cf.Biases().fit(df, build_id_map([1, 2]), build_id_map([10]))


def test_bad_model_options():
    with pytest.raises(ParameterError, match="kind"):
        cf.KNN(kind="both").check_params()
    with pytest.raises(ParameterError, match="explicit=True"):
        cf.KNN(similarity="pearson").check_params()
    with pytest.raises(ParameterError, match="solver"):
        cf.BiasedMF(solver="sgd-magic").check_params()
    m = cf.MostPopular().fit(pd.DataFrame({"user_id": [1], "item_id": [1]}))
    with pytest.raises(TypeError, match="does not predict ratings"):
        m.predict([1], [1])


def test_repeated_events_count_once():
    df = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [10, 10, 10, 11]})  # view, click, buy
    m = cf.MostPopular().fit(df)
    assert m.popularity.tolist() == [1, 1]
    assert m.seen.toarray().tolist() == [[1, 0], [0, 1]]


def test_evaluate_matches_the_metrics_module_by_hand():
    from helpers.metrics import ranking

    train = pd.DataFrame({"user_id": [1, 1, 2, 3, 3], "item_id": [10, 11, 10, 11, 12]})
    test = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [12, 12, 13]})
    um, im = build_id_map([1, 2, 3]), build_id_map([10, 11, 12, 13])
    m = cf.MostPopular().fit(train, um, im)
    out = m.evaluate(test, k=2)
    # popularity 10:2, 11:2, 12:1, 13:0; user 1 (saw 10, 11) -> [12, 13]; user 2 (saw 10) -> [11, 12]
    top = np.array([[2, 3], [1, 2]])
    assert out == ranking.ranking_metrics(top, [{2}, {2, 3}], 2, n_items=4)
    with pytest.raises(DataError, match=r"Unknown user\(s\) \[9\]"):
        m.evaluate(pd.DataFrame({"user_id": [9], "item_id": [10]}))


def _taste_groups(seed=4, n_users=60, per_user=8):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        group = user % 2
        items = rng.choice(np.arange(group * 20, group * 20 + 20), size=per_user, replace=False)
        rows += [(user, item) for item in items]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_ease_columns_are_sklearn_ridge_without_the_item_itself():
    df = _taste_groups()
    m = cf.EASE(reg=3.0).fit(df)
    x = m.seen.toarray()
    assert np.all(np.diag(m.B) == 0)
    for j in (0, 7, 25):
        others = np.delete(np.arange(x.shape[1]), j)
        ref = Ridge(alpha=3.0, fit_intercept=False).fit(x[:, others], x[:, j]).coef_
        np.testing.assert_allclose(m.B[others, j], ref, atol=1e-5)
    # deliberately broken: ridge that may use the item itself is a different (useless) model
    gram = x.T @ x
    broken = np.linalg.solve(gram + 3.0 * np.eye(len(gram)), gram)
    assert np.abs(broken[:, 7] - m.B[:, 7]).max() > 0.1
    np.testing.assert_allclose(m.scores(np.arange(3)), x[:3] @ m.B, atol=1e-5)
    with pytest.raises(ParameterError, match="reg"):
        cf.EASE(reg=0).check_params()


def test_implicit_als_half_step_is_the_weighted_ridge_over_every_cell():
    df = _taste_groups()
    m = cf.ImplicitALS(n_factors=4, reg=0.5, alpha=7.0, n_iter=1, seed=0).fit(df)
    x = m.seen.toarray()
    conf = 1 + 7.0 * x                              # every cell counts, unseen ones with 1
    for u in (0, 13, 41):
        # minimise sum_i c_ui (p_ui - x_u.y_i)^2 + reg |x_u|^2 as an ordinary least squares
        w = np.sqrt(conf[u])[:, None]
        a = np.vstack([w * m.Y, np.sqrt(0.5) * np.eye(4)])
        b = np.concatenate([w[:, 0] * x[u], np.zeros(4)])
        ref = np.linalg.lstsq(a, b, rcond=None)[0]
        got = cf.ImplicitALS._solve(m.seen.tocsr(), m.Y, 0.5, 7.0)[u]
        np.testing.assert_allclose(got, ref, atol=1e-8)
        # deliberately broken: dropping the unseen cells (confidence only where seen) differs
        seen = x[u] > 0
        wrong = np.linalg.lstsq(np.vstack([w[seen] * m.Y[seen], np.sqrt(0.5) * np.eye(4)]),
                                np.concatenate([w[seen, 0], np.zeros(4)]), rcond=None)[0]
        assert np.abs(wrong - ref).max() > 1e-3
    full = cf.ImplicitALS(n_factors=8, reg=0.1, alpha=10.0, n_iter=10, seed=0).fit(df)
    s = full.scores(np.arange(60))
    own = np.array([s[u, (u % 2) * 20:(u % 2) * 20 + 20].mean() for u in range(60)])
    other = np.array([s[u, (1 - u % 2) * 20:(1 - u % 2) * 20 + 20].mean() for u in range(60)])
    assert (own > other).all()
    for bad in (dict(n_factors=0), dict(reg=-1.0), dict(alpha=float("nan")), dict(n_iter=1.5)):
        with pytest.raises(ParameterError):
            cf.ImplicitALS(**bad).check_params()


def test_bpr_stops_early_on_validation_and_keeps_its_best_epoch():
    df = _taste_groups(per_user=10)
    valid = df.groupby("user_id").tail(2)
    train = df.drop(valid.index)
    m = cf.BPR(n_factors=8, n_epochs=200, lr=0.05, seed=0).fit(train, valid=valid, patience=3)
    assert 3 < len(m.history_valid) < 200          # stopped before the cap
    best = int(np.argmax(m.history_valid))
    assert len(m.history_valid) == best + 1 + 3     # three epochs without gain, then stop
    got = m.evaluate(valid, 10)["mrr@10"]
    assert got == pytest.approx(max(m.history_valid), abs=1e-9)   # the best epoch's weights
    with pytest.raises(DataError, match="validation data is empty"):
        cf.BPR(n_epochs=2).fit(train, valid=valid.iloc[:0])


def test_bpr_trains_on_the_device_it_is_given_and_refuses_a_missing_one():
    df = _taste_groups()
    m = cf.BPR(n_factors=4, n_epochs=2, device="cpu").fit(df)
    assert m.P.device.type == "cpu" and m.scores(np.arange(3)).shape == (3, 40)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            cf.BPR(device="cuda").fit(df)
    with pytest.raises(ParameterError, match="Unknown device"):
        cf.BPR(device="tpu").fit(df)
    mf = cf.BiasedMF(4, n_epochs=3, device="cpu").fit(_additive())
    assert mf.P.device.type == "cpu" and mf.P.dtype == torch.float64
    with pytest.raises(ParameterError, match="Unknown device"):
        cf.BiasedMF(device="tpu").check_params()


def test_bayesian_mf_draws_each_user_from_its_exact_gaussian_conditional():
    """The Gibbs step for one side, against the conditional written out with numpy: precision
    A = Λ + α Σ q qᵀ, mean A⁻¹(α Σ r q + Λ μ), covariance A⁻¹. Sample mean and covariance of
    8,000 draws agree; the deliberately wrong noise L⁻¹z (instead of L⁻ᵀz) would not."""
    rng = np.random.default_rng(0)
    n_u, n_i, d = 3, 7, 3
    u = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    i = np.array([0, 2, 5, 1, 3, 0, 4, 5, 6])
    resid = rng.normal(0, 1, len(u))
    Q = rng.normal(0, 1, (n_i, d))
    mu = np.array([0.3, -0.2, 0.1])
    a = rng.normal(size=(d, d))
    lam = a @ a.T + np.eye(d)
    m = cf.BayesianMF(n_factors=d, alpha=1.5)
    seen = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_u, n_i))
    res = sp.csr_matrix((resid, (u, i)), shape=(n_u, n_i))
    draws = np.stack([m._draw_rows(seen, res, Q, mu, lam, rng) for _ in range(8000)])
    wrong_gap = 0.0
    for user in range(n_u):
        mine = u == user
        prec = lam + 1.5 * Q[i[mine]].T @ Q[i[mine]]
        cov = np.linalg.inv(prec)
        mean = cov @ (1.5 * Q[i[mine]].T @ resid[mine] + lam @ mu)
        np.testing.assert_allclose(draws[:, user].mean(0), mean,
                                   atol=4 * np.sqrt(np.diag(cov).max() / 8000))
        scale = np.abs(cov).max()
        assert np.abs(np.cov(draws[:, user].T) - cov).max() < 0.06 * scale
        chol = np.linalg.cholesky(prec)
        wrong = np.linalg.inv(chol.T @ chol)       # the covariance of L⁻¹z
        wrong_gap = max(wrong_gap, np.abs(wrong - cov).max() / scale)
    assert wrong_gap > 0.2


def test_bayesian_mf_learns_a_low_rank_matrix_and_averages_its_samples():
    rng = np.random.default_rng(2)
    P, Q = rng.normal(size=(60, 2)), rng.normal(size=(40, 2))
    full = 3 + 0.6 * P @ Q.T
    u, i = np.nonzero(rng.random(full.shape) < 0.6)
    df = pd.DataFrame({"user_id": u, "item_id": i,
                       "rating": full[u, i] + rng.normal(0, 0.3, len(u))})
    m = cf.BayesianMF(n_factors=4, n_samples=40, burn_in=10, alpha=10.0).fit(df)
    held = np.nonzero(rng.random(full.shape) < 0.1)
    known = np.isin(held[0], u) & np.isin(held[1], i)
    pred = m.predict(held[0][known], held[1][known])
    rmse = np.sqrt(np.mean((pred - full[held][known]) ** 2))
    baseline = np.sqrt(np.mean((df.rating.mean() - full[held][known]) ** 2))
    assert rmse < 0.3 * baseline, (rmse, baseline)
    assert m.P_samples.shape == (40, 60, 4) and m.Q_samples.shape == (40, 40, 4)
    one = (m.P_samples[:, 5] * m.Q_samples[:, 7]).sum(1).mean() + m.mu
    assert m.predict([5], [7])[0] == pytest.approx(np.clip(one, m.r_min, m.r_max), abs=1e-5)
    assert m.scores([5])[0, m.item_map.encode([7])[0]] == pytest.approx(one, abs=1e-5)
    assert m.predict([999], [7])[0] == pytest.approx(m.mu)      # unknown user: global mean
    for bad in (dict(n_factors=0), dict(alpha=float("nan")), dict(n_samples=0),
                dict(burn_in=-1)):
        with pytest.raises(ParameterError):
            cf.BayesianMF(**bad).check_params()


def test_evaluate_per_user_gives_each_users_ndcg_in_user_order():
    train = pd.DataFrame({"user_id": [1, 1, 2, 3, 3], "item_id": [10, 11, 10, 11, 12]})
    test = pd.DataFrame({"user_id": [2, 1, 2], "item_id": [12, 12, 13]})
    um, im = build_id_map([1, 2, 3]), build_id_map([10, 11, 12, 13])
    m = cf.MostPopular().fit(train, um, im)
    per = m.evaluate(test, k=2, per_user=True)
    assert per.index.tolist() == [1, 2] and per.name == "ndcg@2"
    # user 1 gets [12, 13], relevant {12}: 1.0; user 2 gets [11, 12], relevant {12, 13}:
    # (1/log2 3) / (1 + 1/log2 3)
    assert per.loc[1] == 1.0
    assert per.loc[2] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert per.mean() == pytest.approx(m.evaluate(test, k=2)["ndcg@2"])
