"""The course's main job: run every solution notebook in order through papermill, then write a report.

    python -m course_utils.run_course [--model HF_ID] [--fast] [--only 03_probing]
"""
from __future__ import annotations

import argparse
import html
import json
import sys
import time
from pathlib import Path

import papermill as pm

from .paths import REPO_ROOT, build_dir
from .report import record


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
    if not only and results.exists():  # a full run starts a fresh results.json; the last one is kept beside it
        results.replace(build_dir() / "results.previous.json")
    record("run", model=model or "bundled SmolLM2-135M-Instruct", fast=fast)
    timings: list[tuple[str, float, str]] = []
    for i, path in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {path.stem} ...", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(path), str(out_dir / path.name), parameters=params, kernel_name="python3",
                                cwd=str(path.parent), progress_bar=False, log_output=False)
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


# (label, section, key, how to show it, the paper's number) for the side-by-side table.
COMPARISON = [
    ("best core-12 probe accuracy (test)", "03_probing", "core_best_acc", "{:.0%}", "n/a (paper used no probe table)"),
    ("core-12 probe at the a-priori layer", "03_probing", "core_acc_at_layer", "{:.0%}", "n/a"),
    ("bag-of-words baseline, core 12", "03_probing", "core_bow", "{:.0%}", "n/a"),
    ("all-emotion probe at the a-priori layer", "03_probing", "all_acc_at_layer", "{:.0%}", "n/a"),
    ("bag-of-words baseline, all emotions", "03_probing", "all_bow", "{:.0%}", "n/a"),
    ("PC1 share of variance", "04_emotion_vectors", "pc1_variance", "{:.0%}", "26%"),
    ("r(PC1, valence)", "04_emotion_vectors", "r_pc1_valence", "{:+.2f}", "0.81"),
    ("PC2 share of variance", "04_emotion_vectors", "pc2_variance", "{:.0%}", "15%"),
    ("r(PC2, arousal)", "04_emotion_vectors", "r_pc2_arousal", "{:+.2f}", "0.66"),
    ("implicit scenarios: top-1 of 12", "05_conversation", "implicit_top1", "{:.0%}", "strong diagonal"),
    ("dose-response templates tested", "05_conversation", "dose_templates", "{}", "several"),
    ("... of which in the expected direction", "05_conversation", "dose_matches", "{}", "all shown"),
    ("user-end vs assistant-start profile r", "05_conversation", "speakers_profile_r", "{:+.2f}", "0.11"),
    ("'He feels' steering diagonal, top-1 of 12", "06_steering", "feels_top1", "{:.0%}", "diagonal"),
    ("desperate across failures (mean Spearman rho)", "07_cheating", "failures_rho_desperate", "{:+.2f}", "rises"),
    ("cheat_logodds slope, desperate", "07_cheating", "slope_desperate", "{:+.3f}", "cheating ~5% -> ~70%"),
    ("cheat_logodds slope, calm", "07_cheating", "slope_calm", "{:+.3f}", "cheating ~65% -> ~10%"),
    ("random-direction slope band (95%)", "07_cheating", "null_slope_band", "{}", "n/a"),
]


def comparison_rows(results: dict) -> list[tuple[str, str, str]]:
    """(measure, this run, paper) for every comparison whose number this run produced."""
    rows = []
    for label, section, key, fmt, paper in COMPARISON:
        value = results.get(section, {}).get(key)
        if value is None:
            continue
        if isinstance(value, list):
            shown = "[" + ", ".join(f"{v:+.3f}" for v in value) + "]"
        else:
            shown = fmt.format(value)
        ci = results.get(section, {}).get(f"{key}_ci") or results.get(section, {}).get(key.replace("_acc", "_ci"))
        if isinstance(ci, list) and len(ci) == 2 and not isinstance(value, list):
            shown += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        rows.append((label, shown, paper))
    return rows


def write_report(timings: list[tuple[str, float, str]]) -> Path:
    """Write build/report.html from the timings, build/results.json and the figures the notebooks saved."""
    (build_dir() / "timings.json").write_text(json.dumps([{"notebook": n, "seconds": round(t, 1), "status": s}
                                                          for n, t, s in timings], indent=1), encoding="utf-8")
    results_path = build_dir() / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{t:.0f} s</td><td>{html.escape(s)}</td></tr>" for n, t, s in timings)
    parts = ["<h1>Functional emotions: course run</h1>",
             "<p>Every number below was measured by the notebooks in this run (build/results.json); "
             "the paper's numbers are from Sofroniew et al. (2026) on a frontier model.</p>",
             f"<h2>Notebooks</h2><table border=1><tr><th>notebook</th><th>time</th><th>status</th></tr>{rows}</table>"]
    table = comparison_rows(results)
    if table:
        body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
                       for a, b, c in table)
        parts.append(f"<h2>This run vs the paper</h2><table border=1><tr><th>measure</th><th>this run</th>"
                     f"<th>paper</th></tr>{body}</table>")
    if results:
        parts.append("<h2>All recorded numbers</h2><pre>" + html.escape(json.dumps(results, indent=2)) + "</pre>")
    for fig in sorted((build_dir() / "figures").glob("*.png")):
        parts.append(f"<h3>{html.escape(fig.stem)}</h3><img src='figures/{fig.name}' width=700>")
    path = build_dir() / "report.html"
    path.write_text("<html><body>" + "".join(parts) + "</body></html>", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole course headless and write build/report.html")
    parser.add_argument("--model", help="a Hugging Face model id (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--fast", action="store_true", help="small run (the tests' parameters)")
    parser.add_argument("--only", nargs="*", help="run only these notebooks, e.g. 00_setup")
    args = parser.parse_args(argv)
    return run(args.fast, args.model, args.only)


if __name__ == "__main__":
    sys.exit(main())
