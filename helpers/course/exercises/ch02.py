"""Exercises of chapter 02 (collaborative filtering, two lessons: 02a predicting ratings, 02b
ranking from clicks), each checked against an independent reference: a plain loop (02a, q1),
torch autograd (02a, q2), scikit-learn (02b, q3), and the course's own re-runs for the two "vary
and explain" exercises: ALS at another regularisation (02a, q5, named after the chapter's last
exercise so that no name moved) and the sampled metric at another sample size (02b, q4)."""
from __future__ import annotations

import numpy as np
import torch

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import loaders, preprocess as pp
from helpers.metrics import ranking
from helpers.models import cf

_NB_A = "02a_rating_prediction.ipynb"
_NB_B = "02b_top_k_ranking.ipynb"


def _check_knn_scores(fn) -> str:
    rng = np.random.default_rng(3)
    X = (rng.random((6, 9)) < 0.4).astype(float)
    S = rng.random((9, 9)) * (rng.random((9, 9)) < 0.5)
    np.fill_diagonal(S, 0)
    got = np.asarray(fn(X, S))
    want = np.zeros((6, 9))
    for u in range(6):
        for i in range(9):
            want[u, i] = sum(S[i, j] * X[u, j] for j in range(9))
    if got.shape != want.shape:
        raise Incorrect(f"scores should have shape {want.shape} (users x items), got {got.shape}.")
    if not np.allclose(got, want):
        u, i = np.unravel_index(np.abs(got - want).argmax(), want.shape)
        raise Incorrect(f"score[{u}, {i}] should be Σ_j S[{i}, j]·X[{u}, j] = {want[u, i]:.4f}, "
                        f"got {got[u, i]:.4f}. Check which side S is transposed on.")
    return "It equals the double loop Σ_j S[i, j]·X[u, j]."


def _check_sgd_step(fn) -> str:
    gen = torch.Generator().manual_seed(4)
    for _ in range(3):
        p, q = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
        bu, bi = torch.randn((), generator=gen), torch.randn((), generator=gen)
        r, mu, lr, reg = 4.0, 3.5, 0.05, 0.1
        got = fn(p.clone(), q.clone(), bu.clone(), bi.clone(), r, mu, lr, reg)
        if not (isinstance(got, tuple) and len(got) == 4):
            raise Incorrect("return the four updated values (p, q, bu, bi) as a tuple.")
        # reference: one gradient step of ½e² + ½λ(‖p‖² + ‖q‖² + bu² + bi²) by autograd
        params = [t.clone().requires_grad_(True) for t in (p, q, bu, bi)]
        e = r - (mu + params[2] + params[3] + params[0] @ params[1])
        loss = 0.5 * e ** 2 + 0.5 * reg * sum((t ** 2).sum() for t in params)
        grads = torch.autograd.grad(loss, params)
        want = [t.detach() - lr * g for t, g in zip(params, grads)]
        for name, g, w in zip(("p", "q", "bu", "bi"), got, want):
            if not torch.allclose(torch.as_tensor(g, dtype=w.dtype), w, atol=1e-6):
                raise Incorrect(f"the updated {name} differs from a gradient step "
                                f"(expected {w.numpy().round(4)}, got "
                                f"{np.asarray(g).round(4)}). Use the OLD p when updating q.")
    return "It equals one autograd gradient step on the regularised squared error."


def _check_ndcg(fn) -> str:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(8)
    for case in range(20):
        n_items, k = 15, [1, 3, 5, 10][case % 4]
        scores = rng.permutation(n_items).astype(float)
        relevant = set(rng.choice(n_items, size=rng.integers(1, 6), replace=False).tolist())
        ranked = list(np.argsort(-scores))
        truth = np.zeros(n_items)
        truth[list(relevant)] = 1
        want = ndcg_score(truth[None, :], scores[None, :], k=k)
        got = fn(ranked, relevant, k)
        if not np.isclose(got, want):
            raise Incorrect(f"for ranked={ranked[:k]}, relevant={sorted(relevant)}, k={k}: "
                            f"NDCG should be {want:.4f} (scikit-learn), got {fmt(got)}. The ideal "
                            "list has min(|relevant|, k) hits at the top.")
    return "It matches sklearn.metrics.ndcg_score on 20 random lists."


