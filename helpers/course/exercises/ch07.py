"""Exercises of chapter 07 (evaluation; lessons 07a and 07b), each checked against an independent
reference: ``scipy.stats.bootstrap`` (percentile method) for a bootstrap interval, the exact
sign-flip distribution (all 2^n sign patterns enumerated) for a paired permutation test,
``scipy.stats.entropy`` for the calibration KL and ``sklearn.metrics.cohen_kappa_score`` for
Cohen's kappa; the two vary-and-explain exercises against the course's own re-run."""
from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of
from helpers.course.exercises.quiz import Choice, Numeric, Quiz
from helpers.course.exercises.vary import Vary
from helpers.data import loaders, preprocess as pp
from helpers.evaluation import offline as E, simulate as S
from helpers.metrics import stats as ST
from helpers.models import cf
from helpers.reasons import world as W

_NB_A = "07a_evaluating_recommendations.ipynb"
_NB_B = "07b_evaluating_reasons.ipynb"


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
              var="bootstrap_interval", checker=_check_bootstrap, notebook=_NB_A,
              hint_text="`rng = np.random.default_rng(seed)`; `idx = rng.integers(0, len(x), "
                        "(n_boot, len(x)))`; `means = x[idx].mean(1)`; return the "
                        "`(1 - level) / 2` and `(1 + level) / 2` quantiles of `means`.",
              nudge=("Pretend the sample is the population: draw many new samples of the same size "
                     "from it with replacement, compute the mean of each, and read the interval "
                     "off the spread of those means."))
q2 = Exercise(name="ch07.q2", title="Write sign_flip_p(a, b, n_perm, seed): a paired test",
              var="sign_flip_p", checker=_check_sign_flip, notebook=_NB_A,
              hint_text="`d = a - b`; draw signs `rng.choice([-1, 1], (n_perm, len(d)))`; "
                        "`null = (signs * d).mean(1)`; p = `(np.sum(abs(null) >= abs(d.mean())) "
                        "+ 1) / (n_perm + 1)`.",
              nudge=("If the two models were interchangeable, each user's difference would be as "
                     "likely positive as negative. Flip the signs at random many times and see how "
                     "often the mean is as extreme as the one observed."))
q3 = Exercise(name="ch07.q3", title="Write calibration_kl(p, q, alpha)",
              var="calibration_kl", checker=_check_calibration, notebook=_NB_A,
              hint_text="`q_t = (1 - alpha) * q + alpha * p`; `on = p > 0`; "
                        "`np.sum(p[on] * np.log(p[on] / q_t[on]))`.",
              nudge=("KL divergence of the user's mix from the list's mix, where the list's mix is "
                     "blended with a little of the user's so no category the user likes gets "
                     "probability zero. Categories the user never touches contribute nothing."))

def _harness():
    """07a's harness: ShopWorld's clicks, carts and purchases, leave-last-out, every test user."""
    sw = pp.clean_shopworld(write=False)
    inter = sw["events"][sw["events"]["event_type"] != "view"]
    um, im = pp.build_id_map(inter["user_id"]), pp.build_id_map(sw["catalogue"]["item_id"])
    train, _, test = pp.leave_last_out(inter)
    return train, test, um, im, np.sort(test["user_id"].unique())


def _ease_interval_width(n_users=(None, 400)) -> tuple[float, ...]:
    """The width of the 95 % bootstrap interval (seed 0) of EASE's mean NDCG@10 over the first
    ``n`` test users of 07a's harness (None: all 1,682), as 07a section 1's cell computes it."""
    train, test, um, im, users = _harness()
    per = E.per_user_metrics(cf.EASE(250.0).fit(train, um, im).recommend(users, k=10), test, k=10)
    x = per["ndcg@10"].to_numpy()
    return tuple(float(np.subtract(*ST.bootstrap_ci(x[:n], seed=0)[::-1])) for n in n_users)


