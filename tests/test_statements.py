"""Stated results are computed, not typed (issue 37): the sentence-writing helpers take each
metric's direction from one definition, and a reversed value or a reversed direction makes them
say the opposite."""
from __future__ import annotations

import math

import pytest

from helpers.core.checks import DataError, ParameterError
from helpers.course import statements as S
from helpers.metrics import directions as D

TABLE = {"most popular": 0.030, "item-kNN": 0.032, "BPR": 0.039, "SASRec": 0.053}


def test_every_metric_a_chapter_table_names_has_one_direction():
    for name, higher in [("NDCG@10", True), ("hr@10", True), ("mrr@10", True), ("RMSE", False),
                         ("MAE", False), ("DIV", False), ("USR", True), ("FMR (token)", True),
                         ("ROUGE-L F1", True), ("BLEU-4", True), ("calibration KL", False),
                         ("Gini", False), ("ILD", True), ("coverage", True), ("NLL", False),
                         ("faithful", True), ("hallucination", False), ("recall@10", True)]:
        assert D.higher_is_better(name) is higher, name


def test_an_unknown_metric_is_refused_not_guessed():
    with pytest.raises(DataError, match="no direction is defined .* add it"):
        D.higher_is_better("wow@10")


def test_sentences_follow_the_values_and_the_direction():
    assert S.ranking(TABLE, "NDCG@10").startswith("By NDCG@10 (higher is better), SASRec comes "
                                                  "first (0.053), then BPR (0.039)")
    assert S.ranking({"LM": 0.199, "template": 0.412}, "DIV").startswith(
        "By DIV (lower is better), LM comes first")
    assert "share first place (0.953)" in S.ranking({"a": 0.953, "b": 0.953, "c": 0.9}, "USR")
    assert "higher than BPR's (0.053 against 0.039): better" in \
        S.compare("NDCG@10", "SASRec", 0.053, "BPR", 0.039)
    assert "lower than the template's (0.199 against 0.412): better, since lower is better" in \
        S.compare("DIV", "the LM", 0.199, "the template", 0.412)
    assert "same to 3 decimals" in S.compare("NDCG@10", "a", 0.0501, "b", 0.0499)
    assert S.verdict("NDCG@10", "EASE", "BPR", 0.01, 0.004, 0.02).startswith("EASE is ahead of BPR")
    assert S.verdict("RMSE", "MF", "Biases", -0.02, -0.03, -0.01).startswith("MF is ahead")
    assert S.verdict("NDCG@10", "A", "B", 0.001, -0.002, 0.004).startswith("A and B are level")


def test_a_reversed_value_says_the_opposite():
    swapped = {**TABLE, "SASRec": TABLE["BPR"] - 0.02}
    assert "SASRec comes first" in S.ranking(TABLE, "ndcg@10")
    assert "BPR comes first" in S.ranking(swapped, "ndcg@10")
    assert "worse" in S.compare("NDCG@10", "SASRec", 0.019, "BPR", 0.039)
    assert "behind" in S.verdict("NDCG@10", "EASE", "BPR", -0.01, -0.02, -0.004)


def test_a_reversed_direction_says_the_opposite(monkeypatch):
    """Chapter 07's old mistake (DIV read as higher-is-better) cannot survive: flip the one
    definition and every sentence flips with it."""
    before = S.ranking({"LM": 0.199, "template": 0.412}, "DIV")
    monkeypatch.setitem(D.DIRECTIONS, "div", D.Direction(True, "flipped for the test"))
    after = S.ranking({"LM": 0.199, "template": 0.412}, "DIV")
    assert "LM comes first" in before and "template comes first" in after
    assert D.best({"LM": 0.199, "template": 0.412}, "DIV") == "template"
    assert "worse" in S.compare("DIV", "the LM", 0.199, "the template", 0.412)


def test_a_tie_is_not_a_winner():
    with pytest.raises(DataError, match="tie"):
        D.best({"a": 0.953, "b": 0.953}, "USR")


