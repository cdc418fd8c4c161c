"""Reason generation (chapter 05), one concept per module:

============================  ===========================================================
:mod:`~helpers.nlg.world`     chapter 05's split and facts in one call (:func:`reason_world`)
:mod:`~helpers.nlg.claims`    claims a reason makes, the shop's stated facts, the hidden truth,
                              and the definitions: truthful, grounded, personal, faithful
:mod:`~helpers.nlg.explainers`  template, review retrieval, PETER (no language model)
:mod:`~helpers.nlg.untrusted`   cleaning reviews, titles and brands before they reach a prompt
:mod:`~helpers.nlg.lm`        prompts, fine-tuning with checkpoints, batched generation
:mod:`~helpers.nlg.guard`     the closed-world guard that checks every reason before a
                              shopper sees it
:mod:`~helpers.nlg.planner`   which claims to state: a learned content planner, the oracle
:mod:`~helpers.nlg.phrasing`  many ways to say one plan: the phrasing bank the realiser learns
:mod:`~helpers.nlg.realiser`  plan -> sentence: templates, and SmolLM2 with the shipped LoRA
                              adapter (greedy, sampled or constrained decoding)
:mod:`~helpers.nlg.redteam`   false/true reasons for the guard; injected reviews, titles, brands
============================  ===========================================================

Everything public is re-exported here, so ``from helpers import nlg; nlg.extract_claims(...)``
works without knowing which file a name lives in.
"""
from .claims import (FALLBACK_PREFIX, Claim, Lexicon, band_of_level, extract_claims, item_facts,
                     item_truth_facts, judge_claims, lexicon, reason_verdicts, score_reasons,
                     tokenize,
                     user_truth_facts)
from .explainers import (PETER, PETERExplainer, RetrievalExplainer, TemplateExplainer, WordVocab,
                         peter_mask, profile_map)
from . import phrasing, planner, realiser, redteam, world
from .guard import ClosedWorldGuard
from .lm import _collate  # noqa: F401  (tests reach it as nlg._collate)
from .lm import (SYSTEM_PROMPT, build_prompt, encode_example, finetune_lm, generate,
                 top_k_filter, top_p_filter)
from .planner import ContentPlanner, fit_planner, oracle_plan, plan_scores
from .untrusted import clean_untrusted, fold
from .world import reason_world

__all__ = ["Claim", "Lexicon", "lexicon", "tokenize", "extract_claims", "band_of_level",
           "item_facts", "user_truth_facts", "item_truth_facts", "judge_claims", "score_reasons",
           "reason_verdicts",
           "TemplateExplainer", "RetrievalExplainer", "profile_map", "WordVocab", "peter_mask",
           "PETER", "PETERExplainer", "clean_untrusted", "build_prompt", "SYSTEM_PROMPT",
           "encode_example", "finetune_lm", "generate", "top_k_filter", "top_p_filter",
           "ClosedWorldGuard", "FALLBACK_PREFIX", "ContentPlanner",
           "fit_planner", "oracle_plan", "plan_scores", "fold", "reason_world", "phrasing", "planner",
           "realiser", "redteam", "world"]
