"""User-interest models over item text (chapter 04).

An item tower turns each item's text into a vector with a pretrained BERT encoder; a user's
interest is a pooling of the vectors of the items in their history. Because the item side
comes from text, a brand-new item has a vector the moment it has a description — the cold-start
case collaborative filtering cannot serve.

    texts = item_texts(catalogue)                    # item_id -> "title. description"
    emb = encode_items(texts)                        # (n_items, 384), cached on disk
    rec = TextInterestRecommender(emb, texts.index, pooling="attention").fit(train)
    rec.explain(user_id, item_id)                    # which history items the attention used

Also here: a two-tower model trained on interactions (frozen or fine-tuned encoder),
BERT4Rec (a bidirectional masked-item model on ``helpers.models.attention``), and per-user aspect
profiles inferred from history and reviews.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.nn import functional as F

from helpers.core import config
from helpers.core.checks import (
    DataError,
    ParameterError,
    require_columns,
    require_int,
    require_number,
)
from helpers.data.preprocess import IdMap
from helpers.models import pretrained
from helpers.models.attention import AttentionConfig, ItemSequenceEncoder
from helpers.models.cf import Recommender
from helpers.models.sequential import SequenceRecommender, training_windows, user_sequences

__all__ = ["item_texts", "movielens_texts", "encode_items", "mean_pool", "attention_pool",
           "in_batch_softmax_loss", "TextInterestRecommender", "TwoTowerRecommender",
           "BERT4Rec", "BERT4RecRecommender", "mask_items", "marketed_aspects",
           "aspect_profile", "aspect_precision"]


# ----------------------------------------------------------------------------- item texts
def _check_texts(texts: pd.Series, what: str) -> pd.Series:
    bad = texts.isna() | (texts.astype(str).str.strip() == "")
    if bad.any():
        raise DataError(f"{int(bad.sum())} item(s) have no {what} (e.g. item "
                        f"{list(texts.index[bad][:3])}); fill them (clean_catalogue fills "
                        "descriptions from titles) before encoding.")
    if texts.index.has_duplicates:
        dup = texts.index[texts.index.duplicated()][:3].tolist()
        raise DataError(f"item IDs must be unique, {dup} repeat; drop duplicate catalogue rows.")
    return texts


def item_texts(catalogue: pd.DataFrame, *, col_item: str = "item_id", col_title: str = "title",
               col_text: str = "description") -> pd.Series:
    """One text per item, ``"<title>. <description>"``, indexed by item ID.

    >>> item_texts(pd.DataFrame({"item_id": [1], "title": ["Lamp"], "description": ["Bright."]})).to_dict()
    {1: 'Lamp. Bright.'}
    """
    require_columns(catalogue, [col_item, col_title, col_text], "the catalogue")
    title = _check_texts(catalogue.set_index(col_item)[col_title], "title")
    text = _check_texts(catalogue.set_index(col_item)[col_text], "description")
    return (title.astype(str).str.rstrip(".") + ". " + text.astype(str)).rename(None)


def movielens_texts(items: pd.DataFrame, *, col_item: str = "item_id") -> pd.Series:
    """MovieLens movies as text: ``"Toy Story (1995). Genres: Animation, Children's, Comedy."``
    (the year is left out where unknown)."""
    require_columns(items, [col_item, "title", "genres"], "the MovieLens items")
    df = items.set_index(col_item)
    _check_texts(df["title"], "title")
    year = df["year"] if "year" in df else pd.Series(np.nan, index=df.index)
    year_txt = year.map(lambda y: f" ({int(y)})" if pd.notna(y) else "")
    genres = df["genres"].fillna("").str.replace("|", ", ", regex=False)
    genres = genres.map(lambda g: f" Genres: {g}." if g else "")
    return (df["title"].astype(str) + year_txt + "." + genres).rename(None)


def encode_items(texts: pd.Series, name: str | None = None, *, max_length: int = 128,
                 batch_size: int = 64, cache: bool = True,
                 encoder: tuple[Any, Any] | None = None) -> torch.Tensor:
    """Encode item texts with the text encoder (``helpers.models.pretrained.encode``: mean pooling,
    unit-norm rows), in ``texts`` order. Shape ``(len(texts), hidden)``.

    With ``cache=True`` the result is stored as safetensors under ``cache_dir()/embeddings``,
    keyed by the encoder name, ``max_length`` and a hash of every text: a changed text is
    re-encoded, an unchanged catalogue loads in milliseconds. Texts longer than
    ``max_length`` tokens are truncated and a warning says how many. ``encoder`` is an optional
    ``(tokenizer, model)`` pair (e.g. a fine-tuned one; it is then never cached).
    """
    from safetensors.torch import load_file, save_file


    if not isinstance(texts, pd.Series):
        raise TypeError("texts must be a pandas Series (item_id -> text), e.g. item_texts(catalogue)")
    if len(texts) == 0:
        raise DataError("no texts to encode")
    _check_texts(texts, "text")
    key = hashlib.sha256("\x1f".join([str(name), str(max_length)] + texts.astype(str).tolist())
                         .encode()).hexdigest()[:20]
    path = config.cache_dir() / "embeddings" / f"{(name or 'minilm').replace('/', '_')}-{key}.safetensors"
    if cache and encoder is None and path.exists():
        return load_file(str(path))["embeddings"]
    tok, model = encoder or pretrained.text_encoder(name)
    emb = pretrained.encode(texts.astype(str).tolist(), tok, model, batch_size=batch_size,
                        max_length=max_length)
    if cache and encoder is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a name of this process's own: two kernels encoding the same texts at once (the
        # test suite's two workers) each write whole files, and the last rename wins
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        save_file({"embeddings": emb.contiguous()}, str(tmp))
        tmp.replace(path)
    return emb


# ----------------------------------------------------------------------------- pooling
def _history_check(item_emb, seqs):
    if item_emb.dim() != 2:
        raise DataError(f"item_emb must be (n_items, d), got {tuple(item_emb.shape)}")
    if seqs.dim() != 2 or seqs.dtype != torch.long:
        raise DataError(f"seqs must be a (n_users, t) long tensor of item index + 1 (0 = pad), "
                        f"got {tuple(seqs.shape)} {seqs.dtype}")
    if len(seqs) and (seqs.min() < 0 or seqs.max() > len(item_emb)):
        raise DataError(f"seqs holds ids outside 0..{len(item_emb)} (item index + 1; 0 pads): "
                        "encode items with the same item map as item_emb, then add 1.")


def _gather(item_emb, seqs):
    padded = torch.cat([torch.zeros(1, item_emb.shape[1], dtype=item_emb.dtype), item_emb])
    return padded[seqs]                                            # (n, t, d), pads are 0


def mean_pool(item_emb: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """Average of each user's history embeddings, pads ignored: ``(n, t)`` ids -> ``(n, d)``.
    A user with an empty history gets a zero vector (callers fall back, see
    :class:`TextInterestRecommender`)."""
    _history_check(item_emb, seqs)
    real = (seqs > 0).unsqueeze(-1).to(item_emb.dtype)
    return (_gather(item_emb, seqs) * real).sum(1) / real.sum(1).clamp(min=1.0)


def attention_pool(item_emb: torch.Tensor, seqs: torch.Tensor, query: torch.Tensor,
                   temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Target attention (as in DIN): each user's history weighted by its similarity to a query.

    ``query`` is ``(n, d)`` (one per user, e.g. the candidate item) or ``(n, c, d)`` (``c``
    candidates each). Weights are ``softmax(query · h / temperature)`` over the user's real
    history items; returns ``(pooled, weights)`` with shapes ``(n, [c,] d)`` and
    ``(n, [c,] t)``. An empty history gives zero weights and a zero vector."""
    _history_check(item_emb, seqs)
    if temperature <= 0:
        raise ParameterError(f"temperature must be > 0, got {temperature}")
    squeeze = query.dim() == 2
    q = query[:, None] if squeeze else query
    if q.dim() != 3 or q.shape[0] != len(seqs) or q.shape[-1] != item_emb.shape[1]:
        raise DataError(f"query must be (n={len(seqs)}, d={item_emb.shape[1]}) or (n, c, d), "
                        f"got {tuple(query.shape)}")
    hist = _gather(item_emb, seqs)                                 # (n, t, d)
    scores = q @ hist.transpose(1, 2) / temperature                # (n, c, t)
    scores = scores.masked_fill(~(seqs > 0)[:, None, :], float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, -1), nan=0.0)
    pooled = weights @ hist                                        # (n, c, d)
    return (pooled[:, 0], weights[:, 0]) if squeeze else (pooled, weights)