@pytest.mark.parametrize("call", [
    lambda: S.ranking({}, "NDCG@10"),
    lambda: S.ranking({"a": math.nan, "b": 0.1}, "NDCG@10"),
    lambda: S.ranking({"a": "0.3"}, "NDCG@10"),
    lambda: S.compare("NDCG@10", "a", math.inf, "b", 0.1),
    lambda: S.verdict("NDCG@10", "a", "b", 0.5, 0.0, 0.1),       # point outside its interval
    lambda: S.say(""),
    lambda: D.metric_key(""),
    lambda: S.number(0.1, decimals=-1),
])
def test_bad_input_is_refused(call):
    with pytest.raises((DataError, ParameterError)):
        call()


def _chapter_cell(notebook: str, cell_id: str) -> str:
    import nbformat

    from helpers.core.config import ROOT
    nb = nbformat.read(ROOT / "solutions" / notebook, as_version=4)
    return next(c.source for c in nb.cells if c.get("id") == cell_id)


def _run_ch07_offline_vs_online(capsys, nll_lm=2.1):
    """Chapter 07's 'offline metric that disagrees with the online outcome' cell, run on a
    table shaped like its own (the values are the chapter's quick-profile ones)."""
    import pandas as pd
    arms = ["template", "plan + LM + guard", "LM, no guard"]
    quality = pd.DataFrame({"LM NLL": [5.35, 4.44, nll_lm], "USR": [0.359, 0.953, 0.953],
                            "DIV": [0.101, 0.087, 0.199]}, index=arms)
    ab = pd.DataFrame({"return rate": [0.05, 0.04, 0.30], "kept / 100 sessions": [3.0, 4.0, 2.5],
                       "stars": [4.1, 4.3, 2.9], "kept / 100 sessions diff": [0.5, 1.0, -0.2]},
                      index=arms)
    namespace = {"pd": pd, "quality": quality, "ab": ab, "statements": S, "directions": D}
    exec(_chapter_cell("07b_evaluating_reasons.ipynb", "0ab7df46"), namespace)
    return capsys.readouterr().out


def test_chapter_07_says_what_its_table_says_and_fails_when_a_value_is_reversed(capsys,
                                                                                 monkeypatch):
    out = _run_ch07_offline_vs_online(capsys)
    assert "By DIV (lower is better), plan + LM + guard comes first (0.087)" in out
    assert "By LM NLL (lower is better), LM, no guard comes first" in out
    monkeypatch.setitem(D.DIRECTIONS, "div", D.Direction(True, "reversed for the test"))
    assert "By DIV (higher is better), LM, no guard comes first" in \
        _run_ch07_offline_vs_online(capsys)                  # the old misreading, now visible
    monkeypatch.undo()
    with pytest.raises(AssertionError):                      # a reversed value fails the cell
        _run_ch07_offline_vs_online(capsys, nll_lm=9.0)


def test_a_series_with_repeated_names_is_refused():
    import pandas as pd
    with pytest.raises(DataError, match="names repeat"):
        S.ranking(pd.Series([0.1, 0.2], index=["a", "a"]), "NDCG@10")
    assert "b comes first" in S.ranking(pd.Series([0.1, 0.2], index=["a", "b"]), "NDCG@10")


def test_another_spelling_is_the_same_metric_not_a_second_definition():
    for alias, key in D.ALIASES.items():
        assert key in D.DIRECTIONS and alias not in D.DIRECTIONS, alias
        assert D.metric_key(alias) == key
    assert D.metric_key("Hit rate@10") == "hr" and D.metric_key("latency (p95)") == "seconds"


def test_standing_is_the_one_rule_for_ahead_and_it_follows_the_direction(monkeypatch):
    assert [S.standing("NDCG@10", lo, hi) for lo, hi in ((0.01, 0.02), (-0.02, -0.01),
                                                         (-0.01, 0.01))] == \
        ["ahead", "behind", "level"]
    assert S.standing("RMSE", -0.03, -0.01) == "ahead"
    monkeypatch.setitem(D.DIRECTIONS, "ndcg", D.Direction(False, "reversed for the test"))
    assert S.standing("NDCG@10", 0.01, 0.02) == "behind"
    assert S.verdict("NDCG@10", "A", "B", 0.015, 0.01, 0.02).startswith("A is behind B")
    with pytest.raises(DataError, match="upside down"):
        S.standing("NDCG@10", 0.02, 0.01)
    with pytest.raises(DataError, match="NaN or inf"):
        S.standing("NDCG@10", math.nan, 0.01)
