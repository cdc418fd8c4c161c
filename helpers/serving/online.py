"""Real-time updates without retraining (chapter 08): new events change a user's
recommendations by *folding in* — re-solving that user's factors with the items' factors held
fixed — instead of refitting the whole model.

    live = online.FoldIn(cf.ImplicitALS(64).fit(train))
    stats = live.update(new_events)            # touched users re-solved; new users added
    live.model.recommend([user], k=10)         # already reflects the new events

Implicit ALS (chapter 02) makes this exact and cheap: with the item factors Y fixed, a user's
best factors have a closed form, ``x_u = (YᵀY + Yᵀ(C_u − I)Y + reg·I)⁻¹ Yᵀ C_u p_u`` — one
k x k solve per touched user, the same half-step the model's own training repeats. What folding
in cannot do: move the *items*. A new item has no factors until the next retrain, or until
:meth:`FoldIn.place_items` places it by its content (a ridge map from the items' text or image
vectors, chapters 04/06, to the factors of the items the model has learnt). An event on an item
ID the model's ID map does not hold cannot be folded in: it is counted in ``cold_item_events``,
never silently dropped, and its user is still re-solved on the events that remain. An item the
map holds but nobody had met (zero factors) is not counted: its events join the users'
histories like any other.

Events must arrive in time order: a batch older than what the model has already seen is an
error (a replayed log would otherwise double-count silently).
"""
from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.core.checks import (
    DataError,
    require_columns,
    require_count,
    require_ids,
    require_number,
    require_times,
)
from helpers.data.preprocess import IdMap
from helpers.metrics.ranking import rank_from_scores
from helpers.models.cf import ImplicitALS

__all__ = ["FoldIn", "replay_fold_in", "top_unmet"]


