"""Count the floating-point operations a process runs (for the benchmark): torch's own FlopCounterMode, switched on
for the whole process when COURSE_COUNT_FLOPS names a folder, and written there as flops-<pid>.json after every
notebook cell (papermill stops a kernel without running its exit handlers) and at exit.

`benchmarks/bench_course.py --flops` sets the variable for one extra cold run of the course; notebooks never do.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path

_STARTED: list = []


def start_if_asked() -> None:
    """Start counting for the rest of the process if COURSE_COUNT_FLOPS is set (once; a no-op otherwise)."""
    folder = os.environ.get("COURSE_COUNT_FLOPS")
    if not folder or _STARTED:
        return
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False)
    mode.__enter__()
    _STARTED.append(mode)
    atexit.register(_write, Path(folder))
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:  # a notebook kernel: the total so far, after each cell
        shell.events.register("post_run_cell", lambda *_: _write(Path(folder)))


def _write(folder: Path) -> None:
    """Write this process's total at exit."""
    mode = _STARTED[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"flops-{os.getpid()}.json").write_text(json.dumps({"flops": int(mode.get_total_flops())}))


def of_process(folder: Path, pid: int) -> int:
    """The count a process has written so far (0 before its first write)."""
    path = Path(folder) / f"flops-{pid}.json"
    return int(json.loads(path.read_text())["flops"]) if path.is_file() else 0


def total(folder: Path) -> int:
    """The FLOPs of every counted process that wrote into `folder`."""
    return sum(json.loads(p.read_text())["flops"] for p in Path(folder).glob("flops-*.json"))
