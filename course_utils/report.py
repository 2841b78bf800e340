"""Numbers the notebooks measure, collected in build/results.json for the course report."""
from __future__ import annotations

import json
from typing import Any

from .paths import build_dir


def record(section: str, **values: Any) -> None:
    """Store measured values under `section` in build/results.json (merging with what is there)."""
    path = build_dir() / "results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    results.setdefault(section, {}).update({k: _plain(v) for k, v in values.items()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _plain(value: Any) -> Any:
    """Turn numpy/torch scalars and containers into JSON-friendly Python values (floats rounded to 4 places)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
