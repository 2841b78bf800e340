"""The main job's report: numbers come from results.json, never typed by hand; failures are named."""

from __future__ import annotations

import json

import psutil
import pytest

from course_utils import cache, report, run_course

REAL_KERNEL = run_course.SharedKernel


class NoKernel:
    """Stands in for the shared kernel where execute_notebook is mocked (no Jupyter kernel is started)."""

    def __init__(self, cwd):
        self.km = None

    def fresh(self, cwd):
        pass

    def peak_gb(self):
        return None

    def close(self):
        pass


@pytest.fixture(autouse=True)
def no_kernel(monkeypatch):
    monkeypatch.setattr(run_course, "SharedKernel", NoKernel)


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


def test_the_shared_kernel_starts_each_notebook_from_an_empty_namespace_and_memo(tmp_path):
    shared = REAL_KERNEL(tmp_path)
    try:
        kc = shared.km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        code = "import torch\nfrom course_utils import cache\nleft_over = 1\ncache._MEMO[('x', 0, 0)] = {'t': torch.ones(1)}"
        code += "\nfrom joblib import Parallel, delayed\nParallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))"
        assert kc.execute_interactive(code, timeout=60)["content"]["status"] == "ok"
        kc.stop_channels()
        workers = len(psutil.Process(shared.pid).children(recursive=True))
        shared.fresh(tmp_path)
        assert len(psutil.Process(shared.pid).children(recursive=True)) < workers  # idle joblib workers are gone
        kc = shared.km.client()
        kc.start_channels()
        reply = kc.execute_interactive(f"import os, sys\nassert os.getcwd() == {str(tmp_path)!r}\nleft_over", timeout=60)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "NameError"
        code = "assert len(sys.modules['course_utils.cache']._MEMO) == 0"
        assert kc.execute_interactive(code, timeout=60)["content"]["status"] == "ok"
        kc.stop_channels()
        peak = shared.peak_gb()
        assert peak is None or 0.01 < peak < 4
    finally:
        shared.close()


def test_clear_memo_forgets_every_file():
    cache._MEMO[("x", 0, 0)] = {}
    cache.clear_memo()
    assert cache._MEMO == {}


def test_a_counted_run_gives_each_notebook_its_own_flops(tmp_path, monkeypatch):
    """With COURSE_COUNT_FLOPS, the shared kernel's running total (written after each cell) becomes per-notebook counts."""

    class CountingKernel(NoKernel):
        pid = 4242

    counted = tmp_path / "flops"
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_COUNT_FLOPS", str(counted))
    monkeypatch.setattr(run_course, "SharedKernel", CountingKernel)
    totals = iter([100, 250, 1000])

    def execute(src, dst, **kw):  # the kernel's count after this notebook's last cell
        counted.mkdir(exist_ok=True)
        (counted / "flops-4242.json").write_text(json.dumps({"flops": next(totals)}))

    monkeypatch.setattr(run_course.pm, "execute_notebook", execute)
    names = [p.stem for p in run_course.notebooks()[:3]]
    assert run_course.main(["--only", *names]) == 0
    assert json.loads((counted / "per_notebook.json").read_text()) == dict(zip(names, [100, 150, 750]))
