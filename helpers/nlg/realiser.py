"""Say the plan: a language model that turns a content plan into one sentence.

The realiser never sees a review, a title or a description: its prompt is the plan — claims the
planner chose from the shop's stated facts — and the product: its safe brand and its own noun from
the category's closed list, e.g. ::

    comfort high; fit high | Stride trail shoes

and the sentence follows on the next line. That is the *least information* defence against
prompt injection: text written by strangers cannot steer a model that never reads it. The only
free text that can reach the prompt is a brand name, and it enters only through
:func:`safe_name` (letters, digits, spaces, one hyphen or apostrophe between letters; anything
else and the brand is left out).

SmolLM2-135M is adapted to this task with LoRA (``peft``): small low-rank matrices added to
every linear layer, trained on the training purchases' reference reasons, their plans taken
from the reasons' own claims. The course ships the trained adapter
(``helpers/weights/reason_realiser.safetensors``, with its settings and checksum in the
``.json`` beside it); ``tools/train_reason_adapter.py`` re-trains it.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import torch

from .. import shopworld_vocab as V
from ..checkpoint import CheckpointError
from .claims import Claim
from .untrusted import safe_name  # noqa: F401  (re-exported: the realiser's brand filter)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
ADAPTER = WEIGHTS_DIR / "reason_realiser.safetensors"
_LORA_NAME = re.compile(r"layers\.(\d+)\.(\w+)\.(\w+)\.lora_([AB])\.default\.weight$")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def plan_text(plan: list[Claim]) -> str:
    """``[Claim('aspect', 'comfort', 'high'), Claim('colour', 'red')]`` -> ``'comfort high;
    colour red'``. Brands pass through :func:`safe_name`; an unsafe one is dropped."""
    if not isinstance(plan, (list, tuple)) or not all(isinstance(c, Claim) for c in plan):
        raise ValueError(f"a plan must be a list of Claim, got {plan!r}")
    parts = []
    for c in plan:
        if c.kind == "aspect":
            parts.append(f"{c.name} {c.level or 'mentioned'}")
        elif c.kind == "popularity":
            parts.append("popular")
        elif c.kind == "brand":
            name = safe_name(c.name)
            if name:
                parts.append(f"brand {name}")
        elif c.kind in ("colour", "pattern"):
            parts.append(f"{c.kind} {c.name}")
        else:
            raise ValueError(f"unknown claim kind {c.kind!r} in the plan")
    return "; ".join(parts)


def realiser_prompt(plan: list[Claim], item) -> str:
    """The realiser's whole prompt: the plan, then the product it is about.

    ``item``: the item's :func:`~helpers.nlg.claims.item_facts` entry — the product is named by
    its safe brand and its own noun from the category's closed list
    (:func:`~helpers.nlg.phrasing.item_noun`), e.g. ``'comfort high | Stride trail shoes\\n'``
    (the sentence follows the newline); or a ShopWorld category key ('running_shoes'), which
    names the category only.
    Nothing else of the item's text reaches the prompt: a brand that is not a safe name and a
    category that is not ShopWorld's are left out."""
    from .phrasing import item_noun

    text = plan_text(plan)
    if not text:
        raise ValueError("the plan is empty: nothing to say (use the template instead)")
    if isinstance(item, dict):                   # an unknown category names no noun
        brand = safe_name(item.get("brand") or "") or ""
        noun = item_noun(item) if item.get("category") in V.CATEGORIES else ""
        product = f"{brand} {noun}".strip()
    elif isinstance(item, str) and item in V.CATEGORIES:
        product = item.replace("_", " ")
    else:
        product = ""
    return f"{text} | {product}\n" if product else f"{text}\n"


def says_plan(sentence: str, plan: list[Claim], facts: dict, lex) -> bool:
    """Whether ``sentence`` claims exactly the plan — naming the product's own brand as well
    is allowed (*this Stride trail shoe*), any other claim is not."""
    from .claims import extract_claims

    said = set(extract_claims(sentence, lex)) - {Claim("brand", facts.get("brand") or "")}
    return said == set(plan) - {Claim("brand", facts.get("brand") or "")} and bool(said or plan)


