"""The network guard that `make test` runs under must itself catch every way out it claims to
watch: one probe each, in a child process with the guard loaded (as in the real run)."""
import os
import subprocess
import sys

import pytest

from helpers.core.config import ROOT

GUARD = ROOT / "tools" / "netguard"


def _run(tmp_path, code, namespace="0"):
    log = tmp_path / f"net-{len(list(tmp_path.glob('net-*.log')))}.log"
    log.touch()
    env = dict(os.environ, COURSE_NETGUARD_LOG=str(log), PYTHONPATH=str(GUARD),
               COURSE_NETGUARD_NAMESPACE=namespace)
    proc = subprocess.run([sys.executable, "-c", code], env=env, timeout=60,
                          capture_output=True, text=True)
    return log.read_text().splitlines(), proc


TRY = "try:\n    {}\nexcept OSError:\n    pass\n"


def test_outside_connection_is_logged_and_loopback_is_not(tmp_path):
    code = ("import socket\n"
            "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
            "socket.create_connection(srv.getsockname(), timeout=1).close()\n"
            + TRY.format("socket.create_connection(('203.0.113.7', 9), timeout=0.2)"))
    lines, _ = _run(tmp_path, code)
    assert lines and all("203.0.113.7" in line for line in lines), lines


@pytest.mark.parametrize("probe,event", [
    ("socket.gethostbyname('example.invalid')", "socket.gethostbyname"),
    ("socket.gethostbyname_ex('example.invalid')", "socket.gethostbyname"),
    ("socket.gethostbyaddr('203.0.113.9')", "socket.gethostbyaddr"),
    ("socket.getaddrinfo('example.invalid', 443)", "socket.getaddrinfo"),
    ("socket.getnameinfo(('203.0.113.9', 80), 0)", "socket.getnameinfo"),
    ("socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('203.0.113.9', 53))",
     "socket.sendto"),
    ("socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendmsg([b'x'], [], 0, "
     "('203.0.113.9', 53))", "socket.sendmsg"),
])
def test_each_lookup_and_datagram_call_is_logged(tmp_path, probe, event):
    lines, proc = _run(tmp_path, "import socket\n" + TRY.format(probe))
    assert any(line.startswith(event) for line in lines), (lines, proc.stderr[-300:])


@pytest.mark.parametrize("host", ["127.0.0.1.nip.io", "127.evil.example", "localhost.evil.example"])
def test_names_that_only_look_like_loopback_are_logged(tmp_path, host):
    lines, _ = _run(tmp_path, "import socket\n" + TRY.format(f"socket.getaddrinfo({host!r}, 80)"))
    assert any(host in line for line in lines), lines


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.4.5", "::1"])
def test_real_loopback_is_allowed(tmp_path, host):
    lines, _ = _run(tmp_path, "import socket\n" + TRY.format(f"socket.getaddrinfo({host!r}, 80)"))
    assert lines == []


def test_a_network_client_subprocess_is_logged_without_a_namespace(tmp_path):
    code = ("import subprocess\n"
            + TRY.format("subprocess.run(['curl', '--version'], capture_output=True)")
            + TRY.format("subprocess.run(['true'])"))
    lines, _ = _run(tmp_path, code, namespace="0")
    assert len(lines) == 1 and "subprocess" in lines[0] and "curl" in lines[0], lines
    # inside the namespace (root, as in CI) a child has no route out: nothing to log
    lines, _ = _run(tmp_path, code, namespace="1")
    assert lines == []


def test_a_python_child_carries_the_guard(tmp_path):
    inner = ("import socket\ntry:\n    socket.getaddrinfo('example.invalid', 80)\n"
             "except OSError:\n    pass\n")
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {inner!r}])\n"
    lines, _ = _run(tmp_path, code)
    assert any("example.invalid" in line for line in lines), lines


@pytest.mark.parametrize("attack", [
    "open(log, 'w').close()",
    "open(log, 'r+').truncate(0)",
    "os.truncate(log, 0)",
    "os.remove(log)",
    "os.rename(log, log + '.old')",
    "os.close(os.open(log, os.O_WRONLY | os.O_TRUNC))",
])
def test_the_watched_code_cannot_clear_the_log(tmp_path, attack):
    code = ("import os, socket\nlog = os.environ['COURSE_NETGUARD_LOG']\n"
            + TRY.format("socket.getaddrinfo('example.invalid', 80)")
            + f"try:\n    {attack}\nexcept PermissionError:\n    print('refused')\n")
    lines, proc = _run(tmp_path, code)
    assert "refused" in proc.stdout, proc.stderr[-300:]
    assert any("example.invalid" in line for line in lines), "the earlier record survives"
    assert any("tamper" in line for line in lines), "and the attempt itself is recorded"


def test_appending_to_the_log_is_still_allowed(tmp_path):
    code = "import os\nopen(os.environ['COURSE_NETGUARD_LOG'], 'a').write('')\n"
    lines, proc = _run(tmp_path, code)
    assert proc.returncode == 0 and lines == []
