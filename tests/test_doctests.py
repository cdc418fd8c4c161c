"""Every ``>>>`` example in the library runs, and shows what it says it shows.

Examples that need the course's models or a long computation are written as plain code blocks
(``::``), not as doctests; the modules in ``MUST_HAVE`` keep at least one runnable example."""
from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

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


def _public_objects():
    """Every public function, class and method the library defines (not what it imports)."""
    for name in MODULES:
        module = importlib.import_module(name)
        yield name, module
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{name}.{attr}", obj
            if inspect.isclass(obj):
                for meth, fn in vars(obj).items():
                    if not meth.startswith("_") and inspect.isfunction(fn):
                        yield f"{name}.{attr}.{meth}", getattr(obj, meth)


def test_every_public_name_says_what_it_does():
    """A docstring on every public module, function, class and method; a method that overrides
    a documented one inherits its contract (``inspect.getdoc``, as help() shows it)."""
    bare = [qual for qual, obj in _public_objects()
            if not (inspect.getdoc(obj) or "").strip()
            and not qual.startswith("helpers.course.exercises.")]
    assert not bare, f"{len(bare)} public names have no docstring: {bare[:20]}"


# A measurement (a time, a speed, a share of runs) in a docstring goes stale when the code or
# the machine changes: the docstring points to the results file that records it instead.
MEASURED = re.compile(r"\d(\.\d+)?\s?(ms|µs|s/epoch|reasons/s|texts/s|minutes|seconds)\b"
                      r"|\d\.\d+ (to|-) \d\.\d+ of the time|median of \d\.\d+")


def test_docstrings_point_to_the_results_instead_of_quoting_measurements():
    stale = []
    for qual, obj in _public_objects():
        doc = inspect.getdoc(obj) or ""
        prose = [line for line in doc.splitlines() if not line.lstrip().startswith(">>>")]
        for line in prose:
            if MEASURED.search(line) and "benchmarks/results/" not in doc:
                stale.append(f"{qual}: {line.strip()}")
    assert not stale, "measured figures in docstrings (cite benchmarks/results/ instead):\n" + \
        "\n".join(stale)
    assert MEASURED.search("0.15 ms a user on 2 cores")       # the pattern catches the old case
