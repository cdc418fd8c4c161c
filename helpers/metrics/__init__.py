"""Layer 3, metrics: the measures every model and every reason is scored with (chapters 02-07).

- :mod:`~helpers.metrics.ranking`  rating error and top-k ranking quality (NDCG, HR, MRR, ...)
- :mod:`~helpers.metrics.text`     the reasons' metrics (BLEU, ROUGE, USR, FMR, FCR, DIV, ...)
- :mod:`~helpers.metrics.stats`    intervals and paired tests (bootstrap, permutation, Holm)
- :mod:`~helpers.metrics.directions`  which way is better, per metric (one definition)
"""
