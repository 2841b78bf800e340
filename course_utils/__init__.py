"""course_utils: the small library behind the "functional emotions" notebooks.

The public names below are imported lazily (PEP 562): `import course_utils.data` stays light (no torch,
no nnsight), while `from course_utils import load_model` still works and loads torch on first use.
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
from typing import TYPE_CHECKING

if _os.environ.get("COURSE_BLOCK_NETWORK") == "1":  # set by the test suite, inherited by notebook kernels
    from .offline import block_network as _block

    _block()

# public name -> submodule that defines it
_LAZY = {
    "extract_activations": "activations",
    "chat": "models",
    "load_model": "models",
    "EmotionVectors": "vectors",
    "build_emotion_vectors": "vectors",
}

__all__ = ["load_model", "extract_activations", "chat", "build_emotion_vectors", "EmotionVectors"]

if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from .activations import extract_activations
    from .models import chat, load_model
    from .vectors import EmotionVectors, build_emotion_vectors


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
