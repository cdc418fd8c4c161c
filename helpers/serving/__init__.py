"""Layer 7, serving: the recommender in front of shoppers (chapters 08a, 08b, 09, 10).

- :mod:`~helpers.serving.rerank`  diversity re-ranking: MMR, DPP, calibration (08a)
- :mod:`~helpers.serving.online`  fold-in of new events in real time (08b)
- :mod:`~helpers.serving.app`     the capstone shop page (09)
- :mod:`~helpers.serving.scale`   nightly scoring of every shopper on Ray (10)
"""
