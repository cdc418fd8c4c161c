"""Which way is better, for every metric the course reports: the one definition that a sentence
saying "higher", "best" or "ahead" takes its direction from (chapter 07; issue 37).

A sentence in a chapter that ranks models must not retype the direction: ``DIV`` is *lower is
more diverse*, ``RMSE`` lower is better, ``NDCG@10`` higher. :func:`higher_is_better` reads it
from :data:`DIRECTIONS`, whatever the spelling of the metric's name in a table (``"ndcg@10"``,
``"NDCG@10"``, ``"ROUGE-L F1"``, ``"hr@10 (masked)"``).

>>> higher_is_better("NDCG@10"), higher_is_better("div"), higher_is_better("RMSE")
(True, False, False)
>>> best({"BPR": 0.039, "SASRec": 0.053, "most popular": 0.030}, "ndcg@10")
'SASRec'
>>> best({"template": 0.41, "LM": 0.20}, "DIV")          # lower DIV: more diverse
'LM'
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from helpers.core.checks import DataError

__all__ = ["Direction", "DIRECTIONS", "ALIASES", "higher_is_better", "better", "best", "ordered",
           "metric_key", "stated_value"]


@dataclass(frozen=True)
class Direction:
    """One metric's direction: ``higher_is_better`` and, in words, what the metric measures."""
    higher_is_better: bool
    means: str


# The metric's key (see metric_key) -> its direction. One place; chapters, results files and
# tests read it from here.
DIRECTIONS: dict[str, Direction] = {
    # ranking (chapters 02-04, 07)
    "hr": Direction(True, "share of users whose held-out item is in the top k"),
    "ndcg": Direction(True, "rank-discounted hits, 1 = every relevant item first"),
    "mrr": Direction(True, "mean reciprocal rank of the first relevant item"),
    "precision": Direction(True, "share of the top k that is relevant"),
    "recall": Direction(True, "share of the relevant items found in the top k"),
    "auc": Direction(True, "probability a relevant item outranks an irrelevant one"),
    "coverage": Direction(True, "share of the catalogue recommended to anyone"),
    "rmse": Direction(False, "root mean squared rating error"),
    "mae": Direction(False, "mean absolute rating error"),
    # beyond accuracy (chapters 07, 08a)
    "ild": Direction(True, "intra-list diversity (mean pairwise distance)"),
    "novelty": Direction(True, "mean self-information of recommended items"),
    "gini": Direction(False, "concentration of recommendations on few items"),
    "calibration kl": Direction(False, "divergence of a list's category mix from the user's"),
    "popularity bias": Direction(False, "mean popularity of recommended items"),
    # reasons (chapters 05, 07)
    "bleu": Direction(True, "n-gram precision against the reference"),
    "rouge": Direction(True, "n-gram overlap F-score against the reference"),
    "bertscore": Direction(True, "embedding similarity to the reference"),
    "usr": Direction(True, "share of distinct sentences"),
    "fmr": Direction(True, "share of reasons naming a feature of the reference"),
    "fcr": Direction(True, "share of all features ever named"),
    "div": Direction(False, "features two reasons share on average (lower is more diverse)"),
    "truthful": Direction(True, "share of reasons whose every claim is true"),
    "grounded": Direction(True, "share of reasons whose every claim the shop states"),
    "personal": Direction(True, "share of reasons naming a true driver"),
    "faithful": Direction(True, "share of reasons truthful and personal"),
    "hallucination": Direction(False, "share of reasons saying something false"),
    "nll": Direction(False, "negative log-likelihood per token"),
    "lm nll": Direction(False, "a language model's negative log-likelihood per token of the text"),
    "perplexity": Direction(False, "exp of the negative log-likelihood per token"),
    "loss": Direction(False, "training or validation loss"),
    # judges of reasons (chapter 07, section 7)
    "agreement": Direction(True, "share of verdicts that match the truth"),
    "kappa": Direction(True, "Cohen's kappa: agreement beyond chance (0 = chance, 1 = perfect)"),
    "position flips": Direction(False, "share of pairs whose verdict changes with the order"),
    # online outcomes (chapter 07's simulated A/B test)
    "ctr": Direction(True, "clicks per shown recommendation"),
    "return rate": Direction(False, "share of purchases returned"),
    "kept / 100 sessions": Direction(True, "purchases kept per 100 sessions"),
    "stars": Direction(True, "mean star rating after the purchase"),
    # cost
    "seconds": Direction(False, "wall-clock time"),
    "throughput": Direction(True, "work done per second"),
}

