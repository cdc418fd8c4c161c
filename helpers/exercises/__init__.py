"""Checked exercises with instant, kind feedback: ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

Each chapter has a module (``helpers.exercises.ch00`` ...) that defines its exercises. In a
notebook::

    from helpers.exercises import ch00
    ch00.q1.check()        # looks up the answer (e.g. `cosine_similarity`) in the notebook
    ch00.q1.hint()         # a nudge, before the answer
    ch00.q1.solution()     # the reference solution, read from solutions/

``check()`` never throws a stack trace at the student: it prints what was expected, on which
input, and what came back, and returns ``True`` or ``False``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Exercise", "Incorrect", "Verdict", "shape_of"]

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


def shape_of(x) -> str:
    """How a checker names what came back: a tensor's shape, else the type's name."""
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


class Incorrect(AssertionError):
    """Raised by a checker with a message for the student: what input, expected what, got what."""


def _show(markdown: str, plain: str) -> None:
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
        hint_text: a nudge in Markdown.
        notebook: the solution notebook holding the reference answer (under ``solutions/``).
    """

    name: str
    title: str
    var: str
    checker: Callable[[Any], str | None]
    hint_text: str
    notebook: str

    def _lookup(self, frame_depth: int = 2):
        frame = sys._getframe(frame_depth)  # the notebook's frame (caller of check())
        try:
            return frame.f_globals.get(self.var, _MISSING)
        finally:
            del frame

    def check(self, answer: Any = _MISSING) -> Verdict:
        """Check the answer (default: the notebook's variable ``var``) and show the verdict.

        Returns a :class:`Verdict`, truthy if the answer passed.
        """
        if answer is _MISSING:
            answer = self._lookup()
        if answer is _MISSING:
            return self._fail(f"`{self.var}` is not defined yet. Run the exercise cell above "
                              "first.")
        try:
            note = self.checker(answer)
        except NotImplementedError:
            plain = (f"{self.name}: not done yet. Replace '# YOUR CODE HERE' and the "
                     f"'raise NotImplementedError' line in `{self.var}` with your code, run that "
                     "cell, then this one.")
            _show(f"⏳ **{self.name}: not done yet.** Replace `# YOUR CODE HERE` and the "
                  f"`raise NotImplementedError` line in `{self.var}` with your code, run that "
                  f"cell, then this one. Stuck? `{self.name}.hint()`", plain)
            return Verdict(False, plain)
        except Incorrect as err:
            return self._fail(str(err))
        except Exception as err:  # the student's code crashed: say how, not a traceback
            return self._fail(f"your `{self.var}` raised {type(err).__name__}: {err}")
        extra = f" {note}" if note else ""
        plain = f"{self.name}: correct.{extra}"
        _show(f"✅ **{self.name} correct.**{extra}", plain)
        return Verdict(True, plain)

    def _fail(self, message: str) -> Verdict:
        # the call named must work where the notebook imported only the chapter's module
        plain = f"{self.name}: not yet. {message} Try {self.name}.hint() for a nudge."
        _show(f"❌ **{self.name}: not yet.** {message}  \nTry `{self.name}.hint()` for a nudge.",
              plain)
        return Verdict(False, plain)

    def hint(self) -> None:
        """Show a nudge towards the answer."""
        _show(f"💡 **Hint ({self.name}):** {self.hint_text}", f"Hint ({self.name}): "
              f"{self.hint_text}")

    def solution_code(self) -> str:
        """The reference answer: the solution notebook's cell that defines ``var``, fences
        removed."""
        import nbformat

        from ..notebooks import BEGIN, END, SOLUTIONS

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
        _show(f"**Solution ({self.name}):**\n\n```python\n{code}\n```",
              f"Solution ({self.name}):\n{code}")

    def __repr__(self) -> str:
        return f"<Exercise {self.name}: {self.title}>"
