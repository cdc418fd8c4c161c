"""Session-wide checks: every test and notebook run must leave the network alone."""
import os
from pathlib import Path

import pytest


def pytest_sessionfinish(session, exitstatus):
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
