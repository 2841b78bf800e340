"""Every notebook (learner and solution) runs end to end under papermill with small parameters."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
SMALL = {"FAST": True}


def test_there_are_notebooks_in_both_versions():
    learner = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    solution = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert "00_setup.ipynb" in learner and learner == solution


def test_notebooks_match_their_source():
    result = subprocess.run([sys.executable, "scripts/make_notebooks.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_learner_notebooks_are_committed_clean():
    import nbformat

    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_runs(path, tmp_path, capsys):
    out = ROOT / "build" / "test_notebooks" / path.parent.name / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(path), str(out), parameters=SMALL, kernel_name="python3", cwd=str(path.parent),
                        progress_bar=False)
    with capsys.disabled():
        print(f"\n[notebook] {path.parent.name}/{path.name}: {time.perf_counter() - t0:.1f} s")
