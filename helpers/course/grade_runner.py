"""Runs one submitted notebook for the grader, inside its jail, and reports each exercise's result.

Started by :mod:`helpers.course.grade` (never by hand) as ``python -m
helpers.course.grade_runner``, in the jail of :mod:`helpers.course.sandbox`. The grader writes
the *plan* (the notebook's code cells, which exercises to capture where, the limits) as one JSON
line on this process's standard input; the results go back as JSON lines on a result pipe whose
number comes in ``$COURSE_GRADE_FDS`` (removed from the environment). Standard output and error
go to the grader, which keeps only a capped copy: nothing printed is ever read as a result.

Two processes, so that the verdicts come from one the student's code cannot reach:

1. Before any student code: set the memory and process limits, import the chapter's exercise
   module and what its checkers import lazily (``sklearn.metrics``, ``opacus``...), take the
   exercises' checkers; make the process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``) and fork.
   The parent is the *judge*: it keeps the result pipe and the checkers, and no code of the
   notebook ever runs in it. The child is the *student's process*: it closes its copy of the
   result pipe (so it holds no descriptor on which the grader takes results), becomes dumpable
   again (its own ``/proc`` files stay readable to its code) and asks to be killed when the judge
   ends. The two talk over a pair of private pipes made before the fork
   (:mod:`helpers.course.judge_wire`). The jail drops every capability and the judge is
   non-dumpable, so the student's process cannot ptrace it, read ``/proc/<judge>/mem``, open its
   files through ``/proc`` or take its descriptors with ``pidfd_getfd``.
2. The student's process runs the code cells one by one with IPython's ``InteractiveShell``
   (magics and display work, no Jupyter kernel), each under an alarm (``cell_s``); a cell that
   fails, times out or prints more than ``output_mib`` is recorded and the next cell runs (as
   nbgrader does); cells past the notebook's time budget are skipped. It reports each cell to
   the judge, which forwards the reports to the grader (the grader checks that they follow the
   plan; anything else a cell writes on the judge's pipe is forwarded as a *violation* and voids
   the notebook). Just before the cell that checks an exercise (the notebook's own
   ``chNN.qK.check()`` cell) the answer is captured: a function, e.g. ``cosine_similarity``, is
   kept in the student's process (the globals it uses are looked up when it is called); a
   questionnaire's answers are sent to the judge at once as plain values (a later cell cannot
   change them).
3. After the last cell the student's process sends, for review only, what it changed of the
   checking machinery in its own process (the fingerprint of :class:`_Fingerprint`: every
   ``helpers`` module and class, ``builtins``, torch, numpy, pandas..., torch modes, trace and
   profile functions, ``gc`` callbacks, threads left running) and the introspection its cells
   used (an audit hook counts ``gc.get_referrers``, ``sys._current_frames``, ``ctypes``...; a
   listing of ``/proc/self/fd`` is an alert at once). None of it can change a result any more.
4. The judge judges every exercise with its own checker, under its own alarm (``check_s``): the
   checker gets a :class:`judge_wire.Proxy` in place of the student's function. A call sends the
   arguments to the student's process (pickled: it trusts the judge; a ``torch.Generator`` as its
   state, a callable argument such as ``model.learn`` stays in the judge and is called back),
   which calls the real function under an alarm of its own and sends back the value, and the
   arrays and tensors of the arguments as they are after the call (written back into the judge's
   arguments in place), in the codec of :mod:`helpers.course.judge_wire`: None, numbers, text,
   bytes, containers, numpy arrays and numbers, torch tensors, pandas objects, built fresh by the
   judge; nothing from the student's process is ever unpickled, and anything else (an object
   that lies about equality, a generator, a value over 64 MiB or nested too deep) is refused
   with a message that fails the exercise. An exception comes back by type name, message and
   built-in base class (``NotImplementedError`` stays "not attempted", ``ValueError`` is caught
   as one). A questionnaire is scored by the grader with its own answer keys. The student's
   process dying during a check errors that exercise and the ones after it; one that does not
   stop when the check's time is up is killed. The judge sends the results and ends.

If the student's process ends before its last cell (a crash, ``os._exit``), the judge ends the
same way (the same signal or exit code), and the grader reports the crash and where it happened.

What this does not stop: the student's *function* runs in the student's process and may compute
its answer any way it likes, including by calling the course library (an answer that *is* the
library's function fails; one that wraps it passes), reading the questionnaires' answer keys,
which the exercise modules hold, or by recognising the checkers' fixed, seeded inputs. The student's
process can kill or stop the judge (the notebook then errors, *crashed* or *timed out*) and can
make its own checks time out; it cannot make a wrong answer pass. See INSTRUCTORS.md.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import hashlib
import importlib
import inspect
import io
import json
import numbers
import os
import pickle
import secrets
import signal
import sys
import threading
import time
import traceback
import types

from helpers.course import judge_wire

__all__ = ["main", "student_process", "CellTimeout", "OutputFlood", "MISSING_CHECK_CELL", "FDS_ENV", "MESSAGE_CAP"]

MISSING_CHECK_CELL = -1
"""A plan's capture position for an exercise whose check cell is not in the notebook."""
FDS_ENV = "COURSE_GRADE_FDS"
"""The environment variable that gives the runner its result pipe (a descriptor number)."""
MESSAGE_CAP = 4000
"""Characters of a result's message that are sent (a huge answer shown in it is cut)."""
QUIZ_ANSWERS_CAP = 64
"""Entries of ``quiz_answers`` sent to the grader (each text cut to 200 characters)."""
# what the checkers compare with (fingerprinted for review); not the rest of the standard
# library, which compiled extensions patch on import (Cython wraps inspect.isgenerator)
_THIRD_PARTY = ("builtins", "torch", "torch.nn", "torch.nn.functional", "torch.testing",
                "numpy", "numpy.testing", "numpy.linalg", "numpy.random", "torch.linalg",
                "pandas", "pandas.testing", "math", "os", "os.path", "threading", "signal", "gc",
                "cmath", "numbers", "operator", "json", "hmac", "hashlib")
_IGNORED_NAMES = {"_", "__", "___", "__builtins__", "__warningregistry__", "__loader__",
                  "__spec__"}


