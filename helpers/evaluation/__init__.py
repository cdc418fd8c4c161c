"""Layer 6, evaluation: chapter 07's harness over every recommender and every reason generator.

- :mod:`~helpers.evaluation.offline`    per-user metrics, the comparison table, beyond accuracy,
                                        reasons against the true drivers
- :mod:`~helpers.evaluation.textscore`  text scores that need a model: BERTScore, NLL, an LM judge
- :mod:`~helpers.evaluation.simulate`   a simulated user study and A/B test
"""
