"""Say the plan: turn a content plan into one sentence, and serve it behind the guard.

* :class:`TemplateRealiser` — the plan in the reference templates' wording, the baseline;
* :func:`training_examples` — the language-model realiser's training set (:data:`MIXTURE`);
* :func:`serve` — sample, redraw repeats, guard, greedy, marked fallback: what a shop runs;
* :func:`realiser_scores` — a realiser's loss and share of sentences that say exactly the plan.

The parts live beside it: the prompt (:mod:`~helpers.reasons.plan_prompt`), the closed word set
(:mod:`~helpers.reasons.vocabulary`), the LoRA adapter (:mod:`~helpers.reasons.adapter`) and
decoding (:mod:`~helpers.reasons.decoding`).

    tok, model, _ = adapter.load_realiser()
    said, stats = serve(tok, model, vocabulary.closed_vocabulary(tok, lex), guard, users, items, plans)
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import torch

from helpers.core.checks import DataError, ParameterError
from helpers.data import vocab as V
from helpers.reasons import phrasing
from helpers.reasons.adapter import load_realiser
from helpers.reasons.claims import Claim
from helpers.reasons.decoding import realise, realise_fast, realise_varied
from helpers.reasons.lm import collate
from helpers.reasons.plan_prompt import (
    encode_plan_example,
    plan_from_reason,
    realiser_prompt,
    says_plan,
)
from helpers.reasons.planner import POPULARITY, oracle_plan
from helpers.reasons.untrusted import safe_name

__all__ = ["TemplateRealiser", "MIXTURE", "training_examples", "serve", "reference_scores",
           "realiser_scores"]


class TemplateRealiser:
    """The plan said with the reference templates' wording (one fixed sentence per plan):
    the baseline every language-model realiser has to beat on variety."""

    def say(self, plan: list[Claim], pick: int = 0) -> str:
        """The fixed sentence for the plan's first claim (``pick`` chooses among a claim's
        wordings); a :class:`DataError` for an empty plan.
        """
        if not plan:
            raise DataError("the plan is empty")
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
"""The realiser's training mixture per kind of plan (:func:`~helpers.reasons.phrasing.kind_of`):
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
    (:func:`~helpers.reasons.world.reason_world`) gives ``per_purchase`` examples, each the prompt
    built from the plan its reference reason realises and the item (:func:`realiser_prompt`)
    with a target drawn from ``mixture`` (default :data:`MIXTURE`; per kind of plan, the shares
    of the reference itself and of the reference with the product as its subject,
    :func:`~helpers.reasons.phrasing.mirror`); otherwise — and where the reference has no mirror —
    a random sentence of the phrasing bank for that plan. Seeded; every purchase weighs the
    same, so a product bought often with one plan is seen often, as in the purchase log.

    Why a mixture: BLEU rewards the references' word sequences, the unique-sentence ratio
    rewards not repeating a sentence (see :data:`MIXTURE`).
    Returns ``(examples, prompts, targets, sha256 of the prompts and targets)``."""
    mixture = MIXTURE if mixture is None else mixture
    if isinstance(per_purchase, bool) or not isinstance(per_purchase, int) or per_purchase < 1:
        raise ParameterError(f"per_purchase must be a positive integer, got {per_purchase!r}")
    if not isinstance(mixture, dict) or set(mixture) != set(MIXTURE):
        raise ParameterError(f"mixture must map each of {sorted(MIXTURE)} to (exact, mirrored) "
                             f"shares, got {mixture!r}")
    for kind, shares in mixture.items():
        ok = (isinstance(shares, tuple) and len(shares) == 2 and
              all(not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1
                  for v in shares))
        if not ok or sum(shares) > 1:
            raise ParameterError(f"mixture[{kind!r}] must be (exact, mirrored), two probabilities "
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


# ============================================================================ generation
def serve(tok, model, vocab: torch.Tensor, guard, users, items, plans: list[list[Claim]], *,
          temperature: float = 1.0, seed: int = 0, batch_size: int = 256) -> tuple[list[str], dict]:
    """Chapter 05's realiser as a shop would run it, one sentence per (user, item, plan):

    1. a sample at ``temperature`` over the closed vocabulary, drawn once more where another
       shopper already got the same sentence for the same plan and product
       (:func:`realise_varied`);
    2. the guard (a :class:`~helpers.reasons.guard.ClosedWorldGuard` with a fallback explainer)
       checks it; for every sample it rejects, the greedy sentence of the same prompt is
       checked instead, and where that fails too the fallback explainer's marked reason is
       served.

    ``guard.personal`` decides which drivers count as personal (the chapter passes the plan's
    own drivers). Returns ``(sentences, stats)``: stats of the sampling pass plus ``redrawn``,
    ``rejected`` (samples the guard refused), ``fallback`` (pairs given the marked reason) and
    ``seconds``/``reasons_per_s`` for the whole loop, guard included."""
    users = [int(u) for u in users]
    items = [int(i) for i in items]
    if not (len(users) == len(items) == len(plans)):
        raise DataError(f"users, items and plans must be the same length, got {len(users)}, "
                        f"{len(items)}, {len(plans)}")
    if getattr(guard, "fallback", None) is None:
        raise ParameterError("the guard needs a fallback explainer (ClosedWorldGuard(..., "
                             "fallback=TemplateExplainer(...))): a rejected pair must still be served")
    empty = [k for k, p in enumerate(plans) if not p]
    if empty:
        raise DataError(f"{len(empty)} empty plans (first at position {empty[0]}): an empty plan "
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

    rows = [(i, r, oracle_plan(world.facts[int(i)], d))
            for i, r, d in zip(world.warm["item_id"], world.warm["reason"], world.warm["drivers"])]
    rows = [x for x in rows if x[2] != [POPULARITY]][:n]
    prompts = [realiser_prompt(p, world.facts[int(i)]) for i, _, p in rows]
    ex = [encode_plan_example(tok, pr, r) for pr, (_, r, _) in zip(prompts, rows)]
    ids, labels, att = collate(ex, tok.pad_token_id)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        loss = float(model(input_ids=ids, attention_mask=att, labels=labels).loss)
    said, _ = realise(tok, model, prompts, progress=False)
    model.train(was_training)
    exact = [says_plan(s, p, world.facts[int(i)], world.lex) for s, (i, _, p) in zip(said, rows)]
    return {"n": len(rows), "loss": round(loss, 5), "plan_exact": round(sum(exact) / len(rows), 5)}


