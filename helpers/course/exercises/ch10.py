"""Exercises of chapter 10 (scale-out), each checked against an independent reference: the course's
``metrics.rank_from_scores`` with a dense boolean mask for the top unseen items (q1), and Amdahl's
law evaluated from its definition, time = serial part + parallel part / workers (q2); and one
"vary and explain" exercise (q3): the catalogue coverage of the night's top 10s on the course's
2,000-shopper ShopWorld with 8 ALS factors instead of 32, measured with chapter 02's ImplicitALS
and its ``recommend`` (the ranking the job uses, tests/test_scale.py)."""
from __future__ import annotations

import numpy as np

from helpers.course.exercises import Exercise, Incorrect, fmt, progress_of, shape_of
from helpers.course.exercises.quiz import Choice
from helpers.course.exercises.vary import Vary
from helpers.data import loaders, preprocess as pp
from helpers.metrics.ranking import rank_from_scores
from helpers.models import cf

_NB = "10_scale_out.ipynb"


def _check_top(fn) -> str:

    rng = np.random.default_rng(0)
    cases = []
    s = rng.normal(size=(4, 9))
    s[0, 3] = 9.0                                 # the best-scored item is one already met
    cases.append((s, [np.array([0, 3]), np.array([], dtype=np.int64), np.array([8]),
                      np.arange(9)], 3))
    t = np.round(rng.normal(size=(3, 6)), 1)      # ties: the lower item index comes first
    t[0, [1, 4]] = 5.0
    cases.append((t, [np.array([2]), np.array([0, 5]), np.array([1, 2, 3])], 4))
    cases.append((rng.normal(size=(2, 5)), [np.array([4, 0]), np.array([1])], 10))
    for scores, seen, k in cases:
        mask = np.zeros(scores.shape, dtype=bool)
        for r, cols in enumerate(seen):
            mask[r, cols] = True
        want = rank_from_scores(scores, k, exclude=mask)
        before = scores.copy()
        got = fn(scores, seen, k)
        if not np.array_equal(scores, before):
            raise Incorrect("your function changed the scores it was given: work on a copy "
                            "(scores.copy()), a caller's data is not yours to alter.")
        if not isinstance(got, list) or len(got) != len(scores):
            raise Incorrect(f"return a list with one array per row ({len(scores)} rows), got "
                            f"{shape_of(got)}.")
        for r, (g, w) in enumerate(zip(got, want)):
            w = w[w >= 0]
            g = np.asarray(g)
            if not np.array_equal(g, w):
                why = ""
                if len(g) > len(w) and np.array_equal(g[:len(w)], w):
                    why = (" A row with fewer than k unseen items gets a shorter list, never a "
                           "seen item or a -1.")
                elif set(g.tolist()) & set(seen[r].tolist()):
                    why = " It contains an item this shopper already met: mask seen items first."
                elif sorted(g.tolist()) == sorted(w.tolist()):
                    why = " Same items, wrong order: best first, ties to the lower index."
                raise Incorrect(f"row {r} (k={k}, seen {fmt(seen[r].tolist())}): expected "
                                f"{fmt(w.tolist())}, got {fmt(g.tolist())}.{why}")
    return ("Your top unseen items match the course's rank_from_scores with a boolean mask on "
            "three cases (ties, a shopper who has seen everything, k larger than what is left).")


def _amdahl(serial: float, workers: int) -> float:
    """Time on one worker is 1 = serial + parallel; on n workers serial + parallel / n."""
    return 1.0 / (serial + (1.0 - serial) / workers)


def _check_amdahl(fn) -> str:
    for serial, n in ((0.0, 1), (0.0, 8), (0.1, 2), (0.1, 1000), (0.5, 4), (1.0, 16),
                      (0.04, 32)):
        got = fn(serial, n)
        want = _amdahl(serial, n)
        if not isinstance(got, (int, float, np.floating)) or not np.isfinite(got):
            raise Incorrect(f"amdahl({serial}, {n}) should be a number, got {shape_of(got)}.")
        if abs(got - want) > 1e-9 * max(1.0, want):
            why = ""
            if abs(got - n) < 1e-9 and serial > 0:
                why = " That is the ideal speed-up: the serial part does not shrink with workers."
            elif abs(got - 1 / want) < 1e-9:
                why = " That is the time ratio; the speed-up is its inverse."
            raise Incorrect(f"amdahl({serial}, {n}): expected {fmt(want)}, got {fmt(got)}.{why}")
    for bad in ((-0.1, 2), (1.5, 2), (0.1, 0)):
        try:
            fn(*bad)
        except ValueError:
            continue
        except Exception as e:                        # noqa: BLE001 - report what came
            raise Incorrect(f"amdahl{bad} should raise ValueError, it raised "
                            f"{type(e).__name__}.") from None
        raise Incorrect(f"amdahl{bad} returned a number: a serial share outside [0, 1] or "
                        "fewer than one worker is a mistake, raise ValueError.")
    return ("Your speed-ups match Amdahl's law on seven cases, and bad inputs raise ValueError; "
            "with 10 % serial, a thousand workers give less than 10x.")