class CellTimeout(BaseException):
    """Raised in the running cell (or check) when its time limit has passed."""


class OutputFlood(BaseException):
    """Raised in a cell that printed more than its output limit."""


class _Capped(io.TextIOBase):
    """sys.stdout / sys.stderr for the notebook: writes through, until a cell has written more
    than ``limit`` characters; then raises :class:`OutputFlood` in that cell."""

    def __init__(self, raw, limit: int):
        self.raw, self.limit, self.count, self.flooded = raw, limit, 0, False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.count += len(s)
        if self.count > self.limit:
            self.flooded = True
            raise OutputFlood(f"this cell printed more than {self.limit // 2**20} MiB")
        self.raw.write(s)
        return len(s)

    def flush(self):
        self.raw.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self.raw.fileno()

    @property
    def encoding(self):
        return self.raw.encoding


_ALARM_AT = [0.0]


def _on_alarm(signum, frame):
    if time.monotonic() >= _ALARM_AT[0] - 0.05:     # not a SIGALRM sent early by someone else
        raise CellTimeout()


def _arm(seconds: float) -> None:
    _ALARM_AT[0] = time.monotonic() + max(seconds, 0.01)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01), 1.0)  # then again every second


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)


class _Channel:
    """JSON lines to the grader; one ``os.write`` loop per line."""

    def __init__(self, fd: int):
        self.fd, self.write, self.dumps = fd, os.write, json.dumps

    def send(self, message: dict) -> None:
        data = (self.dumps(message, ensure_ascii=True) + "\n").encode()
        while data:
            done = self.write(self.fd, data)
            data = data[done:]


def _read_line(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = os.read(fd, 1 << 16) if not chunks or b"\n" not in chunks[-1] else b""
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ValueError("the plan is larger than its limit")
        if b"\n" in chunk:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


# ----------------------------------------------------------------------------- fingerprints
def _parts(value) -> tuple:
    """The value and the parts of it a patch could change while the value stays the same object
    (compared by identity; the last part, the names of a function's attributes, by equality)."""
    parts = [value, type(value)]
    fn = value
    if isinstance(value, (staticmethod, classmethod)):
        fn = value.__func__
        parts.append(fn)
    elif isinstance(value, property):
        parts += [value.fget, value.fset, value.fdel]
        fn = value.fget
    elif isinstance(value, types.MethodType):
        fn = value.__func__
        parts += [fn, value.__self__]
    names = ()
    if isinstance(fn, types.FunctionType):
        parts += [fn.__code__, fn.__defaults__, fn.__kwdefaults__, fn.__globals__]
        for cell in fn.__closure__ or ():
            try:
                parts.append(cell.cell_contents)
            except ValueError:
                parts.append(None)
        attrs = getattr(fn, "__dict__", None) or {}
        names = tuple(sorted(attrs))
        parts += [attrs[k] for k in names]
    return (*parts, names)


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a[:-1], b[:-1])) and a[-1] == b[-1]


def _dynamo_wrapper_code():
    """The code of torch's own wrapper of ``torch.manual_seed`` (``torch._compile``'s
    ``_disable_dynamo``, applied when ``torch._dynamo`` is first imported), taken before any
    student code: the one change of a fingerprinted value that is allowed, by identity."""
    try:
        from torch._compile import _disable_dynamo
        return _disable_dynamo(lambda: None).__code__
    except Exception:                                       # noqa: BLE001 - another torch
        return None


def _library_classes(module_names) -> list:
    """The classes defined in the helpers modules loaded (and the classes nested in them)."""
    out, seen = [], set()

    def walk(cls):
        if id(cls) in seen:
            return
        seen.add(id(cls))
        out.append(cls)
        for v in list(vars(cls).values()):
            if isinstance(v, type) and v.__module__ == cls.__module__:
                walk(v)
    for name in module_names:
        mod = sys.modules.get(name)
        if isinstance(mod, types.ModuleType):
            for v in list(vars(mod).values()):
                if isinstance(v, type) and v.__module__ == name:
                    walk(v)
    return out


def _library_extra_classes() -> list:
    """Classes of numpy, torch and pandas whose methods the checkers call."""
    out = []
    for mod, names in (("torch", ("Tensor",)), ("torch.nn", ("Module", "Parameter")),
                       ("numpy", ("ndarray", "generic")),
                       ("pandas", ("DataFrame", "Series", "Index"))):
        m = sys.modules.get(mod)
        for n in names:
            c = getattr(m, n, None)
            if isinstance(c, type):
                out.append(c)
    return out


def _digest(value):
    try:
        return hashlib.sha256(pickle.dumps(value, protocol=4)).hexdigest()
    except Exception:                                       # noqa: BLE001 - not picklable
        return None


class _ModuleData:
    """The data held by the exercise modules (``ch05._FACTS``, ``ch09._WORLD``): copied before
    the student's code, compared and put back before judging (entries added since, such as a
    cache a check filled, are dropped; entries there before and changed are reported)."""

    def __init__(self):
        self.kept = []
        for name, mod in sorted(sys.modules.items()):
            if not name.startswith("helpers.course.exercises") or \
                    not isinstance(mod, types.ModuleType):
                continue
            for key, value in list(vars(mod).items()):
                if type(value) in (dict, list, set, bytearray) and not key.startswith("__"):
                    try:
                        snapshot = copy.deepcopy(value)
                    except Exception:                       # noqa: BLE001
                        continue
                    if type(value) is dict:
                        digests = {k: _digest(v) for k, v in value.items()}
                    else:
                        digests = _digest(value)
                    self.kept.append((f"{name}.{key}", value, snapshot, digests))

    def restore(self) -> list[str]:
        out = []
        for qual, obj, snapshot, digests in self.kept:
            if type(obj) is dict:
                if any(k not in obj or _digest(obj[k]) != d for k, d in digests.items()):
                    out.append(f"`{qual}` was changed")
                obj.clear()
                obj.update(copy.deepcopy(snapshot))
            else:
                if _digest(obj) != digests:
                    out.append(f"`{qual}` was changed")
                if type(obj) is set:
                    obj.clear()
                    obj.update(copy.deepcopy(snapshot))
                else:
                    obj[:] = copy.deepcopy(snapshot)
        return out


