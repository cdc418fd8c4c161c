"""The library is the code the chapters teach (d2l's rule): where a chapter has the student write
an algorithm, the library's core of it is that solution, line for line, and the library's public
function only checks the inputs around it. Comments, docstrings and blank lines aside, the two
must be the same code; change one and this test says to change the other."""
from __future__ import annotations

import ast
import inspect
import json
import textwrap

import pytest

from helpers.core.config import ROOT
from helpers.models import privacy
from helpers.serving import rerank

# (solution notebook, the function the student writes there, the library's core of it)
MIRRORS = [
    ("08a_diversity.ipynb", "mmr", rerank._mmr),
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
