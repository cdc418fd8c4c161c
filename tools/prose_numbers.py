"""Numbers in a chapter's prose that its own outputs do not show: the list a maintainer reviews.

    .venv/bin/python tools/prose_numbers.py            # every solution notebook
    .venv/bin/python tools/prose_numbers.py 06a_images_and_text

A number written in a Markdown cell should come from the notebook (printed by a cell, or
asserted in one) or be a fact from outside it (a paper, a model's size, a setting, a result of a
committed benchmark). This finds the first kind's failures mechanically: each number of two or
more digits (or with %, x) in the prose — maths, inline code, headings and citation years left
out, and years, chapter and arXiv numbers too — that appears in no output and no source of the
notebook's code cells. tests/test_prose_numbers.py fails on any such number that is not listed,
with the reason it may stand, in tests/prose_numbers.toml.

It cannot see a number that appears in the outputs but is stated wrongly in the prose (that is
what the asserts in the cells are for), nor a claim made in words ("most", "twice").
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
_NUMBER = re.compile(r"(?<![\w.$^_{\\/:-])(\d+(?:[.,]\d+)*)(\s?%|x|×)?(?![\w}])")
_SKIP = [r"\$[^$]*\$", r"`[^`]*`", r"\([^)]*\b(?:19|20)\d\d[a-z]?\)", r"^#+ .*$",
         r"\b(?:[Cc]hapters?|ch\.)\s+\d\d[a-z]?(?:\s*(?:,|and|–|-|to)\s*\d\d[a-z]?)*",
         r"arXiv:\S+", r"\]\([^)]*\)"]


def _outputs_and_code(nb) -> str:
    parts = []
    for c in nb.cells:
        if c.cell_type == "code":
            parts.append(c.source)
            for o in c.outputs:
                parts.append(o.get("text", ""))
                data = o.get("data", {})
                parts += [str(data.get(k, "")) for k in ("text/plain", "text/markdown",
                                                          "text/html")]
    return "\n".join(parts)


def unshown_numbers(path: Path) -> list[tuple[int, str, str]]:
    """(cell index, number, context) for each prose number the notebook's cells do not show."""
    nb = nbformat.read(path, as_version=4)
    shown = _outputs_and_code(nb)
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        for pattern in _SKIP:
            text = re.sub(pattern, " ", text, flags=re.M)
        for m in _NUMBER.finditer(text):
            number, unit = m.group(1), m.group(2) or ""
            digits = number.replace(",", "").replace(".", "")
            if (len(digits) < 2 and not unit) or re.fullmatch(r"(?:19|20)\d\d", number):
                continue                                  # one digit, or a year
            if number in shown or number.replace(",", "") in shown:
                continue
            context = " ".join(text[max(0, m.start() - 60):m.end() + 30].split())
            found.append((i, number + unit.strip(), context))
    return found


def main(argv: list[str]) -> int:
    stems = argv or [p.stem for p in sorted((ROOT / "solutions").glob("*.ipynb"))]
    for stem in stems:
        found = unshown_numbers(ROOT / "solutions" / f"{stem}.ipynb")
        print(f"{stem}: {len(found)}")
        for cell, number, context in found:
            print(f"  cell {cell}: {number!r} in …{context}…")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
