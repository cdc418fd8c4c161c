"""The offline bundle (make bundle) installs the course into a fresh venv with no network: the
archive is unpacked, checked against its own SHA256SUMS, installed by tools/install-offline
(pip --isolated --no-index: the bundle's wheels and nothing else), and the installed course
loads a pretrained model. make test builds the bundle first; run alone, the test says how."""
import hashlib
import os
import subprocess
import sys
import tarfile

import pytest

from helpers.config import ROOT

TAR = ROOT / "build" / "bundle" / "reasonrec-bundle.tar"


@pytest.mark.skipif(not TAR.exists(), reason="no bundle: `make bundle` (make test builds it)")
def test_the_bundle_installs_offline_into_a_fresh_venv(tmp_path):
    with tarfile.open(TAR) as tar:
        tar.extractall(tmp_path, filter="data")
    bundle = tmp_path / "reasonrec-bundle"
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
         "from helpers import models, config; print(config.cache_dir());"
         "tok, m = models.text_encoder(); v = models.encode(['a warm coat'], tok, m);"
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


@pytest.mark.skipif(not TAR.exists(), reason="no bundle: `make bundle` (make test builds it)")
def test_a_bundle_missing_a_wheel_fails_instead_of_fetching_it(tmp_path):
    """The install reads the bundle's wheels and nothing else: with torch's wheel removed it
    stops and names torch (a pip configured with another wheel folder would have found one)."""
    with tarfile.open(TAR) as tar:
        tar.extractall(tmp_path, filter="data")
    bundle = tmp_path / "reasonrec-bundle"
    for wheel in (bundle / "wheelhouse").glob("torch-*.whl"):
        wheel.unlink()
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
