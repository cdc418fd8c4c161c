"""Exercises of chapter 05 (reason generation, three lessons: 05a templates and retrieval, 05b
language models, 05c guard and plan), each checked against an independent reference:
sacrebleu-style counts, hand-built label rows, transformers' own top-p warper, a hand-written
table of claims and verdicts, and, for the three "vary and explain" exercises (one per lesson),
the course's own re-run at both settings: the template with a one-aspect profile, the first
reply token's probability at another temperature, the planner with a more reluctant second
aspect. Each lesson has its own questionnaire (``quiz_a``, ``quiz_b``, ``quiz_c``)."""
from __future__ import annotations

import copy

import torch

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Quiz
from helpers.course.exercises.vary import Vary
from helpers.models import pretrained
from helpers.reasons import explainers, lm, planner, world
from helpers.reasons.claims import Claim, score_reasons

_NB_A = "05a_templates_and_retrieval.ipynb"
_NB_B = "05b_language_models.ipynb"
_NB_C = "05c_guard_and_plan.ipynb"


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
              var="clipped", checker=_check_clipped_precision, notebook=_NB_A,
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


q2 = Vary(name="ch05.q2", notebook=_NB_A, var="vary_profile",
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
               "c": "More reasons do fall back (the cell's table counts them, and the USR it "
                    "printed dropped: the same few sentences), but by the chapter's definition \"popular with shoppers like "
                    "you\" is personal only when popularity drove that purchase (about a "
                    "quarter of them, section 1), and \"good value\" only when price did. The "
                    "personal share the cell printed fell.",
               "d": "Right: a narrower profile matches fewer items' stated strengths (the cell's "
                    "table: fewer aspect reasons, more fallbacks), and the fallback sentences "
                    "are personal only for the purchases popularity or value drove — far less "
                    "often than an aspect reason, as its personal column shows."}),
          hint_text="Set `PROFILE_TOP = 1`, run that cell and the next one, copy the personal "
                    "share it prints into `value`; compare it with the value at 3 (section 5's "
                    "table, template, warm).",
          nudge=("Look at what TemplateExplainer needs before it can name an aspect: the item "
                 "must be stated good at it *and* it must be in the user's profile. What does "
                 "it say when nothing matches, and when is that personal?"))

q3 = Exercise(name="ch05.q3", title="Write mask_labels(prompt_ids, target_ids)",
              var="mask_labels", checker=_check_mask_labels, notebook=_NB_B,
              hint_text="`input_ids = prompt_ids + target_ids`; `labels = [-100] * len(prompt_ids) "
                        "+ target_ids`.",
              nudge=("The model should learn to write the reason, not to repeat the prompt: feed "
                     "both, but mark every prompt position as 'ignore' in the labels."))
q4 = Exercise(name="ch05.q4", title="Write top_p(logits, p): nucleus filtering",
              var="top_p", checker=_check_top_p, notebook=_NB_B,
              hint_text="Sort descending, softmax, cumsum; drop a token when the mass *before* it "
                        "(cumsum minus its own probability) is already >= p; scatter the drop "
                        "mask back to the original order; `masked_fill(drop, -inf)`.",
              nudge=("Keep the smallest set of most likely tokens whose probabilities add up to p; "
                     "a token stays if the mass of the tokens ranked above it is still below p. "
                     "Everything else becomes impossible."))
q5 = Exercise(name="ch05.q5", title="Write unsupported(claims, facts): the guard's check",
              var="unsupported", checker=_check_unsupported, notebook=_NB_C,
              hint_text="For an aspect claim look up `facts['aspects'].get(c.name)`: None is "
                        "unsupported, and so is a level that differs (when the claim has one). "
                        "For colour/brand compare with `facts.get(c.kind)`.",
              nudge=("A claim is supported only when the item's stated facts contain it with the "
                     "same value: an aspect the facts lack, or at another level, is unsupported, "
                     "and so is any colour, pattern or brand the item does not have."))


def _top_token_probabilities(temperatures: tuple[float, ...]) -> tuple[float, ...]:
    """The mean probability of the most likely first reply token over the prompts of 05b's four
    first warm pairs, the logits divided by each temperature (what 05b's exercise 3 prints)."""
    w = world.reason_world()
    tok, model = pretrained.language_model(device="cpu")
    profile_map = explainers.profile_map(w.profile)
    firsts = []
    for u, i in zip(w.warm["user_id"][:4], w.warm["item_id"][:4]):
        own = w.train_reviews.loc[w.train_reviews["item_id"] == i, "sentence"].head(1).tolist()
        prompt = lm.build_prompt(profile_map.get(int(u), []), w.facts[int(i)], own)
        ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        with torch.inference_mode():
            firsts.append(model(**ids).logits[0, -1])
    first = torch.stack(firsts)
    return tuple(float((first / t).softmax(-1).max(-1).values.mean()) for t in temperatures)


