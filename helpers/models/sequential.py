"""Sequential recommendation: SASRec trained on each user's time-ordered history, behind the
same interface as ``helpers.models.cf`` (``fit``, ``scores``, ``recommend``). BERT4Rec (chapter 04,
:mod:`helpers.models.interest`) shares :class:`SequenceRecommender` and the encoder."""
from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from helpers.core.checks import (
    DataError,
    ParameterError,
    require_columns,
    require_int,
    require_times,
)
from helpers.data.preprocess import IdMap
from helpers.models.attention import AttentionConfig, ItemSequenceEncoder, SASRec
from helpers.models.cf import TorchRecommender

__all__ = ["user_sequences", "training_windows", "SequenceRecommender", "SASRecRecommender"]


def _ordered_runs(df, user_idx, item_idx, col_time):
    """Per user (in index order): their item ids + 1, oldest first (ties broken by item).
    Times must be numbers or datetimes: text would sort as text ('10' before '9')."""
    require_columns(df, [col_time], "the interactions")
    require_times(df, col_time, "the interactions")
    order = np.lexsort((item_idx, df[col_time].to_numpy(), user_idx))
    u, i = user_idx[order], item_idx[order] + 1
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]
    ends = np.r_[starts[1:], len(u)]
    return [(int(u[s]), i[s:e]) for s, e in zip(starts, ends)]


def user_sequences(df: pd.DataFrame, user_idx: np.ndarray, item_idx: np.ndarray, n_users: int,
                   max_len: int, col_time: str = "timestamp") -> torch.Tensor:
    """``(n_users, max_len)`` item ids (item index + 1; 0 pads on the left), each row the
    user's last ``max_len`` interactions in time order (ties broken by item)."""
    require_int("max_len", max_len, 1)
    require_int("n_users", n_users, 1)
    seqs = torch.zeros(n_users, max_len, dtype=torch.long)
    for user, items in _ordered_runs(df, user_idx, item_idx, col_time):
        tail = items[-max_len:]
        seqs[user, max_len - len(tail):] = torch.as_tensor(tail)
    return seqs


def training_windows(df: pd.DataFrame, user_idx: np.ndarray, item_idx: np.ndarray, length: int,
                     col_time: str = "timestamp") -> torch.Tensor:
    """Every user's whole history cut into windows of ``length`` ids (left-padded like
    :func:`user_sequences`), cut from the end backwards and overlapping by one item, so that
    each interaction after a user's first is a next-item target in exactly one window.

    A user with 120 items and ``length=51`` gives windows over items 70..120, 20..70 and
    1..20 (padded). Shape ``(n_windows, length)``."""
    if length < 2:
        raise ParameterError(f"length must be >= 2 (an input and a target), got {length}")
    rows = []
    for _, items in _ordered_runs(df, user_idx, item_idx, col_time):
        end = len(items)
        while end > 1:
            chunk = items[max(0, end - length):end]
            row = np.zeros(length, dtype=np.int64)
            row[length - len(chunk):] = chunk
            rows.append(row)
            end -= length - 1
    return torch.as_tensor(np.stack(rows)) if rows else torch.zeros(0, length, dtype=torch.long)


