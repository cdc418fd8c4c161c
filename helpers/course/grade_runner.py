"""Runs one submitted notebook for the grader, inside its jail, and reports each exercise's result.

Started by :mod:`helpers.course.grade` (never by hand) as ``python -m
helpers.course.grade_runner --result-fd N``, in the jail of :mod:`helpers.course.sandbox`. The
grader writes the *plan* (the notebook's code cells, which exercises to capture where, the
limits) as one JSON line on this process's standard input; this process answers with JSON lines
on the result pipe ``N``. Standard output and error go to the grader, which keeps only a capped
copy: nothing printed is ever read as a result.

In order:

1. Before any student code: set the memory and process limits, import the chapter's exercise
   module and take *references* to each exercise's checker, its questions (copies), the
   exception classes and the functions the checks rely on; fingerprint the checking machinery
   (every ``helpers`` module loaded, ``builtins``, torch, numpy, pandas, math..., the exercise
   classes and objects: the identity of every value, and of every function's code).
2. Run the code cells one by one with IPython's ``InteractiveShell`` (magics and display work, no
   Jupyter kernel), each under an alarm (``cell_s``); a cell that fails, times out or prints more
   than ``output_mib`` is recorded and the next cell runs (as nbgrader does); cells past the
   notebook's time budget are skipped. Just before the cell that checks an exercise (the
   notebook's own ``chNN.qK.check()`` cell) the answer the student defined, e.g. the function
   ``cosine_similarity``, is captured: the value the notebook itself would check.
3. After the last cell, judge every captured answer with the references taken in step 1 (each
   check under its own alarm, ``check_s``), never with what the notebook's namespace holds now;
   then compare the fingerprint: if the notebook changed any of it (redefined a checker,
   patched ``numpy.allclose``, ``builtins.isinstance``, an exercise object...), every item of the
   notebook is reported as errored, naming what changed.
4. Ask the grader for a fresh key (``{"t": "ready"}``), and only then sign each result line with
   HMAC-SHA256; exit at once with ``os._exit`` (no ``atexit`` handler or finaliser of the
   student's runs after the results).

What this does not stop, and cannot in one process: code that deliberately attacks the checks
from inside the functions the checker calls (they run in this process, with this process's
memory), e.g. a function that patches a comparison while it is being checked and restores it
afterwards, or one that returns an object that lies about equality; nor a student who reads
this file and forges the protocol from a cell. The grader's report says so; see INSTRUCTORS.md.
"""
from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import hmac
import importlib
import inspect
import io
import json
import numbers
import os
import resource
import signal
import sys
import threading
import time
import traceback
import types

__all__ = ["main", "CellTimeout", "OutputFlood", "MISSING_CHECK_CELL"]

