"""Shared fixtures. The whole suite runs with the network blocked (and CI also cuts it with unshare -n), and
hermetically: every test and every notebook kernel it starts writes into a private build and cache folder,
never into the learner's build/ (only the converted model, a pure function of the installed weights file,
is shared, in build/cache/models)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("COURSE_TEST_DIR"):  # a pytest started by a test (e.g. the ipywidgets 7 rerun) shares its parent's
    _PRIVATE = Path(os.environ["COURSE_TEST_DIR"])
else:
    _PRIVATE = Path(tempfile.mkdtemp(prefix="course-tests-"))
    atexit.register(shutil.rmtree, _PRIVATE, ignore_errors=True)
    os.environ["COURSE_TEST_DIR"] = str(_PRIVATE)
os.environ["COURSE_BUILD_DIR"] = str(_PRIVATE / "build")  # set before course_utils is imported; kernels inherit it
os.environ["COURSE_CACHE_DIR"] = str(_PRIVATE / "cache")
os.environ.setdefault("COURSE_MODEL_CACHE", str(ROOT / "build" / "cache" / "models"))
os.environ["COURSE_BLOCK_NETWORK"] = "1"
os.environ.pop("COURSE_FAST", None)  # the room switch of a workshop must not change what the tests run
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

import course_utils  # noqa: E402,F401  (installs the network guard)
from course_utils.models import CourseModel, load_model  # noqa: E402


@pytest.fixture(scope="session")
def private_dirs() -> Path:
    """The suite's private folder (build/ and cache/ below it)."""
    return _PRIVATE


@pytest.fixture(scope="session")
def model() -> CourseModel:
    """The real bundled SmolLM2-135M-Instruct, loaded once per session."""
    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_model(model: CourseModel) -> CourseModel:
    """A randomly initialised 4-layer Llama with the course tokenizer: fast unit tests of mechanics."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(model.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=model.tokenizer.pad_token_id,
    )
    hf = LlamaForCausalLM(cfg).eval()
    tiny = CourseModel(hf, tokenizer=model.tokenizer)
    tiny.course_id = "tiny-random-llama-seed0"
    return tiny


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    """A private cache for one test."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def tmp_build(tmp_path, monkeypatch):
    """A private build folder for one test."""
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path / "build"))
    return tmp_path / "build"


# ---------------------------------------------------------------- the order in which two workers take the tests

# Seconds each long group takes on the 2-core test machine (pytest --durations, setup included, 2026-12-06; notebooks
# from a whole `make test`, modules from `-m "not notebooks"`): a notebook's two versions together (learner first: the
# solution reads its cache), or a whole module (its module fixtures are built once per worker that runs it, so a module
# is not cut). Anything not listed counts DEFAULT_S per test.
EXPECTED_S = {
    "notebook 08_steering_vs_cheating": 250,
    "notebook 07_emotions_and_choices": 100,
    "notebook 06_steering": 70,
    "notebook 05_emotions_in_conversation": 50,
    "notebook 02_extracting_activations": 40,
    "notebook 01_reading_stories": 40,
    "notebook 00_setup": 30,
    "notebook 03_probing": 30,
    "notebook 04_emotion_vectors": 30,
    "tests/test_notebooks.py::test_every_notebook_runs_on_another_model": 115,
    "tests/test_notebooks.py::test_a_broken_solution_fails_the_notebook_test": 15,
    "tests/test_vectors.py": 130,
    "tests/test_cheating.py": 95,
    "tests/test_checks.py": 90,
    "tests/test_browser.py": 60,
    "tests/test_preferences.py": 55,
    "tests/test_derivatives.py": 35,
    "tests/test_remote.py": 25,
    "tests/test_steering.py": 25,
    "tests/test_preflight.py": 15,
    "tests/test_data.py": 12,
    "tests/test_widgets.py": 12,
}
DEFAULT_S = 0.3


def _group(item: pytest.Item) -> str:
    """The unit that is scheduled whole: a notebook (both versions), another notebook test, or a module."""
    path, _, name = item.nodeid.partition("::")
    if path.endswith("test_notebooks.py") and name.startswith("test_notebook_runs["):
        return "notebook " + Path(name.rstrip("]")).stem
    if path.endswith("test_notebooks.py") and item.get_closest_marker("notebooks"):
        return item.nodeid
    return path


def _chunk_sizes(n: int, workers: int) -> list[int]:
    """How many tests pytest-xdist's worksteal hands each worker at the start (len(pending) // workers left)."""
    sizes = []
    for i in range(workers):
        sizes.append(n // (workers - i))
        n -= sizes[-1]
    return sizes


def balanced_order(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """Collection order for worksteal: each worker's first share starts with its part of the long groups.

    worksteal gives worker k the k-th contiguous share of the collection and later steals from the END of a share, so a
    long test left in the middle starts late. Here the long groups (EXPECTED_S) are dealt longest first to the least loaded
    worker, each share starts with its long groups (longest first) and is filled up to its size with the short tests
    in collection order (whose ends the stealing balances)."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(_group(item), []).append(item)
    cost = {g: EXPECTED_S.get(g, DEFAULT_S * len(members)) for g, members in groups.items()}
    long = sorted((g for g in groups if g in EXPECTED_S), key=lambda g: -cost[g])
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for g in long:
        k = min(range(workers), key=lambda k: (load[k], len(shares[k])))
        shares[k].extend(groups[g])
        load[k] += cost[g]
    sizes = _chunk_sizes(len(items), workers)
    if any(len(share) > size for share, size in zip(shares, sizes)):
        return items  # too many tests in long groups to keep the shares: leave the collection order
    short = iter(item for g, members in groups.items() if g not in long for item in members)
    for share, size in zip(shares, sizes):
        share.extend(next(short) for _ in range(size - len(share)))
    return [item for share in shares for item in share]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (2+ workers) put the long tests at the start of each worker's share."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and len(items) > workers:
        items[:] = balanced_order(items, workers)
