"""Exercises of chapter 03 (self-attention): q1-q3 checked against PyTorch's own implementation;
q4 a "vary and explain" exercise (an untrained SASRec's loss at another initial scale)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from helpers.course.exercises import Exercise, Incorrect, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.models import attention as A

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
        if not isinstance(got, tuple) or len(got) != 2:
            raise Incorrect(f"return two things, (output, weights); got {shape_of(got)}.")
        out, weights = got
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            raise Incorrect(f"for q, k, v of shape {tuple(shape)} the output should have shape "
                            f"{tuple(want.shape)}, got {shape_of(out)}.")
        w_shape = shape[:-1] + (shape[-2],)
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != w_shape:
            raise Incorrect(f"for q, k, v of shape {tuple(shape)} the weights should have shape "
                            f"{w_shape} (one row per query, one column per key), got "
                            f"{shape_of(weights)}.")
        if not torch.allclose(out, want, atol=1e-5):
            hint = ("Masked positions must get -inf before the softmax." if masked else
                     "Did you divide the scores by sqrt(d_k) and take the softmax over the last dim?")
            raise Incorrect(f"with{'' if masked else 'out'} a mask the output differs from "
                            f"torch's scaled_dot_product_attention (max gap "
                            f"{(out - want).abs().max():.3g}). {hint}")
        if not torch.allclose(weights @ v, out, atol=1e-5):
            raise Incorrect("the output should be weights @ v: return the weights the softmax "
                            "gave, not the scores.")
    q = k = v = torch.randn(1, 3, 4, generator=gen)
    nothing = torch.tensor([[False, False, False], [True, True, False], [True, True, True]])
    out, weights = fn(q, k, v, nothing)
    if torch.isnan(out).any() or torch.isnan(weights).any():
        raise Incorrect("a query whose keys are all masked gets NaN: its softmax is 0/0. Wrap the "
                        "softmax in torch.nan_to_num so that row's weights are 0.")
    if weights[0, 0].abs().sum() != 0 or not torch.allclose(weights[0, 1:].sum(-1),
                                                            torch.ones(2)):
        raise Incorrect("a query whose keys are all masked must get all-zero weights, and every "
                        "other row's weights must sum to 1.")
    return ("It equals torch.nn.functional.scaled_dot_product_attention, masks included, and a "
            "query with nothing to attend to gets zero weights, not NaN.")


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
        raise Incorrect("the shape is right but the values are scrambled: head i must hold "
                        "features i*d_head .. (i+1)*d_head - 1 of every position. Reshape to "
                        "(b, t, h, d_head) first, then swap the time and head axes.")
    return "Head i holds features i·d_head … (i+1)·d_head − 1 of every position."


q1 = Exercise(name="ch03.q1", title="Write attention(q, k, v, mask): scaled dot-product attention and its weights",
              var="attention", checker=_check_attention, notebook=_NB,
              hint_text="scores = q @ k.transpose(-2, -1) / sqrt(d_k); if mask is given, "
                        "`scores.masked_fill(~mask, float('-inf'))`; weights = "
                        "torch.nan_to_num(softmax over dim=-1); return weights @ v, weights.",
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

quiz = Quiz("ch03.quiz", _NB, where=(
    "Q1: section 1; Q2: section 2; Q3: section 3 and exercise 2; Q4: section 5; Q5: section 7; "
    "Q6: section 8's last part (what the model may read at test time)."),
    questions=[
    Choice("What does each row of softmax(QK^T / sqrt(d_k)) hold?",
           {"a": "How much one query position takes from each key position: non-negative weights "
                 "that sum to 1.",
            "b": "The values, sorted by similarity.",
            "c": "A probability distribution over the model's vocabulary."},
           "a",
           {"a": "Right: the output is the weighted average of the values with these weights.",
            "b": "The weights multiply V; nothing is sorted.",
            "c": "That is the language model's output layer, not attention's weights."}),
    Numeric("The entries of q and k are independent with mean 0 and variance 1, and d_k = 64. "
            "What is the standard deviation of q . k / sqrt(d_k)?",
            1.0, "Right: q . k has variance d_k = 64 (standard deviation 8); dividing by "
                 "sqrt(64) = 8 brings it to 1, so the softmax does not saturate.", tol=1e-6,
            traps={8.0: "8 is the standard deviation before the division by sqrt(d_k).",
                   64.0: "64 is the variance of q . k before scaling."}),
    Choice("In a next-item model, what does the causal mask forbid?",
           {"a": "Attending to padding tokens.",
            "b": "Position i attending to positions after i: otherwise the model would read the "
                 "item it is asked to predict.",
            "c": "Attending to position i itself."},
           "b",
           {"a": "That is the padding mask; the two are often combined.",
            "b": "Right: True where key j <= query i (exercise 2).",
            "c": "A position may attend to itself; the mask is lower-triangular including the "
                 "diagonal."}),
    Choice("Why must positions be added to a Transformer's input?",
           {"a": "To make the model larger.",
            "b": "Without a mask, attention is permutation-equivariant: permute the inputs and the "
                 "outputs permute the same way. A causal mask lets one layer see which items came "
                 "before a position, but not in what order.",
            "c": "Because the softmax needs positive inputs."},
           "b",
           {"a": "Position vectors add few parameters; that is not their purpose.",
            "b": "Right: positions say the order explicitly — sinusoids (the original "
                 "Transformer) or learned vectors (BERT, SASRec).",
            "c": "The softmax accepts any real scores."}),
    Choice("Why can PyTorch's fused scaled_dot_product_attention beat the from-scratch one on long "
           "sequences?",
           {"a": "It uses a different formula that approximates attention.",
            "b": "Ours materialises the t x t weight matrix; the fused kernel streams it through "
                 "fast memory in tiles, and t x t grows with t squared.",
            "c": "It runs in float16 on the CPU."},
           "b",
           {"a": "Same mathematics, exact up to float rounding; the chapter checks it.",
            "b": "Right: write it from scratch to understand it, call the fused one to use it.",
            "c": "Precision is not the reason: both run in the same dtype here."}),
    Choice("The same trained SASRec scores markedly higher when it may read the validation item at "
           "test time. What is the lesson?",
           {"a": "Always let the model read the validation item.",
            "b": "A sequence model's number depends on what it may read at test time; a result "
                 "that does not say so cannot be compared.",
            "c": "The validation item leaks the test item."},
           "b",
           {"a": "Either protocol is legitimate; what matters is stating which one.",
            "b": "Right: RecBole's LS protocol reads it, the course's default did not.",
            "c": "Reading an earlier, known interaction is not a leak of the test item."}),
])



def _untrained_loss(init_std: float, n_items: int = 1682, seed: int = 0) -> float:
    """The cross-entropy of an untrained ``A.SASRec``'s next-item scores on random histories,
    its (tied) item embeddings started at N(0, init_std²): 03 section 8's exercise 4 cell."""
    torch.manual_seed(seed)
    model = A.SASRec(n_items, max_len=50).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.item_emb.weight, std=init_std)
        model.item_emb.weight[0] = 0
    seq = torch.randint(1, n_items + 1, (64, 51), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model.logits(model(seq[:, :-1]))
    return F.cross_entropy(logits.reshape(-1, n_items), seq[:, 1:].reshape(-1) - 1).item()


def _init_losses(stds=(0.02, 1.0)) -> tuple[float, ...]:
    return tuple(_untrained_loss(s) for s in stds)


q4 = Vary(name="ch03.q4", notebook=_NB, var="vary_init",
          title="Vary and explain: item embeddings started at N(0, 1)",
          measure=_init_losses, quantity="the untrained SASRec's cross-entropy",
          expect="up",
          why=Choice(
              "What explains how the untrained SASRec's cross-entropy changed when its item "
              "embeddings started at N(0, 1) instead of N(0, 0.02²)?",
              {"a": "Larger embeddings set the items further apart, so even an untrained model "
                    "tells the next item from the others better and gives it more probability.",
               "b": "The attention softmax saturates: with larger inputs each position copies a "
                    "single earlier item, and the predictions get worse.",
               "c": "The tied output layer scores each item by a dot product of the final state "
                    "(layer-normalised, entries of size about 1) with the item's embedding: with "
                    "64 entries of standard deviation 1 the logits spread with a standard "
                    "deviation near √64 = 8, so the softmax is confidently wrong about a random "
                    "next item.",
               "d": "Larger logits make the softmax's probabilities closer to uniform, the best "
                    "guess when nothing is learned, so the loss comes down towards log(items)."},
              "c",
              {"a": "Nothing is learned yet and the next items are random: spreading the items "
                    "apart makes the scores larger, not more right. The printed loss rose.",
               "b": "Each block normalises its input first (ln_1, ln_2), and c_attn's weights "
                    "still start at N(0, 0.02²): the attention scores stay small. The embeddings' "
                    "scale reaches the loss where they are used without normalisation — the "
                    "output layer.",
               "c": "Right: the cell printed the logits' standard deviation, about 8. That is "
                    "why A.SASRec starts at GPT-2's 0.02: its logits start near 0 and its loss "
                    "near log(items), a uniform guess's.",
               "d": "It is the other way round: the softmax of larger scores is further from "
                    "uniform — a few items take most of the probability. Logits near 0 give the "
                    "uniform guess's log(items); that is what 0.02 gives."}),
          hint_text="Set `INIT_STD = 1.0`, run that cell and the next one, copy the loss it "
                    "prints into `value`, and compare it with the 0.02 line.",
          nudge=("The item embeddings are used twice: at the input, where a LayerNorm follows, "
                 "and at the output, where each item's score is a dot product with them. Look "
                 "at the printed logits' standard deviation."))

progress = progress_of(__name__)
