"""Grade a class: run every submitted chapter notebook in a sandbox, record each exercise's and
questionnaire's result, write a gradebook, a summary per chapter and a feedback page per student.

::

    make grade SUBMISSIONS=path/to/class                  # quick profile, build/grades/
    python -m helpers.grade path/to/class --out build/grades --jobs 2

The submissions folder holds one folder per student, each with any of the chapter notebooks,
named as in ``chapters/`` (``alice/03_self_attention.ipynb``). Each notebook runs headless in its
own process (:mod:`helpers.course.grade_runner`) inside a jail (:mod:`helpers.course.sandbox`):
no network, time limits per cell, per check and per notebook, a memory limit, a scratch folder
of its own and nothing else of the machine to read or write. Each item ends as one of:

- ``passed``: the exercise's checker accepted the answer (all of a questionnaire right);
- ``failed``: the checker's message says what was wrong (a questionnaire: some answers wrong,
  scored by the fraction right);
- ``not attempted``: the stub still raises ``NotImplementedError``, or the answer is not defined;
- ``errored``: the notebook could not be judged, and why: timed out, crashed, out of memory,
  tampering (it wrote on the judge's channel), its check cell deleted, not a valid notebook...

Results come from the *judge*, a process of the runner forked before the notebook's code ran:
it alone holds the pipe on which the grader takes results, and it runs the checkers, which call
the student's functions in the notebook's process through a proxy and read back only plain
values, arrays, tensors and pandas objects (never a pickle); questionnaires are scored here, in
the grader's process, from the answers the notebook defined. Nothing the notebook prints is read
as a result. What this does not stop is said in INSTRUCTORS.md; ``summary.md`` lists the
notebooks whose code uses what an attack on an in-process grader needs, for review by hand.
Points per item are set in ``helpers/course/grading.toml`` (:func:`load_config`).

Outputs, in ``--out``: ``gradebook.csv`` (student x item, points), ``results.csv`` and
``results.json`` (every item's state and message), ``summary.md`` (per chapter: the share passing
each item, the most common failure messages), ``feedback/<student>.html`` (escaped: a
submission's text is shown, never interpreted) and ``logs/<student>/<notebook>.log`` (a capped
copy of what the notebook printed).
"""
from __future__ import annotations

import argparse
import ast
import collections
import csv
import difflib
import html
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from helpers.core import config
from helpers.core.checks import DataError, ParameterError
from helpers.course import exercises as exercises_pkg, grade_runner, notebooks, sandbox
from helpers.course.exercises.quiz import Quiz

__all__ = ["CONFIG", "STATES", "GRACE_S", "LINGER_S", "RUNNER_ARGS", "PROFILES", "GradingConfig", "Item", "Submission", "NotebookResult",
           "Gradebook", "load_config", "chapter_items", "find_submissions", "read_notebook",
           "notebook_plan", "grade_notebook", "grade", "summary_markdown", "feedback_html",
           "write_outputs", "main"]

CONFIG = Path(__file__).with_name("grading.toml")
"""The default points and limits."""
STATES = ("passed", "failed", "not attempted", "errored")
"""What an item of a submitted notebook can end as (``not submitted`` when the file is absent)."""
LIMIT_KEYS = ("cell_s", "notebook_s", "check_s", "memory_mib", "output_mib", "scratch_mib",
              "tmp_mib", "nproc", "max_notebook_mib")
_WHOLE = ("memory_mib", "scratch_mib", "tmp_mib", "nproc")
PROFILES = ("quick", "smoke")
GRACE_S = 30
"""Seconds a notebook's process gets beyond its cells' and checks' limits (start-up, judging)
before the grader kills it."""
LINGER_S = 30
"""Seconds the runner may take to end after closing its pipes before it is stopped."""
RUNNER_ARGS = ("-s", "-B", "-m", "helpers.course.grade_runner")
"""Python's arguments that start the runner (a test may start another program instead)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_LOG_KEEP = 64 * 1024
_MARKER = ".reasonrec-grades"
_MARKER_TEXT = "written by helpers.course.grade; feedback/ and logs/ are replaced at each run\n"
# Every text file the grader writes: UTF-8, and what cannot be encoded (a lone surrogate from a
# submission's message or file name) escaped, so that no student can stop the class's outputs
_TEXT = {"encoding": "utf-8", "errors": "backslashreplace"}


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class GradingConfig:
    """Points per item and the limits a notebook runs under (see ``grading.toml``)."""

    exercise_points: float
    quiz_points: float
    item_points: dict
    limits: dict
    source: str = ""

    def points(self, item: str, is_quiz: bool) -> float:
        """The points ``item`` (e.g. ``"ch00.q1"``) is worth."""
        if item in self.item_points:
            return float(self.item_points[item])
        return self.quiz_points if is_quiz else self.exercise_points


def _number(value, what: str, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ParameterError(f"{where}: {what} must be a number, got {value!r}.")
    if value < 0 or (positive and value == 0):
        raise ParameterError(f"{where}: {what} must be {'> 0' if positive else '>= 0'}, got "
                             f"{value!r}.")
    return float(value)


def load_config(path: str | os.PathLike | None = None, limits: dict | None = None) -> GradingConfig:
    """Read the points and limits from ``path`` (default: ``helpers/course/grading.toml``),
    with ``limits`` (e.g. ``{"cell_s": 60}``) overriding its ``[limits]``.

    Every item listed must exist in a chapter; every number is checked.

    >>> load_config().points("ch00.q1", is_quiz=False)
    1.0
    >>> load_config(limits={"cell_s": 0})
    Traceback (most recent call last):
        ...
    helpers.core.checks.ParameterError: limits: cell_s must be > 0, got 0.
    """
    path = Path(path) if path is not None else CONFIG
    if not path.is_file():
        raise ParameterError(f"No grading config at {path}: pass an existing .toml file (start "
                             f"from a copy of {CONFIG}).")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ParameterError(f"{path} is not valid TOML: {err}. Fix the line it names.") from err
    unknown = set(data) - {"points", "limits"}
    if unknown:
        raise ParameterError(f"{path}: unknown table(s) {sorted(unknown)}; it has [points], "
                             "[points.items] and [limits].")
    points = data.get("points", {})
    unknown = set(points) - {"exercise", "quiz", "items"}
    if unknown:
        raise ParameterError(f"{path}: unknown key(s) {sorted(unknown)} in [points]; use "
                             "exercise, quiz and [points.items].")
    where = str(path)
    exercise = _number(points.get("exercise", 1), "points.exercise", where)
    quiz = _number(points.get("quiz", 1), "points.quiz", where)
    known = {name for items in chapter_items().values() for name, _ in items}
    items = {}
    for name, value in points.get("items", {}).items():
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise ParameterError(f"{where}: [points.items] names {name!r}, which no chapter has"
                                 + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + "; items are named like 'ch00.q1' or 'ch00.quiz'.")
        items[name] = _number(value, f"points for {name}", where)
    merged = {}
    for source, table in ((where, data.get("limits", {})), ("limits", limits or {})):
        for key, value in table.items():
            if key not in LIMIT_KEYS:
                raise ParameterError(f"{source}: unknown limit {key!r}; the limits are "
                                     f"{', '.join(LIMIT_KEYS)}.")
            merged[key] = _number(value, key, source, positive=True)
            if key in _WHOLE and (merged[key] != int(merged[key]) or merged[key] < 1):
                raise ParameterError(f"{source}: {key} must be a whole number >= 1, got "
                                     f"{value!r} (a fraction would be cut to a size the "
                                     "sandbox reads as no limit).")
    missing = [k for k in LIMIT_KEYS if k not in merged]
    if missing:
        raise ParameterError(f"{where}: [limits] lacks {missing}; copy them from {CONFIG}.")
    return GradingConfig(exercise, quiz, items, merged, where)


# ----------------------------------------------------------------------------- the items
@dataclass(frozen=True)
class Item:
    """One graded item of a notebook: an exercise or a questionnaire."""

    name: str          # "ch00.q1"
    attr: str          # "q1": its name in the chapter's exercise module
    module: str        # "helpers.course.exercises.ch00"
    notebook: str      # "00_setup_and_tour.ipynb"
    is_quiz: bool
    title: str
    hint: str

    @property
    def check_call(self) -> str:
        """The text of the notebook's check call, e.g. ``ch00.q1.check(``."""
        return f"{self.module.rsplit('.', 1)[1]}.{self.attr}.check("


