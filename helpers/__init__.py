"""ReasonRec's library: the code the course notebooks explain, one module per concept, in layers.

Each layer imports only the layers below it (``tests/test_architecture.py`` checks it with
import-linter; the contract is in ``pyproject.toml``)::

    course       the course's tooling: chapters from solutions, launch cells, results, exercises
    serving      re-ranking, real-time fold-in, the shop app, nightly scoring on Ray
    evaluation   the harness: per-user metrics, comparisons, text scores, simulated users
    reasons      claims, the guard, planners, explainers, language models, the realiser
    models       recommenders and their networks, pretrained encoders, privacy
    metrics      ranking and text metrics, intervals and paired tests
    data         ShopWorld, MovieLens, loading, preprocessing
    core         input checks, configuration, offline assets, checkpoints

Importing it puts the Hugging Face libraries in offline mode (see ``helpers.core.config``).
"""
from helpers.core import config  # noqa: F401  (applies offline mode first)

__version__ = "0.1.0"
