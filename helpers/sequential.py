"""Sequential recommendation: SASRec trained on each user's time-ordered history, behind the
same interface as ``helpers.cf`` (``fit``, ``scores``, ``recommend``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .attention import AttentionConfig, SASRec
from .cf import Recommender
from .data import DataError, require_columns, require_int, require_number

__all__ = ["user_sequences", "training_windows", "train_on_rows", "SASRecRecommender"]


def _ordered_runs(df, user_idx, item_idx, col_time):
    """Per user (in index order): their item ids + 1, oldest first (ties broken by item)."""
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
        raise ValueError(f"length must be >= 2 (an input and a target), got {length}")
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


def train_on_rows(model: torch.nn.Module, rows: torch.Tensor, batch_loss, *, n_epochs: int,
                  lr: float, batch_size: int, generator: torch.Generator, desc: str) -> list[float]:
    """Adam over shuffled mini-batches of ``rows`` for ``n_epochs`` (SASRec, BERT4Rec).

    ``batch_loss(batch)`` returns ``(mean loss, number of targets)``, or ``None`` for a batch
    with nothing to learn. Returns the per-epoch loss averaged over targets; leaves the model in
    eval mode."""
    require_int("n_epochs", n_epochs, 1)
    require_int("batch_size", batch_size, 1)
    require_number("lr", lr, low=0, low_open=True)
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for _ in tqdm(range(n_epochs), desc=desc, leave=False, disable=n_epochs < 20):
        perm = torch.randperm(len(rows), generator=generator)
        total, count = 0.0, 0
        for lo in range(0, len(rows), batch_size):
            out = batch_loss(rows[perm[lo:lo + batch_size]])
            if out is None:
                continue
            loss, n = out
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * n
            count += n
        history.append(total / max(count, 1))
    model.eval()
    return history


class SASRecRecommender(Recommender):
    """SASRec on the course's recommender interface. Needs a time column."""

    def __init__(self, max_len: int = 50, d_model: int = 64, n_head: int = 2, n_layer: int = 2,
                 dropout: float = 0.2, n_epochs: int = 40, lr: float = 1e-3,
                 batch_size: int = 128, seed: int = 0, col_time: str = "timestamp",
                 whole_history: bool = False, **kw):
        """``whole_history=False`` trains on each user's last ``max_len`` items (one row per
        user, the SASRec paper's setup); ``True`` trains on :func:`training_windows` over the
        whole history, which helps when histories are much longer than ``max_len``."""
        super().__init__(**kw)
        for name, value, low in (("max_len", max_len, 1), ("n_epochs", n_epochs, 1),
                                 ("batch_size", batch_size, 1), ("seed", seed, 0),
                                 ("n_layer", n_layer, 1)):
            require_int(name, value, low)
        require_number("lr", lr, low=0, low_open=True)
        self.whole_history = whole_history
        self.max_len, self.n_epochs, self.lr = max_len, n_epochs, lr
        self.batch_size, self.seed, self.col_time = batch_size, seed, col_time
        self.cfg = AttentionConfig(d_model=d_model, n_head=n_head, dropout=dropout)
        self.n_layer = n_layer
        self.history: list[float] = []

    def fit(self, df, user_map=None, item_map=None):
        require_columns(df, [self.col_time], "the training data")
        self._prepare(df, user_map, item_map)
        torch.manual_seed(self.seed)
        n_u, n_i = self.seen.shape
        self.model = SASRec(n_i, self.max_len + 1, self.cfg, self.n_layer)
        # one extra position: inputs are seq[:-1], targets seq[1:]
        self.seqs = user_sequences(df, self.u, self.i, n_u, self.max_len + 1, self.col_time)
        if (self.seqs[:, -1] == 0).all():
            raise DataError("No user has any interaction to learn from.")
        train = (training_windows(df, self.u, self.i, self.max_len + 1, self.col_time)
                 if self.whole_history else self.seqs)

        def batch_loss(batch):
            inp, tgt = batch[:, :-1], batch[:, 1:]
            keep = (tgt > 0) & (inp > 0)
            if not keep.any():
                return None
            logits = self.model.logits(self.model(inp))
            return torch.nn.functional.cross_entropy(logits[keep], tgt[keep]), int(keep.sum())

        self.history = train_on_rows(self.model, train, batch_loss, n_epochs=self.n_epochs,
                                     lr=self.lr, batch_size=self.batch_size,
                                     generator=torch.Generator().manual_seed(self.seed),
                                     desc="SASRec epochs")
        return self

    def scores(self, user_idx):
        with torch.no_grad():
            seq = self.seqs[torch.as_tensor(user_idx)][:, 1:]  # the last max_len items
            hidden = self.model(seq)[:, -1]                      # state after the last item
            return self.model.logits(hidden)[:, 1:].numpy()      # drop the pad column
