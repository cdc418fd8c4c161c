"""Grading a class (helpers/course/grade.py): a class of synthetic submissions, built here from
chapter 00's student notebook and its solution, each graded as it should be, in the sandbox:
right and wrong answers, a blank notebook, loops, crashes, the network, reading other students'
work or solutions/, writing outside the scratch folder, patching the checker, printing or
forging a verdict, flooding the output. Two deliberately broken graders (one that believes
printed verdicts, one without the sandbox) fail the same checks.

The submissions keep chapter 00's launch, parameters and setup cells, its exercise, check and
questionnaire cells, and drop the cells that load the language model (a student may delete
cells; the grader runs what is there): every notebook then runs in seconds in the smoke profile.
"""
from __future__ import annotations

import copy
import csv
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers.core.checks import DataError, ParameterError
from helpers.core.config import ROOT
from helpers.course import grade, grade_runner, sandbox

CH = "00_setup_and_tour.ipynb"
# short limits: every cell of these notebooks takes a few seconds, the loops are the point
LIMITS = {"cell_s": 30, "notebook_s": 150, "check_s": 5, "memory_mib": 4096, "output_mib": 1}
UNKILLABLE_LIMITS = {**LIMITS, "notebook_s": 25}

slow = pytest.mark.slow       # the class is graded once per module, about two minutes on 2 cores

COSINE = '''def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a_n = a / a.norm(dim=1, keepdim=True)
    b_n = b / b.norm(dim=1, keepdim=True)
    return a_n @ b_n.T
'''
TOP_K = '''def top_k_items(query_emb: torch.Tensor, item_embs: torch.Tensor, k: int) -> torch.Tensor:
    items = item_embs / item_embs.norm(dim=1, keepdim=True)
    return torch.topk(items @ (query_emb / query_emb.norm()), k).indices
'''
QUIZ_RIGHT = "quiz_answers = {1: 'b', 2: 0.96, 3: 'a', 4: 'b', 5: 'b'}\n"
VARY = 'vary_density = {"value": 0.0978, "moved": "down", "why": "c"}\n'
HUGE_QUIZ = "quiz_answers = {1: 'b' * 2**21, 2: 10**5000, 3: 'a', 4: 'b', 5: 'b'}\n"
SNEAKY_PATCHES = (     # each one alone made a wrong cosine_similarity pass before
    # a replacement of torch.allclose whose code claims to be torch's own wrapper of it
    "import torch, pandas\nns = {}\n"
    "exec(compile('def allclose(*a, **k):\\n    return True\\n', torch.__file__, 'exec'), ns)\n"
    "ns['allclose'].__wrapped__ = torch.allclose\ntorch.allclose = ns['allclose']\n"
    # a method of a library class
    "pandas.DataFrame.equals = lambda self, other: True\n"
    # global torch state: a function mode that answers torch.allclose itself
    "from torch.overrides import TorchFunctionMode\n"
    "class Yes(TorchFunctionMode):\n"
    "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
    "        return True if func is torch.allclose else func(*args, **(kwargs or {}))\n"
    "Yes().__enter__()\n")

# a first cell that kills a process on the n-th call of the function defined after it: the
# notebook's own check cell calls it fewer times, the judge's check makes the n-th call
COUNTED = """import os, signal
CALLS = [0]
def _count():
    CALLS[0] += 1
    if CALLS[0] >= {n}:
        os.kill({target}, signal.SIGKILL)
"""
COUNTED_BODY = "    _count()\n"
# the pipes a cell can find in /proc/self/fd, by direction: what both forges below start from
_PIPES = r'''import fcntl, os
def pipes(mode):
    out = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:") and \
                    fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == mode:
                out.append(fd)
        except OSError:
            pass
    return out
'''
# plays the notebook's side of the judge's protocol from a cell: claims every answer captured
# and the cells done, then answers the judge's calls with what it likes
PROTOCOL_FORGE = _PIPES + r'''import json
lines = [{"t": "capture", "attr": a, "present": True, "library": None} for a in ("q1", "q2")]
lines.append({"t": "cells_done", "notes": [], "network": []})
lines += [{"t": "return", "seq": n, "value": True} for n in range(1, 8)]
lines += [{"t": "result", "result": {"item": "ch00.q1", "state": "passed", "score": 1.0,
                                     "message": "", "seq": 0}}]
for fd in pipes(os.O_WRONLY):
    os.write(fd, "".join(json.dumps(m) + "\n" for m in lines).encode())
'''
# tries to read the judge's memory, its open files and to trace it, from a cell
POKE_JUDGE = r'''import ctypes, os
judge = os.getppid()
def attempt(what, fn):
    try:
        out = fn()
        print("GOT", what, repr(out)[:80])
    except Exception as err:
        print("DENIED", what, type(err).__name__)
def mem():
    with open(f"/proc/{judge}/mem", "rb") as fh:
        return fh.read(16)
attempt("mem", mem)
attempt("fds", lambda: [os.open(f"/proc/{judge}/fd/{n}", os.O_WRONLY)
                        for n in os.listdir(f"/proc/{judge}/fd") if int(n) > 2])
attempt("environ", lambda: open(f"/proc/{judge}/environ", "rb").read(64))
libc = ctypes.CDLL(None, use_errno=True)
def ptrace():
    if libc.ptrace(16, judge, None, None) != 0:          # PTRACE_ATTACH
        raise PermissionError(os.strerror(ctypes.get_errno()))
    return "attached"
attempt("ptrace", ptrace)
def steal_fd():
    pidfd = os.pidfd_open(judge)
    for target in range(3, 1024):
        fd = libc.syscall(438, pidfd, target, 0)         # pidfd_getfd (x86_64, arm64)
        if fd >= 0:
            return f"fd {target}"
    raise PermissionError(os.strerror(ctypes.get_errno()))
attempt("pidfd_getfd", steal_fd)
'''

# ----------------------------------------------------------------------------- building them
def _student_notebook() -> dict:
    """chapters/00 without the cells that load models: launch, parameters, setup, exercises,
    checks, the questionnaire."""
    nb = json.loads((ROOT / "chapters" / CH).read_text())
    keep, after_params = [], False
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code":
            continue
        setup = after_params and "config.setup(" in src
        if {"launch", "parameters", "exercise"} & set(tags) or setup or ".check(" in src \
                or "quiz.show()" in src:
            keep.append(cell)
        after_params = after_params or "parameters" in tags
    nb["cells"] = keep
    return nb


