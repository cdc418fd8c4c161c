"""The realiser's LoRA adapter: wrap SmolLM2 with low-rank matrices on every linear layer of its
decoder (``peft``), save the trained matrices as float16 safetensors with their settings and
checksum beside them, and load them back, checked before a byte is read.

The course ships the trained adapter (``helpers/reasons/weights/reason_realiser.safetensors``,
with its ``.json``); ``tools/train_reason_adapter.py`` trains it again.

    tok, model, meta = load_realiser()           # SmolLM2-135M with the shipped adapter merged in
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from helpers.core.assets import sha256_file
from helpers.core.checkpoint import CheckpointError
from helpers.core.checks import DataError
from helpers.models import pretrained

__all__ = ["ADAPTER", "WEIGHTS_DIR", "LORA_TARGETS", "add_lora", "adapter_state", "save_adapter",
           "load_realiser"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ADAPTER = WEIGHTS_DIR / "reason_realiser.safetensors"
_LORA_NAME = re.compile(r"layers\.(\d+)\.(\w+)\.(\w+)\.lora_([AB])\.default\.weight$")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, seed: int = 0):
    """Wrap ``model`` with LoRA on every linear layer of the decoder (peft); only the LoRA
    matrices train. Seeded, so the same settings start from the same adapter."""
    import warnings

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                     target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    with warnings.catch_warnings():   # peft calls a transformers method deprecated in v5
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        return get_peft_model(model, cfg)


def adapter_state(model) -> dict[str, torch.Tensor]:
    """The LoRA tensors of a peft model, by stable names (``layers.3.self_attn.q_proj.A``)."""
    out = {}
    for n, p in model.named_parameters():
        m = _LORA_NAME.search(n)
        if m:
            out[f"layers.{m[1]}.{m[2]}.{m[3]}.{m[4]}"] = p.detach().cpu()
    if not out:
        raise DataError("the model has no LoRA weights (wrap it with add_lora first)")
    return out


def save_adapter(model, path: str | Path, meta: dict) -> dict:
    """Write the LoRA tensors as float16 safetensors and ``<path>.json`` with ``meta`` plus
    the file's sha256 and size. Returns the metadata written."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(torch.float16).contiguous() for k, v in adapter_state(model).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    info = dict(meta, file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size,
                n_parameters=sum(v.numel() for v in tensors.values()))
    path.with_suffix(".json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def load_realiser(path: str | Path = ADAPTER, *, device=None, merge: bool = True):
    """``(tokenizer, model, meta)``: SmolLM2-135M with the shipped (or given) adapter, checked against
    the sha256 in its ``.json`` before a byte is read, then merged into the weights (no LoRA
    overhead at generation time). A missing, corrupt or mismatched file raises
    :class:`~helpers.core.checkpoint.CheckpointError` saying how to restore it."""
    from safetensors.torch import load_file


    path = Path(path)
    meta_path = path.with_suffix(".json")
    restore = ("Restore the shipped files with `git checkout -- helpers/reasons/weights/`, or train "
               "them again with `.venv/bin/python tools/train_reason_adapter.py`.")
    if not path.is_file() or not meta_path.is_file():
        raise CheckpointError(f"the realiser adapter {path} (or its {meta_path.name}) is missing. "
                              + restore)
    meta = json.loads(meta_path.read_text())
    digest = sha256_file(path)
    if digest != meta.get("sha256"):
        raise CheckpointError(f"the realiser adapter {path} has sha256 {digest}, but "
                              f"{meta_path.name} records {meta.get('sha256')}: the file is "
                              f"damaged or from another training run. {restore}")
    tok, base = pretrained.language_model(device="cpu", dtype=torch.float32)
    lora = meta["lora"]
    model = add_lora(base, r=lora["r"], alpha=lora["alpha"], dropout=0.0)
    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    expected = adapter_state(model)
    if set(tensors) != set(expected):
        raise CheckpointError(f"the realiser adapter {path} holds {len(tensors)} tensors, the "
                              f"model expects {len(expected)} (another LoRA layout). {restore}")
    with torch.no_grad():
        for n, p in params.items():
            m = _LORA_NAME.search(n)
            if m:
                t = tensors[f"layers.{m[1]}.{m[2]}.{m[3]}.{m[4]}"]
                if t.shape != p.shape:
                    raise CheckpointError(f"tensor {n}: shape {tuple(t.shape)} in the file, "
                                          f"{tuple(p.shape)} in the model. {restore}")
                p.copy_(t.float())
    model = model.merge_and_unload() if merge else model
    model.eval()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return tok, model.to(dev), meta
