"""Exercises of chapter 05 (reason generation), each checked against an independent reference:
sacrebleu-style counts, the course's own re-run of the template at another setting (a "vary and
explain" exercise), hand-built label rows, transformers' own top-p warper, and a hand-written
table of claims and verdicts."""
from __future__ import annotations

import torch

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Quiz
from helpers.course.exercises.vary import Vary
from helpers.reasons import explainers, world
from helpers.reasons.claims import Claim, score_reasons

_NB = "05_reason_generation.ipynb"


def _check_mask_labels(fn) -> str:
    cases = [([5, 6, 7], [8, 9]), ([1], [2, 3, 4]), ([4, 4, 4, 4], [4])]
    for prompt, target in cases:
        got = fn(prompt, target)
        want = ([*prompt, *target], [-100] * len(prompt) + list(target))
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Incorrect("return a pair (input_ids, labels), two lists of ints.")
        ids, labels = list(got[0]), list(got[1])
        if ids != want[0]:
            raise Incorrect(f"prompt {prompt} + target {target}: input_ids should be {want[0]}, "
                            f"got {ids}. The model reads the prompt *and* the target.")
        if labels != want[1]:
            raise Incorrect(f"prompt {prompt} + target {target}: labels should be {want[1]}, "
                            f"got {labels}. Every prompt position is -100 (ignored by the "
                            "loss); target positions keep their token ids — the model shifts "
                            "them by one itself.")
    return "Only the reason's tokens carry loss."


def _check_top_p(fn) -> str:
    from transformers.generation.logits_process import TopPLogitsWarper

    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(5, 40, generator=gen) * 3
    logits[1, 3] = 30.0                      # one token takes all the mass
    for p in (0.5, 0.9, 0.99):
        want = TopPLogitsWarper(top_p=p, min_tokens_to_keep=1)(None, logits.clone())
        got = fn(logits.clone(), p)
        if not isinstance(got, torch.Tensor) or got.shape != logits.shape:
            raise Incorrect(f"return filtered logits of the input's shape {tuple(logits.shape)}, "
                            f"got {shape_of(got)}.")
        kept_want, kept_got = torch.isfinite(want), torch.isfinite(got)
        if not torch.equal(kept_want, kept_got):
            r = int((kept_want != kept_got).any(1).nonzero()[0])
            raise Incorrect(f"p={p}, row {r}: keep {int(kept_want[r].sum())} tokens, you kept "
                            f"{int(kept_got[r].sum())}. Keep the most likely tokens until their "
                            "probabilities reach p — including the one that crosses p.")
        if not torch.allclose(got[kept_got], logits[kept_got]):
            raise Incorrect("kept logits must be unchanged (set only the others to -inf).")
    return "Same tokens kept as transformers' TopPLogitsWarper."


def _check_clipped_precision(fn) -> str:
    cases = [("the the the the", "the cat is on the mat", 1, (2, 4)),
             ("great comfort and great grip", "great grip and comfort", 1, (4, 5)),
             ("great comfort and great grip", "great grip and comfort", 2, (1, 4)),
             ("a b", "a b", 3, (0, 0))]
    for hyp, ref, n, want in cases:
        got = fn(hyp.split(), ref.split(), n)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Incorrect("return (matched, total): two ints.")
        if tuple(int(x) for x in got) != want:
            raise Incorrect(f"hyp '{hyp}', ref '{ref}', n={n}: expected (matched, total) = "
                            f"{want}, got {fmt(tuple(got))}. Clip each n-gram's count at its count in "
                            "the reference; total is the number of n-grams in the hypothesis.")
    return "Clipped counts, the heart of BLEU."


_FACTS = {"aspects": {"comfort": "high", "grip": "mid"}, "colour": "red", "brand": "Stride"}


def _check_unsupported(fn) -> str:

    cases = [([Claim("aspect", "comfort", "high")], []),
             ([Claim("aspect", "comfort", "low")], ["comfort"]),
             ([Claim("aspect", "grip", "high"), Claim("aspect", "comfort", None)], ["grip"]),
             ([Claim("aspect", "battery life", "high")], ["battery life"]),
             ([Claim("colour", "blue"), Claim("brand", "Stride")], ["blue"]),
             ([Claim("popularity", "popularity")], [])]
    for claims, want in cases:
        got = fn(claims, _FACTS)
        if not isinstance(got, list):
            raise Incorrect(f"return a list of claim names, got {type(got).__name__}.")
        if got != want:
            raise Incorrect(f"claims {[tuple(c) for c in claims]} against facts {_FACTS}: "
                            f"expected {want}, got {fmt(got)}. An aspect must be stated and, if the "
                            "claim rates it, at the stated level; colour/brand must match; "
                            "popularity cannot be checked, so it passes.")
    return "Claims the shop does not state are caught."