def _torch_modes() -> tuple:
    torch = sys.modules.get("torch")
    out = []
    for name in ("_len_torch_function_stack", "_len_torch_dispatch_stack"):
        fn = getattr(getattr(torch, "_C", None), name, None)
        try:
            out.append(fn() if fn is not None else None)
        except Exception:                                   # noqa: BLE001
            out.append(None)
    return tuple(out)


class _Fingerprint:
    """Identities of everything the checks rely on, taken before the student's code runs."""

    def __init__(self, module, exercises: dict, classes: list, preimported: dict):
        # first: pickling the modules' data caches ``__slotnames__`` on its classes
        self.module_data = _ModuleData()
        self.modules = {}
        self.wrapper_code = _dynamo_wrapper_code()
        names = sorted(n for n in sys.modules if n == "helpers" or n.startswith("helpers."))
        names = [n for n in names if not n.startswith("helpers.course.grade")]
        for name in [*names, *_THIRD_PARTY]:
            mod = sys.modules.get(name)
            if isinstance(mod, types.ModuleType):
                self.modules[name] = (mod, {k: _parts(v) for k, v in vars(mod).items()
                                            if k not in _IGNORED_NAMES})
        classes = [*classes, *_library_classes(names), *_library_extra_classes()]
        self.lazy = {}                      # what the checkers import when they run
        for name, (mod, attrs) in preimported.items():
            self.lazy[name] = (mod, {a: _parts(getattr(mod, a)) for a in attrs
                                     if hasattr(mod, a)})
            classes += [getattr(mod, a) for a in attrs if isinstance(getattr(mod, a, None), type)]
        self.classes = {}
        for c in classes:
            qual = f"{c.__module__}.{c.__qualname__}"
            if qual not in self.classes:
                try:
                    inherited = frozenset(dir(c))
                except Exception:                           # noqa: BLE001
                    inherited = frozenset()
                self.classes[qual] = (c, {k: _parts(v) for k, v in vars(c).items()}, inherited)
        self.objects = {}
        for name, ex in exercises.items():
            self.objects[name] = (ex, type(ex), dict(vars(ex)))
        self.questions = {}
        for name, ex in exercises.items():
            qs = getattr(ex, "questions", None)
            if isinstance(qs, list):
                self.questions[name] = (qs, list(qs), [copy.deepcopy(vars(q)) for q in qs])
        self.modes = _torch_modes()

    def _allowed(self, module_name: str, key: str, new, old) -> bool:
        """torch's own wrapper of ``torch.manual_seed``, recognised by the identity of its code
        (taken before the student's code) and of the function it wraps."""
        if (module_name, key) != ("torch", "manual_seed") or self.wrapper_code is None:
            return False
        if not isinstance(new, types.FunctionType) or new.__code__ is not self.wrapper_code:
            return False
        cells = new.__closure__ or ()
        try:
            return len(cells) == 2 and cells[0].cell_contents is old \
                and cells[1].cell_contents is True
        except ValueError:
            return False

    def changes(self) -> list[str]:
        """What differs now, as readable names (empty: nothing was touched)."""
        out = []
        for name, (mod, before) in self.modules.items():
            now = vars(mod)
            if sys.modules.get(name) is not mod:
                out.append(f"`sys.modules[{name!r}]` was replaced")
            for key, parts in before.items():
                if key not in now:
                    out.append(f"`{name}.{key}` was deleted")
                elif not _same(_parts(now[key]), parts) and \
                        not self._allowed(name, key, now[key], parts[0]):
                    out.append(f"`{name}.{key}` was changed")
        for name, (mod, before) in self.lazy.items():
            if sys.modules.get(name) is not mod:
                out.append(f"`sys.modules[{name!r}]` was replaced")
            for key, parts in before.items():
                if not hasattr(mod, key) or not _same(_parts(getattr(mod, key)), parts):
                    out.append(f"`{name}.{key}` was changed")
        for qual, (cls, before, inherited) in self.classes.items():
            now = vars(cls)
            for key in set(before) | set(now):
                if key not in now:
                    out.append(f"`{qual}.{key}` was deleted")
                elif key not in before:
                    # a new name shadowing an inherited one (DataFrame.equals over NDFrame's), or
                    # a special method; a name of its own (transformers adds Module.smart_apply)
                    # changes nothing the checks call
                    if key in inherited or (key.startswith("__") and key.endswith("__")):
                        out.append(f"`{qual}.{key}` was added")
                elif not _same(_parts(now[key]), before[key]):
                    out.append(f"`{qual}.{key}` was changed")
        for name, (ex, cls, before) in self.objects.items():
            now = vars(ex)
            if type(ex) is not cls:
                out.append(f"the class of `{name}` was changed")
            cached = getattr(cls, "CACHED", ())            # filled by the exercise's own check
            for key in set(before) | set(now):
                if key in cached and before.get(key) is None:
                    continue
                if key not in now or key not in before or now[key] is not before[key]:
                    out.append(f"`{name}.{key}` was changed")
        for name, (qs, items, values) in self.questions.items():
            if len(qs) != len(items) or any(a is not b for a, b in zip(qs, items)):
                out.append(f"the questions of `{name}` were changed")
                continue
            for n, (q, v) in enumerate(zip(items, values), start=1):
                try:
                    same = vars(q) == v
                except Exception:
                    same = False
                if not same:
                    out.append(f"question {n} of `{name}` was changed")
        if _torch_modes() != self.modes:
            out.append("a torch function or dispatch mode (TorchFunctionMode, "
                       "TorchDispatchMode) was left active")
        out += self.module_data.restore()
        return sorted(set(out))


# ----------------------------------------------------------------------------- judging
_MISSING = object()
_isfunction, _isclass = inspect.isfunction, inspect.isclass     # taken before any notebook runs


def _plain(value):
    """The answer to a question as a plain JSON value: None, bool, str (cut to 200 characters),
    int or float (a subclass could lie about equality); anything else as ``{"type": name}``
    (neither judge accepts it)."""
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    if isinstance(value, str):
        return str.__str__(value)[:200]
    if isinstance(value, numbers.Integral):
        value = int.__int__(int(value))
        if -2**53 <= value <= 2**53:
            return value
        return float("inf") if value > 0 else float("-inf")
    if isinstance(value, numbers.Real):
        return float.__float__(float(value))
    return {"type": type(value).__name__[:60]}


