"""Privacy for a recommender (chapter 08c): what a model remembers about one shopper, how to bound
it, and how to keep a shopper's data on their own side.

    model = privacy.HistoryModel(n_items, 64)
    report = privacy.train(model, histories, epsilon=3.0, delta=1e-4, epochs=20)   # DP-SGD
    auc = privacy.membership_auc(model, member_histories, other_histories)

* **A model with no user table.** Matrix factorisation keeps one vector per user; under
  differential privacy *per user*, noise would be added to every user's row at every step and
  drown them all. :class:`HistoryModel` instead reads a user from their history (the mean of
  their items' input vectors, the "asymmetric" factorisation of Koren 2008 / FISM), and scores
  every item with a second table: the only parameters are item parameters, and a user is one
  training example. Clipping each *example's* gradient then bounds what one **user** — every
  event of theirs together — can change: the (epsilon, delta) guarantee is per user, not per
  event (a per-event guarantee would let a shopper with 200 events leak 200 times as much).
* **DP-SGD** (Abadi et al., 2016) through Opacus: Poisson-sampled batches, each user's gradient
  clipped to ``max_grad_norm``, Gaussian noise ``noise_multiplier * max_grad_norm`` added to the
  sum, the privacy loss tracked by Opacus's accountant. ``epsilon=None`` trains the same model
  without privacy (the same optimiser, sampling and steps): the comparison isolates the cost of
  clipping and noise.
* **Membership inference** (Yeom et al., 2018): the attacker guesses "this shopper was in the
  training data" when the model fits their history unusually well (low loss). Its ROC AUC over
  members and non-members: 0.5 = the model reveals nothing about who was in the data.
* **Federated averaging** (McMahan et al., 2017), simulated: clients (groups of users) train a
  copy locally, the server averages the weights by client size; only weights travel.
* :func:`leaks` — a reason must never carry another shopper's ID or a run of their review text.
"""
from __future__ import annotations

import contextlib
import copy
import math
import re
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from numpy.typing import ArrayLike

from helpers.core.checks import DataError, require_columns, require_int, require_number
from helpers.data.preprocess import IdMap

__all__ = ["HistoryModel", "MemberSplit", "member_split", "histories", "train", "evaluate", "user_losses", "membership_auc",
           "membership_auc_ci", "fedavg", "clip_and_noise", "leaks", "TrainReport"]


def histories(interactions: pd.DataFrame, users: ArrayLike, item_map: IdMap, *,
              col_user: str = "user_id",
              col_item: str = "item_id") -> torch.Tensor:
    """A (len(users), n_items) 0/1 float tensor: row k marks the items ``users[k]`` met in
    ``interactions``, in the order of ``users`` (a user without interactions gets a zero row).
    Items unknown to ``item_map`` are an error, never dropped."""
    require_columns(interactions, [col_user, col_item], "the interactions")
    users = pd.Index(np.asarray(users))
    if not users.is_unique:
        raise DataError(f"users repeat (e.g. {list(users[users.duplicated()][:3])}): one row per "
                        "user.")
    sub = interactions[interactions[col_user].isin(users)]
    rows = users.get_indexer(sub[col_user])
    cols = item_map.encode(sub[col_item], "item")
    x = torch.zeros(len(users), len(item_map))
    x[torch.as_tensor(rows), torch.as_tensor(cols)] = 1.0
    return x


class MemberSplit(NamedTuple):
    """The membership experiment's two halves of the test users: histories (``x_*``, from the
    training interactions) and each user's held-out item index (``t_*``)."""
    members: np.ndarray
    others: np.ndarray
    x_members: torch.Tensor
    x_others: torch.Tensor
    t_members: np.ndarray
    t_others: np.ndarray


