"""Uncertainty on every number: a bootstrap interval for a mean (:func:`bootstrap_ci`), for a
paired difference of two models on the same users (:func:`paired_bootstrap`), a paired
permutation test (:func:`permutation_test`), Holm's adjustment for many comparisons
(:func:`holm`), and intervals for pooled ratios (:func:`ratio_ci`, :func:`paired_ratio_diff`).

    lo, hi = stats.bootstrap_ci(per_user["ndcg@10"])          # one model's mean
    stats.paired_bootstrap(a["ndcg@10"], b["ndcg@10"])      # {"diff", "lo", "hi"}

>>> holm([0.01, 0.04, 0.03]).round(2).tolist()     # three comparisons at once
[0.03, 0.06, 0.06]
>>> lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0], n_boot=500)
>>> lo < 2.5 < hi
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.core.checks import (
    DataError,
    ParameterError,
    require_count,
    require_level,
    require_values,
)

__all__ = ["bootstrap_ci", "paired_bootstrap", "permutation_test", "holm", "ratio_ci",
           "paired_ratio_diff"]


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``values`` (one number per test pair):
    resample the pairs with replacement ``n_boot`` times and take the middle ``level`` of the
    means. NaN is refused: pass only the pairs a metric applies to."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise DataError("no values to bootstrap")
    if not np.isfinite(x).all():
        raise DataError("values contain NaN or inf; pass only the pairs the metric applies to")
    require_count("n_boot", n_boot)
    if not 0 < level < 1:
        raise ParameterError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, 256):          # blocks keep memory at 256 x n
        k = min(256, n_boot - s)
        means[s:s + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _pair(a, b, what=("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Two paired samples: Series are aligned on their index (both must hold the same users);
    arrays must have the same length."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if a.index.has_duplicates or b.index.has_duplicates:
            raise DataError("the per-user values repeat a user; one value per user, please.")
        if not a.index.sort_values().equals(b.index.sort_values()):
            only = a.index.symmetric_difference(b.index)
            raise DataError(f"{what[0]} and {what[1]} are not scored on the same users "
                            f"({len(only)} differ, e.g. {list(only[:3])}); a paired test needs "
                            "both models on the same test users.")
        b = b.reindex(a.index)
    x, y = require_values(a, what[0]), require_values(b, what[1])
    if len(x) != len(y):
        raise DataError(f"{what[0]} has {len(x)} values and {what[1]} has {len(y)}: a paired "
                        "test needs one value of each per user, in the same order.")
    return x, y


def paired_bootstrap(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean difference ``a - b`` of paired values (one per user) with a percentile bootstrap
    interval: resample *users* with replacement, so both models keep the same users in each
    resample. Returns ``{"diff", "lo", "hi"}``.

    Resampling the users, not the two models separately, is what makes the test paired: the
    variation between users (some are easy for every model) cancels out of the difference.
    """
    x, y = _pair(a, b)
    require_count("n_boot", n_boot)
    require_level(level)
    d = x - y
    lo, hi = bootstrap_ci(d, n_boot=n_boot, level=level, seed=seed)   # of the differences
    return {"diff": float(d.mean()), "lo": lo, "hi": hi}


