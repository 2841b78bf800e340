"""The report's one list of result keys is tied to what the notebooks record, and to the comparison table."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest

from course_utils import report

ROOT = Path(__file__).resolve().parents[1]


def recorded() -> dict[str, set[str]]:
    """Every (section, key) that a literal `record(...)` call in course_src/ writes, read from the source."""
    found: dict[str, set[str]] = {}
    for src in sorted((ROOT / "course_src").glob("[0-9][0-9]_*.py")):
        for node in ast.walk(ast.parse(src.read_text(encoding="utf-8"), filename=str(src))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "record":
                section = node.args[0]
                assert isinstance(section, ast.Constant), f"{src.name}:{node.lineno}: record's section must be a literal"
                found.setdefault(section.value, set()).update(k.arg for k in node.keywords if k.arg)
    return found


def test_every_recorded_key_is_listed_and_every_listed_key_is_recorded():
    found = recorded()
    assert set(found) == set(report.RESULT_KEYS) - {"run"}
    for section, keys in found.items():
        listed = report.RESULT_KEYS[section]
        for key in keys:
            assert any(fnmatch.fnmatchcase(key, p) for p in listed), f"{section}.{key} is recorded but not listed"
        for pattern in listed:
            if "*" not in pattern:  # patterns stand for keys built at run time (e.g. slope_<emotion>)
                assert pattern in keys, f"{section}.{pattern} is listed but no notebook records it"


def test_every_comparison_row_names_a_listed_key():
    for label, section, key, _, _ in report.COMPARISON:
        assert section in report.RESULT_KEYS, label
        assert any(fnmatch.fnmatchcase(key, p) for p in report.RESULT_KEYS[section]), f"{label}: {section}.{key}"


def test_record_refuses_unknown_sections_and_keys(tmp_build):
    with pytest.raises(ValueError, match="unknown section '99_nope'"):
        report.record("99_nope", x=1)
    with pytest.raises(ValueError, match="unknown key 'r_pc9' .* allowed"):
        report.record("04_emotion_vectors", r_pc9=0.1)
    report.record("08_cheating", slope_desperate=0.1)  # a pattern key
    assert report.read_results()["08_cheating"]["slope_desperate"] == 0.1


def test_record_verdict_takes_only_the_four_verdicts(tmp_build):
    report.record_verdict("08_cheating", "desperate_cheating", "does not replicate", "p = 0.68 among 10,000 random")
    assert report.read_results()["08_cheating"]["verdict_desperate_cheating"]["verdict"] == "does not replicate"
    with pytest.raises(ValueError, match="allowed: \\['replicates'"):
        report.record_verdict("08_cheating", "x", "maybe", "")
    with pytest.raises(ValueError, match="short identifier"):
        report.record_verdict("08_cheating", "two words", "replicates", "")


def test_a_fast_report_says_so(tmp_build):
    report.record("run", model="m", fast=True, date="2026-12-01")
    text = report.write_report([]).read_text()
    assert "This is a FAST run" in text and "not comparable with the paper" in text and "2026-12-01" in text
    report.record("run", fast=False)
    assert "This is a FAST run" not in report.write_report([]).read_text()


# ---------------------------------------------------------------- the lab report page

RUN = {
    "run": {"model": "bundled SmolLM2-135M-Instruct", "fast": False, "date": "2026-12-06"},
    "04_emotion_vectors": {"r_pc1_valence": 0.43, "r_pc1_valence_ci": [0.1, 0.7], "pc1_variance": 0.2},
    "08_cheating": {
        "slope_desperate": -0.168,
        "slope_desperate_ci": [-0.341, 0.002],
        "positive_control_slope": 0.49,
        "positive_control_ci": [0.3, 0.7],
        "verdict_desperate_cheating": {"verdict": "does not replicate", "reason": "rank p = 0.68 among 10,000 random"},
    },
}
BIG = {
    "run": {"model": "HuggingFaceTB/SmolLM2-1.7B-Instruct", "fast": False, "date": "2026-12-07"},
    "04_emotion_vectors": {"r_pc1_valence": 0.77, "r_pc1_valence_ci": [0.6, 0.9]},
    "08_cheating": {"verdict_desperate_cheating": {"verdict": "partly replicates", "reason": "rank p = 0.04"}},
}


def _png(path: Path, color: str = "red") -> Path:
    """A small real PNG (what plots.save_figure writes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, 1], color=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _write_run(folder: Path, results: dict, figures: tuple[str, ...] = ()) -> Path:
    """A run's folder: results.json and figures/<name>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in figures:
        _png(folder / "figures" / f"{name}.png")
    path = folder / "results.json"
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


def _block(page: str, section: str, finding: str) -> str:
    """The HTML of one finding's block in the report."""
    start = page.index(f"id='f-{section}-{finding}'")
    return page[start : page.index("</section>", start)]


