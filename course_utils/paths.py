"""Where the course keeps its data, cache and generated files."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The course's data folder (override with COURSE_DATA_DIR)."""
    return Path(os.environ.get("COURSE_DATA_DIR", REPO_ROOT / "data"))


def build_dir() -> Path:
    """Where generated artefacts go (override with COURSE_BUILD_DIR); created on demand."""
    path = Path(os.environ.get("COURSE_BUILD_DIR", REPO_ROOT / "build"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    """A cache sub-folder shared by every notebook (override the root with COURSE_CACHE_DIR).

    The converted model ("models") can live elsewhere (COURSE_MODEL_CACHE): it depends only on the
    installed weights file, so the test suite shares it while everything else it caches is private.
    """
    root = Path(os.environ.get("COURSE_CACHE_DIR", REPO_ROOT / "build" / "cache"))
    path = root / kind
    if kind == "models" and os.environ.get("COURSE_MODEL_CACHE"):
        path = Path(os.environ["COURSE_MODEL_CACHE"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def fast_mode(fast: bool | None) -> bool:
    """A notebook's FAST setting: True/False as given; None follows COURSE_FAST=1 in the environment (a whole room)."""
    if fast is None:
        return os.environ.get("COURSE_FAST", "0") == "1"
    if not isinstance(fast, bool):
        raise ValueError(f"FAST={fast!r}: use True, False, or None (None follows COURSE_FAST=1 in the environment)")
    return fast