class FoldIn:
    """Keeps a fitted :class:`~helpers.models.cf.ImplicitALS` current as events arrive (see the module
    docstring). ``model`` is updated in place: its user map, seen matrix, popularity and user
    factors grow and change; its item factors never do."""

    def __init__(self, model: ImplicitALS, col_time: str = "timestamp"):
        if not isinstance(model, ImplicitALS):
            raise DataError(f"FoldIn serves an ImplicitALS model (closed-form user solves); got "
                            f"{type(model).__name__}.")
        if not hasattr(model, "X"):
            raise DataError("the model is not fitted yet: call .fit(train) first.")
        self.model, self.col_time = model, col_time
        self.cold_item_events = Counter()          # item ID not in the map -> events not folded in
        self.last_time = None
        # YᵀY + reg·I is the same for every user while the items stay fixed: computed once
        self._refresh()

    def _refresh(self) -> None:
        m = self.model
        self._base = m.Y.T @ m.Y + m.reg * np.eye(m.Y.shape[1])

    def place_items(self, features: pd.DataFrame, items, reg: float = 1.0) -> dict:
        """Give ``items`` factors from their content: a ridge regression from ``features`` (a
        DataFrame of item vectors indexed by item ID, e.g. chapter 04's MiniLM embeddings) to
        the factors of every item with at least one interaction, applied to ``items``. Items
        the model does not know yet are added (IDs appended, no interactions); items it knows
        but that have no interactions get their factors replaced (ALS left them near zero, so
        they were never recommended). An item *with* interactions is refused: it has learnt
        factors. Every user's factors are then re-solved, because YᵀY changed. Returns counts
        and the ridge fit's R² on the warm items."""
        m = self.model
        if not isinstance(features, pd.DataFrame) or not features.index.is_unique:
            raise DataError("features must be a DataFrame of item vectors with a unique item-ID "
                            "index.")
        if not np.isfinite(features.to_numpy(np.float64)).all():
            raise DataError("features hold NaN or inf.")
        items = pd.Index(pd.unique(np.asarray(items)))
        if len(items) == 0:
            raise DataError("no items to place.")
        require_number("reg", reg, low=0.0, low_open=True)
        no_vec = items.difference(features.index)
        if len(no_vec):
            raise DataError(f"{len(no_vec)} items to place have no feature vector (e.g. "
                            f"{list(no_vec[:3])}).")
        counts = np.asarray(m.seen.sum(0)).ravel()
        known = m.item_map._index.get_indexer(items)
        warm_placed = items[(known >= 0) & (counts[np.maximum(known, 0)] > 0)]
        if len(warm_placed):
            raise DataError(f"{len(warm_placed)} items already have interactions and learnt "
                            f"factors (e.g. {list(warm_placed[:3])}): only cold items are placed.")
        warm_ids = m.item_map.ids[counts > 0]
        missing = pd.Index(warm_ids).difference(features.index)
        if len(missing):
            raise DataError(f"{len(missing)} warm items have no feature vector (e.g. "
                            f"{list(missing[:3])}): the ridge map needs them all.")
        from sklearn.linear_model import Ridge

        x, y = features.loc[warm_ids].to_numpy(np.float64), m.Y[counts > 0]
        ridge = Ridge(alpha=reg).fit(x, y)
        r2 = ridge.score(x, y)                    # R² averaged over the factor columns
        placed = ridge.predict(features.loc[items].to_numpy(np.float64))
        new = items[known < 0]
        if len(new):
            m.item_map = IdMap(np.concatenate([m.item_map.ids, new.to_numpy()]))
            m.Y = np.vstack([m.Y, np.zeros((len(new), m.Y.shape[1]))])
            m.seen = sp.hstack([m.seen, sp.csr_matrix((m.seen.shape[0], len(new)))]).tocsr()
            m.popularity = np.concatenate([m.popularity, np.zeros(len(new))])
            for i in new:
                self.cold_item_events.pop(i, None)
        m.Y[m.item_map.encode(items, "item")] = placed
        self._refresh()
        m.X = self.solve(np.arange(len(m.user_map)))
        return {"placed": len(items), "new IDs": len(new), "warm items fitted": len(warm_ids),
                "ridge R2": float(r2)}

    def solve(self, rows) -> np.ndarray:
        """The closed-form factors of the users at ``rows`` (indices into the model's user
        map) given their seen items: ``(YᵀY + reg·I + alpha·Y_uᵀY_u)⁻¹ (1 + alpha) Σ_{i seen}
        y_i`` — the model's own half-step (``ImplicitALS._solve``) for a few users, touching
        only their items (the cost per user against the half-step's full setup:
        benchmarks/results/16_online_cpu.md). Chapter 08b's ``fold_in``, one user at a time."""
        m = self.model
        out = np.empty((len(rows), m.Y.shape[1]))
        for j, r in enumerate(np.asarray(rows)):
            items = m.seen.indices[m.seen.indptr[r]:m.seen.indptr[r + 1]]
            y = m.Y[items]
            out[j] = np.linalg.solve(self._base + m.alpha * (y.T @ y),
                                     (1 + m.alpha) * y.sum(axis=0))
        return out

    def update(self, events: pd.DataFrame) -> dict:
        """Fold a batch of events in: add them to the users' histories and re-solve every
        touched user's factors. Returns counts: ``events``, ``users updated``, ``new users``,
        ``cold item events`` (events on item IDs the model's ID map does not hold: not folded
        in, and added to ``cold_item_events``)."""
        m = self.model
        require_columns(events, [m.col_user, m.col_item], "the batch of new events")
        if len(events) == 0:
            raise DataError("the batch of new events is empty.")
        for col in (m.col_user, m.col_item):
            require_ids(events, col, "the batch of new events")
        if self.col_time in events:
            t = events[self.col_time]
            if self.last_time is not None and t.min() < self.last_time:
                raise DataError(f"events out of order: this batch starts at {t.min()}, before "
                                f"the last event already folded in ({self.last_time}). Sort the "
                                "stream by time, or rebuild from a snapshot.")
            self.last_time = t.max()
        item_idx = m.item_map._index.get_indexer(pd.Index(events[m.col_item]))
        cold = item_idx < 0
        self.cold_item_events.update(events.loc[cold, m.col_item].tolist())
        users = events[m.col_user].to_numpy()
        new = pd.Index(pd.unique(users)).difference(m.user_map._index)
        if len(new):
            m.user_map = IdMap(np.concatenate([m.user_map.ids, new.to_numpy()]))
            m.seen = sp.vstack([m.seen, sp.csr_matrix((len(new), m.seen.shape[1]))]).tocsr()
            m.X = np.vstack([m.X, np.zeros((len(new), m.X.shape[1]))])
        rows = m.user_map.encode(users[~cold], "user")
        add = sp.csr_matrix((np.ones(len(rows)), (rows, item_idx[~cold])), shape=m.seen.shape)
        m.seen = ((m.seen + add) > 0).astype(np.float64).tocsr()
        m.popularity = np.asarray(m.seen.sum(0)).ravel()
        touched = np.unique(m.user_map.encode(pd.unique(users), "user"))
        m.X[touched] = self.solve(touched)
        return {"events": len(events), "users updated": len(touched), "new users": len(new),
                "cold item events": int(cold.sum())}


