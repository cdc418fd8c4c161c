"""pytest hooks for the whole of `make test`: the unit tests (tests/), the solution notebooks
(solutions/, quick profile) and the student notebooks (chapters/, smoke profile), which
tools/test-parts runs as one session on two workers.

- Each part's settings: a student notebook's kernel starts with ``COURSE_PROFILE=smoke`` and
  its recorded (unchecked) values go to build/results-smoke; everything else sees the
  environment the run started with (``PART_ENV``).
- The order of work: with ``-n 2 --dist loadfile --no-loadscope-reorder`` each worker takes one
  file or notebook at a time in collection order, so the longest start first and the last to
  finish are short ones (``SLOWEST_FIRST``: worker-seconds measured in a clean-clone CI run on
  2 cores, one thread per worker; files not listed follow in their usual order, the student
  notebooks last, after the solutions have filled the text-encoding cache they reuse).
- The summary: the time of each part (worker-seconds: the two workers' time added up) and its
  verdict, after the ten slowest tests and cells.
- The network check: every test and notebook run must leave the network alone
  (tools/no-network logs each attempt; any attempt fails the run).
"""
import os
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
PARTS = {"tests": "unit tests", "solutions": "solution notebooks", "chapters": "student notebooks"}
PART_ENV = {"student notebooks": {"COURSE_PROFILE": "smoke",
                                  "COURSE_RESULTS": str(ROOT / "build" / "results-smoke")}}

# path -> worker-seconds in a clean-clone `make test` of 2026-12-07 evening (AMD EPYC, 2 cores;
# build/test-reports/suite.xml), heaviest first; files under 25 worker-seconds are left out
SLOWEST_FIRST = {
    "solutions/10_scale_out.ipynb": 355, "solutions/07b_evaluating_reasons.ipynb": 241,
    "tests/test_grade.py": 165, "tests/test_bundle.py": 157,
    "solutions/05c_guard_and_plan.ipynb": 137, "solutions/04_bert_interest_models.ipynb": 109,
    "tests/test_reasons.py": 103, "solutions/08b_realtime.ipynb": 96,
    "solutions/06a_images_and_text.ipynb": 80, "solutions/03_self_attention.ipynb": 78,
    "tests/test_judge_wire.py": 75, "solutions/08a_diversity.ipynb": 73,
    "solutions/05b_language_models.ipynb": 71, "solutions/08c_privacy.ipynb": 66,
    "tests/test_exercises.py": 64, "tests/test_scale.py": 58, "solutions/06b_fusion.ipynb": 56,
    "solutions/07a_evaluating_recommendations.ipynb": 49,
    "chapters/07b_evaluating_reasons.ipynb": 48, "solutions/02b_top_k_ranking.ipynb": 40,
    "chapters/06a_images_and_text.ipynb": 32, "tests/test_app.py": 31,
    "chapters/05b_language_models.ipynb": 31, "solutions/02a_rating_prediction.ipynb": 30,
    "tests/test_launch.py": 30, "tests/test_multimodal.py": 29, "solutions/09_capstone.ipynb": 27,
}


def _where(item) -> str:
    """The item's file relative to the course root, e.g. ``solutions/05_...ipynb``."""
    return Path(str(item.path)).resolve().relative_to(ROOT).as_posix()


def _part(where: str) -> str:
    """The part a file or node id (``tests/test_cf.py::...``) belongs to."""
    return PARTS.get(where.split("/", 1)[0], "other")


def pytest_collection_modifyitems(session, config, items):
    """Heaviest files first, then the unit tests, the solutions, the student notebooks (a
    stable sort: a notebook's cells keep their order)."""
    rank = {"unit tests": 0, "solution notebooks": 1, "student notebooks": 2}

    def key(item):
        where = _where(item)
        return (-SLOWEST_FIRST.get(where, 0), rank.get(_part(where), 0))
    items[:] = sorted(items, key=key)


_STARTING_ENV = {k: os.environ.get(k) for env in PART_ENV.values() for k in env}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before a notebook's kernel starts (at its first cell), put its part's settings in the
    environment the kernel inherits; other parts get the starting values back."""
    wanted = {**_STARTING_ENV, **PART_ENV.get(_part(_where(item)), {})}
    for key, value in wanted.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_seconds = defaultdict(float)
_counts = defaultdict(int)
_failed = defaultdict(int)


def pytest_runtest_logreport(report):
    part = _part(report.nodeid)
    _seconds[part] += report.duration
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _counts[part] += 1
    if report.failed:
        _failed[part] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if hasattr(config, "workerinput") or not _seconds:
        return
    terminalreporter.section("time per part")
    for part in [*PARTS.values(), "other"]:
        if part in _seconds:
            verdict = f"FAILED ({_failed[part]})" if _failed[part] else "passed"
            terminalreporter.write_line(f"  {part:22} {_seconds[part]:6.0f} worker-s  "
                                        f"{_counts[part]:4d} tests or cells  {verdict}")


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
