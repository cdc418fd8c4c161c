"""One place for the course's run settings: profile, seeds, device, paths and offline mode.

Every notebook's setup cell calls :func:`setup` once::

    from helpers.core import config
    cfg = config.setup(PROFILE, SEED)      # PROFILE None -> $COURSE_PROFILE -> "quick"
    device = cfg.device

Importing this module (or anything in ``helpers``) switches the Hugging Face libraries to
offline mode unless the user opted in with ``COURSE_ONLINE=1``: nothing in the course reaches
the network at run time by accident.
"""
from __future__ import annotations

import ast
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from helpers.core.checks import ParameterError

if TYPE_CHECKING:          # torch is imported where it is used: `import helpers` stays light
    import torch

T = TypeVar("T")

__all__ = [
    "PROFILES", "Profile", "RunConfig", "get_profile", "seed_everything", "get_device",
    "require_gpu", "is_online", "setup", "ROOT", "DATASETS_DIR", "cache_dir",
    "artifacts_dir", "course_path", "environment_report", "peak_rss_mib", "cpu_threads",
    "smoke_claims",
]

# ----------------------------------------------------------------------------- offline mode
_OFFLINE_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
}


def is_online() -> bool:
    """True only when the user opted in to network access with ``COURSE_ONLINE=1``."""
    return os.environ.get("COURSE_ONLINE", "0").strip().lower() in {"1", "true", "yes"}


def _apply_network_mode() -> None:
    if is_online():
        return
    for key, value in _OFFLINE_VARS.items():
        os.environ[key] = value


_apply_network_mode()  # before transformers / datasets / huggingface_hub are imported

# ----------------------------------------------------------------------------- paths
ROOT = Path(os.environ.get("COURSE_HOME", Path(__file__).resolve().parents[2]))
"""The course checkout (the folder holding ``helpers/``, ``solutions/``, ``datasets/``)."""
DATASETS_DIR = ROOT / "datasets"
"""Committed data sets and their checksum manifests."""


def course_path(value: str | os.PathLike) -> Path:
    """A path from a setting: relative ones are taken from the course folder, not from the
    working directory (a notebook's kernel runs inside ``solutions/`` or ``chapters/``)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise TypeError(f"a course path must be a non-empty string or path, got {value!r}; check "
                        "the COURSE_* setting or argument that supplied it.")
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def cache_dir() -> Path:
    """Downloaded wheels, unpacked models and caches: ``$COURSE_CACHE`` or ``<repo>/.cache``."""
    path = course_path(os.environ.get("COURSE_CACHE", ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir() -> Path:
    """Files a chapter writes for a later chapter to read: ``$COURSE_ARTIFACTS`` or
    ``<repo>/build/artifacts``."""
    path = course_path(os.environ.get("COURSE_ARTIFACTS", ROOT / "build" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """Sizes a chapter scales by. ``quick`` runs every chapter in about two minutes on a
    2-core laptop CPU; ``full`` uses real sizes and is meant for a GPU; ``smoke`` shrinks every
    size and epoch count so that a test can execute every cell in seconds (its numbers mean
    nothing, so its claims are not enforced: see :func:`setup`)."""

    name: str
    description: str
    needs_gpu: bool
    max_new_tokens: int = 60        # length of generated reasons
    batch_size: int = 32            # encoder / LM batch size
    train_fraction: float = 1.0     # share of the training data a chapter uses
    epochs: int = 1
    extra: dict = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        description="small sizes, every chapter in about 2 minutes on a 2-core CPU",
        needs_gpu=False, max_new_tokens=60, batch_size=32, train_fraction=0.1, epochs=1,
    ),
    "full": Profile(
        name="full",
        description="real sizes, meant for a CUDA or Apple-silicon GPU",
        needs_gpu=True, max_new_tokens=60, batch_size=128, train_fraction=1.0, epochs=3,
    ),
    "smoke": Profile(
        name="smoke",
        description="tiny sizes and epochs, every cell in seconds: for testing the code paths "
                    "(results meaningless, claims not enforced)",
        needs_gpu=False, max_new_tokens=8, batch_size=16, train_fraction=0.02, epochs=1,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``; ``None`` reads ``$COURSE_PROFILE`` (default quick).

    >>> get_profile("quick").needs_gpu
    False
    """
    source = "argument"
    if name is None:
        name, source = os.environ.get("COURSE_PROFILE", "quick"), "COURSE_PROFILE"
    if not isinstance(name, str):
        raise TypeError(f"profile must be a string such as 'quick', got {type(name).__name__}")
    key = name.strip().lower()
    if key not in PROFILES:
        raise ParameterError(
                f"Unknown profile {name!r} (from the {source}). Choose one of "
                f"{sorted(PROFILES)}: 'quick' for a laptop CPU, 'full' for a GPU, 'smoke' to test "
                "that every cell runs. "
                "Set it in the notebook's parameters cell or with COURSE_PROFILE=quick."
            )
    return PROFILES[key]


