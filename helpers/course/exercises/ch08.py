"""Exercises of chapter 08 (diversity, real time, privacy), each checked against an independent
reference: scikit-learn's ``cosine_distances`` for a list's diversity and a brute-force
re-computation of MMR's objective over every remaining candidate (08a, q1-q2); scikit-learn's
weighted ``Ridge`` for the fold-in solve and a toy model whose hit rate is known for the
prequential replay (08b, q3-q4); scikit-learn's ``roc_auc_score`` for the membership attack and
Opacus's ``DPOptimizer`` for one DP-SGD step's clipped, noised gradient (08c, q5-q6). The three
"vary and explain" exercises, named after the others so that no name moves, against the course's
own re-runs: MMR on a smaller candidate pool (08a, q7), the fold-in replay with the events folded
in by the hundred (08b, q8), the membership attack on a model trained three times as long (08c,
q9)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.course.exercises import Exercise, Incorrect, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import preprocess as pp
from helpers.evaluation import offline as E
from helpers.models import cf, interest as I, privacy as P
from helpers.serving import online, rerank as R

_NB_A = "08a_diversity.ipynb"


def _brute_mmr(r, s, k, lam, scaled: bool = True):
    """MMR from its definition: every step scores every remaining candidate from scratch.
    ``scaled=False`` is the common mistake (raw scores), for the hint."""
    rs = (r - r.min()) / (r.max() - r.min()) if scaled else r
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
            unscaled = _brute_mmr(r, s, k, lam, scaled=False)
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


q2 = Exercise(name="ch08.q2", title="Write mmr(relevance, similarity, k, lam)", var="mmr",
              checker=_check_mmr, notebook=_NB_A,
              hint_text="Scale `r = (r - r.min()) / (r.max() - r.min())`; start with "
                        "`chosen = [argmax(r)]` and `closest = similarity[chosen[0]]`; then "
                        "k - 1 times: `gain = lam * r - (1 - lam) * closest`, set the chosen "
                        "ones to `-inf`, take the argmax, and update `closest = "
                        "np.maximum(closest, similarity[j])`.",
              nudge=("Start from the most relevant item. Then, again and again, take the candidate "
                     "with the best trade-off between its relevance (scaled to 0..1) and how close "
                     "it is to the nearest item already in the list."))


def _check_ild(fn) -> str:
    from sklearn.metrics.pairwise import cosine_distances

    rng = np.random.default_rng(2)
    cases = [rng.normal(size=(10, 8)), rng.normal(size=(3, 5)) * [[1.0], [10.0], [0.1]],
             np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])]
    for v in cases:
        d = cosine_distances(v)
        want = d[np.triu_indices(len(v), k=1)].mean()
        got = fn(v.copy())
        if isinstance(got, bool) or not isinstance(got, (float, np.floating, int, np.integer)):
            raise Incorrect(f"return one number, got {shape_of(got)}.")
        if abs(float(got) - want) > 1e-6:
            hint = ""
            if abs(float(got) - d.mean()) < 1e-6:
                hint = (" That averages the diagonal too (an item's distance to itself, 0): "
                        "average over the k(k-1)/2 pairs of different items.")
            elif abs(float(got) - (1 - (v @ v.T)[np.triu_indices(len(v), 1)].mean())) < 1e-6:
                hint = " Normalise the vectors first: cosine, not the raw dot product."
            raise Incorrect(f"{len(v)} items: the mean cosine distance over pairs (scikit-learn's "
                            f"cosine_distances) is {want:.4f}; you gave {float(got):.4f}.{hint}")
    return ("It equals the mean of scikit-learn's cosine_distances over distinct pairs on three "
            "lists (differently scaled vectors and duplicates included).")


q1 = Exercise(name="ch08.q1", title="Write ild(vectors): the intra-list diversity of one list",
              var="ild", checker=_check_ild, notebook=_NB_A,
              hint_text="`u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)`; "
                        "`d = 1 - u @ u.T`; average `d[np.triu_indices(len(u), k=1)]`.",
              nudge=("Turn every pair of different items into a distance (one minus their cosine "
                     "similarity) and average those distances; an item's distance to itself does "
                     "not count."))


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


q3 = Exercise(name="ch08.q3", title="Write fold_in(Y, items, reg, alpha): one user's ALS solve",
              var="fold_in", checker=_check_fold_in, notebook=_NB_B,
              hint_text="`y = Y[items]`; `d = Y.shape[1]` (the number of factors); "
                        "`A = Y.T @ Y + reg * np.eye(d) + alpha * y.T @ y`; "
                        "`b = (1 + alpha) * y.sum(axis=0)`; return `np.linalg.solve(A, b)`.",
              nudge=("With the item factors fixed, a user's factors solve a ridge regression: "
                     "every item is a sample, the items they met are targets of 1 with extra "
                     "weight alpha, all others targets of 0. Write its normal equations."))


class _LastItem:
    """A toy live model: recommends the k items it learnt most recently for anyone."""

    def __init__(self):
        self.recent = []

    def recommend(self, user, k):
        return list(reversed(self.recent[-k:]))

    def learn(self, user, item):
        self.recent.append(item)


def _check_prequential(fn) -> str:
    import pandas as pd

    rng = np.random.default_rng(8)
    items = rng.integers(0, 6, 200)
    stream = pd.DataFrame({"user_id": rng.integers(0, 5, 200), "item_id": items,
                           "timestamp": np.arange(200)})
    model = _LastItem()
    got = fn(stream.copy(), model.recommend, model.learn, 3)
    got = np.asarray(got)
    if got.shape != (200,):
        raise Incorrect(f"return one hit (True/False) per event, 200 here; got shape "
                        f"{shape_of(got)}.")
    want = np.array([items[t] in list(reversed(list(items[max(0, t - 3):t]))) for t in range(200)])
    if (got.astype(bool) == want).all():
        if len(model.recent) != 200:
            raise Incorrect("learn every event once, after predicting it.")
        shuffled = stream.sample(frac=1.0, random_state=0)
        model2 = _LastItem()
        again = np.asarray(fn(shuffled, model2.recommend, model2.learn, 3)).astype(bool)
        if model2.recent != list(items):
            raise Incorrect("replay the events in time order (sort by 'timestamp'), whatever "
                            "order the table arrives in.")
        # rows came shuffled: hits in time order, or in the order the rows were given
        if not ((again == want).all() or (again == want[shuffled.index.to_numpy()]).all()):
            raise Incorrect("return the hits in time order (or in the order of the rows you "
                            "were given); they match neither.")
        return ("It predicts before it learns, event by event in time order: the toy model's "
                f"{want.mean():.0%} hit rate exactly.")
    if got.astype(bool).all():
        raise Incorrect("every event is a hit: the model learnt the event before it was asked "
                        "to predict it. Predict first, then learn.")
    raise Incorrect(f"a toy model that recommends the 3 items it learnt last hits "
                    f"{want.mean():.0%} of this stream; your replay gives {got.mean():.0%}.")


q4 = Exercise(name="ch08.q4", title="Write prequential_hits(stream, recommend, learn, k)",
              var="prequential_hits", checker=_check_prequential, notebook=_NB_B,
              hint_text="Sort by `timestamp`; for each row: `hit = item in recommend(user, k)`, "
                        "*then* `learn(user, item)`; collect the hits.",
              nudge=("Walk through the events in time order. For each, first ask the model, then "
                     "tell it: the other order scores the model on what it was just told."))


def _fold_in_hr_by_batch(batches=(1, 100)) -> tuple[float, ...]:
    """HR@10 of chapter 08b's fold-in replay (quick profile: ShopWorld's interactions, the cut
    at their timestamps' 0.8 quantile, implicit ALS with 64 factors and 15 sweeps) when the
    waiting events are folded in at once every ``n`` events, for each ``n`` in ``batches``.
    Every event is ranked among the items its shopper has not met, in training or earlier in
    the stream, whether those are folded in yet or not: ``online.replay_fold_in``, the
    chapter's own replay."""
    sw = pp.clean_shopworld(write=False)
    events = sw["events"]
    inter = events[events["event_type"] != "view"].sort_values("timestamp", kind="stable")
    inter = inter.drop_duplicates(["user_id", "item_id"])
    cut = inter["timestamp"].quantile(0.8)
    train, stream = inter[inter["timestamp"] < cut], inter[inter["timestamp"] >= cut]
    um, im = pp.build_id_map(train["user_id"]), pp.build_id_map(sw["catalogue"]["item_id"])
    stream = stream[stream["user_id"].isin(um.ids)]
    static = cf.ImplicitALS(64, n_iter=15).fit(train, um, im)
    return tuple(float(online.replay_fold_in(static, train, stream, every=n).mean())
                 for n in batches)