q1 = Exercise(name="ch10.q1", title="Write top_unseen(scores, seen, k)", var="top_unseen",
              checker=_check_top, notebook=_NB,
              hint_text="`s = scores.copy()`; for each row `r`, `s[r, seen[r]] = -np.inf`; "
                        "`order = np.argsort(-s, axis=1, kind='stable')[:, :k]`; keep, per row, "
                        "the entries whose score is finite.",
              nudge=("Hide what each shopper already met by giving it the lowest possible "
                     "score, sort each row best first with a sort that keeps equal scores in "
                     "index order, and keep the first k that were not hidden."),
              # its reference and a copy of `scores` are taken before the call
              inputs_checked_after_call=True)
q2 = Exercise(name="ch10.q2", title="Write amdahl(serial, workers)", var="amdahl",
              checker=_check_amdahl, notebook=_NB,
              hint_text="Check `0 <= serial <= 1` and `workers >= 1` (else `raise ValueError`), "
                        "then `return 1 / (serial + (1 - serial) / workers)`.",
              nudge=("Split one worker's time into a part only one worker can do and a part "
                     "the workers share; the speed-up is the old time over the new time."))


def _coverage(factors=(32, 8)) -> tuple[float, ...]:
    """Catalogue coverage (distinct items / catalogue items) of the top 10s of every shopper of
    the course's ShopWorld (2,000 shoppers, those with a click, cart or purchase), by implicit
    ALS (8 iterations, seed 0) at each number of factors: what the notebook's
    ``scale.explain_users(small, small.user_ids)`` offers."""
    root = loaders.shopworld_path(None)
    catalogue = loaders.load_shopworld("catalogue", root)
    events = loaders.load_shopworld("events", root)
    inter = events[events["event_type"] != "view"]
    users, items = pp.build_id_map(inter["user_id"]), pp.build_id_map(catalogue["item_id"])
    out = []
    for f in factors:
        model = cf.ImplicitALS(f, n_iter=8, seed=0).fit(inter, users, items)
        top = model.recommend(np.sort(inter["user_id"].unique()), k=10)
        out.append(top["item_id"].nunique() / len(catalogue))
    return tuple(out)


q3 = Vary(name="ch10.q3", notebook=_NB, var="vary_factors",
          title="Vary and explain: the night's model with 8 factors instead of 32",
          measure=_coverage, quantity="the catalogue coverage of the night's top 10s",
          expect="down", tol=0.002,
          why=Choice(
              "What explains how the catalogue coverage of the night's top 10s changed when the "
              "model had 8 factors instead of 32?",
              {"a": "Fewer factors make the scores noisier, so the lists look more random and "
                    "cover more items.",
               "b": "Fewer factors give more tied scores, and breaking ties to the lower item "
                    "index spreads the lists over more items.",
               "c": "8 dimensions can express only a few broad tastes (popularity, a category), "
                    "so many shoppers get the same popular items.",
               "d": "A smaller snapshot holds fewer items, so fewer of them can be "
                    "recommended."},
              "c",
              {"a": "ALS with fewer factors is smoother, not noisier: it fits a few broad "
                    "directions and leaves out the fine ones. And the coverage the cell printed "
                    "did not rise.",
               "b": "Ties are rare between real-valued scores, and a tie broken to the lower "
                    "index would send shoppers to the same items, not to more of them; the "
                    "coverage did not rise either.",
               "c": "Right: with 8 dimensions a shopper's scores are mostly popularity and a "
                    "category, so the same popular items top many lists; 32 dimensions can tell "
                    "finer tastes apart and reach further into the catalogue. Coverage is one "
                    "thing the number of factors trades against fit.",
               "d": "The number of factors is the length of each vector, not the number of "
                    "items: Y still has a row for every item of the catalogue, and every one of "
                    "them is scored for every shopper."}),
          hint_text="Set `SMALL_FACTORS = 8`, run that cell and the next one, copy the coverage "
                    "it prints into `value`, and compare it with the 32-factor coverage the "
                    "cell prints beside it.",
          nudge=("Each item's score is a dot product of two vectors of that length: ask how "
                 "many different directions of taste 8 numbers can tell apart, and what the "
                 "shoppers' lists fall back on when they cannot."))


