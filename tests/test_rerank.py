"""helpers.serving.rerank against brute-force references: each greedy step recomputed from its
definition (MMR's marginal relevance, the DPP kernel's log-determinant via numpy.linalg.slogdet,
Steck's objective via evaluation.calibration_kl), and the knobs' end points."""
import numpy as np
import pandas as pd
import pytest

from helpers.core.checks import DataError, ParameterError
from helpers.evaluation import offline as E
from helpers.models import cf
from helpers.serving import rerank as R


def _data(seed=0, n=30, d=6):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return rng.normal(size=n), v


def _scaled(r):
    return (r - r.min()) / (r.max() - r.min())


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_mmr_equals_its_definition(lam):
    r, v = _data(1)
    s = v @ v.T
    got = R.mmr(r, s, 8, lam)
    rs, chosen = _scaled(r), [int(np.argmax(r))]
    while len(chosen) < 8:
        best = max((j for j in range(len(r)) if j not in chosen),
                   key=lambda j: lam * rs[j] - (1 - lam) * max(s[j, c] for c in chosen))
        chosen.append(best)
    assert got.tolist() == chosen
    if lam == 1.0:
        assert got.tolist() == np.argsort(-r, kind="stable")[:8].tolist()


@pytest.mark.parametrize("theta", [0.2, 0.5, 0.9])   # at 0 every first pick ties
def test_dpp_greedy_equals_brute_force_log_determinants(theta):
    r, v = _data(2, d=10)                 # rank 10: seven items can be independent
    got = R.dpp_greedy(r, v, 7, theta)
    alpha = theta / (2 * (1 - theta))
    q = np.exp(alpha * r)
    L = q[:, None] * (v @ v.T) * q[None, :]
    chosen = []
    for _ in range(7):
        logdet = {j: np.linalg.slogdet(L[np.ix_(chosen + [j], chosen + [j])])[1]
                  for j in range(len(r)) if j not in chosen}
        chosen.append(max(logdet, key=logdet.get))
    assert got.tolist() == chosen
    # more weight on relevance, more relevant lists
    assert r[R.dpp_greedy(r, v, 7, 0.95)].mean() > r[R.dpp_greedy(r, v, 7, 0.0)].mean()


def test_dpp_fills_by_relevance_once_nothing_independent_is_left():
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert R.dpp_greedy([1.0, 0.9, 0.1, 0.05], v, 4, 0.5).tolist() == [0, 2, 1, 3]


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95])
def test_calibrated_equals_steck_objective_greedily(lam):
    rng = np.random.default_rng(3)
    r = rng.normal(size=25)
    cats = rng.integers(0, 4, 25)
    p = np.array([0.5, 0.3, 0.2, 0.0])
    got = R.calibrated(r, cats, p, 6, lam)
    rs, chosen = _scaled(r), []
    for _ in range(6):
        def obj(j):
            lst = chosen + [j]
            q = np.bincount(cats[lst], minlength=4) / len(lst)
            return (1 - lam) * rs[lst].sum() - lam * E.calibration_kl(p, q, 0.01)
        chosen.append(max((j for j in range(25) if j not in chosen), key=obj))
    assert got.tolist() == chosen
    if lam == 0.0:
        assert got.tolist() == np.argsort(-r, kind="stable")[:6].tolist()
    q = np.bincount(cats[R.calibrated(r, cats, p, 10, 0.95)], minlength=4) / 10
    q0 = np.bincount(cats[np.argsort(-r)[:10]], minlength=4) / 10
    assert E.calibration_kl(p, q) <= E.calibration_kl(p, q0)


