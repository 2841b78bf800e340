"""The course's main job: run every solution notebook in order through papermill, then write a report.

python -m course_utils.run_course [--model HF_ID] [--fast] [--only 03_probing] [--fresh-kernels]

By default the notebooks share one Jupyter kernel (as the tests do, and as a learner's kernel does notebook after
notebook): each starts from an empty namespace (`%reset -f`, figures closed, the in-memory memos of cache.py and
scoring.py emptied), so a name defined only by an earlier notebook still fails, while torch, transformers and the
loaded model are not imported and loaded again for every notebook (about 10 s each on 2 CPUs).
--fresh-kernels gives each notebook its own kernel instead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import papermill as pm

from . import flops
from .paths import REPO_ROOT, build_dir
from .report import read_results, record, write_report


def notebooks() -> list[Path]:
    """The solution notebooks, in course order."""
    return sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


# Run in the shared kernel before each notebook: an empty namespace, no figures, empty memos, no idle joblib workers
# (probes.py's; a kernel of its own would take them down with it), memory handed back.
RESET_CODE = """%reset -f
import ctypes as _ct, gc as _gc, os as _os, sys as _sys, matplotlib.pyplot as _plt
_plt.close("all")
for _name, _forget in (("course_utils.cache", "clear_memo"), ("course_utils.scoring", "clear_prefix_memo")):
    if _name in _sys.modules:
        getattr(_sys.modules[_name], _forget)()
if getattr(_sys.modules.get("joblib.externals.loky.reusable_executor"), "_executor", None) is not None:
    _sys.modules["joblib.externals.loky.reusable_executor"]._executor.shutdown(wait=True, kill_workers=True)
_gc.collect()
try:
    _ct.CDLL("libc.so.6").malloc_trim(0)
except OSError:
    pass
_os.chdir({cwd!r})
del _ct, _gc, _os, _sys, _plt, _name, _forget
"""


class SharedKernel:
    """One Jupyter kernel for a whole run: `fresh(cwd)` before each notebook, `peak_gb()` after it."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd))

    def fresh(self, cwd: Path) -> None:
        """Empty the namespace and memos, move to `cwd`, reset the kernel's peak memory (restart a dead kernel)."""
        if not self.km.is_alive():
            self.km.restart_kernel(now=True)
        kc = self.km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            reply = kc.execute_interactive(RESET_CODE.format(cwd=str(cwd)), timeout=120)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"could not reset the shared kernel: {reply['content']}")
        finally:
            kc.stop_channels()
        try:  # Linux: "5" resets the process's peak resident memory (VmHWM), so each notebook gets its own peak
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass

    @property
    def pid(self) -> int | None:
        """The kernel's process id (None when unknown)."""
        return getattr(self.km.provisioner, "pid", None)

    def peak_gb(self) -> float | None:
        """The kernel's peak resident memory since the last `fresh` in GB (None where /proc is missing)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
        return None if kb is None else kb / 2**20

    def close(self) -> None:
        """Shut the kernel down."""
        self.km.shutdown_kernel(now=True)


def run(fast: bool, model: str | None, only: list[str] | None, fresh_kernels: bool = False) -> int:
    """Execute the notebooks; stop at the first failure, naming notebook and cell; return an exit code."""
    out_dir = build_dir() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    params: dict[str, object] = {"FAST": fast}
    if model:
        params["MODEL_NAME"] = model
    todo = [p for p in notebooks() if not only or p.stem in only or p.name in only]
    if only and len(todo) != len(only):
        known = [p.stem for p in notebooks()]
        print(f"--only {only}: unknown notebook; allowed: {known}", file=sys.stderr)
        return 2
    results = build_dir() / "results.json"
    this_run = {"model": model or "bundled SmolLM2-135M-Instruct", "fast": fast}
    earlier = read_results().get("run", {})
    mixed = any(earlier.get(k) != v for k, v in this_run.items())
    if results.exists() and (not only or mixed):
        # A full run, or a partial run of another model or mode, starts a fresh results.json (the last one is kept
        # beside it), so that a report never mixes FAST and full numbers or two models.
        if only:
            print(f"--only: the recorded results are from another run ({earlier}); starting a fresh results.json")
        results.replace(build_dir() / "results.previous.json")
    record("run", **this_run, date=datetime.date.today().isoformat())
    timings: list[tuple[str, float, str]] = []
    counted = os.environ.get("COURSE_COUNT_FLOPS")  # the benchmark's FLOP count: the shared kernel's total, per notebook
    per_notebook: dict[str, int] = {}
    peaks: dict[str, float] = {}
    kernel = None if fresh_kernels else SharedKernel(todo[0].parent if todo else REPO_ROOT)
    try:
        for i, path in enumerate(todo, 1):
            print(f"[{i}/{len(todo)}] {path.stem} ...", flush=True)
            t0 = time.perf_counter()
            failure = _execute(path, out_dir / path.name, params, kernel)
            timings.append((path.stem, time.perf_counter() - t0, failure or "ok"))
            if failure:
                write_report(timings)
                return 1
            if counted and kernel and kernel.pid:
                per_notebook[path.stem] = flops.of_process(Path(counted), kernel.pid) - sum(per_notebook.values())
                Path(counted).mkdir(parents=True, exist_ok=True)
                (Path(counted) / "per_notebook.json").write_text(json.dumps(per_notebook, indent=1))
            peak = kernel.peak_gb() if kernel else None
            if peak:
                peaks[path.stem] = round(peak, 3)
                (build_dir() / "kernel_peaks.json").write_text(json.dumps(peaks, indent=1))  # read by the benchmark
            print(f"    done in {timings[-1][1]:.0f} s" + (f", kernel peak {peak:.2f} GB" if peak else ""), flush=True)
    finally:
        if kernel:
            kernel.close()
    report = write_report(timings)
    total = sum(t for _, t, _ in timings)
    print(f"\nran {len(timings)} notebooks in {total:.0f} s; executed copies in {out_dir}; report: {report}")
    return 0


def _execute(path: Path, out: Path, params: dict[str, Any], kernel: SharedKernel | None) -> str | None:
    """Run one notebook (in the shared kernel when given); None on success, else "failed in cell N" (printed)."""
    if kernel:
        kernel.fresh(path.parent)
    try:
        pm.execute_notebook(
            str(path),
            str(out),
            parameters=params,
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
            log_output=False,
            **({"km": kernel.km} if kernel else {}),
        )
    except pm.PapermillExecutionError as e:
        print(f"FAILED: {path.name}, cell [{e.exec_count}]: {e.ename}: {e.evalue}", file=sys.stderr)
        print(f"the executed copy (outputs up to the failure) is {out}", file=sys.stderr)
        return f"failed in cell {e.exec_count}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole course headless and write build/report.html")
    parser.add_argument("--model", help="a Hugging Face model id (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--fast", action="store_true", help="small run (the tests' parameters)")
    parser.add_argument("--only", nargs="*", help="run only these notebooks, e.g. 00_setup")
    parser.add_argument(
        "--fresh-kernels", action="store_true", help="one kernel per notebook (default: one shared kernel, namespace reset)"
    )
    args = parser.parse_args(argv)
    return run(args.fast, args.model, args.only, args.fresh_kernels)


if __name__ == "__main__":
    sys.exit(main())