q8 = Vary(name="ch08.q8", notebook=_NB_B, var="vary_fold",
          title="Vary and explain: fold in every 100 events instead of every event",
          measure=_fold_in_hr_by_batch, quantity="fold-in's prequential HR@10",
          expect="down",
          why=Choice(
              "What explains how fold-in's HR@10 changed when the waiting events were folded in "
              "every 100 events instead of after each one?",
              {"a": "One solve over many events is less exact than one solve per event, so the "
                    "factors folded in from a batch of 100 are worse.",
               "b": "Folding in a batch updates many shoppers at once, so the item factors "
                    "shift towards the batch's items and every list improves.",
               "c": "Until its batch is folded in, an item the shopper met earlier in the stream "
                    "stays among the candidates and takes a slot in the list.",
               "d": "A shopper's events come in bursts (one visit, several items within "
                    "minutes), so their next event often arrives while their previous one is "
                    "still waiting to be folded in: for that event the list knows no more of "
                    "the stream than the static model's."},
              "d",
              {"a": "The solve is exact either way: once a batch is folded in, every shopper in "
                    "it has exactly the factors that folding in one event at a time gives.",
               "b": "Fold-in re-solves users' factors only; the item factors Y stay fixed. And "
                    "compare the two printed numbers: HR@10 fell.",
               "c": "`top_unmet` leaves out every item met so far, folded in or not (`met` "
                    "grows at once): the candidates are the same at both settings.",
               "d": "Right: what fold-in adds is the shopper's latest events, and in a burst "
                    "those are the ones still waiting. How often to fold in is a real-time knob."}),
          hint_text="Set `FOLD_EVERY = 100`, run that cell and the next, copy the HR@10 it "
                    "prints into `value`, and compare it with fold-in's HR@10 in section 2's "
                    "table.",
          nudge=("How long after a shopper's previous event does their next one usually come, "
                 "and how many hours do 100 events of this stream span?"))


