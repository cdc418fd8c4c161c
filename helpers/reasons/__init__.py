"""Layer 5, reasons: chapter 05's reason generation, one concept per module.

============================================  ==============================================
:mod:`~helpers.reasons.world`                 chapter 05's split and facts in one call
                                              (:func:`~helpers.reasons.world.reason_world`)
:mod:`~helpers.reasons.claims`                claims a reason makes, the shop's stated facts,
                                              the hidden truth, and the definitions: truthful,
                                              grounded, personal, faithful
:mod:`~helpers.reasons.explainers`            template, review retrieval, PETER (no language
                                              model)
:mod:`~helpers.reasons.untrusted`             cleaning reviews, titles and brands before they
                                              reach a prompt
:mod:`~helpers.reasons.lm`                    prompts, fine-tuning with checkpoints, batched
                                              generation
:mod:`~helpers.reasons.guard`                 the closed-world guard that checks every reason
                                              before a shopper sees it
:mod:`~helpers.reasons.planner`               which claims to state: a learned content
                                              planner, the oracle
:mod:`~helpers.reasons.phrasing`              many ways to say one plan: the phrasing bank the
                                              realiser learns
:mod:`~helpers.reasons.realiser`              plan -> sentence: templates, and SmolLM2 with the
                                              shipped LoRA adapter (``weights/``)
:mod:`~helpers.reasons.redteam`               false/true reasons for the guard; injected
                                              reviews, titles, brands
============================================  ==============================================

Import the module that holds a name (``from helpers.reasons import claims``), so that the file
a chapter's code comes from is always in sight.
"""
