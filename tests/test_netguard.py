"""The network guard that `make test` runs under must itself catch an attempt."""
import os
import subprocess
import sys

from helpers.config import ROOT


def test_guard_logs_an_outside_connection_and_ignores_loopback(tmp_path):
    log = tmp_path / "net.log"
    env = dict(os.environ, COURSE_NETGUARD_LOG=str(log),
               PYTHONPATH=str(ROOT / "tools" / "netguard"))
    code = ("import socket\n"
            "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
            "socket.create_connection(srv.getsockname(), timeout=1).close()\n"
            "try:\n    socket.create_connection(('203.0.113.7', 9), timeout=0.2)\n"
            "except OSError:\n    pass\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    lines = log.read_text().splitlines()
    assert lines and all("203.0.113.7" in line for line in lines), lines