q1 = Exercise(name="ch02.q1", title="Write item_knn_scores(X, S): score every item for every user",
              var="item_knn_scores", checker=_check_knn_scores, notebook=_NB_A,
              hint_text="score[u, i] = Σ_j S[i, j] X[u, j] is a matrix product: `X @ S.T`.",
              nudge=("An item scores high for a user when it is similar to many items the user "
                     "already has. That weighted sum, written for all users and items at once, is "
                     "one matrix product."))
q2 = Exercise(name="ch02.q2", title="Write sgd_step(...): one SGD update of biased MF",
              var="sgd_step", checker=_check_sgd_step, notebook=_NB_A,
              hint_text="e = r − (μ + b_u + b_i + p·q); then b_u += lr(e − λb_u), "
                        "b_i += lr(e − λb_i), p += lr(e q − λp), q += lr(e p_old − λq).",
              nudge=("Measure the error of the current prediction on this one rating, then move "
                     "each parameter a small step in the direction that reduces it, minus a little "
                     "pull towards zero for each."))
q3 = Exercise(name="ch02.q3", title="Write ndcg_at_k(ranked, relevant, k) for one user",
              var="ndcg_at_k", checker=_check_ndcg, notebook=_NB_B,
              hint_text="DCG = Σ_{r=1..k} [ranked[r-1] ∈ relevant] / log2(r + 1); the ideal DCG "
                        "puts min(len(relevant), k) hits first; NDCG = DCG / ideal.",
              nudge=("Each hit earns less the lower it sits (divide by the log of its position "
                     "plus one); divide the list's total by the best total any list could have "
                     "earned for this user."))

def _sampled_hr_knn(negatives=(100, 500)) -> tuple[float, ...]:
    """Item-kNN's sampled HR@10 on MovieLens-100K's leave-last-out split, the held-out item
    ranked against each number of random unseen items (seed 0): 02b section 2's cell."""
    ratings = loaders.load_movielens()["ratings"]
    um, im = pp.build_id_map(ratings["user_id"]), pp.build_id_map(ratings["item_id"])
    train, _, test = pp.leave_last_out(ratings)
    model = cf.KNN("item", 100, "cosine", shrink=0).fit(train, um, im)
    rows = model.user_map.encode(np.sort(test["user_id"].unique()))
    held_out = im.encode(test.sort_values("user_id")["item_id"])
    scores, seen = model.scores(rows), model.seen[rows]
    return tuple(ranking.sampled_metrics(scores, held_out, k=10, n_negatives=n, exclude=seen,
                                         seed=0)["hr@10"] for n in negatives)