q6 = Vary(name="ch05.q6", notebook=_NB_B, var="vary_temperature",
          title="Vary and explain: the first reply token's probability at temperature 1.3",
          measure=lambda: _top_token_probabilities((0.7, 1.3)),
          quantity="the mean probability of the most likely first reply token",
          expect="down",
          why=Choice(
              "What explains how the most likely first token's probability changed when the "
              "logits were divided by 1.3 instead of 0.7?",
              {"a": "Dividing the logits by a larger temperature widens the gaps between them, so "
                    "the most likely token takes more of the probability mass.",
               "b": "The temperature is applied after top-p has removed the unlikely tokens, so "
                    "the mass left concentrates on the top token.",
               "c": "Dividing by 1.3 instead of 0.7 shrinks every gap between the logits; after "
                    "the softmax the distribution is flatter, so the top token keeps less of the "
                    "mass and the top-p nucleus needs far more tokens.",
               "d": "A higher temperature changes which token is most likely, and the new top "
                    "token is a rarer one with a lower probability."},
              "c",
              {"a": "Dividing by a larger number shrinks the gaps; it is a temperature below 1 "
                    "that widens them. The probability the cell printed fell.",
               "b": "The logits are divided before the softmax and before top-p; and the cell "
                    "printed a lower probability, not a higher one.",
               "c": "Right: a temperature above 1 flattens the distribution. (Section 4's "
                    "sample at 1.3 also swapped top-p 0.9 for top-k 50, so it does not isolate "
                    "the temperature; this exercise does.)",
               "d": "Dividing every logit by the same positive number keeps their order: the cell "
                    "printed the same top tokens at both temperatures. Only how much of the mass "
                    "they hold changed."}),
          hint_text="Set `TEMPERATURE = 1.3`, run that cell and the next one, and copy the "
                    "probability it prints into `value`; compare it with the value at 0.7 (run "
                    "the cell once before changing it).",
          nudge=("Softmax turns differences between logits into ratios of probabilities. What "
                 "does dividing every logit by a number above 1 do to those differences?"))


def _planner_recall_at(thresholds: tuple[float, ...]) -> tuple[float, ...]:
    """The plans' recall of the true drivers on every warm test pair, the chapter's planner
    adding a second aspect at each ``second_threshold`` (what 05c's exercise 2 prints); the
    chosen threshold is ``None``."""
    w = world.reason_world()
    fitted = planner.fit_planner(w, progress=False)
    out = []
    for th in thresholds:
        p = copy.copy(fitted)
        p.second_threshold = fitted.second_threshold if th is None else th
        out.append(planner.plan_scores(p.plans(w.warm["user_id"], w.warm["item_id"],
                                               progress=False), w.warm["drivers"])["recall"])
    return tuple(out)


q7 = Vary(name="ch05.q7", notebook=_NB_C, var="vary_second",
          title="Vary and explain: a second aspect only when as likely as the first",
          measure=lambda: _planner_recall_at((None, 1.0)),
          quantity="the plans' recall of the true drivers on warm pairs",
          expect="down",
          why=Choice(
              "What explains how the plans' recall of the true drivers changed when the planner "
              "added a second aspect only when it was as likely as the first?",
              {"a": "Each plan now keeps only its most likely claim, the one most often right, so "
                    "a larger share of the true drivers is named.",
               "b": "Every plan's first claim is the same as before; fewer plans add a second "
                    "aspect, so a purchase with two true drivers gets at most one named, and "
                    "fewer of all the true drivers are named.",
               "c": "With fewer second aspects the planner names popularity more often, and "
                    "popularity drove about a quarter of the purchases, so more drivers are named.",
               "d": "At 1.0 the planner falls back on popularity instead of an aspect for more "
                    "pairs, and popularity is rarely the driver, so fewer drivers are named."},
              "b",
              {"a": "Recall is the share of all true drivers that the plans name: dropping a claim "
                    "can only name fewer. The recall the cell printed fell; precision, the share "
                    "of named claims that are drivers, rose.",
               "b": "Right: saying less costs recall and buys precision (the cell printed both), "
                    "which is why the threshold is chosen by the F1 of the two.",
               "c": "The threshold touches only the second claim, which is always an aspect; "
                    "popularity is never added by it. The recall the cell printed fell.",
               "d": "The threshold never changes the first claim (popularity or not); it only "
                    "decides whether a second aspect joins it."}),
          hint_text="Set `SECOND = 1.0`, run that cell and the next one, copy the recall it "
                    "prints into `value`; compare it with the planner's warm recall in the plan "
                    "table above.",
          nudge=("Recall divides the true drivers the plans name by all the true drivers. Which "
                 "claims does the threshold add or remove, and can removing claims name more?"))


