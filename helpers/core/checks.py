"""Input checks shared by every layer: a bad value is an error that says what was wrong and how
to fix it, never a silent repair (no NaN rows dropped, no float ids truncated, no text sorted as if
it were time).

Two kinds of error, both ``ValueError`` with the same shape of message (what was wrong, what was
given, how to fix it):

* :class:`ParameterError` — a setting is out of range or of the wrong type (``k=0``,
  ``lr="fast"``): raised by :func:`require_int`, :func:`require_count`, :func:`require_number`,
  :func:`require_level` and by an estimator's ``fit`` (settings are checked there, not in
  ``__init__``: scikit-learn's convention);
* :class:`DataError` — the data is missing, corrupt or malformed (a missing column, a NaN
  rating, a text timestamp): raised by the other ``require_*``.

>>> require_count("k", 10)
10
>>> require_count("k", 0)
Traceback (most recent call last):
    ...
helpers.core.checks.ParameterError: k must be a positive integer, got int 0; e.g. k=10.
>>> require_columns(pd.DataFrame({"user_id": [1]}), ["user_id", "item_id"], "events")
Traceback (most recent call last):
    ...
helpers.core.checks.DataError: events is missing column(s) ['item_id']; it has ['user_id']. ...

    from helpers.core.checks import DataError, require_columns
    require_columns(events, ["user_id", "item_id"], "events")   # DataError names what is missing
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = ["DataError", "ParameterError", "require_columns", "require_int", "require_count", "require_choice", "require_number", "require_ids",
           "require_id_values",
           "require_finite", "require_times", "require_values", "require_level", "require_int_ids", "require_id",
           "require_id_pairs"]


class DataError(ValueError):
    """Data is missing, corrupt or malformed; the message says what and how to fix it."""


class ParameterError(ValueError):
    """A setting is out of range or of the wrong type; the message says what it must be."""


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "the table") -> None:
    """Raise :class:`DataError` naming the columns ``df`` lacks (and the ones it has)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(df).__name__}.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {missing}; it has {list(df.columns)}. "
                        "Rename yours (or pass col_user=..., col_item=... to match).")


def _examples(mask, index) -> list:
    return list(index[np.asarray(mask)][:5])


def require_int(name: str, value: object, minimum: int | None = None) -> int:
    """``value`` as an ``int``: rejects bools, floats (even 2.0), strings and None, and values
    below ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {type(value).__name__} {value!r}. "
                        f"Pass a whole number such as {name}={max(minimum or 0, 1)}.")
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def require_count(name: str, value: object) -> int:
    """A positive integer such as ``k``, ``n_boot`` or ``n_items``: :func:`require_int` with a
    minimum of 1, said the way a count is."""
    try:
        return require_int(name, value, 1)
    except ParameterError:
        raise ParameterError(f"{name} must be a positive integer, got {type(value).__name__} "
                             f"{value!r}; e.g. {name}=10.") from None


def require_choice(name: str, value: object, choices: Iterable[object]) -> object:
    """``value`` when it is one of ``choices`` (``kind`` in {'item', 'user'}), else a
    :class:`ParameterError` listing them."""
    choices = list(choices)
    if isinstance(value, bool) or value not in choices:
        raise ParameterError(f"{name} must be one of {choices}, got {value!r}.")
    return value


def require_number(name: str, value: object, *, low: float | None = None, low_open: bool = False,
                   high: float | None = None, high_open: bool = False) -> float:
    """A finite real number (not a bool, string or None) within ``[low, high]`` (``(low, ...``
    with ``low_open``, ``..., high)`` with ``high_open``): for hyper-parameters such as ``lr``,
    ``reg`` or ``temperature``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                       np.floating)):
        raise ParameterError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    if not math.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value}.")
    if low is not None and (value < low or (low_open and value == low)):
        raise ParameterError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise ParameterError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}.")
    return float(value)


def require_id_values(s: pd.Series, what: str) -> None:
    """IDs (none missing: check that first) of one kind, all numbers or all text, never
    True/False, and numbers whole and finite. The number 1 and the text '1' would be two
    different users, a bool column is a mask passed by mistake, and a float 3.7 would be
    truncated into another ID."""
    if pd.api.types.is_bool_dtype(s) or any(isinstance(v, (bool, np.bool_)) for v in
                                            s.head(1000)):
        raise DataError(f"{what} are True/False, not IDs: was a mask or a flag column passed "
                        "instead of the ID column? Pass the IDs themselves.")
    if s.dtype == object:
        kinds = s.map(lambda v: "number" if isinstance(v, (int, float, np.integer, np.floating))
                      else type(v).__name__).unique()
        if len(kinds) > 1:
            raise DataError(f"{what} mix kinds {sorted(kinds)} (e.g. the number 1 and the text "
                            "'1' would be two different users); convert the column to one kind "
                            "first, e.g. df['user_id'].astype(int) or .astype(str).")
    if pd.api.types.is_float_dtype(s):
        v = s.to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            raise DataError(f"{int(bad.sum())} of {what} are not whole numbers (e.g. "
                            f"{list(s[bad][:3])}); IDs must be integers or strings. Fix the "
                            "source; they would otherwise be truncated into other IDs.")


