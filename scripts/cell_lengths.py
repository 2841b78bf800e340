"""Measure the code cells of the notebook sources: one idea per cell, as in nnsight's tutorials.

    python scripts/cell_lengths.py            # per notebook: median and max code-cell length, and the long cells
    python scripts/cell_lengths.py --check    # exit 1 if a checked notebook (05-08) breaks the limits below

A cell's length is its number of non-blank lines (comments count). Every code cell counts, the
parameters cell and the cells that only hold an exercise's solution stub included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "course_src"
CHECKED = ("05_", "06_", "07_", "08_")  # the notebooks held to the limits by --check
MAX_MEDIAN = 10
MAX_CELL = 25


@dataclass(frozen=True)
class CellStats:
    """The code-cell lengths of one notebook source."""

    name: str
    lengths: tuple[int, ...]
    first_lines: tuple[str, ...]

    @property
    def median(self) -> float:
        """The median code-cell length (0 for a notebook without code)."""
        return float(statistics.median(self.lengths)) if self.lengths else 0.0

    @property
    def longest(self) -> int:
        """The length of the longest code cell (0 for a notebook without code)."""
        return max(self.lengths, default=0)


def code_length(source: str) -> int:
    """The number of non-blank lines of one cell's source."""
    return sum(1 for line in source.splitlines() if line.strip())


def measure_text(text: str, name: str = "<text>") -> CellStats:
    """The code-cell lengths of a jupytext percent-format source given as text."""
    nb = jupytext.reads(text, fmt="py:percent")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    firsts = tuple(next((l.strip() for l in c.splitlines() if l.strip()), "") for c in code)
    return CellStats(name, tuple(code_length(c) for c in code), firsts)


def measure(path: Path) -> CellStats:
    """The code-cell lengths of one source file."""
    return measure_text(path.read_text(encoding="utf-8"), path.stem)


def is_checked(name: str) -> bool:
    """Whether --check holds this notebook to the limits."""
    return name.startswith(CHECKED)


def problems(stats: CellStats, max_median: float = MAX_MEDIAN, max_cell: int = MAX_CELL) -> list[str]:
    """What breaks the limits in one notebook, one line each (empty when it keeps them)."""
    found = [f"{stats.name}: median code cell {stats.median:g} lines > {max_median:g}"] if stats.median > max_median else []
    for i, (n, first) in enumerate(zip(stats.lengths, stats.first_lines)):
        if n > max_cell:
            found.append(f"{stats.name}: code cell {i} has {n} lines > {max_cell} ({first[:60]!r})")
    return found


def report(all_stats: list[CellStats], max_cell: int = MAX_CELL) -> str:
    """The table printed by the script: per notebook the median and max, then the cells over `max_cell`."""
    lines = [f"{'notebook':<32} {'cells':>5} {'median':>6} {'max':>4}  checked"]
    for s in all_stats:
        lines.append(f"{s.name:<32} {len(s.lengths):>5} {s.median:>6g} {s.longest:>4}  {'yes' if is_checked(s.name) else ''}")
    for s in all_stats:
        for i, (n, first) in enumerate(zip(s.lengths, s.first_lines)):
            if n > max_cell:
                lines.append(f"  over {max_cell}: {s.name} code cell {i}: {n} lines ({first[:60]!r})")
    return "\n".join(lines)


def check(all_stats: list[CellStats]) -> list[str]:
    """Every limit broken by the checked notebooks."""
    return [p for s in all_stats if is_checked(s.name) for p in problems(s)]


def main(argv: list[str] | None = None) -> int:
    """Print the table; with --check, return 1 if a checked notebook breaks the limits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a notebook {'/'.join(CHECKED)}* breaks the limits")
    parser.add_argument("--src", type=Path, default=SRC, help="folder of NN_name.py sources (default: course_src/)")
    args = parser.parse_args(argv)
    all_stats = [measure(p) for p in sorted(args.src.glob("[0-9][0-9]_*.py"))]
    print(report(all_stats))
    if not args.check:
        return 0
    broken = check(all_stats)
    if broken:
        print(
            f"\ncode cells too long (limits: median <= {MAX_MEDIAN}, every cell <= {MAX_CELL} non-blank lines):",
            *broken,
            sep="\n  ",
        )
        return 1
    print(f"\nOK: notebooks {', '.join(c + '*' for c in CHECKED)} keep median <= {MAX_MEDIAN} and max <= {MAX_CELL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