quiz_a = Quiz("ch05.quiz_a", _NB_A, var="quiz_answers_a", where=(
    "Q1: section 2; Q2: section 5; Q3: sections 1 and 2; Q4: section 3; Q5: section 4; "
    "Q6: section 5."),
    questions=[
    Choice("A reason says 'great battery life and a superb display'. How does the chapter check "
           "it?",
           {"a": "By its BLEU score against the reference reason.",
            "b": "As a list of claims (battery life at a high level, display at a high level), "
                 "each checked against the item: against the hidden truth for "
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
    Choice("The reference reasons score 1.0 on truthful, personal and faithful. Why not on "
           "grounded?",
           {"a": "They were written from the hidden truth, and the shop's text does not state "
                 "every item's aspects, colour or pattern (of a new item it knows only the "
                 "description).",
            "b": "The claim extractor misses some of their words, so some of their claims count "
                 "as unstated.",
            "c": "Grounded counts popularity as a claim the shop never states."},
           "a",
           {"a": "Right: grounded compares with what the shop states, and the shop does not "
                 "state everything that is true.",
            "b": "A claim the extractor misses is never checked, so it cannot make a reason "
                 "untruthful or ungrounded (it could only cost a reason its personal share, and "
                 "the references score 1.0 there).",
            "c": "Popularity claims count as true for every item (ShopWorld records nothing "
                 "that could make them false); the gap is unstated aspects, colours and patterns."}),
    Choice("Why can the template not say something untrue of the item?",
           {"a": "It copies the user's own past reasons.",
            "b": "It was trained on the reference reasons, which are all true.",
            "c": "It names only aspects the shop states the item is good at (or value for money, "
                 "or popularity): it can only repeat what the shop states."},
           "c",
           {"a": "It reads the user's aspect profile, not their reasons, and the item's stated "
                 "facts.",
            "b": "Nothing is trained: it fills a fixed sentence from the profile and the facts.",
            "c": "Right: grounded by construction; what it cannot do is say much, or say it "
                 "in many ways."}),
    Choice("What does review retrieval say for a brand-new (cold) item?",
           {"a": "The template's reason, marked [fallback]: a new item has no training reviews "
                 "to borrow a sentence from.",
            "b": "A sentence from the reviews of the most similar item.",
            "c": "A sentence the language model writes from the item's description."},
           "a",
           {"a": "Right: that is why its cold rows equal the template's in the table.",
            "b": "It borrows only sentences about this item; another item's review could be "
                 "false of this one.",
            "c": "Retrieval writes nothing: it borrows a sentence or falls back."}),
    Choice("The template's USR on warm items is about 0.2. What does that say?",
           {"a": "About one reason in five is true of the item.",
            "b": "About one reason in five is a distinct sentence; the rest repeat a sentence "
                 "already said to another pair.",
            "c": "About one reason in five names a feature of its reference."},
           "b",
           {"a": "Its truthful share is 1.0; USR says nothing about truth.",
            "b": "Right: USR counts distinct sentences, so it measures repetition, not truth.",
            "c": "That is what FMR measures, not USR."}),
])

quiz_b = Quiz("ch05.quiz_b", _NB_B, var="quiz_answers_b", where=(
    "Q1: section 1; Q2: section 3; Q3: section 2; Q4: section 3; Q5: section 4; Q6: section 4."),
    questions=[
    Choice("PETER writes in the references' style. Why are many of its reasons untrue of the "
           "item, even for items it trained on?",
           {"a": "It was trained on reasons that are themselves untrue.",
            "b": "Its vocabulary lacks the aspect names, so it uses the wrong ones.",
            "c": "It knows an item only by its ID embedding, and that does not tell it what the "
                 "item has."},
           "c",
           {"a": "The references are truthful by construction (05a: 1.0 on truthful).",
            "b": "It writes the aspect names of the references: its words are fine, the "
                 "facts behind them are missing.",
            "c": "Right: a generator that writes from IDs hallucinates; fluency is not truth."}),
    Choice("When fine-tuning the language model on (plan prompt, reason) pairs, why is the loss "
           "masked on the prompt?",
           {"a": "So the model learns to write the reason given the prompt, not to reproduce the "
                 "prompt's tokens.",
            "b": "To make training faster.",
            "c": "Because the prompt is untrusted."},
           "a",
           {"a": "Right: only the answer's tokens are targets.",
            "b": "The forward pass still reads the whole sequence; the point is what is learned.",
            "c": "The prompt is built by the course from the shop's facts."}),
    Choice("Why does the lesson fine-tune SmolLM2 rather than use it zero-shot?",
           {"a": "Zero-shot generation is much slower than a fine-tuned model's.",
            "b": "The model cannot read chat prompts without fine-tuning.",
            "c": "Zero-shot replies were not in the references' style, did not say what suits "
                 "this shopper, and could make claims the shop never made."},
           "c",
           {"a": "The same model generates at the same speed; what changes is what it says.",
            "b": "It reads them: its chat template wraps the prompt, and it replied.",
            "c": "Right: fine-tuning on (plan prompt, reason) pairs teaches it our task and our "
                 "kind of sentence; chapter 05c uses the adapter trained that way."}),
    Choice("What does LoRA train?",
           {"a": "Every weight of the model, at a lower learning rate.",
            "b": "A low-rank update B·A beside each frozen linear weight: about 2 % of the "
                 "parameters here.",
            "c": "Only the last layer's weights."},
           "b",
           {"a": "That is full fine-tuning; LoRA freezes every base weight.",
            "b": "Right: the base weights stay frozen, and the file that ships is small.",
            "c": "LoRA adds updates to every linear layer, not only the last."}),
    Choice("What does top-p filtering with p = 0.9 keep?",
           {"a": "The 90 % of the vocabulary with the highest logits.",
            "b": "The fewest most likely tokens whose probabilities sum to at least 0.9.",
            "c": "Every token whose probability is at least 0.9."},
           "b",
           {"a": "The nucleus is set by probability mass, not by a share of the vocabulary: it "
                 "may hold one token or thousands.",
            "b": "Right: including the token that crosses 0.9, and at least one.",
            "c": "Usually no token is that likely, and at least one is always kept."}),
    Choice("What does the KV cache save during generation?",
           {"a": "Recomputing the keys and values of all earlier positions at every new token.",
            "b": "Memory, by not storing the prompt.",
            "c": "Tokenising the prompt again for each reply."},
           "a",
           {"a": "Right: each new token computes only its own keys and values.",
            "b": "It costs memory (it stores the keys and values); it saves computation.",
            "c": "Tokenising happens once either way; the cache is inside the model."}),
])

quiz_c = Quiz("ch05.quiz_c", _NB_C, var="quiz_answers_c", where=(
    "Q1: section 1; Q2: section 1; Q3: section 2; Q4: section 3; Q5: section 3."),
    questions=[
    Choice("What makes the guard closed-world?",
           {"a": "It rejects sentences containing words from a list of known lies.",
            "b": "It passes a sentence only when every word is a stated fact of the item or "
                 "allowed phrasing; anything it cannot verify is rejected.",
            "c": "It only runs on closed (finished) sentences."},
           "b",
           {"a": "That is an open-world blocklist: every new lie gets through.",
            "b": "Right: what it cannot verify, it rejects (and names the word).",
            "c": "The name is about what it accepts, not when it runs."}),
    Choice("Your open-world check rejected only about a quarter of the false reasons. Why?",
           {"a": "It checked only the first claim of each sentence.",
            "b": "It compared claims with the hidden truth instead of the stated facts.",
            "c": "It lets through what it cannot parse: words such as \"waterproof\", \"gold\", "
                 "\"not\" or \"40\" are in no entry of its lexicon, so it never sees them."},
           "c",
           {"a": "It checks every claim it extracts; the false claims it missed were never "
                 "extracted.",
            "b": "It reads only the stated facts, as the guard does.",
            "c": "Right: an open world passes what it cannot read; the closed-world guard "
                 "rejects it."}),
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
    Choice("What does the planner decide, and what does the realiser do?",
           {"a": "The planner picks which claims to state for this shopper; the realiser puts "
                 "them into words; the guard checks the words.",
            "b": "The planner writes the sentence; the realiser checks it.",
            "c": "Both generate sentences and the best one wins."},
           "a",
           {"a": "Right: plan, then say it.",
            "b": "Checking is the guard's job; the realiser phrases.",
            "c": "They have different jobs; one decides what, the other how."}),
    Choice("What is the oracle plan, and why is it not a method?",
           {"a": "The plan with the most claims the shop states; it is too long to say.",
            "b": "The pair's true drivers among the claims the shop can back up: it reads the "
                 "hidden truth, so it is a ceiling for any planner, not something a shop can run.",
            "c": "The plan chosen on the test pairs; it leaks the test set."},
           "b",
           {"a": "It names the true drivers the shop states, not every stated claim.",
            "b": "Right: a bound, not a method.",
            "c": "It is not chosen on anything: it is read from the hidden truth, pair by pair."}),
])

progress = progress_of(__name__)
