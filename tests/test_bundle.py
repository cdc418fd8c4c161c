"""The offline bundle (make bundle) installs the course into a fresh venv with no network: the
archive is unpacked, checked against its own SHA256SUMS, installed by tools/install-offline
(pip --isolated --no-index: the bundle's wheels and nothing else), and the installed course
loads a pretrained model. make test builds the bundle first; run alone, the test says how."""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from helpers.core.config import ROOT

TAR = ROOT / "build" / "bundle" / "reasonrec-bundle.tar"
needs_bundle = pytest.mark.skipif(not TAR.exists(),
                                  reason="no bundle: `make bundle` (make test builds it)")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """The archive unpacked once for the module (about 1 GB): each test works on a copy of
    what it changes and links the rest."""
    where = tmp_path_factory.mktemp("bundle")
    with tarfile.open(TAR) as tar:
        tar.extractall(where, filter="data")
    return where / "reasonrec-bundle"


def _linked_copy(bundle, dest, leave_out=()):
    """A copy of the unpacked bundle whose files are hard links (no second gigabyte written),
    without the wheels named in ``leave_out`` (glob patterns)."""
    def link(src, dst):
        if any(Path(src).match(pattern) for pattern in leave_out):
            return dst
        return os.link(src, dst)
    shutil.copytree(bundle, dest, copy_function=link)
    return dest


@pytest.mark.slow
@needs_bundle
def test_the_bundle_installs_offline_into_a_fresh_venv(unpacked, tmp_path):
    bundle = _linked_copy(unpacked, tmp_path / "reasonrec-bundle")
    sums = (bundle / "SHA256SUMS").read_text().splitlines()
    assert len(sums) > 300
    for line in sums:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest, name
    course = bundle / "course"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "COURSE_CACHE", "VIRTUAL_ENV"))}
    done = subprocess.run(["bash", "tools/install-offline", sys.executable], cwd=course,
                          env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "[offline] installed: torch 2.13.0" in done.stdout
    # the installed course works from its own venv: a pretrained encoder loads and encodes
    check = subprocess.run(
        [str(course / ".venv" / "bin" / "python"), "-c",
         "from helpers.core import config; from helpers.models import pretrained;"
         "print(config.cache_dir());"
         "tok, m = pretrained.text_encoder(); v = pretrained.encode(['a warm coat'], tok, m);"
         "print(tuple(v.shape))"],
        cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.splitlines()[0] == str(course / ".cache")
    assert check.stdout.splitlines()[-1] == "(1, 384)"
    # Binder's postBuild (run where the packages are installed, in the repository's root) works
    # on this install too, still with no index: it needs no package the pins do not hold
    post = subprocess.run(["bash", "binder/postBuild"], cwd=course, capture_output=True,
                          text=True, timeout=600,
                          env={**env, "PATH": f"{course / '.venv' / 'bin'}:{env['PATH']}",
                               "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"})
    assert post.returncode == 0, post.stdout[-2000:] + post.stderr[-3000:]


@pytest.mark.slow
@needs_bundle
def test_a_bundle_missing_a_wheel_fails_instead_of_fetching_it(unpacked, tmp_path):
    """The install reads the bundle's wheels and nothing else: with torch's wheel removed it
    stops and names torch (a pip configured with another wheel folder would have found one)."""
    assert list((unpacked / "wheelhouse").glob("torch-*.whl")), "the bundle has no torch wheel"
    bundle = _linked_copy(unpacked, tmp_path / "reasonrec-bundle", leave_out=["torch-*.whl"])
    assert not list((bundle / "wheelhouse").glob("torch-*.whl"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    done = subprocess.run(["bash", "tools/install-offline", sys.executable],
                          cwd=bundle / "course", env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode != 0 and "torch" in done.stderr
    assert not (bundle / "course" / ".venv" / ".installed-stamp").exists()


def test_install_offline_refuses_to_run_outside_a_bundle(tmp_path):
    course = tmp_path / "course"
    (course / "tools").mkdir(parents=True)
    script = (ROOT / "tools" / "install-offline").read_text()
    (course / "tools" / "install-offline").write_text(script)
    done = subprocess.run(["bash", "tools/install-offline"], cwd=course, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "inside the unpacked bundle" in done.stderr
