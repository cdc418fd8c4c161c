"""Chapter 01's library: clean raw logs and catalogues, map IDs, build interaction matrices,
and split without leaking the future.

Every cleaning step counts what it changed or dropped and returns that count in a report;
nothing is dropped silently, and anything it cannot repair safely is an error with advice.

    catalogue, cat_report = clean_catalogue(raw_catalogue)
    events, ev_report = clean_events(raw_events, catalogue)
    train, valid, test = leave_last_out(events[events.event_type == "purchase"])
    check_no_leakage(train, test)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.core import config
from helpers.core.checks import (
    DataError,
    require_columns,
    require_finite,
    require_id_values,
    require_ids,
    require_int,
    require_times,
)
from helpers.data import loaders

__all__ = ["EVENT_TYPES", "EVENT_WEIGHTS", "normalise_brand", "normalise_category",
           "normalise_event_type", "clean_catalogue", "clean_events", "detect_bots", "IdMap",
           "build_id_map", "interaction_matrix", "random_split", "per_user_split", "leave_last_out",
           "temporal_split", "cold_start_split", "check_no_leakage", "clean_shopworld",
           "report_frame", "dirt_profile", "first_users"]

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")
EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 3.0, "purchase": 4.0}
"""Implicit-feedback strength of each event type (a common, simple choice)."""


def _nonempty(df: pd.DataFrame, what: str) -> None:
    if len(df) == 0:
        raise DataError(f"{what} is empty: there is nothing to work on. Check the file you "
                        "loaded and any filters applied before this step.")


def report_frame(report: dict) -> pd.DataFrame:
    """A cleaning report as a two-column table (lists shown by their length)."""
    rows = [(k, len(v) if isinstance(v, (list, tuple, set)) else v) for k, v in report.items()]
    return pd.DataFrame(rows, columns=["step", "rows"]).set_index("step")


# ----------------------------------------------------------------------------- normalising
def normalise_brand(s: pd.Series) -> pd.Series:
    """``'  NORTHPEAK '``, ``'northpeak'`` -> ``'Northpeak'``: strip, collapse spaces, title-case.
    Missing values stay missing."""
    return s.astype("string").str.strip().str.replace(r"\s+", " ", regex=True).str.title()


def normalise_category(s: pd.Series) -> pd.Series:
    """``'Running Shoes'``, ``' running-shoes'`` -> ``'running_shoes'``."""
    return (s.astype("string").str.strip().str.lower()
            .str.replace(r"[\s\-]+", "_", regex=True))


def normalise_event_type(s: pd.Series) -> pd.Series:
    """``' View'``, ``'PURCHASE'`` -> ``'view'``, ``'purchase'``; anything else is an error."""
    out = s.astype("string").str.strip().str.lower()
    unknown = sorted(set(out.dropna()) - set(EVENT_TYPES))
    if unknown:
        raise DataError(f"Unknown event types {unknown[:10]}; expected {list(EVENT_TYPES)}. "
                        "Map them to one of these before cleaning.")
    return out


# ----------------------------------------------------------------------------- catalogue
def clean_catalogue(raw: pd.DataFrame, *, col_item: str = "item_id",
                    price_outlier_factor: float = 20.0) -> tuple[pd.DataFrame, dict]:
    """Clean a raw catalogue. Returns ``(catalogue, report)``.

    Steps (each counted in ``report``): normalise brand and category spelling; drop rows
    that are exact duplicates once normalised; repair prices entered in cents (more than
    ``price_outlier_factor`` × the category median: divided by 100); impute missing prices
    with the category median (flag ``price_imputed``); fill a blank description with the title
    (flag ``description_filled``). Two rows for one item that still disagree are an error.
    """
    require_columns(raw, [col_item, "category", "brand", "title", "description", "price"],
                    "the raw catalogue")
    _nonempty(raw, "the raw catalogue")
    if raw[col_item].isna().any():
        raise DataError(f"{int(raw[col_item].isna().sum())} catalogue rows have no {col_item}; "
                        "an item without an ID cannot be joined to events. Fix the source.")
    df = raw.copy()
    report = {"rows_in": len(df)}
    before_b, before_c = df["brand"].copy(), df["category"].copy()
    df["brand"] = normalise_brand(df["brand"])
    df["category"] = normalise_category(df["category"])
    report["brand_or_category_respelled"] = int(
        ((df["brand"] != before_b.astype("string")) |
         (df["category"] != before_c.astype("string"))).fillna(False).sum())
    df["description"] = df["description"].astype("string").str.strip().replace("", pd.NA)
    n = len(df)
    df = df.drop_duplicates()
    report["duplicate_rows_dropped"] = n - len(df)
    conflicts = df[col_item][df[col_item].duplicated()].unique().tolist()
    if conflicts:
        raise DataError(f"Items {conflicts[:10]} appear more than once with different values "
                        "even after normalising; decide which row is right before cleaning.")
    require_finite(df, "price", "the catalogue", allow_missing=True)   # NaN is imputed below; inf is not
    median = df.groupby("category")["price"].transform("median")
    cents = df["price"] > price_outlier_factor * median
    df.loc[cents, "price"] = (df.loc[cents, "price"] / 100).round(2)
    report["price_in_cents_fixed"] = df.loc[cents, col_item].tolist()
    if (df["price"] <= 0).any():
        bad = df.loc[df["price"] <= 0, col_item].tolist()
        raise DataError(f"Items {bad[:10]} have a price <= 0; fix or remove them explicitly.")
    missing = df["price"].isna()
    fill = df.groupby("category")["price"].transform("median")
    empty = sorted(df.loc[missing & fill.isna(), "category"].unique().tolist())
    if empty:
        raise DataError(f"No item of categor{'y' if len(empty) == 1 else 'ies'} {empty} has a price, "
                        "so there is no median to impute the missing ones from; add prices for "
                        "some of them, or drop the category explicitly.")
    df["price_imputed"] = missing
    df.loc[missing, "price"] = fill[missing]
    report["price_imputed"] = df.loc[missing, col_item].tolist()
    no_desc = df["description"].isna()
    df["description_filled"] = no_desc
    df.loc[no_desc, "description"] = df.loc[no_desc, "title"]
    report["description_filled"] = df.loc[no_desc, col_item].tolist()
    df["brand"], df["category"] = df["brand"].astype(str), df["category"].astype(str)
    df["title"], df["description"] = df["title"].astype(str), df["description"].astype(str)
    df = df.sort_values(col_item).reset_index(drop=True)
    report["rows_out"] = len(df)
    return df, report


# ----------------------------------------------------------------------------- events
def detect_bots(events: pd.DataFrame, *, col_user: str = "user_id", col_time: str = "timestamp",
                min_events: int = 100, max_median_gap_s: float = 3.0) -> list:
    """Users who look automated: at least ``min_events`` events, a median gap between
    consecutive events of at most ``max_median_gap_s`` seconds, and nothing but views."""
    require_columns(events, [col_user, col_time, "event_type"], "events")
    ev = events.sort_values([col_user, col_time])
    gaps = ev.groupby(col_user)[col_time].diff()
    stats = pd.DataFrame({"n": ev.groupby(col_user).size(),
                          "median_gap": gaps.groupby(ev[col_user]).median(),
                          "only_views": (ev["event_type"] == "view").groupby(ev[col_user]).all()})
    bots = stats[(stats["n"] >= min_events) & (stats["median_gap"] <= max_median_gap_s)
                 & stats["only_views"]]
    return sorted(bots.index.tolist())


def clean_events(raw: pd.DataFrame, catalogue: pd.DataFrame, *, col_user: str = "user_id",
                 col_item: str = "item_id", col_time: str = "timestamp",
                 bots: list | None = None) -> tuple[pd.DataFrame, dict]:
    """Clean a raw event log against a clean catalogue. Returns ``(events, report)``.

    Steps (each counted): normalise event types; reject impossible ratings (ratings belong to
    purchases, 1–5; anything else is an error, not a silent drop); drop rows without a
    timestamp; drop exact duplicates; drop events for items the catalogue does not have; drop
    bot users (``detect_bots`` unless ``bots`` is given); restore time order.
    """
    require_columns(raw, [col_user, col_item, "event_type", col_time, "rating"], "raw events")
    require_columns(catalogue, [col_item], "the catalogue")
    _nonempty(raw, "the raw event log")
    _nonempty(catalogue, "the catalogue")
    for col in (col_user, col_item):
        require_ids(raw, col, "the raw events")
    require_ids(catalogue, col_item, "the catalogue")
    if raw["event_type"].isna().any():
        raise DataError(f"{int(raw['event_type'].isna().sum())} raw events have no event_type "
                        f"(e.g. rows {raw.index[raw['event_type'].isna()][:5].tolist()}); an "
                        "event of unknown kind cannot be weighted. Repair or drop them first.")
    times = raw[col_time]
    if not pd.api.types.is_numeric_dtype(times) or pd.api.types.is_bool_dtype(times):
        raise DataError(f"{col_time} must be numeric Unix seconds, got dtype {times.dtype}; "
                        f"convert it first (pd.to_numeric, or pd.to_datetime(...).astype('int64') "
                        "// 10**9).")
    t = times.to_numpy(np.float64, na_value=np.nan)
    fractional = np.isfinite(t) & (t != np.round(t))
    if np.isinf(t).any() or fractional.any():
        raise DataError(f"{int(np.isinf(t).sum())} infinite and {int(fractional.sum())} "
                        f"fractional {col_time} values (e.g. rows "
                        f"{raw.index[np.isinf(t) | fractional][:5].tolist()}): timestamps here are "
                        "whole seconds. Round them yourself (df[col].round()) if that is right; "
                        "they are not truncated silently.")
    df = raw.copy()
    report = {"rows_in": len(df)}
    before = df["event_type"].astype("string")
    df["event_type"] = normalise_event_type(df["event_type"])
    report["event_type_respelled"] = int((df["event_type"] != before).fillna(True).sum())
    rating = pd.to_numeric(df["rating"], errors="coerce").astype("float64")
    not_number = rating.isna() & df["rating"].notna()
    if not_number.any():
        raise DataError(f"{int(not_number.sum())} ratings are not numbers (e.g. "
                        f"{df.loc[not_number, 'rating'].head(3).tolist()} in rows "
                        f"{df.index[not_number][:5].tolist()}); map them to 1–5 first "
                        "(e.g. {'five': 5}) — they are not turned into NaN silently.")
    not_buy = rating.notna() & (df["event_type"] != "purchase")
    out_of_range = rating.notna() & ~rating.between(1, 5)
    if not_buy.any() or out_of_range.any():
        raise DataError(f"{int(not_buy.sum())} non-purchase events carry a rating and "
                        f"{int(out_of_range.sum())} ratings lie outside 1–5 (e.g. rows "
                        f"{df.index[not_buy | out_of_range][:5].tolist()}). Ratings belong "
                        "to purchases and must be 1–5: fix the export, don't drop them here.")
    df["rating"] = rating
    no_time = df[col_time].isna()
    report["missing_timestamp_dropped"] = int(no_time.sum())
    df = df[~no_time]
    df[col_time] = df[col_time].astype(np.int64)
    n = len(df)
    df = df.drop_duplicates()
    report["duplicates_dropped"] = n - len(df)
    known = df[col_item].isin(catalogue[col_item])
    report["orphan_events_dropped"] = int((~known).sum())
    report["orphan_item_ids"] = sorted(df.loc[~known, col_item].unique().tolist())
    df = df[known]
    bot_ids = detect_bots(df, col_user=col_user, col_time=col_time) if bots is None else bots
    is_bot = df[col_user].isin(bot_ids)
    report["bot_users"] = list(bot_ids)
    report["bot_events_dropped"] = int(is_bot.sum())
    df = df[~is_bot]
    report["rows_out_of_order"] = int((df[col_time].diff() < 0).sum())
    order = pd.Categorical(df["event_type"], categories=EVENT_TYPES).codes
    df = (df.assign(_order=order)
          .sort_values([col_time, col_user, col_item, "_order"], kind="stable")
          .drop(columns="_order").reset_index(drop=True))
    df["event_type"] = df["event_type"].astype(str)
    report["rows_out"] = len(df)
    return df, report


# ----------------------------------------------------------------------------- IDs, matrices
@dataclass(frozen=True)
class IdMap:
    """A bijection between raw IDs and contiguous indices ``0..n-1`` (rows/columns of a matrix)."""

    ids: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "_index", pd.Index(self.ids))
        if not self._index.is_unique:
            dup = self._index[self._index.duplicated()].unique()[:3].tolist()
            raise DataError(f"IdMap IDs must be unique, but {dup} repeat; build it with "
                            "build_id_map(values), which de-duplicates.")

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, values, what: str = "ID") -> np.ndarray:
        """Raw IDs -> indices. Unknown IDs are an error that lists some of them."""
        idx = self._index.get_indexer(pd.Index(values))
        if (idx < 0).any():
            unknown = pd.Index(values)[idx < 0].unique()[:5].tolist()
            raise DataError(f"Unknown {what}(s) {unknown}: they are not in this ID map (built "
                            "from the training data?). Filter them out, or rebuild the map.")
        return idx

    def decode(self, indices) -> np.ndarray:
        """Indices -> raw IDs."""
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise DataError(f"indices must be integers (row/column positions), got dtype "
                            f"{indices.dtype}; use encode() for raw IDs.")
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise DataError(f"indices must lie in [0, {len(self) - 1}], got values from "
                            f"{indices.min()} to {indices.max()}: they come from another map "
                            "or model (decode with the map that encoded them).")
        return self.ids[indices]


def build_id_map(values) -> IdMap:
    """An :class:`IdMap` over the sorted unique values (missing values are an error)."""
    s = pd.Series(values)
    if s.isna().any():
        raise DataError(f"{int(s.isna().sum())} IDs are missing (NaN); drop or fix those rows "
                        "first.")
    if len(s) == 0:
        raise DataError("Cannot build an ID map from no IDs.")
    require_id_values(s, "IDs")
    return IdMap(np.sort(s.unique()))


def interaction_matrix(df: pd.DataFrame, user_map: IdMap, item_map: IdMap, *,
                       col_user: str = "user_id", col_item: str = "item_id",
                       col_value: str | None = None, kind: str = "implicit"):
    """A ``scipy.sparse.csr_matrix`` of shape ``(len(user_map), len(item_map))``.

    ``kind="implicit"``: each (user, item) gets the strongest event seen
    (:data:`EVENT_WEIGHTS`, from column ``event_type``), or 1 if there is no such column.
    ``kind="explicit"``: the value of ``col_value`` (default ``"rating"``); missing values or a
    pair rated twice are errors.
    """
    import scipy.sparse as sp

    require_columns(df, [col_user, col_item], "the interactions")
    _nonempty(df, "the interactions")
    rows = user_map.encode(df[col_user], "user")
    cols = item_map.encode(df[col_item], "item")
    if kind == "implicit":
        if "event_type" in df.columns:
            unknown = set(df["event_type"].unique()) - set(EVENT_WEIGHTS)
            if unknown:
                raise DataError(f"Unknown event types {sorted(unknown)}; clean them first.")
            values = df["event_type"].map(EVENT_WEIGHTS).to_numpy(dtype=np.float32)
        else:
            values = np.ones(len(df), dtype=np.float32)
        pairs = pd.DataFrame({"r": rows, "c": cols, "v": values}).groupby(["r", "c"])["v"].max()
    elif kind == "explicit":
        col_value = col_value or "rating"
        require_columns(df, [col_value], "the interactions")
        if df[col_value].isna().any():
            raise DataError(f"{int(df[col_value].isna().sum())} rows have no {col_value}: keep "
                            "only rated interactions (e.g. purchases) for an explicit matrix.")
        require_finite(df, col_value, "the interactions")
        pairs = pd.DataFrame({"r": rows, "c": cols, "v": df[col_value].to_numpy(np.float32)})
        if pairs.duplicated(["r", "c"]).any():
            raise DataError("Some (user, item) pairs are rated more than once; keep the latest "
                            "rating per pair (e.g. drop_duplicates(keep='last')) first.")
        pairs = pairs.set_index(["r", "c"])["v"]
    else:
        raise DataError(f"kind must be 'implicit' or 'explicit', got {kind!r}")
    r = pairs.index.get_level_values(0).to_numpy()
    c = pairs.index.get_level_values(1).to_numpy()
    return sp.csr_matrix((pairs.to_numpy(), (r, c)), shape=(len(user_map), len(item_map)))


# ----------------------------------------------------------------------------- splits
def _split_ratios(ratios, parts: int | None = None) -> tuple:
    """``ratios`` as a tuple of finite non-negative numbers summing to 1 (``parts`` of them)."""
    ratios = tuple(ratios)
    count = "" if parts is None else {3: "three "}.get(parts, f"{parts} ")
    if not ratios or (parts is not None and len(ratios) != parts) or not all(
            isinstance(r, (int, float, np.number)) and not isinstance(r, bool) and np.isfinite(r)
            for r in ratios):
        raise DataError(f"ratios must be {count}finite numbers such as (0.8, 0.1, 0.1), got "
                        f"{ratios}")
    if min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-9:
        raise DataError(f"ratios must be non-negative and sum to 1, got {ratios}")
    return ratios


def random_split(df: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0):
    """Shuffle rows and cut by ``ratios`` (which must sum to 1). Ignores time: use it for
    rating prediction benchmarks, never to evaluate a system that must predict the future."""
    require_columns(df, [], "the data to split")
    _nonempty(df, "the data to split")
    require_int("seed", seed, 0)
    ratios = _split_ratios(ratios)
    order = np.random.default_rng(seed).permutation(len(df))
    cuts = np.round(np.cumsum(ratios)[:-1] * len(df)).astype(int)
    return tuple(df.iloc[np.sort(part)] for part in np.split(order, cuts))


def _ratio_counts(n: int, ratios) -> list[int]:
    """How many of a user's ``n`` interactions each part gets: every part after the first
    ``floor(r * n)``, raised to 1 where ``0 < r * n < 1`` as long as the first part keeps more
    than one (from the last part backwards); the first part the rest. RecBole's rule."""
    cnt = [int(r * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    for k in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-k] * n < 1:
            cnt[-k] += 1
            cnt[0] -= 1
    return cnt


def per_user_split(df: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0, *,
                   col_user: str = "user_id", col_item: str = "item_id"):
    """Each user's interactions in random order, cut by ``ratios``: RecBole's default protocol
    (``order: RO``, ``split: {RS: [0.8, 0.1, 0.1]}``, ``group_by: user``). Unlike
    :func:`random_split`, which cuts the pooled rows, every user keeps about 80 % of their own
    history for training, so every user with enough interactions is tested.

    Rounding per user (RecBole's rule): validation and test get ``floor(r * n)`` each, raised to
    one where ``0 < r * n < 1`` while training keeps more than one; training gets the rest. A
    user with 20 ratings: 16 / 2 / 2; with 5: 3 / 1 / 1; with 2: 1 / 0 / 1; with 1: 1 / 0 / 0
    (such users are kept, in training only, never dropped). The random order is this function's
    own (numpy, ``seed``), not RecBole's torch permutation: the protocol is the same, the drawn
    split is not. Rows keep the input's order within each part."""
    require_columns(df, [col_user, col_item], "the interactions")
    _nonempty(df, "the interactions")
    require_int("seed", seed, 0)
    require_ids(df, col_user, "the interactions")
    require_ids(df, col_item, "the interactions")
    ratios = _split_ratios(ratios, parts=3)
    dup = df.duplicated([col_user, col_item])
    if dup.any():
        raise DataError(f"{int(dup.sum())} repeated (user, item) pairs, e.g. "
                        f"{tuple(df.loc[dup, [col_user, col_item]].iloc[0])}: a pair split "
                        "between train and test would leak; keep one row per pair first "
                        "(e.g. drop_duplicates([user, item], keep='last')).")
    order = np.random.default_rng(seed).permutation(len(df))
    users = df[col_user].to_numpy()[order]
    pos = pd.Series(np.arange(len(df))).groupby(users, sort=False).cumcount().to_numpy()
    size = pd.Series(users).map(pd.Series(users).value_counts()).to_numpy()
    part = np.zeros(len(df), dtype=np.int8)
    for n in np.unique(size):
        n_train, n_valid, _ = _ratio_counts(int(n), ratios)
        k = size == n
        part[k] = np.where(pos[k] < n_train, 0, np.where(pos[k] < n_train + n_valid, 1, 2))
    where = np.empty(len(df), dtype=np.int8)
    where[order] = part
    return tuple(df[where == k] for k in range(3))


def leave_last_out(df: pd.DataFrame, *, col_user: str = "user_id",
                   col_time: str = "timestamp", col_item: str = "item_id", n_valid: int = 1,
                   n_test: int = 1, ties: str = "item"):
    """Per-user temporal split: each user's last ``n_test`` interactions go to test, the
    ``n_valid`` before them to validation, the rest to train. Users with too few
    interactions to give any to test keep them all in train. Ties in time are broken by item
    ID (``ties="item"``), so the split does not depend on row order; ``ties="input"`` keeps the
    input's order among ties, as RecBole's leave-one-out (``split: {LS: valid_and_test}``,
    ``order: TO``, a stable sort by time) does. With one validation and one test item that is
    RecBole's protocol, except for users with exactly two interactions (RecBole tests one of
    them; here both train). MovieLens-100K has none. One more difference, RecBole's: it
    min-max-normalises timestamps and keeps them in float32 (about 1 s apart near the end of
    MovieLens' range), so two events a second apart can tie there and go by file order; that
    makes RecBole's test item not the user's latest for 4 of MovieLens-100K's 943 users
    (``tests/test_toolkit_parity.py`` reproduces all 943 so)."""
    require_columns(df, [col_user, col_time, col_item], "the interactions")
    _nonempty(df, "the interactions")
    require_int("n_test", n_test, 1)
    require_int("n_valid", n_valid, 0)
    require_ids(df, col_user, "the interactions")
    require_ids(df, col_item, "the interactions")
    require_times(df, col_time, "the interactions")
    if ties not in ("item", "input"):
        raise DataError(f"ties must be 'item' (break ties in time by item ID) or 'input' (keep "
                        f"the input's order, as RecBole does), got {ties!r}")
    dup = df.duplicated([col_user, col_item, col_time])
    if dup.any():
        raise DataError(f"{int(dup.sum())} repeated (user, item, time) rows, e.g. "
                        f"{tuple(df.loc[dup, [col_user, col_item, col_time]].iloc[0])}: the same "
                        "event twice would land in two parts; drop exact repeats first "
                        "(drop_duplicates([user, item, time])).")
    keys = [col_user, col_time, col_item] if ties == "item" else [col_user, col_time]
    ordered = df.sort_values(keys, kind="stable")
    from_end = ordered.groupby(col_user).cumcount(ascending=False)
    size = ordered.groupby(col_user)[col_user].transform("size")
    eligible = size > n_test + n_valid
    test = eligible & (from_end < n_test)
    valid = eligible & (from_end >= n_test) & (from_end < n_test + n_valid)
    train = ~(test | valid)
    return ordered[train], ordered[valid], ordered[test]


def temporal_split(df: pd.DataFrame, boundaries, *, col_time: str = "timestamp"):
    """Cut by global time: ``boundaries`` ``[b1, b2, ...]`` (strictly increasing) give parts
    ``t < b1``, ``b1 <= t < b2``, ..., ``t >= b_last``."""
    require_columns(df, [col_time], "the data")
    _nonempty(df, "the data")
    require_times(df, col_time, "the data")
    if isinstance(boundaries, (str, bytes)) or not hasattr(boundaries, "__iter__"):
        raise DataError(f"boundaries must be a list of times, got {boundaries!r}; e.g. [t1, t2].")
    b = list(boundaries)
    if not b:
        raise DataError("give at least one boundary")
    if any(pd.isna(x) for x in b):
        raise DataError(f"boundaries contain a missing value: {b}; every boundary must be a "
                        "time.")
    if any(x >= y for x, y in zip(b, b[1:])):
        raise DataError(f"boundaries must increase strictly, got {b}: sort them (and drop "
                        "repeats).")
    edges = [-np.inf, *b, np.inf]
    t = df[col_time]
    return tuple(df[(t >= lo) & (t < hi)] for lo, hi in zip(edges, edges[1:]))


def cold_start_split(events: pd.DataFrame, catalogue: pd.DataFrame, cutoff, *,
                     col_item: str = "item_id", col_time: str = "timestamp",
                     col_launch: str = "launch_ts"):
    """Split for new-item evaluation at time ``cutoff``.

    Returns ``(train, test_warm, test_cold)``: train has the events before ``cutoff``; the test
    parts hold events from ``cutoff`` on, on items launched before it (warm) or from it on
    (cold: no training data exists for them).
    """
    require_columns(events, [col_item, col_time], "events")
    require_columns(catalogue, [col_item, col_launch], "the catalogue")
    require_times(events, col_time, "events")
    require_times(catalogue, col_launch, "the catalogue")
    if isinstance(cutoff, (str, bytes, bool)) or cutoff is None or pd.isna(cutoff):
        raise DataError(f"cutoff must be a time comparable with {col_time}, got {cutoff!r}.")
    if catalogue[col_item].duplicated().any():
        raise DataError(f"the catalogue lists some {col_item}s twice (e.g. "
                        f"{catalogue.loc[catalogue[col_item].duplicated(), col_item].head(3).tolist()})"
                        "; clean it first (clean_catalogue).")
    launch = events[col_item].map(catalogue.set_index(col_item)[col_launch])
    if launch.isna().any():
        raise DataError(f"{int(launch.isna().sum())} events are for items the catalogue does "
                        "not have; clean the events first (clean_events).")
    before = events[col_time] < cutoff
    new = launch >= cutoff
    return events[before], events[~before & ~new], events[~before & new]


def check_no_leakage(train: pd.DataFrame, test: pd.DataFrame, *, col_user: str = "user_id",
                     col_time: str = "timestamp") -> bool:
    """Raise :class:`DataError` if any user has a training event later than their first test
    event (the model would learn from the future it is asked to predict). Returns True."""
    require_columns(train, [col_user, col_time], "train")
    require_columns(test, [col_user, col_time], "test")
    require_times(train, col_time, "train")
    require_times(test, col_time, "test")
    last_train = train.groupby(col_user)[col_time].max()
    first_test = test.groupby(col_user)[col_time].min()
    both = pd.concat([last_train, first_test], axis=1, keys=["train", "test"]).dropna()
    leaks = both[both["train"] > both["test"]]
    if len(leaks):
        raise DataError(f"Time leak: {len(leaks)} users have training events after their first "
                        f"test event (e.g. users {leaks.index[:5].tolist()}). Split by time, "
                        "e.g. leave_last_out or temporal_split.")
    return True


def first_users(df: pd.DataFrame, n: int | None, *, col_user: str = "user_id") -> pd.DataFrame:
    """The rows of the first ``n`` users, in the order users first appear in ``df`` (rows keep
    their order and index). ``n=None`` returns ``df`` itself, untouched: a chapter writes
    ``pp.first_users(ratings, cfg.pick(quick=None, smoke=100))`` so that only the smoke profile
    (the tests' tiny run) trains on a slice.

    >>> df = pd.DataFrame({"user_id": [7, 3, 7, 9], "item_id": [1, 2, 3, 4]})
    >>> first_users(df, 2)["user_id"].tolist()
    [7, 3, 7]
    >>> first_users(df, None) is df
    True
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    require_columns(df, [col_user], "df")
    if n is None:
        return df
    n = require_int("n", n, 1)
    _nonempty(df, "df")
    require_ids(df, col_user, "df")
    keep = df[col_user].drop_duplicates().iloc[:n]
    return df[df[col_user].isin(keep)]


# ----------------------------------------------------------------------------- pipeline
def clean_shopworld(root=None, *, write: bool = True) -> dict[str, pd.DataFrame]:
    """The whole of chapter 01's cleaning on a ShopWorld's raw files; writes the result to
    ``<artifacts>/shopworld_clean/`` for later chapters. Returns ``{"catalogue", "events"}``."""

    catalogue, _ = clean_catalogue(loaders.load_shopworld("raw_catalogue", root))
    events, _ = clean_events(loaders.load_shopworld("raw_events", root), catalogue)
    if write:
        out = config.artifacts_dir() / "shopworld_clean"
        out.mkdir(parents=True, exist_ok=True)
        catalogue.to_parquet(out / "catalogue.parquet", index=False)
        events.to_parquet(out / "events.parquet", index=False)
    return {"catalogue": catalogue, "events": events}


def dirt_profile(events: pd.DataFrame, catalogue: pd.DataFrame, *, col_user: str = "user_id",
                 col_item: str = "item_id", col_time: str = "timestamp",
                 price_outlier_factor: float = 20.0) -> pd.Series:
    """Measure each kind of dirt in a log and catalogue (raw or cleaned) without changing them:
    counts of non-canonical spellings, duplicates, out-of-order rows, orphan events, bot users,
    suspicious and missing prices, and missing descriptions. A clean pair measures all zeros."""
    require_columns(events, [col_user, col_item, col_time, "event_type"], "events")
    require_columns(catalogue, [col_item, "category", "brand", "price", "description"],
                    "the catalogue")
    et = events["event_type"].astype("string")
    brand, category = catalogue["brand"].astype("string"), catalogue["category"].astype("string")
    median = catalogue.groupby(normalise_category(category))["price"].transform("median")
    desc = catalogue["description"].astype("string").str.strip()
    return pd.Series({
        "event_type not canonical": int((~et.isin(EVENT_TYPES)).sum()),
        "duplicate events": int(events.duplicated().sum()),
        "rows out of time order": int((events[col_time].diff() < 0).sum()),
        "orphan events": int((~events[col_item].isin(catalogue[col_item])).sum()),
        "bot users": len(detect_bots(events, col_user=col_user, col_time=col_time)),
        "brand/category not canonical": int(((brand != normalise_brand(brand))
                                              | (category != normalise_category(category)))
                                             .fillna(True).sum()),
        "duplicate catalogue rows": int(catalogue[col_item].duplicated().sum()),
        "price > 20x category median": int((catalogue["price"]
                                             > price_outlier_factor * median).sum()),
        "missing price": int(catalogue["price"].isna().sum()),
        "missing description": int((desc.isna() | (desc == "")).sum()),
    }, name="count")
