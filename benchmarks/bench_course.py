"""Benchmark the main job: `make course` from a cold cache, then warm, then interrupted and resumed.

    .venv/bin/python benchmarks/bench_course.py [--fast] [--no-interrupt] [--interrupt-after SECONDS]

Each run uses its own build folder under a temporary directory (your build/ is not touched). Prints the
wall time and peak memory (all processes of the run, notebook kernels included) of each run, the slowest
notebooks, and whether the warm and the interrupted-then-resumed runs wrote exactly the same
results.json as the cold run. Asserts nothing (targets: cold < 15 min, warm < 5 min, peak < 3 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_course(cache: Path, build: Path, fast: bool, stop_after: float | None = None) -> dict:
    """One `python -m course_utils.run_course` with its own cache and build folders; wall time, peak memory, exit code."""
    env = dict(os.environ, COURSE_CACHE_DIR=str(cache), COURSE_BUILD_DIR=str(build))
    cmd = [sys.executable, "-m", "course_utils.run_course"] + (["--fast"] if fast else [])
    t0, peak = time.perf_counter(), 0
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    ps = psutil.Process(proc.pid)
    interrupted = False
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        if stop_after is not None and time.perf_counter() - t0 > stop_after:
            os.killpg(proc.pid, signal.SIGKILL)  # as abrupt as a laptop lid or a killed terminal
            interrupted = True
            proc.wait()
            break
        time.sleep(0.25)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return {
        "seconds": time.perf_counter() - t0,
        "peak_gb": peak / 2**30,
        "rc": proc.returncode,
        "interrupted": interrupted,
        "stderr_tail": err[-2000:],
    }


def results(build: Path) -> dict:
    """The run's results.json (empty if missing)."""
    path = build / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def differences(a: dict, b: dict) -> list[str]:
    """The section.key entries whose values differ between two results.json files."""
    keys = {(s, k) for r in (a, b) for s in r for k in r[s]}
    return sorted(f"{s}.{k}" for s, k in keys if a.get(s, {}).get(k) != b.get(s, {}).get(k))


def show(label: str, r: dict) -> None:
    """One line per run."""
    state = "interrupted" if r["interrupted"] else ("ok" if r["rc"] == 0 else f"FAILED rc={r['rc']}")
    print(f"{label:<34} {r['seconds']:7.0f} s  ({r['seconds'] / 60:4.1f} min)   peak {r['peak_gb']:.2f} GB   {state}")
    if r["rc"] not in (0, None) and not r["interrupted"]:
        print(r["stderr_tail"])


def main() -> None:
    """Cold, warm, interrupted + resumed; print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true", help="the FAST parameters (as the tests use)")
    parser.add_argument("--no-interrupt", action="store_true", help="skip the interrupted-and-resumed run")
    parser.add_argument("--interrupt-after", type=float, help="seconds before the kill (default: half the cold run)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_course_"))
    print(f"working in {tmp} ({os.cpu_count()} CPUs); mode: {'FAST' if args.fast else 'full'}\n")
    cold = run_course(tmp / "cache", tmp / "cold", args.fast)
    show("make course, cold cache", cold)
    timings = json.loads((tmp / "cold" / "timings.json").read_text()) if (tmp / "cold" / "timings.json").exists() else []
    warm = run_course(tmp / "cache", tmp / "warm", args.fast)
    show("make course, warm cache", warm)
    diff = differences(results(tmp / "cold"), results(tmp / "warm"))
    print(f"{'warm results.json == cold':<34} {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}")
    if not args.no_interrupt:
        after = args.interrupt_after or cold["seconds"] / 2
        killed = run_course(tmp / "cache2", tmp / "resumed", args.fast, stop_after=after)
        show(f"fresh cache, killed after {after:.0f} s", killed)
        resumed = run_course(tmp / "cache2", tmp / "resumed", args.fast)
        show("  ... rerun (resumes from cache)", resumed)
        diff = differences(results(tmp / "cold"), results(tmp / "resumed"))
        print(f"{'resumed results.json == cold':<34} {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}")
        print(
            "  (the part recomputed after the kill is a second cold computation, so this also checks that"
            " two cold computations agree)"
        )
    if timings:
        print("\ncold run, per notebook:")
        for t in sorted(timings, key=lambda t: -t["seconds"]):
            print(f"  {t['notebook']:<32} {t['seconds']:6.0f} s  {t['status']}")
    print(f"\ntargets: cold < 900 s, warm < 300 s, peak < 3 GB; files left in {tmp}")


if __name__ == "__main__":
    main()
