"""Exercises of chapter 03 (self-attention), each checked against PyTorch's own implementation."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from . import Exercise, Incorrect, progress_of, shape_of

_NB = "03_self_attention.ipynb"


def _check_attention(fn) -> str:
    gen = torch.Generator().manual_seed(6)
    for shape, masked in [((5, 4), False), ((2, 3, 7, 8), False), ((2, 3, 7, 8), True)]:
        q, k, v = (torch.randn(*shape, generator=gen) for _ in range(3))
        mask = None
        if masked:
            mask = (torch.rand(shape[-2], shape[-2], generator=gen) > 0.4) | torch.eye(
                shape[-2], dtype=torch.bool)
        got = fn(q, k, v, mask)
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise Incorrect(f"for q, k, v of shape {tuple(shape)} the output should have shape "
                            f"{tuple(want.shape)}, got "
                            f"{shape_of(got)}.")
        if not torch.allclose(got, want, atol=1e-5):
            hint = ("Masked positions must get -inf before the softmax." if masked else
                     "Did you divide the scores by sqrt(d_k) and take the softmax over the last dim?")
            raise Incorrect(f"with{'' if masked else 'out'} a mask the output differs from "
                            f"torch's scaled_dot_product_attention (max gap "
                            f"{(got - want).abs().max():.3g}). {hint}")
    return "It equals torch.nn.functional.scaled_dot_product_attention, masks included."


def _check_causal(fn) -> str:
    for t in (1, 4, 9):
        got = fn(t)
        want = torch.ones(t, t, dtype=torch.bool).tril()
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise Incorrect("return a bool tensor (True = may attend).")
        if not torch.equal(got, want):
            raise Incorrect(f"for t={t} position i must see positions 0..i only; expected\n"
                            f"{want.int().tolist()}\ngot\n{got.int().tolist()}.")
    q = k = v = torch.randn(1, 2, 6, 4)
    same = torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=fn(6)),
                          F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)
    if not same:
        raise Incorrect("your mask does not reproduce torch's is_causal=True.")
    return "It reproduces torch's is_causal=True."


def _check_split_heads(fn) -> str:
    x = torch.arange(2 * 5 * 12, dtype=torch.float32).view(2, 5, 12)
    got = fn(x, 3)
    want = x.view(2, 5, 3, 4).transpose(1, 2)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise Incorrect(f"(batch=2, time=5, d=12) with 3 heads should become (2, 3, 5, 4), got "
                        f"{shape_of(got)}.")
    if not torch.equal(got, want):
        raise Incorrect("the shape is right but the values are scrambled: head h must hold "
                        "features h*d_head .. (h+1)*d_head - 1 of every position. Reshape to "
                        "(b, t, h, d_head) first, then swap the time and head axes.")
    return "Head h holds features h·d_head … (h+1)·d_head − 1 of every position."


q1 = Exercise(name="ch03.q1", title="Write attention(q, k, v, mask): scaled dot-product attention",
              var="attention", checker=_check_attention, notebook=_NB,
              hint_text="scores = q @ k.transpose(-2, -1) / sqrt(d_k); if mask is given, "
                        "`scores.masked_fill(~mask, float('-inf'))`; then softmax over dim=-1 and "
                        "multiply by v.",
              nudge=("Each query compares itself with every key (a dot product, scaled so large "
                     "dimensions do not saturate the softmax), turns the scores into weights that "
                     "sum to 1, and averages the values with them. Masked positions must get zero "
                     "weight."))
q2 = Exercise(name="ch03.q2", title="Write causal_mask(t): who may look at whom",
              var="causal_mask", checker=_check_causal, notebook=_NB,
              hint_text="Position i sees 0..i: the lower triangle, diagonal included — "
                        "`torch.ones(t, t, dtype=torch.bool).tril()`.",
              nudge=("In a sequence model a position may read itself and everything before it, "
                     "never what comes after. Draw that as a t by t table of yes/no."))
q3 = Exercise(name="ch03.q3", title="Write split_heads(x, n_head): (b, t, d) -> (b, h, t, d/h)",
              var="split_heads", checker=_check_split_heads, notebook=_NB,
              hint_text="`x.view(b, t, n_head, d // n_head).transpose(1, 2)`.",
              nudge=("The last dimension holds all heads side by side. Split it into (heads, size "
                     "per head), then move the heads next to the batch so each head sees its own "
                     "(time, size) matrix."))

progress = progress_of(__name__)