class SequenceRecommender(TorchRecommender):
    """What SASRec and BERT4Rec share on the course's recommender interface: the settings of
    an :class:`~helpers.models.attention.ItemSequenceEncoder`, the users' histories it reads, and
    training by Adam over shuffled mini-batches of history rows, with early stopping
    (``fit(..., valid=)``, see :class:`~helpers.models.cf.TorchRecommender`). Needs a time column.

    A subclass says which encoder to build (``_build``), which rows to train on
    (``_train_rows``), the loss of a batch (``_batch_loss``), and how to score a history
    (``_score``).
    """

    _name = "sequence model"
    _min_len = 1                         # the shortest max_len the model can work with

    def __init__(self, max_len: int = 50, d_model: int = 64, n_head: int = 2, n_layer: int = 2,
                 dropout: float = 0.2, n_epochs: int = 40, lr: float = 1e-3,
                 batch_size: int = 128, seed: int = 0, col_time: str = "timestamp",
                 device: str | None = "cpu", **kw: Any):
        super().__init__(n_epochs=n_epochs, lr=lr, batch_size=batch_size, seed=seed,
                         device=device, **kw)
        self.max_len, self.n_layer, self.col_time = max_len, n_layer, col_time
        self.d_model, self.n_head, self.dropout = d_model, n_head, dropout

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_int('max_len', self.max_len, self._min_len)
        require_int('n_layer', self.n_layer, 1)
        self.cfg_ = AttentionConfig(d_model=self.d_model, n_head=self.n_head, dropout=self.dropout)

    # -- what a subclass says -------------------------------------------------------------
    def _build(self, n_items: int) -> ItemSequenceEncoder:
        raise NotImplementedError

    def _train_rows(self, df: pd.DataFrame) -> torch.Tensor:
        raise NotImplementedError

    def _batch_loss(self, batch: torch.Tensor, generator: torch.Generator):
        """``(mean loss, number of targets)`` of a batch of rows, or ``None`` if it has none."""
        raise NotImplementedError

    def _history_len(self) -> int:
        return self.max_len

    def _score(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None, item_map: IdMap | None = None,
            valid: pd.DataFrame | None = None, patience: int = 10) -> Self:
        require_columns(df, [self.col_time], "the training data")
        self._prepare(df, user_map, item_map)
        check = self._validation(valid)
        torch.manual_seed(self.seed)
        self.model = self._build(self.seen.shape[1]).to(self.device_)
        rows = self._train_rows(df)
        if len(rows) == 0 or not ((rows > 0).sum(1) >= 2).any():
            raise DataError(f"no user has two interactions: nothing to train {self._name} on "
                            "(a sequence model learns from what follows what).")
        self.use_history(df)
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)

        def run_epoch() -> float:
            self.model.train()
            perm = torch.randperm(len(rows), generator=gen)
            total, count = 0.0, 0
            for lo in range(0, len(rows), self.batch_size):
                out = self._batch_loss(rows[perm[lo:lo + self.batch_size]], gen)
                if out is None:
                    continue
                loss, n = out
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * n
                count += n
            self.model.eval()
            return total / max(count, 1)

        self._train_epochs(run_epoch, list(self.model.parameters()), check, patience,
                           f"{self._name} epochs")
        self.model.eval()
        return self

    def use_history(self, df: pd.DataFrame) -> "SequenceRecommender":
        """Set the histories the model reads when it scores, without retraining: ``fit`` uses
        the training data; pass training + validation to read the input the way RecBole does on
        leave-one-out (the validation item becomes the newest input; RecBole then masks no
        history from the ranking, ``evaluate`` does), or a stream of new
        events for real-time updates (chapter 08). Users and items must be known to the model;
        users absent from ``df`` get an empty history."""
        if not hasattr(self, "item_map"):
            raise DataError(f"{type(self).__name__} is not fitted yet: call .fit(train) first.")
        require_columns(df, [self.col_user, self.col_item, self.col_time], "the history")
        u = self.user_map.encode(df[self.col_user], "history user")
        i = self.item_map.encode(df[self.col_item], "history item")
        if df[self.col_time].isna().any():
            raise DataError(f"{int(df[self.col_time].isna().sum())} history rows have no time "
                            f"({self.col_time!r} is NaN): a sequence needs an order.")
        self.seqs = user_sequences(df, u, i, len(self.user_map), self._history_len(),
                                   self.col_time)
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        seq = self.seqs[torch.as_tensor(np.asarray(user_idx))].to(self.device_)
        with torch.no_grad():
            return self._score(seq).double().cpu().numpy()


class SASRecRecommender(SequenceRecommender):
    """SASRec on the course's recommender interface: each position predicts the next item
    (full-softmax cross-entropy over every item; RecBole's SASRec uses the same loss at the last
    position of each prefix).

    ``whole_history=False`` trains on each user's last ``max_len`` items (one row per user,
    the SASRec paper's setup); ``True`` trains on :func:`training_windows` over the whole
    history — every interaction after a user's first is a target once, as in RecBole, which
    trains on every prefix of every history."""

    _name = "SASRec"

    def __init__(self, max_len: int = 50, d_model: int = 64, n_head: int = 2, n_layer: int = 2,
                 dropout: float = 0.2, n_epochs: int = 40, lr: float = 1e-3,
                 batch_size: int = 128, seed: int = 0, col_time: str = "timestamp",
                 whole_history: bool = False, device: str | None = "cpu", **kw: Any):
        super().__init__(max_len, d_model, n_head, n_layer, dropout, n_epochs, lr, batch_size,
                         seed, col_time, device, **kw)
        self.whole_history = whole_history

    def _build(self, n_items):
        return SASRec(n_items, self.max_len, self.cfg_, self.n_layer)

    def _train_rows(self, df):
        # one extra position: inputs are row[:-1], targets row[1:]
        if self.whole_history:
            return training_windows(df, self.u, self.i, self.max_len + 1, self.col_time)
        return user_sequences(df, self.u, self.i, len(self.user_map), self.max_len + 1,
                              self.col_time)

    def _batch_loss(self, batch, generator):
        batch = batch.to(self.device_)
        inp, tgt = batch[:, :-1], batch[:, 1:]
        keep = (tgt > 0) & (inp > 0)
        if not keep.any():
            return None
        logits = self.model.logits(self.model(inp)[keep])
        return torch.nn.functional.cross_entropy(logits, tgt[keep] - 1), int(keep.sum())

    def _score(self, seq):
        return self.model.logits(self.model(seq)[:, -1])    # the state after the last item