def _quiz_capture(answers):
    """What the grader receives for a questionnaire: ``{"pairs": [[question, answer], ...]}``
    (plain values, at most QUIZ_ANSWERS_CAP), or ``{"type": name}`` when it is not a dict."""
    if answers is _MISSING:
        return _MISSING
    if not isinstance(answers, dict):
        return {"type": type(answers).__name__[:60]}
    pairs = []
    for key, value in dict.items(answers):
        if len(pairs) >= QUIZ_ANSWERS_CAP:
            break
        pairs.append([_plain(key), _plain(value)])
    return {"pairs": pairs, "count": dict.__len__(answers)}


def _capture(item, value):
    """The answer as captured before its check cell: a questionnaire's answers as plain values,
    data (a dict, a list, an array, a tensor) as a deep copy; a function or a class as it is."""
    if item.is_quiz:
        return _quiz_capture(value)
    if value is _MISSING or callable(value) or isinstance(value, types.ModuleType):
        return value
    try:
        return copy.deepcopy(value)
    except (CellTimeout, MemoryError, OutputFlood):
        raise
    except BaseException:                                   # noqa: BLE001 - kept as it is
        return value


class _Item:
    """One exercise as captured before the student's code ran."""

    def __init__(self, attr: str, exercise, capture: int, quiz_cls):
        self.attr, self.name, self.var = attr, exercise.name, exercise.var
        self.checker = exercise.checker
        self.write_back = bool(getattr(exercise, "inputs_checked_after_call", False))
        self.capture = capture
        self.is_quiz = isinstance(exercise, quiz_cls)


def _library_name(answer) -> str | None:
    """``module.qualname`` when the answer *is* a function or class of the course library."""
    if (_isfunction(answer) or _isclass(answer)) and \
            str(getattr(answer, "__module__", "") or "").startswith("helpers."):
        return f"{answer.__module__}.{getattr(answer, '__qualname__', '?')}"[:200]
    return None


def _capture_report(item: _Item, value) -> dict:
    """What the student's process tells the judge of a captured answer: whether it is there, a
    questionnaire's plain answers, whether a function is the library's own; a data answer
    (a vary-and-explain dict, a list) itself, in the codec (or why it cannot be read)."""
    out = {"t": "capture", "attr": item.attr, "present": value is not _MISSING}
    if item.is_quiz:
        out["quiz"] = None if value is _MISSING else value
    elif value is not _MISSING and callable(value):
        out["library"] = _library_name(value)
    elif value is not _MISSING:
        try:
            out["data"] = judge_wire.encode(value, f"your `{item.var}`")
        except judge_wire.Unreadable as err:
            out["refused"] = str(err)
        except RecursionError:
            out["refused"] = f"your `{item.var}` is nested too deep for the grader to read."
    return out


def _requiz(data):
    """A questionnaire's answers as the judge keeps them: ``{"pairs": [[q, a], ...]}`` of plain
    values, or ``{"type": name}`` (the student's process sent them; checked again here)."""
    if isinstance(data, dict) and isinstance(data.get("pairs"), list):
        pairs = [[_plain_json(p[0]), _plain_json(p[1])] for p in data["pairs"][:QUIZ_ANSWERS_CAP]
                 if isinstance(p, list) and len(p) == 2]
        count = data.get("count")
        return {"pairs": pairs, "count": count if type(count) is int else len(pairs)}
    kind = data.get("type") if isinstance(data, dict) else None
    return {"type": str(kind or "value that could not be read")[:60]}


def _plain_json(value):
    if isinstance(value, dict):
        return {"type": str(value.get("type", "object"))[:60]}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)[:200]


class _Judge:
    """Judges the captured answers, in the judge's process: each checker (taken before any
    student code ran) is called with a :class:`judge_wire.Proxy` of the student's function,
    under its own alarm (``check_s``)."""

    def __init__(self, incorrect, check_s: float, link=None):
        self.incorrect, self.check_s, self.link = incorrect, check_s, link

    def item(self, item: _Item, report: dict | None, where: str) -> dict:
        out = {"item": item.name}
        if report is None or not report.get("present"):
            return {**out, "state": "not attempted", "score": 0.0,
                    "message": f"`{item.var}` is not defined when the notebook checks it "
                               f"({where}): write it in its exercise cell and run that cell."}
        if item.is_quiz:                      # scored by the grader, with its own answer keys
            return {**out, "state": "answers", "score": 0.0, "message": "",
                    "answers": _requiz(report.get("quiz"))}
        try:
            _arm(self.check_s)
            try:
                return {**out, **self._exercise(item, report)}
            finally:
                _disarm()
        except CellTimeout:
            return {**out, "state": "errored", "reason": "timed out", "score": 0.0,
                    "message": f"checking `{item.var}` took longer than {self.check_s:g} s: does "
                               "it loop forever on some input?"}
        except MemoryError:
            return {**out, "state": "errored", "reason": "memory", "score": 0.0,
                    "message": f"checking `{item.var}` ran out of memory."}
        except OutputFlood as err:
            return {**out, "state": "errored", "reason": "output flood", "score": 0.0,
                    "message": f"`{item.var}` printed too much while being checked ({err})."}
        except judge_wire.StudentGone as err:
            return {**out, "state": "errored", "reason": err.reason, "score": 0.0,
                    "message": f"`{item.var}` could not be checked: {err.why}."}
        except judge_wire.GraderError as err:
            return {**out, "state": "errored", "reason": "grader", "score": 0.0,
                    "message": f"{err} Report this to the course's maintainers."}
        except BaseException as err:                       # noqa: BLE001 - whatever it raised
            return {**out, "state": "failed", "score": 0.0,
                    "message": f"checking `{item.var}` raised {type(err).__name__}."}

    def _exercise(self, item: _Item, report: dict) -> dict:
        library = report.get("library")
        if isinstance(library, str) and library:
            return {"state": "failed", "score": 0.0,
                    "message": f"your `{item.var}` is the course library's own "
                               f"`{library[:200]}`, not code of your own: write the exercise's "
                               "function yourself."}
        if "refused" in report:
            return {"state": "failed", "score": 0.0, "message": str(report["refused"])[:2000]}
        if "data" in report:                # a data answer, read by the codec, not called
            try:
                answer = judge_wire.decode(report["data"], f"`{item.var}`")
            except judge_wire.WireError as err:
                return {"state": "failed", "score": 0.0,
                        "message": f"your `{item.var}` could not be read back ({err})."}
        else:
            answer = judge_wire.Proxy(self.link, item.attr, item.var,
                                      time.monotonic() + self.check_s,
                                      write_back=item.write_back)
        try:
            note = item.checker(answer)
        except NotImplementedError:
            return {"state": "not attempted", "score": 0.0,
                    "message": f"`{item.var}` still raises NotImplementedError: replace `# YOUR "
                               "CODE HERE` and the `raise NotImplementedError` line with your "
                               "code."}
        except self.incorrect as err:
            return {"state": "failed", "score": 0.0, "message": _text(err)}
        except (CellTimeout, MemoryError, OutputFlood, judge_wire.StudentGone,
                judge_wire.GraderError):
            raise
        except BaseException as err:                       # noqa: BLE001 - the student's code
            return {"state": "failed", "score": 0.0,
                    "message": f"your `{item.var}` raised {type(err).__name__}: {_text(err)}"}
        return {"state": "passed", "score": 1.0, "message": note if isinstance(note, str) else ""}


