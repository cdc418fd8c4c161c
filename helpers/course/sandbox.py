"""The jail a submitted notebook runs in when an instructor grades it (``make grade``).

A submission is untrusted code. :func:`command` gives the command line that runs a program
(the grader's :mod:`helpers.course.grade_runner`) inside a jail built from Linux namespaces,
with nothing but what a chapter needs to run::

    unshare --user --map-root-user --mount --net --pid --ipc --uts --cgroup --fork --kill-child \\
        python -s -B helpers/course/sandbox.py '<jail as JSON>'

This file then runs as process 1 of the new namespaces (the jail's *init*; it never runs
student code) and:

1. builds a new root on a tmpfs holding only read-only binds of the system's programs and
   libraries (``/usr``, ``/lib``..., of ``/etc`` only the entries of :data:`ETC_FILES`), Python's
   install, the course's library, data and offline models (:func:`default_readonly`); a private
   ``/proc`` (this jail's processes only; ``/proc/sys`` read-only), a minimal ``/dev``, and
   size-capped tmpfs mounts for ``/tmp``, ``/dev/shm`` and the scratch folder, the only places
   the code can write; then ``pivot_root`` into it, so nothing else of the machine (other
   students' submissions, ``solutions/``, ``.git``, the grader's output, home folders) exists
   inside;
2. forbids creating further user namespaces in the jail, makes itself undumpable (the student's
   process cannot read its memory or open files), then starts the program with every capability
   dropped (``setpriv --no-new-privs --bounding-set=-all``): it cannot remount, unmount or
   mount anything, so the read-only binds and the hiding stay as they are;
3. waits for the program, reaping any process it left, and exits with its status (128 + the
   signal when it was killed); when the jail's process 1 exits the kernel kills every process
   still inside.

The network namespace has no interface but its own loopback (up, for programs that talk to
themselves over 127.0.0.1, such as Ray): no other host is reachable.
:func:`available` says whether this machine can build the jail at all.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Jail", "available", "command", "default_readonly", "main", "SCRATCH_MOUNT",
           "SANDBOX_ERROR_EXIT", "HIGH_EXIT", "MASKED_FILES", "ETC_FILES"]

SANDBOX_ERROR_EXIT = 86
"""The jail's exit code when it could not be built (its message goes to the program's fd 2)."""
HIGH_EXIT = 255
"""The jail's exit code when the program itself exited with a code of 128 or more (which would
read as "killed by a signal", 128 + the signal, the jail's code for a program killed)."""
SCRATCH_MOUNT = "/scratch"
"""Default place of the scratch folder inside the jail (the grader mounts it as ``chapters/``)."""
MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
                "/etc/sudoers", "/etc/ssh", "/etc/ssl/private", "/etc/machine-id")
"""Files and folders of ``/etc`` shown empty inside the jail (none of them is in ETC_FILES)."""
ETC_FILES = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group",
             "nsswitch.conf", "hosts", "host.conf", "gai.conf", "protocols", "services",
             "networks", "localtime", "timezone", "ssl/certs", "ssl/openssl.cnf",
             "ca-certificates.conf", "mime.types", "os-release", "lsb-release", "debian_version",
             "fonts", "python3", "python3.11", "python3.12", "locale.alias", "magic", "magic.mime")
"""The only entries of ``/etc`` shown in the jail (read-only, those that exist): what programs
and libraries read to start, resolve names and find certificates; nothing else of ``/etc`` (key
files, root-only files, configuration) exists inside."""
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# mount(2) flags (linux/mount.h)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_NOATIME, _MS_NODIRATIME, _MS_BIND = 32, 1024, 2048, 4096
_MS_REC, _MS_PRIVATE, _MS_RELATIME, _MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
_MNT_DETACH = 2
_PR_SET_DUMPABLE = 4
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}


@dataclass
class Jail:
    """What one jailed program sees and may do.

    Args:
        argv: the program and its arguments, run inside the jail.
        readonly: host paths shown at the same path, read-only (files or folders).
        scratch: where the scratch tmpfs is mounted inside (the program's working folder).
        scratch_mib, tmp_mib: sizes of the scratch and ``/tmp`` (and ``/dev/shm``) tmpfs.
        env: the program's whole environment (nothing else is inherited).
        pass_fds: file descriptors the program keeps (0, 1 and 2 always).
    """

    argv: list[str]
    readonly: list[str]
    scratch: str = SCRATCH_MOUNT
    scratch_mib: int = 1024
    tmp_mib: int = 256
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: list[int] = field(default_factory=list)


