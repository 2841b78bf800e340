"""Short code cells (one idea per cell): scripts/cell_lengths.py --check holds notebooks 05-08 to its limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import cell_lengths  # noqa: E402


def percent_source(*cells: str) -> str:
    """A jupytext percent-format source made of the given code cells, a markdown cell before each."""
    return "".join(f"# %% [markdown]\n# A step.\n\n# %%\n{code}\n\n" for code in cells)


def test_the_checked_notebooks_keep_their_cells_short():
    result = subprocess.run([sys.executable, "scripts/cell_lengths.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_30_line_cell_fails_the_check(tmp_path):
    long_cell = "\n".join(f"x{i} = {i}" for i in range(30))
    (tmp_path / "05_synthetic.py").write_text(percent_source("a = 1", long_cell, "b = 2"), encoding="utf-8")
    stats = cell_lengths.measure(tmp_path / "05_synthetic.py")
    assert stats.lengths == (1, 30, 1) and stats.median == 1 and stats.longest == 30
    assert any("code cell 1 has 30 lines > 25" in p for p in cell_lengths.check([stats]))
    assert cell_lengths.main(["--check", "--src", str(tmp_path)]) == 1


def test_blank_lines_do_not_count_and_a_long_median_fails():
    stats = cell_lengths.measure_text(percent_source("a = 1\n\n\nb = 2", *["\n".join(["y = 0"] * 11)] * 2), "06_x")
    assert stats.lengths == (2, 11, 11) and stats.median == 11
    assert cell_lengths.check([stats]) == ["06_x: median code cell 11 lines > 10"]


def test_only_notebooks_05_to_08_are_checked():
    long_cell = "\n".join(f"x{i} = {i}" for i in range(30))
    stats = cell_lengths.measure_text(percent_source(long_cell), "04_vectors")
    assert cell_lengths.problems(stats) and not cell_lengths.check([stats])
    assert [cell_lengths.is_checked(n) for n in ("05_a", "06_b", "07_c", "08_d", "00_e", "09_f")] == [True] * 4 + [False] * 2
