"""Notebook tooling: student notebooks from solutions, and the headless course run.

``solutions/`` is the only place anyone edits. Inside a code cell the student's part is fenced
with nbgrader's markers::

    def cosine_similarity(a, b):
        ### BEGIN SOLUTION
        return a @ b.T / ...
        ### END SOLUTION

:func:`student_notebook` turns a solution notebook into the student's version: each fenced block
becomes ``# YOUR CODE HERE`` plus a ``raise NotImplementedError`` naming the exercise, the
stubbed cell is tagged ``raises-exception`` (so nbval expects the error), cells tagged
``solution-only`` are dropped, ``# NBVAL_CHECK_OUTPUT`` markers are removed (a student's output
is theirs), and every output is cleared.

Command line::

    python -m helpers.course.notebooks chapters          # write chapters/ from solutions/
    python -m helpers.course.notebooks chapters --check  # fail if chapters/ is stale
    python -m helpers.course.notebooks run               # execute solutions/ into build/, with a report
    python -m helpers.course.notebooks affected          # chapters a change since main touches (make check)
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import sys
import time
from pathlib import Path

from helpers.core import config
from helpers.course import launch as launching
from helpers.course.launch import EXTRAS
from helpers.course.results import load_expectations, results_dir

__all__ = ["BEGIN", "END", "FenceError", "solution_blocks", "stub_source", "student_notebook",
           "launch_cells", "make_chapters", "stale_chapters", "run_course", "module_imports",
           "notebook_modules", "affected_notebooks", "changed_files"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
SOLUTIONS = config.ROOT / "solutions"
CHAPTERS = config.ROOT / "chapters"


class FenceError(ValueError):
    """A solution cell's BEGIN/END SOLUTION fences do not pair up."""


def solution_blocks(source: str) -> list[tuple[int, int]]:
    """Return ``(begin_line, end_line)`` index pairs of every fenced block in ``source``."""
    blocks, start = [], None
    for i, line in enumerate(source.splitlines()):
        stripped = line.strip()
        if stripped == BEGIN:
            if start is not None:
                raise FenceError(f"line {i + 1}: '{BEGIN}' inside another fenced block "
                                 f"(opened on line {start + 1}); close it with '{END}' first.")
            start = i
        elif stripped == END:
            if start is None:
                raise FenceError(f"line {i + 1}: '{END}' without a matching '{BEGIN}'.")
            blocks.append((start, i))
            start = None
    if start is not None:
        raise FenceError(f"line {start + 1}: '{BEGIN}' is never closed with '{END}'.")
    return blocks


def _exercise_name(lines: list[str], begin: int, end: int) -> str:
    """The enclosing function's name, else the first name the block assigns."""
    indent = len(lines[begin]) - len(lines[begin].lstrip())
    for line in reversed(lines[:begin]):
        m = re.match(r"(\s*)def\s+(\w+)\s*\(", line)
        if m and len(m.group(1)) < indent:
            return m.group(2)
    for line in lines[begin + 1:end]:
        m = re.match(r"\s*(\w+)\s*(?::[^=]+)?=(?!=)", line)
        if m:
            return m.group(1)
    return "this exercise"


def stub_source(source: str) -> tuple[str, bool]:
    """Replace each fenced block by a stub. Returns ``(new_source, changed)``."""
    blocks = solution_blocks(source)
    if not blocks:
        return source, False
    lines = source.splitlines()
    out, pos = [], 0
    for begin, end in blocks:
        out.extend(lines[pos:begin])
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        name = _exercise_name(lines, begin, end)
        out.append(f"{indent}# YOUR CODE HERE")
        out.append(f'{indent}raise NotImplementedError("Exercise `{name}`: replace this line '
                   'with your code")')
        pos = end + 1
    out.extend(lines[pos:])
    return "\n".join(out), True


def launch_cells(name: str, launch: dict) -> list[dict]:
    """The cells every student notebook gets after its title (``helpers.course.launch``): the Colab and
    Binder links when a public repository is set, and the launch cell. Fixed cell ids, so that
    ``make chapters`` writes the same bytes each time."""

    cells = []
    links = launching.links_markdown(name, launch)
    if links:
        cells.append({"cell_type": "markdown", "id": "launch-links", "metadata": {},
                      "source": links})
    cells.append({"cell_type": "code", "id": "launch-cell", "execution_count": None,
                  "metadata": {"tags": [launching.LAUNCH_TAG]}, "outputs": [],
                  "source": launching.cell_source(name, launch)})
    return cells


