"""Collaborative filtering, small and readable: baselines, neighbourhoods, factorisation, BPR.

Every model shares one interface:

    model = BiasedMF(n_factors=32).fit(train)          # DataFrame: user_id, item_id[, rating]
    model.predict(test.user_id, test.item_id)          # rating models: predicted ratings
    model.recommend([1, 2, 3], k=10)                   # DataFrame: user_id, item_id, rank, score
    model.scores(user_idx)                             # (n_users, n_items) scores for ranking

``recommend`` never returns an item the user already has in the training data, and answers an
unknown user with the most popular items, saying so in a warning.

>>> df = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 11, 10]})
>>> EASE(reg=1.0).fit(df).recommend([3], k=1)[["user_id", "item_id", "rank"]].to_dict("records")
[{'user_id': 3, 'item_id': 11, 'rank': 1}]
"""
from __future__ import annotations

import warnings
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from numpy.typing import ArrayLike

from helpers.core.checks import (
    DataError,
    ParameterError,
    require_choice,
    require_columns,
    require_finite,
    require_ids,
    require_int,
    require_number,
)
from helpers.core.config import get_device
from helpers.core.params import Estimator
from helpers.data.preprocess import IdMap, build_id_map
from helpers.metrics.ranking import ndcg_per_user, rank_from_scores, ranking_metrics

__all__ = ["Recommender", "TorchRecommender", "GlobalMean", "Biases", "MostPopular", "KNN",
           "BiasedMF", "BayesianMF", "BPR", "EASE", "ImplicitALS"]


def _torch_csr(m: sp.csr_matrix, dtype=torch.float32) -> torch.Tensor:
    m = m.tocsr()
    with warnings.catch_warnings():  # torch flags sparse CSR support as beta
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.as_tensor(m.indptr, dtype=torch.int64),
                                       torch.as_tensor(m.indices, dtype=torch.int64),
                                       torch.as_tensor(m.data, dtype=dtype), m.shape)


def _row_grams(rows: sp.csr_matrix, x, dtype=torch.float32) -> torch.Tensor:
    """``Σ_{j in row g} x_j x_jᵀ`` for every row g of the 0/1 matrix ``rows`` (groups × the
    other side), shape ``(groups, d, d)``: one sparse product with the other side's per-row
    outer products, not one outer product per observed cell. ALS and Gibbs sampling share it."""
    d = x.shape[1]
    xt = torch.as_tensor(x, dtype=dtype)
    outer = (xt[:, :, None] * xt[:, None, :]).reshape(len(x), d * d)
    return torch.sparse.mm(_torch_csr(rows, dtype), outer).reshape(-1, d, d)