def _text(err: BaseException, limit: int = 2000) -> str:
    try:
        text = str(err)
    except BaseException:                                   # noqa: BLE001 - a lying __str__
        text = f"<{type(err).__name__} whose message could not be shown>"
    return text if len(text) <= limit else text[:limit] + " [...]"


# ----------------------------------------------------------------------------- running cells
def _apply_limits(limits: dict) -> None:
    import resource  # POSIX only: the runner runs on Linux

    memory = int(limits.get("memory_mib") or 0)
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory * 2**20, memory * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    nproc = int(limits.get("nproc") or 0)
    if nproc > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _cache_farm(real: str | None, scratch: str) -> str | None:
    """A cache folder of the scratch that reads the course's (read-only) cache through links and
    writes derived data (text encodings) into the scratch."""
    if not real or not os.path.isdir(real):
        return None
    farm = os.path.join(scratch, ".cache")
    os.makedirs(farm, exist_ok=True)
    for name in os.listdir(real):
        src, dst = os.path.join(real, name), os.path.join(farm, name)
        if name == "embeddings" and os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
            for f in os.listdir(src):
                os.symlink(os.path.join(src, f), os.path.join(dst, f))
        elif not os.path.lexists(dst):
            os.symlink(src, dst)
    return farm


def _make_shell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryManager.enabled = False
    cfg.InteractiveShell.cache_size = 0
    cfg.InteractiveShell.colors = "nocolor"
    cfg.InteractiveShell.xmode = "Plain"
    shell = InteractiveShell.instance(config=cfg)
    shell.showtraceback = lambda *args, **kwargs: None
    shell.showsyntaxerror = lambda *args, **kwargs: None
    return shell


def _where_in_cell(err: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename.startswith("<ipython-input"):
            line = frame.lineno
    return line


def _describe(err: BaseException, memory_mib: int) -> tuple[str, str]:
    """(status, text) for what a cell raised."""
    if isinstance(err, CellTimeout):
        return "timed out", ""
    if isinstance(err, OutputFlood):
        return "output flood", _text(err)
    text = f"{type(err).__name__}: {_text(err, 600)}"
    if isinstance(err, MemoryError) or "can't allocate memory" in text \
            or "Cannot allocate memory" in text:
        return "memory", f"{text} (the memory limit is {memory_mib} MiB)"
    line = _where_in_cell(err)
    return "error", text + (f" (line {line} of the cell)" if line else "")


def _capture_all(shell, items: list, pos: int, answers: dict, seconds: float, lines) -> None:
    """Capture the answers whose check cell is at ``pos``, under an alarm (a deep copy may run
    the student's ``__deepcopy__``), and tell the judge what was captured."""
    due = [item for item in items if item.capture == pos]
    if not due:
        return
    try:
        _arm(seconds)
        try:
            for item in due:
                answers[item.attr] = _capture(item, shell.user_ns.get(item.var, _MISSING))
        finally:
            _disarm()
    except BaseException:                                   # noqa: BLE001 - kept as they are
        for item in due:
            if item.attr not in answers:
                answers[item.attr] = {"type": "value that could not be read"} if item.is_quiz \
                    else shell.user_ns.get(item.var, _MISSING)
    for item in due:
        lines.send(_capture_report(item, answers[item.attr]))


def _run_cells(shell, plan: dict, items: list, lines, deadline: float,
               stdout: _Capped, stderr: _Capped, watching: list) -> dict:
    limits = plan["limits"]
    answers = {}
    for pos, cell in enumerate(plan["cells"]):
        _capture_all(shell, items, pos, answers, float(limits["check_s"]), lines)
        index = cell["index"]
        left = deadline - time.monotonic()
        if left <= 0:
            lines.send({"t": "cell", "index": index, "status": "skipped", "seconds": 0.0})
            continue
        lines.send({"t": "cell", "index": index, "status": "started"})
        stdout.count = stderr.count = 0
        sys.stdout, sys.stderr, sys.stdin = stdout, stderr, io.StringIO("")
        t0 = time.monotonic()
        err = None
        timed_by = "cell" if limits["cell_s"] <= left else "notebook"
        try:
            _arm(min(limits["cell_s"], left))
            watching[0] = True
            try:
                result = shell.run_cell(cell["source"], store_history=False, silent=False)
            finally:
                watching[0] = False
                _disarm()
            err = result.error_before_exec or result.error_in_exec
        except BaseException as caught:                     # noqa: BLE001 - the cell's
            err = caught
        seconds = time.monotonic() - t0
        sys.stdout, sys.stderr = stdout, stderr
        if isinstance(err, SystemExit):
            err = None                                      # IPython shows it; the run goes on
        message = {"t": "cell", "index": index, "seconds": round(seconds, 3), "status": "ok"}
        if err is not None:
            status, text = _describe(err, int(limits.get("memory_mib") or 0))
            if status == "timed out":
                text = (f"stopped after {seconds:.0f} s: the {timed_by} time limit "
                        f"({limits['cell_s'] if timed_by == 'cell' else limits['notebook_s']:g} s)")
            message.update(status=status, error=text)
        try:
            mpl = sys.modules.get("matplotlib.pyplot")
            if mpl is not None:
                mpl.close("all")                          # as the notebook's inline backend
        except BaseException:                              # noqa: BLE001
            pass
        lines.send(message)
    _capture_all(shell, items, len(plan["cells"]), answers, float(limits["check_s"]), lines)
    return answers


def _netguard_attempts(path: str | None) -> list[str]:
    if not path or not os.path.exists(path):
        return []
    try:
        with open(path, errors="replace") as fh:
            return [line.strip()[:300] for line in fh.read(65536).splitlines() if line.strip()]
    except OSError:
        return []


_WATCHED = ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
            "sys.settrace", "sys.setprofile")


