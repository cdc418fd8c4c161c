import pickle
import shutil

import pandas as pd
import pytest

from helpers.core import checks
from helpers.data import loaders


def test_unknown_table_lists_the_known_ones():
    with pytest.raises(checks.DataError, match="Unknown ShopWorld table 'orders'.*catalogue"):
        loaders.load_shopworld("orders")


@pytest.fixture
def world_copy(tmp_path):
    dst = tmp_path / "world"
    shutil.copytree(loaders.SHOPWORLD_DIR, dst)
    return dst


def test_edited_file_fails_its_checksum_with_repair_advice(world_copy):
    path = world_copy / "users.parquet"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(checks.DataError, match=r"checksum.*git checkout"):
        loaders.load_shopworld("users", root=world_copy)
    assert len(loaders.load_shopworld("catalogue", root=world_copy)) == 2000  # others still load


def test_missing_file_and_missing_manifest(world_copy):
    (world_copy / "reviews.parquet").unlink()
    with pytest.raises(checks.DataError, match="is missing"):
        loaders.load_shopworld("reviews", root=world_copy)
    (world_copy / "MANIFEST.sha256").unlink()
    with pytest.raises(checks.DataError, match="No MANIFEST"):
        loaders.load_shopworld("events", root=world_copy)


def test_require_columns_names_what_is_missing():
    with pytest.raises(checks.DataError, match=r"missing column\(s\) \['rating'\].*has \['user_id'\]"):
        checks.require_columns(pd.DataFrame({"user_id": [1]}), ["user_id", "rating"])
    with pytest.raises(checks.DataError, match="DataFrame"):
        checks.require_columns([1, 2], ["x"])


def test_movielens_has_the_published_shape_and_schema():
    ml = loaders.load_movielens("recbole")
    r, items, users = ml["ratings"], ml["items"], ml["users"]
    assert (len(r), len(items), len(users)) == (100_000, 1682, 943)
    assert r["user_id"].nunique() == 943 and r["item_id"].nunique() == 1682
    assert set(r["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert r.groupby("user_id").size().min() == 20  # every ML-100K user rated at least 20
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert items.loc[items["item_id"] == 1, "title"].item() == "Toy Story"
    assert "Animation" in items.loc[items["item_id"] == 1, "genres"].item().split("|")


def test_movielens_online_source_needs_opt_in(monkeypatch):
    monkeypatch.delenv("COURSE_ONLINE", raising=False)
    with pytest.raises(checks.DataError, match="COURSE_ONLINE=1"):
        loaders.load_movielens("grouplens")
    with pytest.raises(checks.DataError, match="source must be"):
        loaders.load_movielens("kaggle")


def test_movielens_content_checksum_is_enforced(monkeypatch):
    monkeypatch.setattr(loaders, "ML100K_RATINGS_SHA256", "0" * 64)
    with pytest.raises(checks.DataError, match="not the published data set"):
        loaders.load_movielens("recbole")


def test_hf_views():
    reviews = loaders.hf_dataset("reviews")
    assert len(reviews) == len(loaders.load_shopworld("reviews"))
    assert {"sentence", "aspect", "polarity"} <= set(reviews.column_names)
    images = loaders.hf_dataset("images")
    assert images[0]["image"].size == (64, 64)


def test_hf_views_say_when_the_datasets_package_is_missing(monkeypatch):
    """Without Hugging Face ``datasets``, ``import datasets`` from the repository root finds the
    course's own ``datasets/`` folder (seen on a GPU machine): the error must say so."""
    import sys
    import types

    folder = types.ModuleType("datasets")
    folder.__path__ = [str(loaders.config.ROOT / "datasets")]        # what a namespace package looks like
    monkeypatch.setitem(sys.modules, "datasets", folder)
    with pytest.raises(ImportError, match="Hugging Face `datasets` package.*datasets"):
        loaders.hf_dataset("reviews")


def test_peter_export_round_trip_and_index_partition(tmp_path):
    out = loaders.export_peter(tmp_path / "peter")
    with pytest.warns(UserWarning, match="trusted source"):
        df = loaders.read_peter(out / "reviews.pickle")
    first = loaders.load_shopworld("reviews").query("sentence_idx == 0")
    assert len(df) == len(first)
    assert df["sentence"].str.islower().all() and df["sentence"].str.endswith(".").all()
    idx = {name: [int(x) for x in (out / "1" / f"{name}.index").read_text().split(" ")]
           for name in ("train", "validation", "test")}
    together = sorted(sum(idx.values(), []))
    assert together == list(range(len(df)))
    assert abs(len(idx["train"]) / len(df) - 0.8) < 0.01
    with pytest.raises(checks.DataError, match="ratios"):
        loaders.export_peter(tmp_path / "bad", ratios=(0.5, 0.5, 0.5))


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/reasonrec_pwned",))


def test_read_peter_refuses_code_in_a_pickle(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([{"user": "u", "item": "i", "rating": 5,
                                    "template": ("a", "b", "c", 1), "x": _Payload()}]))
    with pytest.warns(UserWarning), pytest.raises(checks.DataError, match="not plain data"):
        loaders.read_peter(path)
    import os
    assert not os.path.exists("/tmp/reasonrec_pwned")


def test_read_peter_rejects_wrong_shape(tmp_path):
    path = tmp_path / "odd.pickle"
    path.write_bytes(pickle.dumps([{"user": "u", "item": "i"}]))
    with pytest.warns(UserWarning), pytest.raises(checks.DataError, match="record 0"):
        loaders.read_peter(path)


def test_load_image():
    assert loaders.load_image(1).size == (64, 64)
    with pytest.raises(checks.DataError, match="No image for item_id=99999"):
        loaders.load_image(99999)


@pytest.mark.parametrize("line,msg", [
    ("not-a-hash users.parquet", r"line 1: expected '<64 hex sha256>"),
    ("0" * 64, r"line 1: expected"),
    ("0" * 64 + "  ../outside.parquet", "outside the data folder"),
    ("0" * 64 + "  /etc/passwd", "outside the data folder"),
])
def test_malformed_or_escaping_manifest_lines_are_refused(world_copy, line, msg):
    (world_copy / "MANIFEST.sha256").write_text(line + "\n")
    with pytest.raises(checks.DataError, match=msg):
        loaders.load_shopworld("users", root=world_copy)


def _grouplens_zip(path, ratings):
    """A GroupLens-format ml-100k.zip holding ``ratings`` (and minimal item/user tables)."""
    import zipfile

    items = "\n".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 19)
                      for i in range(1, 1683))
    users = "\n".join(f"{u}|30|M|other|00000" for u in range(1, 944))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", ratings.to_csv(sep="\t", header=False, index=False,
                                                     columns=["user_id", "item_id", "rating",
                                                              "timestamp"]))
        zf.writestr("ml-100k/u.item", items)
        zf.writestr("ml-100k/u.user", users)