def _reading_order(attr: str) -> tuple:
    if attr[:1] == "q" and attr[1:].isdigit():
        return (0, int(attr[1:]), "")
    return (1, 0, attr)


_ITEMS: dict[str, list] = {}
_LOCK = threading.RLock()


def chapter_items() -> dict[str, list[tuple[str, Item]]]:
    """``{notebook file name: [(item name, Item), ...]}`` for every chapter, exercises in
    reading order, questionnaires last.

    >>> [name for name, _ in chapter_items()["00_setup_and_tour.ipynb"]]
    ['ch00.q1', 'ch00.q2', 'ch00.q3', 'ch00.quiz']
    """
    with _LOCK:
        if not _ITEMS:
            _ITEMS.update(_find_items())
    return _ITEMS


def _find_items() -> dict[str, list]:
    found: dict[str, list] = collections.defaultdict(list)
    for info in pkgutil.iter_modules(exercises_pkg.__path__):
        if not info.name.startswith("ch"):
            continue
        module_name = f"{exercises_pkg.__name__}.{info.name}"
        module = importlib.import_module(module_name)
        for attr, ex in vars(module).items():
            if isinstance(ex, exercises_pkg.Exercise):
                hint = " ".join(h for h in (ex.nudge, ex.hint_text) if h)
                found[ex.notebook].append((attr, Item(ex.name, attr, module_name, ex.notebook,
                                                      isinstance(ex, Quiz), ex.title, hint)))
    return {nb: [(item.name, item) for attr, item in
                 sorted(entries, key=lambda e: _reading_order(e[0]))]
            for nb, entries in sorted(found.items())}


# ----------------------------------------------------------------------------- submissions
@dataclass
class Submission:
    """One student's folder: the chapter notebooks found, and what was ignored (and why)."""

    student: str
    folder: Path
    notebooks: dict = field(default_factory=dict)     # notebook name -> path
    ignored: list = field(default_factory=list)       # (relative path, why)


