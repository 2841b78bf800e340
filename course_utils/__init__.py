"""course_utils: the small library behind the "functional emotions" notebooks."""
import os as _os

if _os.environ.get("COURSE_BLOCK_NETWORK") == "1":  # set by the test suite, inherited by notebook kernels
    from .offline import block_network as _block

    _block()

from .activations import extract_activations  # noqa: E402
from .models import chat, load_model  # noqa: E402
from .vectors import EmotionVectors, build_emotion_vectors  # noqa: E402

__all__ = ["load_model", "extract_activations", "chat", "build_emotion_vectors", "EmotionVectors"]
