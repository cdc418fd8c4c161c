"""Launch anywhere (helpers/course/launch.py): every student notebook starts with a launch cell that does
nothing in a checkout and, opened on its own as on Colab, clones the course, installs it and its
models, and moves the kernel into the clone's chapters/. The last test does that for real: chapter
00 alone in an empty folder, run by a Python that has the packages but not the course."""
import json
import os
import subprocess
import sys
import sysconfig
import types

import pytest

from helpers.core.config import ROOT
from helpers.course import launch, notebooks


def _pyproject(tmp_path, table: str):
    path = tmp_path / "pyproject.toml"
    path.write_text("[project]\nname = 'x'\n\n[tool.reasonrec.launch]\n" + table)
    return path


def test_settings_read_the_one_place_and_reject_what_is_not_a_repository(tmp_path):
    assert launch.settings(_pyproject(tmp_path, 'repository = "acme/shop"\n')) == {
        "repository": "acme/shop", "branch": "main"}
    assert launch.settings(_pyproject(tmp_path, ""))["repository"] == ""
    for bad in ("acme", "https://github.com/acme/shop", "acme/shop/x", "/shop"):
        with pytest.raises(ValueError, match="owner/name"):
            launch.settings(_pyproject(tmp_path, f'repository = "{bad}"\n'))
    with pytest.raises(ValueError, match="branch"):
        launch.settings(_pyproject(tmp_path, 'repository = "acme/shop"\nbranch = "a b"\n'))


def test_links_point_colab_and_binder_at_the_chapter_and_exist_only_with_a_repository():
    settings = {"repository": "acme/shop", "branch": "dev"}
    line = launch.links_markdown("08a_diversity.ipynb", settings)
    assert ("(https://colab.research.google.com/github/acme/shop/blob/dev/chapters/"
            "08a_diversity.ipynb)") in line
    assert "(https://mybinder.org/v2/gh/acme/shop/dev?labpath=chapters%2F08a_diversity.ipynb)" \
        in line
    assert "![" not in line  # links, not badge images fetched from the web on every render
    assert launch.links_markdown("08a_diversity.ipynb", {"repository": "", "branch": "main"}) \
        is None
    assert 'REASONREC_SOURCE", "https://github.com/acme/shop.git")' in launch.cell_source(
        "08a_diversity.ipynb", settings)


def test_every_chapter_starts_with_the_launch_cell_for_itself_and_no_solution_has_one():
    settings = launch.settings()
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        expected = notebooks.launch_cells(path.name, settings)
        got = cells[1:1 + len(expected)]
        assert [("".join(c["source"]), c["metadata"].get("tags")) for c in got] == [
            (c["source"], c["metadata"].get("tags")) for c in expected], path.name
        assert f'launch.prepare(HOME, "{path.name}")' in "".join(got[-1]["source"])
        solution = json.loads((ROOT / "solutions" / path.name).read_text())["cells"]
        assert not any("launch" in c["metadata"].get("tags", []) for c in solution), path.name


def test_a_solution_that_carries_its_own_launch_cell_is_refused():
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# T"},
                    {"cell_type": "code", "metadata": {"tags": ["launch"]}, "source": "x = 1",
                     "outputs": [], "execution_count": None}], "metadata": {}}
    with pytest.raises(notebooks.FenceError, match="added by make chapters"):
        notebooks.student_notebook(nb, "00_x.ipynb", {"repository": "", "branch": "main"})