_NB_C = "08c_privacy.ipynb"


def _opacus_noiseless_grad(max_norm: float, seed: int):
    """A tiny linear model's batch gradient as Opacus's DPOptimizer computes it with no noise:
    per-example gradients clipped to ``max_norm``, summed, divided by the batch size. Returns
    the per-example gradients written out (batch, n_params) and Opacus's result (n_params,)."""
    import warnings

    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(6, 3)
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 6, generator=g))
        model.bias.copy_(torch.randn(3, generator=g))
    x = torch.randn(8, 6, generator=g) * torch.linspace(0.1, 4.0, 8)[:, None]   # varied norms
    y = torch.randint(0, 3, (8,), generator=g)
    per = []
    for k in range(8):                       # each example's own gradient, written out
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[k:k + 1]), y[k:k + 1]).backward()
        per.append(torch.cat([model.weight.grad.ravel(), model.bias.grad.ravel()]))
    per = torch.stack(per)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(model)
        opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=0.1), noise_multiplier=0.0,
                          max_grad_norm=max_norm, expected_batch_size=8)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(gsm(x), y).backward()
        opt.pre_step()
    ref = torch.cat([model.weight.grad.ravel(), model.bias.grad.ravel()])
    gsm._close()
    return per, ref


def _check_clip_and_noise(fn) -> str:
    import torch

    for max_norm, seed in [(1.0, 0), (0.3, 1)]:
        per, ref = _opacus_noiseless_grad(max_norm, seed)
        got = fn(per.clone(), max_norm, 0.0, torch.Generator().manual_seed(0))
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (per.shape[1],):
            raise Incorrect(f"return one averaged gradient of shape ({per.shape[1]},), got "
                            f"{shape_of(got)}.")
        if not torch.allclose(got.float(), ref, atol=1e-5):
            hint = ""
            if torch.allclose(got.float(), per.mean(0), atol=1e-5):
                hint = " That is the plain mean: clip each example's gradient first."
            elif torch.allclose(got.float(), per.clamp(-max_norm, max_norm).mean(0), atol=1e-5):
                hint = (" That clips each coordinate; clip each example's whole gradient "
                        "vector to L2 norm max_norm (scale it by min(1, C / ||g||)).")
            elif torch.allclose(got.float(), ref * len(per), atol=1e-5):
                hint = " Divide the sum by the batch size."
            raise Incorrect(f"8 examples, max_grad_norm={max_norm}, no noise: Opacus's "
                            f"DPOptimizer gives {ref[:3].numpy().round(4)}..., you gave "
                            f"{got[:3].detach().numpy().round(4)}....{hint}")
    zeros = torch.zeros(4, 40_000)
    noisy = fn(zeros, 0.7, 1.3, torch.Generator().manual_seed(1))
    want = 1.3 * 0.7 / 4
    std = float(noisy.std())
    if abs(std - want) > 0.03 * want or abs(float(noisy.mean())) > 0.03 * want:
        hint = ""
        if abs(std - 1.3 * 0.7) < 0.03 * 1.3 * 0.7:
            hint = " Divide the noisy sum by the batch size."
        elif abs(std - 1.3 / 4) < 0.03 * 1.3 / 4:
            hint = " The noise's standard deviation is noise_multiplier * max_grad_norm."
        raise Incorrect(f"4 zero gradients, C=0.7, sigma=1.3: each coordinate's noise should have "
                        f"standard deviation sigma*C/4 = {want:.4f}; yours has {std:.4f}.{hint}")
    return ("Without noise it equals Opacus's DPOptimizer on a real model's per-example "
            "gradients (two clipping norms); its noise has the standard deviation DP-SGD needs.")