def student_notebook(nb: dict, name: str | None = None, launch: dict | None = None) -> dict:
    """The student's version of a solution notebook (a new dict; ``nb`` is not changed).

    With ``name`` (the notebook's file name) the launch cells follow the title cell
    (:func:`launch_cells`; ``launch`` defaults to ``pyproject.toml``'s settings)."""
    nb = copy.deepcopy(nb)
    cells = []
    for index, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution-only" in tags:
            continue
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            try:
                source, changed = stub_source(source)
            except FenceError as err:
                raise FenceError(f"cell {index}: {err}") from None
            source = "\n".join(line for line in source.splitlines()
                               if line.strip() != CHECK_MARKER)
            cell["source"] = source
            cell["outputs"] = []
            cell["execution_count"] = None
            if changed and "raises-exception" not in tags:
                cell.setdefault("metadata", {})["tags"] = [*tags, "raises-exception"]
            cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    if name is not None:

        tag = launching.LAUNCH_TAG
        if any(tag in c.get("metadata", {}).get("tags", []) for c in cells):
            raise FenceError(f"{name}: a solution cell is tagged {tag!r}; the launch cell "
                             "is added by make chapters, remove it from the solution.")
        cells[1:1] = launch_cells(name, launching.settings() if launch is None else launch)
    nb["cells"] = cells
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def _read(path: Path) -> dict:
    import nbformat

    return nbformat.read(path, as_version=4)


def _dumps(nb: dict) -> str:
    import nbformat

    return nbformat.writes(nbformat.from_dict(nb)) + "\n"


def _expected_chapters(solutions: Path) -> dict[str, str]:
    notebooks = sorted(solutions.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"No notebooks in {solutions}.")
    settings = launching.settings()
    return {p.name: _dumps(student_notebook(_read(p), p.name, settings)) for p in notebooks}


def stale_chapters(solutions: Path = SOLUTIONS, chapters: Path = CHAPTERS) -> list[str]:
    """Names of student notebooks that differ from what the generator makes (or are missing,
    or have no solution any more). Empty when ``chapters/`` is up to date."""
    expected = _expected_chapters(solutions)
    stale = [name for name, text in expected.items()
             if not (chapters / name).exists() or (chapters / name).read_text() != text]
    stale += [p.name for p in sorted(chapters.glob("*.ipynb")) if p.name not in expected]
    return stale


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static_view(nb: dict) -> dict:
    """``nb`` without widget artefacts: the outputs that only a live kernel can draw (a
    ``tqdm.auto`` bar is an ipywidget: on GitHub or nbviewer it shows as an empty "0%" bar or a
    stray ``HBox(...)``) and the widget state they point to. Every other output is kept as it is.
    """
    nb = copy.deepcopy(nb)
    for cell in nb.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"]
                               if WIDGET_VIEW not in o.get("data", {})]
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def _static_texts(solutions: Path) -> dict[Path, str]:
    """Each solution that carries widget artefacts -> its text without them (read once)."""
    out = {}
    for path in sorted(solutions.glob("*.ipynb")):
        text = _dumps(static_view(_read(path)))
        if text != path.read_text():
            out[path] = text
    return out


def not_static(solutions: Path = SOLUTIONS) -> list[str]:
    """Names of solution notebooks whose committed outputs carry widget artefacts."""
    return [path.name for path in _static_texts(solutions)]


def make_static(solutions: Path = SOLUTIONS) -> list[Path]:
    """Rewrite the solutions that carry widget artefacts as :func:`static_view` makes them (what
    ``make chapters`` does after a solution is re-executed). Returns the paths rewritten."""
    texts = _static_texts(solutions)
    for path, text in texts.items():
        path.write_text(text)
    return list(texts)


