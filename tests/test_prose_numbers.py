"""Issue 18's sweep, kept: every number in a chapter's prose is shown by the notebook's own cells
or listed, with its reason, in tests/prose_numbers.toml (tools/prose_numbers.py
says how numbers are found and what it cannot see)."""
import sys
import tomllib

import pytest

from helpers.core.config import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from prose_numbers import unshown_numbers  # noqa: E402

REVIEWED = tomllib.loads((ROOT / "tests" / "prose_numbers.toml").read_text())
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_prose_number_is_shown_or_reviewed(path):
    reviewed = REVIEWED.get(path.stem, {})
    found = unshown_numbers(path)
    new = [f"cell {c}: {n} in …{ctx}…" for c, n, ctx in found if n not in reviewed]
    assert not new, ("numbers in the prose that no cell shows: print or assert them in a cell, "
                     "or list them with their reason in tests/prose_numbers.toml:\n"
                     + "\n".join(new))
    stale = set(reviewed) - {n for _, n, _ in found}
    assert not stale, f"listed but no longer in the prose (remove them): {sorted(stale)}"
    assert all(len(why) > 10 for why in reviewed.values())


def test_the_finder_finds_an_unprinted_number(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("print('NDCG 0.412')"),
                             new_markdown_cell("NDCG reached 0.412 (chapter 02), and 0.437 "
                                               "elsewhere; see `x = 0.999` and $0.555$ (Smith, "
                                               "2019).")])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert [n for _, n, _ in unshown_numbers(path)] == ["0.437"]