class Recommender(Estimator):
    """Shared plumbing: ID maps, the training matrix, popularity, ``recommend``."""

    explicit = False  # rating models need a rating column without NaN

    def __init__(self, col_user: str = "user_id", col_item: str = "item_id",
                 col_rating: str = "rating"):
        self.col_user, self.col_item, self.col_rating = col_user, col_item, col_rating

    # -- data ----------------------------------------------------------------------------
    def _prepare(self, df: pd.DataFrame, user_map: IdMap | None, item_map: IdMap | None):
        self.check_params()
        if hasattr(self, "device"):                 # the torch models: where fit will train
            self.device_ = get_device(self.device)
        cols = [self.col_user, self.col_item] + ([self.col_rating] if self.explicit else [])
        require_columns(df, cols, "the training data")
        if len(df) == 0:
            raise DataError(f"{type(self).__name__}.fit got no interactions: the training data "
                            "is empty (check your split and filters).")
        if self.explicit and df[self.col_rating].isna().any():
            raise DataError(f"{int(df[self.col_rating].isna().sum())} training ratings are NaN; "
                            "keep only rated interactions (e.g. purchases) to fit "
                            f"{type(self).__name__}.")
        for col in (self.col_user, self.col_item):
            require_ids(df, col, "the training data")
        if self.explicit:
            require_finite(df, self.col_rating, "the training data")
            twice = df.duplicated([self.col_user, self.col_item])
            if twice.any():
                raise DataError(f"{int(twice.sum())} (user, item) pairs are rated more than once "
                                f"(e.g. rows {df.index[twice][:5].tolist()}); a rating model needs "
                                "one rating per pair. Keep the latest, e.g. "
                                "df.sort_values('timestamp').drop_duplicates(['user_id', "
                                "'item_id'], keep='last').")
        self.user_map = user_map or build_id_map(df[self.col_user])
        self.item_map = item_map or build_id_map(df[self.col_item])
        self.u = self.user_map.encode(df[self.col_user], "user")
        self.i = self.item_map.encode(df[self.col_item], "item")
        n_u, n_i = len(self.user_map), len(self.item_map)
        self.r = (df[self.col_rating].to_numpy(np.float64) if self.explicit
                  else np.ones(len(df)))
        self.seen = sp.csr_matrix((np.ones(len(df)), (self.u, self.i)), shape=(n_u, n_i))
        self.seen.sum_duplicates()
        self.seen.data[:] = 1.0  # repeated pairs (a click, then a purchase) count once
        self.popularity = np.asarray(self.seen.sum(0)).ravel()
        return self

    def _rating_matrix(self):
        m = sp.csr_matrix((self.r, (self.u, self.i)), shape=self.seen.shape)
        m.sum_duplicates()
        return m

    # -- interface -------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        """Learn from interactions and return ``self``.

        Args:
            df: one row per interaction, ``user_id`` and ``item_id`` (and ``rating`` for
                explicit models).
            user_map, item_map: :class:`~helpers.data.preprocess.IdMap` s to share with other
                models (built from ``df`` when omitted).
        Raises:
            ParameterError: a setting given to ``__init__`` is out of range (checked here).
            DataError: ``df`` lacks a column, is empty, or holds IDs the maps do not know.
        """
        raise NotImplementedError

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Ranking scores ``(len(user_idx), n_items)``; higher is better."""
        raise NotImplementedError

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        """Predicted ratings for (user, item) pairs of raw IDs (rating models only)."""
        raise TypeError(f"{type(self).__name__} ranks items but does not predict ratings.")

    def recommend(self, users: ArrayLike, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items per user as a DataFrame (user, item, rank 1..k, score).

        ``k`` larger than the catalogue is clipped to its size (with a warning); ``k < 1`` is an
        error. Unknown users get the most popular items, and a warning says how many.
        """
        require_int("k", k, 1)
        if not hasattr(self, "item_map"):
            raise DataError(f"{type(self).__name__} is not fitted yet: call .fit(train) first.")
        n_items = len(self.item_map)
        if k > n_items:
            warnings.warn(f"k={k} is larger than the catalogue ({n_items} items); returning "
                          f"{n_items}.", stacklevel=2)
            k = n_items
        users = pd.Index(pd.unique(np.asarray(users)))
        idx = self.user_map._index.get_indexer(users)
        known = idx >= 0
        frames = []
        if known.any():
            s = self.scores(idx[known]).astype(np.float64)
            if exclude_seen:
                s[self.seen[idx[known]].toarray() > 0] = -np.inf
            top = rank_from_scores(s, k)              # -1 where a user has < k items left
            score = np.where(top >= 0, np.take_along_axis(s, np.maximum(top, 0), 1), -np.inf)
            frames.append(self._frame(users[known], np.maximum(top, 0), score))
        if (~known).any():
            warnings.warn(f"{int((~known).sum())} user(s) not seen in training (e.g. "
                          f"{list(users[~known][:3])}): recommending the most popular items "
                          "to them instead.", stacklevel=2)
            top = np.argsort(-self.popularity, kind="stable")[:k]
            n = int((~known).sum())
            frames.append(self._frame(users[~known], np.tile(top, (n, 1)),
                                      np.tile(self.popularity[top], (n, 1))))
        out = pd.concat(frames, ignore_index=True)
        # a user with fewer than k unseen items gets a shorter list, never a seen item
        return out[np.isfinite(out["score"])].reset_index(drop=True)

    def evaluate(self, test: pd.DataFrame, k: int = 10, candidates: ArrayLike | None = None,
                 exclude: pd.DataFrame | None = None,
                 per_user: bool = False) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
        """Full-ranking metrics on held-out interactions: every user in ``test`` ranks all
        items not in their training data; their ``test`` items are the relevant ones. Returns
        :func:`helpers.metrics.ranking.ranking_metrics` (precision, recall, NDCG, MRR, HR at k, and
        catalogue coverage). Test users or items unknown to the model are an error.

        ``exclude``: more (user, item) interactions to leave out of the ranking — the
        validation part, as RecBole masks it when it tests its general models (it masks no history
        for its sequential ones: ``benchmarks/results/13_same_protocol_cpu.md``); its users and
        items must be known.

        ``candidates`` (raw item IDs) restricts the ranking to those items, e.g. only the new
        items of a cold-start split; every test item must then be a candidate.

        ``per_user=True`` returns each test user's NDCG@k instead (a Series indexed by user
        ID, sorted): what a paired bootstrap between two models resamples."""
        require_columns(test, [self.col_user, self.col_item], "the test data")
        if len(test) == 0:
            raise DataError("The test data is empty.")
        require_int("k", k, 1)
        users, idx, test_idx, relevant = self._held_out(test, "the test data")
        scores = self.scores(idx)
        if candidates is not None:
            cand = np.zeros(len(self.item_map), dtype=bool)
            cand[self.item_map.encode(pd.unique(np.asarray(candidates)), "candidate item")] = True
            if not cand[test_idx].all():
                raise DataError("some test items are not among the candidates; restrict the "
                                "test data to the candidate items first.")
            scores = np.where(cand[None, :], scores, -np.inf)
        masked = self.seen[idx]
        if exclude is not None:
            require_columns(exclude, [self.col_user, self.col_item], "the excluded interactions")
            ex = exclude[exclude[self.col_user].isin(users)]
            rows = np.searchsorted(users, ex[self.col_user].to_numpy())
            cols = self.item_map.encode(ex[self.col_item], "excluded item")
            extra = sp.csr_matrix((np.ones(len(ex)), (rows, cols)), shape=masked.shape)
            masked = ((masked + extra) > 0).astype(np.float64)
        top = rank_from_scores(scores, k, exclude=masked)
        if per_user:
            return pd.Series(ndcg_per_user(top, relevant, k), name=f"ndcg@{k}",
                             index=pd.Index(users, name=self.col_user))
        return ranking_metrics(top, relevant, k, n_items=len(self.item_map))

    def _held_out(self, df: pd.DataFrame, what: str, prefix: str = ""):
        """Held-out interactions as the ranking metrics want them: the sorted raw user IDs,
        their row indices, every row's item index, and each user's set of relevant items
        (``prefix`` names an unknown ID's part in the error: 'validation ')."""
        for col in (self.col_user, self.col_item):
            require_ids(df, col, what)
        users = np.sort(df[self.col_user].unique())
        idx = self.user_map.encode(users, prefix + "user")
        item_idx = self.item_map.encode(df[self.col_item], prefix + "item")
        relevant = (df.assign(_i=item_idx).groupby(self.col_user)["_i"].apply(set)
                    .reindex(users).tolist())
        return users, idx, item_idx, relevant

    def _frame(self, users, top, score):
        n, k = top.shape
        return pd.DataFrame({self.col_user: np.repeat(np.asarray(users), k),
                             self.col_item: self.item_map.decode(top.ravel()),
                             "rank": np.tile(np.arange(1, k + 1), n),
                             "score": score.ravel()})

    def _pairs(self, users, items):
        users, items = np.asarray(users), np.asarray(items)
        if users.shape != items.shape:
            raise DataError(f"users and items must pair up, got {users.shape} and {items.shape}")
        u = self.user_map._index.get_indexer(users)
        i = self.item_map._index.get_indexer(items)
        return u, i


# ----------------------------------------------------------------------------- baselines
class GlobalMean(Recommender):
    """Predict the training mean for everyone: the floor every model must beat."""

    explicit = True

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        self._prepare(df, user_map, item_map)
        self.mu = float(self.r.mean())
        return self

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        u, _ = self._pairs(users, items)
        return np.full(len(u), self.mu)

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        return np.tile(self.popularity, (len(user_idx), 1))


class Biases(Recommender):
    """``r̂ = μ + b_u + b_i``, fitted by alternating regularised means.

    ``b_i = Σ_u (r − μ − b_u) / (λ_i + n_i)``, ``b_u = Σ_i (r − μ − b_i) / (λ_u + n_u)``.
    Unknown users or items get a bias of 0.
    """

    explicit = True

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, n_iter: int = 10, **kw: Any):
        super().__init__(**kw)
        self.reg_user, self.reg_item, self.n_iter = reg_user, reg_item, n_iter

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_number('reg_user', self.reg_user, low=0)
        require_number('reg_item', self.reg_item, low=0)
        require_int('n_iter', self.n_iter, 1)

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        self._prepare(df, user_map, item_map)
        self.mu = float(self.r.mean())
        n_u, n_i = self.seen.shape
        self.bu, self.bi = np.zeros(n_u), np.zeros(n_i)
        cnt_u = np.bincount(self.u, minlength=n_u)
        cnt_i = np.bincount(self.i, minlength=n_i)
        for _ in range(self.n_iter):
            res = self.r - self.mu - self.bu[self.u]
            self.bi = np.bincount(self.i, res, n_i) / (self.reg_item + cnt_i)
            res = self.r - self.mu - self.bi[self.i]
            self.bu = np.bincount(self.u, res, n_u) / (self.reg_user + cnt_u)
        return self

    def baseline(self, u_idx: np.ndarray, i_idx: np.ndarray) -> np.ndarray:
        """``mu + b_u + b_i`` for index arrays ``u_idx``, ``i_idx`` of one length; an index of -1
        (unknown user or item) contributes no bias.
        """
        bu = np.where(u_idx >= 0, self.bu[np.maximum(u_idx, 0)], 0.0)
        bi = np.where(i_idx >= 0, self.bi[np.maximum(i_idx, 0)], 0.0)
        return self.mu + bu + bi

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        return self.baseline(*self._pairs(users, items))

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        return np.tile(self.bi, (len(user_idx), 1))


