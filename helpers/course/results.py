"""Key results by name, checked against stored expectations with measured tolerances.

A printed float is not portable: the third decimal of an NDCG moves with the processor, the BLAS
build and the thread count. So a chapter *records* each key number by name, and the recorder
compares it with the chapter's expectations file, ``tests/expectations/<chapter>.toml``, where
each value has a tolerance chosen from measured run-to-run and machine-to-machine spread (the
file says why in comments)::

    from helpers.course import results
    rec = results.Recorder("02a_rating_prediction", cfg)    # in the setup cell
    rec("ml.itemknn.ndcg@10", ranking_table.loc["item-kNN", "NDCG@10"])
    ...
    rec.finish()                                                 # last cell: nothing missed

A value outside its band raises :class:`ResultMismatch` (an ``AssertionError``) with the expected
value, the band and the file to edit, so the notebook test fails at the cell that computed it.
Expectations hold for one profile and seed; under another (a student trying ``SEED = 1``, or the
full profile on a GPU) values are recorded but not checked. Every recorded value is also written
to ``build/results/<chapter>.json`` (``$COURSE_RESULTS`` moves it) for the course report.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from helpers.core import config
from helpers.core.checks import DataError, ParameterError

__all__ = ["Expectation", "ResultMismatch", "Recorder", "load_expectations",
           "EXPECTATIONS_DIR", "results_dir"]

EXPECTATIONS_DIR = config.ROOT / "tests" / "expectations"


class ResultMismatch(AssertionError):
    """A recorded result is outside the tolerance its expectations file allows."""


@dataclass(frozen=True)
class Expectation:
    """One expected value: ``value`` ± ``abs`` (absolute) or ± ``rel`` × |value| (relative);
    when both are given the wider band applies."""

    name: str
    value: float
    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    @property
    def tolerance(self) -> float:
        return max(self.abs, self.rel * abs(self.value))

    def accepts(self, value: float) -> bool:
        """Whether ``value`` lies within this expectation's tolerance of its stored value."""
        return abs(value - self.value) <= self.tolerance + 1e-12


def results_dir() -> Path:
    """Where recorded values are written: ``$COURSE_RESULTS`` or ``<repo>/build/results``."""
    path = config.course_path(os.environ.get("COURSE_RESULTS", config.ROOT / "build" / "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_number(name: str, value, where: str) -> float:
    if not isinstance(value, (bool, numbers.Real)) and hasattr(value, "item") \
            and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy and torch scalars
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: result {name!r} must be a real number, got "
                        f"{type(value).__name__} {value!r}. Record a float or an int "
                        "(e.g. float(table.loc[row, col])).")
    value = float(value)
    if not math.isfinite(value):
        raise DataError(f"{where}: result {name!r} is {value}; a key result must be finite. "
                        "Check the computation that produced it (an empty test set, a division "
                        "by zero, a model that diverged).")
    return value


def load_expectations(chapter: str, directory: Path | None = None) -> dict:
    """Read ``<directory>/<chapter>.toml``: ``{"profile", "seed", "results": {name: Expectation}}``.
    A missing file gives an empty set of results (nothing is checked)."""
    if not isinstance(chapter, str) or not chapter.strip():
        raise ParameterError(f"chapter must be a non-empty string such as '02a_rating_prediction',"
                             f" got {chapter!r}")
    path = Path(directory or EXPECTATIONS_DIR) / f"{chapter}.toml"
    if not path.exists():
        return {"profile": None, "seed": None, "results": {}, "path": path}
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"{path}: not valid TOML ({err}). Fix the file by hand.") from None
    for key in ("profile", "seed", "results"):
        if key not in raw:
            raise DataError(f"{path}: the top level needs a {key!r} entry (see the file's "
                            "first lines for the format).")
    out = {}
    for name, spec in raw["results"].items():
        if not isinstance(spec, dict) or "value" not in spec:
            raise DataError(f"{path}: results.{name!r} needs at least `value` (and `abs` or "
                            "`rel`), e.g. {{ value = 0.23, abs = 0.01 }}.")
        unknown = set(spec) - {"value", "abs", "rel", "why"}
        if unknown:
            raise DataError(f"{path}: results.{name!r} has unknown keys {sorted(unknown)}; "
                            "allowed: value, abs, rel, why.")
        exp = Expectation(name, float(spec["value"]), float(spec.get("abs", 0.0)),
                          float(spec.get("rel", 0.0)), str(spec.get("why", "")))
        if exp.abs < 0 or exp.rel < 0 or not math.isfinite(exp.value):
            raise DataError(f"{path}: results.{name!r}: tolerances must be >= 0 and the value "
                            "finite.")
        out[name] = exp
    return {"profile": raw["profile"], "seed": raw["seed"], "results": out, "path": path}


