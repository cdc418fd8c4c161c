"""Exercises of chapter 01 (preprocessing). Checkers compare with ShopWorld's recorded truth
(q1: every raw catalogue row's true category) or with a plain-Python reference on fresh random
data (q2: the median gap per user; q3: leave-last-out); the "vary and explain" exercise (q4, the
cold-start split at a later cutoff) with the course's own re-run of ``pp.cold_start_split`` at
both cutoffs, on the log ``pp.clean_shopworld`` cleans."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.course.exercises import Exercise, Incorrect, progress_of
from helpers.course.exercises.quiz import Choice
from helpers.course.exercises.vary import Vary
from helpers.data import loaders, preprocess as pp

_NB = "01_preprocessing.ipynb"


def _check_normalise_category(fn) -> str:

    raw = loaders.load_shopworld("raw_catalogue")[["item_id", "category"]]
    truth = loaders.load_shopworld("catalogue").set_index("item_id")["category"]
    got = fn(raw["category"].copy())
    if not isinstance(got, pd.Series) or len(got) != len(raw):
        raise Incorrect(f"return a pandas Series as long as the input ({len(raw)} rows), got "
                        f"{type(got).__name__} of length {len(got) if hasattr(got, '__len__') else '?'}.")
    want = truth.loc[raw["item_id"]].to_numpy()
    wrong = np.flatnonzero(got.astype(str).to_numpy() != want)
    if len(wrong):
        k = wrong[0]
        raise Incorrect(f"{len(wrong)} rows differ; e.g. {raw['category'].iloc[k]!r} should "
                        f"become {want[k]!r}, got {got.iloc[k]!r}.")
    variants = raw["category"].nunique()
    return f"{variants} spellings became the {truth.nunique()} real categories."


def _reference_median_gap(df: pd.DataFrame) -> dict:
    out = {}
    for user in np.unique(df["user_id"]):
        t = np.sort(df.loc[df["user_id"] == user, "timestamp"].to_numpy())
        out[user] = float(np.median(np.diff(t))) if len(t) > 1 else np.nan
    return out


def _check_median_gap(fn) -> str:
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"user_id": rng.integers(1, 12, 300),
                       "timestamp": rng.integers(0, 100_000, 300)})
    df = df.sample(frac=1.0, random_state=1)  # rows not in time order, as in the raw log
    got = fn(df)
    if not isinstance(got, pd.Series):
        raise Incorrect(f"return a pandas Series indexed by user_id, got {type(got).__name__}.")
    want = _reference_median_gap(df)
    for user, value in want.items():
        if user not in got.index:
            raise Incorrect(f"user {user} is missing from your result's index.")
        g = got.loc[user]
        if not (np.isnan(value) and pd.isna(g)) and not np.isclose(g, value):
            raise Incorrect(f"for user {user} the median gap should be {value:.1f} s, got {g}. "
                            "Did you sort each user's events by time first?")
    return "It matches a plain-Python reference on shuffled events."


def _check_leave_last_out(fn) -> str:
    rng = np.random.default_rng(9)
    n = 400
    df = pd.DataFrame({"user_id": np.r_[rng.integers(1, 60, n - 5), 101, 102, 103, 104, 105],
                       "item_id": rng.integers(1, 99, n), "timestamp": rng.permutation(n) * 7})
    df = df.sample(frac=1.0, random_state=2)  # users 101-105 have a single interaction
    got = fn(df.copy())
    if not (isinstance(got, tuple) and len(got) == 2):
        raise Incorrect("return a tuple (train, test) of DataFrames.")
    train, test = got
    want_test = []
    for user, g in df.groupby("user_id"):
        if len(g) >= 2:
            want_test.append(g["timestamp"].idxmax())
    if sorted(test.index) != sorted(want_test):
        extra = sorted(set(test.index) - set(want_test))[:3]
        missing = sorted(set(want_test) - set(test.index))[:3]
        raise Incorrect(f"test should hold each user's latest interaction (users with at least "
                        f"two); rows {missing} are missing and rows {extra} should not be "
                        "there.")
    if sorted(train.index) != sorted(set(df.index) - set(want_test)):
        raise Incorrect("train should hold every other row, including all rows of users "
                        "with a single interaction.")
    return "Each user's latest interaction is in test; nothing from the future is in train."


q1 = Exercise(name="ch01.q1", title="Write normalise_category(s): one spelling per category",
              var="normalise_category", checker=_check_normalise_category, notebook=_NB,
              hint_text="Chain pandas string methods: `s.str.strip().str.lower()`, then "
                        "replace runs of spaces or hyphens with one underscore: "
                        "`.str.replace(r'[\\s\\-]+', '_', regex=True)`.",
              nudge=("Several spellings of one category differ only in case, stray spaces and the "
                     "separator between words. Make those three things the same for every value."))
q2 = Exercise(name="ch01.q2", title="Write median_gap_per_user(events) to spot bots",
              var="median_gap_per_user", checker=_check_median_gap, notebook=_NB,
              hint_text="Sort by `['user_id', 'timestamp']`, take `groupby('user_id')['timestamp']"
                        ".diff()` for the gaps, then the median of the gaps per user.",
              nudge=("A bot clicks at a steady, fast pace. Put each user's events in time order, "
                     "measure the time between consecutive events, and summarise each user by the "
                     "middle of those gaps."))
q3 = Exercise(name="ch01.q3", title="Write leave_last_out_simple(df) -> (train, test)",
              var="leave_last_out_simple", checker=_check_leave_last_out, notebook=_NB,
              hint_text="`df.groupby('user_id')['timestamp'].idxmax()` gives each user's latest "
                        "row; keep it only for users with `size() >= 2`. Test is those rows, "
                        "train is `df.drop(test.index)`.",
              nudge=("Each user's most recent interaction is the test; everything before it is "
                     "training. A user with a single interaction has nothing left to train on, so "
                     "keep them out of the test."))



def _cold_share_by_cutoff(quantiles=(0.8, 0.9)) -> tuple[float, ...]:
    """The cold items' share of the test events of ``pp.cold_start_split`` on ShopWorld's
    clicks, carts and purchases, cut at each quantile of the cleaned log's timestamps: chapter
    01 section 7's cell."""
    events, catalogue = (pp.clean_shopworld(write=False)[k] for k in ("events", "catalogue"))
    interactions = events[events["event_type"] != "view"]
    out = []
    for q in quantiles:
        _, warm, cold = pp.cold_start_split(interactions, catalogue,
                                            int(np.quantile(events["timestamp"], q)))
        out.append(len(cold) / (len(warm) + len(cold)))
    return tuple(out)


