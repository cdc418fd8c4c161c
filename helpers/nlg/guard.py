"""The guard: check a reason before it reaches the shopper — closed-world.

An *open-world* check looks for claims it knows and passes everything else: "waterproof" on a
lamp, "made of gold", "40-hour battery", "by Apple" or "not great" sail through because no rule
mentions them. The guard here is **closed-world**: it passes a sentence only when it can account
for every word of it. Each word must be

* part of a **fact** of this item that the shop states — an aspect at its stated band (with an
  opinion word of that band: *superb* comfort only if comfort is stated 'high'), the stated
  colour or pattern, the brand, value for money where the price says so, the item's own
  category nouns ("running shoes") — or *popular*, which the recommender knows; or
* **allowed phrasing**: the closed list :data:`ALLOWED` of words that carry no claim about the
  item ("it", "you", "matters", "choose", ...).

Anything else is a rejection, with the word named: unknown attributes, numbers, other brands,
other categories, negations and hedges ("not", "could be"), superlatives about sales or awards,
characters outside plain ASCII after folding look-alikes. Opinion words must qualify a stated
aspect. With ``personal``, the reason must also name one of the drivers the plan chose (or the
user's inferred interests), so a true but irrelevant sentence is rejected too.

The cost of closing the world is that a true sentence in words the list does not know is
rejected — and falls back to the template, marked. The chapter measures both error rates on an
adversarial set (:mod:`helpers.nlg.redteam`).
"""
from __future__ import annotations

import re
from typing import Callable

from .. import shopworld_vocab as V
from .claims import FALLBACK_PREFIX, Lexicon, _stated, parse, stated_problem
from .explainers import TemplateExplainer, _one_id
from .untrusted import fold

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

_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*|\d+|\S")
_PUNCT = frozenset(".,;:!—-'")


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


def unsupported(claims, facts: dict) -> list[str]:
    """The *open-world* check (chapter 05's exercise 4): the names of the parsed claims that
    ``facts`` does not support — an aspect not stated or at another band, another colour,
    pattern or brand. Whatever it cannot parse, it lets through; kept to show why the guard
    must be closed-world."""
    return [c.name for c in claims if not _stated(c, facts)]


class ClosedWorldGuard:
    """Passes a reason only if every word is a stated fact of the item or allowed phrasing.

    ``facts``: :func:`~helpers.nlg.claims.item_facts`; ``lex``: the claim lexicon;
    ``personal``: optional ``f(user, item) -> set of driver names`` ('comfort', 'colour',
    'price', 'popularity', ...): the reason must name one of them; ``fallback``: the explainer
    whose marked reason :meth:`choose` returns when no candidate passes.
    """

    def __init__(self, facts: dict[int, dict], lex: Lexicon, *,
                 personal: Callable[[int, int], set[str]] | None = None,
                 fallback: TemplateExplainer | None = None, allowed=ALLOWED):
        if not isinstance(facts, dict) or not facts:
            raise ValueError("facts must be a non-empty item_facts() dict")
        if not isinstance(lex, Lexicon):
            raise TypeError(f"lex must be a Lexicon (nlg.lexicon(catalogue)), got "
                            f"{type(lex).__name__}")
        self.facts, self.lex, self.personal, self.fallback = facts, lex, personal, fallback
        self.allowed = frozenset(allowed)

    def problems(self, reason: str, user: int, item: int) -> list[str]:
        """Everything wrong with ``reason`` for this pair ([] = it passes)."""
        from .planner import driver_of

        if not isinstance(reason, str):
            raise TypeError(f"a reason must be a string, got {type(reason).__name__}")
        f = self.facts.get(_one_id(item, "item"))
        if f is None:
            return [f"unknown item {item}: nothing is stated about it"]
        text = reason.removeprefix(FALLBACK_PREFIX)
        if not text.strip():
            return ["the reason is empty"]
        folded = fold(text)
        out = []
        if folded != text and re.sub(r"\s+", " ", folded) != re.sub(r"\s+", " ", text):
            out.append("look-alike or invisible characters (folded before checking)")
        odd = sorted({ch for ch in folded if ord(ch) > 127 and ch not in "’—"})
        if odd:
            out.append(f"characters outside plain English text: {''.join(odd[:5])!r}")
        p = parse(folded, self.lex)
        covered = [False] * len(p.text)
        for s, e in p.spans:
            covered[s:e] = [True] * (e - s)
        own = category_words(f.get("category", ""))
        unknown, hedges = [], []
        words = list(_WORD.finditer(p.text))
        for k, m in enumerate(words):
            w = m.group(0)
            if all(covered[m.start():m.end()]):
                continue
            if w == "most" and (k + 1 == len(words) or words[k + 1].group(0) in _PUNCT):
                continue          # "what you care about most"; never "the most durable"
            if w in NEGATIONS_AND_HEDGES:
                hedges.append(w)
            elif w.isdigit():
                unknown.append(w)
            elif w in _PUNCT or w in self.allowed or w in own:
                continue
            else:
                unknown.append(w)
        if hedges:
            out.append(f"negation or hedge {sorted(set(hedges))}: cannot be checked against the "
                       "facts")
        if unknown:
            out.append(f"not a stated fact of this item nor allowed phrasing: "
                       f"{sorted(set(unknown))[:6]}")
        for w in p.loose_opinions:
            out.append(f"opinion '{w}' qualifies no stated aspect")
        out += [x for x in (stated_problem(c, f) for c in p.claims) if x]
        if not p.claims:
            out.append("claims nothing that can be checked")
        if self.personal is not None and not out:
            wanted = self.personal(_one_id(user, "user"), _one_id(item, "item"))
            if not {driver_of(c) for c in p.claims} & set(wanted):
                out.append(f"names none of {sorted(wanted)}, what this shopper is thought to "
                           "care about")
        return out

    def passes(self, reason: str, user: int, item: int) -> bool:
        return not self.problems(reason, user, item)

    def choose(self, candidates: list[str], user: int, item: int) -> tuple[str, bool]:
        """The first candidate that passes, else the fallback's marked reason:
        ``(reason, used_fallback)``."""
        for c in candidates:
            if isinstance(c, str) and c and self.passes(c, user, item):
                return c, False
        if self.fallback is None:
            raise ValueError("no candidate passes and the guard has no fallback explainer")
        return self.fallback.fallback_for(user, item), True


__all__ = ["ALLOWED", "NEGATIONS_AND_HEDGES", "ClosedWorldGuard", "category_nouns", "category_words",
           "unsupported"]
