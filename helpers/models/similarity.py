"""Vector similarity and top-k retrieval, the building blocks of every "more like this".

Chapter 00 writes both as exercises; chapter 02 (item-kNN) and chapter 04 (interest models)
use them on item embeddings.
"""
from __future__ import annotations

import torch

from helpers.core.checks import DataError, ParameterError

__all__ = ["cosine_similarity", "top_k"]


def _as_matrix(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        f"use torch.as_tensor({name}).")
    if x.numel() == 0:
        raise DataError(f"{name} is empty (shape {tuple(x.shape)}); give at least one vector.")
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise DataError(f"{name} must have shape (n, d) or (d,), got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}; call {name}.float().")
    if not torch.isfinite(x).all():
        raise DataError(f"{name} contains NaN or inf; check the encoder that produced it.")
    return x


def cosine_similarity(a: torch.Tensor, b: torch.Tensor | None = None,
                      eps: float = 1e-8) -> torch.Tensor:
    """Pairwise cosine similarity ``S[i, j] = a_i·b_j / (‖a_i‖ ‖b_j‖)``.

    Args:
        a: ``(n, d)`` (or ``(d,)``, treated as one row).
        b: ``(m, d)``; ``None`` means ``a`` itself.
        eps: guards rows of zero length (their similarities are 0).
    Returns:
        ``(n, m)`` tensor with entries in [-1, 1].

    >>> cosine_similarity(torch.tensor([[1., 0.]]), torch.tensor([[1., 1.], [0., 2.]])).round(decimals=3)
    tensor([[0.7070, 0.0000]])
    """
    a = _as_matrix(a, "a")
    b = a if b is None else _as_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"a and b must have the same width d, got {a.shape[1]} and "
                        f"{b.shape[1]}: were they made by the same encoder?")
    if a.device != b.device:
        raise DataError(f"a is on {a.device} and b on {b.device}; move both to one device.")
    a_n = a / a.norm(dim=1, keepdim=True).clamp(min=eps)
    b_n = b / b.norm(dim=1, keepdim=True).clamp(min=eps)
    return a_n @ b_n.T


def top_k(scores: torch.Tensor, k: int,
          exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest scores of each row, best first.

    Args:
        scores: ``(n, m)`` (or ``(m,)``) scores, higher is better.
        k: how many to return, ``1 <= k <= m``.
        exclude: optional boolean mask shaped like ``scores``; ``True`` entries are never
            returned (e.g. items the user already bought). Each row must keep ``k`` entries.
    Returns:
        ``(values, indices)``, each ``(n, k)`` (or ``(k,)`` for 1-D input).
    """
    if not isinstance(scores, torch.Tensor) or scores.dim() not in (1, 2):
        raise DataError("scores must be a 1-D or 2-D torch.Tensor, got "
                        f"{type(scores).__name__} {tuple(getattr(scores, 'shape', ()))}")
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a float tensor, got {scores.dtype}; call scores.float().")
    if torch.isnan(scores).any():
        raise DataError(f"{int(torch.isnan(scores).sum())} scores are NaN: an embedding or model "
                        "produced NaN. Fix it first; NaN cannot be ranked.")
    m = scores.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= m:
        raise ParameterError(f"k must be an integer between 1 and the number of candidates ({m}), "
                             f"got {k!r}.")
    if exclude is not None:
        if exclude.shape != scores.shape or exclude.dtype != torch.bool:
            raise DataError(f"exclude must be a bool tensor of shape {tuple(scores.shape)}, got "
                            f"{exclude.dtype} {tuple(exclude.shape)}.")
        left = (~exclude).sum(-1)
        if (left < k).any():
            raise ParameterError(f"k={k} but some rows have only {int(left.min())} candidates left "
                                 "after exclusion; lower k.")
        scores = scores.masked_fill(exclude, float("-inf"))
    return torch.topk(scores, k, dim=-1, largest=True, sorted=True)