def plan_from_reason(reason: str, lex) -> list[Claim]:
    """The plan a reference reason realises (its claims, in order): the training input."""
    from .claims import extract_claims

    return extract_claims(reason, lex)


def encode_plan_example(tok, prompt: str, target: str, max_length: int = 96) -> dict:
    """Token ids of prompt + ' ' + target + end-of-sequence, labels -100 on the prompt."""
    if not isinstance(target, str) or not target.strip():
        raise ValueError("the target reason is empty")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    t_ids = tok(" " + target.strip(), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    if len(p_ids) + len(t_ids) > max_length:
        raise ValueError(f"prompt ({len(p_ids)} tokens) + target ({len(t_ids)}) exceed "
                         f"max_length={max_length}")
    return {"input_ids": p_ids + t_ids, "labels": [-100] * len(p_ids) + t_ids}


class TemplateRealiser:
    """The plan said with the reference templates' wording (one fixed sentence per plan):
    the baseline every language-model realiser has to beat on variety."""

    def say(self, plan: list[Claim], pick: int = 0) -> str:
        if not plan:
            raise ValueError("the plan is empty")
        c = plan[0]
        if c.kind == "popularity":
            return V.REASON_TEMPLATES["popularity"]
        if c.kind == "aspect" and c.name == "price":
            return V.REASON_TEMPLATES["price"]
        if c.kind == "aspect":
            word = {"high": "superb", "mid": "decent", "low": "basic"}.get(c.level, "notable")
            if len(plan) > 1 and plan[1].kind == "aspect" and plan[1].name != "price":
                w2 = {"high": "great", "mid": "decent", "low": "basic"}.get(plan[1].level, "notable")
                return V.REASON_TEMPLATES["two_aspects"][pick % 2].format(
                    aspect=c.name, opinion=word, aspect2=plan[1].name, opinion2=w2)
            return V.REASON_TEMPLATES["aspect"][pick % 3].format(aspect=c.name, opinion=word)
        if c.kind == "pattern":
            return V.REASON_TEMPLATES["pattern"].format(pattern=V.PATTERN_PHRASES[c.name])
        if c.kind == "brand":
            name = safe_name(c.name)
            return (V.REASON_TEMPLATES["brand"].format(brand=name) if name
                    else V.REASON_TEMPLATES["popularity"])
        return V.REASON_TEMPLATES[c.kind].format(**{c.kind: c.name})


MIXTURE = {"simple": (0.05, 0.45), "aspect": (0.35, 0.30), "two_aspects": (0.35, 0.30)}
"""The realiser's training mixture per kind of plan (:func:`~helpers.nlg.phrasing.kind_of`):
(share of targets that are the reference itself, share that are its mirror with the product as
subject); the rest are random phrasing-bank sentences for the plan. A popularity, price, colour,
pattern or brand reference is one sentence for every product (*It is popular with shoppers who
like what you like.*): said often, it makes shoppers' reasons identical, so its mirror carries
the references' words instead. An aspect reference names the aspect and an opinion word, and so
differs between products: it can be said as it is more often. Chosen with the phrasing bank on
the last 15 % of the training period (``benchmarks/reason_benchmark.py`` prints that grid)."""


def training_examples(world, tok, per_purchase: int = 3, mixture: dict | None = None,
                      seed: int = 0):
    """The realiser's training set: every training purchase of ``world``
    (:func:`~helpers.nlg.world.reason_world`) gives ``per_purchase`` examples, each the prompt
    built from the plan its reference reason realises and the item (:func:`realiser_prompt`)
    with a target drawn from ``mixture`` (default :data:`MIXTURE`; per kind of plan, the shares
    of the reference itself and of the reference with the product as its subject,
    :func:`~helpers.nlg.phrasing.mirror`); otherwise — and where the reference has no mirror —
    a random sentence of the phrasing bank for that plan. Seeded; every purchase weighs the
    same, so a product bought often with one plan is seen often, as in the purchase log.

    Why a mixture: BLEU rewards the references' word sequences, the unique-sentence ratio
    rewards not repeating a sentence (see :data:`MIXTURE`).
    Returns ``(examples, prompts, targets, sha256 of the prompts and targets)``."""
    import random

    from . import phrasing

    mixture = MIXTURE if mixture is None else mixture
    if isinstance(per_purchase, bool) or not isinstance(per_purchase, int) or per_purchase < 1:
        raise ValueError(f"per_purchase must be a positive integer, got {per_purchase!r}")
    if not isinstance(mixture, dict) or set(mixture) != set(MIXTURE):
        raise ValueError(f"mixture must map each of {sorted(MIXTURE)} to (exact, mirrored) "
                         f"shares, got {mixture!r}")
    for kind, shares in mixture.items():
        ok = (isinstance(shares, tuple) and len(shares) == 2 and
              all(not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1
                  for v in shares))
        if not ok or sum(shares) > 1:
            raise ValueError(f"mixture[{kind!r}] must be (exact, mirrored), two probabilities "
                             f"summing to at most 1, got {shares!r}")
    rng = random.Random(seed)
    prompts, targets = [], []
    for item, reason in zip(world.train["item_id"], world.train["reason"]):
        plan = plan_from_reason(reason, world.lex)
        if not plan:
            continue
        facts = world.facts[int(item)]
        prompt = realiser_prompt(plan, facts)
        mirror = phrasing.mirror(plan, facts, reason)
        exact, mirrored = mixture[phrasing.kind_of(plan)]
        for _ in range(per_purchase):
            u = rng.random()
            if u < exact:
                target = reason
            elif u < exact + mirrored and mirror is not None:
                target = mirror
            else:
                target = phrasing.say(plan, facts, rng.randrange(phrasing.n_templates(plan)),
                                      rng.randrange(8))
            prompts.append(prompt)
            targets.append(target)
    digest = hashlib.sha256(json.dumps([prompts, targets]).encode()).hexdigest()
    examples = [encode_plan_example(tok, p, t) for p, t in zip(prompts, targets)]
    return examples, prompts, targets, digest


# ============================================================================ LoRA adapter
def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, seed: int = 0):
    """Wrap ``model`` with LoRA on every linear layer of the decoder (peft); only the LoRA
    matrices train. Seeded, so the same settings start from the same adapter."""
    from peft import LoraConfig, get_peft_model

    import warnings

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
        raise ValueError("the model has no LoRA weights (wrap it with add_lora first)")
    return out


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_adapter(model, path: str | Path, meta: dict) -> dict:
    """Write the LoRA tensors as float16 safetensors and ``<path>.json`` with ``meta`` plus
    the file's sha256 and size. Returns the metadata written."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(torch.float16).contiguous() for k, v in adapter_state(model).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    info = dict(meta, file=path.name, sha256=file_sha256(path), bytes=path.stat().st_size,
                n_parameters=sum(v.numel() for v in tensors.values()))
    path.with_suffix(".json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return info


def load_realiser(path: str | Path = ADAPTER, *, device=None, merge: bool = True):
    """``(tokenizer, model)``: SmolLM2-135M with the shipped (or given) adapter, checked against
    the sha256 in its ``.json`` before a byte is read, then merged into the weights (no LoRA
    overhead at generation time). A missing, corrupt or mismatched file raises
    :class:`~helpers.checkpoint.CheckpointError` saying how to restore it."""
    from safetensors.torch import load_file

    from .. import models

    path = Path(path)
    meta_path = path.with_suffix(".json")
    restore = ("Restore the shipped files with `git checkout -- helpers/weights/`, or train "
               "them again with `.venv/bin/python tools/train_reason_adapter.py`.")
    if not path.is_file() or not meta_path.is_file():
        raise CheckpointError(f"the realiser adapter {path} (or its {meta_path.name}) is missing. "
                              + restore)
    meta = json.loads(meta_path.read_text())
    digest = file_sha256(path)
    if digest != meta.get("sha256"):
        raise CheckpointError(f"the realiser adapter {path} has sha256 {digest}, but "
                              f"{meta_path.name} records {meta.get('sha256')}: the file is "
                              f"damaged or from another training run. {restore}")
    tok, base = models.language_model(device="cpu", dtype=torch.float32)
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


# ============================================================================ generation
def realise(tok, model, prompts: list[str], *, batch_size: int = 64, max_new_tokens: int = 40,
            strategy: str = "greedy", temperature: float = 0.8, top_p: float = 0.95,
            num_return_sequences: int = 1, seed: int = 0, allowed: list | None = None,
            progress: bool = True) -> tuple[list[str], dict]:
    """Generate one sentence per plan prompt (identical prompts are generated once). Returns the
    sentences and timing (seconds, reasons/s, tokens/s, peak memory).

    ``allowed``: optional, one boolean vocabulary mask per prompt (:func:`allowed_tokens`):
    **constrained decoding** — every other token gets probability 0, so the model can only
    write the words of its plan and the allowed phrasing."""
    import time

    import numpy as np
    from tqdm.auto import tqdm

    from .. import config

    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of realiser_prompt() strings")
    if strategy not in ("greedy", "sample"):
        raise ValueError(f"strategy must be 'greedy' or 'sample', got {strategy!r}")
    device = next(model.parameters()).device
    if allowed is not None and len(allowed) != len(prompts):
        raise ValueError(f"{len(allowed)} allowed-token masks for {len(prompts)} prompts")
    if allowed is not None and strategy == "greedy":   # identical prompt, identical mask
        key = {}
        for p, m in zip(prompts, allowed):
            if p in key and not torch.equal(key[p], m):
                raise ValueError("two identical prompts have different allowed-token masks")
            key[p] = m
    unique = list(dict.fromkeys(prompts)) if strategy == "greedy" else list(prompts)
    masks = None
    if allowed is not None:
        masks = [key[p] for p in unique] if strategy == "greedy" else list(allowed)
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in unique]
    order = np.argsort(lengths, kind="stable")
    tok.padding_side = "left"
    kw = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
              eos_token_id=tok.eos_token_id, num_return_sequences=num_return_sequences)
    if strategy == "greedy":
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    out: dict[int, list[str]] = {}
    n_tokens = 0
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="realise", disable=not progress, leave=False):
        enc = tok([unique[k] for k in idx], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(device)
        extra = {}
        if masks is not None:
            rows = torch.stack([masks[k] for k in idx]).to(device)
            rows = rows.repeat_interleave(num_return_sequences, dim=0)
            extra["logits_processor"] = [_MaskLogits(rows)]
        with torch.inference_mode():
            gen = model.generate(**enc, **kw, **extra)
        new = gen[:, enc["input_ids"].shape[1]:]
        n_tokens += int((new != tok.pad_token_id).sum())
        dec = [s.strip() for s in tok.batch_decode(new, skip_special_tokens=True)]
        for j, k in enumerate(idx):
            out[int(k)] = dec[j * num_return_sequences:(j + 1) * num_return_sequences]
    secs = time.perf_counter() - t0
    if strategy == "greedy":
        where = {p: k for k, p in enumerate(unique)}
        flat = [out[where[p]][0] for p in prompts]
    else:
        flat = [s for k in range(len(unique)) for s in out[k]]
    peak = config.peak_memory_mib(device)
    return flat, {"seconds": secs, "reasons_per_s": len(flat) / secs,
                  "generated_per_s": len(unique) * num_return_sequences / secs,
                  "tokens_per_s": n_tokens / secs, "peak_mib": peak, "device": device.type}


class _MaskLogits:
    """A logits processor: tokens outside each row's mask get -inf."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask

    def __call__(self, input_ids, scores):
        m = self.mask[:, :scores.shape[-1]]
        if m.shape[-1] < scores.shape[-1]:     # the model's vocabulary is padded past tok's
            pad = torch.zeros(m.shape[0], scores.shape[-1] - m.shape[-1], dtype=torch.bool,
                              device=m.device)
            m = torch.cat([m, pad], dim=1)
        return scores.masked_fill(~m, float("-inf"))


