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
