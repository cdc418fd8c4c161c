"""Metrics for the reasons that explain recommendations, as explanation benchmarks (NRT, PETER,
...) report them: BLEU, ROUGE, USR, FMR, FCR, DIV, and faithfulness and hallucination from judged
claims.

    bleu(generated, references, max_order=4)        # corpus BLEU-4, in [0, 1]
    unique_sentence_ratio(generated)                # USR: share of distinct sentences

>>> tokenize("Superb comfort, great fit!")
['superb', 'comfort', ',', 'great', 'fit', '!']
>>> unique_sentence_ratio(["It fits.", "It fits.", "It is warm."])
0.6666666666666666
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from helpers.core.checks import DataError, ParameterError, require_count

__all__ = ["tokenize", "bleu", "rouge", "unique_sentence_ratio", "feature_matching_ratio",
           "feature_coverage_ratio", "feature_diversity", "faithfulness", "hallucination_rate"]


# ----------------------------------------------------------------------------- text
# Explanation benchmarks (NRT, PETER, ...) score generated reasons against one reference each:
# corpus-level BLEU, ROUGE F1 per sentence then averaged, and counts of the features (aspects,
# colours, brands...) the reasons mention. Texts are tokenised with ``tokenize`` (lower-cased
# words, punctuation marks as tokens).
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: the tokens BLEU/ROUGE count and PETER reads."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def _texts(hypotheses, references=None):
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise DataError("pass lists of texts, not one string (a string would be read letter by "
                        "letter); wrap a single text in a list.")
    hyp = list(hypotheses)
    if not hyp:
        raise DataError("no generated texts to score: pass a non-empty list of reasons")
    bad = [k for k, h in enumerate(hyp) if not isinstance(h, str)]
    if bad:
        raise DataError(f"generated text {bad[0]} is a {type(hyp[bad[0]]).__name__}, not a string "
                        "(a missing reason must be an empty string, and is scored as one)")
    if references is None:
        return hyp
    ref = list(references)
    if len(ref) != len(hyp):
        raise DataError(f"{len(hyp)} generated texts but {len(ref)} references; each reason "
                        "needs exactly one reference")
    if any(not isinstance(r, str) or not r.strip() for r in ref):
        raise DataError("a reference is empty or not a string; drop that pair from the test set "
                        "first (and say so)")
    return hyp, ref


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _clipped(hyp, ref, n):
    """Chapter 05's exercise 1, line for line (tests/test_mirror.py keeps them the same): the
    hypothesis's n-grams found in the reference, each counted at most as often as it occurs
    there, and the hypothesis's number of n-grams."""
    h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    return sum(min(c, r[g]) for g, c in h.items()), sum(h.values())


def bleu(hypotheses, references, max_order: int = 4) -> float:
    """Corpus BLEU (Papineni et al., 2002) with one reference per text, no smoothing, in [0, 1]:
    clipped n-gram precisions 1..max_order pooled over the corpus, geometric mean, brevity
    penalty from the corpus lengths. ``max_order=1`` is BLEU-1, 4 is BLEU-4. Equals sacrebleu's
    ``corpus_bleu(..., tokenize='none', smooth_method='none')`` / 100 on pre-tokenised text."""
    hyp, ref = _texts(hypotheses, references)
    if max_order < 1:
        raise ParameterError(f"max_order must be >= 1, got {max_order}")
    match, total = np.zeros(max_order), np.zeros(max_order)
    hyp_len = ref_len = 0
    for h, r in zip(hyp, ref):
        h, r = tokenize(h), tokenize(r)
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, max_order + 1):
            matched, count = _clipped(h, r, n)
            match[n - 1] += matched
            total[n - 1] += count
    if hyp_len == 0 or (match == 0).any():
        return 0.0
    log_p = np.log(match / total).mean()
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return float(bp * math.exp(log_p))


def _lcs(a, b) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _f1(overlap, n_hyp, n_ref):
    if overlap == 0:
        return 0.0
    p, r = overlap / n_hyp, overlap / n_ref
    return 2 * p * r / (p + r)


def _f_beta_lcs(lcs: int, n_hyp: int, n_ref: int) -> float:
    """The explanation papers' ROUGE-L: F_beta with beta = P/R (the old TensorFlow ``rouge.py``
    that NRT, PETER and PEPLER report), not F1."""
    r, p = lcs / n_ref, lcs / n_hyp
    beta2 = (p / (r + 1e-12)) ** 2
    return (1 + beta2) * r * p / (r + beta2 * p + 1e-12)


