"""The student-notebook generator, and the rules every committed notebook follows."""
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.core.config import ROOT
from helpers.course import notebooks as nbt

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_function_body_becomes_a_named_stub():
    src = ("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n"
           "    ### END SOLUTION\n\nprint('after')")
    out, changed = nbt.stub_source(src)
    assert changed
    assert out == ("def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError("
                   "\"Exercise `f`: replace this line with your code\")\n\nprint('after')")
    ns = {}
    exec(out, ns)  # the stub still defines f
    with pytest.raises(NotImplementedError, match="`f`"):
        ns["f"](1)


def test_top_level_block_is_named_after_its_variable():
    out, _ = nbt.stub_source("### BEGIN SOLUTION\nanswer: int = 6 * 7\n### END SOLUTION")
    assert "Exercise `answer`" in out and "6 * 7" not in out


def test_two_blocks_in_one_cell():
    src = ("def a():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
           "def b():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION")
    out, _ = nbt.stub_source(src)
    assert out.count("NotImplementedError") == 2 and "`a`" in out and "`b`" in out


@pytest.mark.parametrize("src,msg", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_broken_fences_are_reported_with_line(src, msg):
    with pytest.raises(nbt.FenceError, match=msg):
        nbt.stub_source(src)


def _toy_notebook():
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# Title"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", execution_count=1,
                      outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION",
                      metadata={"tags": ["exercise"]}),
        new_code_cell("print('instructor only')", metadata={"tags": ["solution-only"]}),
    ]
    return nb


def test_student_notebook_strips_solutions_outputs_and_markers():
    nb = _toy_notebook()
    student = nbt.student_notebook(nb)
    assert len(student.cells) == 3  # solution-only dropped
    check, stub = student.cells[1], student.cells[2]
    assert check.outputs == [] and check.execution_count is None
    assert "NBVAL_CHECK_OUTPUT" not in check.source
    assert "return 2" not in stub.source
    assert stub.metadata["tags"] == ["exercise", "raises-exception"]
    assert len(nb.cells) == 4 and nb.cells[1].outputs  # the input is untouched


def test_fence_error_names_the_cell():
    nb = _toy_notebook()
    nb.cells[2].source = "### BEGIN SOLUTION\nx = 1"
    with pytest.raises(nbt.FenceError, match="cell 2"):
        nbt.student_notebook(nb)


def test_stale_chapters_are_detected_and_regenerated(tmp_path):
    sol, ch = tmp_path / "solutions", tmp_path / "chapters"
    sol.mkdir()
    nbformat.write(_toy_notebook(), sol / "01_toy.ipynb")
    assert nbt.stale_chapters(sol, ch) == ["01_toy.ipynb"]  # missing
    nbt.make_chapters(sol, ch)
    assert nbt.stale_chapters(sol, ch) == []
    nb = nbformat.read(sol / "01_toy.ipynb", as_version=4)
    nb.cells[0].source = "# A new title"
    nbformat.write(nb, sol / "01_toy.ipynb")
    assert nbt.stale_chapters(sol, ch) == ["01_toy.ipynb"]  # edited solution
    (ch / "99_orphan.ipynb").write_text("{}")
    assert "99_orphan.ipynb" in nbt.stale_chapters(sol, ch)
    nbt.make_chapters(sol, ch)
    assert nbt.stale_chapters(sol, ch) == [] and not (ch / "99_orphan.ipynb").exists()


def test_committed_chapters_are_exactly_what_the_generator_makes():
    stale = nbt.stale_chapters()
    assert not stale, (f"chapters/ is stale for {stale}: run `make chapters` and commit the "
                       "result (solutions/ is the only place to edit).")