# ----------------------------------------------------------------------------- seeding
def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and every GPU); return the seed.

    Also asks torch for deterministic algorithms where that is cheap (``warn_only``), so a
    notebook prints the same numbers on every run on the same machine.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed


@contextmanager
def cpu_threads(n: int) -> Iterator[int]:
    """Run the ``with`` block on ``n`` CPU threads (``torch.set_num_threads``), then put the
    previous number back, also when the block raises::

        with config.cpu_threads(1):      # a small model: one thread is faster than two
            model.fit(...)

    Why: PyTorch splits each operation across its threads, and the threads wait for each other
    at the end of every one. A small network's operations (chapter 06's 32-pixel GAN, its two
    linear projections, VBPR's batches of 100 triples) are so short that on two cores the waiting
    costs more than the second core gives; larger ones (EfficientNet's features, the two-towers,
    the 64-pixel CNN) still gain a little from it. ``benchmarks/multimodal_benchmark.py --only
    threads`` measures each: measure before you choose. Only CPU work is affected; a GPU's
    kernels are not. The number of threads can change the last bits of a float sum, hence which
    trajectory a long training run follows.
    """
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"n must be a whole number of threads >= 1, got {n!r}; "
                             f"e.g. cpu_threads(1)")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- device
def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else CUDA, then Apple MPS, then CPU.

    ``$COURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides the automatic choice.
    """
    import torch

    prefer = prefer or os.environ.get("COURSE_DEVICE") or None
    if prefer is not None:
        kind = str(prefer).split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Device {prefer!r} was asked for but CUDA is not available here. "
                               "Use 'cpu', or unset COURSE_DEVICE to choose automatically.")
        if kind == "mps" and not _mps_available():
            raise RuntimeError("Device 'mps' was asked for but Apple MPS is not available here. "
                               "Use 'cpu', or unset COURSE_DEVICE to choose automatically.")
        if kind not in {"cpu", "cuda", "mps"}:
            raise ParameterError(f"Unknown device {prefer!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def require_gpu(what: str = "this cell", profile: Profile | str | None = None) -> None:
    """Fail fast when a GPU-sized step would otherwise crawl on the CPU.

    Call it at the top of a full-profile GPU cell. Under a profile that does not need a GPU
    it returns the current device without complaint; under ``full`` with no GPU it raises
    a ``RuntimeError`` that says what to do instead.
    """
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    device = get_device()
    if prof.needs_gpu and device.type == "cpu":
        raise RuntimeError(
            f"{what} runs the '{prof.name}' profile, which is sized for a GPU, and no CUDA or MPS "
            "device was found. It would take hours on this CPU, so it stops here. Either run on a "
            "GPU machine, or switch to the quick profile (PROFILE = 'quick' in the parameters "
            "cell, or COURSE_PROFILE=quick)."
        )
    return device


# ----------------------------------------------------------------------------- setup
_UNSET = object()


@dataclass(frozen=True)
class RunConfig:
    """What a notebook's setup cell gets back."""

    profile: Profile
    seed: int
    device: object
    online: bool

    def __str__(self) -> str:
        mode = "online (COURSE_ONLINE=1)" if self.online else "offline"
        smoke = " (smoke: claims not enforced)" if self.profile.name == "smoke" else ""
        return (f"profile={self.profile.name}{smoke} seed={self.seed} "
                f"device={self.device.type} network={mode}")

    def pick(self, quick: T, full: T = _UNSET, smoke: T = _UNSET) -> T:
        """The value for this run's profile: ``cfg.pick(quick=30, full=60, smoke=2)``. A
        profile left out takes the quick value (so ``cfg.pick(30, smoke=2)`` is 30 on a GPU).

        >>> RunConfig(get_profile("smoke"), 0, None, False).pick(quick=30, full=60, smoke=2)
        2
        """
        by_name = {"quick": quick, "full": full, "smoke": smoke}
        if self.profile.name not in by_name:
            raise ParameterError(f"no value for profile {self.profile.name!r}: pick() knows "
                                 f"{sorted(by_name)}")
        value = by_name[self.profile.name]
        return quick if value is _UNSET else value