def top_unmet(model, u, met, k=10):
    """u's top k among the items u has not met (met[u]: in training or earlier in the stream)."""
    s = model.scores(model.user_map.encode([u]))
    s[0, model.item_map.encode(list(met[u]))] = -np.inf
    return model.item_map.ids[rank_from_scores(s, k)[0]]


def replay_fold_in(model: ImplicitALS, train: pd.DataFrame, stream: pd.DataFrame, *,
                   every: int = 1, k: int = 10) -> np.ndarray:
    """Chapter 08b's prequential replay of fold-in: each event of ``stream`` (in time order) is
    first *predicted* — is its item in the shopper's :func:`top_unmet` ``k``, among the items
    they have not met in ``train`` or earlier in the stream? — and then waits; the waiting
    events are folded in at once every ``every`` events (1: after each). An item counts as met
    as soon as its event is seen, folded in yet or not, so ``every`` changes what the model
    knows, never the candidates. ``model`` (fitted on ``train``) is copied, never changed.

    Returns one bool per event, in the stream's order (its mean is HR@k).
    """
    if not isinstance(model, ImplicitALS) or not hasattr(model, "X"):
        raise DataError("replay_fold_in needs an ImplicitALS fitted on `train` "
                        f"(cf.ImplicitALS(...).fit(train)); got {type(model).__name__}.")
    every, k = require_count("every", every), require_count("k", k)
    for df, what in ((train, "the training events"), (stream, "the stream")):
        require_columns(df, [model.col_user, model.col_item, "timestamp"], what)
        for col in (model.col_user, model.col_item):
            require_ids(df, col, what)
    if len(stream) == 0:
        raise DataError("the stream is empty: nothing to replay.")
    require_times(stream, "timestamp", "the stream")
    if not stream["timestamp"].is_monotonic_increasing:
        raise DataError("the stream is not in time order: sort it by timestamp (kind='stable') "
                        "first; a replay out of order would predict the past from the future.")
    unknown = pd.Index(stream[model.col_user].unique()).difference(model.user_map._index)
    if len(unknown):
        raise DataError(f"{len(unknown)} shopper(s) of the stream have no training events "
                        f"(for example {unknown[:3].tolist()}): the replay ranks for known "
                        "shoppers only; keep stream rows whose user is in the model's user map.")
    live = FoldIn(copy.deepcopy(model))
    met = {u: set(g) for u, g in train.groupby(model.col_user)[model.col_item]}
    cols = [model.col_user, model.col_item, "timestamp"]
    waiting, hits = [], []
    for u, i, t in stream[cols].itertuples(index=False):
        hits.append(i in top_unmet(live.model, u, met, k))
        met[u].add(i)                       # a candidate no more, learnt or not
        waiting.append((u, i, t))
        if len(waiting) == every:           # fold the waiting events in at once
            live.update(pd.DataFrame(waiting, columns=cols))
            waiting = []
    return np.array(hits, dtype=bool)
