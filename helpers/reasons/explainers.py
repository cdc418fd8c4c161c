"""Explainers that need no language model: slot-filling templates, review retrieval, and PETER
(a personalised Transformer trained from scratch, Li, Zhang & Chen 2021)."""
from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from helpers.core.checks import (
    DataError,
    ParameterError,
    require_columns,
    require_count,
    require_id,
    require_id_pairs,
    require_int,
    require_number,
)
from helpers.core.params import Estimator
from helpers.metrics.text import tokenize
from helpers.models.attention import AttentionConfig, TransformerBlock, init_small_
from helpers.reasons.claims import FALLBACK_PREFIX

# ============================================================================ 1. templates
_HIGH_WORDS = ["excellent", "great", "superb", "outstanding"]
_MID_WORDS = ["decent", "solid all-round"]


def profile_map(profile: pd.DataFrame | None) -> dict[int, list[str]]:
    """``{user_id: [aspect_1, aspect_2, ...]}`` from an ``interest.aspect_profile`` frame."""
    if profile is None:
        return {}
    cols = [c for c in profile.columns if c.startswith("aspect_")]
    require_columns(profile, ["user_id"] + cols, "the profile")
    return {int(u): [a for a in row if isinstance(a, str)]
            for u, row in zip(profile["user_id"], profile[cols].to_numpy())}


class TemplateExplainer:
    """Slot-filling: the item's best-rated stated aspects that this user's *inferred* profile
    ranks highest. Faithful to the catalogue by construction; says the same few things."""

    def __init__(self, facts: dict[int, dict], profile: pd.DataFrame):
        self.facts, self.profile = facts, profile_map(profile)

    def explain_one(self, user: int, item: int) -> str:
        """One reason for ``(user, item)``: the item's high-rated aspects the user weighs, else a
        marked fallback.
        """
        user, item = require_id(user, "user"), require_id(item, "item")
        f = self.facts.get(item)
        if f is None:
            return FALLBACK_PREFIX + "Recommended because shoppers like you chose it."
        wanted = self.profile.get(user, [])
        good = [a for a in wanted if f["aspects"].get(a) == "high"]
        k = (user + item) % 4
        if len(good) >= 2:
            return (f"Recommended for its {_HIGH_WORDS[k]} {good[0]} and "
                    f"{_HIGH_WORDS[(k + 1) % 4]} {good[1]}, two things you look for.")
        if good:
            return f"Recommended for its {_HIGH_WORDS[k]} {good[0]}, which you care about."
        if f["aspects"].get("price") == "high":
            return "Recommended as good value for money in its category."
        return "It is popular with shoppers who like what you like."

    def explain(self, users, items) -> list[str]:
        """One reason per ``(users[k], items[k])`` pair, in order; the two must have one length."""
        users, items = require_id_pairs(users, items)
        return [self.explain_one(u, i) for u, i in zip(users, items)]

    def fallback_for(self, user: int, item: int) -> str:
        """The template's reason marked as a fallback (for another method that has none)."""
        return FALLBACK_PREFIX + self.explain_one(user, item).removeprefix(FALLBACK_PREFIX)


# ============================================================================ 2. retrieval
class RetrievalExplainer:
    """The review sentence about this item, from the training reviews, whose aspect this user's
    profile ranks highest (positive sentences first; ties: the most similar reviewer, i.e. the
    one sharing most profile aspects). Items nobody reviewed get the template, marked."""

    def __init__(self, reviews: pd.DataFrame, profile: pd.DataFrame, fallback: TemplateExplainer):
        require_columns(reviews, ["user_id", "item_id", "aspect", "sentence", "polarity"],
                        "reviews")
        self.profile, self.fallback = profile_map(profile), fallback
        self.by_item = {int(i): g[["user_id", "aspect", "sentence", "polarity"]].to_numpy()
                        for i, g in reviews.groupby("item_id")}

    def explain_one(self, user: int, item: int) -> str:
        """The review sentence about ``item`` whose aspect the user weighs most (ties: the reviewer
        most like the user); the fallback's reason when the item has no review.
        """
        rows = self.by_item.get(require_id(item, "item"))
        if rows is None:
            return self.fallback.fallback_for(user, item)
        mine = self.profile.get(require_id(user, "user"), [])
        best, best_key = None, None
        for reviewer, aspect, sentence, polarity in rows:
            rank = mine.index(aspect) if aspect in mine else len(mine)
            overlap = len(set(mine) & set(self.profile.get(int(reviewer), [])))
            key = (-(polarity > 0), rank, -overlap, sentence)
            if best_key is None or key < best_key:
                best, best_key = sentence, key
        return best

    def explain(self, users, items) -> list[str]:
        """One reason per ``(users[k], items[k])`` pair, in order; the two must have one length."""
        users, items = require_id_pairs(users, items)
        return [self.explain_one(u, i) for u, i in zip(users, items)]


