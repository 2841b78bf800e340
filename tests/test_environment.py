"""Install files agree with each other.

pyproject.toml declares compatible ranges, constraints.txt the lock (exact versions), environment.yml the same
lock for conda users, requirements-model.txt the bundled model; the Makefile installs them in the right order.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli is declared in the test extra for exactly this
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "emotions-course"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _declared() -> dict[str, Requirement]:
    """Every third-party requirement of the project, runtime and extras (self-references left out)."""
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    out: dict[str, Requirement] = {}
    for text in reqs:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == PROJECT:
            continue
        assert name not in out, f"{req.name} is declared twice in pyproject.toml"
        out[name] = req
    return out


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split(" #", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _constraints() -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for text in _requirement_lines(ROOT / "constraints.txt"):
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name not in out, f"constraints.txt has two lines for {req.name}"
        out[name] = req
    return out


def _pinned(req: Requirement) -> Version:
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"constraints.txt: {req} is not one exact `==` pin"
    return Version(specs[0].version)


def test_every_declared_dependency_has_exactly_one_constraint_line():
    declared, constraints = _declared(), _constraints()
    assert sorted(declared) == sorted(constraints), "pyproject.toml dependencies and constraints.txt lines differ"
    for name, req in declared.items():
        assert (str(req.marker) if req.marker else None) == (
            str(constraints[name].marker) if constraints[name].marker else None
        ), f"{name}: environment marker differs between pyproject.toml and constraints.txt"


def test_each_constraint_satisfies_the_pyproject_range():
    declared = _declared()
    for name, con in _constraints().items():
        version = _pinned(con)
        assert declared[name].specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {name}=={version}, outside pyproject.toml's range {declared[name].specifier}"
        )


def test_pyproject_has_ranges_not_pins():
    for name, req in _declared().items():
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{name}: pin it in constraints.txt, not here"
        assert req.specifier, f"{name}: give a lower bound"
    assert _pyproject()["project"]["requires-python"] == ">=3.10"


def test_ranges_include_google_colab_typical_versions():
    """Installing the course on Colab must not force a major upgrade of Colab's own packages."""
    colab = {
        "pandas": "2.2.2",
        "numpy": "2.1.0",
        "scikit-learn": "1.6.1",
        "ipywidgets": "7.7.1",
        "huggingface-hub": "1.2.0",
        "torch": "2.8.0",
        "scipy": "1.16.1",
        "matplotlib": "3.10.0",
        "ipython": "7.34.0",
        "ipykernel": "6.17.1",
        "tqdm": "4.67.1",
    }
    declared = _declared()
    for name, version in colab.items():
        assert declared[name].specifier.contains(version), f"{name} {version} (Colab) is outside {declared[name].specifier}"
    for python in ("3.12", "3.13"):
        assert Version(python) in _pyproject_python(), python


def _pyproject_python():
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(_pyproject()["project"]["requires-python"])


def test_environment_yml_pins_equal_constraints():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    assert "  - python=3.11" in lines and lines.index("  - pip") < start
    env: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if line.strip().startswith("- "):
            req = Requirement(line.strip()[2:])
            env[canonicalize_name(req.name)] = str(req.specifier)
    # the conda environment is Python 3.11: the lock lines whose marker applies there
    py311 = {"python_version": "3.11", "python_full_version": "3.11.0"}
    wanted = {
        name: str(req.specifier)
        for name, req in _constraints().items()
        if req.marker is None or Marker(str(req.marker)).evaluate(py311)
    }
    assert env == wanted


def test_the_bundled_model_is_named_in_one_file_that_models_py_agrees_with():
    lines = _requirement_lines(ROOT / "requirements-model.txt")
    assert len(lines) == 1
    req = Requirement(lines[0])
    assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "=="
    # read the constant without importing course_utils.models (that would import torch)
    source = (ROOT / "course_utils" / "models.py").read_text()
    constant = re.search(r'^BUNDLED_REQUIREMENT = "([^"]+)"$', source, re.M)
    assert constant and constant.group(1) == lines[0], "requirements-model.txt and models.BUNDLED_REQUIREMENT differ"
    assert canonicalize_name(req.name) == canonicalize_name(re.search(r'^BUNDLED_PACKAGE = "(\w+)"', source, re.M).group(1))
    assert canonicalize_name(req.name) not in _constraints(), "the model is installed apart, --no-deps"


def _setup_recipe() -> list[str]:
    make = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(make) if line.startswith("$(VENV)/.installed:"))
    recipe = []
    for line in make[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return [make[start]] + recipe


def test_makefile_installs_torch_first_then_the_course_then_the_model_all_constrained():
    recipe = _setup_recipe()
    target, pips = recipe[0], [line for line in recipe if "pip install" in line]
    for needed in ("pyproject.toml", "constraints.txt", "requirements-model.txt"):
        assert needed in target.split(":", 1)[1], f"setup must re-run when {needed} changes"
    torch = next(i for i, line in enumerate(pips) if re.search(r"pip install( --\S+)* torch\b", line))
    course = next(i for i, line in enumerate(pips) if '-e ".[test]"' in line)
    model = next(i for i, line in enumerate(pips) if "requirements-model.txt" in line)
    assert torch < course < model
    assert "-c constraints.txt" in pips[torch] and "-c constraints.txt" in pips[course]
    assert "--no-deps" in pips[model] and "-r requirements-model.txt" in pips[model]
    assert "--no-deps" not in pips[course]
    assert any("ipywidgets==7.7" in line for line in pips), "keep the Colab ipywidgets 7.7 line"


def test_makefile_has_a_lint_target():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^lint:", make, re.M) and "ruff check ." in make and "ruff format --check" in make
    assert "tool" in _pyproject() and "ruff" in _pyproject()["tool"]