def make_chapters(solutions: Path = SOLUTIONS, chapters: Path = CHAPTERS) -> list[Path]:
    """Write every student notebook; remove ones whose solution is gone. Returns the paths."""
    chapters.mkdir(parents=True, exist_ok=True)
    written = []
    expected = _expected_chapters(solutions)
    for name, text in expected.items():
        path = chapters / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    for orphan in chapters.glob("*.ipynb"):
        if orphan.name not in expected:
            orphan.unlink()
    return written


# ----------------------------------------------------------------------------- course run
def _checked_outputs(nb) -> list[str]:
    """Text printed by the cells a chapter marks as key results (``# NBVAL_CHECK_OUTPUT``)."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code" or CHECK_MARKER not in cell.source:
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = out.get("text") or data.get("text/markdown") or data.get("text/plain", "")
            lines.extend(t for t in "".join(text).splitlines() if t.strip())
    return lines


def _recorded(stem: str) -> list[dict]:
    """The results a chapter recorded in this run (``helpers.course.results``), with their bands."""

    path = results_dir() / f"{stem}.json"
    if not path.exists():
        return []
    run = json.loads(path.read_text())
    expected = load_expectations(stem)["results"] if run.get("checked") else {}
    rows = []
    for name, value in run["results"].items():
        exp = expected.get(name)
        rows.append({"name": name, "value": value,
                     "expected": f"{exp.value:.4g} ± {exp.tolerance:.2g}" if exp else "not checked"})
    return rows


def missing_extra(name: str) -> str | None:
    """Why chapter ``name`` cannot run here (its extra is not installed), or None."""
    import importlib.util

    if name in EXTRAS and importlib.util.find_spec(EXTRAS[name][0]) is None:
        module, target, _ = EXTRAS[name]
        return f"needs {module}, which `{target}` installs"
    return None


# run after a chapter's last cell, in its kernel, then removed from the executed copy: the
# kernel's lifetime peak is the chapter's (each chapter gets a fresh kernel). Processes the
# kernel starts (Ray's workers, chapter 10's cluster) are not counted.
_PEAK_MARK = "[course] kernel peak RSS MiB:"
_PEAK_PROBE = f"from helpers.core import config as _c; print({_PEAK_MARK!r}, _c.peak_rss_mib())"


def _peak_from(cell) -> float | None:
    for out in cell.get("outputs", []):
        text = out.get("text", "")
        if _PEAK_MARK in text:
            value = text.split(_PEAK_MARK)[1].split()[0]
            return None if value == "None" else round(float(value))
    return None  # the chapter failed before the probe ran


def _run_each(notebooks, out_dir, timeout, report):
    """Execute notebooks in order into ``out_dir/executed``; stop at the first failure and
    return its exception (None when all ran)."""
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    failed = None
    for path in tqdm(notebooks, desc="chapters", unit="nb"):
        missing = missing_extra(path.name)
        if missing:
            report["chapters"].append({"notebook": path.name, "seconds": 0.0,
                                       "status": f"skipped: {missing}", "results": [],
                                       "recorded": []})
            print(f"[course] {path.name}: skipped, {missing}", flush=True)
            continue
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(_PEAK_PROBE))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        t0 = time.perf_counter()
        status = "ok"
        try:
            client.execute()
        except Exception as err:  # report which chapter failed, then stop
            status, failed = f"failed: {type(err).__name__}", err
        seconds = time.perf_counter() - t0
        peak = _peak_from(nb.cells.pop())
        nbformat.write(nb, out_dir / "executed" / path.name)
        report["chapters"].append({"notebook": path.name, "seconds": round(seconds, 1),
                                   "peak_rss_mib": peak, "status": status,
                                   "results": _checked_outputs(nb),
                                   "recorded": _recorded(path.stem)})
        print(f"[course] {path.name}: {status} in {seconds:.1f} s", flush=True)
        if failed:
            break
    return failed


def run_course(out_dir: Path | None = None, profile: str = "quick",
               notebooks: list[Path] | None = None, timeout: int = 900) -> dict:
    """Execute every solution notebook in order, headless, and write the executed copies plus
    ``report.json`` / ``report.md`` (time per chapter and its checked results) to ``out_dir``.
    """
    import os

    config.get_profile(profile)  # reject an unknown profile before running anything
    out_dir = Path(out_dir or config.ROOT / "build")
    (out_dir / "executed").mkdir(parents=True, exist_ok=True)
    notebooks = notebooks or sorted(SOLUTIONS.glob("*.ipynb"))
    os.environ["COURSE_PROFILE"] = profile
    report = {"profile": profile, "chapters": []}
    # kernels inherit the environment: this run's recorded values go to <out>/results only
    previous = os.environ.get("COURSE_RESULTS")
    os.environ["COURSE_RESULTS"] = str(out_dir / "results")
    shutil.rmtree(out_dir / "results", ignore_errors=True)
    try:
        failed = _run_each(notebooks, out_dir, timeout, report)
    finally:
        if previous is None:
            os.environ.pop("COURSE_RESULTS", None)
        else:
            os.environ["COURSE_RESULTS"] = previous
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    md = [f"# Course run ({profile} profile)", "",
          "| chapter | time (s) | kernel peak RSS (MiB) | status |", "|---|---:|---:|---|"]
    md += [f"| {c['notebook']} | {c['seconds']} | {c.get('peak_rss_mib') or '–'} | "
           f"{c['status']} |" for c in report["chapters"]]
    for c in report["chapters"]:
        md += ["", f"## {c['notebook']}", "", "```", *c["results"], "```"]
        if c.get("recorded"):
            md += ["", "| recorded result | value | expected |", "|---|---:|---|"]
            md += [f"| {r['name']} | {r['value']:.4g} | {r['expected']} |" for r in c["recorded"]]
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    if failed:
        raise RuntimeError(f"A chapter failed; its executed copy is in {out_dir / 'executed'}."
                           ) from failed
    return report


# ----------------------------------------------------------------------------- make check
ALL_NOTEBOOKS_ON = ("datasets/", "requirements.txt", "requirements-scale.txt", "constraints.txt",
                    "pyproject.toml")
"""Changes that can move any chapter: the data and the installed packages."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(source: str, module: str = "", is_package: bool = False) -> set[str]:
    """The ``helpers`` modules ``source`` imports, as dotted names (``helpers.models.cf``); relative
    imports are resolved against ``module`` (the importing module's dotted name). A name
    imported from a package (``from helpers import cf``) counts as the module ``helpers.models.cf``
    and as the package; callers keep the names that exist. IPython magics are translated
    first, so notebook cells parse.

    >>> sorted(module_imports("from helpers.models import cf\\nimport numpy as np"))
    ['helpers', 'helpers.models', 'helpers.models.cf']
    """
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return set()  # a cell a student has broken imports nothing we can see
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "helpers")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "helpers":
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    # importing helpers.a.b imports helpers.a and helpers first
    return {".".join(name.split(".")[:i + 1]) for name in found
            for i in range(len(name.split(".")))}