q4 = Vary(name="ch07.q4", notebook=_NB_A, var="vary_users",
          title="Vary and explain: an interval over fewer users",
          measure=_ease_interval_width, quantity="the width of EASE's NDCG@10 interval",
          expect="up",
          why=Choice(
              "What explains how the width of EASE's 95 % NDCG@10 interval changed when it was "
              "computed over the first 400 test users instead of all 1,682?",
              {"a": "The bootstrap draws as many resamples as there are users, so with 400 users "
                    "it has fewer resampled means to take quantiles from, and their 2.5 % and "
                    "97.5 % points are estimated more roughly, so the interval widens.",
               "b": "With 400 users fewer users score the rare high NDCG of a hit in first "
                    "place, so the per-user values vary less and so do their resampled means.",
               "c": "A mean over n users varies from one sample of users to another with a "
                    "standard error that shrinks as 1/√n: a mean over 400 users is about twice "
                    "as uncertain as one over 1,682, and the resampled means spread as widely.",
               "d": "Resamples of 400 users can be drawn in fewer distinct ways, so the "
                    "resampled means crowd around a few values and the interval between their "
                    "quantiles closes up."},
              "c",
              {"a": "The number of resamples is the bootstrap's own setting (1,000 here, "
                    "whatever the number of users); the spread it estimates is that of the mean "
                    "over the users it has.",
               "b": "A subset of users keeps about the same mix of hits and misses; what changes "
                    "is how many of them are averaged. The printed width grew.",
               "c": "Right: the interval's width is about 4 standard errors, σ/√n. Four times "
                    "fewer users, twice the width: a gap that is clear on 1,682 users can be "
                    "noise on 400.",
               "d": "400 users allow astronomically many resamples; the means do not crowd, "
                    "and the printed width grew, not shrank."}),
          hint_text="Set `CI_USERS = 400`, run that cell and the next one, copy the width it "
                    "prints into `value`, and compare it with the width over all test users.",
          nudge=("Each resample is a new sample of the same size as the data: ask how much the "
                 "mean of 400 numbers varies between samples, compared with the mean of 1,682."),
          same_within=5e-4)


def _sessions_needed(lifts=(1.25, 1.5)) -> tuple[float, ...]:
    """Sessions per arm that 07b's power calculation asks for (quick profile, seed 0): the pilot's
    conversion per session (200 shoppers shown EASE's top item with no reason, 20 visits each)
    against each relative lift, as 07b section 4's cell computes it."""
    train, test, um, im, users = _harness()
    world = W.reason_world()
    model = cf.EASE(250.0).fit(train, um, im)
    rng = np.random.default_rng(0)
    known = np.intersect1d(users, list(world.users_truth))
    chosen = rng.choice(known, size=240 + 200, replace=False)
    pilot_users = chosen[240:]
    items = model.recommend(chosen, k=1).set_index("user_id")["item_id"].loc[pilot_users].to_numpy()
    read = S.read_reasons([None] * len(pilot_users), pilot_users, items, world.lex,
                          world.items_truth, world.users_truth)
    utility = S.true_utility(pilot_users, items, loaders.load_shopworld("user_truth"),
                             loaders.load_shopworld("item_truth"),
                             loaders.load_shopworld("catalogue"))
    pilot = S.ab_test(read.assign(user_id=pilot_users, item_id=items, utility=utility,
                                  arm="pilot"), S.Funnel(), S.Reader(), sessions=20, seed=1)
    p0 = pilot["purchases"].sum() / pilot["sessions"].sum()
    return tuple(float(S.two_proportion_n(p0, lift * p0)) for lift in lifts)


q5 = Vary(name="ch07.q5", notebook=_NB_B, var="vary_lift",
          title="Vary and explain: the power calculation for a larger effect",
          measure=_sessions_needed, quantity="the sessions per arm the power calculation asks for",
          expect="down",
          why=Choice(
              "What explains how the number of sessions per arm changed when the effect worth "
              "detecting went from a 25 % to a 50 % relative lift in conversion?",
              {"a": "The test must tell the two conversion rates apart through the noise of "
                    "each arm's share, whose size depends little on the lift; the sessions "
                    "needed scale as 1 / (difference)², so doubling the difference takes about "
                    "a quarter of them.",
               "b": "A larger lift is a stronger claim, and a stronger claim needs more "
                    "evidence before it can be trusted, so the calculation asks for more "
                    "sessions.",
               "c": "The treated arm's conversion moves towards 0.5, where a share's variance "
                    "p(1 - p) is largest, so each arm's estimate is noisier and the "
                    "calculation asks for more sessions to make up for it.",
               "d": "A larger lift means more purchases in the treated arm, and every purchase "
                    "is one more observation, so the same evidence comes from fewer "
                    "sessions."},
              "a",
              {"a": "Right: n = (z-terms)² / (p₁ - p₀)². The variance terms barely move, the "
                    "difference doubles, so about a quarter of the traffic suffices: a test "
                    "sized for a big effect cannot see a small one.",
               "b": "The calculation does not weigh claims by their size: it asks how many "
                    "sessions make a difference of that size stand out of the noise, and a "
                    "bigger difference stands out sooner. The printed number fell.",
               "c": "The variance does grow a little, but that is the smaller effect: the "
                    "difference to detect doubles and enters squared. The printed number fell, "
                    "and by far more than the variance can explain.",
               "d": "The observations are sessions, bought or not, whatever the lift; the "
                    "number of purchases is not what the calculation counts. It fell because "
                    "the difference to detect is larger."}),
          hint_text="Set `LIFT = 1.5`, run that cell and the next one, copy the sessions per arm "
                    "it prints into `value`, and compare them with the 1.25 lift's.",
          nudge=("The power formula has the difference to detect in its denominator, squared: "
                 "compare how the numerator and the denominator move."),
          tol=0.5, same_within=0.5)


