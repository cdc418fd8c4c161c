"""helpers.serving.online.FoldIn: a folded-in user's factors equal the closed-form solve written out
densely (C_u as a full diagonal), new events move recommendations, new users get rows, cold
items are counted (never dropped silently) and an out-of-order batch is refused."""
import warnings

import numpy as np
import pandas as pd
import pytest

from helpers.core.checks import DataError, ParameterError
from helpers.models import cf
from helpers.serving import online


def _log(seed=0, n_users=40, n_items=30, n=400):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"user_id": rng.integers(1, n_users + 1, n),
                       "item_id": rng.integers(1, n_items + 1, n),
                       "timestamp": np.arange(n)})
    return df.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


def _dense_solve(model, row):
    """x_u = (Yᵀ C_u Y + reg I)⁻¹ Yᵀ C_u p_u with every cell's confidence written out."""
    Y = model.Y
    p = model.seen[row].toarray().ravel()
    c = 1 + model.alpha * p
    a = Y.T @ (c[:, None] * Y) + model.reg * np.eye(Y.shape[1])
    return np.linalg.solve(a, Y.T @ (c * p))


def test_fold_in_equals_the_dense_closed_form_and_moves_the_list():
    df = _log()
    model = cf.ImplicitALS(8, n_iter=5).fit(df[df["timestamp"] < 300])
    live = online.FoldIn(model)
    user = int(df["user_id"].iloc[0])
    before = model.recommend([user], k=5)["item_id"].tolist()
    new = pd.DataFrame({"user_id": [user] * 3, "item_id": before[:3], "timestamp": [300] * 3})
    stats = live.update(new)
    assert stats == {"events": 3, "users updated": 1, "new users": 0, "cold item events": 0}
    row = model.user_map.encode([user])[0]
    np.testing.assert_allclose(model.X[row], _dense_solve(model, row), atol=1e-10)
    after = model.recommend([user], k=5)["item_id"].tolist()
    assert not set(before[:3]) & set(after)           # now seen: excluded from the list
    other = model.user_map.encode([int(df["user_id"].iloc[1])])[0]
    if other != row:                                   # an untouched user keeps their factors
        np.testing.assert_array_equal(model.X[other], cf.ImplicitALS(8, n_iter=5).fit(
            df[df["timestamp"] < 300]).X[other])


def test_new_users_and_cold_items():
    df = _log(1)
    model = cf.ImplicitALS(8, n_iter=5).fit(df)
    live = online.FoldIn(model)
    known_item = int(df["item_id"].iloc[0])
    new = pd.DataFrame({"user_id": [10_001, 10_001, 10_002], "item_id": [known_item, 999, 998],
                        "timestamp": [1000, 1001, 1002]})
    stats = live.update(new)
    assert stats["new users"] == 2 and stats["cold item events"] == 2
    assert live.cold_item_events == {999: 1, 998: 1}
    r1 = model.user_map.encode([10_001])[0]
    np.testing.assert_allclose(model.X[r1], _dense_solve(model, r1), atol=1e-10)
    assert model.seen[r1].sum() == 1                   # the cold item is not in the history
    recs = model.recommend([10_001], k=3)
    assert len(recs) == 3 and known_item not in recs["item_id"].tolist()



def test_an_item_the_map_holds_but_nobody_met_is_folded_in_not_counted():
    """cold_item_events counts only IDs missing from the item map (chapter 08b's replay prints 0
    while events on never-met items arrive): an item the map holds with no interactions, whose
    factors are zero, joins the user's history like any other item."""
    from helpers.data import preprocess as pp

    df = _log(4)
    train = df[df["item_id"] <= 25]                       # items 26..30: in the map, never met
    model = cf.ImplicitALS(8, n_iter=3).fit(train, pp.build_id_map(train["user_id"]),
                                            pp.build_id_map(pd.Series(range(1, 31))))
    col = model.item_map.encode([27])[0]
    assert np.allclose(model.Y[col], 0)
    live = online.FoldIn(model)
    user = int(train["user_id"].iloc[0])
    stats = live.update(pd.DataFrame({"user_id": [user], "item_id": [27], "timestamp": [1000]}))
    assert stats["cold item events"] == 0 and not live.cold_item_events
    row = model.user_map.encode([user])[0]
    assert model.seen[row, col] == 1
    np.testing.assert_allclose(model.X[row], _dense_solve(model, row), atol=1e-10)