def find_submissions(folder: str | os.PathLike) -> tuple[list[Submission], list[tuple[str, str]]]:
    """The students of ``folder`` (one sub-folder each) and their chapter notebooks.

    Returns ``(submissions, ignored)``: ``ignored`` lists the entries of ``folder`` that are not
    gradable student folders (a name unsafe as a file name, two that differ only in case), and
    each submission lists its own files that are not chapter notebooks (or not regular files),
    with why; nothing is skipped silently and the others are graded. Raises
    :class:`ParameterError` when ``folder`` is missing or holds no student folder,
    :class:`DataError` when no student folder can be graded.
    """
    root = Path(folder)
    if not root.exists():
        raise ParameterError(f"The submissions folder {root} does not exist: pass the folder "
                             "that holds one folder per student.")
    if not root.is_dir():
        raise ParameterError(f"{root} is a file, not a folder: pass the folder that holds one "
                             "folder per student (e.g. submissions/alice/00_setup_and_tour.ipynb).")
    chapters = set(chapter_items())
    ignored, subs, unsafe, seen = [], [], [], {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_symlink():
            ignored.append((entry.name, "a symbolic link: copy the folder instead"))
            continue
        if not entry.is_dir(follow_symlinks=False):
            ignored.append((entry.name, "not a folder: each student has a folder of notebooks"))
            continue
        if entry.name.startswith("."):
            ignored.append((entry.name, "a hidden folder"))
            continue
        if not _SAFE_NAME.match(entry.name):
            unsafe.append(entry.name)
            ignored.append((ascii(entry.name)[1:-1], "a student folder whose name is not safe as a "
                            "file name: use letters, digits and . _ @ + - only (64 at most, not "
                            "starting with a dot or a dash); rename it and grade it again"))
            continue
        seen.setdefault(entry.name.lower(), []).append(entry.name)
        sub = Submission(entry.name, Path(entry.path))
        for f in sorted(os.scandir(entry.path), key=lambda e: e.name):
            rel = f"{entry.name}/{f.name}"
            if f.is_symlink():
                sub.ignored.append((rel, "a symbolic link: submit the notebook file itself"))
            elif f.is_dir(follow_symlinks=False):
                sub.ignored.append((rel + "/", "a folder: notebooks go directly in the "
                                                "student's folder"))
            elif f.name in chapters and not f.is_file(follow_symlinks=False):
                sub.ignored.append((rel, "not a regular file"))
            elif f.name in chapters:
                sub.notebooks[f.name] = Path(f.path)
            elif f.name.endswith(".ipynb"):
                close = difflib.get_close_matches(f.name, sorted(chapters), n=1, cutoff=0.6)
                sub.ignored.append((rel, "not a chapter notebook's name" +
                                    (f" (rename it {close[0]}?)" if close else "")))
            else:
                sub.ignored.append((rel, "not a notebook"))
        subs.append(sub)
    twins = {n for names in seen.values() if len(names) > 1 for n in names}
    for sub in [s for s in subs if s.student in twins]:
        subs.remove(sub)
        ignored.append((sub.student, "another student folder differs from it only in case (they "
                        "would share one feedback page): merge or rename them and grade them "
                        "again"))
    if not subs and (unsafe or twins):
        raise DataError(f"No student folder can be graded: {len(unsafe)} have names that are not "
                        f"safe as file names ({[ascii(u) for u in unsafe[:5]]}) and {len(twins)} "
                        "differ only in case; use letters, digits and . _ @ + - only.")
    if not subs:
        raise ParameterError(f"{root} holds no student folder (found {len(ignored)} other "
                             "entries): put each student's notebooks in a folder of their own, "
                             "e.g. submissions/alice/00_setup_and_tour.ipynb.")
    return subs, ignored


def read_notebook(path: str | os.PathLike, max_mib: float = 50) -> dict:
    """A submitted notebook's JSON, checked to be a notebook (nbformat 4) of at most ``max_mib``;
    a symbolic link is refused. Raises :class:`DataError` saying what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise DataError(f"cannot open {Path(path).name}: {err.strerror} (a symbolic link is "
                        "not accepted).") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{Path(path).name} is not a regular file (a pipe, a device...): "
                        "submit the notebook file itself.")
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_mib * 2**20:
            raise DataError(f"the file is {size / 2**20:.1f} MiB, over the {max_mib:g} MiB "
                            "limit: clear the notebook's outputs (Edit > Clear Outputs of All "
                            "Cells) and submit it again.")
        raw = fh.read()
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise DataError(f"not a valid notebook (the file is not JSON: {str(err)[:120]}); "
                        "re-download it from Jupyter (File > Download).") from err
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise DataError("not a valid notebook (no list of cells); re-download it from Jupyter.")
    if nb.get("nbformat") != 4:
        raise DataError(f"not a notebook of format 4 (nbformat {nb.get('nbformat')!r}); open "
                        "and save it in a current Jupyter.")
    for n, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise DataError(f"not a valid notebook: cell {n} has no cell_type.")
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(s, str) for s in src):
            cell["source"] = "".join(src)
        elif not isinstance(src, str):
            raise DataError(f"not a valid notebook: the source of cell {n} is not text.")
    return nb


def _tags(cell: dict) -> list:
    meta = cell.get("metadata")
    tags = meta.get("tags", []) if isinstance(meta, dict) else []
    return tags if isinstance(tags, list) else []


_REFERENCE: dict[str, dict] = {}


def _reference_check_ids(notebook: str) -> dict[str, str]:
    """item name -> the id of the cell that checks it in the distributed chapters/ notebook."""
    with _LOCK:
        if notebook not in _REFERENCE:
            nb = read_notebook(notebooks.CHAPTERS / notebook)
            ids = {}
            for _, item in chapter_items()[notebook]:
                for cell in nb["cells"]:
                    if cell["cell_type"] == "code" and item.check_call in cell["source"]:
                        ids[item.name] = cell.get("id")
                        break
            _REFERENCE[notebook] = ids
        return _REFERENCE[notebook]


def notebook_plan(nb: dict, notebook: str, limits: dict, cache: str | None = None) -> dict:
    """What the runner executes for a submitted notebook ``nb`` (from :func:`read_notebook`):
    its code cells in order (after the ``parameters`` cell, one that sets ``PROFILE = None`` so
    the grader's profile applies), and for each item the cell before which its answer is taken:
    the notebook's own ``chNN.qK.check()`` cell, found by its cell id, else by its text."""
    if notebook not in chapter_items():
        raise ParameterError(f"{notebook!r} is not a chapter notebook; the chapters are "
                             f"{sorted(chapter_items())}.")
    ref_ids = _reference_check_ids(notebook)
    cells = []
    for index, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        cells.append({"index": index, "source": cell["source"], "id": cell.get("id"),
                      "first_line": next((s.strip()[:80] for s in cell["source"].splitlines()
                                          if s.strip()), "")})
        if "parameters" in _tags(cell):
            cells.append({"index": 0, "source": "PROFILE = None  # the grader's: $COURSE_PROFILE",
                          "id": None, "first_line": "(added by the grader)"})
    items, notes = [], []
    for name, item in chapter_items()[notebook]:
        by_id = [p for p, c in enumerate(cells) if c["id"] and c["id"] == ref_ids.get(name)
                 and item.check_call in c["source"]]
        by_text = [p for p, c in enumerate(cells) if item.check_call in c["source"]]
        exact = [p for p in by_text if cells[p]["source"].strip() == item.check_call + ")"]
        if by_id:
            where = by_id[0]
        elif by_text:
            where = (exact or by_text)[-1]          # the last: earlier ones may be drafts
            if len(by_text) > 1:
                notes.append(f"several cells call `{item.check_call})` and none is the "
                             "chapter's own (its cell id changed): the answer was taken just "
                             f"before the last{' plain' if exact else ''} one, cell "
                             f"{cells[where]['index']}")
        else:
            where = grade_runner.MISSING_CHECK_CELL
        items.append({"attr": item.attr, "name": name, "capture": where})
    module = chapter_items()[notebook][0][1].module
    return {"notebook": notebook, "module": module, "limits": dict(limits), "cache": cache,
            "items": items, "cells": [{"index": c["index"], "source": c["source"]}
                                      for c in cells],
            "preimport": lazy_imports(module),
            "first_lines": {str(c["index"]): c["first_line"] for c in cells}, "notes": notes}


def lazy_imports(module: str) -> list[list]:
    """``[[module, [names]], ...]``: what the functions of exercise module ``module`` import when
    they run (``from sklearn.metrics import ndcg_score`` inside a checker). The runner imports
    them before the student's code and fingerprints them, so a notebook cannot plant a fake.

    >>> ["sklearn.metrics", ["ndcg_score"]] in lazy_imports("helpers.course.exercises.ch02")
    True
    """
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    found: dict[str, set] = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.setdefault(node.module, set()).update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    found.setdefault(a.name, set())
    return [[name, sorted(attrs)] for name, attrs in sorted(found.items())]


_REVIEW = ("result-fd", "COURSE_GRADE_FDS", "os.read(", "os.write(", "/proc/self", "hmac",
           "_exit", "TorchFunctionMode", "TorchDispatchMode", "setprofile", "settrace",
           "threading", "_thread", "addaudithook", "_getframe", "f_back", "f_locals", "tb_frame",
           "gi_frame", "gc.get_", "ctypes", "__code__", "__closure__", "__wrapped__", "fdopen",
           "os.dup", "sys.modules", "__import__", "importlib", "builtins", "grade_runner",
           "__dict__", "setattr(", "__class__", "__eq__")


def review_hits(nb: dict, notebook: str) -> list[str]:
    """What the submitted code cells use, more often than the chapter's own notebook does, of
    the tools a notebook needs to attack the grader from inside its process (reading its pipes,
    its frames or memory, patching code, threads): listed for review by hand, not penalised."""
    def counts(cells) -> collections.Counter:
        text = "\n".join(c.get("source", "") for c in cells if c.get("cell_type") == "code")
        return collections.Counter({w: text.count(w) for w in _REVIEW})
    with _LOCK:
        if notebook not in _REFERENCE_COUNTS:
            _REFERENCE_COUNTS[notebook] = counts(read_notebook(notebooks.CHAPTERS / notebook)["cells"])
    ref, mine = _REFERENCE_COUNTS[notebook], counts(nb["cells"])
    return [f"{w} ({mine[w]}x)" for w in _REVIEW if mine[w] > ref[w]]


_REFERENCE_COUNTS: dict[str, collections.Counter] = {}


# ----------------------------------------------------------------------------- running one
@dataclass
class NotebookResult:
    """What grading one (student, notebook) gave: a result per item, and what happened."""

    student: str
    notebook: str
    items: list = field(default_factory=list)     # dicts: item, state, score, message, reason
    cells: list = field(default_factory=list)     # cells that did not run cleanly
    notes: list = field(default_factory=list)
    network: list = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""
    review: list = field(default_factory=list)    # what its sources use that a forger needs

    def item(self, name: str) -> dict:
        """The result of item ``name`` (e.g. ``"ch00.q1"``)."""
        for r in self.items:
            if r["item"] == name:
                return r
        raise KeyError(f"{self.student}/{self.notebook} has no item {name!r}; it has "
                       f"{[r['item'] for r in self.items]}.")


def _errored_all(notebook: str, reason: str, message: str) -> list:
    return [{"item": name, "state": "errored", "reason": reason, "score": 0.0,
             "message": message} for name, _ in chapter_items()[notebook]]


class _Output:
    """The first and last bytes of what a notebook printed, and how much."""

    def __init__(self, keep: int):
        self.keep, self.head, self.tail, self.total = keep, bytearray(), bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            del self.tail[:-self.keep]

    def text(self) -> str:
        skipped = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {skipped} bytes not kept ...]\n".encode() if skipped > 0 else b""
        return (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", "replace")


_FINISHED = ("ok", "error", "timed out", "output flood", "memory")


class _Session:
    """The grader's side of the result pipe, on which only the judge's process writes (the
    notebook's process never holds it): the cells' progress it forwards, then the results.

    The cells' messages come from the notebook's process (through the judge) and must follow
    the plan: each planned cell once, in order, either ``skipped`` or ``started`` then
    finished; a ``violation`` is a line the notebook's code wrote on its channel to the judge.
    Anything out of place voids the notebook, and every line is read to the end (a flood of
    messages is counted, never silently dropped). Results are read only after ``judging``."""

    def __init__(self, expected: list[str], cells: list[int] | None = None,
                 quizzes: dict | None = None):
        self.expected = expected
        self.order = list(cells) if cells is not None else None
        self.quizzes = quizzes or {}
        self.phase, self.violations, self.violation_count = "startup", [], 0
        self.fatal, self.cells, self.current, self.results = None, {}, None, {}
        self.done, self.buffer, self.started = None, b"", False
        self.next = 0                       # position in the plan of the next cell expected
        self.lines, self.alerts = 0, []

    def _violation(self, what: str) -> None:
        self.violation_count += 1
        if len(self.violations) < 20:
            self.violations.append(what)

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.lines += 1
            self._line(line)
        if len(self.buffer) > 16 * 2**20:
            self._violation("an over-long line")
            self.buffer = b""

    def _cell(self, msg: dict) -> None:
        index, status = msg.get("index"), msg.get("status")
        if not isinstance(index, int) or isinstance(index, bool) or not isinstance(status, str):
            self._violation("a malformed cell message")
            return
        if self.order is not None:
            if self.current is None and (self.next >= len(self.order)
                                         or index != self.order[self.next]):
                self._violation("a cell message out of the plan's order")
                return
        if status in ("started", "skipped"):
            if self.current is not None:
                self._violation("a cell started before the previous one finished")
                return
            if status == "started":
                self.current = index
            else:
                self.next += 1
                self.cells[index] = {"status": "skipped", "error": "", "seconds": 0.0}
            return
        if status not in _FINISHED or self.current != index:
            self._violation("a cell finished that had not started")
            return
        self.current = None
        self.next += 1
        if status != "ok":
            seconds = msg.get("seconds")
            self.cells[index] = {k: str(msg.get(k, ""))[:2000] for k in ("status", "error")} \
                | {"seconds": seconds if isinstance(seconds, (int, float)) else None}

    def _line(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
            kind = msg["t"]
        except (ValueError, KeyError, TypeError, RecursionError):
            self._violation("a line that is not a message")
            return
        if self.phase == "startup" and kind in ("start", "fatal"):
            if kind == "fatal":
                self.fatal, self.phase = str(msg.get("message", ""))[:2000], "over"
            else:
                self.started, self.phase = True, "cells"
        elif self.phase == "cells" and kind == "cell":
            self._cell(msg)
        elif self.phase == "cells" and kind == "alert":
            if len(self.alerts) < 5:
                self.alerts.append(str(msg.get("what", ""))[:300])
        elif self.phase in ("startup", "cells") and kind == "violation":
            self._violation(str(msg.get("what", "a line that is not a message"))[:120])
        elif self.phase == "cells" and kind == "judging":
            self.phase = "results"
        elif self.phase == "results" and kind == "result":
            data = msg.get("result")
            seq = data.get("seq") if isinstance(data, dict) else None
            if not isinstance(seq, int) or seq in self.results:
                self._violation("a result sent twice or unnumbered")
                return
            self.results[seq] = data
        elif self.phase == "results" and kind == "done":
            self.done, self.phase = msg, "over"
        else:
            self._violation(f"a {str(kind)[:20]!r} message where none belongs")

    def items(self) -> list | None:
        """The results, checked complete and well-formed (a questionnaire's answers scored
        here); ``None`` if they are not."""
        if self.done is None or self.violation_count:
            return None
        if sorted(self.results) != list(range(len(self.expected))) or \
                self.done.get("count") != len(self.expected):
            return None
        out = []
        for seq in range(len(self.expected)):
            r = self.results[seq]
            if r.get("item") != self.expected[seq]:
                return None
            if r.get("state") == "answers" and r["item"] in self.quizzes:
                r = {**r, **score_quiz(self.quizzes[r["item"]], r.get("answers"))}
            score = r.get("score")
            if r.get("state") not in STATES or \
                    not isinstance(score, (int, float)) or not 0 <= score <= 1 or \
                    not isinstance(r.get("message"), str):
                return None
            out.append({"item": r["item"], "state": r["state"], "score": float(score),
                        "message": r["message"][:6000], "reason": str(r.get("reason") or ""),
                        **({"detail": r["detail"]} if isinstance(r.get("detail"), list) else {})})
        return out


def _short(value, limit: int = 120) -> str:
    text = exercises_pkg.fmt(value)
    return text if len(text) <= limit else text[:limit] + "..."


def score_quiz(quiz: Quiz, answers) -> dict:
    """Score a questionnaire's answers (as the runner captured them: ``{"pairs": [[question,
    answer], ...]}`` or ``{"type": name}``) with ``quiz``'s questions, in the grader's process:
    the notebook never sees or runs this. Returns state, score, detail and message.

    >>> from helpers.course.exercises import ch00
    >>> score_quiz(ch00.quiz, {"pairs": [[1, "b"]]})["detail"][:2]
    ['right', 'unanswered']
    """
    n = len(quiz.questions)
    if not isinstance(answers, dict) or not isinstance(answers.get("pairs"), list):
        kind = answers.get("type") if isinstance(answers, dict) else None
        return {"state": "failed", "score": 0.0, "detail": ["unanswered"] * n,
                "message": f"`{quiz.var}` must be a dict from question number to your answer, "
                           f"e.g. {quiz.example()}; got {str(kind or 'something else')[:60]}."}
    given = {}
    for pair in answers["pairs"][:64]:
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (int, str)) \
                and not isinstance(pair[0], bool):
            key, value = pair
            if isinstance(value, dict):         # not a plain value: neither judge accepts it
                value = _Unsupported(str(value.get("type", "object"))[:60])
            given.setdefault(key, value)
    lines, right, detail = [], 0, []
    extra = sorted(str(k)[:20] for k in given if k not in range(1, n + 1))
    for number, question in enumerate(quiz.questions, start=1):
        if number not in given:
            lines.append(f"Q{number}: not answered.")
            detail.append("unanswered")
            continue
        try:
            ok, why = question.judge(given[number])
        except Exception as err:                            # noqa: BLE001 - a value it cannot judge
            ok, why = False, f"this answer could not be judged ({type(err).__name__})."
        ok, why = ok is True, str(why)
        right += ok
        detail.append("right" if ok else "wrong")
        lines.append(f"Q{number}: {'right' if ok else 'not quite'} "
                     f"({_short(given[number])}). {why if len(why) <= 600 else why[:600] + '...'}")
    if extra:
        lines.append(f"There is no question {', '.join(extra[:10])}: the questions are numbered "
                     f"1 to {n}.")
    state = "passed" if right == n else ("not attempted" if not given else "failed")
    return {"state": state, "score": right / n, "detail": detail,
            "message": (f"{right} of {n} right.\n" + "\n".join(lines))[:6000]}


class _Unsupported:
    """An answer that was not a letter or a number (shown by its type)."""

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self) -> str:
        return f"<a {self.kind}>"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _runner_env(scratch: str, profile: str, threads: int, sandboxed: bool) -> dict:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{scratch}/.home", "TMPDIR": f"{scratch}/.tmp", "MPLCONFIGDIR": f"{scratch}/.mpl",
        "IPYTHONDIR": f"{scratch}/.ipython", "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONPATH": f"{config.ROOT / 'tools' / 'netguard'}:{config.ROOT}",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "COURSE_PROFILE": profile, "COURSE_RESULTS": f"{scratch}/.results",
        "COURSE_ARTIFACTS": f"{scratch}/.artifacts",
        "COURSE_NETGUARD_LOG": f"{scratch}/.netguard.log",
        "COURSE_NETGUARD_NAMESPACE": "1" if sandboxed else "0",
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if os.environ.get("COURSE_SHOPWORLD"):
        env["COURSE_SHOPWORLD"] = str(config.course_path(os.environ["COURSE_SHOPWORLD"]))
    return env


def _readonly() -> list[str]:
    extra = [config.ROOT / p for p in ("helpers", "datasets", "tests/expectations",
                                       "benchmarks/results", "tools/netguard", "pyproject.toml")]
    extra.append(config.cache_dir().resolve())
    if os.environ.get("COURSE_SHOPWORLD"):
        extra.append(config.course_path(os.environ["COURSE_SHOPWORLD"]).resolve())
    return sandbox.default_readonly(config.ROOT, [str(p) for p in extra])


def grade_notebook(path: str | os.PathLike, notebook: str, cfg: GradingConfig, *,
                   student: str = "", profile: str = "quick", sandboxed: bool = True,
                   threads: int = 1) -> NotebookResult:
    """Run one submitted notebook (its file at ``path``, graded as chapter notebook
    ``notebook``) and return every item's result. Never raises for what the notebook does: a bad
    file, a crash, a timeout or tampering is an ``errored`` result saying why."""
    result = NotebookResult(student, notebook)
    t0 = time.monotonic()
    try:
        nb = read_notebook(path, cfg.limits["max_notebook_mib"])
    except DataError as err:
        result.items = _errored_all(notebook, "invalid notebook", str(err))
        return result
    scratch_host = None
    if sandboxed:
        scratch = str(notebooks.CHAPTERS)
    else:
        scratch_host = tempfile.mkdtemp(prefix="reasonrec-grade-")
        scratch = scratch_host
    plan = notebook_plan(nb, notebook, cfg.limits, cache=str(config.cache_dir().resolve()))
    first_lines = plan.pop("first_lines")
    result.notes += plan.pop("notes")
    result.review = review_hits(nb, notebook)
    expected = [i["name"] for i in plan["items"]]
    quizzes = {name: getattr(importlib.import_module(item.module), item.attr)
               for name, item in chapter_items()[notebook] if item.is_quiz}
    env = _runner_env(scratch, profile, threads, sandboxed)
    ctl_r, ctl_w = os.pipe()            # the plan, then closed
    res_r, res_w = os.pipe()            # the judge's messages (the notebook's process closes it)
    out_r, out_w = os.pipe()
    env[grade_runner.FDS_ENV] = str(res_w)
    runner = [sys.executable, *RUNNER_ARGS]
    if sandboxed:
        jail = sandbox.Jail(argv=runner, readonly=_readonly(), scratch=scratch,
                            scratch_mib=int(cfg.limits["scratch_mib"]),
                            tmp_mib=int(cfg.limits["tmp_mib"]), env=env,
                            pass_fds=[res_w])
        cmd, popen_env, cwd = sandbox.command(jail), {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}, None
    else:
        cmd, popen_env, cwd = runner, env, scratch
    hard = cfg.limits["notebook_s"] + len(expected) * cfg.limits["check_s"] + GRACE_S
    try:
        proc = subprocess.Popen(cmd, stdin=ctl_r, stdout=out_w, stderr=out_w,
                                pass_fds=(res_w,), cwd=cwd, env=popen_env,
                                start_new_session=True)
    except OSError as err:
        for fd in (ctl_r, ctl_w, res_r, res_w, out_r, out_w):
            os.close(fd)
        result.items = _errored_all(notebook, "grader", f"the runner could not start: {err}")
        return result
    for fd in (ctl_r, res_w, out_w):
        os.close(fd)
    session = _Session(expected, [c["index"] for c in plan["cells"]], quizzes)
    output = _Output(_LOG_KEEP)

    def send_plan():
        data = (json.dumps(plan) + "\n").encode()
        try:
            while data:
                data = data[os.write(ctl_w, data):]
        except OSError:
            pass
        try:
            os.close(ctl_w)
        except OSError:
            pass
    writer = threading.Thread(target=send_plan, daemon=True)
    writer.start()
    timed_out = False
    sel = selectors.DefaultSelector()
    sel.register(res_r, selectors.EVENT_READ, "res")
    sel.register(out_r, selectors.EVENT_READ, "out")
    deadline = time.monotonic() + hard
    open_fds = 2
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 1.0)):
            data = os.read(key.fd, 1 << 16)
            if not data:
                sel.unregister(key.fd)
                open_fds -= 1
            elif key.data == "res":
                session.feed(data)
            else:
                output.add(data)
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    lingered = False
    try:
        code = proc.wait(timeout=LINGER_S)
    except subprocess.TimeoutExpired:
        lingered = True                 # it closed its pipes but did not end: a timeout
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
    sel.close()
    writer.join(timeout=5)
    for fd in (res_r, out_r):
        try:
            os.close(fd)
        except OSError:
            pass
    if scratch_host:
        shutil.rmtree(scratch_host, ignore_errors=True)
    result.seconds = round(time.monotonic() - t0, 2)
    result.output = output.text()
    if output.total > cfg.limits["output_mib"] * 2**20 * 4:
        result.notes.append(f"the notebook printed {output.total / 2**20:.0f} MiB; the grader "
                            f"kept the first and last {_LOG_KEEP // 1024} KiB")
    result.cells = [{"index": i, "first_line": first_lines.get(str(i), ""), **c}
                    for i, c in sorted(session.cells.items())]
    result.review += [f"alert from the runner: {a}" for a in dict.fromkeys(session.alerts)]
    where = ""
    if session.current is not None:
        where = f" in cell {session.current} (`{first_lines.get(str(session.current), '')}`)"
    signum = -code if code < 0 else (code - 128 if sandboxed and 128 < code < 128 + 65 else 0)
    items = session.items()
    if timed_out:
        result.items = _errored_all(
            notebook, "timed out", f"the notebook ran past its limit of {hard:.0f} s{where} and "
            "was stopped (a loop that ignores the per-cell limit?); nothing could be checked.")
    elif lingered and not session.violation_count and items is None:
        result.items = _errored_all(
            notebook, "timed out", f"the notebook's processes did not end{where} {LINGER_S:g} s "
            "after closing their output and were stopped; nothing could be checked.")
    elif session.violation_count:
        result.items = _errored_all(
            notebook, "tampering", "the notebook's code wrote to the grader's result channel ("
            + "; ".join(sorted(set(session.violations))[:3])
            + (f"; {session.violation_count} lines in all" if session.violation_count > 3 else "")
            + "): its results are void.")
    elif items is not None and code == 0:
        result.items = items
        result.notes += [str(n)[:300] for n in session.done.get("notes", [])][:10]
        result.network = [str(n)[:300] for n in session.done.get("network", [])][:20]
    elif session.fatal is not None:
        result.items = _errored_all(notebook, "grader", f"the grader's runner failed before the "
                                    f"notebook ran: {session.fatal}")
    elif not session.started:           # no student code runs before "start": the grader's side
        what = ("the sandbox could not start" if sandboxed and code == sandbox.SANDBOX_ERROR_EXIT
                else f"the grader's runner did not start (exit code {code})")
        result.items = _errored_all(notebook, "sandbox" if "sandbox" in what else "grader",
                                    f"{what}: " + (result.output.strip()[-800:] or "no message"))
    elif signum and not (sandboxed and code == sandbox.HIGH_EXIT):
        name = _signal_name(signum)
        why = (" (killed: most likely out of memory)" if signum == signal.SIGKILL
               else " (the Python process crashed)")
        result.items = _errored_all(notebook, "crashed", f"the notebook's Python process died of "
                                    f"{name}{why}{where}; nothing could be checked.")
    else:
        shown = "128 or more" if sandboxed and code == sandbox.HIGH_EXIT else code
        result.items = _errored_all(
            notebook, "crashed", f"the notebook's Python process ended (exit code {shown}){where} "
            "before its exercises were checked (os._exit, or a crash); nothing could be checked.")
    return result