def test_report_rows_carry_verdict_reason_interval_paper_and_figure(tmp_build):
    _write_run(tmp_build, RUN, figures=("08_cheating_sweep", "02_norm_by_layer"))
    page = report.write_report([("08_steering_vs_cheating", 61.0, "ok")]).read_text()
    desperate = _block(page, "08_cheating", "desperate_cheating")
    assert "does not replicate" in desperate and "rank p = 0.68 among 10,000 random" in desperate
    assert "-0.168 [-0.34, 0.00]" in desperate and "cheating ~5% -&gt; ~70%" in desperate  # ours, interval, paper's
    assert "data:image/png;base64," in desperate and report._e(report.FIGURE_CAPTIONS["08_cheating_sweep"]) in desperate
    assert "not recorded" in _block(page, "04_emotion_vectors", "pc1_valence")
    assert "Figure: see" not in _block(page, "04_emotion_vectors", "logit_lens")  # no figure: no link either
    calm = _block(page, "08_cheating", "calm_cheating")  # shares the sweep figure: links to it, does not repeat it
    assert (
        "data:image" not in calm
        and "Figure: see" in calm
        and page.count("<figcaption>" + report._e(report.FIGURE_CAPTIONS["08_cheating_sweep"])) == 1
    )
    assert "+0.43 [0.10, 0.70]" in _block(page, "04_emotion_vectors", "pc1_valence")
    assert "+0.490 [0.30, 0.70]" in page  # an interval recorded under another name (positive_control_ci)
    assert report.FIGURE_CAPTIONS["02_norm_by_layer"] in page.split("More figures")[1]  # no finding: still shown
    assert "<th>verdict: " in page and "Q4_1" in page
    raw = page.split("<details>")[1]
    assert "&quot;slope_desperate&quot;: -0.168" in raw  # raw numbers collapsed at the end
    assert not re.search(r"""(src|href)=['"]https?://(?!transformer-circuits)""", page)  # nothing fetched


def test_a_verdict_under_an_unknown_finding_still_gets_a_row(tmp_build):
    _write_run(tmp_build, {"07_choices": {"verdict_new_thing": {"verdict": "replicates", "reason": "why"}}})
    page = report.write_report([]).read_text()
    assert "replicates" in _block(page, "07_choices", "new_thing")


def test_every_recorded_interval_is_shown_by_some_row():
    for section, keys in report.RESULT_KEYS.items():
        for ci in (k for k in keys if "*" not in k and "_ci" in k):
            rows = [key for _, sec, key, _, _ in report.COMPARISON if sec == section and report._interval({ci: [0, 1]}, key)]
            assert rows, f"{section}.{ci} is recorded but no COMPARISON row shows it (add a row or a CI_KEYS entry)"


def test_every_saved_figure_has_a_caption_and_findings_name_known_keys():
    saved = set()
    for src in (ROOT / "course_src").glob("[0-9][0-9]_*.py"):
        saved |= set(re.findall(r"save_figure\([^\n]*?,\s*\"([^\"]+)\"\)", src.read_text(encoding="utf-8")))
    assert saved and saved <= set(report.FIGURE_CAPTIONS), f"figures without a caption: {saved - set(report.FIGURE_CAPTIONS)}"
    compared = {(sec, key) for _, sec, key, _, _ in report.COMPARISON}
    for f in report.FINDINGS:
        assert f.figure is None or f.figure in saved, f"{f.name}: no notebook saves {f.figure}"
        assert all((f.section, k) in compared for k in f.keys), f"{f.name}: a key without a COMPARISON row"
        assert f.name.isidentifier()
    names = [(f.section, f.name) for f in report.FINDINGS]
    assert len(names) == len(set(names)), f"a finding listed twice: {[n for n in names if names.count(n) > 1]}"


