""""Vary and explain" exercises: change one setting, re-run, say what moved and why.

The chapter names a setting, its usual value and the one to try, and the cell to re-run. The
student answers in a dict::

    vary_1 = {"value": 0.412, "moved": "down", "why": "b"}

- ``value``: the number the re-run printed (within ``tol``): evidence that it was run;
- ``moved``: ``"up"``, ``"down"`` or ``"same"``: how that number compares with the usual
  setting's (``"same"`` within ``same_within``);
- ``why``: a letter of a :class:`~helpers.course.exercises.quiz.Choice` about the mechanism.

Nothing here is typed by the author as a result. The checker measures both settings itself with
the course's code (``measure() -> (usual, varied)``), so the right ``value`` and ``moved`` are
whatever the course computes today. The explanation's right letter is fixed, but it goes with
the direction the mechanism predicts (``expect``): when the measurement disagrees, the check
says the *question* is wrong (a :class:`QuestionOutdated` error for the course's tests), never
that the student is.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable

from helpers.core.checks import ParameterError
from helpers.course.exercises import Exercise, Incorrect, fmt, show_markdown
from helpers.course.exercises.quiz import Choice

__all__ = ["Vary", "QuestionOutdated", "direction"]

MOVES = ("up", "down", "same")


class QuestionOutdated(RuntimeError):
    """The course's measurement no longer moves the way the exercise's explanation says: the
    exercise must be rewritten (a course bug, not a student's mistake)."""


def direction(usual: float, varied: float, same_within: float) -> str:
    """``"up"``, ``"down"`` or ``"same"`` (|varied - usual| <= same_within)."""
    for name, v in (("usual", usual), ("varied", varied), ("same_within", same_within)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ParameterError(f"{name} must be a finite number, got {v!r}")
    if same_within < 0:
        raise ParameterError(f"same_within must be >= 0, got {same_within!r}")
    if abs(varied - usual) <= same_within:
        return "same"
    return "up" if varied > usual else "down"


class Vary(Exercise):
    """One vary-and-explain exercise (see the module's docstring).

    Args:
        name, notebook, var: as for :class:`Exercise` (``var`` names the answer dict).
        title: what to change, in one line.
        measure: ``() -> (usual, varied)``, the course's own computation of the printed number at
            both settings (cached after the first call: it may take seconds).
        quantity: what the number is, e.g. "the template's personal share on warm items".
        why: the question about the mechanism (a :class:`Choice`).
        expect: the direction the right explanation predicts.
        tol: how close ``value`` must be; same_within: the band read as "same".
    """

    CACHED = ("_measured",)
    """Attributes the exercise's own check fills in the notebook's process (the measurement,
    cached): the grader's review of the checking code does not report them as changed (the
    judge measures for itself, so nothing a notebook puts there reaches a result)."""

    def __init__(self, name: str, notebook: str, var: str, title: str,
                 measure: Callable[[], tuple[float, float]], quantity: str, why: Choice,
                 expect: str, hint_text: str, nudge: str, tol: float = 5e-4,
                 same_within: float = 5e-3):
        if expect not in MOVES:
            raise ParameterError(f"expect is one of {MOVES}, got {expect!r}")
        if not isinstance(why, Choice):
            raise ParameterError(f"why must be a quiz.Choice, got {type(why).__name__}")
        if not callable(measure):
            raise ParameterError("measure must be a function () -> (usual, varied)")
        for label, v in (("tol", tol), ("same_within", same_within)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1:
                raise ParameterError(f"{label} must be a number in [0, 1), got {v!r}")
        self.measure_fn, self.quantity, self.why, self.expect = measure, quantity, why, expect
        self.tol, self.same_within = float(tol), float(same_within)
        self._measured: tuple[float, float] | None = None
        super().__init__(name=name, title=title, var=var, checker=self._judge,
                         hint_text=hint_text, notebook=notebook, nudge=nudge)

    def measured(self) -> tuple[float, float]:
        """``(usual, varied)`` as the course computes them (once per process)."""
        if self._measured is None:
            usual, varied = self.measure_fn()
            self._measured = (float(usual), float(varied))
        return self._measured

    def moved(self) -> str:
        """The measured direction; raises :class:`QuestionOutdated` when it is not ``expect``."""
        usual, varied = self.measured()
        moved = direction(usual, varied, self.same_within)
        if moved != self.expect:
            raise QuestionOutdated(
                f"{self.name}: {self.quantity} now moves {moved} ({usual:.4f} -> {varied:.4f}), "
                f"but the exercise's explanation says {self.expect}: rewrite the exercise.")
        return moved

    def _judge(self, answer) -> str:
        keys = {"value", "moved", "why"}
        if not isinstance(answer, dict) or set(answer) != keys:
            got = sorted(map(str, answer)) if isinstance(answer, dict) else type(answer).__name__
            raise Incorrect(f"{self.var} must be a dict with exactly the keys 'value', 'moved' "
                            f"and 'why', e.g. {{'value': 0.412, 'moved': 'down', 'why': 'b'}}; "
                            f"got {got}.")
        value, moved, why = answer["value"], answer["moved"], answer["why"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(float(value)):
            raise Incorrect(f"'value' is the number the re-run printed, got {fmt(value)}.")
        if not isinstance(moved, str) or moved.strip().lower() not in MOVES:
            raise Incorrect(f"'moved' is one of 'up', 'down' or 'same', got {fmt(moved)}.")
        usual, varied = self.measured()
        truth = self.moved()
        if abs(float(value) - varied) > self.tol:
            hint = (" That is the usual setting's value: change the setting first."
                    if abs(float(value) - usual) <= self.tol else "")
            raise Incorrect(f"{self.quantity} at the new setting is not {fmt(value)}.{hint} "
                            "Re-run the cell with the setting changed and copy the number it "
                            "prints.")
        if moved.strip().lower() != truth:
            raise Incorrect(f"{self.quantity} went from {usual:.3f} to {varied:.3f}: compare the "
                            f"two again ('same' means within {self.same_within:g}).")
        ok, explanation = self.why.judge(why)
        if not ok:
            raise Incorrect(f"the number and its direction are right; the explanation is not: "
                            f"{explanation}")
        return (f"{self.quantity}: {usual:.3f} -> {varied:.3f} ({truth}). {explanation}")

    def text(self) -> str:
        """The question about the mechanism, as the notebook shows it."""
        return "\n".join(self.why.render())

    def show(self) -> None:
        """Show the explanation question and how to answer."""
        body = self.text()
        how = (f"Answer in a cell: `{self.var} = {{'value': <the number printed>, 'moved': "
               f"'up' | 'down' | 'same', 'why': '<letter>'}}`, then run `{self.name}.check()`.")
        show_markdown(f"**{self.name}:** " + body.replace("\n   ", "  \n   ") + "\n\n" + how,
                      f"{self.name}: {body}\n{how.replace('`', '')}")

    def __repr__(self) -> str:
        return f"<Vary {self.name}: {self.title}>"
