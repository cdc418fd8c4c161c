"""Judging outside the student's process (helpers/course/judge_wire.py, grade_runner's
``student_process``): every chapter's checker, given a proxy of the student's function that runs
in another process, says exactly what it says in-process; what the student's process sends back
is read by a codec that refuses what it does not know, so nothing it does in its own process
(patching a comparison, walking frames and objects, returning an object that lies) changes a
verdict. No sandbox needed: these run in seconds."""
from __future__ import annotations

import importlib
import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.course import grade, grade_runner, judge_wire
from helpers.course.exercises import ch00, ch02, ch10

PRELUDE = ("import math, itertools, html, collections\nimport numpy as np\nimport pandas as pd\n"
           "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
           "from collections import Counter, defaultdict\n")
COSINE_WRONG = "def cosine_similarity(a, b):\n    return a @ b.T\n"


def _exercises() -> list:
    """Every exercise of every chapter (34), questionnaires left out."""
    out = []
    for items in grade.chapter_items().values():
        for _, item in items:
            if not item.is_quiz:
                out.append(getattr(importlib.import_module(item.module), item.attr))
    return out


def _define(code: str, var: str, ns: dict | None = None):
    """``var`` as defined by ``code`` (in ``ns``: a chapter's later answers use its earlier)."""
    ns = {} if ns is None else ns
    exec(PRELUDE + code, ns)                                # noqa: S102 - the course's own code
    return ns[var]


def _wrong_zero(*args, **kwargs):
    return 0


def _raises_value_error(*args, **kwargs):
    raise ValueError("bad input <here>")


def _stub(*args, **kwargs):
    raise NotImplementedError


def _right_data(ex) -> dict:
    """A vary-and-explain exercise's right answer (its solution cell reads the notebook's
    own measurement, which this test does not run): the course's measurement, its direction,
    the explanation's letter."""
    return {"value": ex.measured()[1], "moved": ex.expect, "why": ex.why.answer}


def _through_codec(value):
    """A data answer as the judge reads it (the capture sends it in the codec)."""
    return judge_wire.decode(json.loads(json.dumps(judge_wire.encode(value))))


@pytest.mark.slow
def test_every_reference_answer_and_wrong_answer_reads_the_same_through_the_proxy():
    """The solutions' answers pass every checker (34 functions when written) through the proxy
    (a data answer, such as a vary-and-explain dict, through the codec), and a wrong answer, an
    answer that raises and a stub get the very state and message that in-process checking gives
    (``Exercise._evaluate``)."""
    exercises = _exercises()
    assert len(exercises) >= 34                  # every chapter's, as many as there are
    kinds = {"solution": None, "zero": _wrong_zero, "raises": _raises_value_error, "stub": _stub}
    answers, expected, data, chapters = {}, {}, {}, {}
    for ex in exercises:
        ns = chapters.setdefault(ex.notebook, {})
        solution = _right_data(ex) if hasattr(ex, "measured") else \
            _define(ex.solution_code(), ex.var, ns)
        if not callable(solution):
            data[ex.name] = solution
            continue
        for kind, fn in kinds.items():
            key = f"{ex.name}/{kind}"
            answers[key] = fn or solution
            torch.manual_seed(0)
            expected[key] = ex._evaluate(answers[key])
    assert len(answers) >= 4 * 34
    with grade_runner.student_process(answers) as proxy:
        for ex in exercises:
            if ex.name in data:
                for value in (data[ex.name], 0, {"value": "x"}):
                    got = ex._evaluate(_through_codec(value))
                    assert got == ex._evaluate(value), (ex.name, value, got)
                assert ex._evaluate(_through_codec(data[ex.name]))[0] == "correct"
                continue
            for kind in kinds:
                key = f"{ex.name}/{kind}"
                torch.manual_seed(0)
                got = ex._evaluate(proxy(key, ex.var, write_back=ex.inputs_checked_after_call))
                assert got == expected[key], (key, got, expected[key])
                if kind == "solution":
                    assert got[0] == "correct", (key, got)
                elif kind == "stub":
                    assert got[0] == "not started", (key, got)
                else:
                    assert got[0] == "incorrect", (key, got)


def _judge(answers: dict, ex, seconds: float = 20.0, grace: float = 3.0):
    with grade_runner.student_process(answers, grace=grace) as proxy:
        return ex._evaluate(proxy("a", ex.var, seconds, write_back=ex.inputs_checked_after_call))


