"""Every ``>>>`` example in the library runs, and shows what it says it shows.

Examples that need the course's models or a long computation are written as plain code blocks
(``::``), not as doctests; the modules in ``MUST_HAVE`` keep at least one runnable example."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import helpers

MODULES = sorted(m.name for m in pkgutil.walk_packages(helpers.__path__, "helpers.")
                 if not m.ispkg)
MUST_HAVE = {"helpers.core.checks", "helpers.core.params", "helpers.core.config",
             "helpers.metrics.ranking", "helpers.metrics.text", "helpers.metrics.stats",
             "helpers.data.preprocess", "helpers.models.similarity",
             "helpers.reasons.untrusted", "helpers.course.notebooks", "helpers.models.attention",
             "helpers.models.cf", "helpers.reasons.claims", "helpers.serving.rerank",
             "helpers.evaluation.simulate"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_the_docstrings_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"
    if name in MUST_HAVE:
        assert result.attempted > 0, f"{name} should show at least one runnable example"


def test_a_wrong_example_fails():
    """The check itself can fail: an example whose shown output is wrong."""
    probe = type(importlib)("probe")
    probe.__doc__ = ">>> 1 + 1\n3\n"
    assert doctest.testmod(probe, report=False).failed == 1
