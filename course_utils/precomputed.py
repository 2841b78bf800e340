"""Precomputed emotion vectors for the bundled model (data/precomputed/), and the FAST policy of notebooks 05-08.

The files are built by `scripts/make_precomputed_vectors.py` with the recipe of `vectors`; they carry the
model's id and a sha256 of the data they came from, and are refused for another model or changed data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from safetensors.torch import save_file

from .cache import texts_sha256
from .models import CourseModel, model_key
from .paths import cache_dir, data_dir
from .steering import median_token_norm, reference_texts, remember_median_norm
from .vectors import EmotionVectors, _neutral_acts, _story_means, build_emotion_vectors, default_layer

PRECOMPUTED_NAME = "smollm2-135m-instruct"  # precomputed vectors for the bundled model, under data/precomputed/


def precomputed_path(layer: int) -> Path:
    """Where the committed vectors for the bundled model live (stem of a .safetensors/.json pair)."""
    return data_dir() / "precomputed" / f"{PRECOMPUTED_NAME}_layer{layer}"


def data_fingerprint() -> str:
    """sha256 over the files the vectors are computed from (stories, neutral dialogues, emotion list)."""
    h = hashlib.sha256()
    for name in ("emotions.csv", "stories.jsonl", "neutral_dialogues.jsonl"):
        h.update((data_dir() / name).read_bytes())
    return h.hexdigest()


def save_precomputed(model: CourseModel, layer: int | None = None) -> Path:
    """Build the full vectors and commit-ready files: the vectors, plus the inputs a test re-derives them from."""
    vectors = build_emotion_vectors(model, layer=layer)
    _, means, _ = _story_means(model, vectors.layer, None, "train", None)  # read back from the activation cache
    neutral = _neutral_acts(model, vectors.layer)
    vectors.meta.update({"data_sha256": data_fingerprint(), "built_by": "course_utils.precomputed.save_precomputed"})
    vectors.meta["median_token_norm"] = norm_meta(model, vectors.layer)
    stem = precomputed_path(vectors.layer)
    vectors.save(stem)
    save_file({"means": means.contiguous(), "neutral": neutral.contiguous()}, str(stem) + "_inputs.safetensors")
    return stem.with_suffix(".safetensors")


def load_precomputed(model: CourseModel, layer: int | None = None) -> EmotionVectors:
    """The committed vectors for the bundled model; refuses another model or data that changed since they were built."""
    layer = default_layer(model.n_layers) if layer is None else layer
    stem = precomputed_path(layer)
    if not stem.with_suffix(".json").is_file():
        raise FileNotFoundError(
            f"no precomputed vectors at {stem}.safetensors/.json (layer {layer}); "
            "build them with: python scripts/make_precomputed_vectors.py"
        )
    vectors = EmotionVectors.load(stem)
    if vectors.meta.get("model") != model.course_id:
        raise ValueError(
            f"{stem}.json was built for model {vectors.meta.get('model')!r}, not {model.course_id!r}: "
            "precomputed vectors exist only for the bundled model; use build_emotion_vectors(model)"
        )
    if vectors.meta.get("data_sha256") != data_fingerprint():
        raise ValueError(
            f"{stem}.json was built from other data files than data/ now holds: "
            "rebuild it with: python scripts/make_precomputed_vectors.py"
        )
    norm = vectors.meta.get("median_token_norm")
    if norm and norm["model_key"] == model_key(model):  # FAST then needs no reference pass for the steering scale
        remember_median_norm(model, vectors.layer, norm["reference_sha256"], norm["value"])
    return vectors


def norm_meta(model: CourseModel, layer: int) -> dict[str, object]:
    """The layer's median token norm over the default reference corpus, with what it was measured on."""
    return {
        "value": median_token_norm(model, layer),
        "model_key": model_key(model),
        "reference_sha256": texts_sha256(reference_texts(model)),
    }


FAST_SUBSET = {"per_emotion": 4, "emotions": "core", "neutral_limit": 20}  # what FAST builds for other models


def _subset_stem(model: CourseModel) -> Path:
    """Where FAST keeps the subset vectors it built for a model without committed ones (built once, then read)."""
    name = hashlib.sha256((model_key(model) + data_fingerprint()).encode()).hexdigest()[:16]
    return cache_dir("vectors") / f"fast_subset_{name}"


def course_vectors(model: CourseModel, fast: bool = False) -> EmotionVectors:
    """The notebooks' vectors: with fast, the committed ones when they fit this model, else a small subset; else the full set."""
    if not fast:
        return build_emotion_vectors(model)
    try:
        vectors = load_precomputed(model)
        print(f"FAST: loaded the precomputed vectors for this model ({len(vectors.names)} emotions, layer {vectors.layer})")
        return vectors
    except (FileNotFoundError, ValueError) as e:
        reason = str(e) if model.course_id.startswith("bundled:") else "no committed vectors for this model"
    stem = _subset_stem(model)
    if stem.with_suffix(".json").is_file():
        print(f"FAST: {reason}; loaded the subset vectors built earlier for it ({stem}.safetensors)")
        return EmotionVectors.load(stem)
    print(
        f"FAST: {reason}; building vectors from a small subset (4 stories per core emotion), once: "
        f"later notebooks read them from {stem}.safetensors"
    )
    vectors = build_emotion_vectors(model, **FAST_SUBSET)
    vectors.save(stem)
    return vectors
