"""Every exercise accepts its own reference solution, rejects wrong answers kindly, and
handles the states a student is really in (not started, crashing, not defined)."""
import importlib
import pkgutil

import nbformat
import pytest
import torch

from helpers.core.config import ROOT
from helpers.course import exercises as ex_pkg
from helpers.course.exercises import Exercise, Incorrect
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.course.notebooks import BEGIN

CHAPTER_MODULES = [importlib.import_module(f"helpers.course.exercises.{m.name}")
                   for m in pkgutil.iter_modules(ex_pkg.__path__) if m.name.startswith("ch")]
ALL = [(mod.__name__.rsplit(".", 1)[1], name, obj) for mod in CHAPTER_MODULES
       for name, obj in vars(mod).items() if isinstance(obj, Exercise)]


def _solution_namespace(notebook):
    """Run the notebook's parameters and setup cells, then its exercise cells (solutions in
    place), in order, in one namespace."""
    ns = {}
    nb = nbformat.read(ROOT / "solutions" / notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    for cell in code[params:params + 2] + [c for c in code if BEGIN in c.source]:
        exec(cell.source, ns)
    return ns


@pytest.mark.parametrize("chapter,name,exercise", ALL, ids=[f"{c}.{n}" for c, n, _ in ALL])
def test_reference_solution_passes(chapter, name, exercise):
    ns = _solution_namespace(exercise.notebook)
    assert exercise.check(ns[exercise.var]), f"{chapter}.{name} rejects its own solution"
    assert BEGIN not in exercise.solution_code()
    assert exercise.var in exercise.solution_code()


FUNCTIONS = [(c, n, e) for c, n, e in ALL if not isinstance(e, (Quiz, Vary))]  # answers in data
QUIZZES = [(c, n, e) for c, n, e in ALL if isinstance(e, Quiz)]


@pytest.mark.parametrize("chapter,name,exercise", FUNCTIONS,
                         ids=[f"{c}.{n}" for c, n, _ in FUNCTIONS])
def test_unfinished_or_crashing_answers_fail_kindly(chapter, name, exercise, capsys):
    def not_started(*args, **kwargs):
        raise NotImplementedError("Exercise: replace this line")

    def crashes(*args, **kwargs):
        raise KeyError("oops")

    assert not exercise.check(not_started)
    assert "not done yet" in capsys.readouterr().out
    verdict = exercise.check(crashes)
    assert not verdict and "raised KeyError" in verdict.message
    assert not exercise.check()  # nothing called `var` in this test module's globals
    assert "not defined yet" in capsys.readouterr().out


def test_ch00_wrong_answers_are_explained():
    from helpers.course.exercises import ch00

    unnormalised = ch00.q1.check(lambda a, b: a @ b.T)
    assert not unnormalised and "lengths" in unnormalised.message
    wrong_shape = ch00.q1.check(lambda a, b: (a @ b.T).sum(0))
    assert not wrong_shape and "shape" in wrong_shape.message
    worst_first = ch00.q2.check(
        lambda q, items, k: torch.topk(items @ q, k, largest=False).indices)
    assert not worst_first and "best first" in worst_first.message


def test_check_finds_the_answer_in_the_callers_globals():
    global cosine_similarity
    from helpers.course.exercises import ch00
    from helpers.models.similarity import cosine_similarity as reference

    cosine_similarity = reference
    try:
        assert ch00.q1.check()
    finally:
        del cosine_similarity


def test_hint_and_solution_print_outside_jupyter(capsys):
    from helpers.course.exercises import ch00

    ch00.q1.hint()
    ch00.q1.hint(2)
    ch00.q1.solution()
    out = capsys.readouterr().out
    assert "Hint 1 (ch00.q1)" in out and "ch00.q1.hint(2)" in out       # the idea, then where next
    assert "Hint 2 (ch00.q1)" in out and "ch00.q1.solution()" in out
    assert "def cosine_similarity" in out
    with pytest.raises(ValueError, match="level"):
        ch00.q1.hint(3)


def test_incorrect_is_an_assertion_error():
    assert issubclass(Incorrect, AssertionError)


def test_ch01_wrong_answers_are_explained():

    from helpers.course.exercises import ch01

    no_strip = ch01.q1.check(lambda s: s.str.lower().str.replace(" ", "_"))
    assert not no_strip and "should become" in no_strip.message
    unsorted = ch01.q2.check(lambda ev: ev.groupby("user_id")["timestamp"].diff()
                             .groupby(ev["user_id"]).median())
    assert not unsorted and "sort" in unsorted.message
    def keeps_singletons(df):
        test = df.loc[df.groupby("user_id")["timestamp"].idxmax()]
        return df.drop(test.index), test
    verdict = ch01.q3.check(keeps_singletons)
    assert not verdict and "should not be there" in verdict.message
    assert not ch01.q3.check(lambda df: df)  # not a (train, test) tuple


def test_ch03_wrong_answers_are_explained():
    import math

    from helpers.course.exercises import ch03

    def scores(q, k, mask):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return s if mask is None else s.masked_fill(~mask, float("-inf"))

    output_only = ch03.q1.check(lambda q, k, v, mask=None: torch.softmax(scores(q, k, mask), -1) @ v)
    assert not output_only and "(output, weights)" in output_only.message
    unscaled = ch03.q1.check(lambda q, k, v, mask=None: (torch.softmax(q @ k.transpose(-2, -1), -1)
                                                         @ v, torch.softmax(q @ k.mT, -1)))
    assert not unscaled and "sqrt(d_k)" in unscaled.message
    def nan_rows(q, k, v, mask=None):
        w = torch.softmax(scores(q, k, mask), -1)
        return w @ v, w
    verdict = ch03.q1.check(nan_rows)
    assert not verdict and "nan_to_num" in verdict.message


def test_ch06_wrong_answers_are_explained():
    import math

    from torch.nn import functional as F

    from helpers.course.exercises import ch06

    no_padding = ch06.q1.check(lambda n, k, s=1, p=0: (n - k) // s + 1)
    assert not no_padding and "in torch, you said 62" in no_padding.message
    rounds_up = ch06.q1.check(lambda n, k, s=1, p=0: math.ceil((n + 2 * p - k) / s) + 1)
    assert not rounds_up
    def one_side(a, b, t):
        logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / t
        return F.cross_entropy(logits, torch.arange(len(a)))
    verdict = ch06.q2.check(one_side)
    assert not verdict and "text→image half" in verdict.message
    unnormalised = ch06.q2.check(lambda a, b, t: F.cross_entropy(a @ b.T / t, torch.arange(len(a))))
    assert not unnormalised and "Normalise" in unnormalised.message
    unmasked = ch06.q3.check(lambda q, tok, present: torch.softmax(tok @ q / math.sqrt(tok.shape[-1]), -1))
    assert not unmasked and "missing modality" in unmasked.message
    unscaled = ch06.q3.check(lambda q, tok, present: torch.softmax(
        (tok @ q).masked_fill(~present, float("-inf")), -1))
    assert not unscaled and "sqrt(d)" in unscaled.message


def test_ch07_wrong_answers_are_explained():
    import numpy as np

    from helpers.course.exercises import ch07

    def normal(x, n_boot=2000, level=0.95, seed=0):
        x = np.asarray(x)
        s = x.std(ddof=1) / np.sqrt(len(x))
        return float(x.mean() - 1.96 * s), float(x.mean() + 1.96 * s)
    verdict = ch07.q1.check(normal)
    assert not verdict and "normal approximation" in verdict.message

    def one_sided(a, b, n_perm=10_000, seed=0):
        d = np.asarray(a) - np.asarray(b)
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, len(d)))
        return float((np.sum((signs * d).mean(1) >= d.mean()) + 1) / (n_perm + 1))
    assert not ch07.q2.check(one_sided)

    def unpaired(a, b, n_perm=10_000, seed=0):   # shuffles users, not signs: p near 1
        rng = np.random.default_rng(seed)
        d = np.asarray(a) - np.asarray(b)
        null = [abs((rng.permutation(a) - b).mean()) for _ in range(200)]
        return float((np.sum(np.array(null) >= abs(d.mean())) + 1) / 201)
    assert not ch07.q2.check(unpaired)

    def reversed_kl(p, q, alpha=0.01):
        p, q = np.asarray(p, float), np.asarray(q, float)
        q_t = (1 - alpha) * q + alpha * p
        return float(np.sum(q_t * np.log(q_t / p)))
    verdict = ch07.q3.check(reversed_kl)
    assert not verdict and "KL(q~ || p)" in verdict.message
    no_mix = ch07.q3.check(lambda p, q, alpha=0.01: float(np.sum(np.asarray(p)[np.asarray(p) > 0] * np.log(
        np.asarray(p)[np.asarray(p) > 0] / np.asarray(q)[np.asarray(p) > 0]))))
    assert not no_mix


