"""Exercises of chapter 00 (setup and tour). Each checker compares with an independent
reference (torch's own functions) on fresh random inputs."""
from __future__ import annotations

import torch

from . import Exercise, Incorrect, progress_of

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

progress = progress_of(__name__)