def permutation_test(a, b, n_perm: int = 10_000, seed: int = 0,
                     alternative: str = "two-sided") -> float:
    """p-value of a paired permutation (sign-flip) test of mean(a - b) = 0.

    Under the null hypothesis the two models are exchangeable for each user, so each user's
    difference is as likely to be ``+d`` as ``-d``. Flip each sign at random ``n_perm`` times; the
    p-value is the share of flips whose mean is at least as extreme as the observed one (the
    observed assignment counted in, so p is never 0). ``alternative``: "two-sided", "greater"
    (a > b) or "less".
    """
    x, y = _pair(a, b)
    require_count("n_perm", n_perm)
    if alternative not in ("two-sided", "greater", "less"):
        raise DataError(f"alternative must be 'two-sided', 'greater' or 'less', got "
                        f"{alternative!r}.")
    d = x - y
    observed = d.mean()
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for s in range(0, n_perm, 256):
        m = min(256, n_perm - s)
        signs = rng.integers(0, 2, size=(m, d.size)) * 2 - 1
        null[s:s + m] = (signs * d).mean(axis=1)
    eps = 1e-12 * max(1.0, abs(observed))         # equal up to float noise counts as extreme
    if alternative == "greater":
        extreme = null >= observed - eps
    elif alternative == "less":
        extreme = null <= observed + eps
    else:
        extreme = np.abs(null) >= abs(observed) - eps
    return float((extreme.sum() + 1) / (n_perm + 1))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` (one per comparison): the adjusted p of the
    r-th smallest is ``max over j <= r of min(1, (m - j + 1) p_(j))``. Rejecting where the
    adjusted p < alpha keeps the chance of *any* false discovery among the m tests below alpha."""
    p = require_values(p_values, "p_values")
    if ((p < 0) | (p > 1)).any():
        raise DataError("p-values must lie in [0, 1].")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def ratio_ci(numerators, denominators, n_boot: int = 2000, level: float = 0.95,
             seed: int = 0) -> tuple[float, float, float]:
    """A pooled ratio ``sum(num) / sum(den)`` (e.g. correct claims / claims over all reasons)
    and its percentile bootstrap interval over the units (reasons): ``(ratio, lo, hi)``.
    A resample whose denominators sum to 0 is drawn again."""
    num, den = _pair(numerators, denominators, ("numerators", "denominators"))
    require_count("n_boot", n_boot)
    require_level(level)
    if (den < 0).any() or den.sum() <= 0:
        raise DataError("denominators must be >= 0 with a positive sum (e.g. claims per reason).")
    rng = np.random.default_rng(seed)
    ratios = []
    while len(ratios) < n_boot:
        idx = rng.integers(0, len(num), size=(min(256, n_boot - len(ratios)), len(num)))
        n, d = num[idx].sum(1), den[idx].sum(1)
        ratios.extend((n[d > 0] / d[d > 0]).tolist())
    lo, hi = np.quantile(ratios[:n_boot], [(1 - level) / 2, (1 + level) / 2])
    return float(num.sum() / den.sum()), float(lo), float(hi)


def paired_ratio_diff(num_a, den_a, num_b, den_b, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Two pooled ratios on the same units (e.g. claim precision of two generators on the same
    test pairs): ``diff = sum(num_a)/sum(den_a) - sum(num_b)/sum(den_b)``, a bootstrap interval
    resampling the units jointly, and a permutation p-value (each unit's two systems swapped at
    random). Returns ``{"a", "b", "diff", "lo", "hi", "p"}``."""
    na, da = _pair(num_a, den_a, ("num_a", "den_a"))
    nb, db = _pair(num_b, den_b, ("num_b", "den_b"))
    if len(na) != len(nb):
        raise DataError(f"the two systems are scored on {len(na)} and {len(nb)} units; a paired "
                        "comparison needs the same units.")
    require_count("n_boot", n_boot)
    require_level(level)
    if da.sum() <= 0 or db.sum() <= 0 or (da < 0).any() or (db < 0).any():
        raise DataError("denominators must be >= 0 with a positive sum for both systems.")
    ra, rb = na.sum() / da.sum(), nb.sum() / db.sum()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(na), size=(n_boot, len(na)))
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = na[idx].sum(1) / da[idx].sum(1) - nb[idx].sum(1) / db[idx].sum(1)
    diffs = diffs[np.isfinite(diffs)]
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    swap = rng.integers(0, 2, size=(n_boot, len(na))).astype(bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        null = (np.where(swap, nb, na).sum(1) / np.where(swap, db, da).sum(1)
                - np.where(swap, na, nb).sum(1) / np.where(swap, da, db).sum(1))
    null = null[np.isfinite(null)]
    p = (np.sum(np.abs(null) >= abs(ra - rb) - 1e-12) + 1) / (len(null) + 1)
    return {"a": float(ra), "b": float(rb), "diff": float(ra - rb), "lo": float(lo),
            "hi": float(hi), "p": float(p)}