class MostPopular(Recommender):
    """Rank items by how many training users interacted with them."""

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        return self._prepare(df, user_map, item_map)

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        return np.tile(self.popularity, (len(user_idx), 1)).astype(np.float64)


# ----------------------------------------------------------------------------- neighbourhoods
def _top_k_rows(sim: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (a dense similarity matrix) as sparse."""
    n = sim.shape[0]
    k = min(k, sim.shape[1])
    cols = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(sim, cols, 1)
    keep = vals > 0
    rows = np.repeat(np.arange(n), k)[keep.ravel()]
    return sp.csr_matrix((vals.ravel()[keep.ravel()], (rows, cols.ravel()[keep.ravel()])),
                         shape=sim.shape)


class KNN(Recommender):
    """Item-based (``kind="item"``) or user-based (``kind="user"``) nearest neighbours.

    Similarity between two items (or users) over their common raters:
    ``"cosine"`` of the raw vectors, or (explicit ratings only) ``"pearson"`` = cosine of the
    vectors with the baseline ``μ + b_u + b_i`` removed. ``shrink`` multiplies by ``n_common / (n_common +
    shrink)``, so pairs that share few raters count less. Only the ``k`` most similar
    neighbours are kept.

    Ranking (implicit data): ``score(u, i) = Σ_{j ∈ N(i)} s_ij · x_uj`` (item kind).
    Ratings: ``r̂_ui = b_ui + Σ_{j ∈ N(i) ∩ R(u)} s_ij (r_uj − b_uj) / Σ |s_ij|``.
    """

    def __init__(self, kind: str = "item", k: int = 40, similarity: str = "cosine",
                 shrink: float = 100.0, explicit: bool = False, **kw: Any):
        super().__init__(**kw)
        self.kind, self.k, self.similarity, self.shrink = kind, k, similarity, shrink
        self.explicit = explicit

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_choice('kind', self.kind, ['item', 'user'])
        require_choice('similarity', self.similarity, ['cosine', 'pearson'])
        require_int('k (neighbours)', self.k, 1)
        require_number("shrink", self.shrink, low=0)
        if self.similarity == "pearson" and not self.explicit:
            raise ParameterError("Pearson similarity centres ratings on their baseline, so it needs "
                                 "explicit=True and a rating column; use 'cosine' for implicit data.")

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        self._prepare(df, user_map, item_map)
        if self.explicit:
            self.base = Biases().fit(df, self.user_map, self.item_map)
            values = self.r - self.base.baseline(self.u, self.i)
        else:
            values = self.r.copy()
        self.residual = sp.csr_matrix((values, (self.u, self.i)), shape=self.seen.shape)
        self.residual.sum_duplicates()
        if self.similarity == "pearson":
            m = self.residual
        else:  # implicit data: who interacted, each pair once
            m = self._rating_matrix() if self.explicit else self.seen
        ent = (m.T if self.kind == "item" else m).tocsr()          # entities x features
        norms = np.sqrt(np.asarray(ent.multiply(ent).sum(1)).ravel())
        sim = (ent @ ent.T).toarray() / np.maximum(np.outer(norms, norms), 1e-12)
        if self.shrink:
            b = (self.seen.T if self.kind == "item" else self.seen).tocsr()
            common = (b @ b.T).toarray()
            sim *= common / (common + self.shrink)
        np.fill_diagonal(sim, 0.0)
        self.neighbours = _top_k_rows(sim, self.k)
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        x = self.seen[user_idx] if not self.explicit else self._rating_matrix()[user_idx]
        if self.kind == "item":
            return np.asarray((x @ self.neighbours.T).todense())
        return np.asarray((self.neighbours[user_idx] @ self.seen).todense())

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        if not self.explicit:
            raise TypeError("This KNN was fitted on implicit data; use explicit=True to "
                            "predict ratings.")
        u, i = self._pairs(users, items)
        pred = self.base.baseline(u, i)
        ok = (u >= 0) & (i >= 0)
        mask = self.seen
        if self.kind == "item":
            s, a, w = self.neighbours[i[ok]], self.residual[u[ok]], mask[u[ok]]
        else:
            s, a, w = self.neighbours[u[ok]], self.residual.T.tocsr()[i[ok]], mask.T.tocsr()[i[ok]]
        num = np.asarray(s.multiply(a).sum(1)).ravel()
        den = np.asarray(abs(s).multiply(w).sum(1)).ravel()
        pred[ok] += np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)
        return pred


# ----------------------------------------------------------------------------- factorisation
def _check_factor_model(n_factors, reg, n_epochs, lr, seed):
    require_int("n_factors", n_factors, 1)
    require_number("reg", reg, low=0)
    require_int("n_epochs", n_epochs, 1)
    require_number("lr", lr, low=0, low_open=True)
    require_int("seed", seed, 0)


class BiasedMF(Recommender):
    """Biased matrix factorisation: ``r̂_ui = μ + b_u + b_i + p_u · q_i``.

    Loss: ``Σ (r_ui − r̂_ui)² + λ (‖p_u‖² + ‖q_i‖² + b_u² + b_i²)`` over observed ratings.
    ``solver="adam"`` takes full-batch gradient steps with Adam, on ``device``; ``solver="als"``
    alternates exact ridge solves for all users, then all items (biases folded into the
    factors), on the CPU in float64. Predictions are clipped to the rating range seen in
    training.
    """

    explicit = True

    def __init__(self, n_factors: int = 32, reg: float = 0.05, solver: str = "adam",
                 n_epochs: int = 200, lr: float = 0.05, seed: int = 0,
                 device: str | None = "cpu", **kw: Any):

        super().__init__(**kw)
        self.device = device
        self.n_factors, self.reg, self.solver = n_factors, reg, solver
        self.n_epochs, self.lr, self.seed = n_epochs, lr, seed
        self.history: list[float] = []

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_choice('solver', self.solver, ['adam', 'als'])
        _check_factor_model(self.n_factors, self.reg, self.n_epochs, self.lr, self.seed)
        get_device(self.device)                     # a device this machine lacks is an error

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None, item_map: IdMap | None = None,
            valid: pd.DataFrame | None = None) -> Self:
        """Fit; if ``valid`` is given, ``history_valid`` records its RMSE per epoch."""
        self._prepare(df, user_map, item_map)
        self.mu = float(self.r.mean())
        self.r_min, self.r_max = float(self.r.min()), float(self.r.max())
        gen = torch.Generator().manual_seed(self.seed)
        n_u, n_i = self.seen.shape
        self.P = torch.randn(n_u, self.n_factors, generator=gen, dtype=torch.float64) * 0.1
        self.Q = torch.randn(n_i, self.n_factors, generator=gen, dtype=torch.float64) * 0.1
        self.bu = torch.zeros(n_u, dtype=torch.float64)
        self.bi = torch.zeros(n_i, dtype=torch.float64)
        self.history, self.history_valid = [], []
        vu = vi = vr = None
        if valid is not None:
            vu, vi = self._pairs(valid[self.col_user], valid[self.col_item])
            vr = valid[self.col_rating].to_numpy(np.float64)
        (self._fit_als if self.solver == "als" else self._fit_adam)(vu, vi, vr)
        return self

    def _record(self, vu, vi, vr):
        if vr is not None:
            self.history_valid.append(float(np.sqrt(np.mean(
                (self._predict_idx(vu, vi) - vr) ** 2))))

    def _fit_adam(self, vu, vi, vr):
        from torch.nn.functional import embedding  # a lookup whose backward is fast on CPU

        dev = self.device_
        u, i = torch.as_tensor(self.u, device=dev), torch.as_tensor(self.i, device=dev)
        r = torch.tensor(self.r, dtype=torch.float32, device=dev)
        params = [t.float().to(dev).requires_grad_(True)
                  for t in (self.P, self.Q, self.bu, self.bi)]
        P, Q, bu, bi = params
        opt = torch.optim.Adam(params, lr=self.lr)
        for _ in range(self.n_epochs):
            opt.zero_grad()
            pu, qi = embedding(u, P), embedding(i, Q)
            b_u, b_i = embedding(u, bu[:, None])[:, 0], embedding(i, bi[:, None])[:, 0]
            mse = ((r - (self.mu + b_u + b_i + (pu * qi).sum(1))) ** 2).mean()
            reg = self.reg * ((pu ** 2).sum(1) + (qi ** 2).sum(1) + b_u ** 2 + b_i ** 2).mean()
            (mse + reg).backward()
            opt.step()
            self.P, self.Q, self.bu, self.bi = (t.detach().double().cpu() for t in params)
            self.history.append(float(mse.detach().sqrt()))
            self._record(vu, vi, vr)

    def _fit_als(self, vu, vi, vr):
        r = self.r - self.mu
        n_u, n_i = self.seen.shape
        lam_u = self.reg * np.maximum(np.bincount(self.u, minlength=n_u), 1)
        lam_i = self.reg * np.maximum(np.bincount(self.i, minlength=n_i), 1)
        rows = sp.csr_matrix((np.ones(len(r)), (self.u, self.i)), shape=(n_u, n_i))
        P, Q = self.P.numpy(), self.Q.numpy()
        bu, bi = self.bu.numpy(), self.bi.numpy()
        for _ in range(self.n_epochs):
            # users: solve for [p_u, b_u] with items' [q_i, 1] fixed, target r − μ − b_i
            xu = self._ridge(rows, np.hstack([Q, np.ones((n_i, 1))]), r - bi[self.i],
                             self.u, self.i, lam_u)
            P, bu = xu[:, :-1], xu[:, -1]
            xi = self._ridge(rows.T.tocsr(), np.hstack([P, np.ones((n_u, 1))]),
                             r - bu[self.u], self.i, self.u, lam_i)
            Q, bi = xi[:, :-1], xi[:, -1]
            self.P, self.Q = torch.as_tensor(P), torch.as_tensor(Q)
            self.bu, self.bi = torch.as_tensor(bu), torch.as_tensor(bi)
            pred = self.mu + bu[self.u] + bi[self.i] + (P[self.u] * Q[self.i]).sum(1)
            self.history.append(float(np.sqrt(np.mean((self.r - pred) ** 2))))
            self._record(vu, vi, vr)

    @staticmethod
    def _ridge(rows, x, y, group, other, lam):
        """For every group g (a user, or an item): argmin_w Σ_{j ∈ g} (y_j − x_j·w)² + λ_g ‖w‖².

        ``rows`` is the binary group × other matrix; ``x`` the fixed side's features. The Gram
        matrices Σ_j x_j x_jᵀ of all groups come from one sparse product (``_row_grams``, in
        float32), and the right-hand sides Σ_j y_j x_j from a second.
        """
        gram = _row_grams(rows, x).double()
        gram.diagonal(dim1=1, dim2=2).add_(torch.as_tensor(lam)[:, None])
        values = sp.csr_matrix((y, (group, other)), shape=rows.shape)
        rhs = torch.as_tensor(values @ x)
        chol, _ = torch.linalg.cholesky_ex(gram)
        return torch.cholesky_solve(rhs[:, :, None], chol)[:, :, 0].numpy()

    def _predict_idx(self, u, i):
        known_u, known_i = u >= 0, i >= 0
        uu, ii = torch.as_tensor(np.maximum(u, 0)), torch.as_tensor(np.maximum(i, 0))
        with torch.no_grad():  # also called mid-training, to record validation error
            dot = (self.P[uu] * self.Q[ii]).sum(1).numpy() * (known_u & known_i)
            pred = (self.mu + self.bu[uu].numpy() * known_u + self.bi[ii].numpy() * known_i
                    + dot)
        return np.clip(pred, self.r_min, self.r_max)

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        return self._predict_idx(*self._pairs(users, items))

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        idx = torch.as_tensor(user_idx)
        return (self.P[idx] @ self.Q.T + self.bi[None, :]).numpy()


class BayesianMF(Recommender):
    """Bayesian probabilistic matrix factorisation (Salakhutdinov & Mnih, 2008), by Gibbs
    sampling.

    Model: ``r_ui ~ N(μ + p_u · q_i, 1/alpha)``, every ``p_u ~ N(μ_P, Λ_P⁻¹)`` and every
    ``q_i ~ N(μ_Q, Λ_Q⁻¹)``, with Normal–Wishart priors on ``(μ_P, Λ_P)`` and ``(μ_Q, Λ_Q)``.
    One sweep draws each side's prior given its factors, then every user's factors given the
    items' — a Gaussian whose mean is the ridge solution of :class:`BiasedMF`'s ALS with the
    learned prior in place of ``λ·I`` — then every item's. A prediction averages ``p_u · q_i``
    over the ``n_samples`` sweeps after ``burn_in``: the mean over many factorisations that fit
    the data, not the single best one, so a larger rank overfits far less than with ALS and no
    regularisation weight needs tuning.

    ``alpha`` is the precision of the ratings' noise (its default was chosen on MovieLens-100K
    validation ratings; chapter 02 shows the choice).
    Memory: the kept samples, ``n_samples × (n_users + n_items) × n_factors`` floats.
    """

    explicit = True

    def __init__(self, n_factors: int = 10, n_samples: int = 100, burn_in: int = 20,
                 alpha: float = 1.5, seed: int = 0, **kw: Any):
        super().__init__(**kw)
        self.n_factors, self.n_samples, self.burn_in = n_factors, n_samples, burn_in
        self.alpha, self.seed = alpha, seed

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_int('n_factors', self.n_factors, 1)
        require_int('n_samples', self.n_samples, 1)
        require_int('burn_in', self.burn_in, 0)
        require_int('seed', self.seed, 0)
        require_number('alpha', self.alpha, low=0.0, low_open=True)

    def _draw_prior(self, x: np.ndarray, rng: np.random.Generator):
        """(μ, Λ) from the Normal–Wishart posterior given the factors ``x`` (prior μ0 = 0,
        β0 = 2, ν0 = d, W0 = I, as in the paper)."""
        from scipy.stats import wishart

        n, d = x.shape
        mean = x.mean(0)
        scatter = (x - mean).T @ (x - mean)
        beta, nu = 2.0 + n, d + n
        w_inv = np.eye(d) + scatter + (2.0 * n / beta) * np.outer(mean, mean)
        w = np.linalg.inv(w_inv)
        lam = np.atleast_2d(wishart.rvs(df=nu, scale=(w + w.T) / 2, random_state=rng))
        mu = rng.multivariate_normal(n * mean / beta, np.linalg.inv(beta * lam))
        return mu, lam

    def _draw_rows(self, seen: sp.csr_matrix, resid: sp.csr_matrix, other, mu, lam, rng):
        """Every row's factors from their Gaussian conditional, all rows at once:
        precision ``Λ + α Σ q qᵀ``, mean ``precision⁻¹ (α Σ r q + Λ μ)``. ``seen`` is the
        rows × other 0/1 matrix of observed cells, ``resid`` the same cells' r − μ."""
        n_groups = seen.shape[0]
        gram = _row_grams(seen, other, torch.float64)         # Σ q qᵀ over each row's cells
        prec = gram * self.alpha + torch.as_tensor(lam)
        rhs = torch.as_tensor(resid @ other) * self.alpha + torch.as_tensor(lam @ mu)
        chol = torch.linalg.cholesky(prec)                       # prec = L Lᵀ
        mean = torch.cholesky_solve(rhs[:, :, None], chol)
        z = torch.as_tensor(rng.standard_normal((n_groups, other.shape[1], 1)))
        noise = torch.linalg.solve_triangular(chol.transpose(1, 2), z, upper=True)  # Lᵀ ε = z
        return (mean + noise)[:, :, 0].numpy()

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        from tqdm.auto import tqdm

        self._prepare(df, user_map, item_map)
        self.mu = float(self.r.mean())
        self.r_min, self.r_max = float(self.r.min()), float(self.r.max())
        rng = np.random.default_rng(self.seed)
        n_u, n_i = self.seen.shape
        # the observed cells and their residuals, by user and by item: fixed across sweeps
        by_user = self.seen.tocsr()
        resid_u = sp.csr_matrix((self.r - self.mu, (self.u, self.i)), shape=(n_u, n_i))
        by_item, resid_i = by_user.T.tocsr(), resid_u.T.tocsr()
        P = rng.normal(0, 0.1, (n_u, self.n_factors))
        Q = rng.normal(0, 0.1, (n_i, self.n_factors))
        self.P_samples, self.Q_samples = [], []
        for sweep in tqdm(range(self.burn_in + self.n_samples), desc="Gibbs sweeps",
                          leave=False):
            mu_q, lam_q = self._draw_prior(Q, rng)
            mu_p, lam_p = self._draw_prior(P, rng)
            P = self._draw_rows(by_user, resid_u, Q, mu_p, lam_p, rng)
            Q = self._draw_rows(by_item, resid_i, P, mu_q, lam_q, rng)
            if sweep >= self.burn_in:
                self.P_samples.append(P.astype(np.float32))
                self.Q_samples.append(Q.astype(np.float32))
        self.P_samples, self.Q_samples = np.stack(self.P_samples), np.stack(self.Q_samples)
        return self

    def predict(self, users: ArrayLike, items: ArrayLike) -> np.ndarray:
        u, i = self._pairs(users, items)
        known = (u >= 0) & (i >= 0)
        dot = np.einsum("snd,snd->n", self.P_samples[:, u[known]],
                        self.Q_samples[:, i[known]]) / self.n_samples
        pred = np.full(len(u), self.mu)
        pred[known] += dot
        return np.clip(pred, self.r_min, self.r_max)

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        idx = np.asarray(user_idx)
        return self.mu + np.einsum("snd,smd->nm", self.P_samples[:, idx],
                                   self.Q_samples) / self.n_samples


