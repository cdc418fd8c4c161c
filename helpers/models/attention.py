"""Self-attention from scratch, the way chapter 03 builds it: one function, then modules that
read top to bottom (a config dataclass, one class per block, then the model).

    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(t))
    block = TransformerBlock(AttentionConfig(d_model=64, n_head=2))

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention`` with a bool
mask): ``True`` means *may attend*. Shapes are written ``(batch, head, time, dim)``.

>>> causal_mask(3).int().tolist()                   # query i may read keys 0..i
[[1, 0, 0], [1, 1, 0], [1, 1, 1]]
>>> q = torch.ones(1, 3, 2)                         # three identical positions
>>> out, weights = scaled_dot_product_attention(q, q, q, mask=causal_mask(3))
>>> [round(w, 3) for w in weights[0, 2].tolist()]   # the last one reads all three equally
[0.333, 0.333, 0.333]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from helpers.core.checks import DataError, ParameterError, require_count

__all__ = ["scaled_dot_product_attention", "causal_mask", "padding_mask",
           "sinusoidal_positions", "AttentionConfig", "MultiHeadAttention", "MLP",
           "TransformerBlock", "init_small_", "ItemSequenceEncoder", "SASRec"]


def _check_qkv(q, k, v, mask):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise DataError(f"{name} must have at least 2 dims (..., time, dim), got "
                            f"{tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {t.dtype}: attention mixes real "
                            f"vectors. Embed token ids first, or call {name}.float().")
    if q.shape[-1] != k.shape[-1]:
        raise DataError(f"q and k must share their last dim (d_k): {q.shape[-1]} vs "
                        f"{k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise DataError(f"k and v must have the same number of positions: {k.shape[-2]} vs "
                        f"{v.shape[-2]}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise DataError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = may attend), got {mask.dtype}")
        want = q.shape[:-1] + (k.shape[-2],)
        try:
            torch.broadcast_shapes(mask.shape, want)
        except RuntimeError:
            raise DataError(f"mask of shape {tuple(mask.shape)} does not broadcast to the "
                            f"attention scores' shape {tuple(want)} (..., t_q, t_k); build it with "
                            "causal_mask(t) and/or padding_mask(is_real).") from None


def _attention(q, k, v, mask=None):
    """Chapter 03's exercise 1, line for line (tests/test_mirror.py keeps them the same)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))   # nothing to attend to: 0, not NaN
    return weights @ v, weights


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q kᵀ / √d_k) v``, returning ``(output, weights)``: chapter 03's exercise 1
    with its inputs checked.

    Args:
        q: ``(..., t_q, d_k)``; k: ``(..., t_k, d_k)``; v: ``(..., t_k, d_v)``, one float dtype,
            one device.
        mask: bool, broadcastable to ``(..., t_q, t_k)``; ``False`` entries get no weight.
            A query row with nothing to attend to gets all-zero weights (not NaN).
    Returns:
        output ``(..., t_q, d_v)`` and weights ``(..., t_q, t_k)`` (rows sum to 1, or to 0 where
        the mask leaves nothing).
    Raises:
        TypeError: a non-tensor, a non-float tensor, mixed dtypes, a non-bool mask.
        DataError: shapes that do not fit together, tensors on different devices.
    """
    _check_qkv(q, k, v, mask)
    return _attention(q, k, v, mask)


def causal_mask(t: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(t, t)`` bool: position i may attend to positions 0..i (the past and itself)."""
    require_count("t", t)
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()


def padding_mask(is_real: torch.Tensor) -> torch.Tensor:
    """From ``(batch, t)`` bool (True = real token) to a ``(batch, 1, 1, t)`` key mask."""
    if is_real.dtype != torch.bool or is_real.dim() != 2:
        raise DataError("is_real must be a (batch, time) bool tensor")
    return is_real[:, None, None, :]


