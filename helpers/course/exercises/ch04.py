"""Exercises of chapter 04 (BERT interest models), each checked against an independent
reference: plain loops over users (q1, q2), torch's cross-entropy (q3), and the course's own
re-run of the inferred aspect profiles with review sentences weighted more (section 7's "vary and
explain", q4)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from helpers.course.exercises import Exercise, Incorrect, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import loaders, preprocess as pp
from helpers.models import interest as I

_NB = "04_bert_interest_models.ipynb"


def _history(gen):
    hist = torch.randn(4, 6, 5, generator=gen)
    real = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1],
                         [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    return hist, real


def _check_masked_mean(fn) -> str:
    hist, real = _history(torch.Generator().manual_seed(4))
    got = fn(hist, real)
    want = torch.stack([hist[u][real[u]].mean(0) for u in range(len(hist))])
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise Incorrect(f"hist (4 users, 6 positions, d=5) should give (4, 5), got "
                        f"{shape_of(got)}.")
    if not torch.allclose(got, want, atol=1e-6):
        u = int((got - want).abs().sum(1).argmax())
        raise Incorrect(f"user {u} has {int(real[u].sum())} real items of 6; their mean should "
                        f"be {want[u].numpy().round(3).tolist()}, got "
                        f"{got[u].detach().numpy().round(3).tolist()}. Divide by the number of "
                        "real items, not by 6, and leave pads out of the sum.")
    return "Pads are left out of both the sum and the count."


def _check_target_attention(fn) -> str:
    gen = torch.Generator().manual_seed(5)
    hist, real = _history(gen)
    query = torch.randn(4, 5, generator=gen)
    got = fn(query, hist, real, 0.5)
    want = torch.zeros(4, 6)
    for u in range(4):
        s = hist[u][real[u]] @ query[u] / 0.5
        want[u, real[u]] = torch.softmax(s, 0)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise Incorrect(f"the weights should have shape (4 users, 6 positions), got "
                        f"{shape_of(got)}.")
    if torch.isnan(got).any():
        raise Incorrect("some weights are NaN; mask the pads with -inf *before* the softmax and "
                        "make sure every row has a real item (here each does).")
    if not torch.allclose(got, want, atol=1e-5):
        if (got[~real].abs() > 1e-6).any():
            raise Incorrect("pads received weight; give them -inf scores before the softmax.")
        raise Incorrect("the weights differ from softmax(query·h / temperature) over the real "
                        f"items (max gap {(got - want).abs().max():.3g}). Did you divide by the "
                        "temperature?")
    return "Weights are a softmax over the real history only."


def _check_in_batch_loss(fn) -> str:
    gen = torch.Generator().manual_seed(6)
    u = F.normalize(torch.randn(8, 16, generator=gen), dim=-1)
    v = F.normalize(torch.randn(8, 16, generator=gen), dim=-1)
    log_q = torch.log(torch.rand(8, generator=gen) * 0.1 + 1e-3)
    for lq in (None, log_q):
        logits = u @ v.T / 0.1
        if lq is not None:
            logits = logits - lq[None, :]
        want = F.cross_entropy(logits, torch.arange(8))
        got = fn(u, v, 0.1, lq)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            raise Incorrect("return the mean loss as a 0-dim tensor (e.g. from F.cross_entropy).")
        if not torch.allclose(got, want, atol=1e-5):
            raise Incorrect(f"{'with' if lq is not None else 'without'} log_q the loss should be "
                            f"{want:.4f}, got {float(got):.4f}. "
                            + ("Subtract log_q from each *column* (item) of the logits."
                               if lq is not None else
                               "Row b's positive is column b: logits = u @ v.T / temperature, "
                               "labels = arange(B)."))
    return "It equals cross-entropy over in-batch logits, with the logQ correction."


q1 = Exercise(name="ch04.q1", title="Write masked_mean(hist, real): a user vector from history",
              var="masked_mean", checker=_check_masked_mean, notebook=_NB,
              hint_text="Turn `real` into floats of shape (n, t, 1), multiply, sum over dim 1, "
                        "and divide by `real.sum(1, keepdim=True)` (clamped to at least 1).",
              nudge=("A user's vector is the average of the vectors of the items they really had: "
                     "padding slots must count neither in the sum nor in the count."))
q2 = Exercise(name="ch04.q2", title="Write target_attention(query, hist, real, temperature)",
              var="target_attention", checker=_check_target_attention, notebook=_NB,
              hint_text="scores = (hist @ query[:, :, None])[..., 0] / temperature, shape (n, t); "
                        "`masked_fill(~real, float('-inf'))`; softmax over dim=-1.",
              nudge=("Score each history item against the candidate (a dot product), cool the "
                     "scores with the temperature, give padding slots no chance at all, and make "
                     "the weights of each row sum to 1."))
q3 = Exercise(name="ch04.q3", title="Write in_batch_loss(u, v, temperature, log_q)",
              var="in_batch_loss", checker=_check_in_batch_loss, notebook=_NB,
              hint_text="logits = u @ v.T / temperature; if log_q is not None subtract "
                        "`log_q[None, :]`; then `F.cross_entropy(logits, torch.arange(len(u)))`.",
              nudge=("Within a batch, every user's own item is the right answer and every other "
                     "user's item is a negative: a classification over the batch. Popular items "
                     "appear as negatives too often; the correction removes their log-frequency "
                     "from the scores."))


def _aspect_precision_by_review_weight(weights=(3, 10)) -> tuple[float, ...]:
    """Precision of the inferred top-3 aspects against ShopWorld's true ones, every shopper with
    a click, cart or purchase, each review sentence worth each number of votes: section 7's
    cell."""
    sw = pp.clean_shopworld(write=False)
    categories = loaders.vocabulary()["categories"]
    reviews, truth = loaders.load_shopworld("reviews"), loaders.load_shopworld("user_truth")
    return tuple(I.aspect_precision(I.aspect_profile(sw["events"], reviews, sw["catalogue"],
                                                     categories, review_weight=w), truth)
                 for w in weights)


q4 = Vary(name="ch04.q4", notebook=_NB, var="vary_reviews",
          title="Vary and explain: a review sentence worth 10 votes instead of 3",
          measure=_aspect_precision_by_review_weight,
          quantity="the precision of the inferred top-3 aspects", expect="up", same_within=0.01,
          why=Choice(
              "What explains how the precision of the inferred top-3 aspects changed when each "
              "review sentence counted 10 votes instead of 3?",
              {"a": "A review sentence names an aspect the shopper chose to write about, in "
                    "ShopWorld mostly one they truly care about (the cell prints how often), "
                    "while a history vote counts what an item's description stands out on. At "
                    "10 votes, what a reviewer wrote outvotes what they bought.",
               "b": "A reviewer's two or three sentences now outweigh dozens of clicks, carts "
                    "and purchases, so each reviewer's profile rests on a handful of sentences "
                    "instead of their whole history: less evidence, noisier profiles, and a top "
                    "three that is wrong more often than it was at 3 votes.",
               "c": "Reviews are rarer than clicks, so a larger weight balances the two sources: "
                    "every shopper's profile now draws on both equally.",
               "d": "At 10 votes, one sentence about an aspect of a category the shopper never "
                    "bought from can push that aspect into their top three, in place of the "
                    "aspects of the categories they do buy."},
              "a",
              {"a": "Right: the two sources are evidence of different strength, and the weight "
                    "says how far to trust each. Only reviewers' profiles change (the cell "
                    "prints the others' precision, the same at both weights), and the gain is "
                    "measured against the truth ShopWorld hides: a real shop must choose the "
                    "weight without it.",
               "b": "The precision the cell printed rose. How much evidence there is matters "
                    "less than how good it is: the cell prints how many review sentences name an "
                    "aspect their writer truly cares about, while a history vote only says what "
                    "an item's description stands out on.",
               "c": "Nothing is balanced for everyone: the cell prints how many profiled "
                    "shoppers wrote no review, and their precision, the same at both weights, "
                    "because their profile is. Only reviewers' profiles lean on what they "
                    "wrote.",
               "d": "aspect_profile lets only aspects of the categories a shopper interacted "
                    "with compete (section 7), so a review cannot bring in another category's "
                    "aspect at any weight; and the precision the cell printed rose."}),
          hint_text="Set `REVIEW_WEIGHT = 10`, run that cell and the next one, copy the "
                    "precision it prints first into `value`, and compare it with the table's "
                    "`history + reviews` row.",
          nudge=("Which of the two sources is the shopper's own word about what they care "
                 "about, and which only says what an item they bought is good at? Read the "
                 "cell's other lines too: who wrote a review, and how often a review names "
                 "a true aspect."))

quiz = Quiz("ch04.quiz", _NB, where=(
    "Q1: section 1; Q2: section 2; Q3: section 3; Q4: sections 4 and 6; Q5: section 7."),
    questions=[
    Choice("How does BERT differ from the causal Transformer blocks of chapter 03?",
           {"a": "It has no attention.",
            "b": "The same blocks without a causal mask (every token sees both sides), pretrained "
                 "to fill in masked words.",
            "c": "It reads characters instead of tokens."},
           "b",
           {"a": "BERT is a stack of attention blocks.",
            "b": "Right: bidirectional, trained by masked language modelling.",
            "c": "It reads WordPiece tokens (chapter 00)."}),
    Choice("Why are the items' texts encoded once and cached?",
           {"a": "An item's text does not change between chapters, and encoding is the expensive "
                 "step; every model reuses the same vectors (and the truncation is stated).",
            "b": "Because the encoder can only run once per session.",
            "c": "Caching makes the vectors more accurate."},
           "a",
           {"a": "Right: encode once, cache, state truncation.",
            "b": "It can run any number of times; it is just slow to repeat.",
            "c": "A cache returns exactly what was computed, no better."}),
    Choice("What does target attention give that a plain mean of the history does not?",
           {"a": "A vector that does not depend on the item being scored.",
            "b": "Weights over the past items that depend on the candidate item, showing which "
                 "past items a recommendation rests on.",
            "c": "It needs no history at all."},
           "b",
           {"a": "That is the mean; target attention's weights change with the candidate.",
            "b": "Right: the weights are evidence a reason can point to.",
            "c": "Users without history need a stated fallback either way."}),
    Choice("What can a two-tower model over text embeddings do that an ID-based model cannot?",
           {"a": "Rank new items above chance: they have text but no interactions.",
            "b": "Train without any interactions.",
            "c": "Beat every ID model on warm items."},
           "a",
           {"a": "Right: a new item's text places it next to items people did buy; the ID "
                 "models have nothing to rank new items by.",
            "b": "It is trained on interactions (in-batch softmax with the logQ correction).",
            "c": "On warm items the ID models stay ahead; the gain is on the cold ones."}),
    Choice("What is the chapter's stance on the inferred aspect profiles (what each user cares "
           "about)?",
           {"a": "They are the user's true preferences.",
            "b": "They beat chance clearly against ShopWorld's hidden truth, but they are "
                 "evidence, not truth: a reason built on them must not overstate them.",
            "c": "They are no better than chance."},
           "b",
           {"a": "They are inferred from behaviour and reviews; the truth is hidden.",
            "b": "Right: measured against the truth, with their error stated.",
            "c": "The chapter measures them clearly above chance."}),
])

progress = progress_of(__name__)