q6 = Exercise(name="ch08.q6", title="Write clip_and_noise(per_sample_grads, max_grad_norm, "
              "noise_multiplier, generator): one DP-SGD step's gradient", var="clip_and_noise",
              checker=_check_clip_and_noise, notebook=_NB_C,
              hint_text="`norms = g.norm(dim=1, keepdim=True)`; `clipped = g * (C / (norms + "
                        "1e-6)).clamp(max=1)`; `noise = torch.normal(0, sigma * C, "
                        "size=g.shape[1:], generator=generator)`; return `(clipped.sum(0) + "
                        "noise) / len(g)`.",
              nudge=("Shrink every example's gradient so its length is at most the clipping norm "
                     "(never stretch it), add Gaussian noise scaled to that norm to the sum, and "
                     "average over the batch."))


def _check_attack_auc(fn) -> str:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    cases = [(rng.normal(4.0, 1.0, 60), rng.normal(4.6, 1.0, 80)),
             (rng.normal(5.0, 1.0, 30), rng.normal(5.0, 1.0, 30)),
             (np.array([1.0, 2.0, 2.0, 3.0]), np.array([2.0, 2.0, 4.0]))]       # ties
    for lm, lo in cases:
        want = roc_auc_score(np.r_[np.ones(len(lm)), np.zeros(len(lo))], -np.r_[lm, lo])
        got = fn(lm.copy(), lo.copy())
        if isinstance(got, bool) or not isinstance(got, (float, np.floating, int, np.integer)):
            raise Incorrect(f"return the AUC as one number, got {shape_of(got)}.")
        if abs(float(got) - want) > 1e-9:
            hint = ""
            if abs(float(got) - (1 - want)) < 1e-9:
                hint = (" That is 1 - AUC: members have the *lower* loss, so a member 'wins' a "
                        "pair when its loss is smaller.")
            elif len(set(lm) & set(lo)) and abs(float(got) - np.mean(lm[:, None] < lo[None, :]))\
                    < 1e-9:
                hint = " A tie counts half a win."
            raise Incorrect(f"{len(lm)} members, {len(lo)} others: scikit-learn's roc_auc_score "
                            f"gives {want:.4f}; you gave {float(got):.4f}.{hint}")
    return ("It equals scikit-learn's roc_auc_score on three cases (a leak, no leak, and ties).")