# ----------------------------------------------------------------------------- a class
@dataclass
class Gradebook:
    """Every graded notebook of a class, with the points of each item."""

    results: list                      # NotebookResult
    students: list
    notebooks: list
    ignored: list
    cfg: GradingConfig
    profile: str
    sandboxed: bool
    seconds: float = 0.0

    def items(self) -> list[tuple[str, Item]]:
        """The items of the notebooks graded, in chapter order."""
        return [pair for nb in self.notebooks for pair in chapter_items()[nb]]

    def result(self, student: str, notebook: str) -> NotebookResult:
        """The result of ``student``'s ``notebook``."""
        for r in self.results:
            if r.student == student and r.notebook == notebook:
                return r
        raise KeyError(f"no graded {notebook} for {student!r}")

    def points(self, student: str) -> dict[str, float]:
        """item name -> points earned by ``student`` (0 for a notebook not submitted)."""
        out = {name: 0.0 for name, _ in self.items()}
        for r in self.results:
            if r.student != student:
                continue
            for it in r.items:
                item = dict(chapter_items()[r.notebook])[it["item"]]
                out[it["item"]] = round(it["score"] * self.cfg.points(item.name, item.is_quiz), 4)
        return out

    def max_points(self) -> float:
        """The most points a student can earn on the notebooks graded."""
        return sum(self.cfg.points(name, item.is_quiz) for name, item in self.items())


