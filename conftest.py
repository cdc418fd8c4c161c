"""pytest hooks for every part of `make test`: the unit tests (tests/), the solution notebooks
(solutions/) and the student notebooks (chapters/).

- The network check: every test and notebook run must leave the network alone
  (tools/no-network logs each attempt; any attempt fails the run).
- The order of work: with two workers (tools/test-parts runs ``-n 2 --dist loadfile``, one file
  or notebook per worker at a time), the longest files start first, so that the last file to
  finish is a short one and neither core idles at the end. ``SLOWEST_FIRST`` lists them, with
  the seconds each took (measured in CI runs; see INSTRUCTORS.md); the rest keep their order.
"""
import os
from pathlib import Path

import pytest

# file stem -> seconds on 2 cores (one worker, one thread), the heaviest first
SLOWEST_FIRST = {
    "10_scale_out": 300, "05_reason_generation": 240, "07_evaluation": 230,
    "06_multimodal_fusion": 130, "04_bert_interest_models": 120, "03_self_attention": 110,
    "test_bundle": 200, "test_scale": 90, "test_nlg": 80, "test_app": 60, "test_browser": 60,
    "test_launch": 50, "02_collaborative_filtering": 90, "08b_realtime": 80,
    "08c_privacy": 70, "08a_diversity": 50, "test_multimodal": 60,
}


def pytest_collection_modifyitems(session, config, items):
    """Heaviest files first (stable: a notebook's cells keep their order)."""
    def weight(item):
        return -SLOWEST_FIRST.get(Path(str(item.path)).stem, 0)
    items[:] = sorted(items, key=weight)


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller reports once for the whole run
    log = os.environ.get("COURSE_NETGUARD_LOG")
    if not log or not Path(log).exists():
        return
    attempts = Path(log).read_text().strip()
    if attempts:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = ("The course tried to reach the network during the tests (it must run "
                   f"offline):\n{attempts}")
        if reporter:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
