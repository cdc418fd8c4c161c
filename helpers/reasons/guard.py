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
adversarial set (:mod:`helpers.reasons.redteam`).
"""
from __future__ import annotations

import re
from typing import Callable

from helpers.core.checks import DataError
from helpers.reasons.claims import FALLBACK_PREFIX, Lexicon, is_stated, parse, stated_problem
from helpers.reasons.explainers import TemplateExplainer, require_id
from helpers.reasons.planner import driver_of
from helpers.reasons.untrusted import fold
from helpers.reasons.vocabulary import ALLOWED, END_ONLY, NEGATIONS_AND_HEDGES, category_words

_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*|\d+|\S")
_PUNCT = frozenset(".,;:!—-'")


def unsupported(claims, facts: dict) -> list[str]:
    """The *open-world* check (chapter 05's exercise 5): the names of the parsed claims that
    ``facts`` does not support — an aspect not stated or at another band, another colour,
    pattern or brand. Whatever it cannot parse, it lets through; kept to show why the guard
    must be closed-world."""
    return [c.name for c in claims if not is_stated(c, facts)]


class ClosedWorldGuard:
    """Passes a reason only if every word is a stated fact of the item or allowed phrasing.

    ``facts``: :func:`~helpers.reasons.claims.item_facts`; ``lex``: the claim lexicon;
    ``personal``: optional ``f(user, item) -> set of driver names`` ('comfort', 'colour',
    'price', 'popularity', ...): the reason must name one of them; ``fallback``: the explainer
    whose marked reason :meth:`choose` returns when no candidate passes.
    """

    def __init__(self, facts: dict[int, dict], lex: Lexicon, *,
                 personal: Callable[[int, int], set[str]] | None = None,
                 fallback: TemplateExplainer | None = None, allowed=ALLOWED):
        if not isinstance(facts, dict) or not facts:
            raise DataError("facts must be a non-empty item_facts() dict")
        if not isinstance(lex, Lexicon):
            raise TypeError(f"lex must be a Lexicon (claims.lexicon(catalogue)), got "
                            f"{type(lex).__name__}")
        self.facts, self.lex, self.personal, self.fallback = facts, lex, personal, fallback
        self.allowed = frozenset(allowed)

    def problems(self, reason: str, user: int, item: int) -> list[str]:
        """Everything wrong with ``reason`` for this pair ([] = it passes)."""

        if not isinstance(reason, str):
            raise TypeError(f"a reason must be a string, got {type(reason).__name__}")
        f = self.facts.get(require_id(item, "item"))
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
            if w in END_ONLY and (k + 1 == len(words) or words[k + 1].group(0) in _PUNCT):
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
            wanted = self.personal(require_id(user, "user"), require_id(item, "item"))
            if not {driver_of(c) for c in p.claims} & set(wanted):
                out.append(f"names none of {sorted(wanted)}, what this shopper is thought to "
                           "care about")
        return out

    def passes(self, reason: str, user: int, item: int) -> bool:
        """Whether :meth:`problems` finds nothing wrong with ``reason`` for this pair."""
        return not self.problems(reason, user, item)

    def choose(self, candidates: list[str], user: int, item: int) -> tuple[str, bool]:
        """The first candidate that passes, else the fallback's marked reason:
        ``(reason, used_fallback)``."""
        for c in candidates:
            if isinstance(c, str) and c and self.passes(c, user, item):
                return c, False
        if self.fallback is None:
            raise DataError("no candidate passes and the guard has no fallback explainer")
        return self.fallback.fallback_for(user, item), True


__all__ = ["ClosedWorldGuard", "unsupported"]
