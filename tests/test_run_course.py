"""The main job's report: numbers come from results.json, never typed by hand; failures are named."""

from __future__ import annotations

import json

from course_utils import report, run_course


def test_report_table_comes_from_results_json(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path))
    report.record("04_emotion_vectors", r_pc1_valence=0.4321, r_pc1_valence_ci=[0.1, 0.7], pc1_variance=0.2)
    report.record("08_cheating", slope_desperate=-0.01234)
    rows = {
        label: (mine, paper) for label, mine, paper in report.comparison_rows(json.loads((tmp_path / "results.json").read_text()))
    }
    assert rows["r(PC1, valence)"] == ("+0.43 [0.10, 0.70]", "0.81")
    assert rows["PC1 share of variance"] == ("20%", "26%")
    assert rows["cheat_logodds slope, desperate"][0] == "-0.012"
    assert "r(PC2, arousal)" not in rows  # not measured in this run -> not shown
    path = report.write_report([("04_emotion_vectors", 12.0, "ok")])
    text = path.read_text()
    assert "+0.43 [0.10, 0.70]" in text and "04_emotion_vectors" in text


def test_unknown_notebook_is_refused(capsys):
    assert run_course.main(["--only", "99_nope"]) == 2
    assert "allowed" in capsys.readouterr().err


def test_a_full_run_starts_a_fresh_results_json_and_keeps_the_last(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path))
    report.record("08_cheating", slope_desperate=0.5)  # left over from an earlier run (say, another model)
    ran = []
    monkeypatch.setattr(run_course.pm, "execute_notebook", lambda src, dst, **kw: ran.append((src, kw["parameters"])))
    assert run_course.main(["--fast"]) == 0
    assert len(ran) == len(run_course.notebooks()) and all(p == {"FAST": True} for _, p in ran)
    fresh = json.loads((tmp_path / "results.json").read_text())
    assert "08_cheating" not in fresh and fresh["run"]["fast"] is True
    assert json.loads((tmp_path / "results.previous.json").read_text())["08_cheating"]["slope_desperate"] == 0.5
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert [t["status"] for t in timings] == ["ok"] * len(ran)


def test_a_partial_run_of_another_mode_does_not_mix_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(run_course.pm, "execute_notebook", lambda src, dst, **kw: None)
    assert run_course.main([]) == 0  # a full run...
    report.record("08_cheating", slope_desperate=0.5)
    assert run_course.main(["--only", "00_setup"]) == 0  # ...then a partial run in the same mode keeps its numbers
    assert report.read_results()["08_cheating"]["slope_desperate"] == 0.5
    assert run_course.main(["--fast", "--only", "00_setup"]) == 0  # a FAST partial run starts afresh
    fresh = report.read_results()
    assert "08_cheating" not in fresh and fresh["run"]["fast"] is True