@pytest.mark.parametrize("call,err,match", [
    (lambda: R.mmr([1.0, 2.0], np.eye(2), 1, lam=1.5), ParameterError, "lam"),
    (lambda: R.mmr([1.0, 2.0], np.eye(2), 0), DataError, "positive integer"),
    (lambda: R.mmr([], np.eye(0), 1), DataError, "non-empty"),
    (lambda: R.mmr([1.0, 2.0], np.eye(2), 3), DataError, "only 2 candidates"),
    (lambda: R.mmr([1.0, np.nan], np.eye(2), 1), DataError, "NaN"),
    (lambda: R.mmr([1.0, 2.0], np.eye(3), 1), DataError, r"\(2, 2\)"),
    (lambda: R.dpp_greedy([1.0, 2.0], np.eye(2), 1, theta=1.0), ParameterError, "theta"),
    (lambda: R.dpp_greedy([1.0, 2.0], np.zeros((2, 2)), 1), DataError, "all zero"),
    (lambda: R.calibrated([1.0, 2.0], [0, 5], [0.5, 0.5], 1), DataError, "categories"),
    (lambda: R.calibrated([1.0, 2.0], [0, 1], [0.5, 0.6], 1), DataError, "distribution"),
])
def test_bad_input_is_refused(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_rerank_wraps_a_model():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"user_id": rng.integers(0, 20, 400), "item_id": rng.integers(0, 50, 400)})
    df = df.drop_duplicates().reset_index(drop=True)
    model = cf.MostPopular().fit(df)
    vec = pd.DataFrame(rng.normal(size=(50, 4)), index=range(50))
    users = sorted(df["user_id"].unique())[:5]
    base = model.recommend(users, k=10)
    same = R.rerank(model, users, k=10, method="mmr", lam=1.0, n_candidates=20, item_vectors=vec)
    assert same[["user_id", "item_id", "rank"]].reset_index(drop=True).equals(
        base[["user_id", "item_id", "rank"]].reset_index(drop=True))
    div = R.rerank(model, users, k=10, method="dpp", theta=0.0, n_candidates=30, item_vectors=vec)
    assert E.intra_list_diversity(div, vec).mean() > E.intra_list_diversity(base, vec).mean()
    cat = pd.Series(rng.choice(list("abc"), 50), index=range(50))
    cal = R.rerank(model, users, k=10, method="calibrated", lam=0.99, n_candidates=30,
                   item_category=cat, history=df)
    assert E.calibration(cal, df, cat).mean() < E.calibration(base, df, cat).mean()
    with pytest.raises(DataError, match="item_vectors"):
        R.rerank(model, users, method="mmr")
    with pytest.raises(DataError, match="method"):
        R.rerank(model, users, method="random")


def _frontier_world():
    """60 users with a clear favourite of three categories over 60 items, leave-last-out, EASE."""
    from helpers.data import preprocess as pp

    rng = np.random.default_rng(5)
    cat = pd.Series(np.repeat(list("abc"), 20), index=range(60))
    rows = []
    for u in range(60):
        fav = np.flatnonzero(cat.to_numpy() == "abc"[u % 3])
        items = np.concatenate([rng.choice(fav, 8, replace=False),
                                rng.choice(60, 3, replace=False)])
        rows += [(u, int(i), t) for t, i in enumerate(dict.fromkeys(items.tolist()))]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    train, _, test = pp.leave_last_out(df)
    model = cf.EASE(10.0).fit(train, pp.build_id_map(df["user_id"]),
                              pp.build_id_map(cat.index.to_series()))
    vec = pd.DataFrame(np.eye(3)[cat.map("abc".index)] + 0.3 * rng.normal(size=(60, 3)),
                       index=cat.index)
    return model, np.sort(test["user_id"].unique()), train, test, vec, cat