def require_ids(df: pd.DataFrame, col: str, what: str) -> None:
    """IDs must be present and pass :func:`require_id_values` (one kind, no True/False, whole
    numbers)."""
    s = df[col]
    missing = s.isna()
    if missing.any():
        raise DataError(f"{int(missing.sum())} rows of {what} have no {col} (NaN/None), e.g. rows "
                        f"{_examples(missing, df.index)}. Drop or repair those rows first; "
                        "nothing is dropped silently.")
    require_id_values(s, f"the {col} values of {what}")


def require_finite(df: pd.DataFrame, col: str, what: str, *, allow_missing: bool = False) -> None:
    """A numeric column with no ±inf (and no NaN unless ``allow_missing``); strings such as
    ``'five'`` are an error, not a silent NaN."""
    s = df[col]
    if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        coerced = pd.to_numeric(s, errors="coerce")
        bad = coerced.isna() & s.notna()
        raise DataError(f"{col} in {what} must be numeric, got dtype {s.dtype}"
                        + (f" with non-numbers such as {list(s[bad][:3])}" if bad.any() else "")
                        + f". Convert it first, e.g. pd.to_numeric(df[{col!r}]), and decide "
                          "what to do with values that are not numbers.")
    v = s.to_numpy(np.float64, na_value=np.nan)
    if not allow_missing and np.isnan(v).any():
        raise DataError(f"{int(np.isnan(v).sum())} values of {col} in {what} are NaN (e.g. rows "
                        f"{_examples(np.isnan(v), df.index)}); drop or fill them first.")
    if np.isinf(v).any():
        raise DataError(f"{int(np.isinf(v).sum())} values of {col} in {what} are infinite (e.g. "
                        f"rows {_examples(np.isinf(v), df.index)}); that is a data error — fix "
                        "or drop those rows first.")


def require_times(df: pd.DataFrame, col: str, what: str) -> None:
    """Timestamps must be numbers (seconds) or datetimes, none missing: text would sort as text
    (``'10' < '9'``), and a NaN time has no place in an order."""
    s = df[col]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)) \
            or pd.api.types.is_bool_dtype(s):
        raise DataError(f"{col} in {what} must be numeric (e.g. Unix seconds) or datetime64, got "
                        f"dtype {s.dtype}: text timestamps sort as text. Convert first, e.g. "
                        f"pd.to_numeric(df[{col!r}]) or pd.to_datetime(df[{col!r}]).")
    if s.isna().any():
        raise DataError(f"{int(s.isna().sum())} rows of {what} have no {col} (NaN/NaT), e.g. rows "
                        f"{_examples(s.isna(), df.index)}; a row without a time cannot be placed "
                        "in a time split. Drop or repair them first.")
    if pd.api.types.is_numeric_dtype(s) and np.isinf(s.to_numpy(np.float64)).any():
        raise DataError(f"{col} in {what} has infinite values; fix or drop those rows first.")


def require_values(x: object, what: str) -> np.ndarray:
    """``x`` as a 1-D array of finite floats (one per user or pair), or a :class:`DataError`
    that says what was wrong."""
    if isinstance(x, (str, bytes)):
        raise DataError(f"{what} must be numbers (one per user or pair), got a string.")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numbers (one per user or pair); convert them first, "
                        "e.g. pd.to_numeric(...).") from None
    if a.ndim != 1:
        raise DataError(f"{what} must be 1-D (one number per user or pair), got shape {a.shape}.")
    if a.size == 0:
        raise DataError(f"{what} is empty: nothing to test.")
    if not np.isfinite(a).all():
        raise DataError(f"{what} holds NaN or inf (at positions "
                        f"{np.flatnonzero(~np.isfinite(a))[:5].tolist()}); a metric that is "
                        "undefined for a user must be dropped for every model, not skipped "
                        "silently for one.")
    return a


def require_level(level: object) -> float:
    """A probability in (0, 1), such as an interval's level 0.95."""
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ParameterError(f"level must be a probability in (0, 1), e.g. 0.95; got {level!r}.")
    return float(level)


def require_id_pairs(users: ArrayLike, items: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``users`` and ``items`` as two int64 arrays of the same non-zero length, one (user, item)
    pair per position (see :func:`require_int_ids`)."""
    users, items = np.asarray(users).ravel(), np.asarray(items).ravel()
    if len(users) != len(items):
        raise DataError(f"users and items must pair up: got {len(users)} users and "
                         f"{len(items)} items")
    if len(users) == 0:
        raise DataError("no (user, item) pairs to explain")
    return require_int_ids(users, "users"), require_int_ids(items, "items")


def require_id(value: object, what: str) -> int:
    """One integer ID (see :func:`require_int_ids`)."""
    return int(require_int_ids(np.asarray([value]), what)[0])


def require_int_ids(values: np.ndarray, what: str) -> np.ndarray:
    """Integer IDs, refusing what ``astype(int)`` would silently truncate or garble."""
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise DataError(f"{what} must be whole-number IDs; got {values[bad][:3].tolist()} "
                             "(NaN, inf or a fraction would be truncated into another ID).")
        return values.astype(np.int64)
    raise DataError(f"{what} must be integer IDs, got dtype {values.dtype} (e.g. "
                     f"{values[:3].tolist()}); convert them with .astype(int) where that is "
                     "right.")
