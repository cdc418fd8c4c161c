"""Many ways to say one plan: the phrasing bank the realiser learns from.

ShopWorld's reference reasons come from a handful of templates: one sentence for every
popularity purchase, one for every value-for-money purchase. A realiser trained only on them
says the same sentence to hundreds of shoppers (its unique-sentence ratio, USR, on the warm test
pairs beside the references' own: benchmarks/results/05_reason_benchmark_cpu.md). Variety has two
honest sources:

* **the product itself** — its brand and its own noun (*these Stride trail shoes*, *this Kaffa
  espresso machine*), taken from the shop's closed lists (the category's nouns; a brand only
  through :func:`~helpers.reasons.untrusted.safe_name`), never from free text;
* **phrasing** — several sentences per kind of plan, written here with the guard's allowed
  words only, so every one of them passes the closed-world guard when its plan is true (a test
  checks every template against every category). Each kind keeps the references' own wording
  with the product as its subject (*This Kaffa espresso machine is good value for money, which
  matters to you.*), so variety does not cost resemblance to the references (BLEU).

:func:`say` fills one template; :func:`paraphrases` gives several for one plan, seeded. The
realiser's training set pairs each plan with its reference sentence and paraphrases from this
bank; sampling from the trained model then mixes them.
"""
from __future__ import annotations

import random
import re

from helpers.core.checks import DataError, ParameterError
from helpers.data import vocab as V
from helpers.reasons.claims import Claim
from helpers.reasons.untrusted import safe_name

ASPECT = [
    "Its {o} {a} matches what you care about most.",
    "You value {a}, and this one's {a} is {o}.",
    "Because {a} matters to you: it is {o} here.",
    "{A} matters to you, and {this} {has} {o} {a}.",
    "You care about {a}; {this} {deliver} {o} {a}.",
    "{O} {a} is what you look for, and {this} {has} it.",
    "With {o} {a}, {this} {suit} what you value.",
    "{This} {give} you {o} {a}, and {a} is important to you.",
    "{A} is important to you, and {this_b} {has} {o} {a}.",
    "You want {o} {a}, and {this_b} {offer} exactly that.",
    "The {o} {a} of {this_b} matches what you care about most.",
    "You value {a}, and {this_b} {has} {o} {a}.",
    "Because {a} matters to you: {this_b} {has} {o} {a}.",
]
TWO_ASPECTS = [
    "It combines {o} {a} with {o2} {a2}, both important to you.",
    "You care about {a} and {a2}; this delivers {o} {a} and {o2} {a2}.",
    "You value {a} and {a2}, and {this} {offer} {o} {a} with {o2} {a2}.",
    "Both {a} and {a2} matter to you; here you get {o} {a} and {o2} {a2}.",
    "{This_b} {combine} {o} {a} and {o2} {a2}, the two things you value.",
    "{This_b} {combine} {o} {a} with {o2} {a2}, both important to you.",
    "You care about {a} and {a2}; {this_b} {deliver} {o} {a} and {o2} {a2}.",
]
SIMPLE = {
    "price": [
        "It is good value for money, which matters to you.",
        "{This_b} {is} good value for money, which matters to you.",
        "Value matters to you, and {this_b} {is} good value for money.",
        "{This_b} {is} good value for money, the kind of choice you like.",
        "You like good value for money, and {this} {is} just that.",
        "Good value for money matters to you; {this_b} {is} exactly that.",
        "You look for good value for money, and {this_b} {give} you it.",
    ],
    "popularity": [
        "It is popular with shoppers who like what you like.",
        "{This_b} {is} popular with shoppers who like what you like.",
        "{This_b} {is} popular with shoppers similar to you.",
        "Shoppers who like what you like picked {this_b}; {it_is} popular with them.",
        "{This_b} {is} popular with people whose taste is like yours.",
        "Many shoppers with your taste chose {this_b}: {it_is} popular with them.",
        "{This_b} {is} a popular choice with shoppers like you.",
        "People who like the things you like find {this_b} popular.",
    ],
    "colour": [
        "It comes in {colour}, a colour you often choose.",
        "{This_b} {come} in {colour}, a colour you often choose.",
        "{Colour} is a colour you often pick, and {this_b} {come} in {colour}.",
        "You like {colour}, and {this} {come} in it.",
        "{This_b} {come} in {colour}, the colour you keep coming back to.",
    ],
    "pattern": [
        "It has {pattern}, a style you like.",
        "{This_b} {has} {pattern}, a style you like.",
        "{This_b} {has} {pattern}, the kind of style you like.",
        "You like {pattern}, and {this} {has} it.",
        "{Pattern} is a style you often choose, and {this_b} {has} it.",
    ],
    "brand": [
        "It is from {brand}, a brand you keep coming back to.",
        "{This} {is} from {brand}, a brand you keep coming back to.",
        "{This} {is} from {brand}, a brand you often choose.",
        "You keep coming back to {brand}, and {this} {is} from {brand}.",
        "{Brand} is a brand you like, and {this} {is} one of theirs.",
    ],
}
MIRROR = {"aspect": {0: 10, 1: 11, 2: 12}, "two_aspects": {0: 5, 1: 6}, "simple": {0: 1}}
"""For each reference template (ShopWorld's ``REASON_TEMPLATES``, which are the bank's first
templates of each kind), the bank template that says the same words with the product as its
subject: *It is good value for money ...* -> *This Kaffa espresso machine is good value for
money ...*. It keeps most of the reference's word sequences (what BLEU rewards) and differs from
product to product (what USR rewards)."""

