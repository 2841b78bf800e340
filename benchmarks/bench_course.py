"""Benchmark the main job in the course's speed units: `make course` cold, warm and FAST, per notebook, peak memory.

    .venv/bin/python benchmarks/bench_course.py [--flops] [--skip-full] [--out docs/timings.md]

The speed unit (benchmarks/speed_unit.py) is measured first, on the same machine, so every time is given in
seconds and in units (machines differ up to 3x from day to day; units do not). Each run uses its own build and
cache folders under a temporary directory (your build/ is not touched). With --flops, one more cold run counts
the floating-point operations of every notebook kernel (torch's FlopCounterMode; that run's time is not
reported) and the table gives the run's FLOPs and its ratio to the floor: the time the same FLOPs would take at
the bare forward pass's rate. Writes the table to --out (docs/timings.md: the README and the instructor guide
quote it) and the raw figures beside it as JSON. Asserts nothing.
Targets (issue 19): cold <= 55 units, 08 under 35% of it, warm <= 8 units, FAST cold <= 10 units, peak <= 2.0 GB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from speed_unit import speed_unit, unit_texts  # noqa: E402


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_course(cache: Path, build: Path, fast: bool, env_extra: dict | None = None) -> dict:
    """One `python -m course_utils.run_course` with its own cache and build folders: wall time, peak memory, timings."""
    env = dict(os.environ, COURSE_CACHE_DIR=str(cache), COURSE_BUILD_DIR=str(build), **(env_extra or {}))
    cmd = [sys.executable, "-m", "course_utils.run_course"] + (["--fast"] if fast else [])
    t0, peak = time.perf_counter(), 0
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.25)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    timings, peaks = build / "timings.json", build / "kernel_peaks.json"  # peaks: each notebook's, from run_course
    return {
        "seconds": time.perf_counter() - t0,
        "peak_gb": peak / 2**30,
        "rc": proc.returncode,
        "stderr_tail": err[-2000:],
        "notebooks": json.loads(timings.read_text()) if timings.exists() else [],
        "kernel_peaks_gb": json.loads(peaks.read_text()) if peaks.exists() else {},
    }


def results(build: Path) -> dict:
    """The run's results.json (empty if missing)."""
    path = build / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def differences(a: dict, b: dict) -> list[str]:
    """The section.key entries whose values differ between two results.json files."""
    keys = {(s, k) for r in (a, b) for s in r for k in r[s] if s != "run"}
    return sorted(f"{s}.{k}" for s, k in keys if a.get(s, {}).get(k) != b.get(s, {}).get(k))