def test_ch08_wrong_answers_are_explained():
    import numpy as np

    from helpers.course.exercises import ch08
    from helpers.models import privacy
    from helpers.serving import rerank

    def unscaled(r, s, k, lam=0.7):              # MMR on raw scores
        r = np.asarray(r, float)
        chosen = [int(np.argmax(r))]
        while len(chosen) < k:
            gain = lam * r - (1 - lam) * s[:, chosen].max(1)
            gain[chosen] = -np.inf
            chosen.append(int(np.argmax(gain)))
        return np.array(chosen)
    verdict = ch08.q2.check(unscaled)
    assert not verdict and "min-max scale" in verdict.message
    summed = lambda r, s, k, lam=0.7: rerank.mmr(r, s.cumsum(1), k, lam)  # noqa: E731
    assert not ch08.q2.check(summed)
    assert ch08.q2.check(rerank.mmr)

    def no_confidence(Y, items, reg, alpha):
        return np.linalg.solve(Y.T @ Y + reg * np.eye(Y.shape[1]), Y[items].sum(0))
    verdict = ch08.q3.check(no_confidence)
    assert not verdict and "confidence" in verdict.message

    def only_met(Y, items, reg, alpha):
        y = Y[items]
        return np.linalg.solve(y.T @ y + reg * np.eye(Y.shape[1]), y.sum(0))
    verdict = ch08.q3.check(only_met)
    assert not verdict and "every other item" in verdict.message

    verdict = ch08.q6.check(lambda g, C, sigma, gen=None: g.clamp(-C, C).mean(0))
    assert not verdict and "each coordinate" in verdict.message
    verdict = ch08.q6.check(lambda g, C, sigma, gen=None: privacy.clip_and_noise(g, C, sigma, gen)
                            * len(g))
    assert not verdict and "batch size" in verdict.message
    assert ch08.q6.check(privacy.clip_and_noise)
    from sklearn.metrics.pairwise import cosine_distances

    verdict = ch08.q1.check(lambda v: float(cosine_distances(v).mean()))
    assert not verdict and "diagonal" in verdict.message
    assert ch08.q1.check(lambda v: float(cosine_distances(v)[np.triu_indices(len(v), 1)].mean()))

    def learns_first(stream, recommend, learn, k=10):
        hits = []
        for ev in stream.sort_values("timestamp").itertuples():
            learn(ev.user_id, ev.item_id)
            hits.append(ev.item_id in recommend(ev.user_id, k))
        return np.array(hits)
    verdict = ch08.q4.check(learns_first)
    assert not verdict and "Predict first" in verdict.message

    def unsorted(stream, recommend, learn, k=10):
        hits = []
        for ev in stream.itertuples():
            hits.append(ev.item_id in recommend(ev.user_id, k))
            learn(ev.user_id, ev.item_id)
        return np.array(hits)
    verdict = ch08.q4.check(unsorted)
    assert not verdict and "time order" in verdict.message

    def higher_wins(m, o):
        m, o = np.asarray(m)[:, None], np.asarray(o)[None, :]
        return float(((m > o) + 0.5 * (m == o)).mean())
    verdict = ch08.q5.check(higher_wins)
    assert not verdict and "1 - AUC" in verdict.message
    verdict = ch08.q5.check(lambda m, o: float((np.asarray(m)[:, None] < np.asarray(o)[None, :]).mean()))
    assert not verdict and "half" in verdict.message