def allowed_tokens(tok, plan: list[Claim], category: str | None, lex,
                   phrasing=None, brand: str | None = None) -> torch.Tensor:
    """A boolean mask over the vocabulary: the tokens of the plan's words (aspect names, the
    opinion words of each planned band, colour, pattern, brand, 'popular'), the item's category
    nouns, the allowed phrasing (guard.ALLOWED), the product's ``brand`` when it is a safe name
    (the prompt names the product by it), punctuation and end-of-sequence — each word with and
    without a leading space and capitalised. Pieces of allowed words can still form a
    word that is not allowed; the guard catches those."""
    from .claims import _PATTERN_WORDS, _PRICE_PHRASES
    from .guard import ALLOWED, category_nouns, category_words

    words = set(phrasing if phrasing is not None else ALLOWED) | {"popular"}
    if isinstance(category, str):
        words |= category_words(category) | category_nouns(category)
    if safe_name(brand or ""):
        words |= set(brand.split())
    for c in plan:
        if c.kind == "aspect":
            words |= set(c.name.split())
            if c.name == "price":
                words |= {w for p in _PRICE_PHRASES for w in p.split()}
            if c.level:
                words |= {w for w, b in lex.opinion_band.items() if b == c.level}
        elif c.kind == "pattern":
            words |= {w for p in _PATTERN_WORDS.get(c.name, []) for w in p.split()}
            words |= set(V.PATTERN_PHRASES.get(c.name, "").split())
        elif c.kind in ("colour", "brand"):
            words.add(c.name)
    mask = torch.zeros(len(tok), dtype=torch.bool)
    mask[sorted(_token_ids(tok, words))] = True
    return mask


def _token_ids(tok, words) -> set[int]:
    """The token ids that spell each of ``words`` — as written and capitalised, with and
    without a leading space — plus punctuation and end-of-sequence: what decoding may write."""
    ids = {tok.eos_token_id}
    for w in words:
        for form in {w, w.capitalize()}:
            for text in (form, " " + form):
                ids.update(tok(text, add_special_tokens=False)["input_ids"])
    for p in [".", ",", ";", ":", "!", "'", "-", "—", " —", " -"]:
        ids.update(tok(p, add_special_tokens=False)["input_ids"])
    return ids


def realise_varied(tok, model, prompts: list[str], vocab: torch.Tensor, *,
                   temperature: float = 1.0, seed: int = 0, redraws: int = 1,
                   batch_size: int = 256) -> tuple[list[str], dict]:
    """Sampled sentences (:func:`realise_fast`) where shoppers who get the same prompt — the
    same plan for the same product — do not all get the same sentence: a sample that repeats
    the sentence an earlier copy of its prompt got is drawn again, with the next seed, up to
    ``redraws`` times; one that still repeats is kept. The stats add up every pass and count
    the redrawn samples (``redrawn``); tokens/s and generated/s are the first pass's."""
    if isinstance(redraws, bool) or not isinstance(redraws, int) or redraws < 0:
        raise ValueError(f"redraws must be a non-negative integer, got {redraws!r}")
    out, stats = realise_fast(tok, model, prompts, vocab, batch_size=batch_size,
                              temperature=temperature, seed=seed)
    stats = dict(stats, redrawn=0)
    for r in range(redraws):
        said, again = set(), []
        for k, pair in enumerate(zip(prompts, out)):
            if pair in said:
                again.append(k)
            else:
                said.add(pair)
        if not again:
            break
        new, st = realise_fast(tok, model, [prompts[k] for k in again], vocab,
                               batch_size=batch_size, temperature=temperature, seed=seed + 1 + r)
        for k, s in zip(again, new):
            if (prompts[k], s) not in said:
                out[k] = s
                said.add((prompts[k], s))
        stats["redrawn"] += len(again)
        stats["seconds"] += st["seconds"]
    stats["reasons_per_s"] = len(prompts) / stats["seconds"]
    return out, stats


def serve(tok, model, vocab: torch.Tensor, guard, users, items, plans: list[list[Claim]], *,
          temperature: float = 1.0, seed: int = 0, batch_size: int = 256) -> tuple[list[str], dict]:
    """Chapter 05's realiser as a shop would run it, one sentence per (user, item, plan):

    1. a sample at ``temperature`` over the closed vocabulary, drawn once more where another
       shopper already got the same sentence for the same plan and product
       (:func:`realise_varied`);
    2. the guard (a :class:`~helpers.nlg.guard.ClosedWorldGuard` with a fallback explainer)
       checks it; for every sample it rejects, the greedy sentence of the same prompt is
       checked instead, and where that fails too the fallback explainer's marked reason is
       served.

    ``guard.personal`` decides which drivers count as personal (the chapter passes the plan's
    own drivers). Returns ``(sentences, stats)``: stats of the sampling pass plus ``redrawn``,
    ``rejected`` (samples the guard refused), ``fallback`` (pairs given the marked reason) and
    ``seconds``/``reasons_per_s`` for the whole loop, guard included."""
    import time

    users = [int(u) for u in users]
    items = [int(i) for i in items]
    if not (len(users) == len(items) == len(plans)):
        raise ValueError(f"users, items and plans must be the same length, got {len(users)}, "
                         f"{len(items)}, {len(plans)}")
    if getattr(guard, "fallback", None) is None:
        raise ValueError("the guard needs a fallback explainer (ClosedWorldGuard(..., "
                         "fallback=TemplateExplainer(...))): a rejected pair must still be served")
    empty = [k for k, p in enumerate(plans) if not p]
    if empty:
        raise ValueError(f"{len(empty)} empty plans (first at position {empty[0]}): an empty plan "
                         "has nothing to say; give those pairs the template instead")
    t0 = time.perf_counter()
    prompts = [realiser_prompt(p, guard.facts[i]) for p, i in zip(plans, items)]
    out, stats = realise_varied(tok, model, prompts, vocab, temperature=temperature, seed=seed,
                                batch_size=batch_size)
    redo = [k for k, s in enumerate(out) if not guard.passes(s, users[k], items[k])]
    fallback = 0
    if redo:
        greedy, _ = realise_fast(tok, model, [prompts[k] for k in redo], vocab,
                                 batch_size=batch_size)
        for j, k in enumerate(redo):
            out[k], used = guard.choose([greedy[j]], users[k], items[k])
            fallback += used
    seconds = time.perf_counter() - t0
    stats.update(rejected=len(redo), fallback=fallback, seconds=seconds,
                 reasons_per_s=len(prompts) / seconds)
    return out, stats


def reference_scores(path: str | Path, world, n: int = 48) -> dict:
    """The shipped adapter's recorded scores, re-measured by the test: :func:`realiser_scores`
    of the adapter at ``path``."""
    tok, model, _ = load_realiser(path)
    return realiser_scores(tok, model, world, n)


def realiser_scores(tok, model, world, n: int = 48) -> dict:
    """A realiser's quality on the first ``n`` warm test pairs that have a grounded driver,
    with their oracle plans: (1) the mean loss on the reference reasons' tokens, (2) the share
    of greedy sentences that say exactly the plan (:func:`says_plan`)."""
    from .lm import _collate
    from .planner import POPULARITY, oracle_plan

    rows = [(i, r, oracle_plan(world.facts[int(i)], d))
            for i, r, d in zip(world.warm["item_id"], world.warm["reason"], world.warm["drivers"])]
    rows = [x for x in rows if x[2] != [POPULARITY]][:n]
    prompts = [realiser_prompt(p, world.facts[int(i)]) for i, _, p in rows]
    ex = [encode_plan_example(tok, pr, r) for pr, (_, r, _) in zip(prompts, rows)]
    ids, labels, att = _collate(ex, tok.pad_token_id)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        loss = float(model(input_ids=ids, attention_mask=att, labels=labels).loss)
    said, _ = realise(tok, model, prompts, progress=False)
    model.train(was_training)
    exact = [says_plan(s, p, world.facts[int(i)], world.lex) for s, (i, _, p) in zip(said, rows)]
    return {"n": len(rows), "loss": round(loss, 5), "plan_exact": round(sum(exact) / len(rows), 5)}


def quantize_mlp(model):
    """A copy of the (merged) realiser whose decoder MLPs — the gate, up and down projections,
    about two thirds of the arithmetic per token — run in int8 (PyTorch's dynamic quantisation:
    int8 weights, activations quantised on the fly per batch); attention and the output layer
    stay float32. For CPUs only. ``benchmarks/reason_benchmark.py`` measures what it buys in
    speed and costs in plan-exact sentences, next to quantising every linear layer."""
    import copy
    import warnings

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("dynamic int8 quantisation runs on the CPU; on a GPU use bfloat16")
    q = copy.deepcopy(model)
    with warnings.catch_warnings():      # torch.ao's notice that the API moves to torchao
        warnings.simplefilter("ignore")
        for layer in q.model.layers:
            layer.mlp = torch.ao.quantization.quantize_dynamic(layer.mlp, {torch.nn.Linear},
                                                               dtype=torch.qint8)
    return q


def closed_vocabulary(tok, lex) -> torch.Tensor:
    """Token ids of every word a guarded reason may contain — the allowed phrasing, every
    aspect, opinion word, colour, pattern and value phrase, the brands with safe names, every
    category's nouns, 'popular', 'most' — with and without a leading space and capitalised, plus
    punctuation and end-of-sequence. About 2,000 of SmolLM2's 49,152 tokens."""
    from .claims import _PATTERN_WORDS, _PRICE_PHRASES
    from .guard import ALLOWED, category_nouns, category_words

    # 'most' is not allowed phrasing in general (never "the most durable"), but the guard passes
    # it at the end of a sentence ("what you care about most"): without its token, decoding
    # could not finish the references' own wording and would make up a word instead
    words = set(ALLOWED) | {"popular", "most"} | set(lex.colours)
    words |= {w for a in lex.aspects for w in a.split()}
    words |= {w for o in lex.opinion_band for w in o.split()}
    words |= {w for ps in _PATTERN_WORDS.values() for p in ps for w in p.split()}
    words |= {w for p in V.PATTERN_PHRASES.values() for w in p.split()}
    words |= {w for p in _PRICE_PHRASES for w in p.split()}
    words |= {b for b in lex.brands if safe_name(b)}
    for c in V.CATEGORIES:
        words |= category_words(c) | category_nouns(c)
    return torch.tensor(sorted(_token_ids(tok, words)), dtype=torch.long)


@torch.inference_mode()
def realise_fast(tok, model, prompts: list[str], vocab: torch.Tensor, *, batch_size: int = 256,
                 max_new_tokens: int = 40, temperature: float | None = None,
                 seed: int = 0) -> tuple[list[str], dict]:
    """Decoding written out, nanoGPT-style, for speed on a CPU: one forward pass over the
    (left-padded) prompts fills the KV cache, then one token per step for the whole batch, with
    the output layer cut to ``vocab`` (:func:`closed_vocabulary`): about 1,200 rows of the
    49,152-row embedding matrix instead of all of them. That is also constrained decoding, to
    the closed vocabulary (the guard still checks each sentence against its own item). Only the
    final hidden state of each step is projected.

    A row that has written end-of-sequence leaves the batch at once (its KV cache rows are
    dropped), so the steps after it cost only the rows still writing. Batches of 256 rows: on 2 CPU
    cores about 10 % more sentences per second than 128 (more copies of a prompt share a pass
    over it), for a KV cache of about half a gigabyte.

    ``temperature=None``: greedy, and identical prompts are generated once. A number: sampling
    from the softmax of the logits divided by it, seeded by ``seed``: every prompt is sampled,
    duplicates included (that is where the variety comes from), and the copies of one prompt
    share one pass over it — its KV cache rows are copied, not recomputed."""
    import time

    from .. import config

    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of realiser_prompt() strings")
    if temperature is not None and (isinstance(temperature, bool) or
                                    not isinstance(temperature, (int, float)) or
                                    not 0 < temperature <= 10):
        raise ValueError(f"temperature must be None (greedy) or a number in (0, 10], got "
                         f"{temperature!r}")
    weight = model.lm_head.weight
    weight = weight() if callable(weight) else weight        # a dynamically quantised Linear
    weight = weight.dequantize() if weight.is_quantized else weight
    if vocab.dim() != 1 or not len(vocab) or int(vocab.max()) >= weight.shape[0]:
        raise ValueError("vocab must be a 1-D tensor of token ids (closed_vocabulary)")
    if tok.eos_token_id not in set(vocab.tolist()):
        raise ValueError("vocab must contain the end-of-sequence token, or no row can stop")
    device = next(model.parameters()).device
    vocab = vocab.to(device)
    head = weight[vocab]                                     # (V', d)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    gen = torch.Generator(device=device).manual_seed(seed)
    unique = list(dict.fromkeys(prompts))
    where = {p: k for k, p in enumerate(unique)}
    ids = tok(unique, add_special_tokens=False)["input_ids"]
    # one row per sentence to write: greedy, one per distinct prompt; sampled, one per prompt.
    # The rows of one prompt sit side by side (shortest prompts first) and share one prefill
    copies = (Counter(where[p] for p in prompts) if temperature is not None
              else Counter(range(len(unique))))
    todo = [(k, c) for k in sorted(range(len(unique)), key=lambda k: len(ids[k]))
            for c in range(copies[k])]
    said: dict[tuple[int, int], str] = {}
    n_tokens = 0
    t0 = time.perf_counter()

    def pick(h):
        logits = h @ head.T
        if temperature is None:
            return vocab[logits.argmax(-1)]
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return vocab[torch.multinomial(probs, 1, generator=gen)[:, 0]]

    for s in range(0, len(todo), batch_size):
        chunk = todo[s:s + batch_size]
        ks = list(dict.fromkeys(k for k, _ in chunk))         # its distinct prompts
        width = max(len(ids[k]) for k in ks)
        inp = torch.full((len(ks), width), pad, dtype=torch.long)
        att = torch.zeros((len(ks), width), dtype=torch.long)
        for j, k in enumerate(ks):                           # left padding
            inp[j, width - len(ids[k]):] = torch.tensor(ids[k])
            att[j, width - len(ids[k]):] = 1
        inp, att = inp.to(device), att.to(device)
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        res = model.model(input_ids=inp, attention_mask=att, position_ids=pos, use_cache=True)
        past, h = res.past_key_values, res.last_hidden_state[:, -1]
        if len(ks) < len(chunk):                 # copies of a prompt get copies of its cache rows
            slot = {k: j for j, k in enumerate(ks)}
            expand = torch.tensor([slot[k] for k, _ in chunk], device=device)
            past.batch_select_indices(expand)
            h, att, pos = h[expand], att[expand], pos[expand]
        rows = torch.arange(len(chunk), device=device)        # batch row -> position in chunk
        written: list[list[int]] = [[] for _ in chunk]
        for step in range(max_new_tokens):
            nxt = pick(h)
            live = nxt != eos
            for r, t in zip(rows[live].tolist(), nxt[live].tolist()):
                written[r].append(t)
            if not bool(live.any()) or step == max_new_tokens - 1:
                break
            if not bool(live.all()):                          # finished rows leave the batch
                keep = live.nonzero()[:, 0]
                past.batch_select_indices(keep)
                rows, att, pos, nxt = rows[keep], att[keep], pos[keep], nxt[keep]
            att = torch.cat([att, torch.ones_like(att[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            res = model.model(input_ids=nxt[:, None], attention_mask=att, position_ids=pos,
                              past_key_values=past, use_cache=True)
            past, h = res.past_key_values, res.last_hidden_state[:, -1]
        n_tokens += sum(len(w) for w in written)
        for j, row in enumerate(chunk):
            said[row] = tok.decode(written[j], skip_special_tokens=True).strip()
    secs = time.perf_counter() - t0
    # back to the prompts' order: the m-th copy of a prompt gets its m-th sentence
    seen: Counter = Counter()
    out = []
    for p in prompts:
        k = where[p]
        out.append(said[(k, seen[k] if temperature is not None else 0)])
        seen[k] += 1
    peak = config.peak_memory_mib(device)
    return out, {"seconds": secs, "reasons_per_s": len(prompts) / secs,
                 "generated_per_s": len(todo) / secs,
                 "tokens_per_s": n_tokens / secs, "peak_mib": peak, "device": device.type}
