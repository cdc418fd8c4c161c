import numpy as np
import pandas as pd
import pytest

from helpers.core.checks import DataError, ParameterError
from helpers.data import loaders, preprocess as pp


def test_normalisers():
    s = pd.Series(["  NORTHPEAK ", "northpeak", "North   peak", None])
    assert pp.normalise_brand(s).tolist()[:3] == ["Northpeak", "Northpeak", "North Peak"]
    assert pd.isna(pp.normalise_brand(s)[3])
    c = pd.Series(["Running Shoes", " running-shoes", "RUNNING_SHOES"])
    assert pp.normalise_category(c).tolist() == ["running_shoes"] * 3
    assert pp.normalise_event_type(pd.Series([" View", "PURCHASE"])).tolist() == ["view", "purchase"]
    with pytest.raises(DataError, match=r"Unknown event types \['wishlist'\]"):
        pp.normalise_event_type(pd.Series(["view", "wishlist"]))


@pytest.fixture(scope="module")
def cleaned():
    cat, crep = pp.clean_catalogue(loaders.load_shopworld("raw_catalogue"))
    ev, erep = pp.clean_events(loaders.load_shopworld("raw_events"), cat)
    return cat, crep, ev, erep


def test_cleaning_recovers_the_clean_log_exactly(cleaned):
    _, _, ev, erep = cleaned
    pd.testing.assert_frame_equal(ev, loaders.load_shopworld("events"))
    d = loaders.dirt_truth()
    assert erep["bot_users"] == d["bot_user_ids"]
    assert erep["orphan_item_ids"] == d["orphan_item_ids"]
    assert erep["duplicates_dropped"] == d["duplicate_events"]
    dropped = (erep["missing_timestamp_dropped"] + erep["duplicates_dropped"]
               + erep["orphan_events_dropped"] + erep["bot_events_dropped"])
    assert erep["rows_in"] - dropped == erep["rows_out"]  # nothing vanishes uncounted


def test_cleaning_recovers_the_catalogue_up_to_imputed_cells(cleaned):
    cat, crep, _, _ = cleaned
    truth = loaders.load_shopworld("catalogue").set_index("item_id")
    d = loaders.dirt_truth()
    assert sorted(crep["price_imputed"]) == sorted(d["missing_price_items"])
    assert sorted(crep["price_in_cents_fixed"]) == sorted(d["price_in_cents_items"])
    assert sorted(crep["description_filled"]) == sorted(d["missing_description_items"])
    ok = cat[~cat["price_imputed"]].set_index("item_id")
    pd.testing.assert_series_equal(ok["price"], truth.loc[ok.index, "price"])
    for col in ("brand", "category", "title"):
        assert (cat.set_index("item_id")[col] == truth[col]).all()


def _raw_events(**overrides):
    df = pd.DataFrame({"user_id": [1, 1, 2], "session_id": [1, 1, 2], "item_id": [10, 10, 11],
                       "event_type": ["view", "purchase", "view"], "timestamp": [5, 9, 7],
                       "rating": [np.nan, 4.0, np.nan]})
    for k, v in overrides.items():
        df[k] = v
    return df


CAT = pd.DataFrame({"item_id": [10, 11]})


@pytest.mark.parametrize("rating,msg", [([3.0, 4.0, np.nan], "non-purchase events carry a rating"),
                                        ([np.nan, 7.0, np.nan], "outside 1–5")])
def test_impossible_ratings_are_errors_not_drops(rating, msg):
    with pytest.raises(DataError, match=msg):
        pp.clean_events(_raw_events(rating=rating), CAT)


def test_clean_events_rejects_empty_and_missing_columns():
    with pytest.raises(DataError, match="empty"):
        pp.clean_events(_raw_events().iloc[:0], CAT)
    with pytest.raises(DataError, match="missing column"):
        pp.clean_events(_raw_events().drop(columns="timestamp"), CAT)


def test_missing_timestamps_are_dropped_and_counted():
    ev, rep = pp.clean_events(_raw_events(timestamp=[5, np.nan, 7]), CAT, bots=[])
    assert rep["missing_timestamp_dropped"] == 1 and len(ev) == 2


def test_conflicting_catalogue_rows_are_an_error():
    raw = pd.DataFrame({"item_id": [1, 1], "category": ["books", "books"],
                        "brand": ["Inkwell", "Quillon"], "title": ["A", "A"],
                        "description": ["x", "x"], "price": [10.0, 10.0]})
    with pytest.raises(DataError, match=r"Items \[1\] appear more than once"):
        pp.clean_catalogue(raw)
    raw.loc[1, "item_id"] = np.nan
    with pytest.raises(DataError, match="no item_id"):
        pp.clean_catalogue(raw)


def test_detect_bots():
    t = np.arange(0, 300, 2)
    bot = pd.DataFrame({"user_id": 9, "timestamp": t, "event_type": "view"})
    human = pd.DataFrame({"user_id": 1, "timestamp": np.arange(0, 150 * 60, 60),
                          "event_type": ["view", "click"] * 75})
    assert pp.detect_bots(pd.concat([bot, human])) == [9]


