"""One closed word set: what the guard accepts, a plan's decoding mask and the closed vocabulary
come from helpers.reasons.vocabulary and agree — a sentence the guard passes is one decoding
could have written."""
from __future__ import annotations

import re

import pytest

from helpers.reasons import phrasing, planner as P, vocabulary as VOC, world as W
from helpers.reasons.claims import Claim
from helpers.reasons.guard import ClosedWorldGuard

_WORDS = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


def words_outside(sentence: str, words: set[str]) -> set[str]:
    """The words of ``sentence`` that ``words`` does not hold, as written or lower-cased (a
    hyphenated word passes when each part does: 'pour-over')."""
    lower = {w.lower() for w in words}
    return {w for w in _WORDS.findall(sentence)
            if w not in words and w.lower() not in lower
            and not all(part in lower for part in w.lower().split("-"))}


@pytest.fixture(scope="module")
def world():
    return W.reason_world()


@pytest.fixture(scope="module")
def guarded(world):
    """(sentence, plan, facts) for every phrasing-bank sentence the guard passes, over the
    single-claim and two-claim plans of 120 items."""
    guard = ClosedWorldGuard(world.facts, world.lex)
    out = []
    for item in sorted(world.facts)[:120]:
        facts = world.facts[item]
        cands = P.candidates(facts)
        plans = [[c] for c in cands] + [cands[:2]] if len(cands) > 1 else [[c] for c in cands]
        for plan in plans:
            for s in phrasing.paraphrases(plan, facts, 4, seed=item):
                if guard.passes(s, 0, item):
                    out.append((s, plan, facts))
    assert len(out) > 300, "too few guarded sentences to test the agreement on"
    return out


def test_every_plan_word_is_in_the_closed_word_set(world):
    closed = VOC.closed_words(world.lex)
    for item in sorted(world.facts)[:300]:
        facts = world.facts[item]
        for c in P.candidates(facts):
            extra = VOC.plan_words([c], facts["category"], world.lex, brand=facts.get("brand"))
            assert extra <= closed, (item, c, sorted(extra - closed)[:5])


def test_what_the_guard_passes_a_plans_mask_and_the_closed_vocabulary_allow(world, guarded):
    closed = VOC.closed_words(world.lex)
    for sentence, plan, facts in guarded:
        own = VOC.plan_words(plan, facts["category"], world.lex, brand=facts.get("brand"))
        assert not words_outside(sentence, own), (sentence, plan)
        assert not words_outside(sentence, closed), sentence


def test_a_word_set_that_lost_a_word_fails_the_agreement(world, guarded):
    """The check above can fail: take one word the guarded sentences use out of the set."""
    closed = VOC.closed_words(world.lex)
    used = {w.lower() for s, _, _ in guarded for w in _WORDS.findall(s)}
    for missing in ("most", "superb", "popular"):
        assert missing in used
        broken = closed - {missing}
        assert any(words_outside(s, broken) for s, _, _ in guarded), missing


def test_end_only_words_are_allowed_to_decoding_and_only_last_to_the_guard(world):
    assert VOC.END_ONLY <= VOC.closed_words(world.lex)
    item = next(i for i, f in world.facts.items()
                if any(c.kind == "aspect" for c in P.candidates(f)))
    facts = world.facts[item]
    aspect = next(c for c in P.candidates(facts) if c.kind == "aspect")
    assert VOC.END_ONLY <= VOC.plan_words([aspect], facts["category"], world.lex)
    guard = ClosedWorldGuard(world.facts, world.lex)
    word = next(w for w, b in world.lex.opinion_band.items() if b == "high")
    last = f"Its {word} {aspect.name} is what you care about most."
    inside = f"Its {aspect.name} is the most {word}."
    assert guard.passes(last, 0, item), guard.problems(last, 0, item)
    assert any("most" in p for p in guard.problems(inside, 0, item))


def test_plan_words_hold_the_plans_own_claims_and_not_another_items(world):
    lex = world.lex
    words = VOC.plan_words([Claim("aspect", "comfort", "high")], "running_shoes", lex)
    band = lambda level: {x for w, b in lex.opinion_band.items() if b == level for x in w.split()}
    assert "comfort" in words and band("high") <= words
    assert not (band("low") - band("high") - VOC.ALLOWED) & words
    assert "waterproof" not in words and "gold" not in words