def in_batch_softmax_loss(user_vec: torch.Tensor, item_vec: torch.Tensor,
                          temperature: float = 0.05, item_ids: torch.Tensor | None = None,
                          log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Two-tower loss: row ``b`` of ``user_vec`` should pick item ``b`` among the batch's items.

    ``logits = u · vᵀ / temperature`` and cross-entropy with labels ``0..B-1``; the other rows'
    items are the negatives. With ``item_ids`` a batch item equal to row ``b``'s own target
    is not counted as a negative for it. ``log_q`` (``(B,)``, the log-probability that each
    batch item is sampled, i.e. its popularity) is subtracted from its column — the logQ
    correction of Yi et al. (2019): popular items are negatives more often, and without it the
    model learns to rank them too low."""
    if not isinstance(user_vec, torch.Tensor) or not isinstance(item_vec, torch.Tensor):
        raise TypeError("user_vec and item_vec must be torch tensors, got "
                        f"{type(user_vec).__name__} and {type(item_vec).__name__}.")
    if user_vec.shape != item_vec.shape or user_vec.dim() != 2:
        raise DataError(f"user_vec and item_vec must both be (batch, d), got "
                        f"{tuple(user_vec.shape)} and {tuple(item_vec.shape)}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ParameterError(f"temperature must be a finite number > 0 (e.g. 0.05), got "
                             f"{temperature!r}: it divides the logits.")
    if log_q is not None and (not isinstance(log_q, torch.Tensor) or log_q.shape != (len(user_vec),)):
        raise DataError(f"log_q must be a ({len(user_vec)},) tensor, one log-probability per batch "
                        f"item, got {tuple(getattr(log_q, 'shape', ()))}.")
    if item_ids is not None and (not isinstance(item_ids, torch.Tensor)
                                 or item_ids.shape != (len(user_vec),)):
        raise DataError(f"item_ids must be a ({len(user_vec)},) tensor, got "
                        f"{tuple(getattr(item_ids, 'shape', ()))}.")
    logits = user_vec @ item_vec.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    if item_ids is not None:
        same = item_ids[:, None] == item_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


# ----------------------------------------------------------------------------- recommenders
def rows_for_item_map(row_ids: pd.Index, item_map: IdMap, what: str, fix: str) -> torch.Tensor:
    """For each item of ``item_map`` (in its index order), the row of a table whose rows are
    ``row_ids`` (embeddings, features, masks given by item ID). An item with no row is an
    error that says how many, which, and ``fix``."""
    pos = row_ids.get_indexer(item_map.decode(np.arange(len(item_map))))
    if (pos < 0).any():
        missing = item_map.decode(np.flatnonzero(pos < 0)[:3]).tolist()
        raise DataError(f"{int((pos < 0).sum())} item(s) of the item map have no {what} "
                        f"(e.g. {missing}); {fix}.")
    return torch.as_tensor(pos)


class _TextItems(Recommender):
    """Shared: item embeddings given by ID, aligned to the item map in ``fit``; histories;
    popularity fallback for users with no history."""

    def __init__(self, item_embeddings: torch.Tensor, item_ids, max_len: int = 50,
                 col_time: str = "timestamp", **kw: Any):
        super().__init__(**kw)
        self.item_embeddings, self.item_ids = item_embeddings, item_ids
        self.max_len, self.col_time = max_len, col_time

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts: ``max_len`` (a :class:`ParameterError`)
        and the item embeddings with their IDs (a :class:`DataError`: they are data)."""
        super().check_params()
        require_int("max_len", self.max_len, 1)
        emb, ids = self.item_embeddings, pd.Index(self.item_ids)
        if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
            raise DataError("item_embeddings must be a (n_items, d) tensor")
        if len(ids) != len(emb):
            raise DataError(f"{len(ids)} item IDs for {len(emb)} embeddings; pass the index of "
                            "the texts you encoded")
        if ids.has_duplicates:
            raise DataError("item_ids repeat; each item needs exactly one embedding")
        if not emb.is_floating_point() or not torch.isfinite(emb).all():
            raise DataError("item_embeddings must be finite floats (no NaN/inf); re-encode the "
                            "items (interest.encode_items) — a NaN here would rank at random.")
        self._emb_all, self._emb_ids = emb.float(), ids

    def _prepare_items(self, df, user_map, item_map):
        require_columns(df, [self.col_time], "the training data")
        self._prepare(df, user_map, item_map)
        self.item_rows = rows_for_item_map(self._emb_ids, self.item_map, "embedding",
                                           "encode the whole catalogue")
        self.item_emb = self._emb_all[self.item_rows]
        self.seqs = user_sequences(df, self.u, self.i, len(self.user_map), self.max_len,
                                   self.col_time)
        self.empty = (self.seqs == 0).all(1).numpy()

    def _fallback(self, user_idx, scores):
        empty = self.empty[user_idx]
        if empty.any():
            warnings.warn(f"{int(empty.sum())} user(s) have no history to pool; they get the "
                          "most popular items instead.", stacklevel=3)
            scores[empty] = self.popularity / max(self.popularity.max(), 1.0)
        return scores


class TextInterestRecommender(_TextItems):
    """Content-based interest from pretrained text embeddings, no training.

    ``pooling="mean"``: the user vector is the mean of their history's embeddings; an item's
    score is its cosine with that vector. ``pooling="attention"``: for each candidate item
    the history is re-weighted by its similarity to the candidate (:func:`attention_pool`), so
    each score comes with the history items that produced it (:meth:`explain`). Users without
    history get the most popular items (a warning says how many).
    """

    def __init__(self, item_embeddings: torch.Tensor, item_ids: ArrayLike, pooling: str = "mean",
                 temperature: float = 0.1, max_len: int = 50, **kw: Any):
        super().__init__(item_embeddings, item_ids, max_len, **kw)
        self.pooling, self.temperature = pooling, temperature

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        if self.pooling not in ('mean', 'attention'):
            raise ParameterError(f"pooling must be 'mean' or 'attention', got {self.pooling!r}")

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        self._prepare_items(df, user_map, item_map)
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        user_idx = np.asarray(user_idx)
        seqs = self.seqs[torch.as_tensor(user_idx)]
        e = self.item_emb
        if self.pooling == "mean":
            out = (mean_pool(e, seqs) @ e.T).numpy()
        else:
            out = np.empty((len(user_idx), len(e)), dtype=np.float32)
            for lo in range(0, len(user_idx), 64):   # (64, n_items, t) at a time
                s = seqs[lo:lo + 64]
                q = e.expand(len(s), -1, -1)
                pooled, _ = attention_pool(e, s, q, self.temperature)
                out[lo:lo + 64] = (pooled * q).sum(-1).numpy()
        return self._fallback(user_idx, out.astype(np.float64))

    def explain(self, user: int, item: int, top: int = 3) -> pd.DataFrame:
        """The ``top`` history items attention weighted most when scoring ``item`` for
        ``user``: columns item_id, weight (summed over repeats, e.g. a click then a purchase of
        the same item), similarity (cosine with ``item``)."""
        u = self.user_map.encode([user], "user")
        i = self.item_map.encode([item], "item")
        seq = self.seqs[torch.as_tensor(u)]
        if (seq == 0).all():
            raise DataError(f"user {user!r} has no history to explain from")
        q = self.item_emb[torch.as_tensor(i)]
        _, w = attention_pool(self.item_emb, seq, q, self.temperature)
        real = seq[0] > 0
        hist = (seq[0][real] - 1).numpy()
        out = (pd.DataFrame({"idx": hist, "weight": w[0][real].numpy()})
               .groupby("idx", sort=False)["weight"].sum()
               .sort_values(ascending=False, kind="stable").head(top))
        sims = (self.item_emb[torch.as_tensor(np.array(out.index))] @ q[0]).numpy()
        return pd.DataFrame({self.col_item: self.item_map.decode(out.index.to_numpy()),
                             "weight": out.to_numpy().round(4), "similarity": sims.round(4)})


class _UserTower(nn.Module):
    """History embeddings -> projection -> attention pooling with a learned query."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)
        self.query = nn.Parameter(torch.zeros(d_out))
        self.out = nn.Linear(d_out, d_out)

    def forward(self, hist_emb, real):                 # (b, t, d_in), (b, t) bool
        h = torch.tanh(self.proj(hist_emb))
        scores = (h @ self.query) / math.sqrt(h.shape[-1])
        w = torch.softmax(scores.masked_fill(~real, float("-inf")), -1)
        w = torch.nan_to_num(w, nan=0.0)
        return F.normalize(self.out((w[..., None] * h).sum(1)), dim=-1), w


class TwoTowerRecommender(_TextItems):
    """A two-tower interest model trained on interactions with in-batch softmax.

    - item tower: the item's text embedding -> a residual linear map -> unit vector. With
      ``finetune_layers=k > 0`` the text embedding itself is recomputed through the encoder
      each step and its last ``k`` Transformer layers are trained too (needs ``texts``);
    - user tower: the user's last ``max_len`` items' (frozen) text embeddings, projected and
      pooled by attention with a learned query.
    Training pairs: every interaction after a user's first, with the ``max_len`` before it as
    history (time order). Users without history get the most popular items.
    """

    def __init__(self, item_embeddings: torch.Tensor, item_ids: ArrayLike, max_len: int = 20,
                 n_epochs: int = 5, lr: float = 2e-3, batch_size: int = 256,
                 temperature: float = 0.05, finetune_layers: int = 0, texts: pd.Series | None = None,
                 encoder_lr: float = 3e-5, max_steps: int | None = None, seed: int = 0,
                 device: str | None = "cpu", **kw: Any):
        super().__init__(item_embeddings, item_ids, max_len, **kw)
        self.device = device
        self.n_epochs, self.lr, self.batch_size = n_epochs, lr, batch_size
        self.temperature, self.finetune_layers, self.texts = temperature, finetune_layers, texts
        self.encoder_lr, self.max_steps, self.seed = encoder_lr, max_steps, seed
        self.history: list[float] = []

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        if self.finetune_layers and self.texts is None:
            raise ParameterError('finetune_layers > 0 needs texts= (the item texts to re-encode)')
        require_int('n_epochs', self.n_epochs, 1)
        require_int('batch_size', self.batch_size, 1)
        require_int('finetune_layers', self.finetune_layers, 0)
        require_int('seed', self.seed, 0)
        require_number('lr', self.lr, low=0)
        require_number('encoder_lr', self.encoder_lr, low=0)
        require_number('temperature', self.temperature, low=0, low_open=True)
        if self.max_steps is not None:
            require_int("max_steps", self.max_steps, 1)
        config.get_device(self.device)              # a device this machine lacks is an error

    # item tower ----------------------------------------------------------------------------
    def _make_item_tower(self, d_in: int) -> nn.Module:
        """The item tower's trainable part: a residual linear map, initialised to zero (so
        training starts from the text vectors themselves). Subclasses swap it (chapter 06)."""
        proj = nn.Linear(d_in, d_in)
        nn.init.zeros_(proj.weight); nn.init.zeros_(proj.bias)
        return proj

    def _item_vec(self, base, idx=None):
        """Unit item vectors from base vectors ``base`` of item indices ``idx`` (None: all)."""
        return F.normalize(base + self.item_proj(base), dim=-1)

    def _cache_lower_layers(self):
        """One frozen pass over every item text, keeping the hidden states that enter the
        trainable top layers: training then runs only those layers (the rest never change)."""
        from tqdm.auto import tqdm

        texts = self._texts_by_idx.tolist()
        enc_all = self.tok(texts, truncation=True, max_length=128)["input_ids"]
        order = np.argsort([len(x) for x in enc_all], kind="stable")
        start = len(self.encoder.encoder.layer) - self.finetune_layers
        self._lower = [None] * len(texts)
        self.encoder.eval()
        for lo in tqdm(range(0, len(texts), 64), desc="caching frozen layers", leave=False):
            idx = order[lo:lo + 64]
            enc = self.tok([texts[j] for j in idx], padding=True, truncation=True,
                           max_length=128, return_tensors="pt").to(self.device_)
            with torch.no_grad():
                hs = self.encoder(**enc, output_hidden_states=True).hidden_states[start]
            for row, j in enumerate(idx):
                self._lower[j] = hs[row, :int(enc["attention_mask"][row].sum())].clone()

    def _top_layers(self, idx: torch.Tensor) -> torch.Tensor:
        """Item text embeddings (mean-pooled, unit norm) of item indices ``idx`` through the
        trainable top layers, from the cached lower-layer states."""
        from transformers.masking_utils import create_bidirectional_mask

        rows = [self._lower[j] for j in idx.tolist()]
        h = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        am = nn.utils.rnn.pad_sequence([torch.ones(len(r), dtype=torch.long) for r in rows],
                                       batch_first=True).to(h.device)
        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=h,
                                         attention_mask=am)
        for layer in self.encoder.encoder.layer[-self.finetune_layers:]:
            h = layer(h, mask)
            h = h[0] if isinstance(h, tuple) else h
        m = am.unsqueeze(-1).to(h.dtype)
        return F.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        from tqdm.auto import tqdm

        self._prepare_items(df, user_map, item_map)
        torch.manual_seed(self.seed)
        dev = self.device_
        d_in = self.item_emb.shape[1]
        self.user_tower = _UserTower(d_in, d_in)
        self.item_proj = self._make_item_tower(d_in)
        self.user_tower.to(dev); self.item_proj.to(dev)
        params = [{"params": list(self.user_tower.parameters()) + list(self.item_proj.parameters()),
                   "lr": self.lr}]
        if self.finetune_layers:
            self.tok, self.encoder = pretrained.text_encoder(device=str(dev))
            layers = self.encoder.encoder.layer
            if not 1 <= self.finetune_layers <= len(layers):
                raise ParameterError(f"finetune_layers must be 1..{len(layers)}")
            for p in self.encoder.parameters():
                p.requires_grad_(False)
            trainable = [p for layer in layers[-self.finetune_layers:] for p in layer.parameters()]
            for p in trainable:
                p.requires_grad_(True)
            params.append({"params": trainable, "lr": self.encoder_lr})
            self._texts_by_idx = self.texts.reindex(
                self.item_map.decode(np.arange(len(self.item_map)))).to_numpy()
            if pd.isna(self._texts_by_idx).any():
                raise DataError("texts lacks some items of the item map")
            self._cache_lower_layers()
        opt = torch.optim.Adam(params)
        # training pairs: windows of max_len + 1, every position after the first is a target
        win = training_windows(df, self.u, self.i, self.max_len + 1, self.col_time)
        hist_list, tgt_list = [], []
        for j in range(1, win.shape[1]):
            ok = (win[:, j] > 0) & (win[:, j - 1] > 0)
            h = win[ok, :j]
            hist_list.append(F.pad(h, (self.max_len - j, 0)))
            tgt_list.append(win[ok, j] - 1)
        hist, tgt = torch.cat(hist_list), torch.cat(tgt_list)
        if len(tgt) == 0:
            raise DataError("no user has two interactions: nothing to train a two-tower model on")
        freq = torch.bincount(tgt, minlength=len(self.item_map)).float()
        log_q = torch.log(freq.clamp(min=1) / len(tgt)).to(dev)
        hist, tgt = hist.to(dev), tgt.to(dev)
        gen = torch.Generator().manual_seed(self.seed)
        self.history, step = [], 0
        item_emb = self.item_emb.to(dev)
        pad_emb = torch.cat([torch.zeros(1, d_in, device=dev), item_emb])
        total_steps = self.n_epochs * math.ceil(len(tgt) / self.batch_size)
        if self.max_steps:
            total_steps = min(total_steps, self.max_steps)
        bar = tqdm(total=total_steps, desc="two-tower steps", leave=False,
                   disable=total_steps < 50)
        if self.finetune_layers:
            self.encoder.train()
        while step < total_steps:
            perm = torch.randperm(len(tgt), generator=gen)
            run, count = 0.0, 0
            for lo in range(0, len(tgt), self.batch_size):
                if step >= total_steps:
                    break
                b = perm[lo:lo + self.batch_size].to(dev)
                u_vec, _ = self.user_tower(pad_emb[hist[b]], hist[b] > 0)
                base = (self._top_layers(tgt[b]) if self.finetune_layers
                        else item_emb[tgt[b]])
                loss = in_batch_softmax_loss(u_vec, self._item_vec(base, tgt[b]), self.temperature,
                                             tgt[b], log_q[tgt[b]])
                opt.zero_grad()
                loss.backward()
                opt.step()
                run, count, step = run + float(loss.detach()) * len(b), count + len(b), step + 1
                bar.update()
            self.history.append(run / max(count, 1))
        bar.close()
        with torch.no_grad():
            if self.finetune_layers:
                self.encoder.eval()
                n = len(self.item_map)
                self.item_base = torch.cat([self._top_layers(torch.arange(lo, min(lo + 64, n)))
                                            for lo in range(0, n, 64)])
                del self._lower  # ~150 MB for 2,000 items; not needed once trained
            else:
                self.item_base = item_emb
            self.item_vecs = self._item_vec(self.item_base).cpu()
            seqs = self.seqs[:, -self.max_len:].to(dev)
            user_vecs, user_weights = self.user_tower(pad_emb[seqs], seqs > 0)
            self.user_vecs, self.user_weights = user_vecs.cpu(), user_weights.cpu()
            self.item_base = self.item_base.cpu()
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        user_idx = np.asarray(user_idx)
        out = (self.user_vecs[torch.as_tensor(user_idx)] @ self.item_vecs.T).numpy()
        return self._fallback(user_idx, out.astype(np.float64))


# ----------------------------------------------------------------------------- BERT4Rec
def mask_items(seqs: torch.Tensor, mask_prob: float, mask_id: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT4Rec's cloze task: hide a random ``mask_prob`` share of the real (non-pad) items.

    Returns ``(inputs, labels)``: inputs with hidden items replaced by ``mask_id``; labels
    holding the hidden item where one was hidden and ``-100`` (ignored by cross-entropy)
    elsewhere. Every sequence with any real item gets at least one mask (its last item when
    the dice hid none), so every row trains."""
    if not 0 < mask_prob < 1:
        raise ParameterError(f"mask_prob must be in (0, 1), got {mask_prob}")
    real = seqs > 0
    hide = (torch.rand(seqs.shape, generator=generator) < mask_prob) & real
    none = ~hide.any(1) & real.any(1)
    hide[none, -1] = True   # sequences are left-padded: the last position is real
    inputs = seqs.masked_fill(hide, mask_id)
    labels = seqs.masked_fill(~hide, -100)
    return inputs, labels