def test_id_map_round_trip_and_unknown_ids():
    m = pp.build_id_map([30, 10, 20, 10])
    assert m.ids.tolist() == [10, 20, 30]
    np.testing.assert_array_equal(m.encode([20, 30]), [1, 2])
    np.testing.assert_array_equal(m.decode([0, 2]), [10, 30])
    with pytest.raises(DataError, match=r"Unknown user\(s\) \[99\]"):
        m.encode([10, 99], "user")
    with pytest.raises(DataError, match="missing"):
        pp.build_id_map([1, None])


def test_interaction_matrices_match_a_pandas_pivot():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user_id": rng.integers(1, 30, 400), "item_id": rng.integers(1, 50, 400),
                       "event_type": rng.choice(pp.EVENT_TYPES, 400)})
    um, im = pp.build_id_map(df["user_id"]), pp.build_id_map(df["item_id"])
    mat = pp.interaction_matrix(df, um, im).toarray()
    ref = (df.assign(w=df["event_type"].map(pp.EVENT_WEIGHTS))
           .pivot_table(index="user_id", columns="item_id", values="w", aggfunc="max")
           .reindex(index=um.ids, columns=im.ids).fillna(0).to_numpy())
    np.testing.assert_array_equal(mat, ref)
    rated = df.drop_duplicates(["user_id", "item_id"]).assign(rating=3.0)
    assert pp.interaction_matrix(rated, um, im, kind="explicit").sum() == 3.0 * len(rated)
    with pytest.raises(DataError, match="rated more than once"):
        pp.interaction_matrix(df.assign(rating=3.0), um, im, kind="explicit")
    with pytest.raises(DataError, match="no rating"):
        pp.interaction_matrix(rated.assign(rating=np.nan), um, im, kind="explicit")


def _naive_leave_last_out(df):
    train, test = [], []
    for _, g in df.groupby("user_id"):
        g = g.sort_values(["timestamp", "item_id"], kind="stable")
        if len(g) > 2:
            train.append(g.iloc[:-2]); test.append(g.iloc[-1:])
        else:
            train.append(g)
    return pd.concat(train), pd.concat(test)


def test_leave_last_out_matches_a_plain_loop_and_never_leaks():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"user_id": rng.integers(1, 40, 500), "item_id": rng.integers(1, 90, 500),
                       "timestamp": rng.integers(0, 50, 500)}).drop_duplicates()
    train, valid, test = pp.leave_last_out(df)
    ref_train, ref_test = _naive_leave_last_out(df)
    assert sorted(test.index) == sorted(ref_test.index)
    assert sorted(train.index) == sorted(ref_train.index)
    assert len(train) + len(valid) + len(test) == len(df)
    assert pp.check_no_leakage(train, test) and pp.check_no_leakage(valid, test)


def test_random_split_leaks_time_and_the_check_says_so():
    ev = loaders.load_shopworld("events")
    buys = ev[ev["event_type"] != "view"]
    train, valid, test = pp.random_split(buys, (0.8, 0.1, 0.1), seed=0)
    assert len(train) + len(valid) + len(test) == len(buys)
    with pytest.raises(DataError, match="Time leak"):
        pp.check_no_leakage(train, test)
    with pytest.raises(DataError, match="sum to 1"):
        pp.random_split(buys, (0.5, 0.2))


def test_temporal_split_boundaries():
    df = pd.DataFrame({"timestamp": np.arange(10)})
    a, b, c = pp.temporal_split(df, [3, 7])
    assert (len(a), len(b), len(c)) == (3, 4, 3)
    with pytest.raises(DataError, match="increase strictly"):
        pp.temporal_split(df, [7, 3])


def test_cold_start_split_has_no_training_data_for_cold_items():
    ev, cat = loaders.load_shopworld("events"), loaders.load_shopworld("catalogue")
    cutoff = int(np.quantile(ev["timestamp"], 0.8))
    train, warm, cold = pp.cold_start_split(ev, cat, cutoff)
    assert len(train) + len(warm) + len(cold) == len(ev)
    assert not set(cold["item_id"]) & set(train["item_id"])
    assert len(cold) > 100
    with pytest.raises(DataError, match="catalogue does not have"):
        pp.cold_start_split(ev.assign(item_id=ev["item_id"] + 10_000), cat, cutoff)


def test_dirt_profile_measures_injected_dirt_and_zero_after_cleaning(cleaned):
    cat, _, ev, _ = cleaned
    raw_ev, raw_cat = loaders.load_shopworld("raw_events"), loaders.load_shopworld("raw_catalogue")
    d = loaders.dirt_truth()
    before = pp.dirt_profile(raw_ev, raw_cat)
    assert before["duplicate events"] == d["duplicate_events"]
    assert before["orphan events"] == d["orphan_events"]
    assert before["bot users"] == len(d["bot_user_ids"])
    assert before["duplicate catalogue rows"] == len(d["duplicated_items"])
    assert before["price > 20x category median"] == len(d["price_in_cents_items"])
    assert before["event_type not canonical"] > 0 and before["rows out of time order"] > 0
    assert (pp.dirt_profile(ev, cat) == 0).all()


