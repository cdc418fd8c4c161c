"""Judges of reasons, measured against the truth (chapter 07, section 7): how often a judge's
verdicts agree with the truth (:func:`agreement`, with Cohen's κ from :func:`cohen_kappa` and
percentile-bootstrap intervals over the judged reasons), and whether a pairwise judge's choice
follows the *order* in which the two reasons are shown (:func:`position_flips`).

    judging.agreement(truthful, p_yes > 0.5)        # agreement, kappa, their 95 % intervals
    judging.position_flips(p_a, p_a_swapped)        # share of pairs whose choice follows the order

>>> cohen_kappa([1, 1, 0, 0], [1, 1, 0, 1])                      # p_o = 0.75, p_e = 0.5
0.5
>>> cohen_kappa([1, 1, 1, 0], [1, 1, 1, 1])                      # a constant judge: chance
0.0
>>> position_flips([0.9, 0.8, 0.3], [0.7, 0.6, 0.6])             # same position twice: flips
0.6666666666666666
"""
from __future__ import annotations

import numpy as np

from helpers.core.checks import DataError, require_count, require_level

__all__ = ["cohen_kappa", "agreement", "position_flips"]


def _binary(x, what: str) -> np.ndarray:
    """A 1-D array of 0/1 (bools, 0/1 numbers); anything else is a DataError."""
    if isinstance(x, str):
        raise DataError(f"{what} must be a sequence of True/False verdicts, got a string.")
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0:
        raise DataError(f"{what} must be a non-empty 1-D sequence of True/False verdicts, got "
                        f"shape {a.shape}.")
    if a.dtype == bool:
        return a.astype(np.int8)
    if not np.issubdtype(a.dtype, np.number) or not np.isin(a, (0, 1)).all():
        raise DataError(f"{what} must hold only True/False (or 0/1); threshold a probability "
                        "first (p > 0.5).")
    return a.astype(np.int8)


def _pair(truth, verdict) -> tuple[np.ndarray, np.ndarray]:
    t, v = _binary(truth, "truth"), _binary(verdict, "verdict")
    if len(t) != len(v):
        raise DataError(f"{len(t)} truths for {len(v)} verdicts: one verdict per judged reason.")
    return t, v


def _kappa_rows(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """κ of each row of two (b, n) 0/1 arrays; NaN where chance agreement is 1 (both sides
    constant and equal: κ is 0/0)."""
    p_o = (t == v).mean(axis=-1)
    pt, pv = t.mean(axis=-1), v.mean(axis=-1)
    p_e = pt * pv + (1 - pt) * (1 - pv)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p_e < 1, (p_o - p_e) / (1 - p_e), np.nan)


def cohen_kappa(truth, verdict) -> float:
    """Cohen's κ of two binary raters, ``(p_o - p_e) / (1 - p_e)``: ``p_o`` the share of items
    on which they agree, ``p_e`` the share expected by chance from each rater's own rate of
    True. 0 = no better than chance (a judge that always says the same thing scores 0, however
    often it agrees), 1 = perfect. NaN when both raters are constant and equal (0/0), as in
    ``sklearn.metrics.cohen_kappa_score``."""
    t, v = _pair(truth, verdict)
    return float(_kappa_rows(t[None], v[None])[0])


def agreement(truth, verdict, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
              ) -> dict[str, float]:
    """A judge's binary ``verdict`` per reason against the ``truth``: ``{"says True", "truly
    True", "agreement", "agreement lo", "agreement hi", "kappa", "kappa lo", "kappa hi"}``, the
    intervals by the percentile bootstrap over the judged reasons (resamples where κ is 0/0
    are left out)."""
    t, v = _pair(truth, verdict)
    require_count("n_boot", n_boot)
    require_level(level)
    idx = np.random.default_rng(seed).integers(0, len(t), size=(n_boot, len(t)))
    agree = (t[idx] == v[idx]).mean(axis=1)
    kappa = _kappa_rows(t[idx], v[idx])
    q = [(1 - level) / 2, (1 + level) / 2]
    a_lo, a_hi = np.quantile(agree, q)
    k_lo, k_hi = np.nanquantile(kappa, q) if np.isfinite(kappa).any() else (np.nan, np.nan)
    return {"says True": float(v.mean()), "truly True": float(t.mean()),
            "agreement": float((t == v).mean()), "agreement lo": float(a_lo),
            "agreement hi": float(a_hi), "kappa": cohen_kappa(t, v), "kappa lo": float(k_lo),
            "kappa hi": float(k_hi)}


def position_flips(p_a_first, p_a_second) -> float:
    """The share of pairs whose verdict follows the order: each pair (X, Y) is shown as "A = X,
    B = Y" (``p_a_first``: the judge's P(A)) and again swapped (``p_a_second``). A judge that
    reads the reasons picks X both times, i.e. A once and B once; when it picks the same
    *position* both times, its choice of reason flipped with the order. 0 = never, 1 = always
    (a judge that always answers "A")."""
    first = np.asarray(p_a_first, dtype=np.float64)
    second = np.asarray(p_a_second, dtype=np.float64)
    if first.ndim != 1 or first.shape != second.shape or first.size == 0:
        raise DataError(f"p_a_first and p_a_second must be 1-D, of one length, non-empty; got "
                        f"shapes {first.shape} and {second.shape}: one P(A) per pair and order.")
    if not (np.isfinite(first).all() and np.isfinite(second).all()) or \
            ((first < 0) | (first > 1) | (second < 0) | (second > 1)).any():
        raise DataError("p_a_first and p_a_second must be probabilities in [0, 1].")
    return float(((first > 0.5) == (second > 0.5)).mean())