@pytest.fixture
def online_cache(tmp_path, monkeypatch):
    ratings = loaders.load_movielens("recbole")["ratings"].astype({"rating": int})  # real cache
    monkeypatch.setenv("COURSE_ONLINE", "1")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache", ratings


def _serve(monkeypatch, writer):
    import urllib.request

    def fake_urlretrieve(url, filename):  # no network: "download" by writing the file
        assert url == loaders.ML100K_URL
        writer(filename)
        return filename, None

    monkeypatch.setattr(urllib.request, "urlretrieve", fake_urlretrieve)


def test_movielens_download_is_kept_only_after_its_checksum_passes(online_cache, monkeypatch):
    cache, ratings = online_cache
    _serve(monkeypatch, lambda f: _grouplens_zip(f, ratings))
    ml = loaders.load_movielens("grouplens")
    assert len(ml["ratings"]) == 100_000 and (cache / "ml-100k.zip").exists()
    assert not list(cache.glob(".ml-100k-*")), "no temporary file left behind"


@pytest.mark.parametrize("bad", ["truncated", "altered"])
def test_a_bad_movielens_download_is_not_kept_and_says_how_to_repair(online_cache, monkeypatch,
                                                                      bad):
    cache, ratings = online_cache
    if bad == "truncated":
        _serve(monkeypatch, lambda f: open(f, "wb").write(b"PK\x03\x04 half a zip"))
        msg = r"not a readable MovieLens-100K archive.*nothing was kept.*source='recbole'"
    else:
        altered = ratings.assign(rating=ratings["rating"].where(ratings.index != 0, 1))
        _serve(monkeypatch, lambda f: _grouplens_zip(f, altered))
        msg = r"ratings checksum.*it was not kept.*source='recbole'"
    with pytest.raises(checks.DataError, match=msg):
        loaders.load_movielens("grouplens")
    assert not (cache / "ml-100k.zip").exists() and not list(cache.glob(".ml-100k-*"))


def test_a_damaged_cached_movielens_zip_says_how_to_repair(online_cache):
    cache, _ = online_cache
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "ml-100k.zip").write_bytes(b"not a zip")
    with pytest.raises(checks.DataError, match=r"not a readable.*Delete .*ml-100k.zip"):
        loaders.load_movielens("grouplens")