def _audit_hook(counts: dict, watching: list, channel=None):
    """An audit hook installed before the student's code: it refuses further audit hooks (one
    cannot be removed, and it would see everything after the cells) and counts, while a cell
    runs, the introspection a forger needs; the counts go to the feedback page for review. A cell
    that lists this process's open files (``/proc/self/fd``, where the pipes are) is reported to
    the grader at once, as an alert for review (a forger exits before any note is sent)."""
    watched = frozenset(_WATCHED)
    fd_dirs = ("/proc/self/fd", "/proc/self/fdinfo", f"/proc/{os.getpid()}/fd",
               "/proc/thread-self/fd")
    alerted = set()

    def hook(event, args):
        if watching[0] and event in ("os.listdir", "os.scandir", "open") and args and \
                isinstance(args[0], str) and args[0].rstrip("/").startswith(fd_dirs):
            counts["listing /proc/self/fd"] = counts.get("listing /proc/self/fd", 0) + 1
            if channel is not None and "fd" not in alerted:
                alerted.add("fd")
                channel.send({"t": "alert", "what": "a cell listed the runner's open files "
                                                    "(/proc/self/fd), where its pipes are"})
            return
        if event == "sys.addaudithook":
            counts[event] = counts.get(event, 0) + 1
            raise RuntimeError("the grader allows no audit hook")
        if watching[0] and (event in watched or (event.startswith("ctypes.")
                                                   and not event.startswith("ctypes.dl"))):
            counts[event] = counts.get(event, 0) + 1
    return hook


def _hide_fd(fd: int) -> int:
    """Move ``fd`` to a random free descriptor between 300 and the soft limit (not inherited)."""
    import resource  # POSIX only: the runner runs on Linux

    top = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 65536)
    for _ in range(200):
        new = 300 + secrets.randbelow(max(top - 301, 1))
        try:
            os.fstat(new)
        except OSError:
            os.dup2(fd, new, inheritable=False)
            os.close(fd)
            return new
    os.set_inheritable(fd, False)
    return fd


def _trusted_roots() -> tuple:
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    roots |= {os.path.join(here, "helpers"), os.path.join(here, "tools")}
    return tuple(r + os.sep for r in sorted(roots))


def _notebook_threads(trusted: tuple, me: int) -> int:
    """Python threads still running code of the notebook (a frame whose file is not the
    library's: ``<ipython-input-...>``, ``<string>``, the scratch folder)."""
    count = 0
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith("<frozen "):
                pass
            elif name.startswith("<") or not os.path.realpath(name).startswith(trusted):
                count += 1
                break
            frame = frame.f_back
    return count


_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
_PASSED_OVER = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE",
                "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGXCPU")


