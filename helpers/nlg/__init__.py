"""Reason generation (chapter 05), one concept per module:

============================  ===========================================================
:mod:`~helpers.nlg.claims`    claims a reason makes, the shop's stated facts, the hidden truth,
                              and the definitions: truthful, grounded, personal, faithful
:mod:`~helpers.nlg.explainers`  template, review retrieval, PETER (no language model)
:mod:`~helpers.nlg.untrusted`   cleaning reviews, titles and brands before they reach a prompt
:mod:`~helpers.nlg.lm`        prompts, fine-tuning with checkpoints, batched generation
:mod:`~helpers.nlg.guard`     the guard that checks every reason before a shopper sees it
============================  ===========================================================

Everything public is re-exported here, so ``from helpers import nlg; nlg.extract_claims(...)``
works without knowing which file a name lives in.
"""
from .claims import (FALLBACK_PREFIX, Claim, Lexicon, band_of_level, extract_claims, item_facts,
                     item_truth_facts, judge_claims, lexicon, score_reasons, tokenize,
                     user_truth_facts)
from .explainers import (PETER, PETERExplainer, RetrievalExplainer, TemplateExplainer, WordVocab,
                         peter_mask, profile_map)
from .guard import FaithfulnessGuard
from .lm import (SYSTEM_PROMPT, _collate, build_prompt, encode_example, finetune_lm, generate,
                 top_k_filter, top_p_filter)
from .untrusted import clean_untrusted

__all__ = ["Claim", "Lexicon", "lexicon", "tokenize", "extract_claims", "band_of_level",
           "item_facts", "user_truth_facts", "item_truth_facts", "judge_claims", "score_reasons",
           "TemplateExplainer", "RetrievalExplainer", "profile_map", "WordVocab", "peter_mask",
           "PETER", "PETERExplainer", "clean_untrusted", "build_prompt", "SYSTEM_PROMPT",
           "encode_example", "finetune_lm", "generate", "top_k_filter", "top_p_filter",
           "FaithfulnessGuard", "FALLBACK_PREFIX"]