def test_ch10_wrong_answers_are_explained():
    import numpy as np

    from helpers.course.exercises import ch10
    from helpers.metrics.ranking import rank_from_scores

    def reference(scores, seen, k):                 # the course's ranking, a mask per row
        mask = np.zeros(scores.shape, dtype=bool)
        for r, cols in enumerate(seen):
            mask[r, cols] = True
        return [row[row >= 0] for row in rank_from_scores(scores, k, exclude=mask)]
    assert ch10.q1.check(reference)
    verdict = ch10.q1.check(lambda s, seen, k: [np.argsort(-row, kind="stable")[:k] for row in s])
    assert not verdict and "already met" in verdict.message

    def unstable(s, seen, k):                       # quicksort: ties in any order
        s = s.copy()
        for r, cols in enumerate(seen):
            s[r, cols] = -np.inf
        out = []
        for row in s:
            order = np.argsort(-row, kind="stable")[:k]
            out.append(order[np.isfinite(row[order])][::-1])
        return out
    verdict = ch10.q1.check(unstable)
    assert not verdict and "wrong order" in verdict.message

    def pads(s, seen, k):                           # a short row padded with seen items
        s = s.copy()
        for r, cols in enumerate(seen):
            s[r, cols] = -np.inf
        return list(np.argsort(-s, axis=1, kind="stable")[:, :k])
    verdict = ch10.q1.check(pads)
    assert not verdict and "fewer than k" in verdict.message

    def in_place(s, seen, k):
        for r, cols in enumerate(seen):
            s[r, cols] = -np.inf
        return reference(s, seen, k)
    verdict = ch10.q1.check(in_place)
    assert not verdict and "changed the scores" in verdict.message

    def amdahl(serial, workers):
        if not 0 <= serial <= 1 or workers < 1:
            raise ValueError("out of range")
        return 1 / (serial + (1 - serial) / workers)
    assert ch10.q2.check(amdahl)
    verdict = ch10.q2.check(lambda s, n: float(n))
    assert not verdict and "ideal speed-up" in verdict.message
    verdict = ch10.q2.check(lambda s, n: s + (1 - s) / n)
    assert not verdict and "inverse" in verdict.message
    verdict = ch10.q2.check(lambda s, n: 1 / (s + (1 - s) / n))
    assert not verdict and "ValueError" in verdict.message