MISSING_CHECK_CELL = -1
"""A plan's capture position for an exercise whose check cell is not in the notebook."""
# what the checkers compare with, and what the runner signs with; not the rest of the standard
# library, which compiled extensions patch on import (Cython wraps inspect.isgenerator)
_THIRD_PARTY = ("builtins", "torch", "torch.nn", "torch.nn.functional", "torch.testing",
                "numpy", "numpy.testing", "numpy.linalg", "pandas", "pandas.testing", "math",
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


def _on_alarm(signum, frame):
    raise CellTimeout()


def _arm(seconds: float) -> None:
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
    """The value and the parts of it a patch could change while the value stays the same object."""
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
    if isinstance(fn, types.FunctionType):
        parts += [fn.__code__, fn.__defaults__, fn.__kwdefaults__, fn.__globals__]
        for cell in fn.__closure__ or ():
            try:
                parts.append(cell.cell_contents)
            except ValueError:
                parts.append(None)
    return tuple(parts)


def _own_wrapper(module, new, old) -> bool:
    """Whether ``new`` is the library's own wrapper of ``old`` (torch wraps ``torch.manual_seed``
    when ``torch._dynamo`` is first imported): it wraps exactly ``old`` and its code is in the
    same package's files."""
    if not isinstance(new, types.FunctionType) or getattr(new, "__wrapped__", None) is not old:
        return False
    top = sys.modules.get(module.__name__.split(".")[0])
    home = os.path.dirname(getattr(top, "__file__", None) or "") if top else ""
    return bool(home) and os.path.realpath(new.__code__.co_filename).startswith(
        os.path.realpath(home) + os.sep)


class _Fingerprint:
    """Identities of everything the checks rely on, taken before the student's code runs."""

    def __init__(self, module, exercises: dict, classes: list):
        self.modules = {}
        names = sorted(n for n in sys.modules if n == "helpers" or n.startswith("helpers."))
        for name in [*names, *_THIRD_PARTY]:
            mod = sys.modules.get(name)
            if isinstance(mod, types.ModuleType) and not name.startswith("helpers.course.grade"):
                self.modules[name] = (mod, {k: _parts(v) for k, v in vars(mod).items()
                                            if k not in _IGNORED_NAMES})
        self.classes = {f"{c.__module__}.{c.__qualname__}": (c, {k: _parts(v) for k, v
                                                                  in vars(c).items()})
                        for c in classes}
        self.objects = {}
        for name, ex in exercises.items():
            self.objects[name] = (ex, type(ex), dict(vars(ex)))
        self.questions = {}
        for name, ex in exercises.items():
            qs = getattr(ex, "questions", None)
            if isinstance(qs, list):
                self.questions[name] = (qs, list(qs), [copy.deepcopy(vars(q)) for q in qs])

    def changes(self) -> list[str]:
        """What differs now, as readable names (empty: nothing was touched)."""
        out = []
        for name, (mod, before) in self.modules.items():
            now = vars(mod)
            for key, parts in before.items():
                if key not in now:
                    out.append(f"`{name}.{key}` was deleted")
                elif any(a is not b for a, b in zip(_parts(now[key]), parts)) and \
                        not _own_wrapper(mod, now[key], parts[0]):
                    out.append(f"`{name}.{key}` was changed")
        for qual, (cls, before) in self.classes.items():
            now = vars(cls)
            for key in set(before) | set(now):
                if key not in now:
                    out.append(f"`{qual}.{key}` was deleted")
                elif key not in before:
                    out.append(f"`{qual}.{key}` was added")
                elif any(a is not b for a, b in zip(_parts(now[key]), before[key])):
                    out.append(f"`{qual}.{key}` was changed")
        for name, (ex, cls, before) in self.objects.items():
            now = vars(ex)
            if type(ex) is not cls:
                out.append(f"the class of `{name}` was changed")
            for key in set(before) | set(now):
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
        return sorted(set(out))


# ----------------------------------------------------------------------------- judging
_MISSING = object()
_isfunction, _isclass = inspect.isfunction, inspect.isclass     # taken before any notebook runs


def _plain(value):
    """The answer to a question as a plain str / int / float (a subclass could lie about
    equality); anything else as it is (neither judge accepts it)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, numbers.Integral):
        return int.__int__(int(value))
    if isinstance(value, numbers.Real):
        return float.__float__(float(value))
    return value


class _Item:
    """One exercise as captured before the student's code ran."""

    def __init__(self, attr: str, exercise, capture: int, quiz_cls, judges: dict):
        self.attr, self.name, self.var = attr, exercise.name, exercise.var
        self.checker = exercise.checker
        self.capture = capture
        self.is_quiz = isinstance(exercise, quiz_cls)
        self.questions = []
        if self.is_quiz:
            for q in exercise.questions:
                judge = judges.get(type(q))
                if judge is None:
                    raise TypeError(f"{self.name}: no judge for {type(q).__name__}")
                self.questions.append((copy.deepcopy(q), judge))


class _Judge:
    def __init__(self, incorrect, fmt, check_s: float):
        self.incorrect, self.fmt, self.check_s = incorrect, fmt, check_s

    def item(self, item: _Item, answer, where: str) -> dict:
        out = {"item": item.name}
        if answer is _MISSING:
            return {**out, "state": "not attempted", "score": 0.0,
                    "message": f"`{item.var}` is not defined when the notebook checks it "
                               f"({where}): write it in its exercise cell and run that cell."}
        try:
            _arm(self.check_s)
            try:
                if item.is_quiz:
                    return {**out, **self._quiz(item, answer)}
                return {**out, **self._exercise(item, answer)}
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
        except BaseException as err:                       # noqa: BLE001 - whatever it raised
            return {**out, "state": "failed", "score": 0.0,
                    "message": f"checking `{item.var}` raised {type(err).__name__}."}

    def _exercise(self, item: _Item, answer) -> dict:
        if (_isfunction(answer) or _isclass(answer)) and \
                str(getattr(answer, "__module__", "") or "").startswith("helpers."):
            return {"state": "failed", "score": 0.0,
                    "message": f"your `{item.var}` is the course library's own "
                               f"`{answer.__module__}.{answer.__qualname__}`, not code of your "
                               "own: write the exercise's function yourself."}
        try:
            note = item.checker(answer)
        except NotImplementedError:
            return {"state": "not attempted", "score": 0.0,
                    "message": f"`{item.var}` still raises NotImplementedError: replace `# YOUR "
                               "CODE HERE` and the `raise NotImplementedError` line with your "
                               "code."}
        except self.incorrect as err:
            return {"state": "failed", "score": 0.0, "message": _text(err)}
        except (CellTimeout, MemoryError, OutputFlood):
            raise
        except BaseException as err:                       # noqa: BLE001 - the student's code
            return {"state": "failed", "score": 0.0,
                    "message": f"your `{item.var}` raised {type(err).__name__}: {_text(err)}"}
        return {"state": "passed", "score": 1.0, "message": note if isinstance(note, str) else ""}

    def _quiz(self, item: _Item, answers) -> dict:
        if not isinstance(answers, dict):
            return {"state": "failed", "score": 0.0,
                    "message": f"`{item.var}` must be a dict from question number to your answer, "
                               f"e.g. {{1: \"b\", 2: 0.5}}; got {type(answers).__name__}."}
        given = {}
        for key, value in dict.items(answers):
            given[_plain(key)] = _plain(value)
        n = len(item.questions)
        lines, right, detail = [], 0, []
        extra = sorted((str(k) for k in given if k not in range(1, n + 1)))
        for number, (question, judge) in enumerate(item.questions, start=1):
            if number not in given:
                lines.append(f"Q{number}: not answered.")
                detail.append("unanswered")
                continue
            ok, why = judge(question, given[number])
            ok = ok is True
            right += ok
            detail.append("right" if ok else "wrong")
            lines.append(f"Q{number}: {'right' if ok else 'not quite'} "
                         f"({self.fmt(given[number])}). {why}")
        if extra:
            lines.append(f"There is no question {', '.join(extra)}: the questions are numbered "
                         f"1 to {n}.")
        state = "passed" if right == n else ("not attempted" if not given else "failed")
        return {"state": state, "score": right / n, "detail": detail,
                "message": f"{right} of {n} right.\n" + "\n".join(lines)}


def _text(err: BaseException, limit: int = 2000) -> str:
    try:
        text = str(err)
    except BaseException:                                   # noqa: BLE001 - a lying __str__
        text = f"<{type(err).__name__} whose message could not be shown>"
    return text if len(text) <= limit else text[:limit] + " [...]"


# ----------------------------------------------------------------------------- running cells
def _apply_limits(limits: dict) -> None:
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


def _run_cells(shell, plan: dict, items: list, channel: _Channel, deadline: float,
               stdout: _Capped, stderr: _Capped) -> dict:
    limits = plan["limits"]
    answers = {}
    for pos, cell in enumerate(plan["cells"]):
        for item in items:
            if item.capture == pos:
                answers[item.attr] = shell.user_ns.get(item.var, _MISSING)
        index = cell["index"]
        left = deadline - time.monotonic()
        if left <= 0:
            channel.send({"t": "cell", "index": index, "status": "skipped", "seconds": 0.0})
            continue
        channel.send({"t": "cell", "index": index, "status": "started"})
        stdout.count = stderr.count = 0
        sys.stdout, sys.stderr, sys.stdin = stdout, stderr, io.StringIO("")
        t0 = time.monotonic()
        err = None
        timed_by = "cell" if limits["cell_s"] <= left else "notebook"
        try:
            _arm(min(limits["cell_s"], left))
            try:
                result = shell.run_cell(cell["source"], store_history=False, silent=False)
            finally:
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
        channel.send(message)
    for item in items:
        if item.capture == len(plan["cells"]):              # a check cell after the last one
            answers[item.attr] = shell.user_ns.get(item.var, _MISSING)
    return answers


def _netguard_attempts(path: str | None) -> list[str]:
    if not path or not os.path.exists(path):
        return []
    try:
        with open(path, errors="replace") as fh:
            return [line.strip()[:300] for line in fh.read(65536).splitlines() if line.strip()]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    """Run the plan read from standard input (see the module's docstring); the grader's side."""
    parser = argparse.ArgumentParser(description="helpers.course.grade's runner (not for direct use)")
    parser.add_argument("--result-fd", type=int, required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    os.set_inheritable(args.result_fd, False)
    channel = _Channel(args.result_fd)
    # references the final phase uses, taken before any student code exists
    hmac_new, sha256, exit_now = hmac.new, hashlib.sha256, os._exit
    try:
        plan = json.loads(_read_line(0, 256 * 2**20))
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
                     "numpy.testing", "pandas.testing"):
            importlib.import_module(name)
        exercise_cls, quiz_cls = exercises_pkg.Exercise, quiz_mod.Quiz
        judges = {quiz_mod.Choice: quiz_mod.Choice.judge, quiz_mod.Numeric: quiz_mod.Numeric.judge}
        items, by_name = [], {}
        for spec in plan["items"]:
            ex = getattr(module, spec["attr"], None)
            if not isinstance(ex, exercise_cls):
                raise ValueError(f"{plan['module']}.{spec['attr']} is not an exercise")
            items.append(_Item(spec["attr"], ex, int(spec["capture"]), quiz_cls, judges))
            by_name[ex.name] = ex
        classes = [c for m in (exercises_pkg, quiz_mod, module) for c in vars(m).values()
                   if isinstance(c, type) and c.__module__ == m.__name__]
        classes.append(sys.modules["torch"].Tensor)
        judge = _Judge(exercises_pkg.Incorrect, exercises_pkg.fmt, float(limits["check_s"]))
        shell = _make_shell()
        fingerprint = _Fingerprint(module, by_name, classes)
        gc_callbacks, trace, profile = list(gc.callbacks), sys.gettrace(), sys.getprofile()
        out_limit = int(float(limits["output_mib"]) * 2**20)
        stdout, stderr = _Capped(sys.stdout, out_limit), _Capped(sys.stderr, out_limit)
    except Exception as err:                                # noqa: BLE001 - tell the grader
        channel.send({"t": "fatal", "message": f"{type(err).__name__}: {_text(err, 1000)}"})
        sys.stdout.flush()
        return 3
    channel.send({"t": "start", "seconds": round(time.monotonic() - started, 3)})
    deadline = started + float(limits["notebook_s"])
    answers = _run_cells(shell, plan, items, channel, deadline, stdout, stderr)

    # ------------------------------------------------------------------ judging, after the cells
    results = []
    for item in items:
        if item.capture == MISSING_CHECK_CELL:
            results.append({"item": item.name, "state": "errored", "reason": "check cell missing",
                            "score": 0.0,
                            "message": f"the notebook no longer has the cell that runs "
                                       f"`{item.name}.check()`; put it back (copy it from the "
                                       "chapter's notebook) below your answer."})
            continue
        where = f"just before its `{item.name}.check()` cell"
        results.append(judge.item(item, answers.get(item.attr, _MISSING), where))
    signal.setitimer(signal.ITIMER_REAL, 0)
    attempts = _netguard_attempts(os.environ.get("COURSE_NETGUARD_LOG"))
    changed = fingerprint.changes()
    if sys.gettrace() is not trace or sys.getprofile() is not profile:
        changed.append("a trace or profile function was installed (sys.settrace / setprofile)")
    if list(gc.callbacks) != gc_callbacks:
        changed.append("gc.callbacks was changed")
    if changed:                     # no key, no signed results: the grader voids the notebook
        what = "; ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        channel.send({"t": "tampered", "what": what})
        exit_now(5)
    notes = []
    known = {t.ident for t in threading.enumerate()          # tqdm's progress-bar monitor
             if type(t).__module__.split(".")[0] == "tqdm"}
    others = [t for t in sys._current_frames() if t != threading.get_ident() and t not in known]
    if others:
        notes.append(f"{len(others)} Python thread(s) of the notebook were still running when "
                     "the results were signed")

    # ------------------------------------------------------------------ the signed results
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_IGN)
            except (OSError, ValueError, RuntimeError):
                pass
    for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        signal.setitimer(which, 0)
    gc.disable()
    gc.callbacks.clear()
    sys.settrace(None)
    sys.setprofile(None)
    try:
        stdout.flush()
        stderr.flush()
    except BaseException:                                   # noqa: BLE001
        pass
    channel.send({"t": "ready"})
    try:
        key = bytes.fromhex(json.loads(_read_line(0, 4096))["key"])
    except Exception:                                       # noqa: BLE001
        exit_now(4)
    for seq, r in enumerate(results):
        body = json.dumps({**r, "seq": seq}, sort_keys=True, ensure_ascii=True)
        channel.send({"t": "result", "body": body,
                      "mac": hmac_new(key, body.encode(), sha256).hexdigest()})
    body = json.dumps({"count": len(results), "notes": notes, "network": attempts[:20]},
                      sort_keys=True, ensure_ascii=True)
    channel.send({"t": "done", "body": body, "mac": hmac_new(key, body.encode(), sha256).hexdigest()})
    exit_now(0)
    return 0                                                # pragma: no cover - _exit above


if __name__ == "__main__":
    sys.exit(main())