q4 = Vary(name="ch02.q4", notebook=_NB_B, var="vary_negatives",
          title="Vary and explain: a sampled metric with more negatives",
          measure=_sampled_hr_knn, quantity="item-kNN's sampled HR@10",
          expect="down",
          why=Choice(
              "What explains how item-kNN's sampled HR@10 changed when the held-out movie was "
              "ranked against 500 random movies instead of 100?",
              {"a": "Among 100 random negatives a few happen to resemble the held-out movie, and "
                    "item-kNN scores them high; among 500 those few are diluted by many unlike "
                    "ones, so strong rivals make up a smaller part of the list it must top.",
               "b": "The extra negatives include the user's other liked movies, which item-kNN "
                    "scores high, and they push the held-out one out of the top 10.",
               "c": "To be in the top 10 the held-out movie must now outrank 500 random movies, "
                    "not 100; more of them score above it, so it makes the list for fewer "
                    "users.",
               "d": "500 negatives are five times closer to the whole catalogue, and ranking "
                    "against the whole catalogue is where item-kNN's similarities have the most "
                    "to work with, so the sampled HR@10 climbs towards the full-ranking one."},
              "c",
              {"a": "Dilution does not help: the held-out movie misses the top 10 when ten "
                    "negatives score above it, however many weak ones surround them. Five times "
                    "as many draws bring about five times as many strong rivals, and the HR@10 "
                    "the cell printed fell.",
               "b": "Negatives are drawn from movies outside the user's training history: only "
                    "their one validation movie could be among them, far too few to move "
                    "HR@10 like this. Each added negative matters for another reason.",
               "c": "Right: a sampled metric answers an easier question than full ranking, and "
                    "how easy depends on the sample's size; as it grows towards the whole "
                    "catalogue, the sampled HR@10 comes down towards the full-ranking one — "
                    "which is why the course reports full-ranking metrics.",
               "d": "Moving towards full ranking is right, but full ranking is the hardest test "
                    "of all: the cell prints item-kNN's full-ranking HR@10 beside the sampled "
                    "one, far below it. Coming closer to it means coming down, as the printed "
                    "number did."}),
          hint_text="Set `N_NEGATIVES = 500`, run that cell and the next one, copy the HR@10 it "
                    "prints into `value`, and compare it with the table's 100-negative column.",
          nudge=("Ten places, and now five times as many random competitors for them: count "
                 "what the held-out movie must beat to make the list, and compare both "
                 "sampled numbers with the full-ranking one."))


def _als_heldout_rmse(regs=(0.13, 0.01)) -> tuple[float, ...]:
    """Biased MF by ALS (d = 32, 8 sweeps) on fold 1 of MovieLens-100K's 5-fold split (seed 0):
    the held-out RMSE at each regularisation, as 02a section 4's cells fit it."""
    from sklearn.model_selection import KFold

    ratings = loaders.load_movielens()["ratings"]
    train_idx, test_idx = next(KFold(5, shuffle=True, random_state=0).split(ratings))
    train, test = ratings.iloc[train_idx], ratings.iloc[test_idx]
    return tuple(cf.BiasedMF(32, reg=reg, solver="als", n_epochs=8).fit(train, valid=test)
                 .history_valid[-1] for reg in regs)


q5 = Vary(name="ch02.q5", notebook=_NB_A, var="vary_reg",
          title="Vary and explain: ALS with less regularisation",
          measure=_als_heldout_rmse, quantity="ALS's held-out RMSE on fold 1",
          expect="up",
          why=Choice(
              "What explains how ALS's held-out RMSE on fold 1 changed when λ went from 0.13 to "
              "0.01?",
              {"a": "A smaller λ shrinks the factors and biases less towards 0, so the "
                    "predictions are pulled less towards the global mean and each user's and "
                    "item's real deviations come through: the held-out ratings are predicted "
                    "closer.",
               "b": "With a weaker pull towards 0, 32 factors per user and item fit the noise "
                    "of the training ratings too (the training RMSE falls), and that fit does "
                    "not carry over to ratings the model has not seen.",
               "c": "λ only adds a penalty to the loss; at 0.01 the loss ALS minimises is almost "
                    "the squared error itself, the quantity RMSE measures, so every rating, "
                    "training and held-out alike, is predicted closer.",
               "d": "With a small λ each least-squares solve is badly conditioned, so ALS "
                    "stops converging and fits the training ratings worse too."},
              "b",
              {"a": "Less shrinkage does remove some bias, but it also lets the factors chase "
                    "each training rating's noise. The cell printed which won: the training "
                    "RMSE fell and the held-out RMSE rose.",
               "b": "Right: that is overfitting. λ trades how well the factors fit the ratings "
                    "they were solved on against how large they may grow; 0.13 predicts the "
                    "held-out fold better.",
               "c": "ALS minimises the squared error on the training ratings only: the held-out "
                    "fold never enters a solve. The cell printed both errors: the training RMSE "
                    "fell, the held-out RMSE rose.",
               "d": "The cell printed the training RMSE: it fell, so ALS fits the training "
                    "ratings better, not worse."}),
          hint_text="Set `ALS_REG = 0.01`, run that cell and the next one, copy the held-out "
                    "RMSE it prints into `value`, and compare it with the 0.13 fit's held-out "
                    "RMSE.",
          nudge=("Compare the two training errors as well as the two held-out errors, and ask "
                 "what a weaker pull towards 0 lets 32 factors per user and item do with the "
                 "ratings they are solved on."))


