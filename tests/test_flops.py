"""course_utils.flops: the benchmark's FLOP count, written where a papermill kernel leaves it (no exit handlers)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from course_utils import flops

REPO = Path(__file__).resolve().parents[1]

# A kernel-like process: cells run in an IPython shell, then the process dies without running atexit (as a
# kernel stopped by papermill does). A [2, 3] @ [3, 4] product is 2 * 2 * 3 * 4 = 48 FLOPs, counted once.
KERNEL = textwrap.dedent(
    """
    import os
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell("import torch\\nfrom course_utils.flops import start_if_asked\\nstart_if_asked()")
    shell.run_cell("y = torch.ones(2, 3) @ torch.ones(3, 4)")
    os._exit(0)
    """
)


def test_a_kernel_stopped_without_exit_handlers_leaves_its_count(tmp_path):
    env = dict(os.environ, COURSE_COUNT_FLOPS=str(tmp_path))
    subprocess.run([sys.executable, "-c", KERNEL], cwd=REPO, env=env, check=True, timeout=120)
    assert flops.total(tmp_path) == 48


def test_a_plain_process_writes_at_exit(tmp_path):
    code = "import torch\nfrom course_utils.flops import start_if_asked\nstart_if_asked()\ntorch.ones(2, 3) @ torch.ones(3, 4)"
    env = dict(os.environ, COURSE_COUNT_FLOPS=str(tmp_path))
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
    assert flops.total(tmp_path) == 48


def test_nothing_is_counted_unless_asked(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COURSE_COUNT_FLOPS"}
    code = "from course_utils.flops import start_if_asked, _STARTED\nstart_if_asked()\nassert not _STARTED"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
    assert not list(tmp_path.iterdir())