def test_bad_batches_are_refused():
    df = _log(2)
    live = online.FoldIn(cf.ImplicitALS(4, n_iter=2).fit(df))
    live.update(pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [500]}))
    with pytest.raises(DataError, match="out of order"):
        live.update(pd.DataFrame({"user_id": [1], "item_id": [3], "timestamp": [499]}))
    with pytest.raises(DataError, match="empty"):
        live.update(pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []}))
    with pytest.raises(DataError, match="missing column"):
        live.update(pd.DataFrame({"user": [1]}))
    with pytest.raises(DataError, match="ImplicitALS"):
        online.FoldIn(cf.MostPopular().fit(df))
    with pytest.raises(DataError, match="not fitted"):
        online.FoldIn(cf.ImplicitALS(4))


def test_fold_in_equals_implicits_recalculate_user():
    """The field's library: implicit's ALS solves the same user half-step. Its confidence on a
    seen cell is alpha * r where the course's is 1 + alpha * r, so implicit's alpha = the
    course's alpha + 1 gives the same solve (float32 there: agreement to 1e-5)."""
    pytest.importorskip("implicit")
    from implicit.cpu.als import AlternatingLeastSquares

    df = _log(3)
    model = cf.ImplicitALS(8, alpha=9.0, reg=0.05, n_iter=3).fit(df)
    rows = model.seen.tocsr().astype(np.float32)
    with warnings.catch_warnings():          # implicit's advice on OpenBLAS threads, not an error
        warnings.filterwarnings("ignore", message="OpenBLAS is configured")
        peer = AlternatingLeastSquares(factors=8, regularization=0.05, alpha=10.0, iterations=1,
                                       use_cg=False, random_state=0)
        peer.fit(rows, show_progress=False)
    peer.item_factors = model.Y.astype(np.float32)          # the same fixed item factors
    live = online.FoldIn(model)
    user = int(df["user_id"].iloc[0])
    new_item = next(i for i in model.item_map.ids if i not in
                    df.loc[df["user_id"] == user, "item_id"].to_numpy())
    live.update(pd.DataFrame({"user_id": [user], "item_id": [new_item], "timestamp": [10_000]}))
    row = model.user_map.encode([user])[0]
    theirs = np.asarray(peer.recalculate_user(row, model.seen[row].astype(np.float32)))
    np.testing.assert_allclose(model.X[row], theirs.ravel(), atol=1e-5)
    # the broken version: the course's alpha passed unchanged is a different model
    peer.alpha = 9.0
    off = np.asarray(peer.recalculate_user(row, model.seen[row].astype(np.float32))).ravel()
    assert np.abs(off - model.X[row]).max() > 1e-3