q1 = Exercise(name="ch05.q1", title="Write clipped(hyp, ref, n): BLEU's clipped n-gram matches",
              var="clipped", checker=_check_clipped_precision, notebook=_NB,
              hint_text="Count n-grams with `collections.Counter(tuple(t[i:i+n]) for i in ...)`; "
                        "matched = sum over hyp n-grams of min(hyp count, ref count).",
              nudge=("Count every n-gram of the hypothesis and of the reference; an n-gram can "
                     "match at most as many times as the reference contains it."))
def _template_personal_at(profile_top: int) -> float:
    """The template's personal share on every warm test pair, the profile holding the user's
    top ``profile_top`` aspects (what the notebook's exercise 2 cell prints)."""
    w = world.reason_world(profile_top=profile_top)
    said = explainers.TemplateExplainer(w.facts, w.profile).explain(w.warm["user_id"],
                                                                   w.warm["item_id"])
    return score_reasons(said, w.warm, w.lex, w.items_truth, w.facts)["personal"]


q2 = Vary(name="ch05.q2", notebook=_NB, var="vary_profile",
          title="Vary and explain: the template with a one-aspect profile",
          measure=lambda: (_template_personal_at(3), _template_personal_at(1)),
          quantity="the template's personal share on warm pairs",
          expect="down",
          why=Choice(
              "What explains how the template's personal share on warm pairs changed when the "
              "profile kept only the user's top aspect instead of their top three?",
              {"a": "With only the user's top aspect in the profile, every aspect the template "
                    "names is the one they care about most, so more of its reasons name a true "
                    "driver of the purchase.",
               "b": "A one-aspect profile is less accurate, so the aspect the template names is "
                    "wrong more often.",
               "c": "More reasons fall back to \"good value for money\" or \"popular with "
                    "shoppers who like what you like\", and a fallback cannot name a wrong "
                    "aspect: value or popularity fits most purchases, so more of the reasons "
                    "are personal than before.",
               "d": "The template names only those of an item's high-rated aspects that are in "
                    "the profile; with one aspect there, fewer items match, so more reasons fall "
                    "back to popularity or value, which name a true driver less often."},
              "d",
              {"a": "It names the user's top aspect only when the item is stated high on it; "
                    "for most items it is not, and the reason falls back to value or "
                    "popularity. The personal share the cell printed fell, and so did the USR: "
                    "more pairs get the same few fallback sentences.",
               "b": "The aspect it keeps is the user's top one, the likeliest to be right, the "
                    "same first aspect as in the profile of three; what changes is how often an "
                    "item's high aspects meet the profile at all.",
               "c": "More reasons do fall back (the USR the cell printed dropped: the same few "
                    "sentences), but by the chapter's definition \"popular with shoppers like "
                    "you\" is personal only when popularity drove that purchase (about a "
                    "quarter of them, section 1), and \"good value\" only when price did. The "
                    "personal share the cell printed fell.",
               "d": "Right: a narrower profile matches fewer items' stated strengths, and the "
                    "fallback sentences are personal only for the purchases popularity or "
                    "value drove."}),
          hint_text="Set `PROFILE_TOP = 1`, run that cell and the next one, copy the personal "
                    "share it prints into `value`; compare it with the value at 3 (section 5's "
                    "table, template, warm).",
          nudge=("Look at what TemplateExplainer needs before it can name an aspect: the item "
                 "must be stated good at it *and* it must be in the user's profile. What does "
                 "it say when nothing matches, and when is that personal?"))

q3 = Exercise(name="ch05.q3", title="Write mask_labels(prompt_ids, target_ids)",
              var="mask_labels", checker=_check_mask_labels, notebook=_NB,
              hint_text="`input_ids = prompt_ids + target_ids`; `labels = [-100] * len(prompt_ids) "
                        "+ target_ids`.",
              nudge=("The model should learn to write the reason, not to repeat the prompt: feed "
                     "both, but mark every prompt position as 'ignore' in the labels."))