def test_every_verdict_a_notebook_records_has_a_finding_row():
    known = {(f.section, f.name) for f in report.FINDINGS}
    for src in sorted((ROOT / "course_src").glob("[0-9][0-9]_*.py")):
        for node in ast.walk(ast.parse(src.read_text(encoding="utf-8"), filename=str(src))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "record_verdict":
                section, name = (a.value if isinstance(a, ast.Constant) else None for a in node.args[:2])
                assert section, f"{src.name}:{node.lineno}: record_verdict's section must be a literal"
                assert name is None or (section, name) in known, (  # a name built in a loop is not checked here
                    f"{src.name}:{node.lineno}: verdict {section}/{name} has no row in report.FINDINGS "
                    "(add one: title, the paper's claim, its numbers and its figure)"
                )


def test_bundled_weights_named_as_the_loader_names_them():
    from course_utils import models

    assert report.BUNDLED_WEIGHTS == models.BUNDLED_FILE


def test_two_runs_side_by_side_show_both_numbers_and_verdicts(tmp_path, capsys):
    a = _write_run(tmp_path / "a", RUN, figures=("04_pca_valence",))
    b = _write_run(tmp_path / "b", BIG)
    out = tmp_path / "compare.html"
    assert report.main([str(a), str(b), "-o", str(out)]) == 0
    page = out.read_text()
    valence = _block(page, "04_emotion_vectors", "pc1_valence")
    assert "+0.43 [0.10, 0.70]" in valence and "+0.77 [0.60, 0.90]" in valence and "0.81" in valence
    desperate = _block(page, "08_cheating", "desperate_cheating")
    assert "does not replicate" in desperate and "partly replicates" in desperate
    assert "SmolLM2-1.7B-Instruct" in page and page.count("<th>verdict: ") == 2
    assert "compare.html" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("{not json", "not valid JSON .* line 1, column 2"),
        ("[1, 2]", "expected a JSON object of sections"),
        ('{"08_cheating": 3}', "field '08_cheating' must be an object"),
        ('{"08_cheating": {"verdict_x": {"verdict": "maybe", "reason": ""}}}', "field '08_cheating.verdict_x' must be"),
        ('{"04_emotion_vectors": {"pc1_variance": "big"}}', "field '04_emotion_vectors.pc1_variance' = 'big'"),
        ('{"04_emotion_vectors": {"r_pc1_valence": 0.4, "r_pc1_valence_ci": 0.1}}', "interval of '04_emotion_vectors.r_pc1"),
        ('{"run": {"fast": "yes"}}', "field 'run.fast' must be true or false"),
    ],
)
def test_a_bad_results_file_is_named_with_its_field(tmp_path, capsys, content, message):
    good = _write_run(tmp_path / "good", RUN)
    bad = tmp_path / "bad" / "results.json"
    if content is not None:
        bad.parent.mkdir()
        bad.write_text(content)
    assert report.main([str(good), str(bad), "-o", str(tmp_path / "out.html")]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and re.search(message, err), err
    assert not (tmp_path / "out.html").exists()


def test_a_bad_timings_file_beside_a_run_is_named(tmp_path, capsys):
    run = _write_run(tmp_path / "a", RUN)
    (tmp_path / "a" / "timings.json").write_text('[{"notebook": "00_setup"}]')
    assert report.main([str(run), "-o", str(tmp_path / "out.html")]) == 1
    assert "timings.json: expected a list of" in capsys.readouterr().err


def test_the_main_job_keeps_a_report_when_a_recorded_value_cannot_be_shown(tmp_build, capsys):
    _write_run(tmp_build, {"04_emotion_vectors": {"pc1_variance": "big"}})
    page = report.write_report([("04_emotion_vectors", 1.0, "ok")]).read_text()
    assert "could not be built" in page and "04_emotion_vectors.pc1_variance" in page and "big" in page
    assert "04_emotion_vectors.pc1_variance" in capsys.readouterr().err