def _probe() -> None:
    """Build one jail with the grader's binds and start Python in it, or say why it fails."""
    jail = sandbox.Jail(argv=[sys.executable, "-s", "-c", "import json, torch"],
                        readonly=_readonly(), scratch=str(notebooks.CHAPTERS), env={})
    try:
        done = subprocess.run(sandbox.command(jail), capture_output=True, text=True, timeout=300,
                              env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"Cannot grade safely here: the sandbox did not run ({err}).") from err
    if done.returncode != 0:
        raise RuntimeError("Cannot grade safely here: the sandbox could not be built or Python "
                           f"could not start in it (exit code {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-800:]} (In a container, allow "
                           "unshare and mounting /proc; on Ubuntu 23.10 and later AppArmor may "
                           "restrict unprivileged user namespaces: see "
                           "kernel.apparmor_restrict_unprivileged_userns.) Pass --no-sandbox only "
                           "for notebooks you trust.")


def _check_out_folder(out: Path, submissions: Path) -> None:
    out, submissions = out.resolve(), submissions.resolve()
    if out == submissions or submissions in out.parents:
        raise ParameterError(f"--out {out} is inside the submissions folder: write the grades "
                             "somewhere else (default build/grades).")
    for path in _readonly():
        p = Path(path)
        for what, target in (("submissions folder", submissions), ("output folder", out)):
            if target == p or p in target.parents:
                raise ParameterError(f"The {what} {target} lies inside {p}, which the sandbox "
                                     "shows to every notebook: move it elsewhere.")
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise ParameterError(f"--out {out} exists, is not empty and is not a grades folder: "
                             "choose a new or empty folder (grading replaces its feedback/ and "
                             "logs/).")