class TorchRecommender(Recommender):
    """The recommenders trained by mini-batch gradient descent in torch (BPR here, SASRec and
    BERT4Rec in :mod:`helpers.models.sequential`) share this prologue: checked training settings, a
    device, a seed, and the epoch loop with early stopping on a validation metric (RecBole's
    trainer differs in detail: it counts a tie as progress and validates its sequential models
    without masking their history).

    ``fit(..., valid=...)`` ranks the validation interactions after every epoch (training items
    masked) and stops once MRR@10 has not improved for ``patience`` epochs, keeping the best
    epoch's weights; ``n_epochs`` is then the most it may run. ``history`` holds the training
    loss per epoch, ``history_valid`` the validation MRR@10.

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, or ``None`` for the best one
    available; a device this machine lacks is an error, never a silent fall back to the CPU.
    """

    def __init__(self, *, n_epochs: int, lr: float, batch_size: int, seed: int = 0,
                 device: str | None = "cpu", **kw: Any):

        super().__init__(**kw)
        self.n_epochs, self.lr, self.batch_size, self.seed = n_epochs, lr, batch_size, seed
        self.device = device
        self.history: list[float] = []
        self.history_valid: list[float] = []

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_int('n_epochs', self.n_epochs, 1)
        require_number('lr', self.lr, low=0, low_open=True)
        require_int('batch_size', self.batch_size, 1)
        require_int('seed', self.seed, 0)
        get_device(self.device)                     # a device this machine lacks is an error

    def _validation(self, valid: pd.DataFrame | None):
        """What early stopping ranks each epoch: validation rows, relevant sets, the mask."""
        if valid is None:
            return None
        require_columns(valid, [self.col_user, self.col_item], "the validation data")
        if len(valid) == 0:
            raise DataError("the validation data is empty: pass valid=None to train for "
                            "n_epochs without early stopping")
        _, v_idx, _, v_rel = self._held_out(valid, "the validation data", "validation ")
        return v_idx, v_rel, self.seen[v_idx]

    def _train_epochs(self, run_epoch, weights: list[torch.Tensor], check, patience: int,
                      desc: str) -> None:
        """Call ``run_epoch()`` (it returns the epoch's mean training loss) up to ``n_epochs``
        times; with ``check`` (from :meth:`_validation`) stop early and restore ``weights`` to
        the best epoch's values."""
        from tqdm.auto import tqdm

        require_int("patience", patience, 1)
        self.history, self.history_valid = [], []
        best, best_state, waited = -np.inf, None, 0
        for _ in tqdm(range(self.n_epochs), desc=desc, leave=False, disable=self.n_epochs < 20):
            self.history.append(float(run_epoch()))
            if check is None:
                continue
            v_idx, v_rel, v_seen = check
            top = rank_from_scores(self.scores(v_idx), 10, exclude=v_seen)
            mrr = ranking_metrics(top, v_rel, 10)["mrr@10"]
            self.history_valid.append(mrr)
            if mrr > best:
                best, waited = mrr, 0
                best_state = [w.detach().clone() for w in weights]
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_state is not None:
            with torch.no_grad():
                for w, saved in zip(weights, best_state):
                    w.copy_(saved)


