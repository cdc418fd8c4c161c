"""Real-time updates without retraining (chapter 08): new events change a user's
recommendations by *folding in* — re-solving that user's factors with the items' factors held
fixed — instead of refitting the whole model.

    live = online.FoldIn(cf.ImplicitALS(64).fit(train))
    stats = live.update(new_events)            # touched users re-solved; new users added
    live.model.recommend([user], k=10)         # already reflects the new events

Implicit ALS (chapter 02) makes this exact and cheap: with the item factors Y fixed, a user's
best factors have a closed form, ``x_u = (YᵀY + Yᵀ(C_u − I)Y + reg·I)⁻¹ Yᵀ C_u p_u`` — one
k x k solve per touched user, the same half-step the model's own training repeats. What folding
in cannot do: move the *items*. A new item has no factors until the next retrain (or a content
tower places it, chapters 04/06); its events are counted in ``cold_item_events``, never
silently dropped, and the item's users are still re-solved on the events that remain.

Events must arrive in time order: a batch older than what the model has already seen is an
error (a replayed log would otherwise double-count silently).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .cf import ImplicitALS
from .data import DataError, require_columns, require_ids
from .preprocess import IdMap

__all__ = ["FoldIn"]


class FoldIn:
    """Keeps a fitted :class:`~helpers.cf.ImplicitALS` current as events arrive (see the module
    docstring). ``model`` is updated in place: its user map, seen matrix, popularity and user
    factors grow and change; its item factors never do."""

    def __init__(self, model: ImplicitALS, col_time: str = "timestamp"):
        if not isinstance(model, ImplicitALS):
            raise DataError(f"FoldIn serves an ImplicitALS model (closed-form user solves); got "
                            f"{type(model).__name__}.")
        if not hasattr(model, "X"):
            raise DataError("the model is not fitted yet: call .fit(train) first.")
        self.model, self.col_time = model, col_time
        self.cold_item_events = Counter()          # item ID -> events not folded in
        self.last_time = None
        # YᵀY + reg·I is the same for every user while the items stay fixed: computed once
        k = model.Y.shape[1]
        self._base = model.Y.T @ model.Y + model.reg * np.eye(k)

    def solve(self, rows) -> np.ndarray:
        """The closed-form factors of the users at ``rows`` (indices into the model's user
        map) given their seen items: ``(YᵀY + reg·I + alpha·Y_uᵀY_u)⁻¹ (1 + alpha) Σ_{i seen}
        y_i`` — the model's own half-step (``ImplicitALS._solve``) for a few users, touching
        only their items (0.15 ms a user on 2 cores, against 11 ms for the half-step's full
        setup: benchmarks/online_benchmark.py)."""
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
        ``cold item events`` (events on items the model has no factors for)."""
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