def grade(submissions: str | os.PathLike, out: str | os.PathLike | None = None, *,
          profile: str = "quick", jobs: int = 1, config_path: str | os.PathLike | None = None,
          limits: dict | None = None, sandboxed: bool = True, progress: bool = True) -> Gradebook:
    """Grade every chapter notebook of every student folder in ``submissions``; write the
    gradebook, summary and feedback pages to ``out`` (default ``build/grades``) and return them.

    ``jobs`` notebooks run at once (each with ``cores // jobs`` threads); ``limits`` overrides the
    config's limits; ``sandboxed=False`` runs notebooks as plain processes (no isolation at all:
    only for trusted notebooks, or where the sandbox cannot be built).
    """
    if profile not in PROFILES:
        raise ParameterError(f"profile must be one of {PROFILES} (the quick profile for grading, "
                             f"smoke for tests), got {profile!r}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise ParameterError(f"jobs must be a whole number from 1 to 64, got {jobs!r}; e.g. "
                             "jobs=2 on a 2-core machine.")
    cfg = load_config(config_path, limits)
    subs, ignored = find_submissions(submissions)
    out = Path(out) if out is not None else config.ROOT / "build" / "grades"
    _check_out_folder(out, Path(submissions))
    if sandboxed:
        why = sandbox.available()
        if why:
            raise RuntimeError(f"Cannot grade safely here: {why} Submissions are untrusted code; "
                               "to run them anyway as plain processes, with no isolation at all, "
                               "pass --no-sandbox (only for notebooks you trust).")
        _probe()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pairs = [(s, nb) for s in subs for nb in s.notebooks]
    t0 = time.monotonic()
    results = []
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text(_MARKER_TEXT, **_TEXT)
    partial = out / "results.partial.jsonl"        # one line per notebook as soon as it is graded
    partial.write_text("")

    def book_of(done: list, interrupted: bool = False) -> Gradebook:
        order = {nb: i for i, nb in enumerate(chapter_items())}
        done = sorted(done, key=lambda r: (r.student, order[r.notebook]))
        graded = sorted({nb for s in subs for nb in s.notebooks}, key=order.get)
        all_ignored = list(ignored) + [x for s in subs for x in s.ignored]
        if interrupted:
            missing = {(s.student, nb) for s, nb in pairs} - {(r.student, r.notebook) for r in done}
            all_ignored += [(f"{st}/{nb}", "not graded: the grading was interrupted")
                            for st, nb in sorted(missing)]
        return Gradebook(done, [s.student for s in subs], graded, all_ignored, cfg, profile,
                         sandboxed, round(time.monotonic() - t0, 1))

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(grade_notebook, s.notebooks[nb], nb, cfg, student=s.student,
                               profile=profile, sandboxed=sandboxed, threads=threads): (s, nb)
                   for s, nb in pairs}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="grading",
                        unit="notebook", disable=not progress):
            s, nb = futures[fut]
            try:
                r = fut.result()
            except Exception as err:                        # noqa: BLE001 - one notebook's
                r = NotebookResult(s.student, nb, _errored_all(
                    nb, "grader", f"the grader failed on this notebook ({type(err).__name__}: "
                    f"{str(err)[:500]}); grade it again, and report this if it persists."))
            results.append(r)
            with open(partial, "a", **_TEXT) as fh:
                fh.write(json.dumps({k: v for k, v in vars(r).items() if k != "output"}) + "\n")
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        write_outputs(book_of(results, interrupted=True), out)
        raise
    pool.shutdown()
    book = book_of(results)
    write_outputs(book, out)
    partial.unlink()
    return book


