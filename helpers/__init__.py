"""ReasonRec's library: the code the course notebooks explain, one module per concept.

Importing it puts the Hugging Face libraries in offline mode (see ``helpers.config``).
"""
from . import config  # noqa: F401  (applies offline mode first)

__version__ = "0.1.0"