def setup(profile: str | None = None, seed: int = 0, *, plots: bool = True) -> RunConfig:
    """Seed everything, pick the device, resolve the profile and (optionally) set the plot
    style. Returns a :class:`RunConfig`; call once per notebook, in the setup cell.

    Under the ``smoke`` profile, in a notebook, the cells' own ``assert`` statements (the
    chapter's claims) from here on note a false claim in :func:`smoke_claims` instead of
    raising; any other profile enforces them."""
    prof = get_profile(profile)
    seed_everything(seed)
    device = get_device()
    if plots:
        _set_plot_style()
    _soft_asserts(prof.name == "smoke")
    return RunConfig(profile=prof, seed=seed, device=device, online=is_online())


# ----------------------------------------------------------------------------- smoke claims
# A chapter asserts each claim its prose makes (``assert rmse < 0.93``). Under the smoke profile
# a model trained for one epoch on a sliver of data cannot meet them, yet every cell must still
# run: there the notebook's own ``assert`` statements are rewritten (IPython's AST transformers,
# notebook cells only, never library code) into a call that evaluates the condition and the
# message as before, so a claim that cannot even be computed still fails, and notes a false one
# in :func:`smoke_claims` instead of stopping the chapter.
_SMOKE_CLAIMS: list[str] = []


def smoke_claims() -> list[str]:
    """The notebook claims (``assert`` statements) that were false in this kernel under the
    smoke profile, with their messages; empty under every other profile."""
    return list(_SMOKE_CLAIMS)


def _note_claim(message=None) -> None:
    _SMOKE_CLAIMS.append("assertion failed" if message is None else str(message))


class _AssertToNote(ast.NodeTransformer):
    """``assert test, msg`` -> ``if not test: __course_note_claim__(msg)``: the test is still
    evaluated, the message only when the test is false (as in ``assert``)."""

    name = "__course_note_claim__"

    def visit_Assert(self, node):
        self.generic_visit(node)
        args = [] if node.msg is None else [node.msg]
        note = ast.Expr(ast.Call(ast.Name(self.name, ast.Load()), args, []))
        new = ast.If(test=ast.UnaryOp(ast.Not(), node.test), body=[note], orelse=[])
        return ast.fix_missing_locations(ast.copy_location(new, node))


def _soft_asserts(on: bool) -> None:
    """Install (``on``) or remove the smoke profile's assert rewriting in the running IPython
    kernel; outside IPython nothing happens."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    transformers = [t for t in shell.ast_transformers if not isinstance(t, _AssertToNote)]
    if on:
        transformers.append(_AssertToNote())
        shell.user_ns[_AssertToNote.name] = _note_claim
    shell.ast_transformers[:] = transformers


def _set_plot_style() -> None:
    try:
        import matplotlib
        import seaborn as sns
    except ImportError:  # plotting is optional for library use
        return
    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"figure.figsize": (6, 3.5), "figure.dpi": 80,
                                "savefig.dpi": 80, "axes.titleweight": "bold"})


def environment_report() -> dict[str, str]:
    """Versions and settings worth printing at the top of a run (and pasting into a bug report)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    report = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in ("torch", "transformers", "numpy", "pandas", "scikit-learn", "datasets"):
        try:
            report[pkg] = version(pkg)
        except PackageNotFoundError:
            report[pkg] = "not installed"
    device = get_device()
    report["device"] = (f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
                        else device.type)
    report["cpu threads"] = str(torch.get_num_threads())
    report["profile"] = get_profile().name
    report["network"] = "online (COURSE_ONLINE=1)" if is_online() else "offline"
    return report


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far, in MiB (``None`` where the platform cannot
    say). On Linux ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` is not used there because
    Linux carries it over a fork and exec, so a process started by a big one (a notebook kernel
    started by a test run) would report its parent's peak. Elsewhere ``ru_maxrss`` (bytes on
    macOS); Windows has no ``resource`` module, so there ``psutil``'s peak working set is used
    when installed. It is the peak over the process's whole life: to measure one step, run it in
    a fresh process (as the benchmarks do)."""
    import sys

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10   # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil

            info = psutil.Process().memory_info()
            return getattr(info, "peak_wset", info.rss) / 2**20
        except (ImportError, AttributeError):
            return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def peak_memory_mib(device: torch.device | str) -> float | None:
    """The peak memory a run on ``device`` used, in MiB: on CUDA what torch allocated on that
    device since its last ``torch.cuda.reset_peak_memory_stats``; elsewhere the process's peak
    resident memory so far (:func:`peak_rss_mib`)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()