# ----------------------------------------------------------------------------- outputs
def _cell(value) -> str:
    """A CSV field that a spreadsheet shows as text, never runs as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _pattern(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    return _NUMBER.sub("#", first)[:240]


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def _md(text: str) -> str:
    """Text from a submission, shown literally in Markdown (never inside a code span): HTML
    escaped, on one line, and every character Markdown reads as markup ([ ] ( ) ! ` * _ ...)
    backslash-escaped."""
    flat = str(text).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def _state_of(book: Gradebook, student: str, nb: str, name: str) -> dict:
    for r in book.results:
        if r.student == student and r.notebook == nb:
            return next(it for it in r.items if it["item"] == name)
    return {"item": name, "state": "not submitted", "score": 0.0, "message": "", "reason": ""}


def summary_markdown(book: Gradebook) -> str:
    """The per-chapter summary: for each item the share of submitted notebooks passing, failing,
    not attempted and errored, and the most common failure messages (numbers as #)."""
    lines = [f"# Grading summary ({len(book.students)} students, {book.profile} profile, "
             f"{'sandboxed' if book.sandboxed else 'NOT SANDBOXED'}, {book.seconds:.0f} s)", ""]
    for nb in book.notebooks:
        subs = [r for r in book.results if r.notebook == nb]
        lines += [f"## {nb} ({len(subs)} of {len(book.students)} students submitted it)", "",
                  "| item | passed | failed | not attempted | errored | mean points |",
                  "|---|---|---|---|---|---|"]
        details = []
        for name, item in chapter_items()[nb]:
            states = [next(it for it in r.items if it["item"] == name) for r in subs]
            n = max(len(states), 1)
            share = {s: sum(x["state"] == s for x in states) / n for s in STATES}
            pts = book.cfg.points(name, item.is_quiz)
            mean = sum(x["score"] for x in states) * pts / n
            lines.append(f"| `{name}` | {share['passed']:.0%} | {share['failed']:.0%} | "
                         f"{share['not attempted']:.0%} | {share['errored']:.0%} | "
                         f"{mean:.2f} of {pts:g} |")
            failures = collections.Counter(_pattern(x["message"]) for x in states
                                           if x["state"] == "failed")
            errors = collections.Counter(x.get("reason") or "errored" for x in states
                                         if x["state"] == "errored")
            if item.is_quiz:
                right = collections.defaultdict(list)
                for x in states:
                    for q, ok in enumerate(x.get("detail") or [], start=1):
                        if ok in ("right", "wrong"):            # unanswered: not counted
                            right[q].append(ok == "right")
                if right:
                    details.append(f"- `{name}`, share right per question, of the students who "
                                   "answered it: " + ", ".join(
                                       f"Q{q} {sum(v) / len(v):.0%} of {len(v)}"
                                       for q, v in sorted(right.items())))
            elif failures:
                details.append(f"- `{name}`, most common failures: " + "; ".join(
                    f"{c}x \"{_md(m)}\"" for m, c in failures.most_common(3)))
            if errors:
                details.append(f"- `{name}` errored: " + ", ".join(
                    f"{c}x {_md(m)}" for m, c in errors.most_common()))
        problems = collections.Counter(c["status"] for r in subs for c in r.cells)
        network = sum(bool(r.network) for r in subs)
        if details:
            lines += ["", "What to re-teach (and what broke):", "", *details]
        if problems or network:
            lines += ["", "Cells that did not run cleanly: " + (", ".join(
                f"{c} {s}" for s, c in problems.most_common()) or "none") +
                f"; notebooks that tried to reach the network: {network}."]
        lines.append("")
    review = [r for r in book.results if r.review or any(n.startswith("for review") for n in r.notes)]
    if review:
        lines += ["## To review by hand", "",
                  "These notebooks use, more than the chapter does, tools a notebook needs to "
                  "attack the grader from inside its process (its pipes, frames, memory, "
                  "threads). That is not cheating in itself; read their code before trusting a "
                  "surprising score (INSTRUCTORS.md, Grading a class).", ""]
        lines += [f"- {_md(r.student)}/{_md(r.notebook)}: " + _md(", ".join(r.review) + "; " + "; ".join(
            n for n in r.notes if n.startswith("for review"))) for r in review] + [""]
    if book.ignored:
        lines += ["## Ignored (not graded)", ""] + [f"- {_md(p)}: {_md(why)}"
                                                    for p, why in book.ignored] + [""]
    return "\n".join(lines)


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;"
        "vertical-align:top;text-align:left}pre{white-space:pre-wrap;margin:0;font-size:.9em}"
        ".passed{color:#176117}.failed{color:#a11}.errored{color:#a11;font-weight:bold}"
        ".small{color:#555;font-size:.9em}")


def feedback_html(book: Gradebook, student: str) -> str:
    """One student's feedback page: every item's result, message and hint, and the cells that
    did not run cleanly. Everything from the submission is HTML-escaped, and the page allows no
    script (Content-Security-Policy)."""
    e = lambda s: html.escape(str(s), quote=True)
    pts = book.points(student)
    total = sum(pts.values())
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
             'style-src \'unsafe-inline\'">', f"<title>Feedback: {e(student)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>Feedback for {e(student)}</h1>",
             f"<p>Total: <b>{total:g}</b> of {book.max_points():g} points "
             f"({book.profile} profile).</p>"]
    for nb in book.notebooks:
        parts.append(f"<h2>{e(nb)}</h2>")
        try:
            r = book.result(student, nb)
        except KeyError:
            parts.append("<p>Not submitted.</p>")
            continue
        parts.append("<table><tr><th>item</th><th>result</th><th>points</th><th>message</th>"
                     "<th>hint</th></tr>")
        for name, item in chapter_items()[nb]:
            it = _state_of(book, student, nb, name)
            state = it["state"] + (f" ({it['reason']})" if it.get("reason") else "")
            parts.append(
                f"<tr><td><b>{e(name)}</b><br><span class=small>{e(item.title)}</span></td>"
                f"<td class=\"{e(it['state'].split()[0])}\">{e(state)}</td>"
                f"<td>{pts[name]:g} of {book.cfg.points(name, item.is_quiz):g}</td>"
                f"<td><pre>{e(it['message'])}</pre></td><td class=small>{e(item.hint)}</td></tr>")
        parts.append("</table>")
        if r.cells:
            parts.append("<p>Cells that did not run cleanly:</p><ul>")
            for c in r.cells:
                where = "a cell added by the grader" if c["index"] == 0 else f"cell {c['index']}"
                parts.append(f"<li>{e(where)} (<code>{e(c['first_line'])}</code>): "
                             f"<b>{e(c['status'])}</b> <pre>{e(c.get('error', ''))}</pre></li>")
            parts.append("</ul>")
        if r.network:
            parts.append("<p>The notebook tried to reach the network (the sandbox has none):</p>"
                         "<pre>" + e("\n".join(r.network)) + "</pre>")
        if r.notes:
            parts.append("<p class=small>" + e("; ".join(r.notes)) + "</p>")
        if r.review:
            parts.append("<p class=small>For the instructor's review: the code uses "
                         + e(", ".join(r.review)) + ".</p>")
    ignored = [(p, why) for p, why in book.ignored if p.split("/", 1)[0] == student]
    if ignored:
        parts.append("<h2>Files not graded</h2><ul>" + "".join(
            f"<li><code>{e(p)}</code>: {e(why)}</li>" for p, why in ignored) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"



def write_outputs(book: Gradebook, out: str | os.PathLike) -> Path:
    """Write ``gradebook.csv``, ``results.csv``, ``results.json``, ``summary.md``,
    ``feedback/<student>.html`` and ``logs/`` to ``out``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text(_MARKER_TEXT, **_TEXT)
    for sub in ("feedback", "logs"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir()
    names = [name for name, _ in book.items()]
    with open(out / "gradebook.csv", "w", newline="", **_TEXT) as fh:
        w = csv.writer(fh)
        w.writerow(["student", *names, "total", "max"])
        for s in book.students:
            pts = book.points(s)
            w.writerow([_cell(s), *[f"{pts[n]:g}" for n in names],
                        f"{sum(pts.values()):g}", f"{book.max_points():g}"])
    with open(out / "results.csv", "w", newline="", **_TEXT) as fh:
        w = csv.writer(fh)
        w.writerow(["student", "notebook", "item", "state", "reason", "points", "max_points",
                    "message"])
        for s in book.students:
            pts = book.points(s)
            for nb in book.notebooks:
                for name, item in chapter_items()[nb]:
                    it = _state_of(book, s, nb, name)
                    w.writerow([_cell(x) for x in (s, nb, name, it["state"], it.get("reason", ""),
                                                   f"{pts[name]:g}",
                                                   f"{book.cfg.points(name, item.is_quiz):g}",
                                                   it["message"])])
    (out / "results.json").write_text(json.dumps({
        "profile": book.profile, "sandboxed": book.sandboxed, "seconds": book.seconds,
        "config": book.cfg.source, "limits": book.cfg.limits, "ignored": book.ignored,
        "results": [{k: v for k, v in vars(r).items() if k != "output"} for r in book.results],
    }, indent=1), **_TEXT)
    (out / "summary.md").write_text(summary_markdown(book), **_TEXT)
    for s in book.students:
        (out / "feedback" / f"{s}.html").write_text(feedback_html(book, s), **_TEXT)
    for r in book.results:
        folder = out / "logs" / r.student
        folder.mkdir(exist_ok=True)
        (folder / f"{Path(r.notebook).stem}.log").write_text(r.output, **_TEXT)
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m helpers.grade SUBMISSIONS [--out DIR] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade",
        description="Grade a class's submitted chapter notebooks in a sandbox: gradebook, "
                    "summary per chapter, feedback page per student.")
    parser.add_argument("submissions", help="folder with one folder per student")
    parser.add_argument("--out", default=str(config.ROOT / "build" / "grades"),
                        help="where the gradebook, summary and feedback go (build/grades)")
    parser.add_argument("--profile", default="quick", choices=PROFILES,
                        help="the course profile notebooks run in (quick; smoke for tests)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at once (2 on a 2-core machine)")
    parser.add_argument("--config", default=None, help=f"points and limits (default {CONFIG})")
    for key, what in (("cell_s", "seconds a cell may run"),
                      ("notebook_s", "seconds a notebook may run"),
                      ("check_s", "seconds one exercise's check may take"),
                      ("memory_mib", "MiB of address space per notebook")):
        parser.add_argument(f"--{key.replace('_s', '-timeout').replace('_mib', '')}",
                            dest=key, type=float, default=None, help=f"{what} (config: {key})")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run notebooks with NO isolation (trusted notebooks only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    limits = {k: getattr(args, k) for k in ("cell_s", "notebook_s", "check_s", "memory_mib")
              if getattr(args, k) is not None}
    if args.no_sandbox:
        print("[grade] WARNING: --no-sandbox: submitted notebooks run as ordinary processes of "
              "this user, with its network, files and rights: they can read other students' "
              "work, solutions/ and the grades, write anywhere this user can, and forge their "
              "results. Use it only for notebooks you trust.", file=sys.stderr)
    try:
        book = grade(args.submissions, args.out, profile=args.profile, jobs=args.jobs,
                     config_path=args.config, limits=limits, sandboxed=not args.no_sandbox,
                     progress=not args.quiet)
    except (ParameterError, DataError, RuntimeError) as err:
        print(f"[grade] {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(f"[grade] {len(book.results)} notebooks of {len(book.students)} students in "
          f"{book.seconds:.0f} s -> {out}/gradebook.csv, summary.md, feedback/")
    if book.ignored:
        print(f"[grade] {len(book.ignored)} files or folders ignored (listed in summary.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