q4 = Vary(name="ch01.q4", notebook=_NB, var="vary_cutoff",
          title="Vary and explain: the cold-start split at a later cutoff",
          measure=_cold_share_by_cutoff, quantity="the cold items' share of the test events",
          expect="down",
          why=Choice(
              "What explains how the cold items' share of the test events changed when the cut "
              "moved from the log's 80 % point to its 90 % point?",
              {"a": "At the later cut, the items launched between the 80 % and the 90 % points "
                    "count as cold as well as those launched after it, so a larger part of the "
                    "test period's sales is on items with no training data.",
               "b": "cold_start_split drops the test events of items with too few of them, and "
                    "in a test period half as long more of the new items fall below that "
                    "minimum.",
               "c": "A new item sells most in its first weeks on sale, while the older "
                    "catalogue's sales fade: the last tenth of the log holds the freshest "
                    "launches at their peak and less of the older items' steady trickle, so the "
                    "new items weigh more in it.",
               "d": "The test period is now the last tenth of the log, not the last fifth: "
                    "fewer items are launched within it, and each has had less time since its "
                    "launch to be clicked and bought, while the older items are bought all "
                    "along."},
              "d",
              {"a": "cold_start_split calls an item cold only when its launch_ts is at or after "
                    "the cutoff: at 0.9 an item launched between the two points is warm. A later "
                    "cut can only take items out of the cold part (compare the counts of new "
                    "items the two cells printed), and the share printed fell.",
               "b": "cold_start_split drops nothing: every interaction goes to train, warm or "
                    "cold at any cutoff (events before the cut are train, the rest are split by "
                    "the item's launch date). The share fell for another reason.",
               "c": "Compare the two shares the cells printed: the cold share fell. A launch "
                    "peak cannot make up for fewer launches (count the new items each cell "
                    "printed), each with less time to be bought, while the warm items kept "
                    "selling all through the test period.",
               "d": "Right: a cold item's events grow with how many items launch in the test "
                    "period and with how long each has been on sale, so a shorter period "
                    "shrinks the cold part faster than the warm one. A cold-start test needs a "
                    "test period long enough to hold something to measure."}),
          hint_text="Set `CUTOFF_QUANTILE = 0.9`, run that cell and the next one, copy the cold "
                    "share it prints into `value`, and compare it with the share at 0.8.",
          nudge=("A new item only collects events after its launch, and the older items sell "
                 "all along. Compare how many new items each cut's test period holds, and how "
                 "long each of them has had to be bought."))