q5 = Exercise(name="ch08.q5", title="Write attack_auc(loss_members, loss_others)",
              var="attack_auc", checker=_check_attack_auc, notebook=_NB_C,
              hint_text="Compare every member with every other: "
                        "`wins = (m[:, None] < o[None, :]) + 0.5 * (m[:, None] == o[None, :])`; "
                        "return `wins.mean()`.",
              nudge=("Pair every member with every other shopper; the attack wins a pair when the "
                     "member's loss is the lower one, and a tie is half a win. The AUC is the "
                     "share won."))


def _attack_auc_by_epochs(epochs=(20, 60)) -> tuple[float, ...]:
    """The loss-threshold attack's AUC on chapter 08c's non-private ``HistoryModel`` trained for
    each number of ``epochs`` (section 1's setting: ShopWorld, the seed-0 member split)."""
    sw = pp.clean_shopworld(write=False)
    inter = sw["events"][sw["events"]["event_type"] != "view"]
    im = pp.build_id_map(sw["catalogue"]["item_id"])
    train, _, test = pp.leave_last_out(inter)
    s = P.member_split(train, test, im, seed=0)
    out = []
    for n in epochs:
        m = P.HistoryModel(len(im), 64, seed=0)
        P.train(m, s.x_members, epsilon=None, epochs=n, seed=0, progress=False)
        out.append(P.membership_auc(m, s.x_members, s.x_others))
    return tuple(out)


q9 = Vary(name="ch08.q9", notebook=_NB_C, var="vary_epochs",
          title="Vary and explain: the attack on a model trained longer",
          measure=_attack_auc_by_epochs,
          quantity="the attack's AUC on the non-private model", expect="up",
          why=Choice(
              "What explains how the attack's AUC changed when the non-private model trained for "
              "60 epochs instead of 20?",
              {"a": "Longer training teaches the model what all shoppers have in common, so it "
                    "fits the others as closely as its members and the gap the attack reads "
                    "narrows.",
               "b": "Each extra epoch fits the members' own histories more closely: their mean "
                    "loss falls further than the others', so a member's loss is more often the "
                    "lower one of a pair.",
               "c": "Longer training makes all the losses larger in size, and a larger loss "
                    "gives the attack a larger AUC.",
               "d": "After 60 epochs input dropout has averaged out, so every shopper's loss "
                    "settles near one value and the attack has less to tell apart."},
              "b",
              {"a": "The printed losses say otherwise: the others' mean loss fell too, but less "
                    "than the members', so the gap between the two halves widened.",
               "b": "Right: the model memorises its members (Yeom et al. tie the attack's "
                    "success to this overfitting); the longer it trains without clipping and "
                    "noise, the more it gives away.",
               "c": "The AUC reads only which loss of each pair is lower, never their size; "
                    "and the printed losses fell, they did not grow.",
               "d": "The printed means still differ, by more than at 20 epochs: the losses did "
                    "not settle on one value."}),
          hint_text="Set `VARY_EPOCHS = 60`, run the next cell, copy the attack AUC it prints "
                    "into `value`, and compare it with the 20-epoch AUC printed below it.",
          nudge="Compare the members' and the others' mean loss at 20 and at 60 epochs: which "
                "fell more?")

