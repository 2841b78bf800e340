"""Every notebook (learner and solution) runs end to end under papermill with small parameters, and its checks
behave: a solution notebook never falls back to the reference, a learner notebook falls back exactly once per
exercise. A deliberately broken solution makes the notebook test fail."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import pytest

from course_utils.run_course import SharedKernel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_notebooks  # noqa: E402

# Each notebook's two versions side by side: pytest-xdist hands out neighbouring tests to the same worker, so the
# second version reads the first one's cache instead of both computing it at the same time on two workers.
NOTEBOOKS = sorted(
    [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "solutions").glob("*.ipynb")], key=lambda p: (p.name, p.parent.name)
)
SMALL = {"FAST": True}
ARTEFACTS = ROOT / "build" / "test-artifacts" / "notebooks"  # executed copies, for reading after a failure
CHECK_LINE = re.compile(r"^CHECK (\w+): (.*)$", re.M)


def n_exercises(stem: str) -> int:
    """How many solution blocks (exercises) the notebook's source has."""
    return sum(
        bool(make_notebooks.BEGIN.match(line))
        for line in (ROOT / "course_src" / f"{stem}.py").read_text(encoding="utf-8").splitlines()
    )


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed (stream outputs of every code cell)."""
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )


def assert_checks_behave(nb: nbformat.NotebookNode, version: str, stem: str) -> None:
    """Solution notebooks: no CHECK line. Learner notebooks: one 'not filled in yet' fallback per exercise."""
    checks = CHECK_LINE.findall(outputs_text(nb))
    if version == "solutions":
        assert not checks, f"{stem}: the solution's own answer failed its check: {checks}"
    else:
        expected = n_exercises(stem)
        assert len(checks) == expected, f"{stem}: {len(checks)} fallbacks for {expected} exercises: {checks}"
        assert all(why == "not filled in yet" for _, why in checks), checks


@pytest.fixture(scope="session")
def kernel():
    """One Jupyter kernel per test process, shared by the notebooks it runs, as `make course` runs them.

    A fresh kernel costs seconds of imports and a model load per notebook; `run_course.SharedKernel.fresh` gives each
    notebook an empty namespace (and empty memos), so a name defined only by an earlier notebook fails as it would
    alone, while imported modules and the loaded model are reused (as in a learner's own kernel).
    """
    shared = SharedKernel(ROOT / "solutions")
    yield shared
    shared.close()


def execute(
    path: Path, out: Path, cwd: Path, kernel: SharedKernel | None = None, parameters: dict | None = None
) -> nbformat.NotebookNode:
    """Run one notebook (in the shared kernel when given) with the small parameters; return the executed copy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if kernel is not None:
        kernel.fresh(cwd)
    pm.execute_notebook(
        str(path),
        str(out),
        parameters=parameters or SMALL,
        kernel_name="python3",
        cwd=str(cwd),
        progress_bar=False,
        km=kernel.km if kernel is not None else None,
    )
    return nbformat.read(out, as_version=4)


def test_there_are_notebooks_in_both_versions():
    learner = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    solution = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert "00_setup.ipynb" in learner and learner == solution


def test_notebooks_match_their_source():
    result = subprocess.run([sys.executable, "scripts/make_notebooks.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_learner_notebooks_are_committed_clean():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_runs(path, capsys, kernel):
    t0 = time.perf_counter()
    nb = execute(path, ARTEFACTS / path.parent.name / path.name, path.parent, kernel)
    with capsys.disabled():
        print(f"\n[notebook] {path.parent.name}/{path.name}: {time.perf_counter() - t0:.1f} s")
    assert_checks_behave(nb, path.parent.name, path.stem)


def broken_solution(stem: str, find: str, replace: str, check: str, tmp: Path) -> Path:
    """The solution notebook of `stem` with one line of a solution block mutated, cut after that exercise's check."""
    src = (ROOT / "course_src" / f"{stem}.py").read_text(encoding="utf-8")
    assert src.count(find) == 1, f"the mutation target {find!r} must occur once in {stem}"
    (tmp / f"{stem}.py").write_text(src.replace(find, replace), encoding="utf-8")
    _, solution = make_notebooks.build(tmp / f"{stem}.py")
    at = next(i for i, c in enumerate(solution.cells) if f"checks.{check}(" in c.source)
    solution.cells = solution.cells[: at + 1]  # nothing after the check is needed to see it fail
    path = tmp / f"{stem}.ipynb"
    nbformat.write(solution, path)
    return path


@pytest.mark.notebooks
def test_a_broken_solution_fails_the_notebook_test(tmp_path, kernel):
    # Exercise 4b with the projection added instead of removed: the check falls back and prints a CHECK line.
    path = broken_solution(
        "04_emotion_vectors",
        "return vectors - (vectors @ components.T) @ components",
        "return vectors + (vectors @ components.T) @ components",
        "check_project_out",
        tmp_path,
    )
    nb = execute(path, tmp_path / "executed.ipynb", ROOT / "solutions", kernel)
    with pytest.raises(AssertionError, match="failed its check"):
        assert_checks_behave(nb, "solutions", "04_emotion_vectors")


@pytest.fixture(scope="module")
def other_model_folder(tiny_model, tmp_path_factory) -> Path:
    """A different model as a learner on Colab would pick one: a tiny random Llama saved as a Hugging Face folder."""
    folder = tmp_path_factory.mktemp("other_model")
    tiny_model._module.save_pretrained(folder)
    tiny_model.tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.notebooks
def test_every_notebook_runs_on_another_model(other_model_folder, tmp_path, kernel):
    """The whole course through MODEL_NAME (FAST): no literal layers, vectors built once for the model, verdicts for it."""
    times = []
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        t0 = time.perf_counter()
        out = tmp_path / path.name
        execute(path, out, path.parent, kernel, parameters={**SMALL, "MODEL_NAME": str(other_model_folder)})
        times.append(f"{path.stem} {time.perf_counter() - t0:.0f} s")
        text = outputs_text(nbformat.read(out, as_version=4))
        if path.stem == "00_setup":
            assert f"model: hf:{other_model_folder}:local-" in text  # it really ran the other model
        if path.stem in ("06_steering", "07_emotions_and_choices", "08_steering_vs_cheating"):
            # FAST built the model's subset vectors once, in 05
            assert "loaded the subset vectors built earlier" in text, text[:2000]
    print("\n[notebooks on another model] " + ", ".join(times))


@pytest.mark.parametrize("src", sorted((ROOT / "course_src").glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_course_fast_in_the_environment_makes_fast_the_default(src, monkeypatch):
    """One switch for a whole room: COURSE_FAST=1 turns every notebook's FAST default on (and only "1" does)."""
    nb = jupytext.read(src, fmt="py:percent")
    at = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(at) == 1, f"{src.name}: one parameters cell"
    code_after = [c.source for c in nb.cells[at[0] + 1 :] if c.cell_type == "code"][0]
    assert "FAST = fast_mode(FAST)" in code_after, f"{src.name}: the cell after the parameters resolves FAST"
    params = [nb.cells[at[0]].source + "\n" + code_after]
    for value, want in (("1", True), ("0", False), (None, False)):
        if value is None:
            monkeypatch.delenv("COURSE_FAST", raising=False)
        else:
            monkeypatch.setenv("COURSE_FAST", value)
        scope: dict = {}
        exec(params[0], scope)
        assert scope["FAST"] is want, f"{src.name}: COURSE_FAST={value} gave FAST={scope['FAST']}"
    literal = [line for line in nb.cells[at[0]].source.splitlines() if line.startswith("FAST = ")]
    assert literal and literal[0].split("#")[0].strip() == "FAST = None", "papermill parses only literals: FAST = None"
