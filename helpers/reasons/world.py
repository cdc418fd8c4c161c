"""Chapter 05's data in one call: the time split of ShopWorld's purchase reasons, and what a
generator may know (computed from the training period only) next to what is true (for scoring).

The chapter, the adapter's training script, the benchmark and the tests all call
:func:`reason_world`, so they all use the same split and the same facts.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers.data import loaders, preprocess as pp
from helpers.models import interest as I
from helpers.reasons.claims import Lexicon, item_facts, item_truth_facts, lexicon, user_truth_facts

TRAIN_SHARE = 0.7
"""Reasons before this quantile of purchase time train; later ones test."""


@dataclass
class ReasonWorld:
    catalogue: pd.DataFrame
    events: pd.DataFrame          # the clean log, all of it (slice by ``cutoff`` for training)
    reviews: pd.DataFrame         # all reviews (``train_reviews`` are the ones a model may read)
    train_reviews: pd.DataFrame
    cutoff: float
    train: pd.DataFrame           # purchase reasons before the cut: user_id, item_id, timestamp,
    warm: pd.DataFrame            # drivers, reason (the reference), rating
    cold: pd.DataFrame            # test items launched after the cut: no reviews, no history
    profile: pd.DataFrame         # each user's inferred top aspects (chapter 04), training only
    facts: dict                   # what the shop states about each item (item_facts)
    lex: Lexicon
    items_truth: dict             # hidden truth, for scoring only
    users_truth: dict

    @property
    def train_events(self) -> pd.DataFrame:
        return self.events[self.events["timestamp"] < self.cutoff]


def reason_world(profile_top: int = 3) -> ReasonWorld:
    """Load ShopWorld and build the chapter's split (about 5 s)."""
    sw = pp.clean_shopworld(write=False)
    catalogue, events = sw["catalogue"], sw["events"]
    reviews, reasons = loaders.load_shopworld("reviews"), loaders.load_shopworld("reasons")
    buys = events.loc[events["event_type"] == "purchase",
                      ["user_id", "item_id", "timestamp", "rating"]]
    reasons = reasons.merge(buys, on=["user_id", "item_id", "timestamp"], how="left",
                            validate="1:1")
    cutoff = float(reasons["timestamp"].quantile(TRAIN_SHARE))
    train, warm, cold = pp.cold_start_split(reasons, catalogue, cutoff)
    train_reviews = reviews[reviews["timestamp"] < cutoff]
    profile = I.aspect_profile(events[events["timestamp"] < cutoff], train_reviews, catalogue,
                               loaders.vocabulary()["categories"], top=profile_top)
    return ReasonWorld(
        catalogue=catalogue, events=events, reviews=reviews, train_reviews=train_reviews,
        cutoff=cutoff, train=train.reset_index(drop=True), warm=warm.reset_index(drop=True),
        cold=cold.reset_index(drop=True), profile=profile,
        facts=item_facts(catalogue, train_reviews), lex=lexicon(catalogue),
        items_truth=item_truth_facts(loaders.load_shopworld("item_truth"), catalogue),
        users_truth=user_truth_facts(loaders.load_shopworld("user_truth")))
