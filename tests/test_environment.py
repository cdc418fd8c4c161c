"""The three ways to install must agree: requirements.txt, environment.yml, constraints.txt."""
import re
import tomllib

import yaml

from helpers.core.config import ROOT


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"not pinned with ==: {line!r}"
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


def test_environment_yml_matches_requirements():
    reqs = _pins((ROOT / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert _pins(pip_section) == reqs, "environment.yml and requirements.txt disagree"


def test_constraints_pin_every_requirement_at_the_same_version():
    reqs = _pins((ROOT / "requirements.txt").read_text().splitlines())
    cons = _pins((ROOT / "constraints.txt").read_text().splitlines())
    mismatched = {k: (v, cons.get(k)) for k, v in reqs.items() if cons.get(k) != v}
    assert not mismatched, f"requirements vs constraints: {mismatched}"
    assert reqs["torch"] == "2.13.0"


def test_python_311_and_312_are_accepted_by_pyproject_and_the_makefile():
    """Colab runs 3.12; the pinned set resolves for cp312 (see the issue 11 note)."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                        ["requires-python"])
    assert "3.11.7" in spec and "3.12.4" in spec and "3.13.0" not in spec
    makefile = (ROOT / "Makefile").read_text()
    assert "(3, 11), (3, 12)" in makefile and "python3.12" in makefile


def test_no_unconditional_import_of_posix_only_modules():
    """`resource` does not exist on Windows: import it only inside a guarded function."""
    for path in [*(ROOT / "helpers").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        for line in path.read_text().splitlines():
            assert not re.match(r"(import resource|from resource import)", line), path