def member_split(train: pd.DataFrame, test: pd.DataFrame, item_map: IdMap, seed: int = 0, *,
                 col_user: str = "user_id", col_item: str = "item_id") -> MemberSplit:
    """Split the users of ``test`` (one held-out item each, e.g. ``leave_last_out``) at random
    into members (trained on) and others (never seen), half each (``seed`` draws the halves)."""
    require_columns(test, [col_user, col_item], "the test interactions")
    if test[col_user].duplicated().any():
        raise DataError("test must hold one held-out item per user (e.g. leave_last_out's).")
    users = np.sort(test[col_user].unique())
    members = np.sort(np.random.default_rng(seed).choice(users, len(users) // 2, replace=False))
    others = np.setdiff1d(users, members)
    target = test.set_index(col_user)[col_item]
    return MemberSplit(members, others,
                       histories(train, members, item_map, col_user=col_user, col_item=col_item),
                       histories(train, others, item_map, col_user=col_user, col_item=col_item),
                       item_map.encode(target.loc[members], "item"),
                       item_map.encode(target.loc[others], "item"))


class HistoryModel(nn.Module):
    """Scores every item for a user given only their history: ``user = mean of the input vectors
    of the items in the history``; ``scores = user @ output vectors + item bias``. ``forward``
    takes a (batch, n_items) 0/1 history and returns (batch, n_items) logits."""

    def __init__(self, n_items: int, dim: int = 64, seed: int = 0):
        super().__init__()
        require_int("n_items", n_items, 1)
        require_int("dim", dim, 1)
        g = torch.Generator().manual_seed(seed)
        self.inp = nn.Linear(n_items, dim, bias=False)
        self.out = nn.Linear(dim, n_items)
        with torch.no_grad():
            self.inp.weight.copy_(torch.randn(dim, n_items, generator=g) * 0.1)
            self.out.weight.copy_(torch.randn(n_items, dim, generator=g) * 0.1)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.inp.in_features:
            raise DataError(f"histories must be (batch, {self.inp.in_features}), got "
                            f"{tuple(x.shape)}.")
        return self.out(self.inp(x / x.sum(1, keepdim=True).clamp(min=1.0)))


def _loss_per_user(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multinomial negative log-likelihood of each user's items, averaged over their items."""
    return -(F.log_softmax(logits, dim=1) * target).sum(1) / target.sum(1).clamp(min=1.0)


class _MultinomialLoss(nn.Module):
    """:func:`_loss_per_user` as a criterion with the ``reduction`` switch Opacus's ghost
    clipping needs (it asks for the per-user losses, then backpropagates twice)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per = _loss_per_user(logits, target)
        return per if self.reduction == "none" else per.mean()


def _check_histories(x, n_items: int, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != n_items:
        raise DataError(f"{what} must be a (users, {n_items}) tensor from privacy.histories, got "
                        f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}.")
    if len(x) == 0:
        raise DataError(f"{what} is empty.")
    if not torch.isfinite(x).all() or ((x != 0) & (x != 1)).any():
        raise DataError(f"{what} must hold only 0 and 1.")
    return x.float()


@dataclass
class TrainReport:
    epsilon: float              # the privacy spent (inf without DP)
    delta: float
    noise_multiplier: float     # 0 without DP
    max_grad_norm: float        # inf without clipping
    steps: int
    losses: list


def train(model: HistoryModel, x: torch.Tensor, *, epsilon: float | None, delta: float = 1e-4,
          epochs: int = 20, batch_size: int = 64, lr: float = 3e-3, max_grad_norm: float = 1.0,
          input_dropout: float = 0.5, seed: int = 0, device: str = "cpu",
          grad_sample_mode: str = "ghost", progress: bool = True) -> TrainReport:
    """Train ``model`` on the histories ``x`` (one row per user) to predict each user's items
    from a random half of them (``input_dropout``), with Adam. ``epsilon``: the target privacy
    per *user* for DP-SGD through Opacus (Poisson sampling, each user in each step with
    probability ``1 / ceil(len(x) / batch_size)``,
    ``max_grad_norm`` clipping, noise calibrated to reach ``(epsilon, delta)`` after ``epochs``);
    ``None`` for the same training without privacy. ``grad_sample_mode``: "ghost" (Opacus's
    ghost clipping: each user's gradient norm from activations and output gradients, no
    per-user gradient ever materialised; the default, the faster one in
    ``benchmarks/results/16_privacy_cpu.md``) or "hooks" (per-user
    gradients stored, then clipped: the textbook form). Returns a :class:`TrainReport`."""
    from tqdm.auto import tqdm

    x = _check_histories(x, model.inp.in_features, "x")
    n = len(x)
    if epsilon is not None:
        if isinstance(epsilon, (int, float)) and math.isinf(epsilon):
            raise DataError("epsilon=inf is training without privacy: pass epsilon=None.")
        require_number("epsilon", epsilon, low=0.0, low_open=True)
    require_number("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    if epsilon is not None and delta >= 1.0 / n:
        raise DataError(f"delta={delta} is not below 1/n = {1 / n:.2g} for {n} users: a "
                        "mechanism that publishes one user's whole history at random would meet "
                        "it. Use delta < 1/n (e.g. 1e-4).")
    require_int("epochs", epochs, 1)
    require_int("batch_size", batch_size, 1)
    require_number("lr", lr, low=0.0, low_open=True)
    require_number("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    require_number("input_dropout", input_dropout, low=0.0, high=1.0, high_open=True)
    if grad_sample_mode not in ("ghost", "hooks"):
        raise DataError(f"grad_sample_mode must be 'ghost' or 'hooks', got {grad_sample_mode!r}.")
    torch.manual_seed(seed)
    model.to(device).train()
    criterion = _MultinomialLoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.utils.data.TensorDataset(x)
    g = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(n / batch_size)
    if epsilon is None:
        # the same Poisson sampling as Opacus: each user joins each step with probability
        # 1 / steps_per_epoch, so both arms take the same number of steps of the same mean size
        loader = torch.utils.data.DataLoader(
            data, batch_sampler=_PoissonBatches(n, 1 / steps_per_epoch, steps_per_epoch, g))
        net, sigma = model, 0.0
    else:
        from opacus import PrivacyEngine

        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, generator=g)
        with _quiet():
            engine = PrivacyEngine(accountant="prv")
            made = engine.make_private_with_epsilon(
                module=model, optimizer=opt, data_loader=loader, criterion=criterion,
                target_epsilon=epsilon, target_delta=delta, epochs=epochs,
                max_grad_norm=max_grad_norm, grad_sample_mode=grad_sample_mode,
                noise_generator=torch.Generator().manual_seed(seed + 1))
        if grad_sample_mode == "ghost":
            net, opt, criterion, loader = made
        else:
            net, opt, loader = made
        sigma = opt.noise_multiplier
    drop = torch.Generator().manual_seed(seed + 2)
    losses, steps = [], 0
    for _ in tqdm(range(epochs), desc="DP-SGD epochs" if epsilon else "epochs",
                  disable=not progress):
        total = 0.0
        for (xb,) in loader:
            if len(xb) == 0:
                continue
            xb = xb.to(device)
            keep = (torch.rand(xb.shape, generator=drop) >= input_dropout).to(device)
            loss = criterion(net(xb * keep), xb)
            opt.zero_grad(set_to_none=True)
            with _quiet():
                loss.backward()
            opt.step()
            total += loss.item() * len(xb)
            steps += 1
        losses.append(total / n)
    if epsilon is None:
        spent = float("inf")
    else:
        with _quiet():
            spent = float(engine.get_epsilon(delta))
    if epsilon is not None:          # Opacus trained `model`'s own parameters; drop its hooks
        net.to_standard_module()
    model.eval()
    return TrainReport(spent, delta if epsilon is not None else 0.0, sigma,
                       max_grad_norm if epsilon is not None else float("inf"), steps, losses)


@contextlib.contextmanager
def _quiet():
    """Silence three Opacus/torch notices that are expected here: the non-cryptographic RNG
    (fine for teaching, not for a release: ``secure_mode``), the backward hook firing on outputs
    (our inputs need no gradient), and the RDP bound's order range at large epsilon (the bound
    is then slightly loose, i.e. conservative)."""
    with warnings.catch_warnings():
        for msg in (".*[Ss]ecure RNG.*", ".*[Ff]ull backward hook.*", ".*largest alpha.*"):
            warnings.filterwarnings("ignore", message=msg)
        yield


class _PoissonBatches(torch.utils.data.Sampler):
    """Batches where each of ``n`` examples joins independently with probability ``rate``."""

    def __init__(self, n, rate, steps, generator):
        self.n, self.rate, self.steps, self.g = n, rate, steps, generator

    def __len__(self):
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            yield torch.nonzero(torch.rand(self.n, generator=self.g) < self.rate).ravel().tolist()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, targets: ArrayLike, k: int = 10) -> pd.DataFrame:
    """Per-user HR@k and NDCG@k of one held-out item each (``targets``: item indices), the
    items of ``inputs`` excluded from the ranking (a target among them cannot be hit); ties
    with the target count half. ``model``: a :class:`HistoryModel`, or a
    (n_items,) tensor of scores shared by every user (e.g. popularity)."""
    if isinstance(model, torch.Tensor):
        inputs = _check_histories(inputs, len(model), "inputs")
        s = model.float().expand(len(inputs), -1)
    else:
        inputs = _check_histories(inputs, model.inp.in_features, "inputs")
        s = model(inputs.to(_device(model))).cpu()
    require_int("k", k, 1)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    if t.shape != (len(inputs),):
        raise DataError(f"one target per user: {len(inputs)} inputs, {tuple(t.shape)} targets.")
    if (t < 0).any() or (t >= s.shape[1]).any():
        raise DataError(f"targets must be item indices in 0..{s.shape[1] - 1}.")
    s = s.masked_fill(inputs > 0, float("-inf"))
    st = s[torch.arange(len(s)), t][:, None]
    # items scored the same as the target count half: the expected rank under random tie-breaks
    rank = (s > st).sum(1) + 0.5 * ((s == st).sum(1) - 1)
    hit = rank < k
    return pd.DataFrame({f"hr@{k}": hit.float().numpy(),
                         f"ndcg@{k}": torch.where(hit, 1 / torch.log2(rank + 2.0), 0.0).numpy()})


@torch.no_grad()
def user_losses(model: HistoryModel, x: torch.Tensor) -> np.ndarray:
    """Each user's loss on their own whole history (no dropout): what the attacker observes."""
    x = _check_histories(x, model.inp.in_features, "x").to(_device(model))
    return _loss_per_user(model(x), x).cpu().numpy()


def _attack_auc(loss_members: np.ndarray, loss_others: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(loss_members)), np.zeros(len(loss_others))]
    return float(roc_auc_score(y, -np.r_[loss_members, loss_others]))   # lower loss: "member"


def membership_auc(model: HistoryModel, members: torch.Tensor, others: torch.Tensor) -> float:
    """ROC AUC of the loss-threshold membership attack: how well a lower loss on a user's
    history singles out the users trained on (``members``) from ``others``. 0.5: nothing."""
    return _attack_auc(user_losses(model, members), user_losses(model, others))


def membership_auc_ci(model: HistoryModel, members: torch.Tensor, others: torch.Tensor,
                      n_boot: int = 200, level: float = 0.95, seed: int = 0) -> dict:
    """:func:`membership_auc` with a percentile bootstrap interval: members and others are
    resampled separately (each group keeps its size), the losses computed once. Returns
    ``{"auc", "lo", "hi"}``."""
    require_int("n_boot", n_boot, 1)
    require_number("level", level, low=0.0, high=1.0, low_open=True, high_open=True)
    lm, lo = user_losses(model, members), user_losses(model, others)
    rng = np.random.default_rng(seed)
    boot = [_attack_auc(lm[rng.integers(0, len(lm), len(lm))], lo[rng.integers(0, len(lo), len(lo))])
            for _ in range(n_boot)]
    q = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {"auc": _attack_auc(lm, lo), "lo": float(q[0]), "hi": float(q[1])}


def fedavg(model: HistoryModel, clients: list[torch.Tensor], *, rounds: int = 10,
           local_epochs: int = 1, batch_size: int = 32, lr: float = 3e-3,
           input_dropout: float = 0.5, seed: int = 0, device: str = "cpu",
           progress: bool = True) -> dict:
    """Federated averaging, simulated: each round every client starts from the global weights,
    trains ``local_epochs`` on its own histories (Adam, fresh each round), and sends its weights
    back; the server averages them weighted by the clients' user counts. ``model`` ends with the
    global weights. Returns the bytes each way (float32 weights) and the rounds run."""
    from tqdm.auto import tqdm

    if not isinstance(clients, (list, tuple)) or not clients:
        raise DataError("clients must be a non-empty list of history tensors, one per client.")
    clients = [_check_histories(c, model.inp.in_features, f"client {j}")
               for j, c in enumerate(clients)]
    require_int("rounds", rounds, 1)
    require_int("local_epochs", local_epochs, 1)
    sizes = torch.tensor([len(c) for c in clients], dtype=torch.float64)
    weight = (sizes / sizes.sum()).tolist()
    n_params = sum(p.numel() for p in model.parameters())
    for r in tqdm(range(rounds), desc="FedAvg rounds", disable=not progress):
        states = []
        for j, c in enumerate(clients):
            local = copy.deepcopy(model)
            train(local, c, epsilon=None, epochs=local_epochs, batch_size=min(batch_size, len(c)),
                  lr=lr, input_dropout=input_dropout, seed=seed + 1000 * r + j, device=device,
                  progress=False)
            states.append(local.state_dict())
        model.load_state_dict({k: sum(w * s[k] for w, s in zip(weight, states))
                               for k in states[0]})
    model.eval()
    per_round = 4 * n_params * len(clients)
    return {"rounds": rounds, "bytes down": per_round * rounds, "bytes up": per_round * rounds,
            "parameters": n_params}


def clip_and_noise(per_sample_grads: torch.Tensor, max_grad_norm: float, noise_multiplier: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One DP-SGD aggregation, written out: clip each row (one example's flattened gradient) to
    L2 norm ``max_grad_norm``, sum, add N(0, (noise_multiplier * max_grad_norm)^2) to every
    coordinate, divide by the batch size. (Opacus does this inside ``DPOptimizer``.) The inputs
    are checked here; the step is :func:`_clip_and_noise`, chapter 08c's exercise line for line
    (``tests/test_mirror.py`` holds them equal)."""
    g = per_sample_grads
    if not isinstance(g, torch.Tensor) or g.ndim != 2 or len(g) == 0:
        raise DataError("per_sample_grads must be a non-empty (batch, n_params) tensor.")
    require_number("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
    require_number("noise_multiplier", noise_multiplier, low=0.0)
    return _clip_and_noise(g, max_grad_norm, noise_multiplier, generator)


def _clip_and_noise(per_sample_grads, max_grad_norm, noise_multiplier, generator=None):
    """The privatised mean gradient of one DP-SGD step."""
    g = per_sample_grads
    norms = g.norm(dim=1, keepdim=True)
    clipped = g * (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    noise = torch.normal(0.0, noise_multiplier * max_grad_norm, size=g.shape[1:], generator=generator)
    return (clipped.sum(0) + noise) / len(g)


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def leaks(reasons: list[str], users: ArrayLike, reviews: pd.DataFrame, *, min_words: int = 6,
          col_user: str = "user_id", col_text: str = "sentence") -> pd.DataFrame:
    """Which reasons carry another shopper's data: a user ID of someone else (as a number in the
    text) or a run of ``min_words`` consecutive words from a review written by someone else.
    ``reasons[k]`` is shown to ``users[k]``; ``reviews`` holds everyone's review sentences.
    Returns one row per reason: ``other_id``, ``other_review`` (bool) and ``leak`` (either)."""
    require_columns(reviews, [col_user, col_text], "reviews")
    require_int("min_words", min_words, 2)
    reasons, users = list(reasons), list(np.asarray(users))
    if len(reasons) != len(users):
        raise DataError(f"{len(reasons)} reasons but {len(users)} users: one user per reason.")
    grams: dict[tuple, set] = {}
    for u, text in zip(reviews[col_user].to_numpy(), reviews[col_text].astype(str)):
        w = _TOKEN.findall(text.lower())
        for s in range(len(w) - min_words + 1):
            grams.setdefault(tuple(w[s:s + min_words]), set()).add(u)
    ids = set(map(str, pd.unique(reviews[col_user])))
    rows = []
    for text, u in zip(reasons, users):
        if not isinstance(text, str):
            raise DataError(f"a reason must be a string, got {type(text).__name__}.")
        w = _TOKEN.findall(text.lower())
        other_id = any(t in ids and t != str(u) for t in w if t.isdigit())
        other_review = any(grams.get(tuple(w[s:s + min_words]), set()) - {u}
                           for s in range(len(w) - min_words + 1))
        rows.append({"other_id": other_id, "other_review": other_review,
                     "leak": other_id or other_review})
    return pd.DataFrame(rows)