def _library_graph(root: Path) -> dict[str, set[str]]:
    """Every module of ``root/helpers`` -> the ``helpers`` modules it imports (that exist)."""
    files = {_module_name(p, root): p for p in (root / "helpers").rglob("*.py")}
    return {name: module_imports(path.read_text(), name, path.name == "__init__.py")
            & files.keys() for name, path in files.items()}


def notebook_modules(path: Path, root: Path | None = None, _graph=None) -> set[str]:
    """Every ``helpers`` module a notebook runs, directly or through other modules."""
    root = Path(root or config.ROOT)
    graph = _graph if _graph is not None else _library_graph(root)
    todo = set()
    for cell in _read(path).cells:
        if cell.cell_type == "code":
            todo |= module_imports(cell.source) & graph.keys()
    seen = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= graph[name] - seen
    return seen


def affected_notebooks(changed: list[str], root: Path | None = None,
                       folder: str = "chapters") -> list[str]:
    """Notebooks of ``folder`` (their file names) that a change to the files ``changed``
    (paths relative to the course root) can affect: a notebook whose solution or student
    version changed, a notebook that imports a changed ``helpers`` module (directly or through
    another module; any other file under ``helpers/``, such as a JSON table, counts as its
    package), and every notebook when the data or the pinned packages changed
    (:data:`ALL_NOTEBOOKS_ON`)."""
    if isinstance(changed, str) or not all(isinstance(c, str) for c in changed):
        raise TypeError(f"changed must be a list of paths (strings), got {changed!r}")
    root = Path(root or config.ROOT)
    notebooks = sorted((root / folder).glob("*.ipynb"))
    if any(c.startswith(ALL_NOTEBOOKS_ON) for c in changed):
        return [p.name for p in notebooks]
    names = {Path(c).name for c in changed
             if c.startswith(("solutions/", "chapters/")) and c.endswith(".ipynb")}
    modules = set()
    for c in changed:
        path = root / c
        if not c.startswith("helpers/"):
            continue
        if c.endswith(".py"):
            modules.add(_module_name(path, root))
        else:  # data beside the code: its package
            modules.add(_module_name(path.parent / "__init__.py", root))
    graph = _library_graph(root) if modules else None
    return [p.name for p in notebooks
            if p.name in names or (modules and notebook_modules(p, root, graph) & modules)]