def _check_kappa(fn) -> str:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(5)
    truth = rng.random(60) < 0.7
    cases = [(truth, np.where(rng.random(60) < 0.8, truth, ~truth)),    # a fair judge
             (truth, np.ones(60, dtype=bool)),                            # always Yes
             (truth, truth.copy()),                                       # perfect
             (truth, ~truth),                                             # always wrong
             (np.array([1, 1, 0, 0, 1, 0, 1, 1]), np.array([1, 0, 0, 1, 1, 0, 1, 0]))]
    for t, v in cases:
        want = cohen_kappa_score(t.astype(int), v.astype(int))
        got = _as_float(fn(t, v), "kappa")
        if not np.isfinite(got) or abs(got - want) > 1e-9:
            p_o = float(np.mean(t == v))
            extra = (" That is the observed agreement p_o: subtract the chance agreement p_e "
                     "and divide by 1 - p_e." if abs(got - p_o) < 1e-9 else "")
            raise Incorrect(f"for {len(t)} verdicts (agreement {p_o:.3f}) Cohen's kappa is "
                            f"{want:.4f}; you gave {fmt(got)}.{extra} p_e = P(truth yes) P(judge "
                            "yes) + P(truth no) P(judge no).")
    return "It equals sklearn.metrics.cohen_kappa_score on five cases, a constant judge included."


q6 = Exercise(name="ch07.q6", title="Write cohen_kappa(truth, verdict)",
              var="cohen_kappa", checker=_check_kappa, notebook=_NB_B,
              hint_text="`t, v = np.asarray(truth, bool), np.asarray(verdict, bool)`; "
                        "`p_o = np.mean(t == v)`; `p_e = t.mean() * v.mean() + (1 - t.mean()) * "
                        "(1 - v.mean())`; return `(p_o - p_e) / (1 - p_e)`.",
              nudge=("Agreement beyond chance: how often the two agree, minus how often two raters "
                     "who say Yes at the same rates but independently would agree, scaled so "
                     "perfect agreement is 1."))