@pytest.mark.parametrize("chapter,name,exercise", ALL, ids=[f"{c}.{n}" for c, n, _ in ALL])
def test_the_call_a_failing_check_suggests_works_where_the_notebook_imported_it(
        chapter, name, exercise, capsys):
    """A notebook imports only its chapter's module (`from helpers.course.exercises import ch03`): the
    hint a failed check names must run there, not raise NameError."""
    import re

    def crashes(*args, **kwargs):
        raise KeyError("oops")

    verdict = exercise.check(crashes)
    call = re.search(r"Try (\S+\.hint\(\))", verdict.message).group(1)
    namespace = {}
    exec(f"from helpers.course.exercises import {chapter}", namespace)
    exec(call, namespace)
    assert exercise.nudge in capsys.readouterr().out


@pytest.mark.parametrize("chapter,name,exercise", ALL, ids=[f"{c}.{n}" for c, n, _ in ALL])
def test_two_hint_levels_the_first_in_words(chapter, name, exercise):
    """Hint 1 gives the idea without code; hint 2 is close to the code; then the solution."""
    assert exercise.nudge and exercise.nudge != exercise.hint_text
    assert "`" not in exercise.nudge and "(" not in exercise.nudge.split(".")[0].split()[0]


def test_progress_summarises_a_chapter_lesson_by_lesson(capsys):
    from helpers.course.exercises import ch07

    ns = {"ch07": ch07}
    exec("def sign_flip_p(*a, **k):\n    raise NotImplementedError", ns)
    exec("calibration_kl = lambda p, q, alpha=0.01: 0.0", ns)
    exec(ch07.q1.solution_code(), {**ns, "np": __import__("numpy")}, ns)
    exec("states = ch07.progress()", ns)
    assert list(ns["states"]) == ["ch07.q1", "ch07.q2", "ch07.q3", "ch07.q4", "ch07.quiz_a",
                                  "ch07.q5", "ch07.q6", "ch07.quiz_b"]  # 07a's, then 07b's
    assert ns["states"] == {"ch07.q1": "correct", "ch07.q2": "not started",
                            "ch07.q3": "incorrect", "ch07.q4": "not defined",
                            "ch07.q5": "not defined", "ch07.q6": "not defined",
                            "ch07.quiz_a": "not defined", "ch07.quiz_b": "not defined"}
    out = capsys.readouterr().out
    assert "1 of 8 exercises done (07a: 1 of 5; 07b: 0 of 3)" in out
    assert "07a ch07.q2: ⏳ not started" in out and "07b ch07.q5" in out
    for module in CHAPTER_MODULES:
        assert callable(module.progress)