def test_place_items_by_content():
    from sklearn.linear_model import Ridge

    df = _log(3)
    train = df[df["item_id"] <= 25]                       # items 26..30 never met: cold
    from helpers.data import preprocess as pp
    model = cf.ImplicitALS(8, n_iter=5).fit(train, pp.build_id_map(train["user_id"]),
                                            pp.build_id_map(pd.Series(range(1, 31))))
    rng = np.random.default_rng(0)
    feats = pd.DataFrame(rng.normal(size=(32, 5)), index=range(1, 33))   # 31, 32: new IDs
    live = online.FoldIn(model)
    assert np.allclose(model.Y[model.item_map.encode([26, 27])], 0)      # ALS left them at 0
    cold_event = pd.DataFrame({"user_id": [1], "item_id": [31], "timestamp": [500]})
    assert live.update(cold_event)["cold item events"] == 1
    warm_ids = np.sort(train["item_id"].unique())
    Y_warm = model.Y[model.item_map.encode(warm_ids)].copy()
    stats = live.place_items(feats, [26, 27, 28, 29, 30, 31, 32], reg=2.0)
    assert stats["placed"] == 7 and stats["new IDs"] == 2 and stats["warm items fitted"] == 25
    ref = Ridge(alpha=2.0).fit(feats.loc[warm_ids].to_numpy(), Y_warm)
    got = model.Y[model.item_map.encode([26, 31, 32])]
    assert np.allclose(got, ref.predict(feats.loc[[26, 31, 32]].to_numpy()))
    assert np.isclose(stats["ridge R2"], ref.score(feats.loc[warm_ids].to_numpy(), Y_warm))
    assert 31 not in live.cold_item_events                 # now known, no longer cold
    assert model.seen.shape == (len(model.user_map), 32) and len(model.popularity) == 32
    for row in (0, 5):                                     # every user re-solved on the new Y
        assert np.allclose(model.X[row], _dense_solve(model, row), atol=1e-8)
    scores = model.scores(np.arange(len(model.user_map)))
    assert np.isfinite(scores).all() and (scores[:, model.item_map.encode([31, 32])] != 0).any()
    live.update(pd.DataFrame({"user_id": [2], "item_id": [32], "timestamp": [501]}))
    assert live.cold_item_events[32] == 0 and model.seen[model.user_map.encode([2])[0],
                                                         model.item_map.encode([32])[0]] == 1
    with pytest.raises(DataError, match="already have interactions"):
        live.place_items(feats, [1])
    with pytest.raises(DataError, match="no feature vector"):
        live.place_items(feats, [99])
    with pytest.raises(DataError, match="no items"):
        live.place_items(feats, [])
    with pytest.raises(DataError, match="NaN"):
        live.place_items(feats.assign(**{"0": np.nan}).rename(columns=str), [26])
    with pytest.raises(ParameterError, match="reg"):
        live.place_items(feats, [26], reg=0)


def test_replay_fold_in_predicts_each_event_before_it_learns_it():
    """Chapter 08b's replay with every=1 equals an independent loop: ask the model (its own
    `recommend`, which leaves out what it has seen), then fold the event in. The model passed
    in is not changed; a loop that tells the model first (the mistake the replay guards
    against) scores higher, so the comparison would catch it."""
    df = _log(n=600)
    train, stream = df[df["timestamp"] < 400], df[df["timestamp"] >= 400]
    stream = stream[stream["user_id"].isin(train["user_id"])]
    model = cf.ImplicitALS(8, n_iter=5).fit(train)
    x_before = model.X.copy()
    hits = online.replay_fold_in(model, train, stream, every=1, k=5)
    np.testing.assert_array_equal(model.X, x_before)

    def loop():
        live, out = online.FoldIn(cf.ImplicitALS(8, n_iter=5).fit(train)), []
        for row in stream.itertuples(index=False):
            listed = live.model.recommend([row.user_id], k=5)["item_id"].to_numpy()
            out.append(row.item_id in listed)
            live.update(pd.DataFrame([row._asdict()]))
        return np.array(out)

    def told_first():
        live, out = online.FoldIn(cf.ImplicitALS(8, n_iter=5).fit(train)), []
        met = {u: set(g) for u, g in train.groupby("user_id")["item_id"]}
        for row in stream.itertuples(index=False):
            live.update(pd.DataFrame([row._asdict()]))
            out.append(row.item_id in online.top_unmet(live.model, row.user_id, met, 5))
            met[row.user_id].add(row.item_id)
        return np.array(out)

    np.testing.assert_array_equal(hits, loop())
    assert told_first().mean() > hits.mean()
    # folding in less often changes what the model knows, not the candidates
    assert len(online.replay_fold_in(model, train, stream, every=50, k=5)) == len(stream)


def test_replay_fold_in_refuses_bad_streams():
    df = _log()
    train, stream = df[df["timestamp"] < 300], df[df["timestamp"] >= 300]
    stream = stream[stream["user_id"].isin(train["user_id"])]
    model = cf.ImplicitALS(8, n_iter=3).fit(train)
    with pytest.raises(DataError, match="time order"):
        online.replay_fold_in(model, train, stream.iloc[::-1])
    with pytest.raises(DataError, match="no training events"):
        online.replay_fold_in(model, train, stream.assign(user_id=stream["user_id"] + 10_000))
    with pytest.raises(DataError, match="empty"):
        online.replay_fold_in(model, train, stream.iloc[:0])
    with pytest.raises(ParameterError, match="every must be a positive integer"):
        online.replay_fold_in(model, train, stream, every=0)
    with pytest.raises(DataError, match="fitted"):
        online.replay_fold_in(cf.ImplicitALS(8), train, stream)
