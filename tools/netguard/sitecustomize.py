"""Network guard for the course's test runs (loaded by every Python process, kernels included,
through PYTHONPATH). It records every attempt to resolve or reach a host that is not this
machine, in the file named by $COURSE_NETGUARD_LOG; the test session fails if that file is not
empty. Loopback (Jupyter's kernel channels) and Unix sockets are allowed."""
import os
import sys

_LOG = os.environ.get("COURSE_NETGUARD_LOG")
_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    return host in _LOCAL or (isinstance(host, str) and host.startswith("127."))


def _hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple):  # AF_UNIX path
            return
        host = address[0]
    else:
        return
    if _is_local(host):
        return
    try:
        with open(_LOG, "a") as fh:
            fh.write(f"{event} {host!r} pid={os.getpid()} argv={' '.join(sys.argv)[:120]}\n")
    except OSError:
        pass


if _LOG:
    sys.addaudithook(_hook)
