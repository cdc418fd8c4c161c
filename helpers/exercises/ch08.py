"""Exercises of chapter 08 (diversity, real time, privacy), each checked against an independent
reference: a brute-force re-computation of MMR's objective over every remaining candidate (08a)."""
from __future__ import annotations

import numpy as np

from . import Exercise, Incorrect, shape_of

_NB_A = "08a_diversity.ipynb"


def _brute_mmr(r, s, k, lam):
    """MMR from its definition: every step scores every remaining candidate from scratch."""
    rs = (r - r.min()) / (r.max() - r.min())
    chosen = [int(np.argmax(rs))]
    while len(chosen) < k:
        rest = [j for j in range(len(r)) if j not in chosen]
        score = [lam * rs[j] - (1 - lam) * max(s[j, c] for c in chosen) for j in rest]
        chosen.append(rest[int(np.argmax(score))])
    return chosen


def _check_mmr(fn) -> str:
    rng = np.random.default_rng(11)
    for n, k, lam, scale in [(30, 8, 0.7, 1.0), (25, 10, 0.3, 50.0), (20, 5, 1.0, 1.0),
                             (40, 10, 0.5, 0.01)]:
        v = rng.normal(size=(n, 6))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        s = v @ v.T
        r = rng.normal(size=n) * scale + 3.0
        want = _brute_mmr(r, s, k, lam)
        got = fn(r.copy(), s.copy(), k, lam)
        got = np.asarray(got)
        if got.shape != (k,):
            raise Incorrect(f"return the {k} chosen indices as a 1-D array, got shape "
                            f"{shape_of(got)}.")
        if not np.issubdtype(got.dtype, np.integer):
            raise Incorrect(f"return integer indices into the candidates, got {got.dtype}.")
        if got.tolist() != want:
            hint = ""
            unscaled = _brute_mmr_unscaled(r, s, k, lam)
            if got.tolist() == unscaled and unscaled != want:
                hint = (" That is MMR on the raw scores: min-max scale the relevance to [0, 1] "
                        "first, so that lam weighs comparable numbers.")
            elif len(set(got.tolist())) < k:
                hint = " An index repeats: never pick a chosen candidate again."
            elif got[0] != want[0]:
                hint = " The first item must be the most relevant one."
            raise Incorrect(f"{n} candidates, k={k}, lam={lam}: MMR picks {want}, you picked "
                            f"{got.tolist()}.{hint} Penalise each candidate by its *highest* "
                            "similarity to the items already chosen.")
    return "It picks exactly what MMR's definition picks on four cases (lam 1.0 to 0.3)."


def _brute_mmr_unscaled(r, s, k, lam):
    chosen = [int(np.argmax(r))]
    while len(chosen) < k:
        rest = [j for j in range(len(r)) if j not in chosen]
        score = [lam * r[j] - (1 - lam) * max(s[j, c] for c in chosen) for j in rest]
        chosen.append(rest[int(np.argmax(score))])
    return chosen


q1 = Exercise(name="ch08.q1", title="Write mmr(relevance, similarity, k, lam)", var="mmr",
              checker=_check_mmr, notebook=_NB_A,
              hint_text="Scale `r = (r - r.min()) / (r.max() - r.min())`; start with "
                        "`chosen = [argmax(r)]` and `closest = similarity[chosen[0]]`; then "
                        "k - 1 times: `gain = lam * r - (1 - lam) * closest`, set the chosen "
                        "ones to `-inf`, take the argmax, and update `closest = "
                        "np.maximum(closest, similarity[j])`.")


_NB_B = "08b_realtime.ipynb"


def _ridge_reference(Y, items, reg, alpha):
    """The user's implicit-ALS objective as a weighted ridge regression, solved by
    scikit-learn: every item is a sample, target 1 for the items met (weight 1 + alpha) and 0
    for the rest (weight 1), no intercept."""
    from sklearn.linear_model import Ridge

    p = np.zeros(len(Y))
    p[items] = 1.0
    c = 1.0 + alpha * p
    return Ridge(alpha=reg, fit_intercept=False, solver="cholesky", tol=1e-12).fit(
        Y, p, sample_weight=c).coef_


def _check_fold_in(fn) -> str:
    rng = np.random.default_rng(5)
    for n, k, m, reg, alpha in [(60, 8, 5, 0.05, 10.0), (200, 16, 1, 1.0, 40.0),
                                (40, 4, 12, 0.5, 0.0)]:
        Y = rng.normal(0, 0.3, size=(n, k))
        items = rng.choice(n, m, replace=False)
        want = _ridge_reference(Y, items, reg, alpha)
        got = np.asarray(fn(Y.copy(), items.copy(), reg, alpha), dtype=float)
        if got.shape != (k,):
            raise Incorrect(f"with {k} factors, return the user's factors as a ({k},) vector; got "
                            f"shape {shape_of(got)}.")
        if not np.allclose(got, want, atol=1e-6, rtol=1e-5):
            hint = ""
            ys = Y[items]
            plain = np.linalg.solve(Y.T @ Y + reg * np.eye(k), ys.sum(0))
            if np.allclose(got, plain, atol=1e-6):
                hint = (" That ignores the confidence: the items met weigh 1 + alpha, so add "
                        "alpha * Y_uᵀY_u to the matrix and scale the right side by 1 + alpha.")
            elif np.allclose(got, np.linalg.solve(ys.T @ ys + reg * np.eye(k), ys.sum(0)),
                             atol=1e-6):
                hint = (" That fits only the items met: every other item is a 0 with weight 1, "
                        "which is what YᵀY adds.")
            raise Incorrect(f"{n} items, {k} factors, {m} met, reg={reg}, alpha={alpha}: "
                            f"scikit-learn's weighted ridge gives {np.round(want[:3], 4)}..., "
                            f"you gave {np.round(got[:3], 4)}....{hint}")
    return ("It equals scikit-learn's Ridge with per-item weights (the same objective, solved "
            "independently) on three users.")


q2 = Exercise(name="ch08.q2", title="Write fold_in(Y, items, reg, alpha): one user's ALS solve",
              var="fold_in", checker=_check_fold_in, notebook=_NB_B,
              hint_text="`y = Y[items]`; `A = Y.T @ Y + reg * np.eye(k) + alpha * y.T @ y`; "
                        "`b = (1 + alpha) * y.sum(axis=0)`; return `np.linalg.solve(A, b)`.")
