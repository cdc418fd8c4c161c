"""End-of-chapter questionnaires in the exercise framework: each question multiple choice or
numeric, every answer explained.

    ch02.quiz.show()                 # the questions
    quiz_answers = {1: "b", 2: 0.5}  # the student's answers, by question number
    ch02.quiz.check()                # a verdict per question, with its explanation
    ch02.quiz.hint()                 # where in the chapter to look

A wrong choice is answered with why *that* choice is wrong (the misconception it stands for),
not with the right letter; a right one with why it is right. ``solution()`` shows the answers.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

from helpers.core.checks import ParameterError
from helpers.course.exercises import Exercise, Incorrect, fmt, show_markdown

__all__ = ["Choice", "Numeric", "Quiz"]


@dataclass
class Choice:
    """A multiple-choice question: ``options`` letter -> text, ``answer`` the right letter,
    ``why`` letter -> the explanation shown when that letter is chosen (every letter has one)."""
    prompt: str
    options: dict
    answer: str
    why: dict

    def __post_init__(self):
        if self.answer not in self.options or set(self.why) != set(self.options):
            raise ParameterError(f"{self.prompt[:40]!r}: the answer must be an option and every "
                                 "option needs an explanation.")

    def render(self) -> list[str]:
        return [self.prompt, ""] + [f"   {k}) {v}" for k, v in self.options.items()]

    def judge(self, given) -> tuple[bool, str]:
        if not isinstance(given, str) or given.strip().lower() not in self.options:
            return False, (f"answer with one of the letters {', '.join(self.options)}, got "
                           f"{fmt(given)}.")
        given = given.strip().lower()
        return given == self.answer, self.why[given]


@dataclass
class Numeric:
    """A question answered with a number: right within ``tol`` (absolute) of ``answer``;
    ``why`` explains the right value; ``traps`` maps a tempting wrong value to why it is wrong."""
    prompt: str
    answer: float
    why: str
    tol: float = 1e-3
    traps: dict = field(default_factory=dict)

    def render(self) -> list[str]:
        return [self.prompt, "", "   (a number)"]

    def judge(self, given) -> tuple[bool, str]:
        if isinstance(given, bool) or not isinstance(given, numbers.Real) \
                or not math.isfinite(float(given)):
            return False, f"answer with a number, got {fmt(given)}."
        if abs(float(given) - self.answer) <= self.tol:
            return True, self.why
        for value, reason in self.traps.items():
            if abs(float(given) - value) <= self.tol:
                return False, reason
        return False, "not this value: work it through once more on paper."


class Quiz(Exercise):
    """A chapter's questionnaire. The student defines ``quiz_answers`` (question number ->
    letter or number); :meth:`check` judges every question and explains each answer."""

    def __init__(self, name: str, notebook: str, questions: list, where: str,
                 var: str = "quiz_answers"):
        if not 5 <= len(questions) <= 8:
            raise ParameterError(f"{name}: a questionnaire has 5 to 8 questions, got {len(questions)}.")
        self.questions = list(questions)
        super().__init__(
            name=name, title=f"Check your understanding ({len(questions)} questions)",
            var=var, checker=self._judge_all, notebook=notebook,
            hint_text=where,
            nudge=("Each question is about one section of this chapter; re-run and re-read the "
                   "cells it is about rather than guessing."))

    def text(self) -> str:
        lines = []
        for n, q in enumerate(self.questions, start=1):
            body = q.render()
            lines += [f"**{n}.** {body[0]}", *body[1:], ""]
        return "\n".join(lines)

    def example(self) -> str:
        """How an answer looks for *this* questionnaire: its first two questions, each answered
        in its own kind (a letter for a choice, a number for a numeric question). The letters are
        placeholders, not hints.

        >>> pick = Choice("?", {"a": "x", "b": "y"}, "a", {"a": "", "b": ""})
        >>> Quiz("q", "n.ipynb", [pick] * 4 + [Numeric("?", 1.0, "")], "section 1").example()
        '{1: "b", 2: "a", ...}'
        >>> Quiz("q", "n.ipynb", [pick, Numeric("?", 1.0, "")] * 3, "section 1").example()
        '{1: "b", 2: 0.5, ...}'
        """
        shown = []
        for n, q in enumerate(self.questions[:2], start=1):
            shown.append(f'{n}: "{"ba"[n - 1]}"' if isinstance(q, Choice) else f"{n}: 0.5")
        return "{" + ", ".join(shown) + ", ...}"

    def show(self) -> None:
        """Show the questions, and how to answer them."""

        kinds = sorted({"a letter" if isinstance(q, Choice) else "a number" for q in self.questions})
        how = (f"Answer in a cell: `{self.var} = {self.example()}` ({' or '.join(kinds)} for "
               f"each question), then run `{self.name}.check()`.")
        body = self.text()
        show_markdown(f"**{self.name}: check your understanding**\n\n" + body.replace("\n   ", "  \n   ")
              + "\n" + how, f"{self.name}: check your understanding\n\n{body}\n{how.replace('`', '')}")

    def _judge_all(self, answers) -> str:
        if not isinstance(answers, dict):
            raise Incorrect(f"{self.var} must be a dict from question number to your answer, "
                            f"e.g. {self.example()}; got {type(answers).__name__}.")
        extra = sorted(set(answers) - set(range(1, len(self.questions) + 1)), key=str)
        if extra:
            raise Incorrect(f"there is no question {fmt(extra)}: the questions are numbered 1 to "
                            f"{len(self.questions)}.")
        lines, right = [], 0
        for n, q in enumerate(self.questions, start=1):
            if n not in answers:
                lines.append(f"Q{n}: not answered yet.")
                continue
            ok, why = q.judge(answers[n])
            right += ok
            lines.append(f"Q{n}: {'right' if ok else 'not quite'} ({fmt(answers[n])}). {why}")
        summary = f"{right} of {len(self.questions)} right."
        # two spaces before a newline: a line break in Markdown, invisible in plain text
        if right < len(self.questions):
            raise Incorrect(summary + "  \n" + "  \n".join(lines))
        return summary + "  \n" + "  \n".join(lines)

    def solution_code(self) -> str:
        answers = {n: q.answer for n, q in enumerate(self.questions, start=1)}
        return f"{self.var} = {answers!r}"

    def __repr__(self) -> str:
        return f"<Quiz {self.name}: {len(self.questions)} questions>"