def rouge(hypotheses, references) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 (clipped n-gram overlap) and ROUGE-L (longest common subsequence) F1
    per text, averaged over texts, in [0, 1]. Equals Google's ``rouge-score`` package given the
    same tokens (its default tokenizer drops punctuation; ours keeps it). ``rougeL_fbeta`` is
    ROUGE-L as the explainable-recommendation papers (NRT, PETER, PEPLER) compute it: F_beta
    with beta = P/R per text; it is what their tables report, usually a little below F1."""
    hyp, ref = _texts(hypotheses, references)
    out = {"rouge1": [], "rouge2": [], "rougeL": [], "rougeL_fbeta": []}
    for h, r in zip(hyp, ref):
        h, r = tokenize(h), tokenize(r)
        for n in (1, 2):
            hn, rn = _ngrams(h, n), _ngrams(r, n)
            overlap = sum(min(c, rn[g]) for g, c in hn.items())
            out[f"rouge{n}"].append(_f1(overlap, sum(hn.values()), sum(rn.values())))
        lcs = _lcs(h, r)
        out["rougeL"].append(_f1(lcs, len(h), len(r)))
        out["rougeL_fbeta"].append(_f_beta_lcs(lcs, len(h), len(r)) if h and r else 0.0)
    return {k: float(np.mean(v)) for k, v in out.items()}


def unique_sentence_ratio(texts) -> float:
    """USR: distinct texts / texts (after lower-casing and tokenising: 'Great.' == 'great .')."""
    hyp = _texts(texts)
    return len({tuple(tokenize(t)) for t in hyp}) / len(hyp)


def _feature_sets(features, name="features"):
    if isinstance(features, str) or any(isinstance(f, str) for f in features):
        raise DataError(f"{name} must be a list of feature collections (one set per reason, e.g. "
                        "[{'comfort'}, set()]), not strings: a string would be split into letters.")
    sets = [set(f) for f in features]
    if not sets:
        raise DataError(f"{name} is empty")
    return sets


def feature_matching_ratio(generated_features, reference_features) -> float:
    """FMR: among pairs whose reference names at least one feature, the share whose generated
    reason names one of them. Pairs with a featureless reference are left out (stated)."""
    gen = _feature_sets(generated_features, "generated_features")
    ref = _feature_sets(reference_features, "reference_features")
    if len(gen) != len(ref):
        raise DataError(f"{len(gen)} generated feature sets but {len(ref)} reference ones")
    scored = [bool(g & r) for g, r in zip(gen, ref) if r]
    if not scored:
        raise DataError("no reference names a feature; FMR is undefined")
    return float(np.mean(scored))


def feature_coverage_ratio(generated_features, n_features: int) -> float:
    """FCR: distinct features named anywhere in the generated reasons / all features."""
    require_count("n_features", n_features)
    return len(set().union(*_feature_sets(generated_features, "generated_features"))) / n_features


def feature_diversity(generated_features) -> float:
    """DIV: mean over all pairs of reasons of how many features they share (lower = more
    diverse). Computed from per-feature counts, sum_f C(n_f, 2) / C(N, 2): O(N), not O(N^2)."""
    sets = _feature_sets(generated_features, "generated_features")
    if len(sets) < 2:
        raise DataError("DIV needs at least two reasons")
    counts = np.array(list(Counter(f for s in sets for f in s).values()), dtype=np.float64)
    n = len(sets)
    return float((counts * (counts - 1) / 2).sum() / (n * (n - 1) / 2))


def _verdicts(verdicts):
    v = list(verdicts)
    if not v:
        raise DataError("no judged reasons: pass one list of (true, important) verdicts per "
                        "reason (claims.judge_claims)")
    return v


def faithfulness(verdicts) -> float:
    """Share of reasons whose claims are all true of the item and at least one of which matters
    to the user. ``verdicts``: per reason, a list of (true_of_item, important) per claim (see
    ``claims.judge_claims``). A reason that claims nothing is not faithful: it tells the user
    nothing about why."""
    return float(np.mean([bool(v) and all(t for t, _ in v) and any(i for _, i in v)
                          for v in _verdicts(verdicts)]))


def hallucination_rate(verdicts) -> float:
    """Share of reasons with at least one claim that is false of the item."""
    return float(np.mean([any(not t for t, _ in v) for v in _verdicts(verdicts)]))
