"""Network guard for the course's test runs (loaded by every Python process, kernels included,
through PYTHONPATH). It records every attempt to reach a host that is not this machine in the
file named by $COURSE_NETGUARD_LOG; the test session fails if that file is not empty.

What it watches (CPython audit events):
- name lookups: ``socket.getaddrinfo``, ``socket.gethostbyname`` / ``gethostbyname_ex``,
  ``socket.gethostbyaddr``, ``socket.getnameinfo``;
- connections and datagrams: ``socket.connect``, ``socket.sendto``, ``socket.sendmsg`` (UDP
  needs no connect, so DNS or telemetry over UDP shows up here);
- subprocesses: a Python child loads this same guard through PYTHONPATH. Any other program is
  covered by the network namespace that ``tools/no-network`` creates when it runs as root (the
  child has no route out). Without root there is no namespace, so the launch of a known network
  client (curl, wget, pip, git, ssh, ...) is itself recorded as an attempt.

Loopback (``localhost``, 127.0.0.0/8, ::1, Jupyter's kernel channels) and Unix sockets are
allowed; a *name* that merely starts with ``127.`` (``127.0.0.1.evil.example``) is not loopback.

The log cannot be cleared by the code it watches: opening it for writing without append,
truncating, deleting or renaming it is refused (the hook raises) and recorded.
"""
import ipaddress
import os
import sys

_LOG = os.environ.get("COURSE_NETGUARD_LOG")
_NAMESPACE = os.environ.get("COURSE_NETGUARD_NAMESPACE") == "1"
_NETWORK_CLIENTS = {"curl", "wget", "pip", "pip3", "git", "ssh", "scp", "rsync", "nc", "ncat",
                    "telnet", "ftp", "apt", "apt-get", "conda", "mamba", "uv", "npm", "huggingface-cli"}
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    host = host.strip().rstrip(".").lower()
    if host in _LOOPBACK_NAMES or host == "":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # a name, and not one of the loopback names
    return ip.is_loopback or ip.is_unspecified


def _record(kind: str, target) -> None:
    line = f"{kind} {target!r} pid={os.getpid()} argv={' '.join(sys.argv)[:120]}\n"
    try:  # O_APPEND: one write per line, never truncating what is there
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode(errors="replace"))
        finally:
            os.close(fd)
    except OSError:
        pass


def _same_file(path) -> bool:
    try:
        return os.path.realpath(os.fsdecode(path)) == _LOG_REAL
    except (TypeError, ValueError):
        return False


_GUARDING = False


def _hook(event, args):
    global _GUARDING
    if _GUARDING:  # the guard's own file operations
        return
    host = None
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        host = args[0]
    elif event == "socket.getnameinfo":
        host = args[0][0] if isinstance(args[0], tuple) and args[0] else args[0]
    elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[1]
        if not isinstance(address, tuple):  # AF_UNIX path, or sendmsg without an address
            return
        host = address[0]
    elif event == "subprocess.Popen":
        if not _NAMESPACE:
            program = os.path.basename(os.fsdecode(args[0] or (args[1][0] if args[1] else "")))
            if program in _NETWORK_CLIENTS:
                _GUARDING = True
                try:
                    _record("subprocess (no network namespace)", program)
                finally:
                    _GUARDING = False
        return
    elif event == "open":
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, int) or path is None or not _same_file(path):
            return
        if isinstance(mode, str):  # open(): 'w', 'r+', 'x' may overwrite; 'a' only appends
            writes = any(c in mode for c in "wx+") and "a" not in mode
        else:  # os.open(): flags
            writes = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC)) and not flags & os.O_APPEND
        if writes:
            _tamper(event, path)
        return
    elif event in ("os.truncate", "os.remove", "os.rename", "shutil.rmtree"):
        if args and not isinstance(args[0], int) and _same_file(args[0]):
            _tamper(event, args[0])
        return
    else:
        return
    if _is_local(host):
        return
    _GUARDING = True
    try:
        _record(event, host)
    finally:
        _GUARDING = False


def _tamper(event, path):
    global _GUARDING
    _GUARDING = True
    try:
        _record(f"tamper with the guard's log ({event})", os.fsdecode(path))
    finally:
        _GUARDING = False
    raise PermissionError(f"{path} is the network guard's log; the code under test may not "
                          "truncate, delete or rename it.")


if _LOG:
    _LOG_REAL = os.path.realpath(_LOG)
    sys.addaudithook(_hook)