def test_frontier_measures_every_setting_against_the_models_own_lists():
    """The knobs' end points are the model's own top 10 (a zero change, a zero-width interval,
    the NDCG of ``model.recommend`` scored on its own); the strong settings diversify and
    calibrate; each row is its setting's lists as ``rerank`` makes them (the knob reaches it)."""
    model, users, train, test, vec, cat = _frontier_world()
    t = R.frontier(model, users, train, test, item_vectors=vec, item_category=cat,
                   n_candidates=30, n_boot=200)
    assert list(t.index) == [(m, f"{knob}={v}") for m, (knob, vs) in R.FRONTIER_GRID.items()
                             for v in vs]
    own = E.per_user_metrics(model.recommend(users, k=10), test, k=10)
    for end in [("mmr", "lam=1.0"), ("calibrated", "lam=0.0")]:
        assert t.loc[end, "NDCG@10"] == pytest.approx(own["ndcg@10"].mean())
        assert t.loc[end, "HR@10"] == pytest.approx(own["hr@10"].mean())
        assert t.loc[end, ["diff", "diff lo", "diff hi"]].abs().max() < 1e-12
    assert np.allclose(t["diff"], t["NDCG@10"] - own["ndcg@10"].mean())
    assert ((t["diff lo"] <= t["diff"]) & (t["diff"] <= t["diff hi"])).all()
    assert t.loc[("dpp", "theta=0.3"), "ILD"] > t.loc[("mmr", "lam=1.0"), "ILD"] + 0.05
    assert t.loc[("calibrated", "lam=0.99"), "calibration KL"] < t.loc[("mmr", "lam=1.0"),
                                                                        "calibration KL"]
    lists = R.rerank(model, users, method="mmr", lam=0.5, n_candidates=30, item_vectors=vec)
    row = t.loc[("mmr", "lam=0.5")]
    assert row["ILD"] == pytest.approx(E.intra_list_diversity(lists, vec).mean())
    assert row["coverage"] == pytest.approx(lists["item_id"].nunique() / 60)
    assert row["calibration KL"] == pytest.approx(E.calibration(lists, train, cat).mean())
    assert (t["seconds"] > 0).all()


@pytest.mark.parametrize("change, match", [
    (dict(grid={"random": ("lam", [0.5])}), "unknown method"),
    (dict(grid={"dpp": ("lam", [0.5])}), "theta"),
    (dict(grid={"mmr": ("lam", [])}), "at least one value"),
    (dict(grid={}), "non-empty"),
    (dict(users=[]), "non-empty"),
    (dict(users=[1, 1]), "duplicates"),
    (dict(users=[0, 1]), "exactly the users of test"),
    (dict(item_vectors=np.eye(3)), "DataFrame"),
])
def test_frontier_refuses_bad_input(change, match):
    model, users, train, test, vec, cat = _frontier_world()
    kw = dict(users=users, item_vectors=vec, item_category=cat) | change
    with pytest.raises(DataError, match=match):
        R.frontier(model, kw.pop("users"), train, test, **kw)


@pytest.fixture(scope="module")
def world():
    from helpers.reasons import world as W
    return W.reason_world()


def test_diversified_slot_reason_is_honest_and_passes_the_guard(world):
    from helpers.reasons import explainers, guard
    facts, lex = world.facts, world.lex
    category = pd.Series({i: f["category"] for i, f in facts.items()})
    history = world.train_reviews[["user_id", "item_id"]]
    mix = E.category_mixes(history, category)
    template = explainers.TemplateExplainer(facts, world.profile)
    dg = R.DiversityGuard(guard.ClosedWorldGuard(facts, lex), mix, category, usual=0.1)
    u = int(mix.index[0])
    top = mix.loc[u].idxmax()
    usual_item = int(category.index[category == top][0])
    odd_cat = mix.loc[u].idxmin()
    assert mix.at[u, odd_cat] < 0.1
    odd_item = int(category.index[category == odd_cat][0])
    lists = pd.DataFrame({"user_id": [u, u], "item_id": [usual_item, odd_item], "rank": [1, 2]})
    out = dg.explain(template, lists)
    assert out["different"].tolist() == [False, True]
    assert out["item_id"].tolist() == [usual_item, odd_item]          # order kept
    assert not out["reason"].iloc[0].startswith(R.DIFFERENT)
    assert out["reason"].iloc[1] == R.DIFFERENT + template.explain_one(u, odd_item)
    assert all(dg.passes(r, u, i) for r, i in zip(out["reason"], out["item_id"]))
    # the base guard alone rejects the prefix's words: the diversity guard is what checks them
    assert not guard.ClosedWorldGuard(facts, lex).passes(out["reason"].iloc[1], u, odd_item)
    # a false "different" (a usual category) is named, and so is a false claim after the prefix
    lie = R.DIFFERENT + template.explain_one(u, usual_item)
    assert any("different from your usual" in p for p in dg.problems(lie, u, usual_item))
    assert dg.problems(R.DIFFERENT + "Recommended for its gold plating.", u, odd_item)
    with pytest.raises(DataError, match="no history"):
        dg.problems(lie, -1, usual_item)
    with pytest.raises(ParameterError, match="usual"):
        R.DiversityGuard(dg.guard, mix, category, usual=0.0)