quiz_a = Quiz("ch07.quiz_a", _NB_A, var="quiz_answers_a", where=(
    "Q1, Q2 and Q4: section 1; Q3 and Q5: section 2."), questions=[
    Choice("Two models differ by 0.003 NDCG@10. How does the lesson decide whether that is real?",
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
    Choice("On the same users, the paired test of the two best models gave a smaller p-value "
           "than Welch's unpaired t-test. Where does the paired test's extra sharpness come from?",
           {"a": "It uses more users than the unpaired test.",
            "b": "Users who are easy for one model are easy for the other; the paired test looks "
                 "at each user's difference, where that shared part cancels out.",
            "c": "It assumes the two models' scores have equal variances.",
            "d": "Permutation tests always give smaller p-values than t-tests."},
           "b",
           {"a": "Both tests see the same 1,682 users' values.",
            "b": "Right: the per-user correlation printed beside the two p-values is what "
                 "pairing removes from the comparison.",
            "c": "Welch's test is the one about variances (it does not assume them equal); the "
                 "paired test does not compare variances at all.",
            "d": "Not in general: the paired design, not the permutation, is what helps here."}),
    Choice("The text-interest model has the highest coverage and novelty of the harness, and the "
           "lowest intra-list diversity (ILD). What does its low ILD say about its lists?",
           {"a": "Each list recommends items from one or two categories: similar in words to the "
                 "user's history, and to each other.",
            "b": "Its lists are the same for every user.",
            "c": "Its items are the most popular ones.",
            "d": "Its lists are the most accurate."},
           "a",
           {"a": "Right: ILD is the share of a list's pairs from different categories, so a low "
                 "value means few categories per list — however many items it covers overall.",
            "b": "That is high Gini and low coverage, most-popular's corner; text interest has "
                 "the highest coverage.",
            "c": "Its popularity lift is the lowest of the table: it recommends the long tail.",
            "d": "It is the least accurate by NDCG@10."}),
])

quiz_b = Quiz("ch07.quiz_b", _NB_B, var="quiz_answers_b", where=(
    "Q1 and Q2: section 1; Q3: section 2; Q4: section 3; Q5: section 4; Q6: section 5."),
    questions=[
    Choice("The unguarded language model's reasons get the lowest LM NLL of all generators (the "
           "most expected text). What else did the lesson find?",
           {"a": "They are also the most truthful.",
            "b": "They are the closest to the references.",
            "c": "They are the least truthful and faithful, and the furthest from the references "
                 "by BLEU, ROUGE and BERTScore: a fluency score does not see truth."},
           "c",
           {"a": "Expected text and true text part ways here.",
            "b": "BLEU, ROUGE and BERTScore put them furthest from the references.",
            "c": "Right: measure truth with claims against the facts, not with fluency."}),
    Choice("A reason's rescaled BERTScore is 0. What does that mean?",
           {"a": "It shares no word with its reference.",
            "b": "The encoder could not read it.",
            "c": "It is false.",
            "d": "It is no closer to its reference than an unrelated reference sentence is, by "
                 "the mean BERTScore measured on random pairs."},
           "d",
           {"a": "BERTScore compares token embeddings, not words; unrelated sentences still "
                 "score well above 0 before rescaling.",
            "b": "Every reason is encoded; 0 is a score, not a failure.",
            "c": "BERTScore measures closeness to one reference sentence, not truth.",
            "d": "Right: (F - b) / (1 - b) with b the measured baseline of unrelated pairs."}),
    Choice("How is 'reason accuracy' (precision) defined in the lesson's version of the articles' "
           "table?",
           {"a": "The share of reasons a judge accepts.",
            "b": "Of all the drivers the reasons name, the share that are the purchase's true "
                 "drivers, pooled over the sample.",
            "c": "The share of true drivers that the reasons name.",
            "d": "The BLEU score against the reference reasons."},
           "b",
           {"a": "That would depend on the judge; the lesson compares named drivers with true ones.",
            "b": "Right: when a reason says why, how often is that the real why.",
            "c": "That is recall: of the true drivers, the share named.",
            "d": "BLEU measures word overlap with one reference, not drivers."}),
    Choice("The simulated user study varied the cost of a false claim f and the value of a "
           "cared-about claim c. Which conclusion was fragile?",
           {"a": "Whether an unguarded reason earns more stars than no reason at all: its sign "
                 "depends on how much a false claim is assumed to cost.",
            "b": "That guarded reasons earn more stars than unguarded ones.",
            "c": "That the template earns more stars than no reason.",
            "d": "None: every conclusion held under every assumption."},
           "a",
           {"a": "Right: exactly the number a simulation cannot give you decides it, so report "
                 "the plot, not the mean alone.",
            "b": "That one held under every pair of assumptions tried: it is the robust one.",
            "c": "The sensitivity grid did not vary that comparison.",
            "d": "The plot shows one difference crossing zero."}),
    Choice("Why does an A/B test start with a power calculation?",
           {"a": "Power calculations are only for medical trials.",
            "b": "To choose which version wins.",
            "c": "To know how much traffic it needs to detect the effect you care about before "
                 "running it, instead of stopping when the numbers look good."},
           "c",
           {"a": "Any experiment with a yes/no decision needs one.",
            "b": "The test decides that; the calculation sizes it.",
            "c": "Right: randomise and analyse by user, with the size fixed in advance."}),
    Choice("A small LLM judge rates reasons. What must you measure before trusting it?",
           {"a": "Its agreement with the truth (Cohen's kappa beyond chance, with an interval) and "
                 "its biases, such as position (preferring whichever reason comes first).",
            "b": "Nothing: LLMs understand text.",
            "c": "Only its speed."},
           "a",
           {"a": "Right: a judge is an instrument, and instruments are calibrated.",
            "b": "Here it agreed with the truth no better than chance.",
            "c": "Speed says nothing about validity."}),
])

progress = progress_of(__name__)