def test_patching_the_comparison_in_the_students_process_changes_nothing():
    """A wrong answer that, while it runs, replaces torch.allclose, numpy.allclose and the
    exercises' Incorrect in its own process (the in-process forge of INSTRUCTORS.md) still
    fails; in-process, the same function passes."""
    def cheat(a, b):
        import numpy
        import torch as t

        import helpers.course.exercises as exercises
        t.allclose = lambda *x, **k: True
        numpy.allclose = lambda *x, **k: True
        exercises.Incorrect = type("Never", (Exception,), {})
        ch00.Incorrect = exercises.Incorrect
        return a @ b.T
    real = (torch.allclose, np.allclose, ch00.Incorrect)
    try:
        state, message = _judge({"a": cheat}, ch00.q1)
        assert state == "incorrect" and "lengths" in message, message
        assert (torch.allclose, np.allclose, ch00.Incorrect) == real    # the judge's untouched
        assert ch00.q1._evaluate(cheat)[0] == "correct"        # in-process it fools the check
    finally:
        import helpers.course.exercises as exercises
        torch.allclose, np.allclose, ch00.Incorrect = real
        exercises.Incorrect = real[2]


def test_walking_gc_to_the_checkers_changes_nothing():
    """A function that finds the Exercise objects through gc and replaces their checkers
    changes only its own process's copies: the judge's checker still fails it, and the next
    check too; in-process, every later check would say "forged"."""
    from helpers.course.exercises import Exercise

    def walker(a, b):
        import gc
        for obj in gc.get_objects():
            if type(obj).__name__ == "Exercise":
                obj.checker = lambda fn: "forged"
        return a @ b.T
    everything = {id(o): (o, o.checker) for o in _exercises()}
    try:
        with grade_runner.student_process({"a": walker, "b": walker}) as proxy:
            for attr in ("a", "b"):
                state, message = ch00.q1._evaluate(proxy(attr, "cosine_similarity"))
                assert state == "incorrect" and "lengths" in message, message
        assert all(o.checker is c for o, c in everything.values())
        ch00.q1._evaluate(walker)
        assert ch00.q1._evaluate(walker) == ("correct", "forged")    # in-process, it works
        assert isinstance(ch00.q1, Exercise)
    finally:
        for o, c in everything.values():
            o.checker = c


class _Liar:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


def test_an_object_that_lies_about_equality_cannot_be_returned():
    for bad in (_Liar(), [_Liar()], (_Liar(), False)):
        state, message = _judge({"a": lambda *a, **k: bad}, ch10.q2)
        assert state == "incorrect" and "cannot read back" in message, message
        assert "_Liar" in message and "your `amdahl` returned" in message
    assert ch10.q2._evaluate(lambda *a, **k: _Liar())[0] == "incorrect"   # it fails anyway...
    hidden = ("def serve_reason(c, u, i, g, t):\n    class L(tuple):\n"
              "        def __eq__(s, o): return True\n        def __ne__(s, o): return False\n"
              "    return L(('x', True))\n")
    fn = _define(hidden, "serve_reason")
    from helpers.course.exercises import ch09
    assert ch09.q1._evaluate(fn)[0] == "correct"        # ...but a lying tuple fools in-process
    state, message = _judge({"a": fn}, ch09.q1, seconds=120)
    assert state == "incorrect" and "cannot read back" in message, message


def test_a_huge_or_deep_return_value_is_refused():
    state, message = _judge({"a": lambda *a, **k: np.zeros(9 * 2**20)}, ch02.q1)
    assert state == "incorrect" and "64 MiB" in message, message
    deep: list = []
    for _ in range(100):
        deep = [deep]
    state, message = _judge({"a": lambda *a, **k: deep}, ch02.q1)
    assert state == "incorrect" and "levels deep" in message, message