def unit_flops() -> float:
    """FLOPs of one speed unit (the same forward passes, counted by torch's FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from course_utils import load_model
    from course_utils.models import tokenize

    model = load_model(device="cpu")
    texts = unit_texts()
    with torch.no_grad(), FlopCounterMode(display=False) as mode:
        for i in range(0, 64, 16):
            model._module(**tokenize(model, texts[i : i + 16]), output_hidden_states=True)
    return float(mode.get_total_flops())


def table(unit: float, figures: dict) -> str:
    """The Markdown table of the run (seconds and units)."""

    def cell(sec: float) -> str:
        return f"{sec:,.0f} s = {sec / unit:.1f} units"

    lines = [
        f"Measured by `benchmarks/bench_course.py` on {figures['date']} ({os.cpu_count()} CPUs, bundled model). "
        f"Speed unit on that machine: **{unit:.1f} s** (a bare transformers forward pass with all hidden states over "
        "the first 64 course stories, batch 16, best of 2). Times scale with your machine: multiply the units by "
        "your own unit (`python benchmarks/speed_unit.py`).",
        "",
        "| run | time | peak memory | target |",
        "|---|---|---|---|",
    ]
    for key, label, target in (
        ("cold", "`make course`, cold cache", "<= 55 units"),
        ("warm", "`make course`, warm cache", "<= 8 units"),
        ("fast", "`make course FAST=1`, cold cache", "<= 10 units"),
    ):
        r = figures.get(key)
        if r:
            lines.append(f"| {label} | {cell(r['seconds'])} | {r['peak_gb']:.2f} GB | {target} |")
    for key, label in (("fast", "FAST"), ("cold", "full, cold")):
        r = figures.get(key)
        if not r or not r["notebooks"]:
            continue
        total = sum(t["seconds"] for t in r["notebooks"])
        peaks = r.get("kernel_peaks_gb") or {}
        head = "| notebook | time | share |" + (" kernel peak |" if peaks else "")
        lines += ["", f"Per notebook ({label}):", "", head, "|---|---|---|" + ("---|" if peaks else "")]
        lines += [
            f"| {t['notebook']} | {cell(t['seconds'])} | {t['seconds'] / total:.0%} |"
            + (f" {peaks[t['notebook']]:.2f} GB |" if t["notebook"] in peaks else (" |" if peaks else ""))
            for t in r["notebooks"]
        ]
    if figures.get("flops"):
        f = figures["flops"]
        lines += [
            "",
            f"FLOPs of a full cold run: {f['total'] / 1e12:,.1f} TFLOP; at the bare forward pass's rate "
            f"({f['rate'] / 1e9:,.1f} GFLOP/s) they would take {cell(f['floor_seconds'])}: the cold run takes "
            f"**{figures['cold']['seconds'] / f['floor_seconds']:.2f}x** that floor. (torch's FlopCounterMode counts "
            "torch's own operations: scikit-learn probes, numpy statistics and Python work are not in the count, so "
            "notebooks built on them, 03 and 04, sit far above their floor.)"
            if figures.get("cold")
            else "",
        ]
    per = (figures.get("flops") or {}).get("notebooks") or {}
    if per and figures.get("cold"):
        rate = figures["flops"]["rate"]
        lines += ["", "Per notebook, the cold run against its FLOP floor (the FLOPs at the bare forward pass's rate):", ""]
        lines += ["| notebook | TFLOP | floor | cold run | x floor |", "|---|---|---|---|---|"]
        for t in figures["cold"]["notebooks"]:
            f = per.get(t["notebook"])
            if f:
                lines.append(
                    f"| {t['notebook']} | {f / 1e12:,.1f} | {cell(f / rate)} | {cell(t['seconds'])} | "
                    f"{t['seconds'] / (f / rate):.2f}x |"
                )
    if not figures.get("flops"):
        lines += ["", "FLOPs: not counted in this run (`--flops` adds one more cold run that counts them)."]
    if figures.get("warm_differs") is not None:
        diff = figures["warm_differs"]
        lines += ["", "Warm results.json equals the cold one: " + ("yes" if not diff else "NO, " + ", ".join(diff))]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Unit, cold, warm, FAST (and the FLOP count); print and write the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--flops", action="store_true", help="one more cold run that counts FLOPs (slower)")
    parser.add_argument("--skip-full", action="store_true", help="only the unit and the FAST run")
    parser.add_argument("--out", default=str(REPO / "docs" / "timings.md"), help="where the Markdown table goes")
    parser.add_argument("--table-from", help="only rewrite the table from the JSON figures of an earlier run")
    args = parser.parse_args()
    out = Path(args.out)
    if args.table_from:
        figures = json.loads(Path(args.table_from).read_text())
        out.write_text("# Timings\n\n" + table(figures["unit_seconds"], figures))
        print(out.read_text())
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_course_"))
    unit = speed_unit()
    print(f"speed unit: {unit:.2f} s ({os.cpu_count()} CPUs); working in {tmp}", flush=True)
    figures: dict = {"unit_seconds": unit, "date": datetime.date.today().isoformat()}
    if not args.skip_full:
        figures["cold"] = run_course(tmp / "cache", tmp / "cold", fast=False)
        print(f"cold: {figures['cold']['seconds']:.0f} s = {figures['cold']['seconds'] / unit:.1f} units", flush=True)
        figures["warm"] = run_course(tmp / "cache", tmp / "warm", fast=False)
        print(f"warm: {figures['warm']['seconds']:.0f} s = {figures['warm']['seconds'] / unit:.1f} units", flush=True)
        figures["warm_differs"] = differences(results(tmp / "cold"), results(tmp / "warm"))
    figures["fast"] = run_course(tmp / "cache-fast", tmp / "fast", fast=True)
    print(f"FAST: {figures['fast']['seconds']:.0f} s = {figures['fast']['seconds'] / unit:.1f} units", flush=True)
    if args.flops and not args.skip_full:
        counted = tmp / "flops"
        run_course(tmp / "cache-flops", tmp / "counted", fast=False, env_extra={"COURSE_COUNT_FLOPS": str(counted)})
        from course_utils.flops import total

        rate = unit_flops() / unit
        per = counted / "per_notebook.json"
        figures["flops"] = {
            "total": total(counted),
            "rate": rate,
            "floor_seconds": total(counted) / rate,
            "notebooks": json.loads(per.read_text()) if per.is_file() else {},
        }
    for key in ("cold", "warm", "fast"):
        if key in figures and figures[key]["rc"] != 0:
            print(f"{key} run FAILED:\n{figures[key]['stderr_tail']}")
    text = table(unit, figures)
    print("\n" + text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Timings\n\n" + text)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=1, default=str))
    print(f"written to {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
