"""Sentences that state a result, written by code from the computed values (issue 37).

A chapter that says "SASRec ranks first" or "the guard is ahead, clear of noise" must not type
the name, the number or the direction: when a value moves, or a metric is lower-is-better, a
typed sentence goes on saying the old thing. These functions write the sentence from the values,
with each metric's direction from :mod:`helpers.metrics.directions`, and :func:`say` shows it
in the notebook as Markdown. Reverse a value, or a metric's direction, and the sentence says the
opposite (``tests/test_statements.py``).

>>> ranking({"BPR": 0.039, "SASRec": 0.053, "most popular": 0.030}, "NDCG@10")
'By NDCG@10 (higher is better), SASRec comes first (0.053), then BPR (0.039) and most popular (0.030).'
>>> compare("DIV", "the LM", 0.199, "the template", 0.412)
"The LM's DIV is lower than the template's (0.199 against 0.412): better, since lower is better."
>>> verdict("NDCG@10", "EASE", "BPR", 0.012, 0.004, 0.020)
'EASE is ahead of BPR by NDCG@10: the difference, 0.012, has a 95 % interval [0.004, 0.020] clear of 0.'
"""
from __future__ import annotations

from collections.abc import Mapping

from helpers.core.checks import DataError, ParameterError, require_int
from helpers.course.exercises import show_markdown
from helpers.metrics.directions import higher_is_better, ordered, stated_value

__all__ = ["number", "ranking", "compare", "standing", "verdict", "say"]


def number(value: float, decimals: int = 3) -> str:
    """``value`` with ``decimals`` decimals, the way every sentence here prints numbers."""
    require_int("decimals", decimals, 0)
    return f"{stated_value(value):.{decimals}f}"


def _way(metric: str) -> str:
    return "higher is better" if higher_is_better(metric) else "lower is better"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def ranking(values: Mapping[str, float], metric: str, *, decimals: int = 3) -> str:
    """"By METRIC (its direction), A comes first (a), then B (b) and C (c)." Values equal at
    the printed precision are said to tie, never ranked."""
    names = ordered(values, metric)
    shown = {n: number(values[n], decimals) for n in names}
    groups: list[list[str]] = []
    for n in names:
        if groups and shown[groups[-1][0]] == shown[n]:
            groups[-1].append(n)
        else:
            groups.append([n])

    def said(group: list[str]) -> str:
        if len(group) == 1:
            return f"{group[0]} ({shown[group[0]]})"
        return f"{_join(group)} (tied at {shown[group[0]]})"

    head = groups[0]
    first = (f"{head[0]} comes first ({shown[head[0]]})" if len(head) == 1 else
             f"{_join(head)} share first place ({shown[head[0]]})")
    rest = [said(g) for g in groups[1:]]
    tail = f", then {_join(rest)}" if rest else ""
    return f"By {metric} ({_way(metric)}), {first}{tail}."


def compare(metric: str, name_a: str, a: float, name_b: str, b: float, *,
            decimals: int = 3) -> str:
    """"A's METRIC is higher/lower than B's (a against b): better/worse, since ..." — or "the
    same to N decimals". A point comparison only: for "ahead", use :func:`verdict`."""
    sa, sb = number(a, decimals), number(b, decimals)
    subject = f"{name_a[:1].upper()}{name_a[1:]}'s {metric}"
    if sa == sb:
        return f"{subject} and {name_b}'s are the same to {decimals} decimals ({sa})."
    higher = float(a) > float(b)
    good = higher == higher_is_better(metric)
    return (f"{subject} is {'higher' if higher else 'lower'} than {name_b}'s ({sa} against {sb}): "
            f"{'better' if good else 'worse'}, since {_way(metric)}.")


def standing(metric: str, lo: float, hi: float) -> str:
    """``"ahead"``, ``"behind"`` or ``"level"``: where A stands against B by ``metric``, from the
    paired interval ``[lo, hi]`` of A − B and the metric's direction. The one rule every
    "ahead" in the course is decided by (:func:`verdict`, ``benchmarks/seq_protocol_report.py``).

    >>> standing("NDCG@10", 0.004, 0.020), standing("DIV", 0.004, 0.020), standing("RMSE", -0.1, 0.2)
    ('ahead', 'behind', 'level')
    """
    lo, hi = stated_value(lo, "lo"), stated_value(hi, "hi")
    if lo > hi:
        raise DataError(f"the interval [{lo}, {hi}] is upside down: pass lo before hi")
    if lo > 0 or hi < 0:
        return "ahead" if (lo > 0) == higher_is_better(metric) else "behind"
    return "level"


def verdict(metric: str, name_a: str, name_b: str, diff: float, lo: float, hi: float, *,
            level: float = 0.95, decimals: int = 3) -> str:
    """Ahead, behind or level (:func:`standing`), decided by the paired interval ``[lo, hi]`` of
    ``diff`` = A − B (e.g. from :func:`helpers.metrics.stats.paired_bootstrap`), never by the
    point."""
    d, l, h = (number(x, decimals) for x in (diff, lo, hi))
    if not float(lo) <= float(diff) <= float(hi):
        raise DataError(f"the difference {d} lies outside its interval [{l}, {h}]: pass diff, "
                        "lo, hi of one comparison, in that order")
    if not 0 < level < 1:
        raise ParameterError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    pct = f"{100 * level:g} %"
    where = standing(metric, lo, hi)
    if where != "level":
        return (f"{name_a} is {'ahead of' if where == 'ahead' else 'behind'} {name_b} by "
                f"{metric}: the difference, {d}, has a {pct} interval [{l}, {h}] clear of 0.")
    return (f"{name_a} and {name_b} are level by {metric}: the difference, {d}, has a {pct} "
            f"interval [{l}, {h}] that contains 0.")


def say(text: str) -> None:
    """Show a computed sentence in the notebook (Markdown), or print it outside one."""
    if not isinstance(text, str) or not text.strip():
        raise DataError("say() needs the sentence to show, a non-empty string")
    show_markdown(text, text)