class BERT4Rec(ItemSequenceEncoder):
    """Bidirectional Transformer over item ids (Sun et al., 2019): ids ``1..n_items``, 0 pads,
    ``n_items + 1`` is [MASK]. Every position sees every real position (padding mask only);
    the output at a masked position scores all items (tied to the input embeddings). The
    same encoder as SASRec's but for the mask and the [MASK] row."""

    def __init__(self, n_items: int, max_len: int, cfg: AttentionConfig, n_layer: int = 2):
        super().__init__(n_items, max_len, cfg, n_layer, causal=False, mask_token=True)


class BERT4RecRecommender(SequenceRecommender):
    """BERT4Rec on the course's recommender interface: trained on :func:`training_windows`
    of the whole history with :func:`mask_items`; recommends by appending [MASK] to the
    user's last ``max_len - 1`` items. Early stopping: ``fit(..., valid=)``."""

    _name = "BERT4Rec"
    _min_len = 2

    def __init__(self, max_len: int = 50, d_model: int = 64, n_head: int = 2, n_layer: int = 2,
                 dropout: float = 0.2, mask_prob: float = 0.2, n_epochs: int = 30,
                 lr: float = 3e-3, batch_size: int = 128, seed: int = 0,
                 col_time: str = "timestamp", device: str | None = "cpu", **kw: Any):
        super().__init__(max_len, d_model, n_head, n_layer, dropout, n_epochs, lr, batch_size,
                         seed, col_time, device, **kw)
        self.mask_prob = mask_prob

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        super().check_params()
        require_number('mask_prob', self.mask_prob, low=0, low_open=True, high=0.999)

    def _build(self, n_items):
        return BERT4Rec(n_items, self.max_len, self.cfg_, self.n_layer)

    def _train_rows(self, df):
        return training_windows(df, self.u, self.i, self.max_len, self.col_time)

    def _history_len(self):
        return self.max_len - 1                      # room for the [MASK] appended to score

    def _batch_loss(self, batch, generator):
        inp, lab = mask_items(batch, self.mask_prob, self.model.mask_id, generator)
        inp, lab = inp.to(self.device_), lab.to(self.device_)
        keep = lab >= 0
        logits = self.model.logits(self.model(inp)[keep])
        return F.cross_entropy(logits, lab[keep] - 1), int(keep.sum())

    def _score(self, seq):
        seq = torch.cat([seq, torch.full((len(seq), 1), self.model.mask_id, device=seq.device)],
                        1)
        return self.model.logits(self.model(seq)[:, -1])