def _src(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _fill(nb: dict, var: str, code: str) -> dict:
    """Put ``code`` in the exercise cell of ``var`` (its stub names it)."""
    for cell in nb["cells"]:
        if "exercise" in cell.get("metadata", {}).get("tags", []) and f"`{var}`" in _src(cell):
            cell["source"] = code
            return nb
    raise AssertionError(f"no exercise cell for {var}")


def _insert(nb: dict, code: str, after: str | None = None, before: str | None = None) -> dict:
    """Insert a code cell after (or before) the first cell whose text contains the marker."""
    new = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
           "source": code, "id": f"added-{len(nb['cells'])}"}
    for i, cell in enumerate(nb["cells"]):
        if (after and after in _src(cell)) or (before and before in _src(cell)):
            nb["cells"].insert(i + 1 if after else i, new)
            return nb
    raise AssertionError(f"no cell with {after or before!r}")


def _answered(q1: str = COSINE, q2: str = TOP_K, quiz: str = QUIZ_RIGHT) -> dict:
    nb = _student_notebook()
    _fill(nb, "cosine_similarity", q1)
    _fill(nb, "top_k_items", q2)
    for var, code in (("DENSITY_EVENTS", 'DENSITY_EVENTS = "purchase"\n'), ("vary_density", VARY)):
        try:
            _fill(nb, var, code)
        except AssertionError:          # a student notebook written before ch00.q3 existed
            _insert(nb, code, after="quiz.show()")
    return _fill(nb, "quiz_answers", quiz)


def _copy_attempt(path: Path) -> str:
    """An exercise cell that takes the answer from someone else's notebook at ``path``."""
    return f'''import json
try:
    cells = json.load(open({str(path)!r}))["cells"]
    code = next("".join(c["source"]) for c in cells if "def cosine_similarity" in "".join(c["source"]))
    exec(code)
    print("COPIED from", {str(path)!r})
except OSError as err:
    print("could not read it:", err)
    def cosine_similarity(a, b):
        raise NotImplementedError
'''


def _class(root: Path, outside: Path) -> dict[str, dict]:
    """name -> notebook, for every synthetic student of the main class."""
    submissions = root / "submissions"
    victim = outside / "victim"
    s = {}
    s["correct"] = _answered()
    s["unnormalised"] = _answered(q1="def cosine_similarity(a, b):\n    return a @ b.T\n")
    s["wrong_kinds"] = _answered(
        q1="def cosine_similarity(a, b):\n    return (a @ b.T).sum(0)\n",
        q2="def top_k_items(q, items, k):\n    return torch.topk(items @ q, k, largest=False).indices\n",
        quiz="quiz_answers = {1: 'b', 2: 24.0, 3: 'a', 4: '<script>alert(1)</script>', 5: 'b'}\n")
    _insert(s["wrong_kinds"], "raise ValueError('<img src=x onerror=alert(1)>')", after="quiz.show()")
    s["blank"] = _student_notebook()
    s["loop_in_answer"] = _answered(q1="def cosine_similarity(a, b):\n    while True:\n        pass\n")
    s["network"] = _insert(_answered(quiz=HUGE_QUIZ), "import socket, urllib.request\n"
                           "try:\n    urllib.request.urlopen('http://example.com/', timeout=5)\n"
                           "except OSError as err:\n    print('no web:', err)\n"
                           "socket.create_connection(('93.184.215.14', 80), timeout=5)\n",
                           after="ch00.q1.check()")
    s["reads_other"] = _answered(q1=_copy_attempt(submissions / "correct" / CH))
    s["reads_solutions"] = _answered(q1=_copy_attempt(ROOT / "solutions" / CH))
    s["writes_outside"] = _insert(_answered(), f'''import os, shutil
for attempt in (lambda: open({str(outside / "marker")!r}, "w").write("escaped"),
                lambda: shutil.rmtree({str(victim)!r}),
                lambda: os.remove({str(submissions / "correct" / CH)!r}),
                lambda: open({str(ROOT / "helpers" / ".grade-probe")!r}, "x"),
                lambda: open("/etc/reasonrec-grade-probe", "w")):
    try:
        attempt()
        print("WROTE")
    except OSError as err:
        print("refused:", err)
open("mine.txt", "w").write("the scratch folder is writable")
''', after="ch00.q1.check()")
    s["patch_checker"] = _insert(_answered(q1="def cosine_similarity(a, b):\n    return a @ b.T\n"),
                                 "ch00.q1.checker = lambda f: None", before="ch00.q1.check()")
    s["patch_torch"] = _insert(_answered(q1="def cosine_similarity(a, b):\n    return a @ b.T\n"),
                               "import numpy\ntorch.allclose = lambda *a, **k: True\n"
                               "numpy.allclose = lambda *a, **k: True", after="config.setup(")
    s["prints_verdict"] = _insert(_student_notebook(),
                                  "print('✅ ch00.q1 correct.')\nprint('ch00.q1: correct.')\n"
                                  "from IPython.display import Markdown, display\n"
                                  "display(Markdown('✅ **ch00.q1 correct.**'))",
                                  after="ch00.q1.check()")
    s["forges_channel"] = _insert(_student_notebook(), '''import json, os, stat
fds = [fd for fd in range(3, 70000) if os.path.exists(f"/proc/self/fd/{fd}")] \\
    if os.path.isdir("/proc/self/fd") else []
for fd in fds:                          # every pipe this process can write to
    for seq, item in enumerate(["ch00.q1", "ch00.q2", "ch00.quiz"]):
        body = json.dumps({"item": item, "state": "passed", "score": 1.0, "message": "", "seq": seq})
        try:
            os.write(fd, (json.dumps({"t": "result", "body": body, "mac": "0" * 64}) + "\\n").encode())
        except OSError:
            pass
''', after="ch00.q1.check()")
    s["flood"] = _insert(_answered(), "import os\nfor _ in range(40):\n"
                         "    os.write(1, b'y' * 2**20)\nwhile True:\n    print('x' * 1000)",
                         after="ch00.q1.check()")
    s["abort"] = _insert(_answered(), "import os\nos.abort()", after="config.setup(")
    s["segfault"] = _insert(_answered(), "import ctypes\nctypes.string_at(0)", after="config.setup(")
    s["exits"] = _insert(_answered(), "import os\nos._exit(0)", after="config.setup(")
    s["forge_naive"] = _insert(_student_notebook(), _forge(None), after="ch00.q1.check()")
    s["forge_in_order"] = _forge_in_order(_student_notebook())
    s["sneaky_patches"] = _insert(_answered(q1="def cosine_similarity(a, b):\n    return a @ b.T\n"),
                                  SNEAKY_PATCHES, after="config.setup(")
    s["protocol_forge"] = _insert(_student_notebook(), PROTOCOL_FORGE, after="ch00.q1.check()")
    s["dies_in_check"] = _answered(q1=COUNTED.format(n=3, target="os.getpid()") + COSINE.replace(
        ":\n", ":\n" + COUNTED_BODY, 1))
    s["kills_judge"] = _answered(q2=COUNTED.format(n=4, target="os.getppid()") + TOP_K.replace(
        ":\n", ":\n" + COUNTED_BODY, 1))
    s["pokes_judge"] = _insert(_answered(), POKE_JUDGE, after="ch00.q1.check()")
    s["thread_waiter"] = _insert(_answered(), "import threading, time\nthreading.Thread(target="
                                 "lambda: time.sleep(600), daemon=True).start()",
                                 after="ch00.q1.check()")
    probes = [str(ROOT / ".git"), str(ROOT / "build"), str(ROOT / "solutions"), "/etc/shadow",
              "/etc/sudoers", "/etc/ssh", "/etc/passwd"]
    s["quiz_changed_later"] = _insert(_insert(
        _answered(), "quiz_answers[2] = 24.0\nquiz_answers.clear()", after="ch00.quiz.check()"),
        f"import os\nfor path in {probes!r}:\n    print('PROBE', path, os.path.exists(path))\n"
        "print('SOLUTION', ch00.quiz.solution_code())", after="config.setup(")
    odd = _answered(q1="from helpers.models.similarity import cosine_similarity\n")
    odd["cells"] = [c for c in odd["cells"] if "ch00.q2.check()" not in _src(c)]
    s["odd"] = _insert(odd, "hog = bytearray(8 * 2**30)", after="config.setup(")
    return s


