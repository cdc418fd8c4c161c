"""Training state that survives a crash: atomic checkpoints, resumed only with the same settings.

A checkpoint is one folder ``<dir>/step-00000050/`` holding everything a run needs to carry on
exactly where it stopped:

- ``weights.safetensors``: the trainable tensors (safetensors: no code runs when reading it);
- ``state.pt``: optimiser state and the random-number generators (torch CPU + CUDA, NumPy,
  Python), read back with ``torch.load(..., weights_only=True)``;
- ``meta.json``: the step, the loss history and the run's *settings* (examples' hash, batch
  size, learning rate, seed...).

:func:`save` writes the three files into a hidden temporary folder, flushes them to disk, and only
then renames the folder into place: a run killed at any moment leaves either the old checkpoint
or the new one, never half of one. Older checkpoints are deleted only after the new one is
complete. :func:`latest` returns the newest complete checkpoint and ignores leftovers of a
killed write; :func:`check_settings` refuses to resume a run whose settings changed (unless the
caller says so), because mixing two configurations gives weights nobody can reproduce.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from helpers.core.checks import ParameterError

__all__ = ["CheckpointError", "save", "latest", "load", "check_settings", "rng_state",
           "set_rng_state"]

_PREFIX = "step-"
_FILES = ("weights.safetensors", "state.pt", "meta.json")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: wrong settings, other parameters, or damaged files."""


def rng_state() -> dict:
    """Every random generator a training step may draw from."""
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_state(),
             "python": _python_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"kind": kind, "keys": torch.as_tensor(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows folders) cannot fsync a directory
        pass
    finally:
        os.close(fd)


def save(directory: str | Path, step: int, weights: dict[str, torch.Tensor], state: dict,
         meta: dict, keep: int = 1) -> Path:
    """Write checkpoint ``step`` atomically; keep the newest ``keep`` complete ones.

    ``weights``: name -> tensor (saved as safetensors); ``state``: tensors and plain values
    (optimiser state, RNG); ``meta``: JSON-serialisable (step, losses, settings).
    Returns the checkpoint's folder.
    """
    from safetensors.torch import save_file

    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ParameterError(f"step must be a positive integer, got {step!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ParameterError(f"keep must be a positive integer, got {keep!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{_PREFIX}{step:08d}"
    tmp = directory / f".tmp-{step:08d}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file({n: t.detach().cpu().contiguous() for n, t in weights.items()},
                  str(tmp / "weights.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=1))
        for name in _FILES:
            _fsync(tmp / name)
        if final.exists():  # the same step written again (a re-run): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in _complete(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _complete(directory: Path) -> list[Path]:
    found = []
    for p in directory.glob(f"{_PREFIX}*"):
        if p.is_dir() and p.name[len(_PREFIX):].isdigit() and all((p / f).exists() for f in _FILES):
            found.append(p)
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest(directory: str | Path | None) -> Path | None:
    """The newest complete checkpoint in ``directory`` (``None`` if there is none). Leftovers
    of a write that was killed (hidden ``.tmp-*`` folders) are removed."""
    if directory is None:
        return None
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for leftover in directory.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    found = _complete(directory)
    return found[-1] if found else None


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """``(weights, state, meta)`` of one checkpoint folder; damaged files are a
    :class:`CheckpointError` that says how to recover."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        weights = load_file(str(path / "weights.safetensors"))
        state = torch.load(path / "state.pt", weights_only=True)
        meta = json.loads((path / "meta.json").read_text())
    except Exception as err:  # noqa: BLE001 - any read failure means the same to the user
        raise CheckpointError(f"The checkpoint {path} cannot be read ({type(err).__name__}: a "
                              "file is damaged or is not what this course writes; it is never "
                              "loaded with code execution allowed). Delete that folder to resume "
                              "from the one before it, or the whole checkpoint folder to start "
                              "over.") from err
    return weights, state, meta


def check_settings(saved: dict, current: dict, where: Path, allow_changes: bool = False) -> None:
    """Refuse to resume when a setting differs, naming each difference."""
    diff = {k: (saved.get(k), current.get(k)) for k in sorted(set(saved) | set(current))
            if saved.get(k) != current.get(k)}
    if diff and not allow_changes:
        listed = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"The checkpoint in {where} was made with other settings ({listed}). Resuming would "
            "mix two runs. Use the same settings, delete the checkpoint folder to start over, "
            "or pass allow_changed_settings=True if you really mean to continue with the new "
            "ones.")