# ----------------------------------------------------------------------------- aspect profiles
_EVENT_WEIGHT = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


def marketed_aspects(catalogue: pd.DataFrame, aspects: list[str], *, col_item: str = "item_id",
                     col_text: str = "description") -> pd.DataFrame:
    """Item x aspect 0/1 matrix: does the item's own text name the aspect? (Sellers describe
    an item by its strongest aspects.) Index item ID, one column per aspect."""
    require_columns(catalogue, [col_item, col_text], "the catalogue")
    if isinstance(aspects, str) or not aspects:
        raise DataError("aspects must be a non-empty list of aspect names; pass the vocabulary, "
                        "e.g. loaders.vocabulary()['aspects']")
    text = catalogue.set_index(col_item)[col_text].fillna("").str.lower()
    # an aspect is matched as written, as a whole word: re.escape keeps "c++" or "(x)" literal
    return pd.DataFrame({a: text.str.contains(rf"(?<!\w){re.escape(a.lower())}(?!\w)",
                                              regex=True).astype(float)
                         for a in aspects}, index=text.index)


def aspect_profile(events: pd.DataFrame, reviews: pd.DataFrame, catalogue: pd.DataFrame,
                   aspects_by_category: dict[str, list[str]], *, top: int = 3,
                   review_weight: float = 3.0, col_user: str = "user_id",
                   col_item: str = "item_id") -> pd.DataFrame:
    """Each user's ``top`` aspects, inferred from what they did and what they wrote.

    history: for every click (1), cart (2) and purchase (3), the aspects the item's text names,
    minus how often items *of that category* name them (so buying headphones is not evidence
    for every headphone aspect, only for the ones this pair stands out on);
    reviews: ``review_weight`` per review sentence the user wrote about an aspect.
    Only aspects of the categories the user interacted with compete. Returns one row per user
    with ``aspect_1..top`` and ``score_1..top`` (users with no events are not listed: there is
    nothing to infer from).
    """
    require_columns(events, [col_user, col_item, "event_type"], "events")
    require_columns(reviews, [col_user, "aspect"], "reviews")
    require_columns(catalogue, [col_item, "category", "description"], "the catalogue")
    unknown = set(events["event_type"]) - set(_EVENT_WEIGHT) - {"view"}
    if unknown:
        raise DataError(f"unknown event types {sorted(unknown)}; normalise them first "
                        "(preprocess.normalise_event_type)")
    aspects = sorted({a for v in aspects_by_category.values() for a in v})
    m = marketed_aspects(catalogue, aspects, col_item=col_item)
    cats = catalogue.set_index(col_item)["category"]
    contrast = m - m.groupby(cats).transform("mean")              # stands out in its category
    ev = events[events["event_type"] != "view"]
    if len(ev) == 0:
        raise DataError("no clicks, carts or purchases to infer interests from")
    missing = ~ev[col_item].isin(contrast.index)
    if missing.any():
        raise DataError(f"{int(missing.sum())} events are for items not in the catalogue")
    w = ev["event_type"].map(_EVENT_WEIGHT).to_numpy()
    hist = pd.DataFrame(contrast.loc[ev[col_item]].to_numpy() * w[:, None], columns=aspects)
    hist[col_user] = ev[col_user].to_numpy()
    score = hist.groupby(col_user).sum()
    said = (reviews[reviews["aspect"].isin(aspects)].groupby([col_user, "aspect"]).size()
            .unstack(fill_value=0).reindex(index=score.index, columns=aspects, fill_value=0))
    score = score + review_weight * said
    # only aspects of categories the user touched compete
    touched = (pd.DataFrame({col_user: ev[col_user].to_numpy(),
                             "category": cats.loc[ev[col_item]].to_numpy()})
               .drop_duplicates())
    allowed = pd.DataFrame(0.0, index=score.index, columns=aspects)
    for cat, users in touched.groupby("category")[col_user]:
        allowed.loc[users.unique(), [a for a in aspects_by_category.get(cat, []) if a in aspects]] = 1.0
    score = score.where(allowed > 0, -np.inf)
    vals = score.to_numpy()
    order = np.argsort(-vals, axis=1, kind="stable")[:, :top]
    out = pd.DataFrame({col_user: score.index})
    for r in range(top):
        out[f"aspect_{r + 1}"] = np.asarray(aspects)[order[:, r]]
        out[f"score_{r + 1}"] = np.take_along_axis(vals, order[:, r:r + 1], 1)[:, 0].round(3)
    return out


def aspect_precision(profile: pd.DataFrame, truth: pd.DataFrame, top: int = 3, *,
                     col_user: str = "user_id") -> float:
    """Mean over users of |inferred top-``top`` ∩ true top-``top``| / ``top``, for the users in
    ``profile`` (all must be in ``truth``)."""
    require_int("top", top, 1)
    cols = [f"aspect_{r + 1}" for r in range(top)]
    require_columns(profile, [col_user] + cols, "the profile")
    require_columns(truth, [col_user] + cols, "the truth")
    if len(profile) == 0:
        raise DataError("the profile is empty")
    t = truth.set_index(col_user).reindex(profile[col_user])
    if t[cols].isna().any().any():
        raise DataError("some profiled users are missing from the truth table")
    inferred = profile[cols].to_numpy()
    true = t[cols].to_numpy()
    hits = [len(set(a) & set(b)) for a, b in zip(inferred, true)]
    return float(np.mean(hits) / top)