def test_the_students_process_dying_or_hanging_mid_check_is_an_error_and_judging_goes_on():
    def dies(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    with grade_runner.student_process({"a": dies, "b": _wrong_zero}) as proxy:
        with pytest.raises(judge_wire.StudentGone, match="SIGKILL"):
            ch00.q1.checker(proxy("a", "cosine_similarity"))
        with pytest.raises(judge_wire.StudentGone):              # it is gone for good
            ch00.q1.checker(proxy("b", "cosine_similarity"))
    judge = grade_runner._Judge(ch00.Incorrect, 2.0)

    def stubborn(*args, **kwargs):
        while True:
            try:
                while True:
                    pass
            except BaseException:                           # noqa: BLE001 - swallows alarms
                pass
    item = grade_runner._Item("q1", ch00.q1, 0, type(None))
    with grade_runner.student_process({"q1": stubborn, "q2": _wrong_zero}, grace=1.0) as proxy:
        judge.link = proxy.link
        first = judge.item(item, {"present": True}, "")
        assert first["state"] == "errored" and first["reason"] == "timed out", first
        second = judge.item(grade_runner._Item("q2", ch00.q2, 0, type(None)),
                            {"present": True}, "")
        assert second["state"] == "errored" and second["reason"] == "timed out", second
        assert "did not stop" in second["message"]


def test_a_function_cannot_choose_the_inputs_a_reference_is_computed_from():
    """A review's forge: a constant answer that overwrites its inputs in place, so that a
    reference computed from them after the call agrees with it. The judge's arguments are not
    written back (only for a checker that took its reference before the call, ch10's), so it
    fails; and a call changes none of the judge's arrays."""
    def overwrites(a, b):
        a.fill_(1.0)
        b.fill_(1.0)
        return torch.ones(a.shape[0], b.shape[0])
    assert _judge({"a": overwrites}, ch00.q1)[0] == "incorrect"

    def zeros(x, t):
        x[:] = 0
        t.zero_()
        return 0
    x, t = np.arange(6.0).reshape(2, 3), torch.arange(4.0)
    with grade_runner.student_process({"a": zeros}) as proxy:
        assert proxy("a", "zeros")(x, t) == 0
    assert x.sum() == 15 and t.sum() == 6
    assert [e.name for e in _exercises() if e.inputs_checked_after_call] == ["ch10.q1"]


def test_callbacks_generators_and_in_place_changes_reach_the_checker():
    """ch08's prequential replay calls the judge's model back; ch08's DP step gets a
    torch.Generator; ch10 checks that the scores were not changed in place."""
    from helpers.course.exercises import ch08

    def mutates(scores, seen, k):
        scores[:] = 0
        return [np.arange(min(k, scores.shape[1]))] * len(scores)
    state, message = _judge({"a": mutates}, ch10.q1)
    assert state == "incorrect" and "changed the scores" in message, message
    assert ch10.q1._evaluate(mutates) == (state, message)

    def learns_first(stream, recommend, learn, k):
        hits = []
        for u, i in zip(stream["user_id"], stream["item_id"]):
            learn(u, i)
            hits.append(i in recommend(u, k))
        return hits
    assert _judge({"a": learns_first}, ch08.q4) == ch08.q4._evaluate(learns_first)
    assert "learnt the event before" in ch08.q4._evaluate(learns_first)[1]


def test_the_codec_round_trips_what_checkers_receive_and_refuses_the_rest():
    values = [None, True, 3, 2**70, float("inf"), 1 + 2j, "s", b"b", (1, [2, {3: "x"}]), {1, 2},
              np.arange(6).reshape(2, 3), np.float32(1.5), np.int64(4), np.array(["a", "bc"]),
              torch.randn(2, 3, requires_grad=True), torch.ones(2, dtype=torch.bfloat16),
              pd.Series([1.0, 2.0], index=[5, 7], name="g"),
              pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[3, 9])]
    for v in values:
        back = judge_wire.decode(json.loads(json.dumps(judge_wire.encode(v))))
        assert type(back) is type(v), (v, back)
        if isinstance(v, pd.DataFrame):
            pd.testing.assert_frame_equal(back, v)
        elif isinstance(v, pd.Series):
            pd.testing.assert_series_equal(back, v)
        elif isinstance(v, torch.Tensor):
            assert torch.equal(back.detach(), v.detach()) and back.requires_grad == v.requires_grad
        elif isinstance(v, np.ndarray):
            assert np.array_equal(back, v) and back.dtype == v.dtype
        else:
            assert back == v
    for bad in (object(), iter([1]), np.array([object()]), {"$": "pickle"}):
        with pytest.raises(judge_wire.Unreadable):
            judge_wire.encode(bad if not isinstance(bad, dict) else type("D", (dict,), {})(bad))
    for forged in ({"$": "nd", "d": "|O", "s": [1], "b": ""}, {"$": "pickle", "b": "gASVAA=="},
                   {"$": "nd", "d": "<f8", "s": [3], "b": "AAAA"}, {"$": "pt", "d": "object"}):
        with pytest.raises(judge_wire.WireError):
            judge_wire.decode(forged)
