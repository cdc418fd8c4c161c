"""The simulator: deterministic, the committed world is what the code makes, and the world
has the properties the course relies on (checked from the outside, on the committed data)."""
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core import checks
from helpers.data import loaders, shopworld as sw, vocab as V

SMALL = dict(n_users=150, n_items=100)


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = sw.write_world(sw.generate(sw.WorldConfig(**SMALL, seed=3), progress=False), tmp_path / "a")
    b = sw.write_world(sw.generate(sw.WorldConfig(**SMALL, seed=3), progress=False), tmp_path / "b")
    c = sw.write_world(sw.generate(sw.WorldConfig(**SMALL, seed=4), progress=False), tmp_path / "c")
    assert a == b
    assert a["events.parquet"] != c["events.parquet"]


@pytest.mark.slow
def test_committed_world_is_exactly_what_the_generator_makes(tmp_path):
    made = sw.write_world(sw.generate(sw.WorldConfig(), progress=False), tmp_path / "w")
    committed = loaders.verify_shopworld()
    assert made == committed, ("datasets/shopworld differs from a fresh generation: run "
                               "`python -m helpers.data.shopworld --out datasets/shopworld` and commit")


@pytest.mark.parametrize("kwargs,msg", [({"n_users": 0}, "n_users"), ({"n_items": 10}, "32"),
                                        ({"review_rate": 1.5}, "review_rate"),
                                        ({"dirt_rates": {"gremlins": 0.1}}, "gremlins"),
                                        ({"colour_taste_max": -0.5}, "colour_taste_max"),
                                        ({"colour_taste_max": float("nan")}, "colour_taste_max"),
                                        ({"colour_taste_max": "high"}, "colour_taste_max")])