quiz_a = Quiz("ch02.quiz_a", _NB_A, var="quiz_answers_a", where=(
    "Q1: section 2 (baselines); Q2: section 3 (neighbourhoods); Q3: section 4 and exercise 2; Q4: "
    "section 4 (ALS); Q5: section 4 (Bayesian MF)."), questions=[
    Choice("Biases alone (global mean plus a user and an item bias) take MovieLens RMSE from about "
           "1.13 to about 0.94. What should you compare a new rating model with?",
           {"a": "The global mean (1.13): it is the simplest predictor.",
            "b": "The biased baseline (0.94): a model that cannot beat two numbers per user and "
                 "item has learned nothing about taste.",
            "c": "A published deep model's number, whatever its split."},
           "b",
           {"a": "Beating 1.13 proves only that users and items differ on average.",
            "b": "Right: a rating model must beat 0.94, not 1.13, to have learned anything about "
                 "taste — and the table shows that not every one does.",
            "c": "A number is comparable only under the same protocol: same data, split and "
                 "metric."}),
    Choice("Item-kNN multiplies each similarity by n_ij / (n_ij + β), where n_ij counts the users "
           "who rated both items. What does that shrinkage do?",
           {"a": "It lets two items that only a handful of users rated alike count for little, "
                 "since their similarity rests on little evidence.",
            "b": "It keeps only each item's k nearest neighbours.",
            "c": "It subtracts each user's mean rating before comparing items."},
           "a",
           {"a": "Right: a cosine of 1.0 from two common raters is weaker evidence than 0.6 from "
                 "two hundred.",
            "b": "Keeping the top k is a separate step (N(i)); shrinkage changes the values.",
            "c": "That is close to what Pearson-baseline does (it subtracts the baseline "
                 "μ + b_u + b_i); shrinkage only scales."}),
    Numeric("One SGD step of biased MF: μ = 3.5, b_u = b_i = 0, p·q = 0.2, the rating r = 4, "
            "learning rate η = 0.1 and λ = 0. What is the new b_u? (two decimals)",
            0.03, "Right: the error is e = 4 − (3.5 + 0 + 0 + 0.2) = 0.3, and b_u moves by "
                  "η(e − λ b_u) = 0.1 × 0.3.", tol=1e-6,
            traps={0.3: "0.3 is the error e; the step is the learning rate times it.",
                   -0.03: "The prediction (3.7) is below the rating (4): the bias moves up."}),
    Choice("Why does ALS need no learning rate, while Adam does?",
           {"a": "With the items fixed, each user's best vector is the exact solution of a small "
                 "ridge regression (and the other way round), so each half-step jumps straight "
                 "to its optimum instead of taking small steps downhill.",
            "b": "ALS uses Adam internally with a learning rate chosen for you.",
            "c": "ALS samples each user's vector at random, so there is no step to size."},
           "a",
           {"a": "Right: and that is why it converges in a handful of sweeps.",
            "b": "ALS takes no gradient steps at all; solver='adam' is the other solver.",
            "c": "That describes Gibbs sampling (Bayesian MF), not ALS."}),
    Choice("Bayesian MF reached a lower RMSE than ALS. What does it average its prediction over?",
           {"a": "The five folds of the cross-validation.",
            "b": "Many factorisations drawn from the posterior by Gibbs sampling, after the "
                 "burn-in sweeps are discarded.",
            "c": "The predictions of item-kNN and ALS."},
           "b",
           {"a": "The folds only measure it; every fold's model averages its own draws.",
            "b": "Right: it averages over many plausible factorisations instead of trusting one "
                 "local optimum, and has no λ (its noise precision α is set by hand).",
            "c": "It is one model; nothing from the other models enters it."}),
])


