"""course_utils.cache: one entry per request, code versions in the key, checksums, atomic writes."""

from __future__ import annotations

import pytest
import torch

from course_utils import cache


def _one() -> int:
    return 1


def _two() -> int:
    return 2


def test_code_version_changes_with_the_source():
    assert cache.code_version(_one) != cache.code_version(_two)
    assert cache.code_version(_one) == cache.code_version(_one)
    assert cache.request_key({"a": 1}, "v1") != cache.request_key({"a": 1}, "v2")


def test_cached_computes_once_then_reads(tmp_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(4.0)}

    key = cache.request_key({"what": "test"}, "v1")
    a = cache.cached("things", key, compute)
    b = cache.cached("things", key, compute)
    assert torch.equal(a["x"], b["x"]) and len(calls) == 1
    cache.cached("things", cache.request_key({"what": "test"}, "v2"), compute)  # new code version: recomputed
    assert len(calls) == 2
    cache.cached("things", key, compute, use=False)  # use=False never reads
    assert len(calls) == 3


def test_stale_and_corrupted_files_are_reported_and_rebuilt(tmp_cache):
    key = cache.request_key({"what": "test"}, "v1")
    cache.cached("things", key, lambda: {"x": torch.ones(3)})
    path = cache.cache_path(key, "things")
    raw = bytearray(path.read_bytes())
    raw[-2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum"):
        assert torch.equal(cache.cached("things", key, lambda: {"x": torch.ones(3)})["x"], torch.ones(3))
    other = cache.request_key({"what": "other"}, "v1")
    path.replace(cache.cache_path(other, "things"))  # a file under another request's name
    with pytest.warns(UserWarning, match="stale"):
        cache.cached("things", other, lambda: {"x": torch.zeros(3)})


def test_tensor_digest_is_dtype_and_device_blind():
    v = torch.randn(5)
    assert cache.tensor_sha256(v) == cache.tensor_sha256(v.double())
    assert cache.tensor_sha256(None) is None and cache.tensor_sha256(v) != cache.tensor_sha256(v + 1)


def test_a_file_read_once_is_served_from_memory(tmp_cache, monkeypatch):
    """The in-process memo: a second read neither opens nor re-checksums the file, and returns a private copy."""
    cached = cache.cached
    cached("things", "k-memo", lambda: {"x": torch.arange(4.0)})
    reads = []
    monkeypatch.setattr(cache, "read", lambda *a, **k: reads.append(1))
    first = cached("things", "k-memo", lambda: {"x": torch.zeros(4)})
    first["x"] += 100  # a caller editing its copy must not change what the next caller gets
    assert reads == [] and torch.equal(cached("things", "k-memo", lambda: {"x": torch.zeros(4)})["x"], torch.arange(4.0))