def test_config_rejects_bad_values(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        sw.WorldConfig(**kwargs)


def test_colour_taste_knob_changes_only_how_much_colour_counts():
    """Chapter 06's "shop where colour decides" needs the same catalogue, icons and people with
    only their colour taste scaled: everything drawn before behaviour must be identical."""
    base = sw.generate(sw.WorldConfig(**SMALL, seed=3, dirt=False), progress=False)
    keen = sw.generate(sw.WorldConfig(**SMALL, seed=3, dirt=False, colour_taste_max=2.4),
                       progress=False)
    for table in ("catalogue", "item_truth", "users"):
        pd.testing.assert_frame_equal(base.tables[table], keen.tables[table])
    assert base.images == keen.images
    a, b = base.tables["user_truth"], keen.tables["user_truth"]
    pd.testing.assert_frame_equal(a.drop(columns="colour_taste"), b.drop(columns="colour_taste"))
    np.testing.assert_allclose(b["colour_taste"], 3 * a["colour_taste"], atol=2e-3)
    assert not base.tables["events"].equals(keen.tables["events"])
    # and it matters: the keen shoppers buy their favourite colour more often
    share = {name: sw.favourite_colour_share(w.tables["events"], w.tables["item_truth"],
                                             w.tables["user_truth"])
             for name, w in (("base", base), ("keen", keen))}
    assert share["keen"] > share["base"] + 0.05, share


def test_favourite_colour_share_counts_by_hand_and_refuses_bad_tables():
    items = pd.DataFrame({"item_id": [1, 2], "colour": ["red", "blue"]})
    users = pd.DataFrame({"user_id": [7, 8], "fav_colour": ["red", "red"]})
    events = pd.DataFrame({"user_id": [7, 8, 8, 7], "item_id": [1, 2, 1, 2],
                           "event_type": ["purchase", "purchase", "purchase", "view"]})
    assert sw.favourite_colour_share(events, items, users) == pytest.approx(2 / 3)
    with pytest.raises(checks.DataError, match="no purchase"):
        sw.favourite_colour_share(events[events["event_type"] == "view"], items, users)
    with pytest.raises(checks.DataError, match="user the truth table does not know"):
        sw.favourite_colour_share(events.assign(user_id=[7, 9, 8, 7]), items, users)
    with pytest.raises(checks.DataError, match="fav_colour"):
        sw.favourite_colour_share(events, items, users.drop(columns="fav_colour"))


@pytest.fixture(scope="module")
def world():
    return {t: loaders.load_shopworld(t) for t in
            ["catalogue", "events", "item_truth", "user_truth", "reviews", "reasons", "images"]}


def test_catalogue_is_varied_and_covers_every_category(world):
    cat = world["catalogue"]
    assert set(cat["category"]) == set(V.CATEGORIES) and len(V.CATEGORIES) >= 8
    assert cat.groupby("category").size().min() >= 4
    assert cat["description"].is_unique and cat["title"].is_unique


def test_colour_is_stated_in_text_for_only_part_of_the_items(world):
    cat = world["catalogue"].merge(world["item_truth"], on="item_id")
    stated = [c in d for c, d in zip(cat["colour"], cat["description"])]
    said = np.array(stated)
    flag = cat["colour_in_text"].to_numpy()
    assert said[flag].all()
    openers = ("Available in", "comes in", "Finished in")
    assert not any(o in d for d in cat.loc[~flag, "description"] for o in openers)
    assert 0.35 < flag.mean() < 0.65


def test_long_tails_in_popularity_and_activity(world):
    ev = world["events"]
    per_item = ev.groupby("item_id").size().sort_values(ascending=False)
    per_user = ev.groupby("user_id").size().sort_values(ascending=False)
    assert per_item.head(len(per_item) // 10).sum() / per_item.sum() > 0.4
    assert per_user.head(len(per_user) // 10).sum() / per_user.sum() > 0.25
    counts = ev["event_type"].value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 1000
    density = ev[["user_id", "item_id"]].drop_duplicates().shape[0] / (2000 * 2000)
    assert density < 0.02


def test_purchases_follow_the_hidden_preferences(world):
    ev, cat, ut = world["events"], world["catalogue"], world["user_truth"]
    buys = ev[ev["event_type"] == "purchase"].merge(cat[["item_id", "category"]], on="item_id")
    aff = ut.set_index("user_id")[[f"aff_{c}" for c in V.CATEGORIES]]
    top2 = aff.apply(lambda r: set(c[4:] for c in r.nlargest(2).index), axis=1)
    in_top2 = [c in top2[u] for u, c in zip(buys["user_id"], buys["category"])]
    assert np.mean(in_top2) > 0.7
    # better quality on the aspects a user weighs -> higher rating
    it = world["item_truth"].set_index("item_id")
    sat = []
    for u, i in zip(buys["user_id"], buys["item_id"]):
        row = ut.loc[u - 1]
        s = 0.0
        for k in (1, 2, 3):
            q = it.at[i, "q_" + row[f"aspect_{k}"].replace(" ", "_")]
            s += row[f"weight_{k}"] * ((q - 3) / 2 if q > 0 else 0)
        sat.append(s)
    assert np.corrcoef(sat, buys["rating"])[0, 1] > 0.5
    assert set(buys["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ev.loc[ev["event_type"] != "purchase", "rating"].isna().all()


def test_reviews_agree_with_true_quality(world):
    rv = world["reviews"].merge(world["item_truth"], on="item_id")
    q = np.array([row["q_" + a.replace(" ", "_")] for a, (_, row) in zip(rv["aspect"], rv.iterrows())])
    expected = np.where(q >= 4, 1, np.where(q <= 2, -1, 0))
    np.testing.assert_array_equal(rv["polarity"].to_numpy(), expected)
    assert all(a in s and o in s.lower() for a, o, s in zip(rv["aspect"], rv["opinion"], rv["sentence"]))
    assert world["reviews"]["review_id"].nunique() > 1500


def test_reference_reasons_name_true_drivers(world):
    rs, it, ut = world["reasons"], world["item_truth"].set_index("item_id"), world["user_truth"]
    aspects = set(sw.aspect_vocabulary()) - {"price"}
    cat = world["catalogue"].set_index("item_id")
    median = cat.groupby("category")["price"].transform("median")
    checked = 0
    for u, i, drivers, reason in zip(rs["user_id"], rs["item_id"], rs["drivers"], rs["reason"]):
        first = drivers.split(";")[0]
        if first in aspects:
            user = ut.loc[u - 1]
            assert first in {user["aspect_1"], user["aspect_2"], user["aspect_3"]}
            assert it.at[i, "q_" + first.replace(" ", "_")] >= 4
            assert first in reason
            checked += 1
        elif first == "price":  # driven by price sensitivity: cheaper than its category
            assert cat.at[i, "price"] < median[i] and "value" in reason
        elif first == "colour":
            assert it.at[i, "colour"] == ut.loc[u - 1, "fav_colour"] and it.at[i, "colour"] in reason
    assert checked > 500


def test_images_show_category_colour_and_pattern(world):
    it = world["item_truth"].set_index("item_id")
    imgs = world["images"].set_index("item_id")["png"]
    img = Image.open(io.BytesIO(imgs.iloc[0]))
    assert img.size == (64, 64) and img.mode == "RGB"
    solid_books = it[(it["pattern"] == "solid")].index.intersection(
        world["catalogue"].query("category == 'books'")["item_id"])
    for i in solid_books[:5]:
        pixel = np.array(Image.open(io.BytesIO(imgs[i])))[32, 40]  # inside the cover
        assert np.abs(pixel - np.array(V.COLOURS[it.at[i, "colour"]])).max() < 10
    a = sw.draw_item_image("jackets", "red", "striped")
    assert a == sw.draw_item_image("jackets", "red", "striped")
    assert a != sw.draw_item_image("jackets", "red", "dotted") != sw.draw_item_image("books", "red", "dotted")
    with pytest.raises(ValueError, match="unknown category"):
        sw.draw_item_image("spaceships", "red", "solid")


def test_dirt_accounting_is_exact():
    d = loaders.dirt_truth()
    raw_ev, raw_cat = loaders.load_shopworld("raw_events"), loaders.load_shopworld("raw_catalogue")
    assert len(raw_ev) == (d["clean_rows"]["events"] + d["duplicate_events"] + d["orphan_events"]
                           + d["bot_events"])
    assert len(raw_cat) == d["clean_rows"]["catalogue"] + len(d["duplicated_items"])
    n = d["clean_rows"]["events"]
    assert abs(d["duplicate_events"] / n - d["rates"]["duplicate_events"]) < 0.005
    assert raw_ev["timestamp"].diff().lt(0).sum() > 0.02 * len(raw_ev)
    assert len(d["bot_user_ids"]) == 20
