"""The shape of helpers/: layers with one import direction, no cycles, no imports hidden inside
functions, no private name used outside its module, and the code (notebooks included) lints clean.

The layers and the no-cycle rule are import-linter contracts in pyproject.toml; the two tests
that break a copy of the library on purpose show that each contract fails when it should.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core.config import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
RUFF = Path(sys.executable).with_name("ruff")
LAYERS = ["grade", "course", "serving", "evaluation", "reasons", "models", "metrics", "data", "core"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                      "PYTHONPATH": str(root)})


def _library_modules() -> list[Path]:
    return sorted((ROOT / "helpers").rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_contracts_name_every_layer_in_order():
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")
    assert layers["layers"] == LAYERS and layers["exhaustive"]
    folders = {p.name for p in (ROOT / "helpers").iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS), "every folder of helpers/ is a layer of the contract"


def test_import_contracts_hold():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


@pytest.fixture
def library_copy(tmp_path):
    """A scratch copy of helpers/ and pyproject.toml, to break on purpose."""
    shutil.copytree(ROOT / "helpers", tmp_path / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__", "weights"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(path: Path, statement: str, inside_function: bool) -> None:
    text = path.read_text()
    if inside_function:          # hidden in a function: grimp still sees it
        text += f"\n\ndef _broken():\n    {statement}\n"
    else:
        text += f"\n{statement}  # noqa\n"
    path.write_text(text)


def test_an_upward_import_breaks_the_layers_contract(library_copy):
    _add_import(library_copy / "helpers" / "core" / "checks.py",
                "from helpers.serving import app", inside_function=True)
    done = _lint_imports(library_copy)
    assert done.returncode != 0
    assert "helpers.core is not allowed to import helpers.serving" in done.stdout
    assert "helpers.core.checks -> helpers.serving.app" in done.stdout


def test_a_cycle_inside_a_layer_breaks_the_acyclic_contract(library_copy):
    # claims is below planner (planner imports claims); the reverse closes a cycle
    _add_import(library_copy / "helpers" / "reasons" / "claims.py",
                "from helpers.reasons import planner", inside_function=True)
    done = _lint_imports(library_copy)
    assert done.returncode != 0
    out = " ".join(done.stdout.split())
    assert "No import cycles" in out and "BROKEN" in out
    assert "helpers.reasons" in out and ".claims -> .planner" in out


def _imports(tree: ast.AST):
    """(node, inside a function or class) for every import of the course's own package."""
    def walk(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.ClassDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and (child.level or (child.module or "")
                                                       .startswith("helpers")):
                yield child, inner
            elif isinstance(child, ast.Import) and any(a.name.startswith("helpers")
                                                       for a in child.names):
                yield child, inner
            yield from walk(child, inner)
    yield from walk(tree, False)


def test_the_library_imports_its_own_modules_only_at_the_top():
    """No import of a helpers module inside a function: with no cycles, none is needed, and
    one at the top shows every dependency of a file where a reader looks for it."""
    hidden = [f"{p.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"
              for p in _library_modules()
              for node, nested in _imports(ast.parse(p.read_text())) if nested]
    assert not hidden, "move these to the top of their files:\n" + "\n".join(hidden)


def test_the_library_uses_absolute_imports():
    relative = [f"{p.relative_to(ROOT)}:{node.lineno}" for p in _library_modules()
                for node, _ in _imports(ast.parse(p.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative, "write `from helpers.<layer>.<module> import ...`:\n" + "\n".join(relative)


def _python_sources():
    # not tests/: a test may reach a private seam on purpose (monkeypatching a file's path)
    for path in [*_library_modules(), *sorted((ROOT / "benchmarks").rglob("*.py")),
                 *sorted((ROOT / "tools").glob("*.py"))]:
        yield path, path.read_text()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")) + [ROOT / "app" / "shop.ipynb"]:
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        yield path, "\n".join(re.sub(r"(?m)^(\s*)[%!]", r"\1#", c) for c in code)


def private_names_used_elsewhere(source: str) -> list[str]:
    """``from helpers.x import _y`` and ``x._y`` where ``x`` names a helpers module."""
    tree = ast.parse(source)
    modules, found = set(), []
    for node, _ in _imports(tree):
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"line {node.lineno}: imports {alias.name}")
            if isinstance(node, ast.ImportFrom):
                modules.add(alias.asname or alias.name)
            elif alias.asname:
                modules.add(alias.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_check_for_private_names_sees_both_forms():
    assert private_names_used_elsewhere("from helpers.models.cf import _pairs") != []
    assert private_names_used_elsewhere("from helpers.data import shopworld as sw\nsw._col('a')")
    assert private_names_used_elsewhere("from helpers.data import shopworld as sw\nsw.generate()") == []


def test_no_private_name_is_used_outside_its_module():
    """A leading underscore means "only this file uses it": no other module, chapter, benchmark
    or tool reaches it, so the library can change its insides freely."""
    found = {str(p.relative_to(ROOT)): hits for p, src in _python_sources()
             if (hits := private_names_used_elsewhere(src))}
    assert not found, found


def test_ruff_passes_on_the_code_and_the_solution_notebooks():
    done = subprocess.run([str(RUFF), "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]


def test_the_readme_maps_every_library_module():
    readme = (ROOT / "README.md").read_text()
    missing = [name for p in _library_modules()
               if p.name != "__init__.py" and p.parent.name != "exercises"
               and (name := _module_name(p)) not in readme]
    assert not missing, f"README.md's module map lacks {missing}"


def _unannotated(path: Path) -> list[str]:
    """Public functions and methods of ``path`` with a parameter or the return left untyped."""
    out = []

    def visit(body, owner=""):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, node.name + ".")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and (not node.name.startswith("_") or node.name == "__init__"):
                a = node.args
                params = [p for p in a.posonlyargs + a.args + a.kwonlyargs
                          if not (owner and p.arg in ("self", "cls"))]
                params += [p for p in (a.vararg, a.kwarg) if p is not None]
                bare = [p.arg for p in params if p.annotation is None]
                if bare or (node.returns is None and node.name != "__init__"):
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}{node.name}")
    visit(ast.parse(path.read_text()).body)
    return out


def test_public_functions_of_the_core_and_models_layers_are_typed():
    files = sorted((ROOT / "helpers" / "core").glob("*.py")) + \
        sorted((ROOT / "helpers" / "models").glob("*.py"))
    missing = [m for f in files for m in _unannotated(f)]
    assert not missing, "add type hints (parameters and return):\n" + "\n".join(missing)


def test_the_type_hint_check_sees_a_missing_hint(tmp_path):
    f = ROOT / "build" / "_hint_probe.py"
    f.parent.mkdir(exist_ok=True)
    f.write_text("def f(x: int):\n    return x\n\ndef g(x: int) -> int:\n    return x\n")
    try:
        assert [m.split()[-1] for m in _unannotated(f)] == ["f"]
    finally:
        f.unlink()
