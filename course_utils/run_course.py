"""The course's main job: run every solution notebook in order through papermill, then write a report.

python -m course_utils.run_course [--model HF_ID] [--fast] [--only 03_probing]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import papermill as pm

from .paths import REPO_ROOT, build_dir
from .report import read_results, record, write_report


def notebooks() -> list[Path]:
    """The solution notebooks, in course order."""
    return sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def run(fast: bool, model: str | None, only: list[str] | None) -> int:
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
    for i, path in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {path.stem} ...", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(path),
                str(out_dir / path.name),
                parameters=params,
                kernel_name="python3",
                cwd=str(path.parent),
                progress_bar=False,
                log_output=False,
            )
        except pm.PapermillExecutionError as e:
            timings.append((path.stem, time.perf_counter() - t0, f"failed in cell {e.exec_count}"))
            print(f"FAILED: {path.name}, cell [{e.exec_count}]: {e.ename}: {e.evalue}", file=sys.stderr)
            print(f"the executed copy (outputs up to the failure) is {out_dir / path.name}", file=sys.stderr)
            write_report(timings)
            return 1
        timings.append((path.stem, time.perf_counter() - t0, "ok"))
        print(f"    done in {timings[-1][1]:.0f} s", flush=True)
    report = write_report(timings)
    total = sum(t for _, t, _ in timings)
    print(f"\nran {len(timings)} notebooks in {total:.0f} s; executed copies in {out_dir}; report: {report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole course headless and write build/report.html")
    parser.add_argument("--model", help="a Hugging Face model id (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--fast", action="store_true", help="small run (the tests' parameters)")
    parser.add_argument("--only", nargs="*", help="run only these notebooks, e.g. 00_setup")
    args = parser.parse_args(argv)
    return run(args.fast, args.model, args.only)


if __name__ == "__main__":
    sys.exit(main())