_OPINION = {"high": ["excellent", "outstanding", "superb", "fantastic", "great", "very good",
                     "solid", "impressive"],
            "mid": ["decent", "okay", "average", "acceptable"],
            "low": ["mediocre", "disappointing", "weak", "poor"]}
"""The reference opinion words by stated band (ShopWorld's OPINIONS: 4-5 are 'high')."""


def item_noun(facts: dict) -> str:
    """The item's own noun: the longest of its category's nouns that its title contains
    ('Urbana Riri 20 Max down jacket' -> 'down jacket'), else the category's first noun. Always
    one of the shop's closed list, never free text."""
    c = V.CATEGORIES.get(facts.get("category")) if isinstance(facts, dict) else None
    if c is None:
        raise DataError(f"facts must be an item_facts() entry with a ShopWorld category, got "
                        f"{facts!r}")
    title = str(facts.get("title") or "").lower()
    found = [n for n in c["nouns"] if re.search(rf"\b{re.escape(n.lower())}\b", title)]
    return max(found, key=len) if found else c["nouns"][0]


def _plural(noun: str) -> bool:
    return noun.endswith(("phones", "shoes", "runners", "flats", "earbuds"))


def product_words(facts: dict) -> dict[str, str]:
    """The slots a template may use for one item: {this} 'these trail shoes' / 'this backpack',
    {this_b} with the brand ('this Kaffa espresso machine'; without it when the brand is not a
    safe name), {is}/{has}/{it_is} and the verb forms agreeing with the noun."""
    noun = item_noun(facts)
    brand = safe_name(facts.get("brand") or "")
    many = _plural(noun)
    det = "these" if many else "this"
    verb = (lambda w: w) if many else (lambda w: w + ("es" if w.endswith("s") else "s"))
    out = {"this": f"{det} {noun}", "this_b": f"{det} {brand} {noun}" if brand else f"{det} {noun}",
           "is": "are" if many else "is", "has": "have" if many else "has",
           "it_is": "they are" if many else "it is"}
    for w in ("deliver", "suit", "give", "offer", "combine", "come"):
        out[w] = verb(w)
    return out


def _fill(template: str, slots: dict) -> str:
    keys = dict(slots)
    keys.update({k[0].upper() + k[1:]: (v[0].upper() + v[1:] if v else v)
                 for k, v in slots.items()})
    s = template.format(**keys)
    return s[0].upper() + s[1:]


