"""scripts/gpu_check.sh: it parses, and without CUDA it says so and exits 0 (it is run where a GPU is lent)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_the_gpu_check_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True).returncode == 0


def test_the_gpu_check_exits_cleanly_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no device visible, even on a machine that has one
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout
