"""Decoding a realiser: one sentence per plan prompt, greedy or sampled.

* :func:`realise` — Hugging Face's ``generate`` (identical prompts generated once), optionally
  constrained to one plan's words (:func:`~helpers.reasons.vocabulary.allowed_tokens`);
* :func:`realise_fast` — decoding written out, nanoGPT-style, with the output layer cut to the
  closed vocabulary (:func:`~helpers.reasons.vocabulary.closed_vocabulary`);
* :func:`realise_varied` — sampled sentences, redrawn where another shopper already got the same
  one for the same prompt;
* :func:`quantize_mlp` — an int8 copy of the decoder's MLPs, for CPUs.

    said, stats = realise_fast(tok, model, prompts, closed_vocabulary(tok, lex))
"""
from __future__ import annotations

import copy
import time
import warnings
from collections import Counter

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.core import config
from helpers.core.checks import DataError, ParameterError

__all__ = ["realise", "realise_fast", "realise_varied", "quantize_mlp"]


def realise(tok, model, prompts: list[str], *, batch_size: int = 64, max_new_tokens: int = 40,
            strategy: str = "greedy", temperature: float = 0.8, top_p: float = 0.95,
            num_return_sequences: int = 1, seed: int = 0, allowed: list | None = None,
            progress: bool = True) -> tuple[list[str], dict]:
    """Generate one sentence per plan prompt (identical prompts are generated once). Returns the
    sentences and timing (seconds, reasons/s, tokens/s, peak memory).

    ``allowed``: optional, one boolean vocabulary mask per prompt (:func:`allowed_tokens`):
    **constrained decoding** — every other token gets probability 0, so the model can only
    write the words of its plan and the allowed phrasing."""

    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise DataError("prompts must be a non-empty list of realiser_prompt() strings")
    if strategy not in ("greedy", "sample"):
        raise ParameterError(f"strategy must be 'greedy' or 'sample', got {strategy!r}")
    device = next(model.parameters()).device
    if allowed is not None and len(allowed) != len(prompts):
        raise DataError(f"{len(allowed)} allowed-token masks for {len(prompts)} prompts")
    if allowed is not None and strategy == "greedy":   # identical prompt, identical mask
        key = {}
        for p, m in zip(prompts, allowed):
            if p in key and not torch.equal(key[p], m):
                raise DataError("two identical prompts have different allowed-token masks")
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


def realise_varied(tok, model, prompts: list[str], vocab: torch.Tensor, *,
                   temperature: float = 1.0, seed: int = 0, redraws: int = 1,
                   batch_size: int = 256) -> tuple[list[str], dict]:
    """Sampled sentences (:func:`realise_fast`) where shoppers who get the same prompt — the
    same plan for the same product — do not all get the same sentence: a sample that repeats
    the sentence an earlier copy of its prompt got is drawn again, with the next seed, up to
    ``redraws`` times; one that still repeats is kept. The stats add up every pass and count
    the redrawn samples (``redrawn``); tokens/s and generated/s are the first pass's."""
    if isinstance(redraws, bool) or not isinstance(redraws, int) or redraws < 0:
        raise ParameterError(f"redraws must be a non-negative integer, got {redraws!r}")
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


def quantize_mlp(model):
    """A copy of the (merged) realiser whose decoder MLPs — the gate, up and down projections,
    about two thirds of the arithmetic per token — run in int8 (PyTorch's dynamic quantisation:
    int8 weights, activations quantised on the fly per batch); attention and the output layer
    stay float32. For CPUs only. ``benchmarks/reason_benchmark.py`` measures what it buys in
    speed and costs in plan-exact sentences, next to quantising every linear layer."""
    if next(model.parameters()).device.type != "cpu":
        raise ParameterError("dynamic int8 quantisation runs on the CPU; on a GPU use bfloat16")
    q = copy.deepcopy(model)
    with warnings.catch_warnings():      # torch.ao's notice that the API moves to torchao
        warnings.simplefilter("ignore")
        for layer in q.model.layers:
            layer.mlp = torch.ao.quantization.quantize_dynamic(layer.mlp, {torch.nn.Linear},
                                                               dtype=torch.qint8)
    return q


@torch.inference_mode()
def realise_fast(tok, model, prompts: list[str], vocab: torch.Tensor, *, batch_size: int = 256,
                 max_new_tokens: int = 40, temperature: float | None = None,
                 seed: int = 0) -> tuple[list[str], dict]:
    """Decoding written out, nanoGPT-style, for speed on a CPU: one forward pass over the
    (left-padded) prompts fills the KV cache, then one token per step for the whole batch, with
    the output layer cut to ``vocab`` (:func:`~helpers.reasons.vocabulary.closed_vocabulary`):
    its rows of the embedding matrix instead of all of them. That is also constrained decoding, to
    the closed vocabulary (the guard still checks each sentence against its own item). Only the
    final hidden state of each step is projected.

    A row that has written end-of-sequence leaves the batch at once (its KV cache rows are
    dropped), so the steps after it cost only the rows still writing. Larger batches share a
    prompt's pass among more of its copies and hold a larger KV cache: the default's speed and
    memory are in ``benchmarks/results/05_reason_benchmark_cpu.md``.

    ``temperature=None``: greedy, and identical prompts are generated once. A number: sampling
    from the softmax of the logits divided by it, seeded by ``seed``: every prompt is sampled,
    duplicates included (that is where the variety comes from), and the copies of one prompt
    share one pass over it — its KV cache rows are copied, not recomputed."""
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise DataError("prompts must be a non-empty list of realiser_prompt() strings")
    if temperature is not None and (isinstance(temperature, bool) or
                                    not isinstance(temperature, (int, float)) or
                                    not 0 < temperature <= 10):
        raise ParameterError(f"temperature must be None (greedy) or a number in (0, 10], got "
                             f"{temperature!r}")
    weight = model.lm_head.weight
    weight = weight() if callable(weight) else weight        # a dynamically quantised Linear
    weight = weight.dequantize() if weight.is_quantized else weight
    if vocab.dim() != 1 or not len(vocab) or int(vocab.max()) >= weight.shape[0]:
        raise DataError("vocab must be a 1-D tensor of token ids (closed_vocabulary)")
    if tok.eos_token_id not in set(vocab.tolist()):
        raise DataError("vocab must contain the end-of-sequence token, or no row can stop")
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
