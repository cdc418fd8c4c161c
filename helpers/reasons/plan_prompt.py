"""The realiser's prompt: a content plan and the product it is about, and nothing else, e.g. ::

    comfort high; fit high | Stride trail shoes

with the sentence on the next line. That is the *least information* defence against prompt
injection: text written by strangers cannot steer a model that never reads it. The only free text
that can reach the prompt is a brand name, and it enters only through
:func:`~helpers.reasons.untrusted.safe_name`.

    prompt = realiser_prompt([Claim("aspect", "comfort", "high")], facts[item])
"""
from __future__ import annotations

from helpers.core.checks import DataError
from helpers.data import vocab as V
from helpers.reasons.claims import Claim, extract_claims
from helpers.reasons.phrasing import item_noun
from helpers.reasons.untrusted import safe_name

__all__ = ["plan_text", "realiser_prompt", "says_plan", "plan_from_reason", "encode_plan_example"]


def plan_text(plan: list[Claim]) -> str:
    """``[Claim('aspect', 'comfort', 'high'), Claim('colour', 'red')]`` -> ``'comfort high;
    colour red'``. Brands pass through :func:`safe_name`; an unsafe one is dropped."""
    if not isinstance(plan, (list, tuple)) or not all(isinstance(c, Claim) for c in plan):
        raise DataError(f"a plan must be a list of Claim, got {plan!r}")
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
            raise DataError(f"unknown claim kind {c.kind!r} in the plan")
    return "; ".join(parts)


def realiser_prompt(plan: list[Claim], item) -> str:
    """The realiser's whole prompt: the plan, then the product it is about.

    ``item``: the item's :func:`~helpers.reasons.claims.item_facts` entry — the product is named by
    its safe brand and its own noun from the category's closed list
    (:func:`~helpers.reasons.phrasing.item_noun`), e.g. ``'comfort high | Stride trail shoes\\n'``
    (the sentence follows the newline); or a ShopWorld category key ('running_shoes'), which
    names the category only.
    Nothing else of the item's text reaches the prompt: a brand that is not a safe name and a
    category that is not ShopWorld's are left out."""

    text = plan_text(plan)
    if not text:
        raise DataError("the plan is empty: nothing to say (use the template instead)")
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

    said = set(extract_claims(sentence, lex)) - {Claim("brand", facts.get("brand") or "")}
    return said == set(plan) - {Claim("brand", facts.get("brand") or "")} and bool(said or plan)


def plan_from_reason(reason: str, lex) -> list[Claim]:
    """The plan a reference reason realises (its claims, in order): the training input."""

    return extract_claims(reason, lex)


def encode_plan_example(tok, prompt: str, target: str, max_length: int = 96) -> dict:
    """Token ids of prompt + ' ' + target + end-of-sequence, labels -100 on the prompt."""
    if not isinstance(target, str) or not target.strip():
        raise DataError("the target reason is empty")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    t_ids = tok(" " + target.strip(), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    if len(p_ids) + len(t_ids) > max_length:
        raise DataError(f"prompt ({len(p_ids)} tokens) + target ({len(t_ids)}) exceed "
                        f"max_length={max_length}")
    return {"input_ids": p_ids + t_ids, "labels": [-100] * len(p_ids) + t_ids}