class Recorder:
    """Record a chapter's key results and check each against its expectation.

    Parameters
    ----------
    chapter : the notebook's stem, e.g. ``"02a_rating_prediction"``.
    run : the :class:`helpers.core.config.RunConfig` from the setup cell (its profile and seed decide
        whether the expectations apply), or ``None`` to check regardless.
    directory : expectations folder (tests use a temporary one).
    """

    def __init__(self, chapter: str, run=None, directory: Path | None = None):
        self.chapter = chapter
        spec = load_expectations(chapter, directory)
        self.path = spec["path"]
        self.expected: dict[str, Expectation] = spec["results"]
        self.profile = getattr(getattr(run, "profile", None), "name", None)
        self.seed = getattr(run, "seed", None)
        # COURSE_RECORD_ONLY=1: record without checking (tools/measure_spread.sh re-measuring the
        # expectations a changed chapter no longer meets)
        self.checking = bool(self.expected) and not os.environ.get("COURSE_RECORD_ONLY") and (
            run is None or (self.profile == spec["profile"] and self.seed == spec["seed"]))
        self.context = f"{spec['profile']} profile, seed {spec['seed']}"
        self.values: dict[str, float] = {}

    def __call__(self, name: str, value) -> None:
        """Record ``value`` as ``name``; raise :class:`ResultMismatch` if it is outside its band.
        Returns nothing, so a cell ending in ``rec(...)`` shows no stray float (read recorded
        values from ``rec.values``)."""
        problem = self._add(name, value)
        self._write()
        if problem:
            raise ResultMismatch(problem)

    record = __call__

    def table(self, prefix: str, frame) -> None:
        """Record every numeric cell of a DataFrame (or Series) as ``prefix.row.column``
        (a MultiIndex row is joined with ``/``). Mismatches are collected and reported
        together, so one run shows every number that moved."""
        import pandas as pd

        if isinstance(frame, pd.Series):
            frame = frame.to_frame(frame.name if frame.name is not None else "value")
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise DataError(f"chapter {self.chapter}: table {prefix!r} must be a non-empty "
                            f"DataFrame or Series, got {type(frame).__name__}.")
        problems = []
        try:
            for row, values in frame.iterrows():
                label = "/".join(map(str, row)) if isinstance(row, tuple) else str(row)
                for col, value in values.items():
                    if not isinstance(value, str):
                        problems.append(self._add(f"{prefix}.{label}.{col}", value))
        finally:
            self._write()  # once per table, with whatever was recorded
        problems = [p for p in problems if p]
        if problems:
            raise ResultMismatch(f"{len(problems)} result(s) of {prefix!r} are off:\n"
                                 + "\n".join(problems))

    def _add(self, name: str, value) -> str | None:
        """Store one value; return why it fails its expectation (``None`` when it passes or
        is not checked). Bad names and values raise at once."""
        where = f"chapter {self.chapter}"
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{where}: a result needs a non-empty string name, got {name!r}.")
        value = _check_number(name, value, where)
        if name in self.values:
            raise DataError(f"{where}: result {name!r} was already recorded in this run "
                            f"({self.values[name]}); give each result its own name.")
        self.values[name] = value
        if not self.checking:
            return None
        exp = self.expected.get(name)
        if exp is None:
            return (f"{where}: result {name!r} = {value:.6g} has no expectation in "
                    f"{self.path.name}. Add it there with a tolerance measured from run-to-run "
                    "and machine-to-machine spread (see the file's comments), e.g. "
                    f"\"{name}\" = {{ value = {value:.4g}, abs = ... }}.")
        if not exp.accepts(value):
            return (f"{where}: {name} = {value:.6g}, expected {exp.value:.6g} ± "
                    f"{exp.tolerance:.3g} ({self.context}; {self.path.name}). "
                    + (f"Tolerance note: {exp.why}. " if exp.why else "")
                    + "If the model changed on purpose, re-measure the spread and update the "
                      "expectation; otherwise something in the pipeline regressed.")
        return None

    def missing(self) -> list[str]:
        """Expected names this run has not recorded (yet)."""
        return sorted(set(self.expected) - set(self.values))

    def finish(self) -> dict[str, float]:
        """Call in the chapter's last cell: fails if an expected result was never recorded
        (a deleted ``rec(...)`` call would otherwise silently drop its check)."""
        missing = self.missing() if self.checking else []
        if missing:
            raise ResultMismatch(f"chapter {self.chapter}: expected results never recorded: "
                                 f"{missing}. Record them, or remove them from {self.path.name}.")
        return dict(self.values)

    def _write(self) -> None:
        payload = {"chapter": self.chapter, "profile": self.profile, "seed": self.seed,
                   "checked": self.checking, "results": self.values}
        path = results_dir() / f"{self.chapter}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, path)

    def __repr__(self) -> str:
        state = "checking" if self.checking else "recording only"
        return (f"Recorder({self.chapter!r}: {len(self.values)} recorded, "
                f"{len(self.expected)} expected, {state})")