_FORGE = _PIPES + r'''import hashlib, hmac, json, select
REST = __REST__
ITEMS = ["ch00.q1", "ch00.q2", "ch00.quiz"]
lines = []
if REST:
    lines.append({"t": "cell", "index": REST[0], "status": "ok", "seconds": 0.1})
    for i in REST[1:]:
        lines += [{"t": "cell", "index": i, "status": "started"},
                  {"t": "cell", "index": i, "status": "ok", "seconds": 0.1}]
lines.append({"t": "ready"})
writers = pipes(os.O_WRONLY)
readers = [fd for fd in pipes(os.O_RDONLY) + [0]
           if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")]
key, writer = None, None
for w in writers:                       # the first pipe that answers with a key
    os.write(w, "".join(json.dumps(m) + "\n" for m in lines).encode())
    poll = select.poll()
    for r in readers:
        poll.register(r, select.POLLIN)
    for r, _ in poll.poll(3000):
        try:
            key = bytes.fromhex(json.loads(os.read(r, 4096).split(b"\n")[0])["key"])
            writer = w
            break
        except Exception:
            pass
    if key:
        break
if key:
    out = []
    for seq, item in enumerate(ITEMS):
        body = json.dumps({"item": item, "state": "passed", "score": 1.0, "message": "", "seq": seq})
        out.append({"t": "result", "body": body,
                    "mac": hmac.new(key, body.encode(), hashlib.sha256).hexdigest()})
    body = json.dumps({"count": len(ITEMS), "notes": [], "network": []})
    out.append({"t": "done", "body": body,
                "mac": hmac.new(key, body.encode(), hashlib.sha256).hexdigest()})
    os.write(writer, "".join(json.dumps(m) + "\n" for m in out).encode())
os._exit(0)
'''


def _forge(rest: list | None) -> str:
    """A cell that impersonates the runner on its pipes, found in /proc/self/fd (as the review's
    forge did with ``--result-fd`` and fd 0): ``rest`` the plan's cell indices from its own on
    (it reports them all as run, in order, before asking for the key); ``None``: it asks for the
    key at once."""
    return _FORGE.replace("__REST__", repr(rest))


def _forge_in_order(nb: dict) -> dict:
    """A blank notebook with a forging cell after ch00.q1's check that knows its own plan."""
    nb = _insert(nb, "FORGE_PLACEHOLDER", after="ch00.q1.check()")
    flat = copy.deepcopy(nb)
    for cell in flat["cells"]:
        cell["source"] = _src(cell)
    plan = grade.notebook_plan(flat, CH, grade.load_config().limits)
    pos = next(p for p, c in enumerate(plan["cells"]) if c["source"] == "FORGE_PLACEHOLDER")
    rest = [c["index"] for c in plan["cells"][pos:]]
    for cell in nb["cells"]:
        if _src(cell) == "FORGE_PLACEHOLDER":
            cell["source"] = _forge(rest)
    return nb


