"""Scores of generated text that need a model (chapter 07): BERTScore with the course's offline
MiniLM, a language model's likelihood of a text (perplexity, a GPTScore-style score), and a
small LM asked to judge reasons.

    tok, enc = models.text_encoder()
    p, r, f = textscore.bert_score(candidates, references, tok, enc)        # one per pair
    tok, lm = models.language_model()
    nll = textscore.lm_nll(tok, lm, prompts, texts)                           # nats per token
    p_yes = textscore.judge(tok, lm, questions)                               # P("Yes") each

BERTScore (Zhang et al., 2020) embeds every token of candidate and reference with a BERT-style
encoder (one hidden layer, chosen per model), matches each token to its most similar token on
the other side by cosine, and averages: precision over the candidate's tokens, recall over the
reference's, F1. The ``bert-score`` package does the same; the unit tests check this module
against it on the same local model and layer.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers.core.checks import DataError, require_int

__all__ = ["bert_score", "rescale", "random_pair_baseline", "lm_nll", "judge", "stated_facts",
           "verdict_question", "preference_question"]


def _texts(x, what: str) -> list[str]:
    if isinstance(x, str):
        raise DataError(f"{what} must be a list of strings; wrap a single text as [text].")
    x = list(x)
    if not x:
        raise DataError(f"{what} is empty: nothing to score.")
    bad = [k for k, t in enumerate(x) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(f"{what} must be non-empty strings; positions {bad[:5]} are not.")
    return x


def _check_batch(batch_size):
    require_int("batch_size", batch_size, 1)


@torch.inference_mode()
def _token_embeddings(texts, tok, model, layer: int, batch_size: int, progress: bool):
    """Per text: its tokens' unit vectors at hidden layer ``layer``, and which of them are
    special ([CLS], [SEP])."""
    device = next(model.parameters()).device
    out = []
    for s in tqdm(range(0, len(texts), batch_size), disable=not progress, desc="BERTScore"):
        enc = tok(texts[s:s + batch_size], padding=True, truncation=True, max_length=128,
                  return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask").bool()
        enc = {k: v.to(device) for k, v in enc.items()}
        hidden = model(**enc, output_hidden_states=True).hidden_states[layer].float().cpu()
        real = enc["attention_mask"].cpu().bool()
        for h, m, sp in zip(hidden, real, special):
            out.append((torch.nn.functional.normalize(h[m], dim=-1), sp[m]))
    return out


def bert_score(candidates, references, tok, model, *, layer: int | None = None,
               batch_size: int = 64, progress: bool | None = None):
    """BERTScore precision, recall and F1 of each candidate against its reference (arrays of
    length n), without importance weighting (idf) or rescaling.

    ``layer``: the hidden layer whose token vectors are matched (0 = embeddings); default the
    model's last layer. The ``bert-score`` package picks a tuned layer per model (it knows none
    for MiniLM, so the course states its own choice). As in that package, [CLS] and [SEP] are
    left out of the averages but stay on the other side as possible matches.
    """
    cands = _texts(candidates, "candidates")
    refs = _texts(references, "references")
    if len(cands) != len(refs):
        raise DataError(f"{len(cands)} candidates for {len(refs)} references: one reference "
                        "per candidate.")
    _check_batch(batch_size)
    n_layers = model.config.num_hidden_layers
    layer = n_layers if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer <= n_layers:
        raise DataError(f"layer must be an integer in 0..{n_layers} for this model, got "
                        f"{layer!r}.")
    show = len(cands) > 4 * batch_size if progress is None else progress
    # each distinct text is embedded once
    unique = list(dict.fromkeys(cands + refs))
    emb = dict(zip(unique, _token_embeddings(unique, tok, model, layer, batch_size, show)))
    p, r = np.empty(len(cands)), np.empty(len(cands))
    for k, (c, ref) in enumerate(zip(cands, refs)):
        (ec, sc), (er, sr) = emb[c], emb[ref]
        sim = ec @ er.T
        p[k] = float(sim.max(dim=1).values[~sc].mean())
        r[k] = float(sim.max(dim=0).values[~sr].mean())
    f = 2 * p * r / (p + r)
    return p, r, f


def random_pair_baseline(texts, tok, model, *, layer: int | None = None, n_pairs: int = 500,
                         seed: int = 0) -> float:
    """The mean BERTScore F1 of random *unrelated* pairs of ``texts``: the floor that
    :func:`rescale` subtracts. The ``bert-score`` package ships such baselines (from Common
    Crawl) only for the models it knows; for MiniLM the course measures one on its own text."""
    texts = _texts(texts, "texts")
    if len(set(texts)) < 2:
        raise DataError("need at least two different texts to pair at random.")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(texts), n_pairs)
    b = rng.integers(0, len(texts), n_pairs)
    keep = [texts[i] != texts[j] for i, j in zip(a, b)]
    _, _, f = bert_score([texts[i] for i, k in zip(a, keep) if k],
                         [texts[j] for j, k in zip(b, keep) if k], tok, model, layer=layer,
                         progress=False)
    return float(f.mean())


def rescale(score, baseline: float):
    """``(score - baseline) / (1 - baseline)``: 0 = no better than an unrelated sentence,
    1 = identical. Changes no ranking; makes the numbers readable."""
    if not 0 <= baseline < 1:
        raise DataError(f"baseline must be in [0, 1), got {baseline!r}.")
    return (np.asarray(score, dtype=np.float64) - baseline) / (1 - baseline)


@torch.inference_mode()
def lm_nll(tok, model, prompts, texts, *, batch_size: int = 32, progress: bool | None = None
           ) -> np.ndarray:
    """Mean negative log-likelihood (nats per token) of each ``text`` as the assistant's reply to
    its chat ``prompt`` (a user message string), under a causal LM. ``exp(nll)`` is the
    perplexity; ``-nll`` is a GPTScore-style quality score (Fu et al., 2023): how likely the
    model finds the text as an answer to the prompt. Lower nll = more expected, which is not
    the same as true."""
    prompts, texts = _texts(prompts, "prompts"), _texts(texts, "texts")
    if len(prompts) != len(texts):
        raise DataError(f"{len(prompts)} prompts for {len(texts)} texts: one prompt per text.")
    _check_batch(batch_size)
    device = next(model.parameters()).device
    rows = []
    for p, t in zip(prompts, texts):
        head = tok.apply_chat_template([{"role": "user", "content": p}],
                                       add_generation_prompt=True, tokenize=False)
        p_ids = tok(head, add_special_tokens=False)["input_ids"]
        t_ids = tok(t, add_special_tokens=False)["input_ids"]
        rows.append((p_ids, t_ids))
    out = np.empty(len(rows))
    show = len(rows) > 4 * batch_size if progress is None else progress
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for s in tqdm(range(0, len(rows), batch_size), disable=not show, desc="LM likelihood"):
        chunk = rows[s:s + batch_size]
        width = max(len(p) + len(t) for p, t in chunk)
        n_text = max(len(t) for _, t in chunk)
        # left-padded, so every text ends at the last position: only the last n_text + 1
        # positions need logits (the output layer over 49k tokens is most of the cost)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        att = torch.zeros((len(chunk), width), dtype=torch.long)
        target = torch.full((len(chunk), n_text), -100, dtype=torch.long)
        for r, (p, t) in enumerate(chunk):
            seq = p + t
            ids[r, width - len(seq):] = torch.tensor(seq)
            att[r, width - len(seq):] = 1
            target[r, n_text - len(t):] = torch.tensor(t)
        pos = (att.cumsum(1) - 1).clamp(min=0)     # positions 0..L-1 of the real tokens
        logits = model(input_ids=ids.to(device), attention_mask=att.to(device),
                       position_ids=pos.to(device), logits_to_keep=n_text + 1).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).cpu()
        mask = target != -100
        tok_lp = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out[s:s + len(chunk)] = (-(tok_lp * mask).sum(1) / mask.sum(1)).numpy()
    return out


@torch.inference_mode()
def judge(tok, model, questions, *, options: tuple[str, str] = ("Yes", "No"),
          system: str | None = None, batch_size: int = 16, progress: bool | None = None
          ) -> np.ndarray:
    """An LM as judge: for each ``question`` (a user message) with two possible answers, the
    probability the model puts on ``options[0]`` rather than ``options[1]`` as its first token,
    ``P(a) / (P(a) + P(b))`` — "Yes"/"No" for a verdict, "A"/"B" for a preference between two
    texts. Reading the two probabilities, instead of generating, gives a graded score and never
    an unparseable answer."""
    questions = _texts(questions, "questions")
    _check_batch(batch_size)
    if (not isinstance(options, (tuple, list)) or len(options) != 2
            or not all(isinstance(o, str) and o for o in options) or options[0] == options[1]):
        raise DataError(f"options must be two different answers such as ('Yes', 'No'), got "
                        f"{options!r}.")
    yes = tok(options[0], add_special_tokens=False)["input_ids"]
    no = tok(options[1], add_special_tokens=False)["input_ids"]
    if len(yes) != 1 or len(no) != 1:
        raise DataError(f"this tokenizer splits {options[0]!r} or {options[1]!r} into several "
                        "tokens; judge needs single-token answers.")
    device = next(model.parameters()).device
    heads = [tok.apply_chat_template(([{"role": "system", "content": system}] if system else [])
                                     + [{"role": "user", "content": q}],
                                     add_generation_prompt=True, tokenize=False)
             for q in questions]
    out = np.empty(len(heads))
    side = tok.padding_side
    tok.padding_side = "left"                      # the last position is every row's next token
    try:
        show = len(heads) > 4 * batch_size if progress is None else progress
        for s in tqdm(range(0, len(heads), batch_size), disable=not show, desc="LM judge"):
            enc = tok(heads[s:s + batch_size], return_tensors="pt", padding=True,
                      add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            att = enc["attention_mask"]
            pos = (att.cumsum(1) - 1).clamp(min=0)
            last = model(**enc, position_ids=pos, logits_to_keep=1).logits[:, -1].float().cpu()
            two = torch.log_softmax(last[:, [yes[0], no[0]]], dim=-1)
            out[s:s + len(two)] = two[:, 0].exp().numpy()
    finally:
        tok.padding_side = side
    return out


# ----------------------------------------------------------------------------- judge prompts
def stated_facts(facts: dict) -> str:
    """One line of what the shop states about an item (an ``claims.item_facts`` entry): each
    stated aspect with its band, then colour, pattern and brand where stated."""
    if not isinstance(facts, dict) or "aspects" not in facts:
        raise DataError("facts must be an claims.item_facts() entry (a dict with 'aspects').")
    stated = [f"{a}: {b}" for a, b in sorted(facts["aspects"].items())]
    stated += [f"{k}: {facts[k]}" for k in ("colour", "pattern", "brand") if facts.get(k)]
    return "; ".join(stated) or "none stated"


def verdict_question(facts: dict, reason: str) -> str:
    """Chapter 07's yes/no question to an LM judge: is every claim of ``reason`` supported by
    the item's stated ``facts``? (Read with :func:`judge`.)"""
    return (f"Product facts: {stated_facts(facts)}.\nReason: {reason}\nIs every claim in the "
            "reason supported by the product facts? Answer Yes or No.")


def preference_question(facts: dict, reason_a: str, reason_b: str) -> str:
    """Chapter 07's pairwise question: which of two reasons is more accurate about the item?
    (Read with :func:`judge` and ``options=("A", "B")``; ask both orders to see position
    bias.)"""
    return (f"Product facts: {stated_facts(facts)}.\nReason A: {reason_a}\nReason B: {reason_b}\n"
            "Which reason is more accurate about the product? Answer A or B.")
