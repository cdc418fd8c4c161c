"""Exercises of chapter 08 (diversity, real time, privacy), each checked against an independent
reference: scikit-learn's ``cosine_distances`` for a list's diversity and a brute-force
re-computation of MMR's objective over every remaining candidate (08a, q1-q2); scikit-learn's
weighted ``Ridge`` for the fold-in solve and a toy model whose hit rate is known for the
prequential replay (08b, q3-q4); scikit-learn's ``roc_auc_score`` for the membership attack and
Opacus's ``DPOptimizer`` for one DP-SGD step's clipped, noised gradient (08c, q5-q6); and the
course's own re-run of MMR on a smaller candidate pool (08a's "vary and explain", q7, named after
the others so that no name moves)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.course.exercises import Exercise, Incorrect, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import preprocess as pp
from helpers.evaluation import offline as E
from helpers.models import cf, interest as I
from helpers.serving import rerank as R

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
              hint_text="`y = Y[items]`; `A = Y.T @ Y + reg * np.eye(k) + alpha * y.T @ y`; "
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
              "Why are MMR's lists less varied when it picks from EASE's top 20 instead of "
              "its top 100?",
              {"a": "With fewer candidates MMR weighs relevance more heavily, so it picks more "
                    "similar items.",
               "b": "MMR can only choose among the candidates it is given: one model's top 20 "
                    "are more alike than its top 100, so the most different items are no "
                    "longer there to pick.",
               "c": "ILD is averaged over the pool's pairs, and a pool of 20 has fewer of them."},
              "b",
              {"a": "Lambda is the same 0.5 at both pool sizes: the weighing did not change.",
               "b": "Right: a re-ranker trades within its pool; the pool's size is a knob too.",
               "c": "ILD is measured on the 10 items of the list, whatever the pool."}),
          hint_text="Set `N_CANDIDATES = 20`, run the next cell, copy the mean ILD it prints "
                    "into `value`, and compare it with the table's `mmr, lam=0.5` row.",
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
    "Q1: exercise of 08b and section 1; Q2: section 2; Q3: section 4; Q4 and Q5: section 5."),
    questions=[
    Choice("What does fold-in compute when a shopper clicks?",
           {"a": "The whole model again.",
            "b": "That shopper's factors only, from their history with the items' factors fixed: "
                 "one small least-squares solve.",
            "c": "The item's factors only."},
           "b",
           {"a": "A full refit takes far too long for a click.",
            "b": "Right: one k x k solve, milliseconds.",
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
    Choice("How does a brand-new item get its first place in the lists?",
           {"a": "It waits for the next nightly retrain.",
            "b": "From its text: its embedding places it near items people did interact with.",
            "c": "It is shown to everyone first."},
           "b",
           {"a": "Then it would be invisible until then.",
            "b": "Right: chapter 04's text tower at work.",
            "c": "That is a promotion, not a recommendation."}),
    Numeric("Of 1,000 timed events, how many may take longer than the latency target while the "
            "p99 still meets it?",
            10, "Right: p99 within target means at least 990 of 1,000 are within it.", tol=0.5,
            traps={1: "That would be p99.9.", 990: "990 must be fast; 10 may be slow."}),
    Choice("Where does the language model's reason come from on a click?",
           {"a": "Generated on the request path, for every click.",
            "b": "From a cache filled in batches; the request path never waits for generation.",
            "c": "The language model is not used."},
           "b",
           {"a": "Generation takes far longer than the click budget on a CPU.",
            "b": "Right: generation off the request path.",
            "c": "It is used, in batches, ahead of time."}),
])

quiz_c = Quiz("ch08.quiz_c", _NB_C, var="quiz_answers_c", where=(
    "Q1: section 1; Q2 and Q3: section 2 and its exercise; Q4: section 3; Q5: section 4."),
    questions=[
    Choice("How does the membership-inference attack guess who was in the training data?",
           {"a": "From the model's loss on a shopper's history: members tend to have lower loss.",
            "b": "By reading the training file.",
            "c": "From the shopper's name."},
           "a",
           {"a": "Right: a loss threshold, scored by AUC.",
            "b": "The attacker has only the model.",
            "c": "The model has no user table at all."}),
    Choice("DP-SGD per user: what is clipped, and why?",
           {"a": "Each shopper's gradient, to a norm C, so no single shopper can move the model "
                 "more than a bounded amount; then noise is added.",
            "b": "The model's weights, to keep them small.",
            "c": "The learning rate."},
           "a",
           {"a": "Right: bounded influence plus noise gives the guarantee.",
            "b": "Weight clipping is a different technique with no privacy guarantee.",
            "c": "The learning rate is not what bounds a person's influence."}),
    Numeric("Clipping norm C = 1 and a shopper's gradient has norm 4. By what factor is it scaled?",
            0.25, "Right: min(1, C / ||g||) = 1 / 4.", tol=1e-6,
            traps={4.0: "Clipping shrinks: the factor is C / ||g||, not ||g|| / C.",
                   1.0: "Only gradients within the norm keep factor 1; this one is 4 times over."}),
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