def _with_a_progress_widget(nb):
    bar = nbformat.v4.new_output(
        "display_data", data={nbt.WIDGET_VIEW: {"model_id": "abc", "version_major": 2,
                                                 "version_minor": 0},
                              "text/plain": "  0%|          | 0/3 [00:00<?, ?it/s]"})
    printed = nbformat.v4.new_output("stream", name="stdout", text="loss 0.5\n")
    nb.cells[1].outputs = [bar, printed]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_widget_outputs_leave_the_solutions_and_nothing_else_does(tmp_path):
    """Static view (issue 37): a tqdm.auto bar is an ipywidget that a static page draws as an
    empty bar; ``make chapters`` removes it from the executed solutions, keeping every other
    output as it was."""
    nb = _with_a_progress_widget(_toy_notebook())
    static = nbt.static_view(nb)
    assert [o["output_type"] for o in static.cells[1].outputs] == ["stream"]
    assert "widgets" not in static.metadata
    assert len(nb.cells[1].outputs) == 2 and "widgets" in nb.metadata   # the input untouched
    assert static.cells[0] == nb.cells[0] and static.cells[2:] == nb.cells[2:]
    sol = tmp_path / "solutions"
    sol.mkdir()
    nbformat.write(nb, sol / "01_toy.ipynb")
    nbformat.write(_toy_notebook(), sol / "02_plain.ipynb")
    assert nbt.not_static(sol) == ["01_toy.ipynb"]
    assert nbt.make_static(sol) == [sol / "01_toy.ipynb"] and nbt.not_static(sol) == []


def test_committed_solutions_carry_no_widget_outputs():
    busy = nbt.not_static()
    assert not busy, (f"{busy} carry widget outputs (empty progress bars on GitHub): run "
                      "`make chapters` and commit.")


def test_stale_check_cli_says_how_to_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nbt, "stale_chapters", lambda: ["00_x.ipynb"])
    assert nbt.main(["chapters", "--check"]) == 1
    assert "make chapters" in capsys.readouterr().err


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solution_notebook_follows_the_course_anatomy(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Chapter ")
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "PROFILE" in params[0].source and "SEED" in params[0].source
    assert "config.setup(PROFILE, SEED)" in code[code.index(params[0]) + 1].source
    assert all(c.execution_count for c in code), "solutions are committed executed"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert any(nbt.CHECK_MARKER in c.source for c in code), "key results need NBVAL_CHECK_OUTPUT"
    exercises = [c for c in code if nbt.BEGIN in c.source]
    assert len(exercises) >= 2, "each chapter has at least two checked exercises"
    # Exercises are numbered in reading order, and each heading names the checker its check
    # cell calls (a checker keeps its name when a chapter is split, so the names need not be
    # in order: 06a's exercises are ch06.q1, ch06.q4, ch06.q2)
    headings = [(k, c) for k, c in enumerate(nb.cells) if c.cell_type == "markdown"
                for _ in re.findall(r"^#+ Exercise \d+", c.source, flags=re.M)]
    numbers = [int(m) for _, c in headings for m in re.findall(r"^#+ Exercise (\d+)", c.source, flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1)), f"exercises numbered 1, 2, ... in reading order, found {numbers}"
    for k, cell in headings:
        named = re.search(r"^#+ Exercise \d+ \(`(ch\d\d\.q\d+)`\) — ", cell.source, flags=re.M)
        called = next(m.group(1) for c in nb.cells[k + 1:] if c.cell_type == "code"
                      for m in [re.search(r"\b(ch\d\d\.q\d+)\.check\(", c.source)] if m)
        assert named and named.group(1) == called, (
            f"cell {k}: an exercise heading names its checker, '### Exercise N (`{called}`) — ...'")
    assert "/work/" not in nbformat.writes(nb) and "/root/" not in nbformat.writes(nb), \
        "no absolute paths in notebooks"


def test_run_course_reports_times_and_checked_results(tmp_path, monkeypatch):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('rmse: 0.91')"),
                new_code_cell("print('not a headline')"),
                new_code_cell("# NBVAL_CHECK_OUTPUT\nfrom IPython.display import Markdown, display\n"
                              "display(Markdown('**q1 correct**'))"),
                new_code_cell("import numpy as np\nblock = np.ones(300 * 2**20 // 8)  # 300 MiB")]
    path = tmp_path / "05_toy.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    report = nbt.run_course(tmp_path / "out", notebooks=[path])
    chapter = report["chapters"][0]
    assert chapter["results"] == ["rmse: 0.91", "**q1 correct**"]
    # the kernel's peak memory, measured by a probe cell that the executed copy no longer holds
    assert 300 < chapter["peak_rss_mib"] < 1500
    executed = nbformat.read(tmp_path / "out" / "executed" / "05_toy.ipynb", as_version=4)
    assert [c.source for c in executed.cells] == [c.source for c in nb.cells]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "rmse: 0.91" in md and f"| 05_toy.ipynb | {chapter['seconds']} | " \
        f"{chapter['peak_rss_mib']} | ok |" in md
    with pytest.raises(ValueError, match="Unknown profile"):
        nbt.run_course(tmp_path / "out", profile="huge", notebooks=[path])


