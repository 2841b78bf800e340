"""The course's disk cache: checksummed safetensors files under build/cache/<kind>/, one per request.

A request is a dict (model, exact texts, parameters); its JSON, plus the *code version* of the
functions that compute it, names the file. Changing the computing code changes the code version,
so old entries are never read for new code. Files are written atomically and carry a sha256 of
their tensors: a corrupted or stale file is reported and recomputed, never silently used.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .paths import cache_dir


def texts_sha256(texts: Sequence[str]) -> str:
    """One sha256 over a list of texts (order and boundaries included): the text part of a cache key."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def tensor_sha256(tensor: torch.Tensor | None) -> str | None:
    """sha256 of a tensor's float32 bytes on the CPU (None stays None): the vector part of a cache key."""
    if tensor is None:
        return None
    return hashlib.sha256(tensor.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def code_version(*functions: Callable[..., Any]) -> str:
    """A short sha256 of the source code of `functions`: part of every key, so edited code never reads old entries."""
    h = hashlib.sha256()
    for fn in functions:
        h.update(inspect.getsource(fn).encode("utf-8"))
    return h.hexdigest()[:16]


def request_key(request: dict[str, Any], code: str) -> str:
    """The canonical JSON of a request and the code version that computes it."""
    return json.dumps({**request, "code": code}, sort_keys=True)


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """A checksum of the tensors' bytes, stored with them to detect corruption."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_path(key: str, kind: str) -> Path:
    """The file that holds (or will hold) the entry for `key`."""
    return cache_dir(kind) / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".safetensors")


def read(path: Path, key: str, what: str) -> dict[str, torch.Tensor] | None:
    """Load a cache file if it is intact and matches the request; warn and return None otherwise."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        warnings.warn(f"{what} cache file {path} is unreadable ({e}); recomputing it", stacklevel=3)
        return None
    if meta.get("key") != key:
        warnings.warn(f"{what} cache file {path} belongs to another request (stale); recomputing it", stacklevel=3)
        return None
    if meta.get("sha256") != _digest(tensors):
        warnings.warn(f"{what} cache file {path} failed its checksum (corrupted); recomputing it", stacklevel=3)
        return None
    return tensors


def write(path: Path, key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Write atomically (temp file, then rename) so an interrupted run never leaves half a file."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one temp file per process: two writers never share one
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(tmp), metadata={"key": key, "sha256": _digest(tensors)})
    tmp.replace(path)


# In-process memo of intact cache files: (path, size, mtime) -> tensors. A file read and checksummed once in a
# process is not read again (04 reads the story activations ~10 times); callers get copies, never the memo itself.
_MEMO: dict[tuple[str, int, int], dict[str, torch.Tensor]] = {}
MEMO_BYTES = 512 * 2**20


def _stamp(path: Path) -> tuple[str, int, int]:
    """What identifies a file's version: path, size and modification time."""
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _remember(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Keep a file's tensors in the memo, dropping the oldest entries beyond MEMO_BYTES."""
    _MEMO[_stamp(path)] = tensors
    while sum(t.nbytes for ts in _MEMO.values() for t in ts.values()) > MEMO_BYTES and len(_MEMO) > 1:
        _MEMO.pop(next(iter(_MEMO)))


def clear_memo() -> None:
    """Forget every file kept in the in-process memo (run_course does it between notebooks sharing a kernel)."""
    _MEMO.clear()


def cached(kind: str, key: str, compute: Callable[[], dict[str, torch.Tensor]], use: bool = True) -> dict[str, torch.Tensor]:
    """`compute()`'s tensors, read from build/cache/<kind>/ when an intact file for `key` exists, else computed and stored."""
    if not use:
        return compute()
    path = cache_path(key, kind)
    memo = _MEMO.get(_stamp(path)) if path.exists() else None
    if memo is not None:
        return {k: v.clone() for k, v in memo.items()}
    tensors = read(path, key, what=kind.rstrip("s"))
    if tensors is None:
        tensors = compute()
        write(path, key, tensors)
    _remember(path, {k: v.detach().cpu().clone() for k, v in tensors.items()})
    return tensors
