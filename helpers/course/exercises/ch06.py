"""Exercises of chapter 06 (multimodal fusion), each checked against an independent reference:
the shape torch's own ``nn.Conv2d`` produces, InfoNCE written out as a loop of log-softmaxes,
and torch's ``scaled_dot_product_attention`` with a boolean mask."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of

_NB = "06_multimodal_fusion.ipynb"


def _check_conv_out(fn) -> str:
    cases = [(64, 3, 1, 1), (64, 3, 2, 1), (64, 2, 2, 0), (32, 5, 1, 0), (31, 4, 2, 1),
             (224, 7, 2, 3), (7, 7, 1, 0), (9, 3, 3, 2)]
    for size, kernel, stride, padding in cases:
        conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
        with torch.no_grad():
            want = conv(torch.zeros(1, 1, size, size)).shape[-1]
        got = fn(size, kernel, stride, padding)
        if isinstance(got, bool) or not isinstance(got, int):
            raise Incorrect(f"return an int (a side length), got {type(got).__name__} {fmt(got)}.")
        if got != want:
            raise Incorrect(f"a {kernel}x{kernel} kernel, stride {stride}, padding {padding} on "
                            f"{size}x{size} pixels gives {want}x{want} in torch, you said {fmt(got)}. "
                            "Pad both sides, count the positions the kernel fits, and round "
                            "down.")
    return "It matches the output side of torch's nn.Conv2d on 8 settings."


def _reference_info_nce(a, b, temperature):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n = len(a)
    total = 0.0
    for i in range(n):                      # image i against every text, and text i against
        s_row = torch.tensor([float(a[i] @ b[j]) / temperature for j in range(n)])
        s_col = torch.tensor([float(a[j] @ b[i]) / temperature for j in range(n)])
        total += -(s_row[i] - torch.logsumexp(s_row, 0)) - (s_col[i] - torch.logsumexp(s_col, 0))
    return total / (2 * n)


def _check_info_nce(fn) -> str:
    gen = torch.Generator().manual_seed(6)
    for n, d, t in ((4, 3, 0.07), (6, 8, 0.5), (5, 8, 1.0)):
        a, b = torch.randn(n, d, generator=gen) * 3, torch.randn(n, d, generator=gen)
        want = _reference_info_nce(a, b, t)
        got = fn(a, b, t)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            raise Incorrect(f"return the mean loss as a 0-dim tensor, got {shape_of(got)}.")
        if not torch.allclose(got, want.to(got.dtype), atol=1e-4):
            one_side = _reference_one_side(a, b, t)
            extra = (" That is the image→text half only: average it with the text→image half "
                     "(the transposed logits)." if torch.allclose(got, one_side, atol=1e-4)
                     else " Normalise both sides to unit length first, divide by the "
                     "temperature, and use the diagonal as the targets.")
            raise Incorrect(f"{n} pairs of width {d}, temperature {t}: the loss should be "
                            f"{float(want):.4f}, got {float(got):.4f}.{extra}")
    return "It equals the symmetric InfoNCE loss written out pair by pair."


def _reference_one_side(a, b, t):
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / t
    return F.cross_entropy(logits, torch.arange(len(a)))


def _check_modality_attention(fn) -> str:
    gen = torch.Generator().manual_seed(7)
    n, m, d = 5, 3, 8
    tokens = torch.randn(n, m, d, generator=gen)
    query = torch.randn(d, generator=gen)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    got = fn(query, tokens, present)
    if not isinstance(got, torch.Tensor) or got.shape != (n, m):
        raise Incorrect(f"{n} items with {m} modality tokens each should give weights ({n}, {m}), "
                        f"got {shape_of(got)}.")
    if torch.isnan(got).any():
        raise Incorrect("some weights are NaN: mask with -inf before the softmax (every item here "
                        "has at least one modality).")
    if (got[~present].abs() > 1e-6).any():
        raise Incorrect("a missing modality received weight: give it -inf before the softmax, so "
                        "an item without a picture is not scored on a zero picture.")
    # the reference: torch's attention with the query as the one query row and a bool mask;
    # its output is the weighted sum of the values, so use the identity as values to read weights
    q = query.expand(n, 1, d)
    eye = torch.eye(m).expand(n, m, m)
    want = F.scaled_dot_product_attention(q, tokens, eye, attn_mask=present[:, None, :])[:, 0]
    if not torch.allclose(got, want, atol=1e-5):
        unscaled = torch.softmax((tokens @ query).masked_fill(~present, -math.inf), -1)
        raise Incorrect("the weights differ from softmax(q·t / sqrt(d)) over the present modalities "
                        f"(max gap {(got - want).abs().max():.3g})."
                        + (" Divide the scores by sqrt(d) before the softmax."
                           if torch.allclose(got, unscaled, atol=1e-5) else
                           " Score each token by its dot product with the query."))
    return "It equals torch's scaled_dot_product_attention with a boolean mask."


q1 = Exercise(name="ch06.q1", title="Write conv_out(size, kernel, stride, padding)",
              var="conv_out", checker=_check_conv_out, notebook=_NB,
              hint_text="The kernel's top-left corner can sit at `size + 2*padding - kernel + 1` "
                        "places in a row; a stride keeps every `stride`-th: "
                        "`(size + 2*padding - kernel) // stride + 1`.",
              nudge=("Count how many places the kernel's corner can sit along one side of the "
                     "padded input, then keep every stride-th of them."))
q2 = Exercise(name="ch06.q2", title="Write clip_loss(a, b, temperature): symmetric InfoNCE",
              var="clip_loss", checker=_check_info_nce, notebook=_NB,
              hint_text="`logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / "
                        "temperature`; targets `torch.arange(n)`; average "
                        "`F.cross_entropy(logits, targets)` and the same on `logits.T`.",
              nudge=("Each image should be most similar to its own text among all texts in the "
                     "batch, and each text to its own image: two classification problems over the "
                     "batch, averaged. Compare directions, not lengths."))
q3 = Exercise(name="ch06.q3", title="Write modality_weights(query, tokens, present)",
              var="modality_weights", checker=_check_modality_attention, notebook=_NB,
              hint_text="`scores = (tokens @ query) / math.sqrt(d)`, shape (n, m); "
                        "`scores.masked_fill(~present, float('-inf'))`; softmax over dim=-1.",
              nudge=("Attention over modalities: score each modality's token against the query "
                     "(scaled by the square root of the dimension), give missing modalities no "
                     "weight, and normalise each row to sum to 1."))

from helpers.course.exercises.quiz import Choice, Numeric, Quiz  # noqa: E402

quiz = Quiz("ch06.quiz", _NB, where=(
    "Q1: section 1; Q2: section 2; Q3: section 3; Q4: section 4; Q5 and Q6: section 5."),
    questions=[
    Numeric("A batch of 32 RGB images, 64 x 64 pixels, as PyTorch expects it: how many numbers "
            "does the tensor hold?",
            32 * 3 * 64 * 64, "Right: shape (32, 3, 64, 64), channels before height and width.",
            tol=0.5, traps={32 * 64 * 64: "That leaves out the three colour channels."}),
    Choice("How does the chapter's small CNN learn colours and patterns with no human labelling?",
           {"a": "From the shop's own descriptions that state them (about half do); it then reads "
                 "them in pictures whose text is silent.",
            "b": "From ImageNet labels.",
            "c": "It clusters pixels without any labels."},
           "a",
           {"a": "Right: the shop's own words are the labels.",
            "b": "ImageNet's classes are not colours or patterns of these products.",
            "c": "It is trained supervised, on the stated labels."}),
    Choice("A frozen pretrained image encoder with a linear probe did as well as the CNN trained "
           "here. What is the lesson?",
           {"a": "Pretrained is the default; train your own only when it measurably wins.",
            "b": "Never use a pretrained encoder.",
            "c": "Linear probes are always best."},
           "a",
           {"a": "Right.",
            "b": "It matched the custom model at a fraction of the work.",
            "c": "A probe is as good as the features under it."}),
    Choice("A CLIP-style shared space names an item's colour zero-shot. How?",
           {"a": "It was trained on colour labels.",
            "b": "Pictures and texts are mapped into one space by contrastive training on pairs; "
                 "the colour word whose text vector is closest to the picture's vector wins.",
            "c": "It reads the colour from the file name."},
           "b",
           {"a": "No colour labels: pairs alone.",
            "b": "Right: compare the image with the text of every colour.",
            "c": "It reads pixels."}),
    Choice("On the cold-start protocol, did fusing image and text beat text alone?",
           {"a": "Yes, always, by a wide margin.",
            "b": "Not surely: none of the fusions was a sure gain over text, and a paired interval "
                 "is how you know.",
            "c": "Images alone beat both."},
           "b",
           {"a": "The paired intervals say otherwise on this protocol.",
            "b": "Right: report the interval, not the point estimate.",
            "c": "Text carries most of the signal here."}),
    Choice("The same models, pictures and protocol, in the shop regenerated with keener colour "
           "tastes: every fusion now gains beyond noise. What does that show?",
           {"a": "The models were broken in the committed shop.",
            "b": "A modality is worth what it tells about the decision: once colour drives the "
                 "purchases, the picture, the only source of colour for half the items, pays.",
            "c": "Fusion always wins if you regenerate the data often enough."},
           "b",
           {"a": "The same models, unchanged, gained in the keen shop: they were not broken.",
            "b": "Right: measure whether the new modality carries the decision's signal before "
                 "building on it.",
            "c": "One regeneration, with one change chosen in advance and named; the committed "
                 "shop's null result stands and is reported beside it."}),
])

progress = progress_of(__name__)
