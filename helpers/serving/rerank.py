"""Re-ranking for diversity and calibration (chapter 08): take a model's top candidates and
choose k of them greedily, trading relevance against what the list as a whole looks like.

    top = rerank.rerank(model, users, k=10, method="mmr", lam=0.7, n_candidates=100)

>>> similar = np.array([[1, .99, 0], [.99, 1, 0], [0, 0, 1.]])   # items 0 and 1 are near twins
>>> mmr([0.9, 0.8, 0.1], similar, k=2, lam=0.5).tolist()        # the twin gives way
[0, 2]

Three methods, each with one knob, each a greedy loop that reads top to bottom:

* :func:`mmr` — maximal marginal relevance (Carbonell & Goldstein, 1998): the next item is the one
  with the best ``lam * relevance - (1 - lam) * (its highest similarity to an item already
  chosen)``. ``lam = 1`` is the model's own order.
* :func:`dpp_greedy` — a determinantal point process (Chen, Zhang & Zhou, 2018): the list whose
  kernel ``L = diag(q) S diag(q)`` (``q = exp(alpha * relevance)``, S the items' cosine
  similarities) has the largest determinant, built one item at a time with an incremental
  Cholesky factor (O(k^2 n) for the whole list). ``theta`` in [0, 1) sets
  ``alpha = theta / (2 (1 - theta))``: near 1 relevance dominates, at 0 only diversity counts.
* :func:`calibrated` — calibration (Steck, 2018): maximise ``(1 - lam) * sum(relevance) -
  lam * KL(p || q~)``, p the user's category mix, q~ the list's (smoothed as in
  ``evaluation.calibration_kl``). ``lam = 0`` is the model's own order.

Relevance is whatever the model scores (higher = better); MMR and calibration min-max scale it
per user to [0, 1] so that ``lam`` means the same for every model.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from helpers.core.checks import DataError, require_columns, require_number
from helpers.evaluation import offline as E
from helpers.evaluation.offline import category_mixes
from helpers.metrics import stats

__all__ = ["mmr", "dpp_greedy", "calibrated", "rerank", "FRONTIER_GRID", "frontier", "DIFFERENT",
           "DiversityGuard", "usual_share"]


def _check(relevance, k: int) -> np.ndarray:
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise DataError(f"relevance must be a non-empty 1-D array (one score per candidate), got "
                        f"shape {r.shape}.")
    if not np.isfinite(r).all():
        raise DataError("relevance holds NaN or inf: drop excluded candidates instead of scoring "
                        "them -inf.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}.")
    if k > r.size:
        raise DataError(f"k={k} but only {r.size} candidates: pass more candidates or a smaller k.")
    return r


def _similarity(similarity, n: int) -> np.ndarray:
    s = np.asarray(similarity, dtype=np.float64)
    if s.shape != (n, n):
        raise DataError(f"similarity must be ({n}, {n}) for {n} candidates, got {s.shape}.")
    if not np.isfinite(s).all():
        raise DataError("similarity holds NaN or inf.")
    return s


def _scaled(r: np.ndarray) -> np.ndarray:
    span = r.max() - r.min()
    return (r - r.min()) / span if span > 0 else np.ones_like(r)


def mmr(relevance, similarity, k: int, lam: float = 0.7) -> np.ndarray:
    """Indices of ``k`` candidates chosen by maximal marginal relevance, in order.

    ``relevance``: (n,) scores; ``similarity``: (n, n) item-item similarities (e.g. cosine of
    their embeddings); ``lam`` in [0, 1]: 1 = relevance only, 0 = diversity only (after the
    first, most relevant item). The inputs are checked here; the selection itself is
    :func:`_mmr`, chapter 08a's exercise line for line (``tests/test_mirror.py`` holds them
    equal)."""
    r = _check(relevance, k)
    lam = require_number("lam", lam, low=0.0, high=1.0)
    s = _similarity(similarity, r.size)
    return _mmr(r, s, k, lam)


def _mmr(relevance, similarity, k, lam=0.7):
    """Indices of k candidates chosen by maximal marginal relevance, in order."""
    r = np.asarray(relevance, dtype=float)
    r = (r - r.min()) / (r.max() - r.min()) if r.max() > r.min() else np.ones_like(r)
    s = np.asarray(similarity, dtype=float)
    chosen = [int(np.argmax(r))]
    closest = s[chosen[0]].copy()             # each candidate's highest similarity to the list
    for _ in range(k - 1):
        gain = lam * r - (1 - lam) * closest
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
        closest = np.maximum(closest, s[chosen[-1]])
    return np.array(chosen)


def dpp_greedy(relevance, vectors, k: int, theta: float = 0.7) -> np.ndarray:
    """Indices of ``k`` candidates chosen by greedy MAP inference of a DPP, in order (Chen et
    al., 2018, Algorithm 1). ``vectors``: (n, d) item embeddings (cosine similarities form the
    kernel); ``theta`` in [0, 1): the weight of relevance. A kernel of rank r cannot hold more
    than r items (with one-hot genres, two films of the same genres are the same vector): once
    every remaining candidate's gain is 0, the list is filled with the most relevant of them, so
    a slot is never left empty."""
    r = _check(relevance, k)
    theta = require_number("theta", theta, low=0.0, high=1.0, high_open=True)
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or len(v) != r.size or not np.isfinite(v).all():
        raise DataError(f"vectors must be a finite ({r.size}, d) array, one row per candidate; "
                        f"got shape {v.shape}.")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if (norms == 0).any():
        raise DataError("some candidate vectors are all zero: their similarity is undefined.")
    alpha = theta / (2 * (1 - theta))
    q = np.exp(alpha * (r - r.max()))             # shifted: the same kernel up to a constant
    b = (v / norms) * q[:, None]                  # L = b b^T = diag(q) S diag(q)
    gains = (b * b).sum(1)                        # d_i^2: the marginal gain of each candidate
    c = np.zeros((k, r.size))                     # incremental Cholesky rows
    chosen = []
    for t in range(k):
        j = int(np.argmax(np.where(np.isin(np.arange(r.size), chosen), -np.inf, gains)))
        if gains[j] <= 1e-12:                     # nothing independent left: relevance fills
            rest = [i for i in np.argsort(-r, kind="stable") if i not in chosen]
            return np.array(chosen + rest[:k - len(chosen)])
        chosen.append(j)
        e = (b @ b[j] - c[:t].T @ c[:t, j]) / np.sqrt(gains[j])
        c[t] = e
        gains = gains - e ** 2
    return np.array(chosen)


def calibrated(relevance, categories, p_user, k: int, lam: float = 0.5,
               alpha: float = 0.01) -> np.ndarray:
    """Indices of ``k`` candidates chosen greedily to maximise ``(1 - lam) * sum of relevance
    - lam * KL(p_user || q~(list))`` (Steck, 2018), in order. ``categories``: (n,) integer
    category of each candidate, in ``0..len(p_user) - 1``; ``p_user``: the user's category
    distribution."""
    r = _scaled(_check(relevance, k))
    lam = require_number("lam", lam, low=0.0, high=1.0)
    cats = np.asarray(categories)
    p = np.asarray(p_user, dtype=np.float64)
    if cats.shape != r.shape or not np.issubdtype(cats.dtype, np.integer) \
            or cats.min() < 0 or cats.max() >= len(p):
        raise DataError(f"categories must be ({r.size},) integers in 0..{len(p) - 1}.")
    if (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise DataError("p_user must be a distribution (>= 0, summing to 1).")
    alpha = require_number("alpha", alpha, low=0.0, high=1.0, high_open=True)
    on = p > 0
    counts = np.zeros(len(p))
    chosen, total = [], 0.0
    free = np.ones(r.size, dtype=bool)
    for t in range(1, k + 1):
        # the KL of the list after adding each candidate (one category count + 1)
        q = (counts[None, :] + np.eye(len(p))[cats]) / t
        q_t = (1 - alpha) * q + alpha * p[None, :]
        kl = (p[on][None, :] * np.log(p[on][None, :] / q_t[:, on])).sum(1)
        gain = np.where(free, (1 - lam) * (total + r) - lam * kl, -np.inf)
        j = int(np.argmax(gain))
        chosen.append(j)
        free[j] = False
        counts[cats[j]] += 1
        total += r[j]
    return np.array(chosen)


_KNOBS = {"mmr": "lam", "dpp": "theta", "calibrated": "lam"}
"""Each re-ranking method and the name of its one knob."""


def rerank(model, users, k: int = 10, method: str = "mmr", *, n_candidates: int = 100,
           item_vectors: pd.DataFrame | None = None, item_category: pd.Series | None = None,
           history: pd.DataFrame | None = None, col_user: str = "user_id",
           col_item: str = "item_id", **knob) -> pd.DataFrame:
    """Each user's top ``n_candidates`` from ``model.recommend`` re-ranked to ``k`` by
    ``method`` ("mmr", "dpp" or "calibrated"; its knob as a keyword: ``lam`` or ``theta``).
    MMR and DPP need ``item_vectors`` (a DataFrame indexed by item ID); calibration needs
    ``item_category`` (a Series indexed by item ID) and ``history`` (the user's training
    interactions). Returns (user, item, rank 1..k) rows, the same shape as ``recommend``."""
    if method not in _KNOBS:
        raise DataError(f"method must be 'mmr', 'dpp' or 'calibrated', got {method!r}.")
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < k:
        raise DataError(f"n_candidates must be an integer >= k ({k}), got {n_candidates!r}.")
    if method in ("mmr", "dpp"):
        if not isinstance(item_vectors, pd.DataFrame):
            raise DataError(f"{method} needs item_vectors: a DataFrame of item embeddings indexed "
                            "by item ID.")
        unit = item_vectors.to_numpy(np.float64)
        unit = pd.DataFrame(unit / np.linalg.norm(unit, axis=1, keepdims=True),
                            index=item_vectors.index)
    else:
        if not isinstance(item_category, pd.Series) or not isinstance(history, pd.DataFrame):
            raise DataError("calibration needs item_category (a Series indexed by item ID) and "
                            "history (the users' training interactions).")
        # the same p(c|u) chapter 07's calibration KL measures (each pair counted once)
        mix = category_mixes(history, item_category, col_user=col_user, col_item=col_item,
                             what="history")
        code = pd.Series(mix.columns.get_indexer(item_category), index=item_category.index)
    cand = model.recommend(users, k=n_candidates)
    rows = []
    for u, g in cand.groupby(col_user, sort=False):
        items = g[col_item].to_numpy()
        if len(items) < k:
            raise DataError(f"user {u} has only {len(items)} candidates left for k={k}.")
        rel = g["score"].to_numpy(np.float64)
        if method == "mmr":
            x = unit.loc[items].to_numpy()
            order = mmr(rel, x @ x.T, k, **knob)
        elif method == "dpp":
            order = dpp_greedy(rel, item_vectors.loc[items].to_numpy(), k, **knob)
        else:
            if u not in mix.index:
                raise DataError(f"user {u} has no history: calibration needs their category mix.")
            order = calibrated(rel, code.loc[items].to_numpy(), mix.loc[u].to_numpy(), k, **knob)
        rows.append(pd.DataFrame({col_user: u, col_item: items[order],
                                  "rank": np.arange(1, len(order) + 1)}))
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# The accuracy-diversity frontier: every method at every knob value, measured the same way
# ---------------------------------------------------------------------------------------------

FRONTIER_GRID = {"mmr": ("lam", (1.0, 0.9, 0.7, 0.5, 0.3)),
                 "dpp": ("theta", (0.99, 0.9, 0.7, 0.5, 0.3)),
                 "calibrated": ("lam", (0.0, 0.3, 0.6, 0.9, 0.99))}
"""Chapter 08's grid: each method from the model's own order (MMR at ``lam = 1``, calibration
at ``lam = 0``; the DPP at ``theta = 0.99`` nearly so) to strong re-ranking."""

def frontier(model, users, train: pd.DataFrame, test: pd.DataFrame, *,
             item_vectors: pd.DataFrame, item_category: pd.Series, grid: dict | None = None,
             k: int = 10, n_candidates: int = 100, n_boot: int = 1000, seed: int = 0,
             col_user: str = "user_id", col_item: str = "item_id") -> pd.DataFrame:
    """Re-rank ``users``' top ``n_candidates`` to ``k`` by every method of ``grid`` (method →
    ``(knob, values)``; default :data:`FRONTIER_GRID`) at every knob value, and measure each
    setting as chapter 08 does; ``users`` are exactly ``test``'s users (each scored once, a miss
    counted as 0). One row per setting, indexed by ``(method, knob)`` (e.g.
    ``("mmr", "lam=0.7")``), in the grid's order, with the columns

    * ``NDCG@k``, ``HR@k``: of ``test``'s held-out items (``evaluation.per_user_metrics``);
    * ``diff``, ``diff lo``, ``diff hi``: the mean NDCG@k change against the model's own top
      ``k`` (``model.recommend``) and its paired 95 % bootstrap interval over users;
    * ``ILD``: intra-list diversity on ``item_vectors``; ``coverage``: distinct items in all the
      lists over ``len(item_vectors)`` (so pass one row per catalogue item);
    * ``calibration KL``: against each user's mix in ``train`` by ``item_category``;
    * ``seconds``: the re-ranking's wall time (machine-dependent: do not record it).

    Example (chapter 08a runs it on EASE)::

        table = frontier(ease, users, train, test, item_vectors=emb, item_category=category)
    """
    from tqdm.auto import tqdm

    grid = FRONTIER_GRID if grid is None else grid
    if not isinstance(grid, dict) or not grid:
        raise DataError("grid must be a non-empty dict: method -> (knob, values), e.g. "
                        "{'mmr': ('lam', [1.0, 0.5])}.")
    for method, spec in grid.items():
        if method not in _KNOBS:
            raise DataError(f"unknown method {method!r} in grid; known: {list(_KNOBS)}.")
        if (not isinstance(spec, (tuple, list)) or len(spec) != 2
                or spec[0] != _KNOBS[method] or isinstance(spec[1], str)
                or not hasattr(spec[1], "__len__") or len(spec[1]) == 0):
            raise DataError(f"grid[{method!r}] must be ({_KNOBS[method]!r}, [values...]) with at "
                            f"least one value, got {spec!r}.")
    if not isinstance(item_vectors, pd.DataFrame) or not isinstance(item_category, pd.Series):
        raise DataError("item_vectors must be a DataFrame indexed by item ID (one row per "
                        "catalogue item) and item_category a Series indexed by item ID.")
    users = np.asarray(users)
    if users.ndim != 1 or len(users) == 0:
        raise DataError("users must be a non-empty 1-d list of user IDs.")
    if len(np.unique(users)) != len(users):
        raise DataError("users has duplicates: give each user once.")
    require_columns(test, [col_user, col_item], "the test data")
    given, tested = set(users.tolist()), set(test[col_user])
    if given != tested:
        raise DataError(f"users must be exactly the users of test ({len(tested)} of them): "
                        f"{len(given - tested)} given have no test item and "
                        f"{len(tested - given)} test users are missing; pass "
                        f"np.sort(test[{col_user!r}].unique()).")
    ndcg = f"ndcg@{k}"
    own = E.per_user_metrics(model.recommend(users, k=k), test, k=k, col_user=col_user,
                             col_item=col_item)[ndcg]
    settings = [(m, knob, v) for m, (knob, values) in grid.items() for v in values]
    rows = {}
    for method, knob, v in tqdm(settings, desc="re-ranking settings", leave=False):
        t0 = time.perf_counter()
        lists = rerank(model, users, k=k, method=method, n_candidates=n_candidates,
                       item_vectors=item_vectors, item_category=item_category, history=train,
                       col_user=col_user, col_item=col_item, **{knob: v})
        seconds = time.perf_counter() - t0
        per = E.per_user_metrics(lists, test, k=k, col_user=col_user, col_item=col_item)
        d = stats.paired_bootstrap(per[ndcg], own, n_boot=n_boot, seed=seed)
        rows[(method, f"{knob}={v}")] = {
            f"NDCG@{k}": per[ndcg].mean(), f"HR@{k}": per[f"hr@{k}"].mean(),
            "diff": d["diff"], "diff lo": d["lo"], "diff hi": d["hi"],
            "ILD": E.intra_list_diversity(lists, item_vectors, col_user=col_user,
                                          col_item=col_item).mean(),
            "coverage": lists[col_item].nunique() / len(item_vectors),
            "calibration KL": E.calibration(lists, train, item_category, col_user=col_user,
                                            col_item=col_item).mean(),
            "seconds": seconds}
    return pd.DataFrame(rows).T.rename_axis(["method", "knob"])


# ---------------------------------------------------------------------------------------------
# Reasons for a diversified slot: say so, and only when it is true
# ---------------------------------------------------------------------------------------------

DIFFERENT = "Something different from your usual: "
"""The prefix of a reason whose item lies outside the shopper's usual categories. It states a
fact about the shopper's own history (which the shop knows), so :class:`DiversityGuard` checks
it against that history before the item's claims go to the ordinary guard."""