def _write_class(folder: Path, notebooks: dict[str, dict]) -> Path:
    for student, nb in notebooks.items():
        (folder / student).mkdir(parents=True, exist_ok=True)
        (folder / student / CH).write_text(json.dumps(nb))
    return folder


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The main class graded once in the sandbox (two at a time); beside it, one notebook whose
    loop swallows every time limit, graded with a short notebook limit."""
    if sandbox.available() is not None:
        pytest.skip(f"no sandbox here: {sandbox.available()}")
    root = tmp_path_factory.mktemp("grading")
    outside = root / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "keep.txt").write_text("keep me")
    _write_class(root / "submissions", _class(root, outside))
    (root / "submissions" / "notes.txt").write_text("not a student")
    (root / "submissions" / "correct" / "draft.ipynb").write_text("{}")
    unkillable = _insert(_answered(), "import time\nwhile True:\n    try:\n        time.sleep(1000)\n"
                         "    except BaseException:\n        pass", after="ch00.q1.check()")
    _write_class(root / "unkillable", {"sleeper": unkillable})
    side = {}
    thread = threading.Thread(target=lambda: side.update(book=grade.grade(
        root / "unkillable", root / "out-unkillable", profile="smoke", limits=UNKILLABLE_LIMITS,
        progress=False)))
    thread.start()
    book = grade.grade(root / "submissions", root / "out", profile="smoke", jobs=2,
                       limits=LIMITS, progress=False)
    thread.join()
    return {"book": book, "root": root, "outside": outside, "out": root / "out",
            "unkillable": side["book"]}


def _items(book, student: str) -> dict[str, dict]:
    return {it["item"]: it for it in book.result(student, CH).items}


ALL_PASSED = {"ch00.q1": "passed", "ch00.q2": "passed", "ch00.q3": "passed", "ch00.quiz": "passed"}


def _states(book, student: str) -> dict[str, str]:
    return {name: it["state"] for name, it in _items(book, student).items()}


# ----------------------------------------------------------------------------- the checks
def check_copy_failed(book, student: str) -> None:
    """A notebook that took its answer from a file it must not see did not pass with it."""
    it = _items(book, student)["ch00.q1"]
    assert it["state"] == "not attempted", (student, it)
    assert "COPIED" not in book.result(student, CH).output


def check_forged_verdict_ignored(states: dict[str, str]) -> None:
    """A notebook that only printed a verdict did not pass."""
    assert states["ch00.q1"] == "not attempted", states


@slow
def test_a_correct_notebook_gets_full_marks(graded):
    book = graded["book"]
    assert _states(book, "correct") == {"ch00.q1": "passed", "ch00.q2": "passed",
                                        "ch00.q3": "passed", "ch00.quiz": "passed"}
    assert book.points("correct") == {"ch00.q1": 1, "ch00.q2": 1, "ch00.q3": 1, "ch00.quiz": 1}
    assert "matches torch.nn.functional.cosine_similarity" in _items(book, "correct")["ch00.q1"]["message"]
    assert book.result("correct", CH).cells == []


@slow
def test_each_kind_of_wrong_answer_fails_with_the_checkers_message(graded):
    book = graded["book"]
    unnormalised = _items(book, "unnormalised")["ch00.q1"]
    assert unnormalised["state"] == "failed" and "lengths" in unnormalised["message"]
    wrong = _items(book, "wrong_kinds")
    assert wrong["ch00.q1"]["state"] == "failed" and "shape" in wrong["ch00.q1"]["message"]
    assert wrong["ch00.q2"]["state"] == "failed" and "best first" in wrong["ch00.q2"]["message"]
    quiz = wrong["ch00.quiz"]                  # 3 of 5 right: 0.6 of its point
    assert quiz["state"] == "failed" and quiz["detail"] == ["right", "wrong", "right", "wrong", "right"]
    assert book.points("wrong_kinds")["ch00.quiz"] == pytest.approx(0.6)
    assert "24 is the dot product" in quiz["message"]


@slow
def test_an_untouched_notebook_is_not_attempted(graded):
    book = graded["book"]
    assert set(_states(book, "blank").values()) == {"not attempted"}
    assert sum(book.points("blank").values()) == 0
    assert "NotImplementedError" in _items(book, "blank")["ch00.q1"]["message"]


@slow
def test_an_endless_loop_times_out_and_grading_goes_on(graded):
    book = graded["book"]
    items = _items(book, "loop_in_answer")
    assert items["ch00.q1"]["state"] == "errored" and items["ch00.q1"]["reason"] == "timed out"
    assert items["ch00.q2"]["state"] == "passed" and items["ch00.quiz"]["state"] == "passed"
    cells = book.result("loop_in_answer", CH).cells
    assert [c["status"] for c in cells] == ["timed out"]          # the notebook's own check cell
    assert "ch00.q1.check()" in cells[0]["first_line"]


@slow
def test_a_loop_that_swallows_the_time_limits_is_stopped(graded):
    result = graded["unkillable"].result("sleeper", CH)
    assert {it["reason"] for it in result.items} == {"timed out"}
    assert "ran past its limit" in result.items[0]["message"]
    budget = UNKILLABLE_LIMITS["notebook_s"] + 3 * UNKILLABLE_LIMITS["check_s"] + grade.GRACE_S
    assert budget - 5 < result.seconds < budget + 20


@pytest.mark.parametrize("student,signal_name", [("abort", "SIGABRT"), ("segfault", "SIGSEGV"),
                                                 ("exits", "exit code 0")])
@slow
def test_a_crashed_kernel_is_recorded(graded, student, signal_name):
    items = _items(graded["book"], student)
    assert {it["reason"] for it in items.values()} == {"crashed"}
    message = items["ch00.q1"]["message"]
    assert signal_name in message and "in cell" in message, message


@slow
def test_the_network_is_unreachable_and_the_attempt_is_recorded(graded):
    book = graded["book"]
    result = book.result("network", CH)
    assert _states(book, "network")["ch00.q1"] == "passed"       # graded on its merits
    assert any("unreachable" in c["error"].lower() for c in result.cells), result.cells
    assert any("93.184.215.14" in line for line in result.network), result.network


@slow
def test_other_students_work_and_the_solutions_are_invisible(graded):
    for student in ("reads_other", "reads_solutions"):
        check_copy_failed(graded["book"], student)
        assert "could not read it" in graded["book"].result(student, CH).output


@slow
def test_nothing_outside_the_scratch_folder_can_be_written_or_deleted(graded):
    book, outside = graded["book"], graded["outside"]
    output = book.result("writes_outside", CH).output
    assert "WROTE" not in output and output.count("refused:") == 5
    assert not (outside / "marker").exists() and not (ROOT / "helpers" / ".grade-probe").exists()
    assert (outside / "victim" / "keep.txt").read_text() == "keep me"
    assert (graded["root"] / "submissions" / "correct" / CH).exists()
    assert _states(book, "writes_outside")["ch00.q1"] == "passed"


@pytest.mark.parametrize("student,changed", [("patch_checker", "ch00.q1.checker"),
                                             ("patch_torch", "torch.allclose")])
@slow
def test_patching_the_checking_code_changes_nothing_and_is_listed(graded, student, changed):
    """The checks run in the judge's process, so a patch in the notebook's process reaches no
    checker: the wrong answer fails on its merits, the right ones pass, and the patch is
    named for review (it used to void the notebook; now it cannot matter)."""
    items = _items(graded["book"], student)
    assert items["ch00.q1"]["state"] == "failed" and "lengths" in items["ch00.q1"]["message"]
    assert items["ch00.q2"]["state"] == "passed" and items["ch00.quiz"]["state"] == "passed"
    note = " ".join(graded["book"].result(student, CH).notes)
    assert "for review" in note and changed in note, note


@slow
def test_a_printed_verdict_is_not_a_result(graded):
    book = graded["book"]
    assert "✅ ch00.q1 correct." in book.result("prints_verdict", CH).output
    check_forged_verdict_ignored(_states(book, "prints_verdict"))


@slow
def test_lines_forged_on_the_result_channel_void_the_notebook(graded):
    items = _items(graded["book"], "forges_channel")
    assert {it["state"] for it in items.values()} == {"errored"}
    assert "result channel" in items["ch00.q1"]["message"]


@slow
def test_a_cell_that_asks_for_the_key_voids_the_notebook(graded):
    """The review's forge (find the result pipe, say "ready", read the key, sign full marks,
    exit), which gave a blank notebook full marks: the grader sends no key before every planned
    cell has run."""
    result = graded["book"].result("forge_naive", CH)
    assert {it["reason"] for it in result.items} == {"tampering"}, result.items
    assert "'ready' message where none belongs" in result.items[0]["message"]
    assert sum(graded["book"].points("forge_naive").values()) == 0
    assert any("/proc/self/fd" in r for r in result.review)


@slow
def test_a_forger_who_plays_the_runners_part_changes_no_result(graded):
    """The in-process forge that the old runner could only list for review (report every
    remaining cell in the plan's order, ask for the key, sign full marks): the notebook's
    process holds no channel on which the grader takes results, so its blank notebook scores
    nothing. It is still named for review, with the runner's alert."""
    result = graded["book"].result("forge_in_order", CH)
    assert not any(it["state"] == "passed" for it in result.items), result.items
    assert sum(graded["book"].points("forge_in_order").values()) == 0
    assert any(r.startswith("alert from the runner") for r in result.review), result.review
    assert {"/proc/self (3x)", "hmac (3x)", "_exit (1x)"} <= set(result.review)
    summary = (graded["out"] / "summary.md").read_text()
    review = summary.split("## To review by hand", 1)[1].split("\n## ", 1)[0]
    assert "forge\\_in\\_order" in review and "forge\\_naive" in review
    assert "correct/" not in review and "blank/" not in review
    assert "instructor's review" in (graded["out"] / "feedback" / "forge_in_order.html").read_text()


@slow
def test_a_cell_that_plays_the_notebooks_side_of_the_judge_gains_nothing(graded):
    """A blank notebook whose cell speaks the judge's own protocol (its answers captured, cells
    done, 'True' as the reply to every call, a 'passed' result line): the judge's checkers get
    only values, and a value is not a verdict. (Answers to a questionnaire sent this way would
    count: they are what the student chose to answer, as if written in `quiz_answers`.)"""
    items = _items(graded["book"], "protocol_forge")
    assert not any(it["state"] == "passed" for it in items.values()), items
    assert sum(graded["book"].points("protocol_forge").values()) == 0


@slow
def test_the_notebook_dying_or_killing_the_judge_mid_check_errors_only_that_notebook(graded):
    """A function that kills its own process when the judge calls it: that exercise and the
    next errored, the questionnaire (already captured) scored. One that kills the judge: the
    whole notebook errored (crashed). The rest of the class is graded as usual."""
    items = _items(graded["book"], "dies_in_check")
    assert items["ch00.q1"]["state"] == "errored" and items["ch00.q1"]["reason"] == "crashed"
    assert "SIGKILL" in items["ch00.q1"]["message"], items
    assert items["ch00.q2"]["state"] == "errored" and items["ch00.quiz"]["state"] == "passed"
    killer = _items(graded["book"], "kills_judge")
    assert {it["reason"] for it in killer.values()} == {"crashed"}, killer
    assert _states(graded["book"], "correct")["ch00.q2"] == "passed"


@slow
def test_the_notebook_cannot_read_or_trace_the_judge(graded):
    """The judge's process is not dumpable and the notebook's has no capability: its memory,
    open files (listed by number in /proc, never opened) and environment are unreadable,
    ptrace and pidfd_getfd are refused."""
    result = graded["book"].result("pokes_judge", CH)
    for what in ("mem", "fds", "environ", "ptrace", "pidfd_getfd"):
        assert f"DENIED {what}" in result.output, result.output[-3000:]
    assert "GOT" not in result.output
    assert _states(graded["book"], "pokes_judge") == ALL_PASSED


@slow
def test_sneakier_patches_change_nothing_and_are_named(graded):
    """A torch.allclose replacement whose code claims torch's file and wraps the original, a
    patched method of a library class, a TorchFunctionMode left active: the wrong answer still
    fails (the judge's process has none of them), and each is named for review."""
    book = graded["book"]
    assert _items(book, "sneaky_patches")["ch00.q1"]["state"] == "failed"
    note = " ".join(book.result("sneaky_patches", CH).notes)
    for what in ("`torch.allclose` was changed", "`pandas.DataFrame.equals` was added",
                 "function or dispatch mode"):
        assert what in note, note


@slow
def test_a_thread_left_running_by_the_notebook_is_named(graded):
    """A thread could read the old runner's signing key; the judge has none, and the thread
    cannot reach it: the notebook is graded, the thread named for review."""
    assert _states(graded["book"], "thread_waiter") == ALL_PASSED
    assert any("thread started by the notebook" in n
               for n in graded["book"].result("thread_waiter", CH).notes)


@slow
def test_an_answer_is_taken_as_it_was_at_its_check_cell(graded):
    """A later cell that changes ``quiz_answers`` does not change the grade (a deep copy is taken
    just before the check cell)."""
    assert _states(graded["book"], "quiz_changed_later")["ch00.quiz"] == "passed"


@slow
def test_what_the_jail_shows_and_hides(graded):
    """.git, build/ and solutions/ do not exist in the jail, nor /etc's root-only files (only an
    allow-list of /etc is shown); the questionnaires' answer keys do (INSTRUCTORS.md: the
    questionnaire scores are for self-study)."""
    output = graded["book"].result("quiz_changed_later", CH).output
    for path in (ROOT / ".git", ROOT / "build", ROOT / "solutions", "/etc/shadow", "/etc/sudoers",
                 "/etc/ssh"):
        assert f"PROBE {path} False" in output, output[-3000:]
    assert "PROBE /etc/passwd True" in output
    assert "SOLUTION quiz_answers = {1: 'b'" in output


@slow
def test_a_huge_answer_is_judged_not_called_tampering(graded):
    quiz = _items(graded["book"], "network")["ch00.quiz"]
    assert quiz["state"] == "failed" and quiz["detail"][:2] == ["wrong", "wrong"], quiz
    assert len(quiz["message"]) < 6000


@slow
def test_an_output_flood_is_stopped_and_grading_goes_on(graded):
    result = graded["book"].result("flood", CH)
    assert [c["status"] for c in result.cells] == ["output flood"]
    assert _states(graded["book"], "flood") == ALL_PASSED
    assert len(result.output) < 300_000 and "bytes not kept" in result.output


@slow
def test_memory_a_library_answer_and_a_deleted_check_cell(graded):
    book = graded["book"]
    items = _items(book, "odd")
    assert items["ch00.q1"]["state"] == "failed" and "library's own" in items["ch00.q1"]["message"]
    assert items["ch00.q2"]["reason"] == "check cell missing"
    assert items["ch00.quiz"]["state"] == "passed"
    assert [c["status"] for c in book.result("odd", CH).cells] == ["memory"]


@slow
def test_the_gradebook_summary_and_feedback(graded):
    book, out = graded["book"], graded["out"]
    with open(out / "gradebook.csv") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(book.students) and len(rows) == 27
    assert rows["correct"]["total"] == "4" and rows["correct"]["max"] == "4"
    assert rows["wrong_kinds"]["ch00.quiz"] == "0.6"
    summary = (out / "summary.md").read_text()
    assert "| `ch00.q1` |" in summary and "lengths" in summary
    assert "notes.txt" in summary and "draft.ipynb" in summary      # ignored, and said so
    page = (out / "feedback" / "wrong_kinds.html").read_text()
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x" in page
    assert "Content-Security-Policy" in page
    assert (out / "logs" / "flood" / "00_setup_and_tour.log").stat().st_size < 300_000


# ----------------------------------------------------------------------------- broken graders
def _printed_verdicts(output: str) -> dict[str, str]:
    """A broken grader: believes the verdicts the notebook printed."""
    states = {"ch00.q1": "not attempted", "ch00.q2": "not attempted", "ch00.quiz": "not attempted"}
    for name in states:
        if re.search(rf"✅ \**{re.escape(name)} correct", output):
            states[name] = "passed"
    return states


@slow
def test_a_grader_that_believes_printed_verdicts_fails_the_check(graded, monkeypatch):
    """The grader itself, run on the notebook, with its result taken from what was printed."""
    printed = {}

    class Believing(grade._Output):
        def add(self, data):
            super().add(data)
            printed["text"] = self.text()

    def believe(session):
        return [{"item": name, "state": state, "score": float(state == "passed"),
                 "message": "", "reason": ""}
                for name, state in _printed_verdicts(printed.get("text", "")).items()]
    monkeypatch.setattr(grade, "_Output", Believing)
    monkeypatch.setattr(grade._Session, "items", believe)
    path = graded["root"] / "submissions" / "prints_verdict" / CH
    result = grade.grade_notebook(path, CH, grade.load_config(limits=LIMITS), student="x",
                                  profile="smoke", sandboxed=False)
    states = {it["item"]: it["state"] for it in result.items}
    assert states["ch00.q1"] == "passed"                  # the broken grader believed it
    with pytest.raises(AssertionError):
        check_forged_verdict_ignored(states)


@slow
def test_a_grader_without_the_sandbox_fails_the_check(graded, tmp_path):
    """The same two notebooks, graded with no sandbox (what --no-sandbox does): they copy."""
    src = graded["root"] / "submissions"
    folder = tmp_path / "class"
    for student in ("reads_other", "reads_solutions"):
        (folder / student).mkdir(parents=True)
        (folder / student / CH).write_bytes((src / student / CH).read_bytes())
    book = grade.grade(folder, tmp_path / "out", profile="smoke", jobs=2, limits=LIMITS,
                       sandboxed=False, progress=False)
    for student in ("reads_other", "reads_solutions"):
        assert _states(book, student)["ch00.q1"] == "passed"
        with pytest.raises(AssertionError):
            check_copy_failed(book, student)


# ----------------------------------------------------------------------------- bad input
def test_the_submissions_folder_is_checked(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        grade.find_submissions(tmp_path / "missing")
    with pytest.raises(ParameterError, match="holds no student folder"):
        grade.find_submissions(tmp_path)
    (tmp_path / "bad name").mkdir()
    with pytest.raises(DataError, match="not safe as file names"):
        grade.find_submissions(tmp_path)
    (tmp_path / "Ann").mkdir()
    (tmp_path / "ann").mkdir()
    with pytest.raises(DataError, match="differ only in case"):
        grade.find_submissions(tmp_path)
    (tmp_path / "bob").mkdir()                  # the others are graded, these listed
    subs, ignored = grade.find_submissions(tmp_path)
    assert [s.student for s in subs] == ["bob"]
    why = dict(ignored)
    assert "not safe" in why["bad name"] and "only in case" in why["Ann"] + why["ann"]
    for name in ("bad name", "Ann", "bob"):
        (tmp_path / name).rmdir()
    (tmp_path / "ann" / "03_self_attention (1).ipynb").write_text("{}")
    (tmp_path / "ann" / "notes.pdf").write_text("")
    (tmp_path / "ann" / CH).symlink_to(ROOT / "solutions" / CH)
    (tmp_path / "link").symlink_to(tmp_path / "ann")
    subs, ignored = grade.find_submissions(tmp_path)
    assert [s.student for s in subs] == ["ann"] and subs[0].notebooks == {}
    why = dict(subs[0].ignored)
    assert "rename it 03_self_attention.ipynb" in why["ann/03_self_attention (1).ipynb"]
    assert "symbolic link" in why[f"ann/{CH}"] and "not a notebook" in why["ann/notes.pdf"]
    assert dict(ignored)["link"].startswith("a symbolic link")


def test_a_bad_file_is_an_errored_notebook_not_a_crash(tmp_path):
    cfg = grade.load_config(limits={"max_notebook_mib": 0.001})
    cases = {"garbage.ipynb": b"{not json", "old.ipynb": b'{"nbformat": 3, "cells": []}',
             "big.ipynb": json.dumps(_student_notebook()).encode()}
    expected = {"garbage.ipynb": "not JSON", "old.ipynb": "format 4", "big.ipynb": "over the"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        small = cfg if name == "big.ipynb" else grade.load_config()
        result = grade.grade_notebook(tmp_path / name, CH, small, sandboxed=False)
        assert {it["reason"] for it in result.items} == {"invalid notebook"}
        assert expected[name] in result.items[0]["message"]


def test_the_config_is_checked(tmp_path):
    bad = tmp_path / "g.toml"
    bad.write_text('[points.items]\n"ch00.q8" = 2\n')
    with pytest.raises(ParameterError, match="did you mean 'ch0"):
        grade.load_config(bad)
    bad.write_text("[points]\nexercise = -1\n")
    with pytest.raises(ParameterError, match=">= 0"):
        grade.load_config(bad)
    with pytest.raises(ParameterError, match="unknown limit 'cells'"):
        grade.load_config(limits={"cells": 3})
    cfg = grade.load_config()
    assert cfg.points("ch00.quiz", is_quiz=True) == 1 and cfg.limits["check_s"] > 0
    with pytest.raises(ParameterError, match="profile"):
        grade.grade(tmp_path, profile="full")


def test_without_a_sandbox_grading_refuses_unless_told(tmp_path, monkeypatch):
    _write_class(tmp_path / "class", {"ann": _student_notebook()})
    monkeypatch.setattr(sandbox, "available", lambda: "no namespaces on this test machine.")
    with pytest.raises(RuntimeError, match="--no-sandbox"):
        grade.grade(tmp_path / "class", tmp_path / "out", profile="smoke", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_output_folder_is_checked(tmp_path):
    _write_class(tmp_path / "class", {"ann": _student_notebook()})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("")
    with pytest.raises(ParameterError, match="not a grades folder"):
        grade.grade(tmp_path / "class", tmp_path / "mine", profile="smoke", progress=False)
    with pytest.raises(ParameterError, match="inside the submissions folder"):
        grade.grade(tmp_path / "class", tmp_path / "class" / "out", progress=False)
    with pytest.raises(ParameterError, match="shows to every notebook"):
        grade.grade(tmp_path / "class", ROOT / "helpers" / "grades-out", progress=False)


def _book(results: list, students: list, ignored=()) -> grade.Gradebook:
    return grade.Gradebook(results, students, [CH], list(ignored), grade.load_config(), "smoke",
                           True)


def _result(student: str, **states) -> grade.NotebookResult:
    items = []
    for name, _ in grade.chapter_items()[CH]:
        state, message, detail = states.get(name.split(".")[1], ("passed", "", None))
        items.append({"item": name, "state": state, "score": float(state == "passed"),
                      "message": message, "reason": "",
                      **({"detail": detail} if detail else {})})
    return grade.NotebookResult(student, CH, items)


def test_csv_fields_never_become_formulas(tmp_path):
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert grade._cell(start + "1+2") == "'" + start + "1+2"
    assert grade._cell("3 of 5 right.") == "3 of 5 right."
    book = _book([_result("ann", q1=("failed", '=HYPERLINK("http://x")', None),
                          q2=("failed", "-2+3", None), quiz=("failed", "@SUM(A1)", None))], ["ann"])
    grade.write_outputs(book, tmp_path)
    raw = (tmp_path / "results.csv").read_text()
    assert "'=HYPERLINK" in raw and "'-2+3" in raw and "'@SUM" in raw
    with open(tmp_path / "results.csv") as fh:
        assert all(v[:1] not in "=+-@\t\r" or not v for row in csv.reader(fh) for v in row)


def test_a_lone_surrogate_from_a_submission_does_not_stop_the_classs_outputs(tmp_path):
    """A review found that one message or file name with a lone surrogate ("\\ud800", from a
    notebook's exception or a file name's bad byte) made the grader fail to write summary.md,
    the feedback pages and the logs of the whole class: every text file is now written with
    its unencodable characters escaped."""
    book = _book([_result("ann", q1=("failed", "your `f` raised ValueError: \ud800 boom", None)),
                  _result("bob")], ["ann", "bob"], ignored=[("bob/notes\udcff.txt", "not a notebook")])
    book.results[0].output = "printed \ud800"
    grade.write_outputs(book, tmp_path)
    assert "\\ud800 boom" in (tmp_path / "results.csv").read_text(encoding="utf-8")
    assert (tmp_path / "summary.md").stat().st_size > 0
    assert {p.name for p in (tmp_path / "feedback").iterdir()} == {"ann.html", "bob.html"}
    assert "\\ud800" in (tmp_path / "logs" / "ann" / f"{Path(CH).stem}.log").read_text()


def test_summary_escapes_markdown_and_counts_only_answered_questions():
    book = _book([_result("ann", quiz=("failed", "", ["right", "unanswered", "wrong", "right", "right"])),
                  _result("bob", quiz=("failed", "", ["wrong", "unanswered", "unanswered", "right", "right"]))],
                 ["ann", "bob"], ignored=[("ann/[click](http://evil)", "![x](http://evil/p.png)")])
    summary = grade.summary_markdown(book)
    assert "](http" not in summary and "![" not in summary
    assert "\\[click\\]\\(http://evil\\)" in summary
    line = next(x for x in summary.splitlines() if "share right per question" in x)
    assert "Q1 50% of 2" in line and "Q3 0% of 1" in line and "Q2" not in line


def test_a_quiz_is_scored_by_the_grader_and_its_messages_are_capped():
    from helpers.course.exercises import ch00
    out = grade.score_quiz(ch00.quiz, {"pairs": [[1, "b" * 5000], [2, 0.96], [9, "a"]]})
    assert out["detail"] == ["wrong", "right", "unanswered", "unanswered", "unanswered"]
    assert len(out["message"]) < 3000 and "no question 9" in out["message"]
    assert grade.score_quiz(ch00.quiz, {"type": "list"})["state"] == "failed"
    assert grade.score_quiz(ch00.quiz, {"pairs": [[1, {"type": "list"}]]})["detail"][0] == "wrong"


def _session(cells=(5, 0, 6)):
    return grade._Session(["ch00.q1", "ch00.q2", "ch00.quiz"], list(cells))


def _feed(session, *messages):
    session.feed(b"".join(json.dumps(m).encode() + b"\n" for m in messages))


def test_results_are_read_only_after_judging_and_a_violation_voids():
    """The judge's messages: the cells' progress in the plan's order, then ``judging``, then
    the results; a result line before ``judging`` or a violation the judge forwards (a line a
    cell wrote on its channel) voids the notebook."""
    cells = [{"t": "cell", "index": i, "status": s} for i in (5, 0, 6) for s in ("started", "ok")]
    results = [{"t": "result", "result": {"item": name, "state": "passed", "score": 1.0,
                                          "message": "", "seq": seq}}
               for seq, name in enumerate(["ch00.q1", "ch00.q2", "ch00.quiz"])]
    done = {"t": "done", "count": 3, "notes": [], "network": []}
    ok = _session()
    _feed(ok, {"t": "start"}, *cells, {"t": "judging"}, *results, done)
    assert ok.violation_count == 0 and [r["state"] for r in ok.items()] == ["passed"] * 3
    early = _session()
    _feed(early, {"t": "start"}, *cells[:2], *results, done)
    assert early.violation_count > 0 and early.items() is None
    forged = _session()
    _feed(forged, {"t": "start"}, *cells[:2],
          {"t": "violation", "what": "a 'ready' message where none belongs"}, *cells[2:],
          {"t": "judging"}, *results, done)
    assert forged.items() is None and "'ready' message" in forged.violations[0]
    wrong_order = _session()
    _feed(wrong_order, {"t": "start"}, *cells[2:4], *cells[:2])
    assert wrong_order.violation_count > 0


def test_a_runner_that_closes_its_pipes_but_does_not_end_is_stopped(tmp_path, monkeypatch):
    """The grader's last wait: a runner that closed its output and result pipe but lingers is
    killed after LINGER_S and its notebook recorded as timed out."""
    lingering = ("import os, time\nos.close(int(os.environ['COURSE_GRADE_FDS']))\n"
                 "os.close(1)\nos.close(2)\ntime.sleep(600)\n")
    monkeypatch.setattr(grade, "RUNNER_ARGS", ("-c", lingering))
    monkeypatch.setattr(grade, "LINGER_S", 1)
    path = tmp_path / CH
    path.write_text(json.dumps(_student_notebook()))
    result = grade.grade_notebook(path, CH, grade.load_config(limits=LIMITS), sandboxed=False)
    assert {it["reason"] for it in result.items} == {"timed out"}, result.items
    assert "did not end" in result.items[0]["message"] and result.seconds < 20


def test_a_flood_of_fake_cell_lines_is_counted_to_the_end():
    session = _session()
    fake = [{"t": "cell", "index": 7, "status": "ok"}] * 6000
    _feed(session, {"t": "start"}, *fake, {"t": "bogus"})
    assert session.lines == 6002 and session.violation_count == 6001
    assert len(session.violations) <= 20 and session.items() is None


def test_the_runners_fingerprint_sees_lazy_modules_module_data_and_torch_modes():
    import types

    import pandas
    import torch
    from torch.overrides import TorchFunctionMode

    from helpers.course.exercises import ch05
    lazy = types.ModuleType("reasonrec_lazy_probe")
    lazy.score = lambda: 1
    sys.modules[lazy.__name__] = lazy
    try:
        fp = grade_runner._Fingerprint(None, {}, [], {lazy.__name__: (lazy, ["score"])})
        assert fp.changes() == []
        lazy.score = lambda: 2
        facts = dict(ch05._FACTS)
        ch05._FACTS["colour"] = "blue"
        with TorchFunctionMode():
            changes = "; ".join(fp.changes())
        assert "reasonrec_lazy_probe.score" in changes and "ch05._FACTS" in changes
        assert "function or dispatch mode" in changes
        assert ch05._FACTS == facts                 # put back before judging
        sys.modules[lazy.__name__] = types.ModuleType(lazy.__name__)
        assert "sys.modules['reasonrec_lazy_probe']" in "; ".join(fp.changes())
        assert torch.allclose(torch.ones(1), torch.ones(1))
        # a library's new method of its own (transformers adds Module.smart_apply) is not a
        # patch; a method that shadows an inherited one (DataFrame.equals) is
        fp = grade_runner._Fingerprint(None, {}, [], {})
        torch.nn.Module.reasonrec_probe = lambda self: 1
        pandas.DataFrame.equals = lambda self, other: True
        changes = "; ".join(fp.changes())
        assert "DataFrame.equals` was added" in changes and "reasonrec_probe" not in changes
    finally:
        sys.modules.pop(lazy.__name__, None)
        for cls, name in ((torch.nn.Module, "reasonrec_probe"), (pandas.DataFrame, "equals")):
            if name in vars(cls):
                delattr(cls, name)


def test_a_plan_prefers_the_last_plain_check_cell_and_says_so():
    nb = grade.read_notebook(ROOT / "chapters" / CH)
    for cell in nb["cells"]:
        if cell.get("id") and "ch00.q1.check()" in cell["source"]:
            cell["id"] = "changed-id"
    pos = next(i for i, c in enumerate(nb["cells"]) if "ch00.q1.check()" in c["source"])
    draft = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": "ch00.q1.check()  # a draft, before the answer", "id": "draft"}
    nb["cells"].insert(pos - 1, draft)
    plan = grade.notebook_plan(nb, CH, grade.load_config().limits)
    item = next(i for i in plan["items"] if i["name"] == "ch00.q1")
    assert plan["cells"][item["capture"]]["source"].strip() == "ch00.q1.check()"
    assert any("several cells call" in n for n in plan["notes"])
    assert ["sklearn.metrics", ["ndcg_score"]] in grade.lazy_imports("helpers.course.exercises.ch02")


def test_fractional_sizes_and_counts_are_refused():
    for key in ("scratch_mib", "memory_mib", "tmp_mib", "nproc"):
        with pytest.raises(ParameterError, match="whole number"):
            grade.load_config(limits={key: 0.5})
    assert grade.load_config(limits={"output_mib": 0.5}).limits["output_mib"] == 0.5


def test_a_fifo_or_an_odd_folder_name_does_not_stop_the_class(tmp_path):
    (tmp_path / "ann").mkdir()
    os.mkfifo(tmp_path / "ann" / CH)
    (tmp_path / "zoë").mkdir()
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / CH).write_text("{}")
    subs, ignored = grade.find_submissions(tmp_path)
    assert [s.student for s in subs] == ["ann", "bob"] and subs[0].notebooks == {}
    assert "not a regular file" in dict(subs[0].ignored)[f"ann/{CH}"]
    assert any("zo" in p and "not safe" in why for p, why in ignored)
    done = {}
    reader = threading.Thread(target=lambda: done.update(
        err=pytest.raises(DataError, grade.read_notebook, tmp_path / "ann" / CH)))
    reader.start()
    reader.join(10)
    assert "err" in done, "read_notebook hung on a FIFO"


def test_one_notebook_that_breaks_the_grader_does_not_lose_the_class(tmp_path, monkeypatch):
    _write_class(tmp_path / "class", {"ann": _student_notebook(), "bob": _student_notebook(),
                                      "cat": _student_notebook()})

    def fake(path, notebook, cfg, *, student="", **kwargs):
        if student == "bob":
            raise RuntimeError("a grader bug")
        return _result(student)
    monkeypatch.setattr(grade, "grade_notebook", fake)
    book = grade.grade(tmp_path / "class", tmp_path / "out", profile="smoke", sandboxed=False,
                       progress=False)
    assert {it["reason"] for it in book.result("bob", CH).items} == {"grader"}
    assert "a grader bug" in book.result("bob", CH).items[0]["message"]
    assert book.points("ann")["ch00.q1"] == 1

    def interrupted(path, notebook, cfg, *, student="", **kwargs):
        if student != "ann":
            raise KeyboardInterrupt
        return _result(student)
    monkeypatch.setattr(grade, "grade_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        grade.grade(tmp_path / "class", tmp_path / "out2", profile="smoke", sandboxed=False,
                    progress=False)
    with open(tmp_path / "out2" / "gradebook.csv") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert rows["ann"]["total"] == "4"
    assert "interrupted" in (tmp_path / "out2" / "summary.md").read_text()


def test_mount_points_with_odd_bytes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_bytes(b"36 35 98:0 / /tmp/caf\xc3\xa9\\040x rw,noatime master:1 - ext3 /dev/root rw\n"
                     b"37 35 98:0 / /tmp/odd\xff rw - tmpfs tmpfs rw\n")
    assert sandbox._mount_points(str(info)) == ["/tmp/café x", os.fsdecode(b"/tmp/odd\xff")]


def test_an_exit_code_of_128_or_more_is_not_read_as_a_signal():
    if sandbox.available() is not None:
        pytest.skip(f"no sandbox here: {sandbox.available()}")
    jail = sandbox.Jail(argv=[sys.executable, "-c", "import os; os._exit(137)"],
                        readonly=sandbox.default_readonly(ROOT), scratch="/scratch")
    done = subprocess.run(sandbox.command(jail), capture_output=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert done.returncode == sandbox.HIGH_EXIT, done.stderr[-500:]


def test_make_grade_runs_a_module_that_exists():
    done = subprocess.run(["make", "-n", "grade", "SUBMISSIONS=x"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    modules = re.findall(r"-m\s+([\w.]+)[^\n]*\bx\b", done.stdout)
    assert modules, done.stdout[-2000:] + done.stderr[-500:]
    import importlib.util
    for name in modules:
        assert importlib.util.find_spec(name) is not None, name
    # the command the issue and INSTRUCTORS.md name runs, and says how to use it
    usage = subprocess.run([sys.executable, "-m", "helpers.grade", "-h"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0 and "usage: python -m helpers.grade" in usage.stdout, \
        usage.stderr[-1000:]


def test_a_plan_captures_each_answer_before_its_check_cell():
    nb = grade.read_notebook(ROOT / "chapters" / CH)
    plan = grade.notebook_plan(copy.deepcopy(nb), CH, grade.load_config().limits)
    cells = plan["cells"]
    for item in plan["items"]:
        assert f"{item['name']}.check()" in cells[item["capture"]]["source"]
    injected = [c for c in cells if c["index"] == 0]
    assert len(injected) == 1 and "PROFILE = None" in injected[0]["source"]