def _prctl(option: int, value: int) -> bool:
    import ctypes
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the plan read from standard input (see the module's docstring); the grader's side."""
    parser = argparse.ArgumentParser(description="helpers.course.grade's runner (not for direct use)")
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        res_fd = int(os.environ.pop(FDS_ENV))
    except (KeyError, ValueError):
        sys.stderr.write(f"grade_runner: ${FDS_ENV} is missing: it is started by the grader\n")
        return 3
    res_fd = _hide_fd(res_fd)
    channel = _Channel(res_fd)
    try:
        plan = json.loads(_read_line(0, 256 * 2**20))
        null = os.open(os.devnull, os.O_RDONLY)             # nothing more comes on stdin
        os.dup2(null, 0)
        os.close(null)
        limits = plan["limits"]
        _apply_limits(limits)
        scratch = os.getcwd()
        for sub in (".home", ".tmp", ".mpl", ".ipython", ".results", ".artifacts"):
            os.makedirs(os.path.join(scratch, sub), exist_ok=True)
        farm = _cache_farm(plan.get("cache"), scratch)
        if farm:
            os.environ["COURSE_CACHE"] = farm
        module = importlib.import_module(plan["module"])
        exercises_pkg = importlib.import_module("helpers.course.exercises")
        quiz_mod = importlib.import_module("helpers.course.exercises.quiz")
        for name in ("numpy", "torch", "pandas", "torch.nn.functional", "torch.testing",
                     "numpy.testing", "pandas.testing", "numpy.random", "torch.linalg"):
            importlib.import_module(name)
        preimported = {}                    # what the checkers import lazily, imported now
        for name, attrs in plan.get("preimport", []):
            try:
                preimported[name] = (importlib.import_module(name), list(attrs))
            except Exception:                               # noqa: BLE001 - not installed
                pass
        exercise_cls, quiz_cls = exercises_pkg.Exercise, quiz_mod.Quiz
        items, by_name = [], {}
        for spec in plan["items"]:
            ex = getattr(module, spec["attr"], None)
            if not isinstance(ex, exercise_cls):
                raise ValueError(f"{plan['module']}.{spec['attr']} is not an exercise")
            items.append(_Item(spec["attr"], ex, int(spec["capture"]), quiz_cls))
            by_name[ex.name] = ex
        classes = [c for m in (exercises_pkg, quiz_mod, module) for c in vars(m).values()
                   if isinstance(c, type) and c.__module__ == m.__name__]
        to_judge, to_student = os.pipe(), os.pipe()         # (read, write) each
        if not _prctl(_PR_SET_DUMPABLE, 0):                 # inherited: the student undoes it
            raise OSError("prctl(PR_SET_DUMPABLE, 0) failed: the judge cannot hide its memory")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except Exception as err:                                # noqa: BLE001 - tell the grader
        channel.send({"t": "fatal", "message": f"{type(err).__name__}: {_text(err, 1000)}"})
        sys.stdout.flush()
        return 3
    if pid == 0:                            # the student's process: no pipe to the grader
        os.close(res_fd)
        os.close(to_judge[0])
        os.close(to_student[1])
        _student(plan, items, (module, by_name, classes, preimported), started,
                 to_student[0], to_judge[1])
    os.close(to_judge[1])
    os.close(to_student[0])
    lines = judge_wire.Lines(to_judge[0], to_student[1])
    _judge(plan, items, channel, pid, lines, exercises_pkg.Incorrect, scratch, started)
    return 0                                                # pragma: no cover - _exit in _judge


# ----------------------------------------------------------------------------- the student's side
def _student(plan: dict, items: list, machinery: tuple, started: float, rfd: int,
             wfd: int) -> None:
    """The student's process: run the cells, report them and the captured answers to the
    judge, then answer its calls; never returns."""
    code = 0
    try:
        _prctl(_PR_SET_DUMPABLE, 1)          # its own /proc files stay readable to its code
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)           # the judge gone: nothing to do
        lines = judge_wire.Lines(_hide_fd(rfd), _hide_fd(wfd))
        _serve_notebook(plan, items, machinery, started, lines)
    except BaseException:                                   # noqa: BLE001 - its code broke it
        code = 3
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:                               # noqa: BLE001
            pass
    os._exit(code)


def _serve_notebook(plan: dict, items: list, machinery: tuple, started: float, lines) -> None:
    limits = plan["limits"]
    try:
        shell = _make_shell()
        fingerprint = _Fingerprint(*machinery)
        state = (list(gc.callbacks), sys.gettrace(), sys.getprofile(),
                 (threading.gettrace(), threading.getprofile()))
        trusted = _trusted_roots()
        out_limit = int(float(limits["output_mib"]) * 2**20)
        stdout, stderr = _Capped(sys.stdout, out_limit), _Capped(sys.stderr, out_limit)
        counts, watching = {}, [False]
        sys.addaudithook(_audit_hook(counts, watching, lines))
    except Exception as err:                                # noqa: BLE001 - tell the grader
        lines.send({"t": "fatal", "message": f"{type(err).__name__}: {_text(err, 1000)}"})
        raise
    lines.send({"t": "start"})
    deadline = started + float(limits["notebook_s"])
    answers = _run_cells(shell, plan, items, lines, deadline, stdout, stderr, watching)
    signal.setitimer(signal.ITIMER_REAL, 0)
    lines.send({"t": "cells_done", "notes": _review_notes(fingerprint, state, trusted, counts),
                "network": _netguard_attempts(os.environ.get("COURSE_NETGUARD_LOG"))[:20]})
    judge_wire.serve(lines, answers,
                     lambda fn, args, kwargs, seconds: _run_call(fn, args, kwargs, seconds,
                                                                 stdout, stderr))


def _review_notes(fingerprint, state: tuple, trusted: tuple, counts: dict) -> list[str]:
    """What the notebook did that an attack on an in-process grader needs, for review by hand:
    no result depends on it any more (the checks run in the judge's process)."""
    changed = fingerprint.changes()
    callbacks, trace, profile, thread_hooks = state
    if sys.gettrace() is not trace or sys.getprofile() is not profile or \
            (threading.gettrace(), threading.getprofile()) != thread_hooks:
        changed.append("a trace or profile function was installed (sys.settrace / setprofile)")
    if list(gc.callbacks) != callbacks:
        changed.append("gc.callbacks was changed")
    notes = []
    if changed:
        what = "; ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8
                                         else "")
        notes.append("for review: the notebook changed the checking code in its own process "
                     f"(no result depends on it: the checks ran in a separate process): {what}")
    if _notebook_threads(trusted, threading.get_ident()):
        notes.append("for review: a thread started by the notebook's code was still running "
                     "after its last cell")
    if counts:
        notes.append("for review: while its cells ran the notebook used " + ", ".join(
            f"{k} ({v}x)" for k, v in sorted(counts.items())))
    return [n[:MESSAGE_CAP] for n in notes]


def _run_call(fn, args: tuple, kwargs: dict, seconds: float, stdout, stderr) -> tuple:
    """One call of the student's function for the judge, under the check's alarm."""
    sys.stdout, sys.stderr = stdout, stderr
    stdout.count = stderr.count = 0
    try:
        _arm(seconds)
        try:
            return "return", fn(*args, **kwargs)
        finally:
            _disarm()
    except CellTimeout:
        return "timeout", ""
    except MemoryError:
        return "memory", ""
    except OutputFlood as err:
        return "flood", _text(err, 200)
    except BaseException as err:                            # noqa: BLE001 - sent to the judge
        return "raised", err


def _one_thread_after_fork() -> None:
    """In a child forked from a process that has already run a parallel torch operation (a
    vary-and-explain measurement trains a model in the judge), the child's first parallel
    operation waits forever for OpenMP threads that were not forked (libgomp is not fork-safe).
    The child runs the students' small functions: one thread is enough, and it never enters a
    parallel region. (The runner forks before the notebook's code, so its child is unaffected.)"""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@contextlib.contextmanager
def student_process(answers: dict, grace: float = 3.0):
    """A process forked from this one that holds ``answers`` (exercise attribute, e.g. ``"q1"``,
    to the student's function) and answers calls as a notebook's process does after its last
    cell. Yields ``proxy(attr, var, seconds=60)``, which makes the :class:`judge_wire.Proxy` a
    checker is given (``proxy.link`` is the :class:`judge_wire.Link` under it). For tests and measurements: the runner forks before the notebook's code
    runs instead."""
    if not isinstance(answers, dict) or not all(isinstance(k, str) and callable(v)
                                                for k, v in answers.items()):
        raise TypeError("answers must be a dict from exercise attribute (str) to a function, "
                        f"got {type(answers).__name__}")
    incorrect = importlib.import_module("helpers.course.exercises").Incorrect
    to_judge, to_student = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _one_thread_after_fork()
            os.close(to_judge[0])
            os.close(to_student[1])
            out, err = _Capped(sys.stdout, 2**30), _Capped(sys.stderr, 2**30)
            judge_wire.serve(judge_wire.Lines(to_student[0], to_judge[1]), answers,
                             lambda fn, a, k, sec: _run_call(fn, a, k, sec, out, err))
        except BaseException:                               # noqa: BLE001 - the child ends
            code = 3
        os._exit(code)
    os.close(to_judge[1])
    os.close(to_student[0])
    link = judge_wire.Link(judge_wire.Lines(to_judge[0], to_student[1]), pid,
                           (CellTimeout, OutputFlood), incorrect, grace)
    def proxy(attr: str, var: str, seconds: float = 60.0,
              write_back: bool = False) -> judge_wire.Proxy:
        if attr not in answers:
            raise KeyError(f"no answer {attr!r}; there are {sorted(answers)[:10]}")
        return judge_wire.Proxy(link, attr, var, time.monotonic() + seconds,
                                write_back=write_back)
    proxy.link = link                       # for a judge of the runner's own (_Judge)
    try:
        yield proxy
    finally:
        link.close()
        for fd in (to_judge[0], to_student[1]):
            os.close(fd)
        for _ in range(100):
            if judge_wire.ended(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            judge_wire.exit_status(pid)


# ----------------------------------------------------------------------------- the judge's side
def _judge(plan: dict, items: list, channel: _Channel, pid: int, lines, incorrect,
           scratch: str, started: float) -> None:
    """The judge's process: forward the cells' progress, then judge the captured answers with
    its own checkers and send the results; never returns."""
    _harden_judge(plan, scratch)
    captures: dict = {}
    done = _follow_cells(channel, lines, pid, items, captures, started)
    if done is None:
        _end_like(pid)
    link = judge_wire.Link(lines, pid, (CellTimeout, OutputFlood), incorrect)
    judge = _Judge(incorrect, float(plan["limits"]["check_s"]), link)
    channel.send({"t": "judging"})
    for seq, item in enumerate(items):
        if item.capture == MISSING_CHECK_CELL:
            r = {"item": item.name, "state": "errored", "reason": "check cell missing",
                 "score": 0.0, "message": f"the notebook no longer has the cell that runs "
                                          f"`{item.name}.check()`; put it back (copy it from "
                                          "the chapter's notebook) below your answer."}
        else:
            r = judge.item(item, captures.get(item.attr),
                           f"just before its `{item.name}.check()` cell")
        if isinstance(r.get("message"), str) and len(r["message"]) > MESSAGE_CAP:
            r["message"] = r["message"][:MESSAGE_CAP] + " [...]"
        channel.send({"t": "result", "result": {**r, "seq": seq}})
    signal.setitimer(signal.ITIMER_REAL, 0)
    link.close()
    notes = [str(n)[:MESSAGE_CAP] for n in done.get("notes", []) if isinstance(n, str)][:10] \
        if isinstance(done.get("notes"), list) else []
    network = [str(n)[:300] for n in done.get("network", [])][:20] \
        if isinstance(done.get("network"), list) else []
    channel.send({"t": "done", "count": len(items), "notes": notes, "network": network})
    os._exit(0)


def _harden_judge(plan: dict, scratch: str) -> None:
    """Nothing the student's process can write reaches the judge: no import from the scratch
    folder (``python -m`` put it first on ``sys.path``), the course's read-only cache instead of
    the scratch's links to it, no home or config folder; the signals a notebook could send to
    disturb it are ignored (the judge's alarm ignores an early ``SIGALRM``)."""
    real = os.path.realpath(scratch)
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != real
                   and not os.path.realpath(p).startswith(real + os.sep)]
    cache = plan.get("cache")
    if cache and os.path.isdir(cache):
        os.environ["COURSE_CACHE"] = cache
    else:
        os.environ.pop("COURSE_CACHE", None)
    for key in ("HOME", "MPLCONFIGDIR", "IPYTHONDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        os.environ[key] = "/nonexistent"
    os.chdir("/")
    importlib.invalidate_caches()
    for name in _PASSED_OVER:
        try:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        except (AttributeError, OSError, ValueError):
            pass


def _follow_cells(channel: _Channel, lines, pid: int, items: list, captures: dict,
                  started: float) -> dict | None:
    """Forward the student's process's reports of its cells to the grader (which checks their
    order), keep its captures, until it says its cells are done (that message is returned) or
    it ends (``None``). Any other message is forwarded as a violation: a cell wrote on the
    channel."""
    attrs = {item.attr for item in items}
    while True:
        try:
            msg = lines.recv(deadline=time.monotonic() + 0.5)
        except TimeoutError:
            if judge_wire.ended(pid):
                return None
            continue
        except judge_wire.WireError as err:
            channel.send({"t": "violation", "what": str(err)[:100]})
            continue
        if msg is None:
            return None
        kind = msg["t"]
        if kind in ("start", "fatal", "cell", "alert"):
            out = {k: msg[k] for k in ("index", "status", "seconds", "error", "message", "what")
                   if k in msg and isinstance(msg[k], (int, float, str)) and
                   not isinstance(msg[k], bool)}
            if kind == "start":
                out["seconds"] = round(time.monotonic() - started, 3)
            channel.send({"t": kind, **{k: v[:2000] if isinstance(v, str) else v
                                        for k, v in out.items()}})
        elif kind == "capture" and msg.get("attr") in attrs and msg["attr"] not in captures:
            captures[msg["attr"]] = msg
        elif kind == "cells_done":
            return msg
        else:
            channel.send({"t": "violation", "what": f"a {kind[:20]!r} message where none belongs"})


def _end_like(pid: int) -> None:
    """The student's process ended before its cells were done: end as it did (its signal or
    exit code), so the grader reports the crash as it happened; never returns."""
    status = judge_wire.exit_status(pid)
    if status is None:
        os._exit(3)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except (OSError, ValueError):
            pass
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    sys.exit(main())
