"""Layer 4, models: the recommenders and the networks inside them (chapters 02-04, 06, 08c).

- :mod:`~helpers.models.cf`            baselines, kNN, matrix factorisation, BPR, EASE, ALS (ch. 02)
- :mod:`~helpers.models.attention`     self-attention from scratch, the Transformer block, SASRec (03)
- :mod:`~helpers.models.sequential`    training windows and the SASRec recommender (03)
- :mod:`~helpers.models.similarity`    cosine similarity and top-k with exclusions
- :mod:`~helpers.models.pretrained`    the pretrained encoders and language model, loaded offline
- :mod:`~helpers.models.interest`      BERT item text, user interest, two-tower, BERT4Rec (04)
- :mod:`~helpers.models.efficientnet`  EfficientNet-Lite0, the pretrained image encoder (06)
- :mod:`~helpers.models.multimodal`    images, a small CNN, a shared space, fusion, VBPR, a GAN (06)
- :mod:`~helpers.models.privacy`       DP-SGD, membership inference, federated averaging (08c)
"""