def changed_files(base: str = "main", root: Path | None = None) -> list[str]:
    """Files changed since the branch left ``base`` (its merge base with HEAD), committed or
    not, plus new untracked files: what ``make check`` re-runs notebooks for. On ``base``
    itself that is the uncommitted work."""
    import subprocess

    root = Path(root or config.ROOT)

    def git(*args):
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    try:
        since = git("merge-base", "HEAD", base).strip()
    except RuntimeError:
        since = "HEAD"  # no such branch here (a fresh clone of one branch): uncommitted work
    files = git("diff", "--name-only", since).split() + \
        git("ls-files", "--others", "--exclude-standard").split()
    return sorted(set(files))


def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m helpers.course.notebooks chapters|run ...``); returns the exit
    status.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.course.notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    ch = sub.add_parser("chapters", help="write chapters/ from solutions/")
    ch.add_argument("--check", action="store_true", help="only report stale chapters")
    run = sub.add_parser("run", help="execute every solution notebook headless")
    run.add_argument("--profile", default=None, help="quick (default) or full")
    run.add_argument("--out", default=None, help="output folder (default build/)")
    run.add_argument("--only", nargs="+", default=None, metavar="STEM",
                     help="run only these chapters, e.g. --only 10_scale_out")
    aff = sub.add_parser("affected", help="student notebooks a change since BASE can affect")
    aff.add_argument("--base", default="main", help="the branch to compare with (main)")
    args = parser.parse_args(argv)
    if args.command == "affected":
        changed = changed_files(args.base)
        for name in affected_notebooks(changed):
            print(f"chapters/{name}")
        return 0
    if args.command == "chapters":
        if args.check:
            stale, busy = stale_chapters(), not_static()
            if busy:
                print(f"Solutions with widget outputs (empty progress bars in a static view): "
                      f"{', '.join(busy)}: run `make chapters` and commit.", file=sys.stderr)
            if stale:
                print(f"Stale student notebooks: {', '.join(stale)}. chapters/ must be exactly "
                      "what the generator makes from solutions/: run `make chapters` and commit.",
                      file=sys.stderr)
            if stale or busy:
                return 1
            print("chapters/ is up to date.")
            return 0
        for path in make_static():
            print(f"[chapters] {path.relative_to(config.ROOT)}: widget outputs removed")
        for path in make_chapters():
            print(f"[chapters] {path.relative_to(config.ROOT)}")
        return 0
    try:
        profile = config.get_profile(args.profile).name
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    notebooks = None
    if args.only:
        notebooks = [SOLUTIONS / f"{stem.removesuffix('.ipynb')}.ipynb" for stem in args.only]
        unknown = [p.name for p in notebooks if not p.exists()]
        if unknown:
            print(f"error: no solution notebook {', '.join(unknown)} in {SOLUTIONS}; choose "
                  f"from {', '.join(p.stem for p in sorted(SOLUTIONS.glob('*.ipynb')))}",
                  file=sys.stderr)
            return 2
    report = run_course(Path(args.out) if args.out else None, profile=profile,
                        notebooks=notebooks)
    total = sum(c["seconds"] for c in report["chapters"])
    ran = [c for c in report["chapters"] if not c["status"].startswith("skipped")]
    skipped = len(report["chapters"]) - len(ran)
    print(f"[course] {len(ran)} chapter(s) ran in {total:.0f} s"
          + (f", {skipped} skipped (see above)" if skipped else "")
          + f"; report in {Path(args.out or 'build') / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
