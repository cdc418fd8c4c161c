"""Layer 2, data: the course's data and the steps that make it fit to learn from (chapter 01).

- :mod:`~helpers.data.shopworld`   the ShopWorld generator (its hidden truth included)
- :mod:`~helpers.data.vocab`       ShopWorld's fixed word lists (aspects, colours, patterns, ...)
- :mod:`~helpers.data.loaders`     loading ShopWorld and MovieLens-100K, verified by checksum
- :mod:`~helpers.data.preprocess`  cleaning, ID maps, interaction matrices, leak-free splits
"""
