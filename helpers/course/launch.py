"""Run a chapter anywhere: the launch cell every student notebook starts with, and what it calls.

Inside a course checkout (``make lab``, a JupyterHub or Binder with the course installed) the
launch cell does nothing: ``helpers`` is importable. Opened on its own — in Colab, or as a
notebook someone downloaded — it gets the course (a ``git clone`` of ``REASONREC_SOURCE``, or a
folder that already holds it, such as an unpacked bundle's ``course/``), then :func:`prepare`
installs the pinned packages and the offline models once and moves the kernel into the course's
``chapters/`` folder. From there on the chapter runs offline, as everywhere else.

The cell and the "run it elsewhere" links are written into every student notebook by
``make chapters`` (:func:`helpers.course.notebooks.student_notebook`), from one place: the
``[tool.reasonrec.launch]`` table of ``pyproject.toml``. Its ``repository`` (``owner/name`` on
GitHub) gives the Colab and Binder links and the cell's default source; while it is empty the
notebooks carry no links and the cell asks for ``REASONREC_SOURCE``.

Plain links, not badge images: an image would be fetched from the web each time a notebook is
rendered, and the course reaches the network only when someone asks it to.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import quote

from helpers.core import config
from helpers.core.checks import ParameterError

__all__ = ["settings", "links_markdown", "cell_source", "prepare", "PYTHONS", "CPU_TORCH_INDEX", "LAUNCH_TAG",
           "EXTRAS"]

EXTRAS = {"10_scale_out.ipynb": ("ray", "make scale", "requirements-scale.txt")}
"""Chapters that need a package the default course does not install: module, the target that
installs it, and the requirements file it installs (the launch cell installs that file too)."""

PYTHONS = ((3, 11), (3, 12))
"""The Python versions the pinned set has wheels for (Colab runs 3.12)."""
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
"""Where pip finds the CPU build of the pinned torch (PyPI's Linux wheel pulls ~3 GB of CUDA)."""
LAUNCH_TAG = "launch"
_STAMP = ".launch-installed.json"
# modules a notebook kernel may have imported before the install changed their version
_WATCHED = {"numpy": "numpy", "pandas": "pandas", "scipy": "scipy", "torch": "torch",
            "sklearn": "scikit-learn", "transformers": "transformers",
            "matplotlib": "matplotlib", "PIL": "pillow", "pyarrow": "pyarrow"}


def settings(pyproject: Path | None = None) -> dict:
    """``{"repository": "owner/name" or "", "branch": ...}`` from ``[tool.reasonrec.launch]``."""
    if pyproject is None:
        pyproject = config.ROOT / "pyproject.toml"
    table = tomllib.loads(Path(pyproject).read_text()).get("tool", {}).get("reasonrec", {})
    launch = table.get("launch", {})
    repository = str(launch.get("repository", "")).strip()
    branch = str(launch.get("branch", "main")).strip()
    if repository and (repository.count("/") != 1 or not all(repository.split("/"))
                       or any(c in repository for c in " :?#")):
        raise ParameterError(f"[tool.reasonrec.launch] repository = {repository!r} in {pyproject} is "
                             "not 'owner/name' (a GitHub repository); fix it or leave it empty.")
    if not branch or any(c in branch for c in " :?#"):
        raise ParameterError(f"[tool.reasonrec.launch] branch = {branch!r} in {pyproject} is not a "
                             "branch name; the default is 'main'.")
    return {"repository": repository, "branch": branch}


def links_markdown(notebook: str, launch: dict) -> str | None:
    """The "run it elsewhere" line for ``chapters/<notebook>``, or None while no public
    repository is set."""
    if not launch.get("repository"):
        return None
    repo, branch = launch["repository"], launch["branch"]
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/chapters/{notebook}"
    binder = (f"https://mybinder.org/v2/gh/{repo}/{branch}"
              f"?labpath={quote('chapters/' + notebook, safe='')}")
    return (f"**Run it elsewhere:** [open in Colab]({colab}) · [launch on Binder]({binder}). "
            "On Colab, run the first code cell: it installs the course (a few minutes, once).")


def cell_source(notebook: str, launch: dict) -> str:
    """The launch cell of ``chapters/<notebook>``: nothing inside a checkout, the install outside."""
    source = f"https://github.com/{launch['repository']}.git" if launch.get("repository") else ""
    return f'''\
# Launch cell. Inside a course checkout (make lab, a JupyterHub, Binder) it does nothing.
# Opened on its own (Colab, a downloaded notebook) it clones the course into ./reasonrec,
# installs its pinned packages and offline models once (a few minutes), and moves into
# reasonrec/chapters; then the chapter runs offline. REASONREC_SOURCE overrides where the
# course comes from: a git address, or a folder that holds it (an unpacked bundle's course/).
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("helpers") is None:
    if os.path.isdir("../helpers"):
        raise RuntimeError("This kernel's Python does not have the course, but the notebook sits "
                           "in a course checkout: start Jupyter with `make lab` (or pick the "
                           "kernel of the course's .venv).")
    SOURCE = os.environ.get("REASONREC_SOURCE", "{source}")
    HOME = os.path.abspath(os.environ.get("REASONREC_HOME", "reasonrec"))
    if os.path.isdir(SOURCE):
        HOME = os.path.abspath(SOURCE)
    elif not os.path.isdir(HOME):
        if not SOURCE:
            raise RuntimeError("This notebook is outside a ReasonRec checkout and no source is "
                               "set: set REASONREC_SOURCE to the course's git address or folder.")
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", SOURCE, HOME], check=True)
    sys.path.insert(0, HOME)
    from helpers.course import launch
    launch.prepare(HOME, "{notebook}")'''


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256(sys.executable.encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _stale_modules() -> list[str]:
    stale = []
    for module, dist in _WATCHED.items():
        loaded = getattr(sys.modules.get(module), "__version__", None)
        if loaded is None:
            continue
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != loaded:
            stale.append(f"{module} {loaded} (now {installed})")
    return stale


def prepare(home: str | os.PathLike, notebook: str, *, has_gpu: bool | None = None,
            quiet: bool = False) -> Path:
    """Install the course in ``home`` into this Python (once), then move the kernel there.

    Steps: the pinned packages (``requirements.txt`` + ``constraints.txt``, and the chapter's
    extra requirements file from ``helpers.course.notebooks.EXTRAS``; without an NVIDIA GPU torch comes from the CPU index),
    the course itself (editable, so Ray's workers and later kernels import it too), and the
    offline models (``python -m helpers.models.pretrained prepare``, what ``make assets`` runs). A stamp in
    ``home`` records what was installed for which Python, so running the cell again is instant.
    Afterwards the working directory is ``home/chapters`` and ``home`` is on ``sys.path``.

    If the kernel had imported a package whose version the install changed (Colab preloads some),
    it raises and asks for a restart: the install is done, and the rerun skips it.
    """
    if not isinstance(notebook, str) or not notebook.endswith(".ipynb"):
        raise TypeError(f"notebook must be a chapter's file name such as '00_setup_and_tour.ipynb',"
                        f" got {notebook!r}")
    home = Path(home).expanduser().resolve()
    missing = [name for name in ("helpers", "chapters", "requirements.txt", "constraints.txt",
                                 "pyproject.toml") if not (home / name).exists()]
    if missing:
        raise FileNotFoundError(f"{home} does not hold the course (no {', '.join(missing)}): point "
                                "REASONREC_SOURCE at a clone of the repository or at an unpacked "
                                "bundle's course/ folder, or delete the folder and run the cell "
                                "again to clone afresh.")
    if sys.version_info[:2] not in PYTHONS:
        raise RuntimeError(f"ReasonRec needs Python 3.11 or 3.12 (the pinned torch has wheels for "
                           f"both); this kernel runs {sys.version.split()[0]}. Pick another "
                           "runtime or kernel.")
    extra = EXTRAS[notebook][2] if notebook in EXTRAS else None
    files = [home / "requirements.txt", home / "constraints.txt", home / "pyproject.toml"]
    if extra:
        files.append(home / extra)
    stamp = home / _STAMP
    fingerprint = _fingerprint(files)
    say = (lambda *a: None) if quiet else (lambda *a: print("[launch]", *a, flush=True))
    done = json.loads(stamp.read_text()).get("fingerprint") if stamp.exists() else None
    if done != fingerprint:
        if has_gpu is None:
            has_gpu = shutil.which("nvidia-smi") is not None
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        t0 = time.perf_counter()
        say(f"1/3 the pinned packages into {sys.executable} (a few minutes the first time)")
        reqs = ["-r", str(home / "requirements.txt"), "-c", str(home / "constraints.txt")]
        reqs += ["-r", str(home / extra)] if extra else []
        index = [] if has_gpu else ["--extra-index-url", CPU_TORCH_INDEX]
        subprocess.run(pip + index + reqs, check=True)
        say("2/3 the course itself (editable)")
        subprocess.run(pip + ["--no-deps", "--no-build-isolation", "-e", str(home)], check=True)
        say("3/3 the offline models (make assets)")
        subprocess.run([sys.executable, "-m", "helpers.models.pretrained", "prepare"], cwd=home, check=True)
        stamp.write_text(json.dumps({"fingerprint": fingerprint, "python": sys.executable,
                                     "notebook": notebook}, indent=1) + "\n")
        say(f"installed in {time.perf_counter() - t0:.0f} s")
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))
    os.chdir(home / "chapters")
    stale = _stale_modules()
    if stale:
        raise RuntimeError("The install changed packages this kernel had already imported ("
                           + ", ".join(stale) + "). Restart the kernel (Colab: Runtime > Restart "
                           "session) and run this cell again: the install is done and is skipped.")
    say(f"ready: the course is in {home}, this kernel works in {home / 'chapters'}")
    return home