def test_a_chapter_whose_extra_is_missing_is_skipped_and_said(tmp_path, monkeypatch, capsys):
    """`make course` without `make scale`: chapter 10 is skipped with the target that installs
    its extra, not failed; `--only` runs the named chapters and refuses unknown ones."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [new_code_cell("print('ran')")]
    path = tmp_path / "99_extra.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setitem(nbt.EXTRAS, "99_extra.ipynb", ("no_such_module_xyz", "make extra",
                                                            "requirements-extra.txt"))
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    report = nbt.run_course(tmp_path / "out", notebooks=[path])
    assert report["chapters"][0]["status"] == \
        "skipped: needs no_such_module_xyz, which `make extra` installs"
    assert not (tmp_path / "out" / "executed" / "99_extra.ipynb").exists()
    assert nbt.missing_extra("02a_rating_prediction.ipynb") is None
    assert nbt.main(["run", "--only", "99_nothing"]) == 2
    assert "no solution notebook 99_nothing.ipynb" in capsys.readouterr().err


def _device_taking_classes() -> set[str]:
    """Names of the course's model classes whose constructor takes ``device``, and of chapter
    06's training functions that do (``fit_image_classifier``, ``fit_shared_space``, ...)."""
    import importlib
    import inspect
    import pkgutil

    import helpers.reasons
    from helpers.models import cf, interest, multimodal, sequential

    reasons = [importlib.import_module(f"helpers.reasons.{m.name}")
               for m in pkgutil.iter_modules(helpers.reasons.__path__)]
    classes = {name for mod in (cf, interest, multimodal, sequential, *reasons)
               for name, obj in vars(mod).items()
               if inspect.isclass(obj) and obj.__module__.startswith("helpers")
               and "device" in inspect.signature(obj.__init__).parameters}
    return classes | {name for name, obj in vars(multimodal).items()
                      if inspect.isfunction(obj) and name.startswith("fit_")
                      and "device" in inspect.signature(obj).parameters}


