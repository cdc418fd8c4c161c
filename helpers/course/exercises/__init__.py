"""Checked exercises with instant, kind feedback: ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

Each chapter has a module (``helpers.course.exercises.ch00`` ...) that defines its exercises. In a
notebook::

    from helpers.course.exercises import ch00
    ch00.q1.check()        # looks up the answer (e.g. `cosine_similarity`) in the notebook
    ch00.q1.hint()         # hint 1: the idea, in words
    ch00.q1.hint(2)        # hint 2: close to the code
    ch00.q1.solution()     # the reference solution, read from solutions/
    ch00.progress()        # every exercise of the chapter, checked, in one table

``check()`` never throws a stack trace at the student: it prints what was expected, on which
input, and what came back, and returns ``True`` or ``False``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

from helpers.core.checks import ParameterError
from helpers.course.notebooks import BEGIN, END, SOLUTIONS

__all__ = ["Exercise", "Incorrect", "Verdict", "fmt", "progress_of", "shape_of"]

_MISSING = object()


class Verdict:
    """What ``check()`` returns: truthy when the answer passed. The message was already shown,
    so a notebook displays nothing more for it."""

    def __init__(self, passed: bool, message: str):
        self.passed, self.message = passed, message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:  # shown once, by check(), already
        pass


def fmt(x) -> str:
    """How a checker prints a value the student returned: numbers rounded to 4 significant
    digits, numpy scalars as plain numbers (never ``np.int64(4)``), sequences element by
    element; anything else as ``repr``."""
    import numbers

    if isinstance(x, bool) or x is None or isinstance(x, str):
        return repr(x)
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Real):
        return f"{float(x):.4g}"
    if isinstance(x, (list, tuple)):
        inner = ", ".join(fmt(v) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    if hasattr(x, "tolist") and getattr(x, "ndim", 1) == 0:
        return fmt(x.tolist())
    return repr(x)


def shape_of(x) -> str:
    """How a checker names what came back: a tensor's shape, else the type's name."""
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


class Incorrect(AssertionError):
    """Raised by a checker with a message for the student: what input, expected what, got what."""


def show_markdown(markdown: str, plain: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(plain)
        return
    if get_ipython() is None:
        print(plain)
    else:
        display(Markdown(markdown))


@dataclass
class Exercise:
    """One checked exercise.

    Args:
        name: how the notebook refers to it, e.g. ``"ch00.q1"``.
        title: one line saying what to do.
        var: the name the student defines (a function or a value).
        checker: ``checker(answer)`` raises :class:`Incorrect` (or anything) when wrong; it may
            return a short string that is shown on success.
        hint_text: the second hint, close to the code, in Markdown.
        notebook: the solution notebook holding the reference answer (under ``solutions/``).
        nudge: the first hint: the idea, in words, no code.
        inputs_checked_after_call: the checker looks at its own arguments after calling the
            answer (to tell the student they changed them) and computed its reference before
            the call. Only then does the grader's judge copy the arguments back from the
            notebook's process after a call: otherwise a function could overwrite the inputs a
            reference is computed from after the call, and make a wrong answer agree with it.
    """

    name: str
    title: str
    var: str
    checker: Callable[[Any], str | None]
    hint_text: str
    notebook: str
    nudge: str = ""
    inputs_checked_after_call: bool = False

    def _lookup(self, frame_depth: int = 2):
        frame = sys._getframe(frame_depth)  # the notebook's frame (caller of check())
        try:
            return frame.f_globals.get(self.var, _MISSING)
        finally:
            del frame

    def _evaluate(self, answer: Any) -> tuple[str, str]:
        """(state, message) without showing anything: state is "correct", "incorrect",
        "not started" (the stub still raises NotImplementedError) or "not defined"."""
        if answer is _MISSING:
            return "not defined", (f"`{self.var}` is not defined yet. Run the exercise cell "
                                   "above first.")
        try:
            note = self.checker(answer)
        except NotImplementedError:
            return "not started", (f"Replace `# YOUR CODE HERE` and the `raise "
                                   f"NotImplementedError` line in `{self.var}` with your code, "
                                   "run that cell, then this one.")
        except Incorrect as err:
            return "incorrect", str(err)
        except Exception as err:  # the student's code crashed: say how, not a traceback
            return "incorrect", f"your `{self.var}` raised {type(err).__name__}: {err}"
        return "correct", note or ""

    def check(self, answer: Any = _MISSING) -> Verdict:
        """Check the answer (default: the notebook's variable ``var``) and show the verdict.

        Returns a :class:`Verdict`, truthy if the answer passed.
        """
        if answer is _MISSING:
            answer = self._lookup()
        state, message = self._evaluate(answer)
        if state == "not started":
            plain = f"{self.name}: not done yet. {message.replace('`', '')}"
            show_markdown(f"⏳ **{self.name}: not done yet.** {message} Stuck? `{self.name}.hint()`",
                  plain)
            return Verdict(False, plain)
        if state != "correct":
            return self._fail(message)
        extra = f" {message}" if message else ""
        plain = f"{self.name}: correct.{extra}"
        show_markdown(f"✅ **{self.name} correct.**{extra}", plain)
        return Verdict(True, plain)

    def _fail(self, message: str) -> Verdict:
        # the call named must work where the notebook imported only the chapter's module
        plain = f"{self.name}: not yet. {message} Try {self.name}.hint() for a nudge."
        show_markdown(f"❌ **{self.name}: not yet.** {message}  \nTry `{self.name}.hint()` for a nudge.",
              plain)
        return Verdict(False, plain)

    def hint(self, level: int = 1) -> None:
        """Show a hint: level 1 the idea (``nudge``), level 2 close to the code
        (``hint_text``); then :meth:`solution`."""
        if level not in (1, 2):
            raise ParameterError(f"level is 1 (the idea) or 2 (close to the code), got {level!r}.")
        if level == 1 and self.nudge:
            show_markdown(f"💡 **Hint 1 ({self.name}):** {self.nudge}  \nStill stuck? "
                  f"`{self.name}.hint(2)`", f"Hint 1 ({self.name}): {self.nudge} Still stuck? "
                  f"{self.name}.hint(2)")
        else:
            show_markdown(f"💡 **Hint 2 ({self.name}):** {self.hint_text}  \nThe answer: "
                  f"`{self.name}.solution()`", f"Hint 2 ({self.name}): {self.hint_text} The "
                  f"answer: {self.name}.solution()")

    def solution_code(self) -> str:
        """The reference answer: the solution notebook's cell that defines ``var``, fences
        removed."""
        import nbformat


        nb = nbformat.read(SOLUTIONS / self.notebook, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or BEGIN not in cell.source:
                continue
            defines = (f"def {self.var}(" in cell.source
                       or any(line.strip().startswith(f"{self.var} =")
                              for line in cell.source.splitlines()))
            if defines:
                return "\n".join(line for line in cell.source.splitlines()
                                 if line.strip() not in {BEGIN, END})
        raise LookupError(f"No solution cell defining {self.var!r} in {self.notebook}.")

    def solution(self) -> None:
        """Show the reference answer. (Try ``hint()`` first!)"""
        code = self.solution_code()
        show_markdown(f"**Solution ({self.name}):**\n\n```python\n{code}\n```",
              f"Solution ({self.name}):\n{code}")

    def __repr__(self) -> str:
        return f"<Exercise {self.name}: {self.title}>"


_MARK = {"correct": "✅ done", "incorrect": "❌ not yet", "not started": "⏳ not started",
         "not defined": "· not reached"}


def _reading_order(e: Exercise) -> tuple:
    """q1, q2, ... in order, the chapter's questionnaire (``chNN.quiz``) last."""
    tail = e.name.rsplit(".", 1)[1]
    return (0, int(tail[1:])) if tail[:1] == "q" and tail[1:].isdigit() else (1, 0)


def progress_of(module_name: str) -> Callable[[], dict]:
    """``chNN.progress`` for the chapter module ``module_name``: every exercise of the chapter,
    lesson by lesson (02a before 02b), checked silently against the notebook's variables and
    summarised in one table; a chapter in several lessons says which lesson each exercise is in
    and counts each lesson's, so 07b's exercises read "not reached" in 07a for a reason the
    table shows. Returns ``{exercise name: state}``."""

    def progress() -> dict:
        frame = sys._getframe(1)                  # the notebook's frame
        try:
            names = frame.f_globals
            module = sys.modules[module_name]
            exercises = sorted((v for v in vars(module).values() if isinstance(v, Exercise)),
                               key=lambda e: (e.notebook, _reading_order(e)))
            states = {e.name: e._evaluate(names.get(e.var, _MISSING))[0] for e in exercises}
        finally:
            del frame
        done = sum(s == "correct" for s in states.values())
        chapter = module_name.rsplit('.', 1)[1]
        lessons = list(dict.fromkeys(e.notebook for e in exercises))
        if len(lessons) > 1:                      # a chapter in several lessons: say whose is whose
            per = [f"{nb[:3]}: {sum(states[e.name] == 'correct' for e in exercises if e.notebook == nb)}"
                   f" of {sum(e.notebook == nb for e in exercises)}" for nb in lessons]
            head = f"{chapter}: {done} of {len(states)} exercises done ({'; '.join(per)})"
            rows = [f"| {e.notebook[:3]} | `{e.name}` | {e.title} | {_MARK[states[e.name]]} |"
                    for e in exercises]
            table = ["| lesson | exercise | task | state |", "|---|---|---|---|"]
            plain = [f"  {e.notebook[:3]} {e.name}: {_MARK[states[e.name]]}  ({e.title})"
                     for e in exercises]
        else:
            head = f"{chapter}: {done} of {len(states)} exercises done"
            rows = [f"| `{e.name}` | {e.title} | {_MARK[states[e.name]]} |" for e in exercises]
            table = ["| exercise | task | state |", "|---|---|---|"]
            plain = [f"  {e.name}: {_MARK[states[e.name]]}  ({e.title})" for e in exercises]
        show_markdown("\n".join([f"**{head}**", "", *table, *rows]), "\n".join([head] + plain))
        return states

    progress.__doc__ = (f"Every exercise of {module_name.rsplit('.', 1)[1]}, checked silently, in "
                        "one table.")
    return progress
