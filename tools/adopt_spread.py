"""Adopt the spread run's executed notebooks as the committed solutions.

After ``tools/measure_spread.sh STEM`` and ``tools/spread.py``, the default setting's executed
notebooks (``build/spread/default/executed/``) are what a re-execution with the final code and
expectations would leave, except for two things this fixes: a ``rec(...)`` on a cell's last line
echoed its value (the runs record without checking), and the recorder's closing line says
"recording" instead of the committed expectations' count. Markdown edits made to a solution after
its spread run started are overwritten: re-apply them, then ``make chapters``.

    .venv/bin/python tools/adopt_spread.py [STEM ...]     (default: every executed notebook)
"""
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.course.results import load_expectations  # noqa: E402


def main(stems: list[str]) -> None:
    runs = sorted((ROOT / "build/spread/default/executed").glob("*.ipynb"))
    if stems:
        runs = [p for p in runs if p.stem in stems]
    if not runs:
        sys.exit("no executed notebooks under build/spread/default/executed (run "
                 "tools/measure_spread.sh first)")
    for src in runs:
        nb = nbformat.read(src, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            lines = [line for line in cell.source.splitlines() if line.strip()]
            if lines and lines[-1].startswith("rec(") and not lines[-1].startswith("rec.table"):
                before = len(cell.outputs)
                cell.outputs = [o for o in cell.outputs if o.output_type != "execute_result"]
                if before != len(cell.outputs):
                    print(f"{src.stem}: dropped the echoed value of {lines[-1][:50]!r}")
            if cell.source.startswith("recorded = rec.finish()"):
                n_exp = len(load_expectations(src.stem)["results"])
                for o in cell.outputs:
                    if o.output_type == "stream" and "Recorder(" in o.text:
                        m = re.search(r"(\d+) recorded", o.text)
                        o.text = (f"Recorder({src.stem!r}: {m.group(1)} recorded, {n_exp} "
                                  "expected, checking)\n")
                        print(f"{src.stem}: {o.text.strip()}")
        nbformat.write(nb, ROOT / "solutions" / src.name)
        print(f"adopted {src.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
