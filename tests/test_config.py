import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers.core import config
from helpers.core.config import ROOT


def test_profiles_resolve_from_argument_and_environment(monkeypatch):
    assert config.get_profile("quick").name == "quick"
    assert config.get_profile(" FULL ").needs_gpu is True
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert config.get_profile().name == "full"
    monkeypatch.delenv("COURSE_PROFILE")
    assert config.get_profile().name == "quick"


@pytest.mark.parametrize("bad", ["fast", "", "gpu"])
def test_unknown_profile_says_which_exist(bad):
    with pytest.raises(ValueError, match=r"Unknown profile .*'full'.*'quick'"):
        config.get_profile(bad)


def test_unknown_profile_from_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="COURSE_PROFILE"):
        config.get_profile()


def test_seed_everything_repeats_python_numpy_and_torch():
    import random

    def draw():
        config.seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    assert draw() == draw()
    config.seed_everything(124)
    assert draw() != (random.random(), np.random.rand(), torch.rand(3).tolist())


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_must_be_non_negative_int(bad):
    with pytest.raises(ValueError, match="seed"):
        config.seed_everything(bad)


def test_device_choice_and_bad_requests(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and config._mps_available():
        expected = "mps"
    assert config.get_device().type == expected
    assert config.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="Unknown device"):
        config.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.get_device("cuda")
        monkeypatch.setenv("COURSE_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="COURSE_DEVICE"):
            config.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only failure")
def test_full_profile_without_gpu_fails_fast_with_advice(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    if config._mps_available():
        pytest.skip("an MPS device counts as a GPU")
    with pytest.raises(RuntimeError, match="switch to the quick profile"):
        config.require_gpu("Fine-tuning", profile="full")
    assert config.require_gpu("Fine-tuning", profile="quick").type == "cpu"


def test_importing_helpers_turns_hub_access_off_unless_opted_in():
    code = "import os, helpers; print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('HF_HUB_DISABLE_TELEMETRY'))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "COURSE_ONLINE"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "1"], out.stderr
    env["COURSE_ONLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["None", "None"], out.stderr


def test_setup_returns_profile_seed_device():
    cfg = config.setup("quick", 5, plots=False)
    assert (cfg.profile.name, cfg.seed) == ("quick", 5)
    assert "profile=quick" in str(cfg)
    report = config.environment_report()
    assert report["torch"].startswith(torch.__version__.split("+")[0])


def test_relative_course_paths_are_taken_from_the_course_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # as a kernel running inside solutions/ would be
    monkeypatch.setenv("COURSE_ARTIFACTS", "build/test-artifacts")
    assert config.artifacts_dir() == config.ROOT / "build" / "test-artifacts"
    assert config.course_path(tmp_path) == tmp_path
    from helpers.data import loaders

    monkeypatch.setenv("COURSE_SHOPWORLD", "datasets/shopworld")
    assert loaders.shopworld_path() == config.ROOT / "datasets" / "shopworld"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's /proc only")
def test_peak_rss_is_the_process_own_not_its_parents():
    """A process started by a big one (a notebook kernel started by a test run) must report its
    own peak: Linux's ru_maxrss carries the parent's over fork + exec (shown here), VmHWM not."""
    parent = ("import numpy as np, subprocess, sys\n"
              "block = np.ones(600 * 2**20 // 8)\n"
              "print(subprocess.run([sys.executable, '-c', 'import resource; from helpers import "
              "config; print(config.peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF)"
              ".ru_maxrss / 1024)'], capture_output=True, text=True, check=True).stdout)")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    own, inherited = float(out[0]), float(out[1])
    assert inherited > 600 > 200 > own > 5


def test_cpu_threads_sets_the_count_inside_and_restores_it_after_an_error():
    before = torch.get_num_threads()
    want = 2 if before == 1 else 1                     # a count different from the current one
    with config.cpu_threads(want) as n:
        assert n == want and torch.get_num_threads() == want
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"):
        with config.cpu_threads(want):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.0, "1", None, True])
def test_cpu_threads_refuses_what_is_not_a_positive_whole_number(bad):
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="whole number of threads"):
        with config.cpu_threads(bad):
            pass
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------- smoke profile
def test_pick_gives_each_profile_its_value_and_quick_by_default():
    runs = {name: config.RunConfig(config.get_profile(name), 0, torch.device("cpu"), False)
            for name in ("quick", "full", "smoke")}
    assert [runs[n].pick(quick=30, full=60, smoke=2) for n in ("quick", "full", "smoke")] \
        == [30, 60, 2]
    assert runs["smoke"].pick(30, full=60) == 30 and runs["full"].pick(30, smoke=2) == 30
    assert runs["full"].pick(quick=(1, 2), full=None) is None      # None is a value, not "unset"
    assert "smoke: claims not enforced" in str(runs["smoke"]) and "smoke" not in str(runs["quick"])


_SHELL = """
import json
from IPython.core.interactiveshell import InteractiveShell
from helpers import config
shell = InteractiveShell.instance()          # what get_ipython() returns in a kernel
def run(src):
    r = shell.run_cell(src, silent=True)
    err = r.error_in_exec or r.error_before_exec
    return None if err is None else type(err).__name__
assert run("from helpers import config") is None
out = {}
"""


def _in_a_shell(body: str) -> dict:
    """Run ``body`` after ``_SHELL`` in a fresh Python process (an IPython shell made in this
    one would stay the process's ``get_ipython()`` and change how other tests display)."""
    done = subprocess.run([sys.executable, "-c", _SHELL + body + "\nprint(json.dumps(out))"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_smoke_notes_false_claims_but_evaluates_them_and_quick_raises():
    out = _in_a_shell("""
run("cfg = config.setup('smoke', 0, plots=False)")
out["smoke"] = run("x = 3\\nassert x == 4, f'x is {x}'\\n"
                   "def f():\\n    assert False, 'inside a function'\\n    return 7\\n"
                   "y = f()\\nassert x == 3, never_evaluated_name")
out["y"] = shell.user_ns["y"]
out["claims"] = config.smoke_claims()
out["uncomputable"] = run("assert undefined_in_smoke > 1")
run("cfg = config.setup('quick', 0, plots=False)")
out["quick"] = run("assert 1 == 2, 'enforced again'")
""")
    assert out["smoke"] is None and out["y"] == 7                # the cell ran to its end
    assert out["claims"] == ["x is 3", "inside a function"]      # the false claims, noted
    assert out["uncomputable"] == "NameError"   # a claim that cannot be computed still fails
    assert out["quick"] == "AssertionError"     # back under quick: enforced


def test_library_asserts_stay_and_a_broken_rewrite_would_be_caught():
    """Only the cells are rewritten: an assert inside a library function still raises under
    smoke. And the check above fails a rewrite that does nothing: without the transformer the
    smoke cell raises, as a chapter would without this mechanism."""
    out = _in_a_shell("""
run("cfg = config.setup('smoke', 0, plots=False)")
import types, sys
lib = types.ModuleType("fake_library")
exec("def f():\\n    assert False, 'library'\\n", lib.__dict__)
sys.modules["fake_library"] = lib
out["library"] = run("import fake_library\\nfake_library.f()")
shell.ast_transformers[:] = [t for t in shell.ast_transformers
                             if not isinstance(t, config._AssertToNote)]
out["unrewritten"] = run("assert 1 == 2, 'x'")
""")
    assert out == {"library": "AssertionError", "unrewritten": "AssertionError"}