# Other spellings of a metric in the chapters' tables -> its key in DIRECTIONS (one direction
# per metric, however it is spelled).
ALIASES: dict[str, str] = {
    "hit rate": "hr", "p": "precision", "r": "recall", "kl": "calibration kl",
    "ms": "seconds", "latency": "seconds", "κ": "kappa", "cohen's kappa": "kappa",
}

_SUFFIX = re.compile(r"\s*(@\s*\d+|\(.*?\)|\[.*?\])\s*")
_VARIANT = re.compile(r"[-_ ]?(\d+|l|lsum|f|f1|f_beta|fbeta)$")


def metric_key(name: str) -> str:
    """The key of ``name`` in :data:`DIRECTIONS`: lower case, cut-offs (``@10``), bracketed
    notes and variant suffixes (``-4``, ``-L``, `` F1``) removed, another spelling
    (:data:`ALIASES`) read as its metric.

    >>> [metric_key(m) for m in ("NDCG@10", "hr@10 (masked)", "ROUGE-L F1", "BLEU-4", "P@10")]
    ['ndcg', 'hr', 'rouge', 'bleu', 'precision']
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"a metric name must be a non-empty string, got {name!r}")
    key = original = _SUFFIX.sub(" ", name.strip().lower()).strip()
    for _ in range(3):                         # "rouge-l f1" -> "rouge-l" -> "rouge"
        key = ALIASES.get(key, key)
        if key in DIRECTIONS:
            return key
        stripped = _VARIANT.sub("", key).strip()
        if stripped == key:
            break
        key = stripped
    return key if key in DIRECTIONS else original


def higher_is_better(metric: str) -> bool:
    """Whether a higher value of ``metric`` is better; a :class:`DataError` naming the known
    metrics when the name is not one of them (add it to :data:`DIRECTIONS`, never guess)."""
    key = metric_key(metric)
    if key not in DIRECTIONS:
        raise DataError(f"no direction is defined for the metric {metric!r} (read as {key!r}); "
                        f"add it to helpers.metrics.directions.DIRECTIONS. Known: "
                        f"{sorted(DIRECTIONS)}")
    return DIRECTIONS[key].higher_is_better


def _values(values: Mapping[str, float]) -> dict[str, float]:
    index = getattr(values, "index", None)                 # a pandas Series: name -> value
    if index is not None and hasattr(values, "to_dict"):
        if index.has_duplicates:
            raise DataError(f"the names repeat ({list(index[index.duplicated()])[:3]}): one value "
                            "per name, or the ranking would drop some silently")
        values = values.to_dict()
    if not isinstance(values, Mapping) or not values:
        raise DataError("pass the values as a non-empty mapping, name -> value (a dict or a "
                        "pandas Series)")
    return {name: stated_value(v, f"the value of {name!r}") for name, v in values.items()}


def stated_value(value: object, what: str = "a stated value") -> float:
    """``value`` as a float, or a :class:`DataError` when a sentence could not state it: not a
    number (a bool, text, None) or not finite (NaN, inf). One check for every ranking here and
    every number :mod:`helpers.course.statements` writes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and \
            not hasattr(value, "__float__"):
        raise DataError(f"{what} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise DataError(f"{what} is {value}: a sentence cannot state NaN or inf, nor rank by it; "
                        "drop that row first, and say so")
    return value


def better(metric: str, a: float, b: float) -> bool:
    """Whether ``a`` is strictly better than ``b`` by ``metric``'s direction."""
    v = _values({"a": a, "b": b})
    return v["a"] > v["b"] if higher_is_better(metric) else v["a"] < v["b"]


def ordered(values: Mapping[str, float], metric: str) -> list[str]:
    """The names, best first by ``metric``'s direction; equal values keep the input's order."""
    v = _values(values)
    sign = -1.0 if higher_is_better(metric) else 1.0
    return sorted(v, key=lambda name: sign * v[name])


def best(values: Mapping[str, float], metric: str) -> str:
    """The best name by ``metric``'s direction; a :class:`DataError` when the best value is
    shared (a tie is not a winner: say "tie" instead)."""
    v = _values(values)
    first = ordered(v, metric)
    if len(first) > 1 and v[first[0]] == v[first[1]]:
        tied = [n for n in first if v[n] == v[first[0]]]
        raise DataError(f"{tied} tie on {metric} at {v[first[0]]}: there is no single best; "
                        "say they tie")
    return first[0]