from helpers.course.exercises.quiz import Numeric, Quiz  # noqa: E402

quiz = Quiz("ch10.quiz", _NB, where=(
    "Q1 and Q2: section 1 (the job, and where its time goes); Q3: section 2's Ray Data pieces "
    "and checks; Q4 and Q5: "
    "exercise 3 and the cell after it; Q6: section 3."), questions=[
    Choice("Why is the nightly job written as a pure function of a snapshot and a batch of "
           "shopper IDs?",
           {"a": "Because Ray can only run pure functions.",
            "b": "So the same function runs in one process, on a pool of local workers or on a "
                 "cluster, and its output can be compared between them row for row.",
            "c": "To make each batch faster than a loop over shoppers."},
           "b",
           {"a": "Ray runs stateful code too: the actors keep the explainers they built. Purity "
                 "is our choice, for where the code can run and for checking it.",
            "b": "Right: nothing depends on where it runs, so moving it is configuration, and "
                 "'same rows as one process' is a test you can run.",
            "c": "Purity does not make a batch faster; the matrix product does that."}),
    Choice("In one process, where does most of the job's time go?",
           {"a": "The matrix product of the shoppers' and items' factors.",
            "b": "Sorting each shopper's 2,000 scores.",
            "c": "The reasons: a template and a guard check per slot, ten per shopper, in "
                 "Python."},
           "c",
           {"a": "The product is one BLAS call (the compiled linear-algebra library NumPy hands "
                 "matrix products to) for all the shoppers timed at once; with the ranking it "
                 "took the small share section 1 printed.",
            "b": "Sorting is vectorised over the batch; with the product it took the small "
                 "share section 1 printed, the reasons and the rest of the loop the large one.",
            "c": "Right: the reasons and the Python around them took the large share section 1 "
                 "printed; that is the part worth spreading over workers."}),
    Choice("Ray Data does not keep the order of the batches: they come back as the workers "
           "finish them. What does run_on_ray do about it, and why is that allowed?",
           {"a": "Nothing; the order of rows does not matter to anyone.",
            "b": "It sorts by (shopper, rank): batches finish in any order, and sorting changes "
                 "no row, so the output can be compared with one process's exactly.",
            "c": "It drops the batches that came back late."},
           "b",
           {"a": "It matters to anyone comparing two runs: without a fixed order, 'the same "
                 "rows' is hard to check.",
            "b": "Right: reordering is stated in the docstring and alters no value.",
            "c": "Never: a shopper dropped from the nightly job silently gets no e-mail. The "
                 "chapter checks every shopper comes back exactly once."}),
    Numeric("A job has a serial share s = 0.2. What speed-up do 4 workers give, by Amdahl's "
            "law? (two decimals)",
            2.5, "Right: 1 / (0.2 + 0.8 / 4) = 1 / 0.4 = 2.5.", tol=0.01,
            traps={4.0: "4x is the ideal; the serial fifth does not shrink with workers.",
                   0.4: "0.4 is the new time as a share of the old; the speed-up is its "
                        "inverse."}),
    Numeric("Two workers ran a job 1.6 times as fast as one. What serial share s does that "
            "measure (Karp–Flatt, two decimals)?",
            0.25, "Right: s = 2 / 1.6 - 1 = 0.25, so no number of workers beats 1 / 0.25 = 4x.",
            tol=0.01,
            traps={0.2: "0.2 = 1 - 1.6 / 2 is the efficiency lost, not the serial share: solve "
                        "1 / (s + (1 - s) / 2) = 1.6 for s."}),
    Choice("To run the same job on a real Ray cluster instead of this machine, what changes?",
           {"a": "The address Ray connects to (scale.local_ray(address=...) or "
                 "ray.init(address=...)); nothing in the job.",
            "b": "The job must be rewritten with Ray's remote functions.",
            "c": "The snapshot must be written to a shared disk first."},
           "a",
           {"a": "Right: section 3 ran the same code on a cluster started as a head node, by "
                 "its address.",
            "b": "run_on_ray already uses Ray Data and an actor pool; the job itself is plain "
                 "Python.",
            "c": "ray.put ships the snapshot through Ray's object store, so no shared disk is "
                 "needed (though a real deployment may prefer one)."}),
])
progress = progress_of(__name__)
