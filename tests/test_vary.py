""""Vary and explain" exercises (helpers.course.exercises.vary): the right number and direction
come from the course's own measurement, never from a typed key; an explanation that the
measurement contradicts is reported as the course's bug, not the student's."""
import re

import pytest

from helpers.core.checks import ParameterError
from helpers.course.exercises.quiz import Choice
from helpers.course.exercises.vary import QuestionOutdated, Vary, direction

WHY = Choice("Why?", {"a": "because of x", "b": "because of y"}, "b",
             {"a": "not x", "b": "right: y"})


def _vary(usual=0.5, varied=0.4, expect="down"):
    return Vary(name="chXX.q9", notebook="00_setup_and_tour.ipynb", var="vary_x",
                title="vary x", measure=lambda: (usual, varied), quantity="the share",
                why=WHY, expect=expect, hint_text="h", nudge="n")


def test_a_right_answer_passes_and_names_both_values():
    state, message = _vary()._evaluate({"value": 0.4, "moved": "down", "why": "b"})
    assert state == "correct" and "0.500 -> 0.400" in message


@pytest.mark.parametrize("answer, says", [
    ({"value": 0.5, "moved": "down", "why": "b"}, "change the setting first"),
    ({"value": 0.3, "moved": "down", "why": "b"}, "is not 0.3"),
    ({"value": 0.4, "moved": "up", "why": "b"}, "went from 0.500 to 0.400"),
    ({"value": 0.4, "moved": "same", "why": "b"}, "went from 0.500 to 0.400"),
    ({"value": 0.4, "moved": "down", "why": "a"}, "not x"),
    ({"value": 0.4, "moved": "down"}, "exactly the keys"),
    ([0.4, "down", "b"], "must be a dict"),
    ({"value": "0.4", "moved": "down", "why": "b"}, "'value' is the number"),
    ({"value": float("nan"), "moved": "down", "why": "b"}, "'value' is the number"),
    ({"value": 0.4, "moved": "lower", "why": "b"}, "'moved' is one of"),
])
def test_wrong_answers_fail_and_say_what_is_wrong(answer, says):
    state, message = _vary()._evaluate(answer)
    assert state == "incorrect" and says in message, message


def test_the_key_follows_the_measurement_not_a_typed_value():
    # the same exercise whose measurement moved the other way: the student's "down" is now
    # wrong in direction, and the explanation that predicts "down" is reported as outdated
    flipped = _vary(usual=0.4, varied=0.5)
    with pytest.raises(QuestionOutdated, match="rewrite the exercise"):
        flipped.checker({"value": 0.5, "moved": "up", "why": "b"})
    # within same_within the direction is "same"
    assert direction(0.5, 0.503, 5e-3) == "same" and direction(0.5, 0.49, 5e-3) == "down"


@pytest.mark.parametrize("kwargs, says", [
    (dict(expect="lower"), "expect is one of"),
    (dict(why="b"), "why must be a quiz.Choice"),
    (dict(measure=(0.5, 0.4)), "measure must be a function"),
    (dict(tol=-1), "tol must be a number"),
    (dict(same_within=float("nan")), "same_within must be a number"),
])
def test_bad_construction_is_refused(kwargs, says):
    base = dict(name="chXX.q9", notebook="x.ipynb", var="v", title="t", measure=lambda: (0, 1),
                quantity="q", why=WHY, expect="up", hint_text="h", nudge="n")
    with pytest.raises(ParameterError, match=says):
        Vary(**{**base, **kwargs})


def test_direction_refuses_non_numbers():
    with pytest.raises(ParameterError, match="usual must be a finite number"):
        direction("0.5", 0.4, 0.01)


@pytest.mark.parametrize("module,name,answer_var,why", [
    ("ch05", "q2", "vary_profile", "d"),       # the template's profile: 3 aspects -> 1
    ("ch10", "q3", "vary_factors", "c"),       # catalogue coverage at 32 and 8 ALS factors
])
def test_a_vary_exercise_passes_its_solution_on_the_real_measurement(module, name, answer_var, why):
    import importlib

    exercise = getattr(importlib.import_module(f"helpers.course.exercises.{module}"), name)
    usual, varied = exercise.measured()
    assert exercise.moved() == "down"
    state, message = exercise._evaluate({"value": round(varied, 4), "moved": "down", "why": why})
    assert state == "correct", message
    assert exercise._evaluate({"value": round(usual, 4), "moved": "down", "why": why})[0] \
        == "incorrect"
    assert f"{answer_var} = " in exercise.solution_code()


# The "why" question of a vary-and-explain exercise must not give the direction away: its stem
# does not say which way the number moved, and its options cover more than one direction, so a
# student has to read the printed numbers to narrow them down and know the mechanism to pick one.
DIRECTION_WORDS = re.compile(
    r"\b(?:up|down|more|less|fewer|fall|falls|fell|falling|rise|rises|rose|rising|drop|drops|"
    r"dropped|grow|grows|grew|increase[sd]?|decrease[sd]?|worse|better|higher|lower|smaller|"
    r"larger|bigger)\b", re.IGNORECASE)


def _gives_the_direction_away(choice: Choice) -> list[str]:
    """What in ``choice`` tells the direction without running anything (empty: nothing)."""
    found = [f"the stem says {w!r}" for w in DIRECTION_WORDS.findall(choice.prompt)]
    if len(choice.options) < 4:
        found.append(f"{len(choice.options)} options, not at least 4 (two per direction)")
    return found


def _every_vary_exercise():
    """Every vary-and-explain exercise of the course, found the way the grader finds exercises."""
    import importlib

    from helpers.course import grade

    return [ex for entries in grade.chapter_items().values() for _, item in entries
            if isinstance(ex := getattr(importlib.import_module(item.module), item.attr), Vary)]


def test_a_vary_question_does_not_give_its_direction_away():
    """Every vary-and-explain exercise of the course: a neutral stem and at least four options
    (two mechanisms per direction), so the printed numbers, not the question, tell the direction."""
    exercises = _every_vary_exercise()
    assert len(exercises) >= 11
    for exercise in exercises:
        assert not _gives_the_direction_away(exercise.why), \
            (exercise.name, _gives_the_direction_away(exercise.why))
        assert all(text.strip() for text in exercise.why.why.values()), exercise.name
    # the right letter is not always the same one, nor always the longest option
    assert len({e.why.answer for e in exercises}) >= 3
    longest = [max(e.why.options, key=lambda k: len(e.why.options[k])) for e in exercises]
    assert any(e.why.answer != k for e, k in zip(exercises, longest))


def test_the_rule_catches_a_stem_that_names_the_direction():
    leaky = Choice("Why does the RMSE rise when λ falls?", {"a": "x", "b": "y"}, "a",
                   {"a": "right", "b": "wrong"})
    assert _gives_the_direction_away(leaky) == ["the stem says 'rise'", "the stem says 'falls'",
                                                "2 options, not at least 4 (two per direction)"]
    assert all(not _gives_the_direction_away(e.why) for e in _every_vary_exercise())
