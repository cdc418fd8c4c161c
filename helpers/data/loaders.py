"""Loading the course's data, verified: ShopWorld (committed) and MovieLens-100K (real).

    events = data.load_shopworld("events")            # checks datasets/shopworld/MANIFEST.sha256
    ml = data.load_movielens()                        # {"ratings", "items", "users"}
    ds = data.hf_dataset("reviews")                   # a datasets.Dataset view for NLP chapters
    data.export_peter(out_dir)                        # PETER / PEPLER's reviews.pickle + index

Every loader checks checksums before use and says how to repair a problem; none reaches the
network unless the user opted in with ``COURSE_ONLINE=1``.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core import assets, config
from helpers.core.checks import DataError, require_columns
from helpers.data.shopworld import FILES, IMAGES_FILE

__all__ = ["SHOPWORLD_DIR", "SHOPWORLD_TABLES", "shopworld_path", "verify_shopworld",
           "load_shopworld", "load_image", "vocabulary", "dirt_truth", "load_movielens", "recbole_split",
           "hf_dataset", "export_peter", "read_peter", "peter_text"]

SHOPWORLD_DIR = config.DATASETS_DIR / "shopworld"
REGENERATE = "python -m helpers.data.shopworld --out datasets/shopworld"


# ----------------------------------------------------------------------------- ShopWorld
SHOPWORLD_TABLES = {**FILES, "images": IMAGES_FILE}
"""Table name -> file, as ``helpers.data.shopworld.write_world`` writes them."""


def shopworld_path(root: str | Path | None = None) -> Path:
    """The world's folder: ``root``, else ``$COURSE_SHOPWORLD``, else ``datasets/shopworld``
    (relative paths are taken from the course folder)."""
    import os

    return config.course_path(root or os.environ.get("COURSE_SHOPWORLD") or SHOPWORLD_DIR)


def _manifest(root: Path) -> dict[str, str]:
    path = root / "MANIFEST.sha256"
    if not path.exists():
        raise DataError(f"No MANIFEST.sha256 in {root}: this is not a ShopWorld folder, or it "
                        f"is incomplete. Regenerate it with `{REGENERATE}` (or `git checkout "
                        "datasets/shopworld` for the committed world).")
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef"
                                                           for c in parts[0]):
            raise DataError(f"{path}, line {number}: expected '<64 hex sha256>  <file name>', got "
                            f"{line[:80]!r}. Restore the manifest with `git checkout {path}` or "
                            f"regenerate the world with `{REGENERATE}`.")
        name = parts[1].strip()
        target = (root / name).resolve()
        if Path(name).is_absolute() or root.resolve() not in target.parents:
            raise DataError(f"{path}, line {number}: {name!r} points outside the data folder; a "
                            "manifest may only list files inside it. Restore the manifest with "
                            f"`git checkout {path}`.")
        entries[name] = parts[0]
    return entries


_VERIFIED: dict[tuple[str, str], float] = {}


def _verified_file(root: Path, name: str, manifest: dict[str, str] | None = None) -> Path:
    manifest = manifest if manifest is not None else _manifest(root)
    if name not in manifest:
        raise DataError(f"{name} is not listed in {root}/MANIFEST.sha256.")
    path = root / name
    if not path.exists():
        raise DataError(f"{path} is missing. Restore it with `git checkout {path}` or "
                        f"regenerate the world with `{REGENERATE}`.")
    key = (str(path), manifest[name])
    mtime = path.stat().st_mtime
    if _VERIFIED.get(key) != mtime:  # hash once per file version and process
        if assets.sha256_file(path) != manifest[name]:
            raise DataError(f"{path} does not match its checksum in MANIFEST.sha256 (it was "
                            f"edited or damaged). Restore it with `git checkout {path}` or "
                            f"regenerate with `{REGENERATE}`.")
        _VERIFIED[key] = mtime
    return path


def verify_shopworld(root: str | Path | None = None) -> dict[str, str]:
    """Check every file of a world against its manifest; return the manifest."""
    root = shopworld_path(root)
    manifest = _manifest(root)
    for name in manifest:
        _verified_file(root, name, manifest)
    return manifest


def load_shopworld(table: str, root: str | Path | None = None) -> pd.DataFrame:
    """Load one ShopWorld table after checking its sha256.

    Tables: ``catalogue``, ``users``, ``events`` (clean log), ``reviews`` (one row per
    sentence), ``images``, the ground truth ``item_truth``, ``user_truth``, ``reasons``, and
    the dirty ``raw_catalogue`` / ``raw_events`` that chapter 01 cleans.
    """
    if table not in SHOPWORLD_TABLES:
        raise DataError(f"Unknown ShopWorld table {table!r}; choose from "
                        f"{sorted(SHOPWORLD_TABLES)}.")
    path = _verified_file(shopworld_path(root), SHOPWORLD_TABLES[table])
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        if "event_type" in df.columns:
            df["event_type"] = df["event_type"].astype(str)
        return df
    # raw CSVs are read as text where dirt lives, so nothing is silently coerced
    dtypes = ({"brand": "string", "category": "string", "title": "string",
               "description": "string"} if table == "raw_catalogue"
              else {"event_type": "string"})
    return pd.read_csv(path, dtype=dtypes, keep_default_na=True)


def load_image(item_id: int, root: str | Path | None = None):
    """The item's 64×64 product image as a PIL image."""
    from PIL import Image

    images = load_shopworld("images", root)
    row = images.loc[images["item_id"] == item_id, "png"]
    if row.empty:
        raise DataError(f"No image for item_id={item_id}; ShopWorld item IDs run from 1 to "
                        f"{int(images['item_id'].max())}.")
    return Image.open(io.BytesIO(row.iloc[0]))