def sinusoidal_positions(t: int, d: int) -> torch.Tensor:
    """The Transformer's fixed encodings: ``PE[p, 2i] = sin(p / 10000^(2i/d))``,
    ``PE[p, 2i+1] = cos(...)``. Shape ``(t, d)``; ``d`` must be even."""
    require_count("t", t)
    require_count("d", d)
    if d % 2:
        raise ParameterError(f"d must be even, got {d}")
    pos = torch.arange(t, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32) / d)
    pe = torch.zeros(t, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


@dataclass
class AttentionConfig:
    d_model: int = 64      # n_embd
    n_head: int = 2
    dropout: float = 0.0
    mlp_ratio: int = 4

    def __post_init__(self):
        for name in ("d_model", "n_head", "mlp_ratio"):
            require_count(f"AttentionConfig.{name}", getattr(self, name))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise ParameterError(f"AttentionConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        if self.d_model % self.n_head:
            raise ParameterError(f"d_model ({self.d_model}) must be divisible by n_head "
                             f"({self.n_head})")


class MultiHeadAttention(nn.Module):
    """``n_head`` attentions of width ``d_model / n_head`` side by side.

    ``c_attn`` projects x to q, k, v in one matrix (as torch's ``in_proj_weight``), heads are
    split, attended, merged, and ``c_proj`` mixes them.
    """

    def __init__(self, cfg: AttentionConfig):
        super().__init__()
        self.n_head, self.d_head = cfg.n_head, cfg.d_model // cfg.n_head
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.last_weights = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:     # (b, t, d) -> (b, h, t, d_head)
        """``(batch, time, d_model)`` -> ``(batch, n_head, time, d_head)``: head h holds features
        ``h*d_head`` to ``(h+1)*d_head - 1`` (chapter 03's exercise 3).
        """
        b, t, _ = x.shape
        return x.view(b, t, self.n_head, self.d_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:     # (b, h, t, d_head) -> (b, t, d)
        """The inverse of :meth:`split_heads`: ``(batch, n_head, time, d_head)`` -> ``(batch, time,
        d_model)``.
        """
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.n_head * self.d_head:
            raise DataError(f"x must be (batch, time, {self.n_head * self.d_head}), got "
                            f"{tuple(x.shape)}")
        q, k, v = self.c_attn(x).split(self.n_head * self.d_head, dim=-1)
        out, w = scaled_dot_product_attention(self.split_heads(q), self.split_heads(k),
                                              self.split_heads(v), mask)
        self.last_weights = w.detach()
        return self.dropout(self.c_proj(self.merge_heads(out)))


class MLP(nn.Module):
    def __init__(self, cfg: AttentionConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.c_proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: AttentionConfig):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.d_model), MultiHeadAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.d_model), MLP(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


def init_small_(module: nn.Module) -> None:
    """GPT-2's initialisation, for ``model.apply``: Linear and Embedding weights N(0, 0.02),
    biases 0, an embedding's padding row 0. torch's default N(0, 1) item embeddings would make
    a tied output layer start with logits of std ~8 and a loss far above log(n_items)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()


class ItemSequenceEncoder(nn.Module):
    """A Transformer over item ids, shared by SASRec and BERT4Rec: item and learned position
    embeddings, dropout, ``n_layer`` blocks, a final LayerNorm, GPT-2's initialisation.

    Items are ids ``1..n_items``; 0 pads (on the left); with ``mask_token=True`` the id
    ``n_items + 1`` is BERT4Rec's [MASK]. ``causal=True`` lets position ``t`` read positions
    ``0..t`` only (SASRec predicts the next item); ``False`` lets every position read every
    real one (BERT4Rec fills in masked items). :meth:`logits` scores the items against the
    input embeddings (tied): column ``j`` is item id ``j + 1``.
    """

    def __init__(self, n_items: int, max_len: int = 50, cfg: AttentionConfig | None = None,
                 n_layer: int = 2, *, causal: bool, mask_token: bool = False):
        super().__init__()
        cfg = cfg or AttentionConfig(d_model=64, n_head=2, dropout=0.2)
        name = type(self).__name__
        for what, value in (("n_items", n_items), ("max_len", max_len), ("n_layer", n_layer)):
            require_count(f"{name} {what}", value)
        self.n_items, self.max_len, self.causal = n_items, max_len, causal
        self.mask_id = n_items + 1 if mask_token else None
        self.item_emb = nn.Embedding(n_items + 1 + int(mask_token), cfg.d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(init_small_)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``seq`` (batch, t) item ids, left-padded with 0 -> hidden states (batch, t, d).

        Ids must lie in ``0..n_items`` (``n_items + 1`` is [MASK]); they are not range-checked
        here, on every step (that would wait for the GPU each time): the recommender that feeds
        the model encodes them through its item map, where the data enters."""
        if not isinstance(seq, torch.Tensor) or seq.dim() != 2 or seq.shape[1] > self.max_len:
            raise DataError(f"seq must be a (batch, t <= {self.max_len}) tensor, got "
                            f"{tuple(getattr(seq, 'shape', ()))}")
        if seq.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"seq must hold integer item ids (int64), got {seq.dtype}.")
        t = seq.shape[1]
        x = self.drop(self.item_emb(seq) + self.pos_emb(torch.arange(t, device=seq.device)))
        mask = padding_mask(seq > 0)
        if self.causal:
            mask = causal_mask(t, seq.device)[None, None] & mask
        mask = mask | torch.eye(t, dtype=torch.bool, device=seq.device)  # pads see themselves
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of the real items (column ``j`` is item id ``j + 1``)."""
        return hidden @ self.item_emb.weight[1:self.n_items + 1].T


class SASRec(ItemSequenceEncoder):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018), from the blocks above.

    Position ``t`` reads items ``0..t`` through a causal mask and predicts item ``t+1`` by a
    dot product with every item embedding (shared with the input embeddings), trained with
    full-softmax cross-entropy.
    """

    def __init__(self, n_items: int, max_len: int = 50, cfg: AttentionConfig | None = None,
                 n_layer: int = 2):
        super().__init__(n_items, max_len, cfg, n_layer, causal=True)