def say(plan: list[Claim], facts: dict, pick: int = 0, opinion_pick: int = 0) -> str:
    """The plan in words with template number ``pick`` (modulo the number of templates of the
    plan's kind) and opinion word number ``opinion_pick`` of each aspect's stated band.
    A plan of two aspects uses both; any other plan is said by its first claim."""
    if not isinstance(plan, (list, tuple)) or not plan or not all(isinstance(c, Claim)
                                                                   for c in plan):
        raise DataError(f"a plan must be a non-empty list of Claim, got {plan!r}")
    slots = product_words(facts)
    c = plan[0]
    if c.kind == "aspect" and c.name != "price":
        w = _OPINION.get(c.level or "high", _OPINION["high"])
        slots.update(a=c.name, o=w[opinion_pick % len(w)])
        if len(plan) > 1 and plan[1].kind == "aspect" and plan[1].name != "price":
            w2 = _OPINION.get(plan[1].level or "high", _OPINION["high"])
            slots.update(a2=plan[1].name, o2=w2[(opinion_pick + 1) % len(w2)])
            return _fill(TWO_ASPECTS[pick % len(TWO_ASPECTS)], slots)
        return _fill(ASPECT[pick % len(ASPECT)], slots)
    kind = "price" if c.kind == "aspect" else c.kind
    if kind not in SIMPLE:
        raise DataError(f"unknown claim kind {c.kind!r} in the plan")
    if kind == "brand":
        name = safe_name(c.name)
        if not name:
            kind = "popularity"
        slots["brand"] = name
    slots["colour"] = c.name if kind == "colour" else ""
    slots["pattern"] = V.PATTERN_PHRASES.get(c.name, "") if kind == "pattern" else ""
    return _fill(SIMPLE[kind][pick % len(SIMPLE[kind])], slots)


def n_templates(plan: list[Claim]) -> int:
    """How many templates the bank has for this kind of plan."""
    c, kind = plan[0], kind_of(plan)
    if kind != "simple":
        return len(TWO_ASPECTS if kind == "two_aspects" else ASPECT)
    return len(SIMPLE["price" if c.kind == "aspect" else c.kind])


def kind_of(plan: list[Claim]) -> str:
    """'two_aspects', 'aspect' or 'simple' (price, popularity, colour, pattern, brand): which
    templates say this plan, and the key of :data:`MIRROR`."""
    c = plan[0]
    if c.kind == "aspect" and c.name != "price":
        two = len(plan) > 1 and plan[1].kind == "aspect" and plan[1].name != "price"
        return "two_aspects" if two else "aspect"
    return "simple"


def reference_pick(plan: list[Claim], facts: dict, reason: str) -> tuple[int, int] | None:
    """``(template, opinion_pick)`` with which :func:`say` gives exactly ``reason`` for this
    plan and item, searched among the reference templates; ``None`` when no bank sentence is
    the reference word for word (7 % of training reasons: two aspects whose opinion words the
    bank pairs differently)."""
    for t in MIRROR[kind_of(plan)]:
        for k in range(8):
            if say(plan, facts, t, k) == reason:
                return t, k
    return None


def mirror(plan: list[Claim], facts: dict, reason: str) -> str | None:
    """The reference ``reason`` said again with the product as its subject (:data:`MIRROR`),
    same opinion words; ``None`` when :func:`reference_pick` finds no template for it."""
    found = reference_pick(plan, facts, reason)
    if found is None:
        return None
    t, k = found
    return say(plan, facts, MIRROR[kind_of(plan)][t], k)


def paraphrases(plan: list[Claim], facts: dict, n: int, seed: int = 0) -> list[str]:
    """``n`` different sentences for one plan (fewer if the bank has fewer), chosen at random
    with ``seed``: distinct templates first, each with a random opinion word."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"n must be a positive integer, got {n!r}")
    rng = random.Random(seed)
    picks = list(range(n_templates(plan)))
    rng.shuffle(picks)
    out = []
    for p in picks:
        s = say(plan, facts, p, rng.randrange(8))
        if s not in out:
            out.append(s)
        if len(out) == n:
            break
    return out


__all__ = ["ASPECT", "TWO_ASPECTS", "SIMPLE", "MIRROR", "item_noun", "product_words", "say",
           "n_templates", "kind_of", "reference_pick", "mirror", "paraphrases"]