def vocabulary(root: str | Path | None = None) -> dict:
    """Categories, aspects, colours, patterns and opinion words of a world."""
    import json

    return json.loads(_verified_file(shopworld_path(root), "vocabulary.json").read_text())


def dirt_truth(root: str | Path | None = None) -> dict:
    """Exactly which rows each kind of injected dirt touched (chapter 01 checks against it)."""
    import json

    return json.loads(_verified_file(shopworld_path(root), "truth/dirt.json").read_text())


# ----------------------------------------------------------------------------- MovieLens
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# sha256 of the canonical ratings table (user_id,item_id,rating,timestamp sorted, CSV): the
# same content whichever source it came from
ML100K_RATINGS_SHA256 = "8c000bbd535e58981676faddb0b1117d143f4a49663a93a07454ae4718ccc2e0"
ML_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _canonical_sha(ratings: pd.DataFrame) -> str:
    canon = ratings.sort_values(["user_id", "item_id", "timestamp"])
    text = canon.to_csv(index=False, lineterminator="\n",
                        columns=["user_id", "item_id", "rating", "timestamp"])
    return hashlib.sha256(text.encode()).hexdigest()


def _movielens_from_recbole(path: Path) -> dict[str, pd.DataFrame]:
    inter = pd.read_csv(path / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    ratings = pd.DataFrame({"user_id": inter["user_id"].astype(np.int64),
                            "item_id": inter["item_id"].astype(np.int64),
                            "rating": inter["rating"].astype(np.float64),
                            "timestamp": inter["timestamp"].astype(np.int64)})
    item = pd.read_csv(path / "ml-100k.item", sep="\t", keep_default_na=False)
    item.columns = [c.split(":")[0] for c in item.columns]
    items = pd.DataFrame({
        "item_id": item["item_id"].astype(np.int64), "title": item["movie_title"].astype(str),
        "year": pd.to_numeric(item["release_year"], errors="coerce").astype("Int64"),
        "genres": item["class"].astype(str).str.split().map(lambda g: "|".join(g))})
    user = pd.read_csv(path / "ml-100k.user", sep="\t", dtype=str)
    user.columns = [c.split(":")[0] for c in user.columns]
    users = pd.DataFrame({"user_id": user["user_id"].astype(np.int64),
                          "age": user["age"].astype(np.int64), "gender": user["gender"],
                          "occupation": user["occupation"], "zip_code": user["zip_code"]})
    return {"ratings": ratings, "items": items, "users": users}


def _movielens_from_grouplens(zip_path: Path) -> dict[str, pd.DataFrame]:
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        ratings = pd.read_csv(zf.open("ml-100k/u.data"), sep="\t",
                              names=["user_id", "item_id", "rating", "timestamp"])
        item = pd.read_csv(zf.open("ml-100k/u.item"), sep="|", header=None,
                           encoding="latin-1")
        user = pd.read_csv(zf.open("ml-100k/u.user"), sep="|", header=None, dtype=str,
                           names=["user_id", "age", "gender", "occupation", "zip_code"])
    ratings["rating"] = ratings["rating"].astype(np.float64)
    flags = item.iloc[:, 5:24].to_numpy().astype(bool)
    title = item[1].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
    items = pd.DataFrame({
        "item_id": item[0].astype(np.int64), "title": title,
        "year": pd.to_datetime(item[2], format="%d-%b-%Y", errors="coerce").dt.year
        .astype("Int64"),
        "genres": ["|".join(g for g, f in zip(ML_GENRES, row) if f) for row in flags]})
    users = user.assign(user_id=user["user_id"].astype(np.int64),
                        age=user["age"].astype(np.int64))
    return {"ratings": ratings, "items": items, "users": users}


def _read_grouplens(path: Path, repair: str) -> dict[str, pd.DataFrame]:
    import zipfile

    try:
        return _movielens_from_grouplens(path)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable MovieLens-100K archive ({type(err).__name__}: "
                        f"{err}). {repair}") from None


def _download_grouplens(target: Path) -> dict[str, pd.DataFrame]:
    """Download to a temporary file; move it into place only once its ratings pass the
    content checksum, so an interrupted or wrong download never sits in the cache."""
    import os
    import tempfile
    import urllib.request

    fd, name = tempfile.mkstemp(prefix=".ml-100k-", suffix=".zip.part", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        urllib.request.urlretrieve(ML100K_URL, tmp)
        tables = _read_grouplens(tmp, "The download is damaged or not the archive; nothing was "
                                      "kept. Try again, or use source='recbole' (offline).")
        digest = _canonical_sha(tables["ratings"])
        if digest != ML100K_RATINGS_SHA256:
            raise DataError(f"The MovieLens-100K download from {ML100K_URL} has ratings checksum "
                            f"{digest}, expected {ML100K_RATINGS_SHA256}; it was not kept. Try "
                            "again later, or use source='recbole' (offline).")
        os.replace(tmp, target)
        return tables
    finally:
        tmp.unlink(missing_ok=True)


def load_movielens(source: str = "auto") -> dict[str, pd.DataFrame]:
    """MovieLens-100K (GroupLens) in one clean schema.

    Returns ``{"ratings": user_id, item_id, rating (1–5), timestamp;
    "items": item_id, title, year, genres ('|'-joined); "users": user_id, age, gender,
    occupation, zip_code}``; 100,000 ratings by 943 users of 1,682 movies.

    ``source``: ``"recbole"`` (the copy inside the ``recbole==1.2.1`` wheel, fetched by
    ``make assets``; works offline), ``"grouplens"`` (the official archive; needs
    ``COURSE_ONLINE=1``), or ``"auto"`` (GroupLens when online, else RecBole's copy).
    The ratings are checked against a content checksum either way.

    The data's licence forbids redistribution: it is downloaded, never committed. Cite
    F. M. Harper and J. A. Konstan, ACM TiiS 5(4), 2015.
    """
    if source not in {"auto", "recbole", "grouplens"}:
        raise DataError(f"source must be 'auto', 'recbole' or 'grouplens', got {source!r}")
    if source == "auto":
        source = "grouplens" if config.is_online() else "recbole"
    if source == "grouplens":
        if not config.is_online():
            raise DataError("Downloading MovieLens from GroupLens needs the network: set "
                            "COURSE_ONLINE=1, or use source='recbole' (offline).")
        target = config.cache_dir() / "ml-100k.zip"
        if target.exists():
            tables = _read_grouplens(target, f"Delete {target} and run again to re-download.")
        else:
            tables = _download_grouplens(target)
    else:
        try:
            tables = _movielens_from_recbole(assets.asset_path("ml-100k"))
        except assets.AssetError as err:
            raise DataError(str(err)) from None
    digest = _canonical_sha(tables["ratings"])
    if digest != ML100K_RATINGS_SHA256:
        raise DataError(f"MovieLens-100K ratings from {source} have content checksum {digest}, "
                        f"expected {ML100K_RATINGS_SHA256}: the copy is not the published "
                        f"data set. Run `{assets.REPAIR_COMMAND}` (RecBole copy) or delete "
                        f"{config.cache_dir() / 'ml-100k.zip'} (GroupLens copy).")
    return tables


RECBOLE_SPLITS = config.DATASETS_DIR / "movielens_recbole_splits.json.gz"


def recbole_split(protocol: str, ratings: pd.DataFrame | None = None
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """RecBole 1.2.1's own train / valid / test split of MovieLens-100K, the very rows its
    models were trained and tested on (seed 2020; ``benchmarks/peers/run_peers.py`` wrote it):
    ``"RO_RS"`` (each user's ratings in random order, 8:1:1) or ``"LS"`` (leave-one-out by
    time). It makes the split the same; the protocol around it (candidate set, tie order, early
    stopping, tuning, seeds) must be made the same too: ``benchmarks/seq_protocol.py`` does.

    ``ratings`` defaults to :func:`load_movielens`'s; each part keeps the rows' order. The file
    holds only a part label per rating, in (user_id, item_id) order, not the ratings."""
    import gzip
    import json

    stored = json.loads(gzip.decompress(RECBOLE_SPLITS.read_bytes()))
    if protocol not in stored or protocol == "about":
        known = sorted(k for k in stored if k != "about")
        raise DataError(f"no RecBole split called {protocol!r}; the stored ones are {known}")
    if ratings is None:
        ratings = load_movielens("recbole")["ratings"]
    require_columns(ratings, ["user_id", "item_id"], "the ratings")
    labels = np.frombuffer(stored[protocol].encode(), dtype=np.uint8) - ord("0")
    if len(ratings) != len(labels) or ratings.duplicated(["user_id", "item_id"]).any():
        raise DataError(f"RecBole's split labels {len(labels):,} distinct (user, item) ratings of "
                        f"MovieLens-100K; got {len(ratings):,} rows"
                        + (" with repeated pairs" if len(ratings) == len(labels) else "")
                        + ". Pass load_movielens()['ratings'] unfiltered.")
    order = np.lexsort((ratings["item_id"].to_numpy(), ratings["user_id"].to_numpy()))
    part = np.empty(len(ratings), dtype=np.uint8)
    part[order] = labels
    return tuple(ratings[part == k] for k in range(3))


# ----------------------------------------------------------------------------- formats
def hf_dataset(table: str, root: str | Path | None = None):
    """A Hugging Face ``datasets.Dataset`` view of a ShopWorld table (in memory, offline).

    ``"reviews"`` and ``"reasons"`` suit the NLP chapters; ``"images"`` gets an ``Image``
    feature, so ``ds[0]["image"]`` is a PIL image.
    """
    try:
        import datasets
    except ImportError:
        datasets = None
    if datasets is None or not hasattr(datasets, "Dataset"):
        # without the package, `import datasets` can find the course's own datasets/ folder
        # (a namespace package) when Python runs from the repository root
        raise ImportError(
            "hf_dataset() needs the Hugging Face `datasets` package, which is not installed "
            "here (`import datasets` found " + (f"{list(datasets.__path__)[0]!r}" if datasets
            is not None and hasattr(datasets, "__path__") else "nothing") + "). Install the "
            "course's pinned version: `pip install -c constraints.txt datasets`, or use "
            "data.load_shopworld(table) for the same rows as a pandas DataFrame.")

    df = load_shopworld(table, root)
    if table == "images":
        ds = datasets.Dataset.from_dict(
            {"item_id": df["item_id"].tolist(),
             "image": [{"bytes": b, "path": None} for b in df["png"]]},
            features=datasets.Features({"item_id": datasets.Value("int64"),
                                        "image": datasets.Image()}))
        return ds
    return datasets.Dataset.from_pandas(df, preserve_index=False)


def peter_text(sentence: str) -> str:
    """PETER's data are lower-cased with punctuation split off as tokens."""
    import re

    return " ".join(re.findall(r"[a-z0-9'\-]+|[.,!?;:]", sentence.lower()))


def export_peter(out: str | Path, root: str | Path | None = None, seed: int = 0,
                 ratios=(0.8, 0.1, 0.1)) -> Path:
    """Write ShopWorld reviews in PETER/PEPLER's format so the field's reference code runs on it.

    ``out/reviews.pickle`` is a list of dicts ``{'user', 'item', 'rating', 'template':
    (feature, adjective, sentence, score)}`` — one record per review, its first sentence (the
    reviewer's most important aspect); ``out/1/{train,validation,test}.index`` hold
    space-separated record indices, split at random by ``ratios``.
    """
    if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-9 or min(ratios) <= 0:
        raise DataError(f"ratios must be three positive shares summing to 1, got {ratios}")
    reviews = load_shopworld("reviews", root)
    first = reviews[reviews["sentence_idx"] == 0].sort_values("review_id")
    records = [{"user": f"u{r.user_id}", "item": f"i{r.item_id}", "rating": int(r.rating),
                "template": (r.aspect, r.opinion, peter_text(r.sentence), int(r.polarity))}
               for r in first.itertuples(index=False)]
    out = Path(out)
    (out / "1").mkdir(parents=True, exist_ok=True)
    with open(out / "reviews.pickle", "wb") as fh:
        pickle.dump(records, fh, protocol=4)
    order = np.random.default_rng(seed).permutation(len(records))
    n_train = int(round(ratios[0] * len(records)))
    n_valid = int(round(ratios[1] * len(records)))
    parts = {"train": order[:n_train], "validation": order[n_train:n_train + n_valid],
             "test": order[n_train + n_valid:]}
    for name, idx in parts.items():
        (out / "1" / f"{name}.index").write_text(" ".join(map(str, sorted(idx.tolist()))))
    return out


class _PlainUnpickler(pickle.Unpickler):
    """Refuses every global: only lists, dicts, tuples, strings and numbers can load, so a
    crafted file cannot run code."""

    def find_class(self, module, name):
        raise DataError(f"{module}.{name} in the pickle is not plain data; refusing to load it. "
                        "PETER-format files hold only lists, dicts, tuples, str and numbers.")


def read_peter(path: str | Path) -> pd.DataFrame:
    """Read a PETER/PEPLER ``reviews.pickle`` (TripAdvisor, Amazon, Yelp ...) as a DataFrame
    with columns user, item, rating, feature, adjective, sentence, score.

    Pickle files can run code when loaded: only open ones from a source you trust. This
    reader also refuses anything but plain data.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path (export_peter writes "
                        "reviews.pickle into the folder you give it).")
    warnings.warn(f"Reading the pickle file {path.name}: pickles must come from a trusted "
                  "source. Only plain data is accepted.", UserWarning, stacklevel=2)
    with open(path, "rb") as fh:
        records = _PlainUnpickler(fh).load()
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path} is not a PETER reviews file: expected a list of dicts.")
    rows = []
    for k, r in enumerate(records):
        try:
            fea, adj, sentence, score = r["template"]
            rows.append((r["user"], r["item"], r["rating"], fea, adj, sentence, score))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"record {k} of {path} lacks 'user', 'item', 'rating' or a "
                            "4-tuple 'template'.") from None
    return pd.DataFrame(rows, columns=["user", "item", "rating", "feature", "adjective",
                                       "sentence", "score"])