# ------------------------------------------------------------------ the toolkits' protocols
@pytest.mark.parametrize("n, want", [(20, (16, 2, 2)), (10, (8, 1, 1)), (5, (3, 1, 1)),
                                     (3, (1, 1, 1)), (2, (1, 0, 1)), (1, (1, 0, 0)),
                                     (737, (591, 73, 73))])
def test_per_user_split_counts_follow_recboles_rounding(n, want):
    # worked by hand from RecBole 1.2.1's Dataset._calcu_split_ids (the peers' runner also
    # checks every MovieLens user's counts against RecBole's own split)
    df = pd.DataFrame({"user_id": 7, "item_id": np.arange(n)})
    parts = pp.per_user_split(df, seed=3)
    assert tuple(len(p) for p in parts) == want


def test_per_user_split_keeps_every_row_once_and_every_user_in_training():
    ml = loaders.load_movielens()["ratings"]
    train, valid, test = pp.per_user_split(ml, seed=0)
    assert len(train) + len(valid) + len(test) == len(ml)
    assert pd.concat([train, valid, test]).sort_index().equals(ml)
    for part in (train, valid, test):              # input order kept inside each part
        assert part.index.is_monotonic_increasing
    share = train.groupby("user_id").size() / ml.groupby("user_id").size()
    assert share.min() >= 0.75 and set(test["user_id"]) == set(ml["user_id"])
    # a pooled split (pp.random_split) gives some users far less of their own history
    pooled = pp.random_split(ml, (0.8, 0.1, 0.1), seed=0)[0]
    assert (pooled.groupby("user_id").size() / ml.groupby("user_id").size()).min() < 0.65
    again = pp.per_user_split(ml, seed=0)
    other = pp.per_user_split(ml, seed=1)
    assert again[2].equals(test) and not other[2].equals(test)


def test_protocols_refuse_bad_input():
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 5, 6], "timestamp": [1, 1, 2]})
    with pytest.raises(DataError, match="repeated \\(user, item\\) pairs"):
        pp.per_user_split(df)
    with pytest.raises(DataError, match="repeated \\(user, item, time\\) rows"):
        pp.leave_last_out(df)
    ok = df.drop_duplicates()
    for bad in [(0.8, 0.2), (0.8, 0.1, 0.2), (0.8, float("nan"), 0.1), (1.1, -0.05, -0.05)]:
        with pytest.raises(DataError, match="ratios"):
            pp.per_user_split(ok, bad)
    with pytest.raises(DataError, match="ties must be"):
        pp.leave_last_out(ok, ties="time")
    with pytest.raises(DataError, match="no user_id"):
        pp.per_user_split(ok.assign(user_id=[1.0, np.nan]))
    with pytest.raises(DataError):
        pp.per_user_split(ok.iloc[:0])


def test_leave_last_out_ties_by_item_or_as_given():
    # user 1's last two events share a time: by item ID, item 3 is last; as given, item 2 is
    df = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [9, 3, 2, 8],
                       "timestamp": [1, 5, 5, 0]})
    assert pp.leave_last_out(df)[2]["item_id"].tolist() == [3]
    assert pp.leave_last_out(df, ties="input")[2]["item_id"].tolist() == [2]
    assert pp.leave_last_out(df, ties="input")[1]["item_id"].tolist() == [3]


def test_first_users_keeps_whole_users_in_order_and_none_keeps_the_frame():
    df = pd.DataFrame({"user_id": [5, 2, 5, 8, 2, 9], "item_id": range(6)},
                      index=[10, 11, 12, 13, 14, 15])
    two = pp.first_users(df, 2)
    assert two.index.tolist() == [10, 11, 12, 14]             # every row of users 5 and 2
    pd.testing.assert_frame_equal(two, df.loc[[10, 11, 12, 14]])
    assert pp.first_users(df, 10).equals(df)                   # more than there are: all
    assert pp.first_users(df, None) is df                      # quick and full: untouched
    other = df.rename(columns={"user_id": "shopper"})
    assert pp.first_users(other, 1, col_user="shopper")["shopper"].unique().tolist() == [5]


@pytest.mark.parametrize("n,err,match", [(0, ParameterError, ">= 1"),
                                         (1.5, ParameterError, "integer"),
                                         ("3", ParameterError, "integer"),
                                         (True, ParameterError, "integer")])
def test_first_users_refuses_bad_counts(n, err, match):
    df = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]})
    with pytest.raises(err, match=match):
        pp.first_users(df, n)


def test_first_users_refuses_what_is_not_a_log():
    with pytest.raises(TypeError, match="DataFrame"):
        pp.first_users([1, 2], 1)
    with pytest.raises(DataError, match="user_id"):
        pp.first_users(pd.DataFrame({"item_id": [1]}), 1)
