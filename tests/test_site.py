"""`make site`: the executed notebooks and the report as static pages whose every image resolves offline."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest

from course_utils import site

ROOT = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"
PNG_B64 = (  # a 1x1 PNG, what a notebook's figure output holds (base64)
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def fake_course(build: Path) -> Path:
    """A build folder as `make course` leaves it: nine executed notebooks with a figure each, results, figures."""
    folder = build / "notebooks"
    folder.mkdir(parents=True)
    for i, name in enumerate(site.expected_notebooks()):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_markdown_cell(f"# {name[:2]} · Notebook {i}\nSome prose."),
            nbformat.v4.new_code_cell("plot()", execution_count=1),
        ]
        nb.cells[1].outputs = [
            nbformat.v4.new_output("stream", name="stdout", text=f"accuracy {i}\n"),
            nbformat.v4.new_output("display_data", data={"image/png": PNG_B64, "text/plain": "<Figure>"}),
        ]
        if name.startswith("06_"):  # an interactive panel, as papermill saves it: a widget view and the widget state
            view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
            nb.cells[1].outputs.append(
                nbformat.v4.new_output(
                    "execute_result", data={WIDGET: view, "text/plain": "VBox(children=(...))"}, execution_count=1
                )
            )
            nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
        nbformat.write(nb, folder / name)
    (build / "figures").mkdir()
    (build / "figures" / "06_feels_diagonal.png").write_bytes(base64.b64decode(PNG_B64))
    results = {
        "run": {"model": "bundled SmolLM2-135M-Instruct", "fast": True, "date": "2026-12-06"},
        "06_steering": {"feels_top1": 0.9, "verdict_feels_diagonal": {"verdict": "replicates", "reason": "p = 0.01"}},
    }
    (build / "results.json").write_text(json.dumps(results))
    timings = [{"notebook": Path(n).stem, "seconds": 3.0, "status": "ok"} for n in site.expected_notebooks()]
    (build / "timings.json").write_text(json.dumps(timings))
    return folder


class _Refs(HTMLParser):
    """Every resource a page loads (img/script src, stylesheet href) and every link (a href)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.resources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("img", "script", "iframe") and a.get("src"):
            self.resources.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            self.resources.append(a["href"] or "")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")


def refs(page: Path) -> _Refs:
    """The parsed references of one HTML file."""
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def resolves(src: str, page: Path) -> bool:
    """True for a data: URI that decodes, or a relative path to an existing file."""
    if src.startswith("data:"):
        head, _, data = src.partition(",")
        return bool(data) and (";base64" not in head or len(base64.b64decode(data)) > 0)
    url = urlparse(src)
    return not url.scheme and not url.netloc and (page.parent / unquote(url.path)).is_file()


@pytest.fixture()
def built_site(tmp_build: Path) -> Path:
    """A site built from a fake executed course in a private build folder."""
    fake_course(tmp_build)
    assert site.main([]) == 0
    return tmp_build / "site"


def test_index_links_all_nine_notebooks_and_the_report(built_site):
    links = refs(built_site / "index.html").links
    expected = [Path(n).with_suffix(".html").name for n in site.expected_notebooks()]
    assert len(expected) == 9 and all(e in links for e in expected) and "report.html" in links
    assert all((built_site / link.split("#")[0]).is_file() for link in links)
    assert "This is a FAST run" in (built_site / "index.html").read_text()
    assert "<td class='num'>3 s</td><td>ok</td>" in (built_site / "index.html").read_text()  # each notebook's time
    assert "report.html#f-06_steering-feels_diagonal" in links  # the verdicts, each linking to its finding


def test_every_image_resolves_and_nothing_is_fetched(built_site):
    pages = sorted(built_site.glob("*.html"))
    assert len(pages) == 11  # index, report, nine notebooks
    for page in pages:
        found = refs(page)
        assert all(resolves(src, page) for src in found.images), (page.name, [s[:60] for s in found.images])
        assert not [r for r in found.resources if urlparse(r).scheme in ("http", "https")], (page.name, found.resources)
        assert "unpkg.com" not in page.read_text(), f"{page.name} would load the widget renderer from the network"
    assert "interactive panel" in (built_site / "06_steering.html").read_text()  # said in words instead
    notebook = built_site / "03_probing.html"
    assert len(refs(notebook).images) == 1 and "accuracy 3" in notebook.read_text()  # the output and its figure inline
    report_page = (built_site / "report.html").read_text()
    assert "verdict: " in report_page and "replicates" in report_page and len(refs(built_site / "report.html").images) == 1


def test_resolves_refuses_what_a_browser_could_not_show(tmp_path):
    page = tmp_path / "index.html"
    (tmp_path / "fig.png").write_bytes(b"x")
    assert resolves("fig.png", page) and resolves("data:image/png;base64," + PNG_B64, page)
    assert not resolves("missing.png", page) and not resolves("https://example.org/a.png", page)
    assert not resolves("data:image/png;base64,", page)


def test_make_site_runs_this_module():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^site: setup\n\t\$\(BIN\)/python -m course_utils\.site$", make, re.M)
    assert "site" in re.search(r"^\.PHONY:(.*)$", make, re.M).group(1).split()


def test_a_course_not_run_names_the_missing_notebooks(tmp_build, capsys):
    folder = fake_course(tmp_build)
    (folder / "04_emotion_vectors.ipynb").unlink()
    (folder / "08_steering_vs_cheating.ipynb").unlink()
    assert site.main([]) == 1
    err = capsys.readouterr().err
    assert "04_emotion_vectors.ipynb, 08_steering_vs_cheating.ipynb" in err and "make course" in err
    assert not (tmp_build / "site" / "index.html").exists()


# ---------------------------------------------------------------- CITATION.cff


def _keys(node: object) -> set[str]:
    """Every mapping key anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        return set(node) | set().union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node)) if node else set()
    return set()


def test_citation_cff_has_the_required_keys_and_cites_the_paper():
    import yaml

    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    cff = yaml.safe_load(text)
    assert {"cff-version", "message", "title", "authors"} <= set(cff) and cff["cff-version"] == "1.2.0"
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    license_line = (ROOT / "LICENSE").read_text(encoding="utf-8").splitlines()[0]
    assert license_line == f"{cff['license']} License", (license_line, cff["license"])
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("repository-code:"))
    assert any("PLACEHOLDER" in line for line in lines[at - 3 : at]), "the repository address must be marked a placeholder"
    for ref in cff["references"]:
        assert {"type", "title", "authors"} <= set(ref) and ref["authors"], ref.get("title")
    paper = next(r for r in cff["references"] if r["title"] == "Emotion Concepts and their Function in a Large Language Model")
    assert paper["year"] == 2026 and paper["institution"]["name"] == "Anthropic"
    assert "arXiv:2604.07729" in str(paper["identifiers"])
    assert "doi" not in _keys(cff) and "doi" not in str(cff.get("identifiers", "")), "no DOI is known: do not invent one"