def _mmr_ild_by_pool(pools=(100, 20)) -> tuple[float, ...]:
    """Mean intra-list diversity of MMR (lam 0.5) re-ranking EASE's top ``n`` for every test
    shopper of ShopWorld, for each pool size ``n``: chapter 08a's section 2 setting."""
    sw = pp.clean_shopworld(write=False)
    catalogue, events = sw["catalogue"], sw["events"]
    texts = I.item_texts(catalogue)
    emb = pd.DataFrame(I.encode_items(texts).numpy(), index=texts.index)
    inter = events[events["event_type"] != "view"]
    um, im = pp.build_id_map(inter["user_id"]), pp.build_id_map(catalogue["item_id"])
    train, _, test = pp.leave_last_out(inter)
    ease = cf.EASE(250.0).fit(train, um, im)
    users = np.sort(test["user_id"].unique())
    return tuple(float(E.intra_list_diversity(
        R.rerank(ease, users, 10, "mmr", n_candidates=n, item_vectors=emb, lam=0.5), emb).mean())
        for n in pools)


q7 = Vary(name="ch08.q7", notebook=_NB_A, var="vary_pool",
          title="Vary and explain: MMR on a smaller candidate pool",
          measure=_mmr_ild_by_pool, quantity="MMR's mean intra-list diversity (lam 0.5)",
          expect="down",
          why=Choice(
              "What explains how MMR's mean intra-list diversity (λ = 0.5) changed when it "
              "picked from EASE's top 20 instead of its top 100?",
              {"a": "With fewer candidates MMR weighs relevance more heavily against diversity, "
                    "so it picks more similar items.",
               "b": "In a smaller pool each candidate is less similar to the items already "
                    "listed, so MMR's diversity term wins more often and the lists vary more.",
               "c": "MMR can only choose among the candidates it is given: one model's top 20 "
                    "are more alike than its top 100, so the most different items are no "
                    "longer there to pick.",
               "d": "ILD is averaged over the pool's pairs, and a pool of 20 holds fewer "
                    "near-duplicate pairs, so the average rises."},
              "c",
              {"a": "λ is the same 0.5 at both pool sizes: the weighing did not change, only "
                    "what there is to weigh.",
               "b": "Compare the two printed numbers: the mean ILD fell. And a candidate's "
                    "similarity to the listed items does not depend on how many others are in "
                    "the pool.",
               "c": "Right: a re-ranker trades within its pool; the pool's size is a knob too.",
               "d": "ILD is measured on the 10 items of the list, whatever the pool — and the "
                    "printed mean fell."}),
          hint_text="Set `N_CANDIDATES = 20`, run that cell and the next, copy the mean ILD "
                    "it prints into `value`, and compare it with the table's `mmr, lam=0.5` row.",
          nudge="Where does MMR take its items from, and how alike are a model's best 20?")