# ============================================================================ 3. PETER
class WordVocab:
    """Word <-> id for PETER. ids 0..3 are <pad> <bos> <eos> <unk>; words seen fewer than
    ``min_count`` times in training map to <unk>."""
    PAD, BOS, EOS, UNK = 0, 1, 2, 3

    def __init__(self, texts, min_count: int = 1):
        counts = Counter(w for t in texts for w in tokenize(t))
        if not counts:
            raise DataError("no words to build a vocabulary from: the texts are empty")
        self.itos = ["<pad>", "<bos>", "<eos>", "<unk>"] + sorted(
            w for w, n in counts.items() if n >= min_count)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text: str, max_words: int) -> list[int]:
        """Word ids of the first ``max_words`` words of ``text``; unknown words get ``UNK``."""
        return [self.stoi.get(w, self.UNK) for w in tokenize(text)[:max_words]]

    def decode(self, ids) -> str:
        """Words for ``ids`` up to the first ``EOS``, padding and ``BOS`` skipped."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.EOS:
                break
            if i not in (self.PAD, self.BOS):
                words.append(self.itos[i])
        text = " ".join(words)
        text = re.sub(r" ([.,;:!?])", r"\1", text)
        return text[:1].upper() + text[1:]


def peter_mask(n_words: int, device=None) -> torch.Tensor:
    """(2 + n_words) x (2 + n_words) bool, True = may attend. Positions 0 (user) and 1 (item)
    see each other; every word sees the user, the item and the words before it (causal)."""
    if n_words < 1:
        raise ParameterError(f"n_words must be >= 1, got {n_words}")
    t = n_words + 2
    mask = torch.ones(t, t, dtype=torch.bool, device=device).tril()
    mask[:2, :2] = True
    return mask


class PETER(nn.Module):
    """Personalized Transformer for Explainable Recommendation (Li, Zhang & Chen, ACL 2021),
    from ``helpers.models.attention`` blocks. Input ``[user, item, <bos>, w1 .. wn]``; the hidden state
    at the user position predicts the rating, the one at the item position the bag of words of
    the explanation (the *context* task, which ties words to the pair), and each word position
    the next word. Ids 0 of users/items are 'unknown' (cold items land there)."""

    def __init__(self, n_users: int, n_items: int, vocab_size: int, max_words: int = 20,
                 d_model: int = 128, n_head: int = 4, n_layer: int = 2, dropout: float = 0.1):
        super().__init__()
        cfg = AttentionConfig(d_model=d_model, n_head=n_head, dropout=dropout)
        self.max_words = max_words
        self.user_emb = nn.Embedding(n_users + 1, d_model)
        self.item_emb = nn.Embedding(n_items + 1, d_model)
        self.word_emb = nn.Embedding(vocab_size, d_model, padding_idx=WordVocab.PAD)
        self.pos_emb = nn.Embedding(max_words + 3, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.to_word = nn.Linear(d_model, vocab_size)
        self.to_rating = nn.Sequential(nn.Linear(d_model, d_model), nn.Sigmoid(), nn.Linear(d_model, 1))
        self.apply(init_small_)

    def forward(self, user, item, words):
        """user, item: (b,); words: (b, t) starting with <bos> -> (rating (b,), context logits
        (b, V), word logits (b, t, V))."""
        if words.dim() != 2 or user.shape != (words.shape[0],) or item.shape != user.shape:
            raise DataError(f"user and item must be (b,) and words (b, t); got "
                            f"{tuple(user.shape)}, {tuple(item.shape)}, {tuple(words.shape)}")
        b, t = words.shape
        x = torch.cat([self.user_emb(user)[:, None], self.item_emb(item)[:, None],
                       self.word_emb(words)], dim=1)
        x = self.drop(x + self.pos_emb(torch.arange(t + 2, device=words.device)))
        real = torch.cat([torch.ones(b, 2, dtype=torch.bool, device=words.device),
                          words != WordVocab.PAD], dim=1)
        mask = peter_mask(t, words.device)[None, None] & real[:, None, None, :]
        mask = mask | torch.eye(t + 2, dtype=torch.bool, device=words.device)
        for block in self.blocks:
            x = block(x, mask)
        h = self.ln_f(x)
        return self.to_rating(h[:, 0])[:, 0], self.to_word(h[:, 1]), self.to_word(h[:, 2:])


class PETERExplainer(Estimator):
    """Trains :class:`PETER` on (user, item, rating, reason) rows and writes reasons greedily.
    Settings are checked by ``fit`` (:meth:`check_params`)."""

    def __init__(self, max_words: int = 20, d_model: int = 128, n_layer: int = 2, n_epochs: int = 20,
                 lr: float = 1e-3, batch_size: int = 128, context_weight: float = 1.0,
                 rating_weight: float = 0.1, seed: int = 0, device: str | None = None):
        self.max_words, self.d_model, self.n_layer = max_words, d_model, n_layer
        self.n_epochs, self.lr, self.batch_size, self.seed = n_epochs, lr, batch_size, seed
        self.context_weight, self.rating_weight = context_weight, rating_weight
        self.device = device
        self.losses: list[float] = []

    def check_params(self) -> None:
        """The settings, checked when ``fit`` starts (a :class:`ParameterError` says which)."""
        for name in ("max_words", "d_model", "n_layer", "n_epochs", "batch_size"):
            require_count(name, getattr(self, name))
        require_int("seed", self.seed, 0)
        require_number("lr", self.lr, low=0, low_open=True)
        require_number("context_weight", self.context_weight, low=0)
        require_number("rating_weight", self.rating_weight, low=0)
        torch.device(self.device or "cpu")          # a malformed device name is an error

    def fit(self, rows: pd.DataFrame) -> "PETERExplainer":
        """Train on ``rows`` (``user_id``, ``item_id``, ``rating``, ``reason``) and return
        ``self``. A :class:`ParameterError` for a setting out of range, a :class:`DataError` for
        a missing column or a NaN rating."""
        self.check_params()
        self.device_ = torch.device(self.device or "cpu")
        require_columns(rows, ["user_id", "item_id", "rating", "reason"], "PETER's training rows")
        if rows["rating"].isna().any():
            raise DataError("some training rows have a NaN rating; PETER's rating head needs one")
        torch.manual_seed(self.seed)
        self.vocab = WordVocab(rows["reason"])
        self.users = {int(u): k + 1 for k, u in enumerate(sorted(rows["user_id"].unique()))}
        self.items = {int(i): k + 1 for k, i in enumerate(sorted(rows["item_id"].unique()))}
        m = self.max_words
        seqs = [self.vocab.encode(r, m) for r in rows["reason"]]
        words = torch.zeros(len(rows), m + 1, dtype=torch.long)      # <bos> w1..wn
        target = torch.zeros(len(rows), m + 1, dtype=torch.long)     # w1..wn <eos>
        for r, s in enumerate(seqs):
            words[r, 0], words[r, 1:len(s) + 1] = WordVocab.BOS, torch.tensor(s, dtype=torch.long)
            target[r, :len(s)], target[r, len(s)] = torch.tensor(s, dtype=torch.long), WordVocab.EOS
        u = torch.tensor([self.users[int(x)] for x in rows["user_id"]])
        i = torch.tensor([self.items[int(x)] for x in rows["item_id"]])
        y = torch.tensor(rows["rating"].to_numpy(), dtype=torch.float32)
        self.model = PETER(len(self.users), len(self.items), len(self.vocab), max_words=self.max_words,
                           d_model=self.d_model, n_layer=self.n_layer).to(self.device_)
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        self.model.train()
        for _ in tqdm(range(self.n_epochs), desc="PETER", leave=False):
            total, n = 0.0, 0
            for idx in torch.randperm(len(rows), generator=gen).split(self.batch_size):
                bw, bt = words[idx].to(self.device_), target[idx].to(self.device_)
                rating, ctx, logits = self.model(u[idx].to(self.device_), i[idx].to(self.device_), bw)
                real = bt != WordVocab.PAD
                l_word = F.cross_entropy(logits[real], bt[real])
                # context: every word of the reason from the item position (bag of words)
                l_ctx = -(F.log_softmax(ctx, -1)[:, None, :].expand(-1, bt.shape[1], -1)
                          .gather(2, bt[..., None])[..., 0] * (real & (bt != WordVocab.EOS))).sum() \
                    / (real & (bt != WordVocab.EOS)).sum().clamp(min=1)
                l_rat = F.mse_loss(rating, y[idx].to(self.device_))
                loss = l_word + self.context_weight * l_ctx + self.rating_weight * l_rat
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, n = total + float(loss.detach()) * len(idx), n + len(idx)
            self.losses.append(total / n)
        self.model.eval()
        return self

    @torch.inference_mode()
    def explain(self, users, items, batch_size: int = 512) -> list[str]:
        """Greedy decoding, up to ``max_words`` words. Unknown users/items use id 0 (a reason
        for an unseen pair is still produced: PETER has no facts to fall back on)."""
        if not hasattr(self, "model"):
            raise RuntimeError("call fit() before explain()")
        users, items = require_id_pairs(users, items)
        u = torch.tensor([self.users.get(int(x), 0) for x in users])
        i = torch.tensor([self.items.get(int(x), 0) for x in items])
        out = []
        for s in range(0, len(u), batch_size):
            bu, bi = u[s:s + batch_size].to(self.device_), i[s:s + batch_size].to(self.device_)
            words = torch.full((len(bu), 1), WordVocab.BOS, device=self.device_)
            for _ in range(self.max_words):
                _, _, logits = self.model(bu, bi, words)
                words = torch.cat([words, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
                if (words == WordVocab.EOS).any(1).all():
                    break
            out += [self.vocab.decode(w[1:]) for w in words.cpu()]
        return out