from helpers.course.exercises.quiz import Choice, Numeric, Quiz  # noqa: E402

quiz = Quiz("ch01.quiz", _NB, where=(
    "Q1: section 2 (price outliers); Q2: section 3 (bots) and exercise 2; Q3: section 5; Q4 and "
    "Q5: section 7 and exercise 3; Q6: section 4."),
    questions=[
    Choice("A price is 100 times its category's median. What is the chapter's reading, and its "
           "fix?",
           {"a": "A luxury item: keep it.",
            "b": "A price entered in cents: divide by 100, and count the change.",
            "c": "A typo: drop the item."},
           "b",
           {"a": "Legitimate prices never exceed 8x the median here; the flagged ones start near "
                 "40x.",
            "b": "Right: a ratio to a robust median finds it, the fix is counted in the report.",
            "c": "Dropping loses a real product and its events; the value is repairable."}),
    Choice("Why must the log be sorted by time within each user before computing the median gap "
           "between consecutive events?",
           {"a": "The raw log is not in time order; unsorted differences are not gaps, some even "
                 "negative.",
            "b": "Sorting makes the median faster.",
            "c": "pandas requires sorted data for groupby."},
           "a",
           {"a": "Right: exercise 2's trap.",
            "b": "The point is correctness, not speed.",
            "c": "groupby works on any order; the differences are what go wrong."}),
    Choice("Events are joined onto the raw catalogue, which lists some items twice. What happens "
           "without validate=\"many_to_one\"?",
           {"a": "pandas raises an error.",
            "b": "The join silently multiplies those events: each matches both catalogue rows.",
            "c": "The duplicates are dropped automatically."},
           "b",
           {"a": "Only with validate= does pandas refuse; by default it joins every match.",
            "b": "Right: validate= turns a silent duplication into a loud error.",
            "c": "pandas keeps every match; nothing is dropped."}),
    Choice("A random split of the interactions is used to evaluate a recommender. What goes wrong?",
           {"a": "Nothing, if the split is stratified by user.",
            "b": "The model trains on events that happen after the ones it is tested on: a time "
                 "leak that flatters every metric.",
            "c": "The test set is too small."},
           "b",
           {"a": "Stratifying by user keeps every user's future in training all the same.",
            "b": "Right: pp.check_no_leakage catches it.",
            "c": "Size is not the problem; time order is."}),
    Choice("Leave-last-out holds out each user's latest interaction. Which leak remains?",
           {"a": "None: it is leak-free.",
            "b": "The per-user leak: users train on their own future.",
            "c": "The global one: a test event can precede other users' training events, so the "
                 "model learns from the catalogue's future (Ji et al., 2023)."},
           "c",
           {"a": "It removes the per-user leak only; the chapter counts the global one.",
            "b": "That is exactly what leave-last-out removes.",
            "c": "Right: a global time cut removes both."}),
    Numeric("A cleaning step read 1,000 rows and dropped 37 duplicates and 12 bot events. How many "
            "rows must come out for the report to balance?",
            951, "Right: rows in - rows dropped = rows out; nothing disappears uncounted.",
            tol=0.5, traps={963: "That drops only the duplicates; the bot events go too.",
                            988: "That drops only the bot events; the duplicates go too."}),
])

progress = progress_of(__name__)