quiz_a = Quiz("ch08.quiz_a", _NB_A, var="quiz_answers_a", where=(
    "Q1 and Q2: section 2 and exercise 1 of 08a; Q3: section 2's frontiers; Q4: section 4; Q5: "
    "section 1."), questions=[
    Choice("What does MMR trade off when it picks the next item of a list?",
           {"a": "Relevance against similarity to the items already in the list, with one knob "
                 "lambda.",
            "b": "Price against popularity.",
            "c": "Training time against accuracy."},
           "a",
           {"a": "Right: lambda = 1 is the model's own order.",
            "b": "MMR knows only relevance and similarity.",
            "c": "It re-ranks a fixed model's list; nothing is retrained."}),
    Numeric("MMR with lambda = 0.7: a candidate has scaled relevance 0.8 and its highest "
            "similarity to the list so far is 0.5. What is its MMR score? (two decimals)",
            0.41, "Right: 0.7 x 0.8 - 0.3 x 0.5 = 0.56 - 0.15 = 0.41.", tol=0.005,
            traps={0.56: "That is only the relevance part; subtract (1 - lambda) x similarity.",
                   0.71: "Subtract the similarity part, do not add it."}),
    Choice("What does a re-ranker's frontier show?",
           {"a": "That diversity is always free.",
            "b": "How much accuracy each step of diversity costs, with paired intervals: some "
                 "diversity is free, more is not.",
            "c": "Which model to retrain."},
           "b",
           {"a": "Only the first steps are free, and how far depends on the data.",
            "b": "Right: read the knob's price off the curve.",
            "c": "Re-ranking changes the list, not the model."}),
    Choice("When may a slot's reason say 'Something different from your usual'?",
           {"a": "Whenever the re-ranker moved the item up.",
            "b": "Only when the item's category is a small share of the shopper's history, so the "
                 "sentence is true; it passes the same guard as every reason.",
            "c": "For every tenth slot."},
           "b",
           {"a": "A moved-up item can be from the shopper's favourite category.",
            "b": "Right: a checkable fact about the history.",
            "c": "A quota would make it false for many shoppers."}),
    Choice("Which numbers does section 1 use to measure the bubble, besides accuracy?",
           {"a": "How alike a list's items are (intra-list diversity), how much of the catalogue "
                 "anyone sees (coverage), and how close a list's category mix is to the "
                 "shopper's own (calibration KL).",
            "b": "The model's memory use.",
            "c": "The prices of the recommended items."},
           "a",
           {"a": "Right: three numbers describe a list besides its accuracy.",
            "b": "It is about what is shown, not the machine.",
            "c": "Prices are not the subject."}),
])

quiz_b = Quiz("ch08.quiz_b", _NB_B, var="quiz_answers_b", where=(
    "Q1: exercise 1 of 08b; Q2: section 2 and exercise 2; Q3: section 4; Q4 and Q5: section 5."),
    questions=[
    Choice("What does fold-in compute when a shopper clicks?",
           {"a": "The whole model again.",
            "b": "That shopper's factors only, from their history with the items' factors fixed: "
                 "one small least-squares solve.",
            "c": "The item's factors only."},
           "b",
           {"a": "A full refit takes far too long for a click.",
            "b": "Right: one d x d solve (d factors), milliseconds.",
            "c": "The items stay fixed; the shopper moves."}),
    Choice("Prequential evaluation: in what order are the two steps done for each event?",
           {"a": "Learn from the event, then predict it.",
            "b": "Predict the event with what the model knew before it, then learn from it, in "
                 "time order.",
            "c": "Predict all events first, then learn from all."},
           "b",
           {"a": "Learning first lets the model see the answer.",
            "b": "Right: predict, then learn.",
            "c": "That is a static model; it never updates during the stream."}),
    Choice("In section 4, how does an item nobody has met get factors before any retrain?",
           {"a": "It keeps zero factors until the next full retrain.",
            "b": "From its text: a ridge regression, fitted on the items the model has learnt, "
                 "maps an item's MiniLM text embedding to ALS factors and is applied to the "
                 "new item.",
            "c": "It gets the average factors of all items."},
           "b",
           {"a": "That is the untouched model, where it ties with every other new item; "
                 "FoldIn.place_items does not wait.",
            "b": "Right: a ridge map from chapter 04's MiniLM text embeddings to the ALS "
                 "factors; among the new items it ranks the item a shopper picked better than "
                 "chance.",
            "c": "An average would place every new item the same way; the ridge map uses each "
                 "item's own text."}),
    Numeric("Of 1,000 timed events, how many may take longer than the latency target while the "
            "p99 still meets it?",
            10, "Right: p99 within target means at least 990 of 1,000 are within it.", tol=0.5,
            traps={1: "That would be p99.9.", 990: "990 must be fast; 10 may be slow."}),
    Choice("In the design section 5 recommends (not built in this chapter), what does a "
           "shopper see right after a click, and where does the language model's reason come "
           "from?",
           {"a": "The list waits while the language model writes a reason for it.",
            "b": "The list at once, with its template reason; a background worker writes LM "
                 "reasons in batches for the (user, item) pairs just shown, caches them, and "
                 "swaps them in when ready.",
            "c": "The list with its template reason only: the language model is not used."},
           "b",
           {"a": "Generation took hundreds of milliseconds to seconds per reason here, far over "
                 "the 100 ms budget: a reason must never delay a list.",
            "b": "Right: generation off the request path, the template's reason until the LM's "
                 "is ready.",
            "c": "It is used: after the list is shown, for the pairs just shown, in batches."}),
])

