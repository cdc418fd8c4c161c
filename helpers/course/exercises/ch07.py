"""Exercises of chapter 07 (evaluation), each checked against an independent reference:
``scipy.stats.bootstrap`` (percentile method) for a bootstrap interval, the exact sign-flip
distribution (all 2^n sign patterns enumerated) for a paired permutation test, and
``scipy.stats.entropy`` for the calibration KL."""
from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of

_NB = "07_evaluation.ipynb"


def _as_float(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)):
        raise Incorrect(f"return {what} as a number, got {shape_of(x)}.")
    return float(x)


def _check_bootstrap(fn) -> str:
    rng = np.random.default_rng(7)
    x = rng.lognormal(0, 1.2, size=30)            # skewed, so a normal interval differs
    got = fn(x, 4000, 0.95, 0)
    if not isinstance(got, tuple) or len(got) != 2:
        raise Incorrect(f"return a (lo, hi) tuple, got {shape_of(got)}.")
    lo, hi = (_as_float(v, "each bound") for v in got)
    ref = stats.bootstrap((x,), np.mean, n_resamples=40_000, confidence_level=0.95,
                          method="percentile", random_state=0).confidence_interval
    # a bootstrap of 4,000 resamples lands within about 0.02 of scipy's 40,000 on this sample;
    # the normal approximation's lower bound is 0.05 off
    if not (abs(lo - ref.low) < 0.035 and abs(hi - ref.high) < 0.035):
        m, s = x.mean(), x.std(ddof=1) / np.sqrt(len(x))
        hint = ""
        if abs(lo - (m - 1.96 * s)) < 1e-6:
            hint = " That is the normal approximation: resample and take quantiles instead."
        elif hi - lo < 0.5 * (ref.high - ref.low):
            hint = (" Your interval is too narrow: take the 2.5 % and 97.5 % quantiles of the "
                     "resampled *means*, each resample as long as the data.")
        raise Incorrect(f"on 30 skewed values scipy's percentile bootstrap gives "
                        f"({ref.low:.3f}, {ref.high:.3f}); you gave ({lo:.3f}, {hi:.3f}).{hint}")
    if fn(x, 4000, 0.95, 0) != got:
        raise Incorrect("the same seed must give the same interval: draw from "
                        "np.random.default_rng(seed).")
    return "It agrees with scipy.stats.bootstrap (percentile method)."


def _exact_sign_flip(d):
    d = np.asarray(d, dtype=float)
    obs = abs(d.mean())
    means = [abs((np.array(s) * d).mean()) for s in itertools.product((-1, 1), repeat=len(d))]
    return float(np.mean(np.array(means) >= obs - 1e-12))


def _check_sign_flip(fn) -> str:
    rng = np.random.default_rng(3)
    cases = [rng.normal(0.3, 1, 12), rng.normal(0, 1, 10), np.array([0.2, 0.1, 0.4, 0.3, 0.25,
                                                                      0.15, 0.05, 0.35])]
    for d in cases:
        a = rng.normal(size=len(d))
        want = _exact_sign_flip(d)
        got = _as_float(fn(a + d, a, 20_000, 0), "the p-value")
        if not 0 < got <= 1:
            raise Incorrect(f"a p-value lies in (0, 1], got {fmt(got)}.")
        # 20,000 random flips estimate the exact p to within about 3 standard errors
        if abs(got - want) > 3 * np.sqrt(want * (1 - want) / 20_000) + 2e-3:
            extra = ""
            if abs(got - want / 2) < 0.01:
                extra = " That looks one-sided: compare |mean| with |observed mean|."
            raise Incorrect(f"for {len(d)} paired differences the exact two-sided sign-flip "
                            f"p-value is {want:.4f}; you gave {got:.4f}.{extra} Flip the sign of "
                            "each user's difference a - b at random, not the order of users.")
    return "It matches the exact sign-flip p-value (all 2^n sign patterns) on three cases."