q4 = Exercise(name="ch05.q4", title="Write top_p(logits, p): nucleus filtering",
              var="top_p", checker=_check_top_p, notebook=_NB,
              hint_text="Sort descending, softmax, cumsum; drop a token when the mass *before* it "
                        "(cumsum minus its own probability) is already >= p; scatter the drop "
                        "mask back to the original order; `masked_fill(drop, -inf)`.",
              nudge=("Keep the smallest set of most likely tokens whose probabilities add up to p; "
                     "a token stays if the mass of the tokens ranked above it is still below p. "
                     "Everything else becomes impossible."))
q5 = Exercise(name="ch05.q5", title="Write unsupported(claims, facts): the guard's check",
              var="unsupported", checker=_check_unsupported, notebook=_NB,
              hint_text="For an aspect claim look up `facts['aspects'].get(c.name)`: None is "
                        "unsupported, and so is a level that differs (when the claim has one). "
                        "For colour/brand compare with `facts.get(c.kind)`.",
              nudge=("A claim is supported only when the item's stated facts contain it with the "
                     "same value: an aspect the facts lack, or at another level, is unsupported, "
                     "and so is any colour, pattern or brand the item does not have."))


quiz = Quiz("ch05.quiz", _NB, where=(
    "Q1: section 2; Q2: section 5; Q3: section 10; Q4: section 11; Q5: section 8; Q6: section 12."),
    questions=[
    Choice("A reason says 'great battery life and a bright screen'. How does the chapter check "
           "it?",
           {"a": "By its BLEU score against the reference reason.",
            "b": "As a list of claims (battery life at a high level, screen brightness at a high "
                 "level), each checked against the item: against the hidden truth for "
                 "*truthful*, against what the shop states for *grounded*.",
            "c": "By asking the language model whether it is true."},
           "b",
           {"a": "BLEU measures resemblance to one reference, not truth.",
            "b": "Right: check claims, not strings.",
            "c": "A model grading its own claims is not evidence (chapter 07 measures a judge)."}),
    Choice("A reason scores a high BLEU against the reference. What does that show?",
           {"a": "That it is true.",
            "b": "That it shares many word sequences with one reference sentence; a true reason "
                 "worded differently scores low, a false one worded alike scores high.",
            "c": "That it is personal."},
           "b",
           {"a": "Resemblance is not truth.",
            "b": "Right: say which quality (truthful, grounded, personal, faithful) you report.",
            "c": "BLEU knows nothing of the user."}),
    Choice("What makes the guard closed-world?",
           {"a": "It rejects sentences containing words from a list of known lies.",
            "b": "It passes a sentence only when every word is a stated fact of the item or "
                 "allowed phrasing; anything it cannot verify is rejected.",
            "c": "It only runs on closed (finished) sentences."},
           "b",
           {"a": "That is an open-world blocklist: every new lie gets through.",
            "b": "Right: what it cannot verify, it rejects (and names the word).",
            "c": "The name is about what it accepts, not when it runs."}),
    Choice("How does the chapter defend against prompt injection in reviews?",
           {"a": "By recognising attack phrases in many languages.",
            "b": "By structure and least information: the reason path does not take orders from "
                 "review text, and the guard checks whatever comes out.",
            "c": "By deleting reviews that mention instructions."},
           "b",
           {"a": "Keyword lists lose: a list catches only the phrasings it holds, and the same "
                 "order in another language, in base64 or with look-alike letters passes it.",
            "b": "Right: injection is beaten by structure, not by recognising attacks.",
            "c": "Deleting on keywords is a blocklist again, and loses the same way."}),
    Choice("When fine-tuning the language model on (prompt, reason) pairs, why is the loss masked "
           "on the prompt?",
           {"a": "So the model learns to write the reason given the prompt, not to reproduce the "
                 "prompt's tokens.",
            "b": "To make training faster.",
            "c": "Because the prompt is untrusted."},
           "a",
           {"a": "Right: only the answer's tokens are targets.",
            "b": "The forward pass still reads the whole sequence; the point is what is learned.",
            "c": "The prompt is built by the course from the shop's facts."}),
    Choice("What does the planner decide, and what does the realiser do?",
           {"a": "The planner picks which claims to state for this shopper; the realiser puts "
                 "them into words; the guard checks the words.",
            "b": "The planner writes the sentence; the realiser checks it.",
            "c": "Both generate sentences and the best one wins."},
           "a",
           {"a": "Right: plan, then say it.",
            "b": "Checking is the guard's job; the realiser phrases.",
            "c": "They have different jobs; one decides what, the other how."}),
])

progress = progress_of(__name__)