quiz_c = Quiz("ch08.quiz_c", _NB_C, var="quiz_answers_c", where=(
    "Q1: section 1; Q2 and Q3: exercise 2 (in section 1) and section 2; Q4: section 3; Q5: "
    "section 4."),
    questions=[
    Choice("How does the membership-inference attack guess who was in the training data?",
           {"a": "From the model's loss on a shopper's history: members tend to have lower loss.",
            "b": "By reading the training file.",
            "c": "From the shopper's name."},
           "a",
           {"a": "Right: a loss threshold, scored by AUC.",
            "b": "The attacker has the model and the shopper's history, never the training "
                 "file: whether the shopper is in it is what the attack guesses.",
            "c": "Names play no part: the model stores no names or user IDs (it has no user "
                 "table), and the attack reads only its loss on the history."}),
    Numeric("Clipping norm C = 1 and a shopper's gradient has norm 4. By what factor is it scaled?",
            0.25, "Right: min(1, C / ||g||) = 1 / 4.", tol=1e-6,
            traps={4.0: "Clipping shrinks: the factor is C / ||g||, not ||g|| / C.",
                   1.0: "Only gradients within the norm keep factor 1; this one is 4 times over."}),
    Choice("DP-SGD per user: what is clipped, and why?",
           {"a": "Each shopper's gradient, to a norm C, so no single shopper can move the model "
                 "more than a bounded amount; then noise is added.",
            "b": "The model's weights, to keep them small.",
            "c": "The learning rate."},
           "a",
           {"a": "Right: bounded influence plus noise gives the guarantee.",
            "b": "Weight clipping is a different technique with no privacy guarantee.",
            "c": "The learning rate is not what bounds a person's influence."}),
    Choice("Federated averaging keeps the data on the clients. What did the chapter find?",
           {"a": "It makes the attack impossible.",
            "b": "It sends far more bytes and does not, by itself, stop the attack.",
            "c": "It is always more accurate than central training."},
           "b",
           {"a": "The model still learns from each client and can leak it.",
            "b": "Right: where the data sits is not the same as what the model reveals.",
            "c": "Not on this shop."}),
    Choice("Why is a reason a privacy risk too?",
           {"a": "It is a data channel: built from another shopper's review text or ID, it would "
                 "show that data to someone else; reasons must come from the shop's facts.",
            "b": "Reasons are stored in the model.",
            "c": "It is not."},
           "a",
           {"a": "Right: section 4 checks reasons for other shoppers' IDs and text.",
            "b": "The risk is what the sentence shows, not where it is stored.",
            "c": "Anything shown to a user can carry someone else's data."}),
])

progress = progress_of(__name__)