def _check_calibration(fn) -> str:
    cases = [([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 0.01), ([0.6, 0.4, 0.0], [0.0, 0.5, 0.5], 0.01),
             ([0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], 0.0),
             ([1.0, 0.0], [0.1, 0.9], 0.05)]
    for p, q, alpha in cases:
        p, q = np.array(p), np.array(q)
        want = stats.entropy(p, (1 - alpha) * q + alpha * p)
        got = _as_float(fn(p, q, alpha), "the KL")
        if not np.isfinite(got):
            raise Incorrect(f"p={p.tolist()}, q={q.tolist()}: got {fmt(got)}. Mix p into q "
                            "(q~ = (1 - alpha) q + alpha p) and skip the categories where p = 0.")
        if abs(got - want) > 1e-6:
            rev = stats.entropy((1 - alpha) * q + alpha * p, p) if (p > 0).all() else None
            extra = (" You computed KL(q~ || p): the user's mix p comes first."
                     if rev is not None and abs(got - rev) < 1e-6 else "")
            raise Incorrect(f"p={p.tolist()}, q={q.tolist()}, alpha={alpha}: "
                            f"KL(p || q~) = {want:.5f}, you gave {got:.5f}.{extra}")
    return "It equals scipy.stats.entropy(p, q~) on four cases, zeros included."


q1 = Exercise(name="ch07.q1", title="Write bootstrap_interval(x, n_boot, level, seed)",
              var="bootstrap_interval", checker=_check_bootstrap, notebook=_NB,
              hint_text="`rng = np.random.default_rng(seed)`; `idx = rng.integers(0, len(x), "
                        "(n_boot, len(x)))`; `means = x[idx].mean(1)`; return the "
                        "`(1 - level) / 2` and `(1 + level) / 2` quantiles of `means`.",
              nudge=("Pretend the sample is the population: draw many new samples of the same size "
                     "from it with replacement, compute the mean of each, and read the interval "
                     "off the spread of those means."))
q2 = Exercise(name="ch07.q2", title="Write sign_flip_p(a, b, n_perm, seed): a paired test",
              var="sign_flip_p", checker=_check_sign_flip, notebook=_NB,
              hint_text="`d = a - b`; draw signs `rng.choice([-1, 1], (n_perm, len(d)))`; "
                        "`null = (signs * d).mean(1)`; p = `(np.sum(abs(null) >= abs(d.mean())) "
                        "+ 1) / (n_perm + 1)`.",
              nudge=("If the two models were interchangeable, each user's difference would be as "
                     "likely positive as negative. Flip the signs at random many times and see how "
                     "often the mean is as extreme as the one observed."))
q3 = Exercise(name="ch07.q3", title="Write calibration_kl(p, q, alpha)",
              var="calibration_kl", checker=_check_calibration, notebook=_NB,
              hint_text="`q_t = (1 - alpha) * q + alpha * p`; `on = p > 0`; "
                        "`np.sum(p[on] * np.log(p[on] / q_t[on]))`.",
              nudge=("KL divergence of the user's mix from the list's mix, where the list's mix is "
                     "blended with a little of the user's so no category the user likes gets "
                     "probability zero. Categories the user never touches contribute nothing."))

from helpers.course.exercises.quiz import Choice, Numeric, Quiz  # noqa: E402

quiz = Quiz("ch07.quiz", _NB, where=(
    "Q1 and Q2: section 1; Q3: section 2; Q4: section 3; Q5: section 6; Q6: section 7."),
    questions=[
    Choice("Two models differ by 0.003 NDCG@10. How does the chapter decide whether that is real?",
           {"a": "Any difference in the third decimal is real.",
            "b": "Per-user metrics, a paired test (both models on the same users) and a bootstrap "
                 "interval of the difference; many third-decimal gaps are noise.",
            "c": "Run each model once more and see which wins."},
           "b",
           {"a": "A gap smaller than its interval's width is not a result.",
            "b": "Right: a leaderboard becomes results with intervals and paired tests.",
            "c": "One more run is one more noisy draw."}),
    Choice("You compare ten models pairwise at the 5 % level. What does Holm's correction do?",
           {"a": "It makes every test more powerful.",
            "b": "It adjusts the p-values for the many comparisons, so the chance of any false "
                 "'significant' gap stays near 5 % instead of growing with the number of tests.",
            "c": "It removes the worst model."},
           "b",
           {"a": "It makes each test stricter, not more powerful.",
            "b": "Right: many tests, one error budget.",
            "c": "It changes p-values, not the models."}),
    Numeric("A recommender's lists, over all users, contain 150 distinct items of a 2,000-item "
            "catalogue. What is its catalogue coverage?",
            0.075, "Right: 150 / 2,000 = 0.075.", tol=1e-4,
            traps={7.5: "7.5 is the percentage; the share is 0.075."}),
    Choice("The unguarded language model's reasons get the lowest LM NLL of all generators (the "
           "most expected text). What else did the chapter find?",
           {"a": "They are also the most truthful.",
            "b": "They are the least truthful and faithful, and the furthest from the references "
                 "by BLEU, ROUGE and BERTScore: a fluency score rewards what a guard must stop.",
            "c": "They are the closest to the references."},
           "b",
           {"a": "Expected text and true text part ways here.",
            "b": "Right: measure truth with claims against the facts, not with fluency.",
            "c": "BLEU, ROUGE and BERTScore put them furthest from the references."}),
    Choice("Why does an A/B test start with a power calculation?",
           {"a": "To know how much traffic it needs to detect the effect you care about before "
                 "running it, instead of stopping when the numbers look good.",
            "b": "To choose which version wins.",
            "c": "Power calculations are only for medical trials."},
           "a",
           {"a": "Right: randomise and analyse by user, with the size fixed in advance.",
            "b": "The test decides that; the calculation sizes it.",
            "c": "Any experiment with a yes/no decision needs one."}),
    Choice("A small LLM judge rates reasons. What must you measure before trusting it?",
           {"a": "Nothing: LLMs understand text.",
            "b": "Its agreement with the truth (Cohen's kappa beyond chance, with an interval) and "
                 "its biases, such as position (preferring whichever reason comes first).",
            "c": "Only its speed."},
           "b",
           {"a": "Here it agreed with the truth no better than chance.",
            "b": "Right: a judge is an instrument, and instruments are calibrated.",
            "c": "Speed says nothing about validity."}),
])

progress = progress_of(__name__)
