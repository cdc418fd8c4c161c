"""The closed word set of a guarded reason, in one place: the guard accepts no other word, and
decoding may write no other token.

* :data:`ALLOWED` — words that carry no claim about the item ("it", "you", "matters", ...), and
  :data:`END_ONLY` — words allowed only at the end of a sentence ("what you care about *most*",
  never "the most durable");
* :func:`plan_words` — what a sentence for one plan and one product may contain: the allowed
  phrasing, 'popular', the plan's aspects with the opinion words of their bands, its colour,
  pattern, value phrase and brand, the product's own category nouns and safe brand;
* :func:`closed_words` — the union over every plan and product the shop can state: what any
  guarded reason may contain;
* :func:`token_ids` — the tokens that spell a set of words (as written and capitalised, with and
  without a leading space, plus punctuation and end-of-sequence), from which
  :func:`allowed_tokens` (a mask for one plan) and :func:`closed_vocabulary` (the ids for every
  plan) are built.

    words = plan_words([Claim("aspect", "comfort", "high")], "running_shoes", lex)
    "superb" in words and "comfort" in words and "waterproof" not in words      # True
"""
from __future__ import annotations

import re

import torch

from helpers.data import vocab as V
from helpers.reasons.claims import PATTERN_WORDS, PRICE_PHRASES, Claim
from helpers.reasons.untrusted import safe_name

__all__ = ["ALLOWED", "END_ONLY", "NEGATIONS_AND_HEDGES", "category_nouns", "category_words",
           "plan_words", "closed_words", "token_ids", "allowed_tokens", "closed_vocabulary"]

ALLOWED = frozenset("""
a about also an and any are as at back be because been best both brand but by care cares category
chose choice choose chosen colour color combine combines come comes coming deliver delivers does each
enjoy especially exactly favourite favorite find finish for from get gets give gives good has have
here if important in is it it's its just keep kind know like liked likes look looking looks love
made many match matches matter matters most much of offer offers often one one's or other pattern
pick picked people prefer print
product recommended rated really reason right say see shoppers shopper similar so style suit
suits taste that the their theirs them these they thing things this those to too truly two usual value
valued values very want wants well what which who whose why with you you'd you'll you're your yours
""".split()) - {"but", "if", "any", "best", "most", "much", "made", "rated", "say", "why",
                "know", "reason", "too", "or", "does", "good", "by"}
"""Words that carry no claim about the item. Deliberately closed: 'but', 'if', 'made', 'by',
'best', 'rated' are out ('made of gold', 'by Apple', 'best-selling', 'top-rated')."""

NEGATIONS_AND_HEDGES = frozenset("""
not no never nor neither none nothing without lacks lack lacking isn't aren't doesn't don't won't
can't cannot hardly barely could might may maybe perhaps somewhat fairly quite rather slightly
almost nearly although though however except unless but if than better worse
""".split())
"""Words that turn a claim into something the guard cannot verify ('not great', 'could be
better'): named in the rejection."""

END_ONLY = frozenset({"most"})
"""Allowed only as a sentence's last word: "what you care about most", never "the most durable"
(the guard checks the position; decoding must be able to write the word)."""


def category_nouns(category: str) -> set[str]:
    """The words of one category's nouns as the shop writes them ('LED', 'pour-over'); empty
    for an unknown category."""
    c = V.CATEGORIES.get(category)
    return {w for n in c["nouns"] for w in re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)*", n)} if c else set()


def category_words(category: str) -> set[str]:
    """The words of one category's nouns, lower-cased ('running shoes', 'trail shoes' ->
    running, shoes, trail, ...; 'pour-over' and its parts) plus its name."""
    if category not in V.CATEGORIES:
        return set()
    words = {w.lower() for w in category_nouns(category)}
    words |= {w for x in list(words) for w in x.split("-")}
    return words | set(category.split("_"))


def plan_words(plan: list[Claim], category: str | None, lex, *, brand: str | None = None,
               phrasing=None) -> set[str]:
    """The words a sentence for ``plan`` about a product of ``category`` may contain: the
    allowed ``phrasing`` (default :data:`ALLOWED`), :data:`END_ONLY`, 'popular', the category's
    words and nouns, the product's ``brand`` when it is a safe name, and per planned claim its
    aspect with the opinion words of its band (and the value phrases for price), its pattern's
    words, its colour or brand."""
    words = set(phrasing if phrasing is not None else ALLOWED) | {"popular"} | set(END_ONLY)
    if isinstance(category, str):
        words |= category_words(category) | category_nouns(category)
    if safe_name(brand or ""):
        words |= set(brand.split())
    for c in plan:
        if c.kind == "aspect":
            words |= set(c.name.split())
            if c.name == "price":
                words |= {w for p in PRICE_PHRASES for w in p.split()}
            if c.level:
                words |= {x for w, b in lex.opinion_band.items() if b == c.level for x in w.split()}
        elif c.kind == "pattern":
            words |= {w for p in PATTERN_WORDS.get(c.name, []) for w in p.split()}
            words |= set(V.PATTERN_PHRASES.get(c.name, "").split())
        elif c.kind in ("colour", "brand"):
            words.add(c.name)
    return words


def closed_words(lex) -> set[str]:
    """Every word a guarded reason may contain, for any plan and product: :func:`plan_words`
    over every aspect at every band, colour, pattern and safe brand, and every category."""
    words = set(ALLOWED) | {"popular"} | set(END_ONLY) | set(lex.colours)
    words |= {w for a in lex.aspects for w in a.split()}
    words |= {w for o in lex.opinion_band for w in o.split()}
    words |= {w for ps in PATTERN_WORDS.values() for p in ps for w in p.split()}
    words |= {w for p in V.PATTERN_PHRASES.values() for w in p.split()}
    words |= {w for p in PRICE_PHRASES for w in p.split()}
    words |= {b for b in lex.brands if safe_name(b)}
    for c in V.CATEGORIES:
        words |= category_words(c) | category_nouns(c)
    return words


def token_ids(tok, words) -> set[int]:
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


def allowed_tokens(tok, plan: list[Claim], category: str | None, lex, phrasing=None,
                   brand: str | None = None) -> torch.Tensor:
    """A boolean mask over ``tok``'s vocabulary: the tokens of :func:`plan_words`. Pieces of
    allowed words can still form a word that is not allowed; the guard catches those."""
    mask = torch.zeros(len(tok), dtype=torch.bool)
    mask[sorted(token_ids(tok, plan_words(plan, category, lex, brand=brand,
                                          phrasing=phrasing)))] = True
    return mask


def closed_vocabulary(tok, lex) -> torch.Tensor:
    """The token ids of :func:`closed_words`, sorted (a small share of the tokenizer's
    vocabulary: chapter 05 prints how many)."""
    return torch.tensor(sorted(token_ids(tok, closed_words(lex))), dtype=torch.long)
