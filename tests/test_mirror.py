"""The library is the code the chapters teach (d2l's rule): where a chapter has the student write
an algorithm, the library's core of it is that solution, line for line, and the library's public
function only checks the inputs around it. Comments, docstrings and blank lines aside, the two
must be the same code; change one and this test says to change the other."""
from __future__ import annotations

import ast
import inspect
import json
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from helpers.core.config import ROOT
from helpers.evaluation import offline
from helpers.metrics import ranking, text
from helpers.models import attention, cf, privacy
from helpers.reasons import lm
from helpers.serving import online, rerank

# (solution notebook, the function the student writes there, the library's core of it)
MIRRORS = [
    ("03_self_attention.ipynb", "attention", attention._attention),
    ("05b_language_models.ipynb", "top_p", lm._top_p),
    ("05a_templates_and_retrieval.ipynb", "clipped", text._clipped),
    ("07a_evaluating_recommendations.ipynb", "calibration_kl", offline._calibration_kl),
    ("08a_diversity.ipynb", "mmr", rerank._mmr),
    ("08b_realtime.ipynb", "top_unmet", online.top_unmet),
    ("08c_privacy.ipynb", "clip_and_noise", privacy._clip_and_noise),
]


def _code(source: str, name: str) -> str:
    """The body of function ``name`` in ``source`` without its docstring, as ast.unparse writes
    it (so comments, blank lines and quote styles do not count)."""
    tree = ast.parse(textwrap.dedent(source))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) and \
        isinstance(getattr(fn.body[0], "value", None), ast.Constant) else fn.body
    args = ast.unparse(fn.args)
    return args + "\n" + "\n".join(ast.unparse(n) for n in body)


def _solution_source(notebook: str, name: str) -> str:
    cells = json.loads((ROOT / "solutions" / notebook).read_text())["cells"]
    for cell in cells:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {name}(" in src:
            return "\n".join(line for line in src.splitlines() if "### " not in line)
    raise AssertionError(f"solutions/{notebook} defines no {name}()")


@pytest.mark.parametrize("notebook,name,core", MIRRORS, ids=[m[1] for m in MIRRORS])
def test_the_library_core_is_the_chapters_solution(notebook, name, core):
    chapter = _code(_solution_source(notebook, name), name)
    library = _code(inspect.getsource(core), core.__name__)
    assert chapter == library, (f"solutions/{notebook}'s {name}() and {core.__module__}."
                                f"{core.__name__} differ: change both, or neither")


def test_a_changed_line_breaks_the_mirror():
    source = inspect.getsource(rerank._mmr)
    changed = source.replace("(1 - lam) * closest", "(1 - lam) * closest * 2")
    assert _code(changed, "_mmr") != _code(source, "_mmr")
    assert _code(source.replace("# each candidate", "# every candidate"), "_mmr") == \
        _code(source, "_mmr")                   # a comment is not code


# Where the library must do the chapter's computation for many rows at once, the code differs
# on purpose (a batched solve, a vectorised metric, a rank-based AUC) and the test is that it
# computes the same numbers: (notebook, the student's function, a check that takes it).
def _fold_in_same(fold_in):
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(30, 4))
    items = [[2, 7, 11], [0], list(range(0, 30, 3))]
    rows = sp.csr_matrix((np.ones(sum(map(len, items))),
                          (np.repeat(np.arange(3), [len(i) for i in items]),
                           np.concatenate(items))), shape=(3, 30))
    batched = cf.ImplicitALS._solve(rows, Y, reg=0.5, alpha=8.0)
    one_by_one = np.stack([fold_in(Y, i, 0.5, 8.0) for i in items])
    return np.allclose(batched, one_by_one, atol=1e-10)


def _ndcg_same(ndcg_at_k):
    rng = np.random.default_rng(1)
    top = np.stack([rng.permutation(50)[:10] for _ in range(20)])
    relevant = [set(rng.choice(50, size=rng.integers(1, 6), replace=False).tolist())
                for _ in range(20)]
    per_user = ranking.ndcg_per_user(top, relevant, 10)
    return np.allclose(per_user, [ndcg_at_k(list(t), r, 10) for t, r in zip(top, relevant)])


def _attack_auc_same(attack_auc):
    rng = np.random.default_rng(2)
    members, others = rng.normal(0, 1, 40).round(1), rng.normal(0.3, 1, 55).round(1)  # ties
    return np.isclose(privacy._attack_auc(members, others), attack_auc(members, others))


EQUIVALENT = [
    ("08b_realtime.ipynb", "fold_in", _fold_in_same),
    ("02b_top_k_ranking.ipynb", "ndcg_at_k", _ndcg_same),
    ("08c_privacy.ipynb", "attack_auc", _attack_auc_same),
]


def _solution_function(notebook: str, name: str):
    namespace = {"np": np, "torch": torch, "math": __import__("math")}
    exec(_solution_source(notebook, name), namespace)
    return namespace[name]


@pytest.mark.parametrize("notebook,name,same", EQUIVALENT, ids=[e[1] for e in EQUIVALENT])
def test_the_library_computes_what_the_chapter_computes(notebook, name, same):
    assert same(_solution_function(notebook, name)), \
        f"the library's batched {name} and solutions/{notebook}'s differ"


def test_a_wrong_chapter_function_breaks_the_equivalence():
    def no_alpha(Y, items, reg, alpha):                     # forgets the confidence weights
        y = Y[np.asarray(items)]
        return np.linalg.solve(Y.T @ Y + reg * np.eye(Y.shape[1]), y.sum(axis=0))
    assert not _fold_in_same(no_alpha)
    assert not _attack_auc_same(lambda m, o: float((np.asarray(m)[:, None] < o).mean()))  # no ties