def usual_share(mix: pd.DataFrame, user, category: str) -> float:
    """The share of ``user``'s history (a row of ``evaluation.category_mixes``) in ``category``;
    an error for a user without history or an unknown category."""
    if user not in mix.index:
        raise DataError(f"user {user} has no history: 'your usual' is undefined for them.")
    if category not in mix.columns:
        raise DataError(f"unknown category {category!r}; known: {list(mix.columns)}.")
    return float(mix.at[user, category])


class DiversityGuard:
    """The closed-world guard of chapter 05 plus one checked claim: a reason may open with
    :data:`DIFFERENT` only when the item's category makes up less than ``usual`` of the
    shopper's history (0.1: fewer than one in ten of the items they interacted with). The rest
    of the sentence must pass ``guard`` unchanged, so "different" never smuggles in a claim
    about the item."""

    def __init__(self, guard, mix: pd.DataFrame, item_category: pd.Series, usual: float = 0.1):
        if not hasattr(guard, "problems"):
            raise DataError("guard must be a ClosedWorldGuard (guard.ClosedWorldGuard(facts, lex)).")
        if not isinstance(mix, pd.DataFrame) or not isinstance(item_category, pd.Series):
            raise DataError("mix must be evaluation.category_mixes(...) and item_category a "
                            "Series indexed by item ID.")
        self.guard, self.mix, self.category = guard, mix, item_category
        self.usual = require_number("usual", usual, low=0.0, high=1.0, low_open=True)

    def is_different(self, user, item) -> bool:
        """Whether ``item``'s category is outside ``user``'s usual ones."""
        if item not in self.category.index:
            raise DataError(f"unknown item {item}: it has no category.")
        return usual_share(self.mix, user, self.category.at[item]) < self.usual

    def problems(self, reason: str, user, item) -> list[str]:
        """Everything wrong with ``reason`` for this pair ([] = it passes)."""
        if not isinstance(reason, str):
            raise DataError(f"a reason must be a string, got {type(reason).__name__}.")
        out, rest = [], reason
        if reason.startswith(DIFFERENT):
            if not self.is_different(user, item):
                share = usual_share(self.mix, user, self.category.at[item])
                out.append(f"says 'different from your usual', but {share:.0%} of this shopper's "
                           f"history is {self.category.at[item]}")
            rest = reason[len(DIFFERENT):]
        return out + self.guard.problems(rest, user, item)

    def passes(self, reason: str, user, item) -> bool:
        """Whether :meth:`problems` finds nothing wrong with ``reason`` for this pair."""
        return not self.problems(reason, user, item)

    def explain(self, explainer, lists: pd.DataFrame, col_user: str = "user_id",
                col_item: str = "item_id") -> pd.DataFrame:
        """``lists`` with two columns added: ``different`` (the item is outside the shopper's
        usual categories) and ``reason`` (``explainer.explain_one``'s reason, opened with
        :data:`DIFFERENT` exactly when ``different``). Rows keep their order."""
        missing = {col_user, col_item} - set(lists.columns)
        if missing:
            raise DataError(f"lists lacks column(s) {sorted(missing)}.")
        diff, said = [], []
        for u, i in zip(lists[col_user].to_numpy(), lists[col_item].to_numpy()):
            d = self.is_different(u, i)
            r = explainer.explain_one(int(u), int(i))
            diff.append(d)
            said.append(DIFFERENT + r if d else r)
        return lists.assign(different=diff, reason=said)