def _run_ok(argv: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return False, str(err)
    return done.returncode == 0, (done.stderr or done.stdout).strip()[-300:]


_AVAILABLE: dict[str, str | None] = {}


def available() -> str | None:
    """``None`` when the jail can be built here, else why not (in words, with what to do).

    It needs Linux, util-linux's ``unshare`` and ``setpriv``, and unprivileged user namespaces
    (``unshare --user`` works for this user; some containers and hardened kernels forbid it).
    The answer is cached for the process.
    """
    if "answer" in _AVAILABLE:
        return _AVAILABLE["answer"]
    answer = None
    if platform.system() != "Linux":
        answer = (f"the sandbox needs Linux namespaces; this is {platform.system()}. Grade on a "
                  "Linux machine (a VM or a JupyterHub server).")
    elif not (shutil.which("unshare") and shutil.which("setpriv")):
        answer = ("the sandbox needs util-linux's `unshare` and `setpriv` (apt install "
                  "util-linux); they are not on PATH.")
    else:
        ok, why = _run_ok(["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid",
                           "--ipc", "--uts", "--fork", "true"])
        if not ok:
            answer = ("this machine does not let a user create namespaces (`unshare --user "
                      f"--mount --net --pid true` failed: {why or 'no message'}). Enable "
                      "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 "
                      "or user.max_user_namespaces > 0), or in Docker run with a seccomp profile "
                      "that allows unshare.")
    _AVAILABLE["answer"] = answer
    return answer


def default_readonly(course_root: Path, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The host paths a chapter needs, shown read-only: system programs and libraries, the
    entries of ``/etc`` listed in :data:`ETC_FILES`,
    Python's install and environment, and ``extra`` (the course's library, data, models...).
    Paths that do not exist are left out.

    >>> "/usr" in default_readonly(Path("/nonexistent"))
    True
    """
    paths = [p for p in _SYSTEM if os.path.lexists(p)]
    paths += [f"/etc/{p}" for p in ETC_FILES if os.path.exists(f"/etc/{p}")]
    for prefix in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        paths.append(os.path.realpath(prefix))
    paths += [str(p) for p in extra if os.path.exists(p)]
    out: list[str] = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def command(jail: Jail) -> list[str]:
    """The command line that runs ``jail.argv`` in the jail (see the module's docstring).

    >>> command(Jail(argv=["python", "-c", "pass"], readonly=["/usr"]))[:2]
    ['unshare', '--user']
    """
    if not isinstance(jail, Jail) or not jail.argv:
        raise ValueError("command() needs a Jail with a program to run (argv), e.g. "
                         "Jail(argv=['python', '-c', 'pass'], readonly=['/usr']).")
    return ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--ipc",
            "--uts", "--cgroup", "--fork", "--kill-child", "--",
            sys.executable, "-s", "-B", "-E", str(Path(__file__).resolve()),
            json.dumps(asdict(jail))]


# ----------------------------------------------------------------------------- inside the jail
_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_char_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _b(value):
    return None if value is None else os.fsencode(value)


def _mount(source, target, fstype, flags, data=None) -> None:
    if _lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}): "
                           f"{os.strerror(err)}")


def _locked_flags(path: str) -> int:
    """The flags of the mount at ``path`` a remount must keep (they are locked in a user ns)."""
    flags = os.statvfs(path).f_flag
    out = 0
    for st, ms in ((os.ST_NOSUID, _MS_NOSUID), (os.ST_NODEV, _MS_NODEV),
                   (os.ST_NOEXEC, _MS_NOEXEC), (os.ST_NOATIME, _MS_NOATIME),
                   (os.ST_NODIRATIME, _MS_NODIRATIME), (os.ST_RELATIME, _MS_RELATIME)):
        if flags & st:
            out |= ms
    return out


def _remount_readonly(path: str) -> None:
    _mount(None, path, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _locked_flags(path))
    if not os.statvfs(path).f_flag & os.ST_RDONLY:
        raise OSError(f"{path} is still writable after a read-only remount")


_OCTAL = re.compile(rb"\\([0-7]{3})")


def _mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """The mount points of this mount namespace, as paths (mountinfo escapes a space, a tab, a
    newline and a backslash as ``\\ooo``; the rest are the path's bytes, whatever their encoding)."""
    points = []
    with open(mountinfo, "rb") as fh:
        for line in fh:
            point = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), line.split(b" ")[4])
            points.append(os.fsdecode(point))
    return points


def _make_target(target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            with open(target, "w"):
                pass


def _build_root(jail: dict, new: str) -> None:
    """Mount the jail's root at ``new`` (a fresh tmpfs) from the binds in ``jail``."""
    # a handle on each source first: the staging tmpfs may cover where they live (/tmp)
    handles = []
    for path in jail["readonly"]:
        if os.path.islink(path) and os.path.dirname(path) == "/":
            handles.append((path, None, os.readlink(path)))    # /lib64 -> usr/lib64
            continue
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        handles.append((path, fd, None))
    devices = {}
    for name in ("null", "zero", "full", "random", "urandom"):
        devices[name] = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
    _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=700")
    os.mkdir(new, 0o755)
    _mount("tmpfs", new, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=16m,mode=755")
    # the jail's private /tmp first: a course that lives under /tmp (a CI clone) is bound on top
    # of it, where a /tmp mounted afterwards would hide it
    size = int(jail["tmp_mib"])
    _make_target(new + "/tmp", True)
    _mount("tmpfs", new + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size}m,mode=1777")
    for path, fd, link in handles:
        target = new + path
        if link is not None:
            os.symlink(link, target)
            continue
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        _make_target(target, is_dir)
        _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
        os.close(fd)
    for masked in MASKED_FILES:
        target = new + masked
        if os.path.isdir(target) and not os.path.islink(target):
            _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=4k,mode=755")
        elif os.path.lexists(target) and not os.path.islink(target):
            _mount(f"/proc/self/fd/{devices['null']}", target, None, _MS_BIND)
    # /dev: a few harmless devices, no disks, no terminals
    _make_target(new + "/dev", True)
    _mount("tmpfs", new + "/dev", "tmpfs", _MS_NOSUID | _MS_NOEXEC, "size=64k,mode=755")
    for name, fd in devices.items():
        _make_target(f"{new}/dev/{name}", False)
        _mount(f"/proc/self/fd/{fd}", f"{new}/dev/{name}", None, _MS_BIND)
        os.close(fd)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(link, f"{new}/dev/{name}")
    _make_target(new + "/dev/shm", True)
    _mount("tmpfs", new + "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size}m,mode=1777")
    _make_target(new + jail["scratch"], True)
    _mount("tmpfs", new + jail["scratch"], "tmpfs", _MS_NOSUID | _MS_NODEV,
           f"size={int(jail['scratch_mib'])}m,mode=755")
    # every mount of the new root read-only, but for the three writable tmpfs
    writable = {new + "/tmp", new + "/dev/shm", new + jail["scratch"], new + "/dev"}
    for point in _mount_points():
        if point.startswith(new + "/") and point not in writable:
            _remount_readonly(point)
    # a /proc of this pid namespace only; its kernel settings read-only
    _make_target(new + "/proc", True)
    _mount("proc", new + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    for sub in ("sysrq-trigger", "irq", "bus", "fs"):
        path = f"{new}/proc/{sub}"
        if os.path.exists(path):
            _mount(path, path, None, _MS_BIND | _MS_REC)
            _remount_readonly(path)
    _remount_readonly(new + "/dev")


def _pivot(new: str) -> None:
    os.chdir(new)
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None:
        if _lib().syscall(number, b".", b".") != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pivot_root: {os.strerror(err)}")
    else:
        done = subprocess.run(["pivot_root", ".", "."], capture_output=True, text=True)
        if done.returncode:
            raise OSError(f"pivot_root: {done.stderr.strip()}")
    if _lib().umount2(b".", _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"detaching the old root: {os.strerror(err)}")
    os.chdir("/")
    _remount_readonly("/")


def _loopback_up() -> None:
    """Bring up the namespace's loopback (Ray, Jupyter-style servers talk to 127.0.0.1); the
    namespace has no other interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH22x", b"lo", flags | 0x1))     # SIOCSIFFLAGS


def _die(message: str) -> int:
    try:
        os.write(2, f"[sandbox] the jail could not be built: {message}\n".encode())
    except OSError:
        pass
    return SANDBOX_ERROR_EXIT


def main(argv: list[str] | None = None) -> int:
    """The jail's process 1 (run by :func:`command`; not for direct use): build the root, start
    the program without capabilities, wait for it, exit with its status."""
    argv = sys.argv[1:] if argv is None else argv
    if os.getpid() != 1:
        return _die("main() runs as process 1 of a new pid namespace (see command()).")
    jail = json.loads(argv[0])
    try:
        os.umask(0o022)
        _loopback_up()
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        new = "/tmp/jail-root"
        _build_root(jail, new)
        _pivot(new)
        # no nested user namespace: it would hand the program capabilities again
        with open("/proc/sys/user/max_user_namespaces", "w") as fh:
            fh.write("0")
        _mount("/proc/sys", "/proc/sys", None, _MS_BIND | _MS_REC)
        _remount_readonly("/proc/sys")
        if _lib().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError("prctl(PR_SET_DUMPABLE, 0) failed")
    except (OSError, KeyError, ValueError) as err:
        return _die(str(err))
    keep = {0, 1, 2, *(int(fd) for fd in jail["pass_fds"])}
    for fd in keep:
        os.set_inheritable(fd, True)
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if setpriv is None:
        return _die("setpriv is not in the jail's /usr/bin or /bin")
    child = os.fork()
    if child == 0:
        try:
            low = 3
            for fd in sorted(keep - {0, 1, 2}) + [65536]:
                os.closerange(low, fd)
                low = fd + 1
            os.chdir(jail["scratch"])
            os.execve(setpriv, [setpriv, "--no-new-privs", "--inh-caps=-all",
                                "--ambient-caps=-all", "--bounding-set=-all", "--",
                                *jail["argv"]], jail["env"])
        except OSError as err:
            os.write(2, f"[sandbox] could not start {jail['argv'][:1]}: {err}\n".encode())
        os._exit(SANDBOX_ERROR_EXIT)
    for fd in keep - {0, 1, 2}:
        os.close(fd)
    for fd in (0, 1, 2):
        os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            code = os.WEXITSTATUS(status)
            return HIGH_EXIT if code >= 128 else code


if __name__ == "__main__":
    sys.exit(main())