def _run_cell(cwd, env_extra=None):
    """The launch cell run by a Python that cannot import the course (-S: no site-packages)."""
    source = launch.cell_source("00_setup_and_tour.ipynb", {"repository": "", "branch": "main"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONREC_", "PYTHON"))}
    return subprocess.run([sys.executable, "-S", "-c", source], cwd=cwd, text=True,
                          capture_output=True, env={**env, **(env_extra or {})}, timeout=60)


def test_in_a_checkout_a_kernel_without_the_course_is_told_to_use_make_lab():
    done = _run_cell(ROOT / "chapters")
    assert done.returncode != 0 and "make lab" in done.stderr, done.stderr[-1000:]


def test_alone_and_with_no_source_set_the_cell_says_what_to_set(tmp_path):
    done = _run_cell(tmp_path)
    assert done.returncode != 0 and "set REASONREC_SOURCE" in done.stderr, done.stderr[-1000:]
    assert not (tmp_path / "reasonrec").exists()


def test_a_folder_that_is_not_the_course_is_refused_before_anything_is_installed(tmp_path):
    (tmp_path / "helpers").mkdir()
    with pytest.raises(FileNotFoundError, match="no chapters, requirements.txt"):
        launch.prepare(tmp_path, "00_setup_and_tour.ipynb")
    with pytest.raises(TypeError, match="file name"):
        launch.prepare(ROOT, "00_setup_and_tour")


def _fake_course(tmp_path):
    home = tmp_path / "course"
    for name in ("helpers", "chapters"):
        (home / name).mkdir(parents=True)
    for name in ("requirements.txt", "constraints.txt", "pyproject.toml",
                 "requirements-scale.txt"):
        (home / name).write_text((ROOT / name).read_text())
    return home


def test_prepare_installs_once_with_the_right_index_and_extra_then_skips(tmp_path, monkeypatch):
    home = _fake_course(tmp_path)
    calls = []
    monkeypatch.setattr(launch.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    launch.prepare(home, "10_scale_out.ipynb", has_gpu=False, quiet=True)
    packages, course, models = calls
    assert packages[:4] == [sys.executable, "-m", "pip", "install"]
    assert packages[packages.index("--extra-index-url") + 1] == launch.CPU_TORCH_INDEX
    assert str(home / "requirements-scale.txt") in packages  # chapter 10's extra: Ray
    assert course[-2:] == ["-e", str(home)] and "--no-deps" in course
    assert models == [sys.executable, "-m", "helpers.models.pretrained", "prepare"]
    assert os.getcwd() == str(home / "chapters") and sys.path[0] == str(home)
    calls.clear()
    launch.prepare(home, "10_scale_out.ipynb", has_gpu=False, quiet=True)
    assert calls == []  # the stamp matches: nothing is installed again
    (home / "requirements.txt").write_text((home / "requirements.txt").read_text() + "\n# x\n")
    launch.prepare(home, "00_setup_and_tour.ipynb", has_gpu=True, quiet=True)
    assert len(calls) == 3 and "--extra-index-url" not in calls[0]  # a GPU keeps PyPI's torch
    assert str(home / "requirements-scale.txt") not in calls[0]


def test_a_package_imported_before_the_install_changed_it_asks_for_a_restart(tmp_path,
                                                                            monkeypatch):
    home = _fake_course(tmp_path)
    monkeypatch.setattr(launch.subprocess, "run", lambda cmd, **kw: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    launch.prepare(home, "00_setup_and_tour.ipynb", quiet=True)  # the real numpy: no complaint
    monkeypatch.setitem(sys.modules, "numpy", types.SimpleNamespace(__version__="1.0.0"))
    with pytest.raises(RuntimeError, match=r"numpy 1\.0\.0 \(now 2\..*Restart"):
        launch.prepare(home, "00_setup_and_tour.ipynb", quiet=True)


def _head(repo):
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_a_colab_style_run_of_chapter_00_from_a_clean_folder(tmp_path, monkeypatch):
    """Chapter 00 alone in an empty folder, its kernel a Python that has the pinned packages
    (as Colab has its own) but not the course: the launch cell clones the committed course,
    installs it (pip finds every package already there, so nothing is fetched: the suite runs
    offline), and the whole chapter then runs in the clone. The models come from this checkout's
    cache (COURSE_CACHE), as a room's shared cache would provide them."""
    import nbformat
    from nbclient import NotebookClient

    if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "helpers"],
                      capture_output=True, text=True).stdout.strip():
        pytest.skip("helpers/ has uncommitted changes; the launch cell clones the committed course")
    venv = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the packages of this venv, but not its .pth files: the course's editable install stays out
    (tmp_path / site / "packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"], "display_name": "colab-like", "language": "python"}))
    content = tmp_path / "content"
    content.mkdir()
    name = "00_setup_and_tour.ipynb"
    (content / name).write_bytes((ROOT / "chapters" / name).read_bytes())
    from helpers.core import config

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("REASONREC_SOURCE", f"file://{ROOT}")
    monkeypatch.setenv("COURSE_CACHE", str(config.cache_dir()))
    for var in ("COURSE_HOME", "PYTHONPATH", "VIRTUAL_ENV", "REASONREC_HOME", "COURSE_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import helpers"], cwd=content,
                          capture_output=True).returncode != 0  # the course is not there

    nb = nbformat.read(content / name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="colab",
                   resources={"metadata": {"path": str(content)}}).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")
    clone = content / "reasonrec"
    assert _head(clone) == _head(ROOT)
    assert json.loads((clone / ".launch-installed.json").read_text())["python"] == str(
        venv / "bin" / "python")
    launch_out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "[launch] 3/3" in launch_out and f"this kernel works in {clone / 'chapters'}" in \
        launch_out
    errors = [(i, o["ename"]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o["output_type"] == "error"]
    stubs = [i for i, c in enumerate(nb.cells)
             if "raises-exception" in c.metadata.get("tags", [])]
    assert errors and all(i in stubs and e == "NotImplementedError" for i, e in errors), errors
    # the chapter recorded its key numbers inside the clone, checked against its expectations
    results = json.loads((clone / "build" / "results" / "00_setup_and_tour.json").read_text())
    assert results["checked"] and results["profile"] == "quick" and results["results"]


# ----------------------------------------------------------------------------- Binder
BINDER = ROOT / "binder"


def test_binder_uses_a_python_the_course_accepts_and_the_course_pins_with_cpu_torch():
    import tomllib

    from packaging.specifiers import SpecifierSet

    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-")
    major, minor = map(int, runtime.removeprefix("python-").split("."))
    assert (major, minor) in launch.PYTHONS
    spec = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                        ["requires-python"])
    assert f"{major}.{minor}.0" in spec
    lines = [line.split("#")[0].strip() for line in
             (BINDER / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert f"--extra-index-url {launch.CPU_TORCH_INDEX}" in lines
    # nested files resolve from binder/ (pip reads -r/-c relative to the file naming them)
    nested = {(flag, (BINDER / path).resolve()) for flag, path in
              (line.split() for line in lines if line.startswith(("-r ", "-c ")))}
    assert nested == {("-r", ROOT / "requirements.txt"), ("-r", ROOT / "requirements-scale.txt"),
                      ("-c", ROOT / "constraints.txt")}


def test_binder_scripts_are_executable_valid_bash_and_match_the_makefile():
    for name in ("postBuild", "start"):
        path = BINDER / name
        mode = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s", f"binder/{name}"],
                              capture_output=True, text=True).stdout.split()
        assert mode and mode[0] == "100755", f"binder/{name} must be committed executable"
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    post = (BINDER / "postBuild").read_text()
    assert "-m helpers.models.pretrained prepare" in post and "--no-deps" in post and "-e ." in post
    start = (BINDER / "start").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "helpers.models.pretrained prepare" in makefile
    for setting in ("OMP_WAIT_POLICY=PASSIVE", "TOKENIZERS_PARALLELISM=false",
                    "PYTHONHASHSEED=0"):
        name, value = setting.split("=")
        assert setting in start
        assert f"export {name} :=" in makefile or f"export {name} ?=" in makefile
        assert value in makefile.split(f"export {name}")[1].splitlines()[0]
    assert start.rstrip().endswith('exec "$@"')