def test_feedback_prints_numbers_as_numbers():
    import numpy as np

    from helpers.course.exercises import ch02, ch05, fmt

    assert fmt((np.int64(4), np.int64(7))) == "(4, 7)" and fmt(np.float64(0.6759999990463257)) == "0.676"
    verdict = ch02.q3.check(lambda ranked, relevant, k: np.float64(0.6759999990463257))
    assert not verdict and "0.6759999" not in verdict.message
    verdict = ch05.q1.check(lambda hyp, ref, n: (np.int64(0), np.int64(1)))
    assert not verdict and "np.int64" not in verdict.message and "(0, 1)" in verdict.message


# ----------------------------------------------------------------------------- questionnaires
def test_every_chapter_ends_with_a_questionnaire_in_its_notebook():
    """Each solution notebook shows, answers and checks its own questionnaire (5-8 questions);
    the answers in the notebook are the questionnaire's own."""
    by_notebook = {q.notebook: (c, n, q) for c, n, q in QUIZZES}
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        assert path.name in by_notebook, f"{path.name} has no questionnaire"
        chapter, name, quiz = by_notebook[path.name]
        assert 5 <= len(quiz.questions) <= 8
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                         if c.cell_type == "code")
        assert f"{chapter}.{name}.show()" in code and f"{chapter}.{name}.check()" in code
        ns = {}
        exec(next(c.source for c in nbformat.read(path, as_version=4).cells
                  if c.cell_type == "code" and f"{quiz.var} =" in c.source), ns)
        assert ns[quiz.var] == {k: q.answer for k, q in enumerate(quiz.questions, 1)}


@pytest.mark.parametrize("chapter,name,quiz", QUIZZES, ids=[f"{c}.{n}" for c, n, _ in QUIZZES])
def test_every_wrong_answer_gets_its_own_explanation(chapter, name, quiz):
    right = {k: q.answer for k, q in enumerate(quiz.questions, 1)}
    assert quiz.check(right)
    for k, q in enumerate(quiz.questions, 1):
        wrong = ([o for o in q.options if o != q.answer] if isinstance(q, Choice)
                 else list(q.traps) + [q.answer + 1000 * q.tol + 1])
        for w in wrong:
            verdict = quiz.check({**right, k: w})
            assert not verdict and "of %d right" % len(quiz.questions) in verdict.message
            line = next(x for x in verdict.message.split("\n") if x.startswith(f"Q{k}:"))
            assert "not quite" in line
            if isinstance(q, Choice):
                assert q.why[w] in line and q.why[q.answer] not in line
            elif w in q.traps:
                assert q.traps[w] in line


def test_questionnaire_answers_are_checked_kindly(capsys):
    from helpers.course.exercises import ch02

    quiz = ch02.quiz_a
    verdict = quiz.check(["b", "a"])
    assert not verdict and "must be a dict" in verdict.message
    verdict = quiz.check({1: "b", 99: "a"})
    assert not verdict and "no question [99]" in verdict.message
    verdict = quiz.check({1: "B ", 3: "two"})            # letters forgive case and spaces
    assert "Q1: right" in verdict.message and "Q2: not answered yet" in verdict.message
    assert "answer with a number" in verdict.message
    verdict = quiz.check({1: "z"})
    assert "one of the letters a, b, c" in verdict.message
    assert not quiz.check()                               # nothing called quiz_answers here
    assert "not defined yet" in capsys.readouterr().out
    quiz.show()
    out = capsys.readouterr().out
    assert out.count("**") >= 2 * len(quiz.questions) and "ch02.quiz_a.check()" in out


def test_a_questionnaire_refuses_to_be_built_wrong():
    with pytest.raises(ValueError, match="every option needs an explanation"):
        Choice("?", {"a": "x", "b": "y"}, "a", {"a": "right"})   # b has no explanation
    with pytest.raises(ValueError):
        Choice("?", {"a": "x", "b": "y"}, "c", {"a": "no", "b": "no"})   # c is no option
    with pytest.raises(ValueError, match="5 to 8"):
        Quiz("chXX.quiz", "none.ipynb", [Numeric("?", 1.0, "why")] * 3, where="here")


@pytest.mark.parametrize("chapter,name,quiz", QUIZZES, ids=[f"{c}.{n}" for c, n, _ in QUIZZES])
def test_a_questionnaires_hint_points_every_question_somewhere(chapter, name, quiz):
    import re

    named = {int(n) for n in re.findall(r"Q(\d+)", quiz.hint_text)}
    assert named == set(range(1, len(quiz.questions) + 1)), (quiz.name, named)