quiz_b = Quiz("ch02.quiz_b", _NB_B, var="quiz_answers_b", where=(
    "Q1: section 1 (implicit feedback and BPR); Q2 and Q3: section 2 and exercise 1; Q4: section "
    "2's sampled metrics; Q5: section 3; Q6: section 5."), questions=[
    Choice("On a shop you see clicks and purchases but no dislikes. Why does BPR learn from pairs "
           "(a met item should score above an unmet one) instead of treating unmet items as 0s?",
           {"a": "An unmet item may be unknown to the user, not disliked; a pair only says the met "
                 "item is preferred, which the data supports.",
            "b": "Pairs are faster to train on than single items.",
            "c": "Because ratings are needed to fit a factorisation."},
           "a",
           {"a": "Right: implicit feedback has no negatives, only preferences between items.",
            "b": "Speed is not the reason; sampling pairs costs about the same as sampling items.",
            "c": "BPR needs no ratings at all; it is built for implicit data."}),
    Numeric("A user has one held-out item. Your model ranks it second. What is NDCG@10? (three "
            "decimals)",
            0.631, "Right: a hit at rank r counts 1 / log2(r + 1), so DCG = 1 / log2(3) = 0.631; "
                   "the perfect list has it first, IDCG = 1 / log2(2) = 1.", tol=0.002,
            traps={0.5: "1 / 2 is the reciprocal rank (MRR); NDCG discounts by log2(rank + 1).",
                   0.1: "1 / 10 is precision@10.",
                   1.0: "1 would need the item at rank 1."}),
    Numeric("Your top 10 contains 2 of a user's 4 held-out items. What is their recall@10?",
            0.5, "Right: recall@k = hits / |held-out| = 2 / 4.", tol=1e-6,
            traps={0.2: "2 / 10 is precision@10; recall divides by the user's held-out items."}),
    Choice("Many papers rank the held-out item against 100 sampled negatives. What did the chapter "
           "find with the same models and test items?",
           {"a": "The sampled numbers are a cheap, unbiased estimate of the full-ranking ones.",
            "b": "Every model looks several times better and the gaps between models change; a "
                 "sampled number is not an estimate of the full one (and, Krichene and Rendle "
                 "show, it can reorder models).",
            "c": "Sampling makes no difference on MovieLens-100K."},
           "b",
           {"a": "They are biased upwards, by different amounts per model (Krichene and Rendle).",
            "b": "Right: the course reports full-ranking metrics, and chapter 07 shows a reordering.",
            "c": "The chapter's own table shows hit rates several times higher when sampled."}),
    Choice("RecBole's most-popular baseline scored far below the course's on the identical split. "
           "Why?",
           {"a": "Popularity is a bad baseline on MovieLens.",
            "b": "Its counter adds one per training batch an item appears in, not one per "
                 "interaction, so large batches flatten popularity: a baseline from a toolkit is "
                 "code too, and code can be wrong.",
            "c": "RecBole uses a different dataset version."},
           "b",
           {"a": "The course's popularity baseline, on the same split, scores far above RecBole's: "
                 "the idea is the same, the counting differs.",
            "b": "Right (RecBole issue #2198).",
            "c": "Both were run on RecBole's own split of the same data."}),
    Choice("Why does every CF model score near zero on items launched after the training cutoff?",
           {"a": "The models were not trained long enough.",
            "b": "CF knows an item only through the people who interacted with it; a new item has "
                 "no interactions, so nothing says who will like it.",
            "c": "New items are filtered out of the ranking."},
           "b",
           {"a": "More epochs cannot learn from interactions that do not exist.",
            "b": "Right: chapter 04 reads the items' text and recommends new items too.",
            "c": "They are ranked like every other item; they just get no signal."}),
])

progress = progress_of(__name__)