class BPR(TorchRecommender):
    """Bayesian personalised ranking for implicit feedback (Rendle et al., 2009).

    Score ``x_ui = p_u · q_i (+ b_i)``. For each observed (u, i) draw ``n_negatives`` items j the
    user has not interacted with and maximise the mean ``log σ(x_ui − x_uj)`` minus L2
    regularisation, by Adam on mini-batches. Early stopping: ``fit(..., valid=)``, see
    :class:`TorchRecommender`.

    The defaults suit a short fixed run (chapters 02-04: 30 epochs at lr 0.01). For a run to
    the early stop, RecBole's settings are ``lr=1e-3, reg=0, item_bias=False, init_std=0.035``
    (its Xavier scale). Measured figures: ``benchmarks/results/13_toolkit_protocols_cpu.md``.
    """

    def __init__(self, n_factors: int = 64, reg: float = 1e-4, n_epochs: int = 30,
                 lr: float = 0.01, batch_size: int = 2048, seed: int = 0,
                 device: str | None = "cpu", item_bias: bool = True, init_std: float = 0.05,
                 n_negatives: int = 1, **kw: Any):
        super().__init__(n_epochs=n_epochs, lr=lr, batch_size=batch_size, seed=seed,
                         device=device, **kw)
        self.n_factors, self.reg = n_factors, reg
        self.item_bias, self.init_std, self.n_negatives = item_bias, init_std, n_negatives

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_int('n_factors', self.n_factors, 1)
        require_number('reg', self.reg, low=0)
        require_number('init_std', self.init_std, low=0, low_open=True)
        require_int('n_negatives', self.n_negatives, 1)

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None, item_map: IdMap | None = None,
            valid: pd.DataFrame | None = None, patience: int = 10) -> Self:
        self._prepare(df, user_map, item_map)
        check = self._validation(valid)
        pairs = np.unique(np.stack([self.u, self.i], 1), axis=0)
        n_u, n_i = self.seen.shape
        gen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        dev = self.device_
        weights = self._make_weights(n_u, n_i, gen)
        opt = torch.optim.Adam(weights, lr=self.lr)
        seen = self.seen.tocsr()
        pool = self._negative_pool(n_i)

        def run_epoch() -> float:
            order = rng.permutation(len(pairs))
            neg = pool[rng.integers(0, len(pool), (len(pairs), self.n_negatives))]
            users_in_order = np.repeat(pairs[order, 0], self.n_negatives)
            # resample negatives that the user has seen (a few rounds suffice: data is sparse)
            for _ in range(5):
                bad = (np.asarray(seen[users_in_order, neg.ravel()]).ravel() > 0
                       ).reshape(neg.shape)
                if not bad.any():
                    break
                neg[bad] = pool[rng.integers(0, len(pool), int(bad.sum()))]
            total = 0.0
            for lo in range(0, len(pairs), self.batch_size):
                sl = order[lo:lo + self.batch_size]
                u = torch.as_tensor(pairs[sl, 0], device=dev)
                i = torch.as_tensor(pairs[sl, 1], device=dev)
                j = torch.as_tensor(neg[lo:lo + self.batch_size], device=dev)   # (b, n_neg)
                pu = self._user_factors(u)
                (qi, bi), (qj, bj) = self._item_factors(i), self._item_factors(j)
                diff = ((pu[:, None] * (qi[:, None] - qj)).sum(-1) + bi[:, None] - bj)
                loss = -torch.nn.functional.logsigmoid(diff).mean() + self.reg * (
                    pu.pow(2).sum(1) + qi.pow(2).sum(1) + qj.pow(2).sum(-1).mean(1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(sl)
            return total / len(pairs)

        self._train_epochs(run_epoch, weights, check, patience, f"{type(self).__name__} epochs")
        return self

    # the model's parts, which a subclass extends (chapter 06's VBPR adds content factors)
    def _make_weights(self, n_u: int, n_i: int, gen: torch.Generator) -> list[torch.Tensor]:
        """Create the parameters (``P``, ``Q``, ``b``) and return the trained ones."""
        dev, std = self.device_, self.init_std
        self.P = torch.nn.Parameter((torch.randn(n_u, self.n_factors, generator=gen) * std)
                                    .to(dev))
        self.Q = torch.nn.Parameter((torch.randn(n_i, self.n_factors, generator=gen) * std)
                                    .to(dev))
        self.b = torch.nn.Parameter(torch.zeros(n_i, device=dev), requires_grad=self.item_bias)
        return [t for t in (self.P, self.Q, self.b) if t.requires_grad]

    def _negative_pool(self, n_i: int) -> np.ndarray:
        """Item indices negatives are drawn from: every item."""
        return np.arange(n_i)

    def _user_factors(self, u: torch.Tensor) -> torch.Tensor:
        return self.P[u]

    def _item_factors(self, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Factors and bias of item indices ``i`` (any shape): ``x_ui = p_u · q_i + b_i``."""
        return self.Q[i], self.b[i]

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        with torch.no_grad():
            idx = torch.as_tensor(np.asarray(user_idx), device=self.P.device)
            q, b = self._item_factors(torch.arange(self.Q.shape[0], device=self.P.device))
            return (self._user_factors(idx) @ q.T + b[None, :]).cpu().numpy()


# ----------------------------------------------------------------------------- EASE, ALS
class EASE(Recommender):
    """EASEᴿ (Steck, 2019), a shallow auto-encoder learned in closed form.

    Each item's column of the binary user-item matrix ``X`` is regressed on all the other
    items' columns (ridge, weight ``reg``), which gives an item-item weight matrix ``B`` with a
    zero diagonal (an item may not predict itself)::

        P = (XᵀX + reg·I)⁻¹,    B_ij = −P_ij / P_jj,    B_jj = 0,    scores = X B

    One matrix inverse of size n_items²: seconds for thousands of items, out of reach for
    millions (then use a sparse or low-rank variant).
    """

    def __init__(self, reg: float = 250.0, **kw: Any):
        super().__init__(**kw)
        self.reg = reg

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_number('reg', self.reg, low=0.0, low_open=True)

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        self._prepare(df, user_map, item_map)
        gram = (self.seen.T @ self.seen).toarray()
        gram[np.diag_indices_from(gram)] += self.reg
        p = np.linalg.inv(gram)
        self.B = (p / -np.diag(p)).astype(np.float32)      # column j divided by -P_jj
        np.fill_diagonal(self.B, 0.0)
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        return np.asarray(self.seen[np.asarray(user_idx)] @ self.B)


class ImplicitALS(Recommender):
    """Matrix factorisation for implicit feedback (Hu, Koren & Volinsky, 2008).

    Every (user, item) cell counts: preference ``p_ui`` = 1 if the user interacted with the
    item, else 0, with confidence ``c_ui = 1 + alpha·r_ui`` (``r_ui`` = 1 per interaction;
    0 for the cells never seen, which still count with confidence 1). Minimise
    ``Σ c_ui (p_ui − x_uᵀy_i)² + reg·(Σ‖x_u‖² + Σ‖y_i‖²)`` by alternating exact least squares::

        x_u = (YᵀY + Yᵀ(C_u − I)Y + reg·I)⁻¹ Yᵀ C_u p_u

    ``YᵀY`` is shared by every user, so each solve touches only the user's own items: the
    trick that makes the dense objective cheap. Items are solved the same way with the roles
    swapped.
    """

    def __init__(self, n_factors: int = 64, reg: float = 0.05, alpha: float = 10.0,
                 n_iter: int = 15, seed: int = 0, **kw: Any):
        super().__init__(**kw)
        self.n_factors, self.reg, self.alpha = n_factors, reg, alpha
        self.n_iter, self.seed = n_iter, seed

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_int('n_factors', self.n_factors, 1)
        require_int('n_iter', self.n_iter, 1)
        require_int('seed', self.seed, 0)
        require_number('reg', self.reg, low=0.0, low_open=True)
        require_number('alpha', self.alpha, low=0.0)

    @staticmethod
    def _solve(rows: sp.csr_matrix, other: np.ndarray, reg: float, alpha: float) -> np.ndarray:
        """One half-step: the factors of every row of ``rows`` given the other side's, all
        rows at once: ``Yᵀ(C_u − I)Y`` for every user is one sparse product with the items'
        outer products ``y_i y_iᵀ``, then one batched solve."""
        n, k = rows.shape[0], other.shape[1]
        outer = np.einsum("ik,il->ikl", other, other).reshape(len(other), k * k)
        extra = rows.copy()
        extra.data = alpha * extra.data                       # c_ui − 1 on the seen cells
        a = np.asarray(extra @ outer).reshape(n, k, k) + (other.T @ other + reg * np.eye(k))
        conf = rows.copy()
        conf.data = 1.0 + alpha * conf.data                   # c_ui, where p_ui = 1
        b = np.asarray(conf @ other)
        return np.linalg.solve(a, b[..., None])[..., 0]

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        from tqdm.auto import tqdm

        self._prepare(df, user_map, item_map)
        rng = np.random.default_rng(self.seed)
        n_u, n_i = self.seen.shape
        self.X = rng.normal(0, 0.01, (n_u, self.n_factors))
        self.Y = rng.normal(0, 0.01, (n_i, self.n_factors))
        by_user, by_item = self.seen.tocsr(), self.seen.T.tocsr()
        for _ in tqdm(range(self.n_iter), desc="ALS sweeps", leave=False,
                      disable=self.n_iter < 20):
            self.X = self._solve(by_user, self.Y, self.reg, self.alpha)
            self.Y = self._solve(by_item, self.X, self.reg, self.alpha)
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        return self.X[np.asarray(user_idx)] @ self.Y.T
