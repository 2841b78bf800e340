"""`make site`: the executed solution notebooks of the last `make course`, rendered as a static site with the report,
so that a reader sees every result without running anything.

python -m course_utils.site [--notebooks build/notebooks] [--out build/site]
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from . import report
from .paths import build_dir
from .run_course import notebooks as course_notebooks

# nbconvert's lab template loads require.js and MathJax from a CDN; the site must work offline, so they go.
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", re.I)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "[an interactive panel: open the notebook in Jupyter and run it to use it]"


class SiteError(RuntimeError):
    """The site cannot be built (e.g. the course has not been run); the message says what to do."""


def expected_notebooks() -> list[str]:
    """The file names of the course's solution notebooks, in course order."""
    return [p.name for p in course_notebooks()]


def missing_notebooks(folder: Path) -> list[str]:
    """The course notebooks that have no executed copy in `folder`."""
    return [name for name in expected_notebooks() if not (folder / name).is_file()]


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The notebook's first markdown heading ('# 03 · Probing ...'), or `fallback`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _nav(current: str) -> str:
    """The bar at the top of every page: back to the index, and the report."""
    return (
        "<nav style='font:14px system-ui,sans-serif;padding:.5em 1em;background:#f3f5f7;border-bottom:1px solid #d0d7de'>"
        f"<a href='index.html'>&larr; all notebooks</a> &middot; <a href='report.html'>lab report</a> &middot; "
        f"<b>{html.escape(current)}</b></nav>"
    )


def without_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with each widget output replaced by a note: a static page has no kernel to drive it, and
    nbconvert would otherwise fetch the widget renderer from the network."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                output["data"] = {"text/plain": WIDGET_NOTE}
    return nb


def render_notebook(path: Path) -> tuple[str, str]:
    """(title, self-contained HTML) of one executed notebook: outputs and figures inline, no remote scripts."""
    nb = without_widgets(nbformat.read(path, as_version=4))
    title = notebook_title(nb, path.stem)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title, "path": str(path.parent)}})
    body = _REMOTE_SCRIPT.sub("", body)
    body = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + _nav(title), body, count=1)
    return title, body


def _index(entries: list[tuple[str, str, str]], run_: report.Run) -> str:
    """The index page: the run's model and mode, one line per notebook with its time and status, the verdicts."""
    run, timings = run_.results.get("run", {}), {t["notebook"]: t for t in run_.timings}
    fast = run.get("fast")
    rows = "".join(
        f"<tr><td><a href='{html.escape(href)}'>{html.escape(title)}</a></td>"
        + (
            f"<td class='num'>{float(timings[stem]['seconds']):.0f} s</td><td>{html.escape(str(timings[stem]['status']))}</td>"
            if stem in timings
            else "<td class='muted' colspan='2'>not timed by the last run</td>"
        )
        + "</tr>"
        for stem, href, title in entries
    )
    banner = (
        "<p class='banner'><b>This is a FAST run:</b> small subsets, for checking the pipeline; its numbers are not "
        "comparable with the paper.</p>"
        if fast
        else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Functional emotions: the course, run</title>"
        f"<style>{report.CSS}</style></head><body><h1>Functional emotions: the course, run</h1>"
        f"<p><b>Model:</b> {html.escape(str(run.get('model', 'unknown')))} &middot; <b>Mode:</b> "
        f"{'FAST' if fast else 'full'} &middot; <b>Date:</b> {html.escape(str(run.get('date', 'unknown')))}</p>{banner}"
        "<p>The solution notebooks as the last <code>make course</code> executed them, every output and figure "
        "included; nothing here needs the model or the network.</p>"
        "<p><a href='report.html'><b>The lab report</b></a>: each finding with its verdict, its numbers beside the "
        "paper's, and the figure that supports it.</p>"
        f"<h2>Notebooks</h2><table><tr><th>notebook</th><th>time</th><th>status</th></tr>{rows}</table>"
        f"<h2>Verdicts</h2>{report.verdict_table([run_], page='report.html')}</body></html>"
    )


def build_site(source: Path | None = None, out: Path | None = None) -> Path:
    """Render the executed notebooks in `source` (default build/notebooks) and the report into `out` (build/site)."""
    source = source or build_dir() / "notebooks"
    out = out or build_dir() / "site"
    missing = missing_notebooks(source)
    if missing:
        raise SiteError(
            f"no executed copy of {', '.join(missing)} in {source}: run the course first (`make course`, "
            "or `make course FAST=1` for a quick one), with the same COURSE_BUILD_DIR"
        )
    results_file = source.parent / "results.json"
    if not results_file.is_file():
        raise SiteError(f"{results_file} is missing: run the course first (`make course`)")
    run = report.load_run(results_file)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in expected_notebooks():
        title, page = render_notebook(source / name)
        href = Path(name).with_suffix(".html").name
        (out / href).write_text(page, encoding="utf-8")
        entries.append((Path(name).stem, href, title))
    (out / "report.html").write_text(report.render([run]), encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index(entries, run), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    """Command line: build the site, or say clearly why not."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.site", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, help="executed notebooks (default: $COURSE_BUILD_DIR/notebooks)")
    parser.add_argument("--out", type=Path, help="where the site goes (default: $COURSE_BUILD_DIR/site)")
    args = parser.parse_args(argv)
    try:
        index = build_site(args.notebooks, args.out)
    except (SiteError, report.ReportInputError) as e:
        print(f"site: error: {e}", file=sys.stderr)
        return 1
    print(f"site: wrote {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