def _calls_without_device(source: str, classes: set[str]) -> list[str]:
    """Calls ``Name(...)`` (also ``mod.Name(...)``) of ``classes`` in a code cell's source that
    pass no ``device=`` (ALS-solved matrix factorisation runs in NumPy and is exempt)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            kws = {k.arg: k.value for k in node.keywords}
            als = isinstance(kws.get("solver"), ast.Constant) and kws["solver"].value == "als"
            if name in classes and "device" not in kws and not als:
                found.append(ast.unparse(node)[:90])
    return found


def test_every_model_in_the_chapters_runs_on_the_runs_device():
    """A chapter that builds a torch model without ``device=cfg.device`` trains it on the CPU
    even on a GPU machine (the full profile's whole point); a deliberately stripped call fails."""
    import re

    classes = _device_taking_classes()
    assert {"BPR", "SASRecRecommender", "BERT4RecRecommender", "TwoTowerRecommender"} <= classes
    missing = []
    for path in SOLUTIONS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                src = re.sub(r"^\s*[%!].*$", "", cell.source, flags=re.M)   # magics
                missing += [f"{path.name}: {c}" for c in _calls_without_device(src, classes)]
    assert not missing, "pass device=cfg.device to:\n" + "\n".join(missing)
    assert _calls_without_device("m = cf.BPR(64, n_epochs=3)", classes)
    assert not _calls_without_device('m = cf.BiasedMF(32, solver="als")', classes)
    assert _calls_without_device("g, h = M.fit_cgan(x, labels, steps=5)", classes)
    assert _calls_without_device("m = M.AttentionFusionTwoTower(e, ids, splits=(3, 2))", classes)


# ----------------------------------------------------------------------------- make check
def _toy_course(root):
    """helpers/{a,b,c}.py (a imports b), helpers/reasons/{__init__,x}.py, two chapters."""
    (root / "helpers" / "reasons").mkdir(parents=True)
    (root / "helpers" / "__init__.py").write_text("from . import c  # noqa\n")
    (root / "helpers" / "a.py").write_text("def f():\n    from .b import g\n    return g()\n")
    (root / "helpers" / "b.py").write_text("import numpy\n")
    (root / "helpers" / "c.py").write_text("")
    (root / "helpers" / "table.json").write_text("{}")
    (root / "helpers" / "reasons" / "__init__.py").write_text("from .x import y\n")
    (root / "helpers" / "reasons" / "x.py").write_text("from .. import a\ny = 1\n")
    (root / "chapters").mkdir()
    for name, src in [("01_one.ipynb", "%matplotlib inline\nfrom helpers import a"),
                      ("02_two.ipynb", "import helpers.reasons as nlg\n!echo magic"),
                      ("03_three.ipynb", "import numpy as np")]:
        nb = new_notebook(cells=[new_code_cell(src)])
        nbformat.write(nb, root / "chapters" / name)


@pytest.mark.parametrize("changed,expected", [
    (["helpers/b.py"], ["01_one.ipynb", "02_two.ipynb"]),      # a imports b inside a function
    (["helpers/reasons/x.py"], ["02_two.ipynb"]),
    (["helpers/c.py"], ["01_one.ipynb", "02_two.ipynb"]),      # the package imports c
    (["helpers/table.json"], ["01_one.ipynb", "02_two.ipynb"]),  # data of the package
    (["solutions/03_three.ipynb"], ["03_three.ipynb"]),
    (["chapters/02_two.ipynb", "README.md"], ["02_two.ipynb"]),
    (["datasets/shopworld/items.csv"], ["01_one.ipynb", "02_two.ipynb", "03_three.ipynb"]),
    (["requirements.txt"], ["01_one.ipynb", "02_two.ipynb", "03_three.ipynb"]),
    (["README.md", "tests/test_x.py"], []),
])
def test_affected_notebooks_follow_imports_through_the_library(tmp_path, changed, expected):
    _toy_course(tmp_path)
    assert nbt.affected_notebooks(changed, root=tmp_path) == expected


def test_affected_notebooks_refuses_a_string_for_a_list():
    with pytest.raises(TypeError, match="list of paths"):
        nbt.affected_notebooks("helpers/models/cf.py")


@pytest.mark.slow
def test_the_real_course_maps_a_chapter_to_its_exercise_module_only():
    assert nbt.affected_notebooks(["helpers/course/exercises/ch03.py"]) == ["03_self_attention.ipynb"]
    assert "helpers.models.cf" in nbt.notebook_modules(ROOT / "solutions" / "02b_top_k_ranking.ipynb")


def test_changed_files_lists_uncommitted_and_untracked_work(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    (tmp_path / "a.py").write_text("1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    assert nbt.changed_files(root=tmp_path) == []
    (tmp_path / "a.py").write_text("2\n")
    (tmp_path / "new.py").write_text("")
    git("checkout", "-qb", "topic")
    assert nbt.changed_files(root=tmp_path) == ["a.py", "new.py"]
    assert nbt.changed_files(base="no-such-branch", root=tmp_path) == ["a.py", "new.py"]
