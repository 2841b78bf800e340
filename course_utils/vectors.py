"""Emotion vectors, the paper's recipe: per-emotion mean minus the mean over emotions, neutral PCs removed."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from .activations import _cache_key, extract_activations
from .cache import cache_path, write
from .data import emotion_names, load_neutral, load_stories
from .models import CourseModel, transcript

NEUTRAL_VARIANCE = 0.5  # project out the neutral PCs that together explain this share of variance


def default_layer(n_layers: int) -> int:
    """The course's layer rule, fixed before any result: about two-thirds of the way through (paper's choice)."""
    if n_layers < 1:
        raise ValueError(f"n_layers={n_layers}: a model has at least one layer")
    return min(n_layers - 1, round(2 * n_layers / 3))


def emotion_means(acts: torch.Tensor, labels: Sequence[str], names: Sequence[str]) -> torch.Tensor:
    """Mean activation of each emotion's texts: acts [n, d] -> [n_emotions, d] in `names` order."""
    labels = list(labels)
    missing = [n for n in names if n not in labels]
    if missing:
        raise ValueError(f"no texts for emotions {missing}")
    return torch.stack([acts[[i for i, l in enumerate(labels) if l == n]].mean(0) for n in names])


def center(means: torch.Tensor) -> torch.Tensor:
    """Subtract the mean over emotions (each emotion counts once, however many stories it has)."""
    return means - means.mean(0, keepdim=True)


def neutral_components(neutral_acts: torch.Tensor, variance: float = NEUTRAL_VARIANCE) -> torch.Tensor:
    """Top principal directions [k, d] of the neutral activations that together explain `variance` of it."""
    if not 0.0 < variance < 1.0:
        raise ValueError(f"variance={variance} must be between 0 and 1")
    x = neutral_acts - neutral_acts.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    share = (s**2).cumsum(0) / (s**2).sum()
    k = int((share < variance).sum().item()) + 1
    return vh[:k]


def project_out(vectors: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Remove from each row of `vectors` its part in the span of the orthonormal rows of `components`."""
    return vectors - (vectors @ components.T) @ components


def within_emotion_components(acts: torch.Tensor, labels: Sequence[str], variance: float = NEUTRAL_VARIANCE) -> torch.Tensor:
    """Top principal directions [k, d] of how stories vary inside their own emotion (each story minus its emotion's
    mean) that together explain `variance` of that variation: form, topic, length, person, not emotion."""
    labels = np.asarray(labels)
    if len(labels) != len(acts):
        raise ValueError(f"labels has {len(labels)} entries for {len(acts)} rows of acts")
    names = list(dict.fromkeys(labels.tolist()))
    means = emotion_means(acts, labels, names)
    residuals = acts.float() - means[torch.tensor(pd.Categorical(labels, categories=names).codes, dtype=torch.long)]
    if not bool(residuals.abs().sum() > 0):
        raise ValueError("no within-emotion variation: at least one emotion needs two different stories")
    return neutral_components(residuals, variance)


def neutral_texts(model: CourseModel, limit: int | None = None) -> list[str]:
    """The neutral dialogues rendered in the model's chat template."""
    df = load_neutral()
    return [transcript(model, m) for m in df.messages.tolist()[:limit]]


@dataclass
class EmotionVectors:
    """One vector per emotion at one layer, with the facts needed to reuse it."""

    names: list[str]
    layer: int
    vectors: torch.Tensor  # [n_emotions, d_model]
    origin: torch.Tensor | None = None  # [d_model] the average story activation the vectors are measured from
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.dim() != 2 or self.vectors.shape[0] != len(self.names):
            raise ValueError(f"vectors must be [len(names)={len(self.names)}, d_model]; got {tuple(self.vectors.shape)}")
        if self.origin is None:
            self.origin = torch.zeros(self.vectors.shape[1])

    def __getitem__(self, name: str) -> torch.Tensor:
        """The vector of one emotion."""
        if name not in self.names:
            raise KeyError(f"{name!r} is not among these vectors; available: {self.names}")
        return self.vectors[self.names.index(name)]

    def unit(self) -> torch.Tensor:
        """Unit-norm vectors [n_emotions, d_model]."""
        return self.vectors / self.vectors.norm(dim=-1, keepdim=True)

    def cosine(self, acts: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of activations [n, d], measured from `origin`, with every vector: [n, n_emotions]."""
        return self.cosine_to(acts, self.vectors)

    def cosine_to(self, acts: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """The same statistic for any directions [k, d] (e.g. random controls): cosine from `origin`, [n, k]."""
        acts = acts - self.origin
        directions = torch.as_tensor(directions).float()
        return (acts / acts.norm(dim=-1, keepdim=True)) @ (directions / directions.norm(dim=-1, keepdim=True)).T

    def score(self, model: CourseModel, texts: Sequence[str], reduce: str = "mean", **kwargs: Any) -> pd.DataFrame:
        """Cosine similarity of each text's activation (minus `origin`) with each emotion vector (rows: texts)."""
        if reduce not in ("mean", "last"):
            raise ValueError(f"reduce={reduce!r}: use 'mean' or 'last'")
        acts = extract_activations(model, list(texts), layers=[self.layer], reduce=reduce, **kwargs)[:, 0]
        return pd.DataFrame(self.cosine(acts).numpy(), columns=self.names)

    def save(self, path: str | Path) -> Path:
        """Save as `<path>.safetensors` (the tensor) plus `<path>.json` (names, layer, meta)."""
        path = Path(path).with_suffix("")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Each file is written whole under a temporary name, then renamed (the .json last: readers look for it).
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tensors = {"vectors": self.vectors.contiguous().float(), "origin": self.origin.contiguous().float()}
        save_file(tensors, str(tmp))
        tmp.replace(path.with_suffix(".safetensors"))
        info = json.dumps({"names": self.names, "layer": self.layer, "meta": self.meta}, indent=1)
        tmp.write_text(info, encoding="utf-8")
        tmp.replace(path.with_suffix(".json"))
        return path.with_suffix(".safetensors")

    @classmethod
    def load(cls, path: str | Path) -> EmotionVectors:
        """Load vectors saved with `save`."""
        path = Path(path).with_suffix("")
        for p in (path.with_suffix(".safetensors"), path.with_suffix(".json")):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found (EmotionVectors.save writes a .safetensors and a .json)")
        info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        tensors = load_file(str(path.with_suffix(".safetensors")))
        return cls(info["names"], int(info["layer"]), tensors["vectors"], tensors.get("origin"), info.get("meta", {}))


def without_story_variation(
    vectors: EmotionVectors, acts: torch.Tensor, labels: Sequence[str], variance: float = NEUTRAL_VARIANCE
) -> EmotionVectors:
    """The vectors with the top within-emotion directions of these stories (acts [n, d] at the vectors' layer, the
    stories the vectors were fitted on) projected out: a second denoising, against our own stories' variation."""
    labels = np.asarray(labels)
    if len(labels) != len(acts):
        raise ValueError(f"labels has {len(labels)} entries for {len(acts)} rows of acts")
    keep = np.isin(labels, vectors.names)
    if not keep.any():
        raise ValueError(f"no story has an emotion among the vectors' names {vectors.names[:5]}...")
    pcs = within_emotion_components(torch.as_tensor(acts)[torch.tensor(keep)].float(), labels[keep], variance)
    meta = {**vectors.meta, "story_components": int(pcs.shape[0]), "story_variance": variance}
    return EmotionVectors(list(vectors.names), vectors.layer, project_out(vectors.vectors, pcs), vectors.origin, meta)


def layer_activations(
    model: CourseModel,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    skip_first: int = 3,
    cache: bool = True,
    **kwargs: Any,
) -> torch.Tensor:
    """Mean activations of `texts` at `layers`, [n, len(layers), d] (None: every layer, [n, n_layers, d]).

    Locally every layer is extracted (the one cache file all notebooks share) and the asked layers are cut from it.
    On a remote (NDIF) model only the asked layers travel: those not cached yet go in one extraction (one request
    per SESSION_BATCHES batches), each stored as its own cache file, the one `extract_activations(model, texts,
    layers=[layer])` reads, so a later call for any of them asks nothing (and where every layer is cached already,
    as after notebook 02, that file is read).
    """
    texts = list(texts)
    if layers is None or not model.remote:
        acts = extract_activations(model, texts, layers=None, reduce="mean", skip_first=skip_first, cache=cache, **kwargs)
        return acts if layers is None else acts[:, [int(layer) for layer in layers]]
    layers = [int(layer) for layer in layers]
    every = _cache_key(model, texts, list(range(model.n_layers)), "mean", skip_first)
    if cache and cache_path(every, "activations").exists():  # notebook 02 fetched every layer already: read that
        acts = extract_activations(model, texts, layers=None, reduce="mean", skip_first=skip_first, **kwargs)
        return acts[:, layers]
    keys = {layer: _cache_key(model, texts, [layer], "mean", skip_first) for layer in layers}
    # in model order: inside a trace a layer's output can only be read before the model has run past it
    missing = sorted(layer for layer in keys if not (cache and cache_path(keys[layer], "activations").exists()))
    fetched: dict[int, torch.Tensor] = {}
    if missing:
        acts = extract_activations(model, texts, layers=missing, reduce="mean", skip_first=skip_first, cache=False, **kwargs)
        for j, layer in enumerate(missing):
            fetched[layer] = acts[:, j : j + 1].contiguous()
            if cache:
                write(cache_path(keys[layer], "activations"), keys[layer], {"acts": fetched[layer]})
    one = dict(reduce="mean", skip_first=skip_first, cache=True, **kwargs)
    return torch.cat(
        [fetched[l] if l in fetched else extract_activations(model, texts, layers=[l], **one) for l in layers], dim=1
    )


def story_activations(
    model: CourseModel, stories: pd.DataFrame, layers: Sequence[int] | None = None, **kwargs: Any
) -> torch.Tensor:
    """Mean activations of stories at every layer [n, n_layers, d] (the one cache all notebooks share); with `layers`,
    [n, len(layers), d] at those layers only (on a remote model only they are requested: see layer_activations)."""
    return layer_activations(model, stories.text.tolist(), layers, **kwargs)


def _story_means(
    model: CourseModel,
    layer: int,
    emotions: Sequence[str] | str | None,
    split: str | None,
    per_emotion: int | None,
    cache: bool = True,
) -> tuple[list[str], torch.Tensor, int]:
    """Emotion names, their mean story activations at `layer` [n_emotions, d] over `split`, and the story count."""
    # Extract both splits (the same request, hence the same cache file, as the notebooks), then select.
    everything = load_stories(emotions=emotions, per_emotion=per_emotion)
    chosen = (everything.split == split).to_numpy() if split else np.ones(len(everything), bool)
    stories = everything[chosen]
    names = [n for n in emotion_names() if n in set(stories.emotion)]
    acts = story_activations(model, everything, layers=[layer], cache=cache)[torch.tensor(chosen), 0]
    return names, emotion_means(acts, stories.emotion, names), len(stories)


def _neutral_acts(model: CourseModel, layer: int, limit: int | None = None, cache: bool = True) -> torch.Tensor:
    """Mean activations of the neutral dialogues at `layer` [n, d] (locally all layers are extracted: one shared cache
    file; a remote model requests this layer only)."""
    return layer_activations(model, neutral_texts(model, limit), [layer], cache=cache)[:, 0]


def build_emotion_vectors(
    model: CourseModel,
    *,
    layer: int | None = None,
    emotions: Sequence[str] | str | None = None,
    split: str = "train",
    denoise: bool = True,
    per_emotion: int | None = None,
    neutral_limit: int | None = None,
    cache: bool = True,
    story_variance: float | None = None,
) -> EmotionVectors:
    """Emotion vectors at one layer from the stories of `split` (default layer: two-thirds deep, chosen a priori).

    story_variance (off by default, the paper's recipe): also project out the within-emotion principal directions of
    the same stories that explain this share of their variation (`without_story_variation`).
    """
    layer = default_layer(model.n_layers) if layer is None else layer
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"layer={layer}: must be in 0..{model.n_layers - 1}")
    if split not in ("train", "test", None):
        raise ValueError(f"split={split!r}: use 'train', 'test' or None (both)")
    names, means, n_stories = _story_means(model, layer, emotions, split, per_emotion, cache)
    vectors = center(means)
    meta: dict[str, Any] = {"model": model.course_id, "split": split, "n_stories": n_stories, "denoise": denoise}
    if denoise:
        pcs = neutral_components(_neutral_acts(model, layer, neutral_limit, cache))
        vectors = project_out(vectors, pcs)
        meta["neutral_components"] = int(pcs.shape[0])
    out = EmotionVectors(names, layer, vectors, means.mean(0), meta)
    if story_variance is not None:
        everything = load_stories(emotions=emotions, per_emotion=per_emotion)
        chosen = (everything.split == split).to_numpy() if split else np.ones(len(everything), bool)
        acts = story_activations(model, everything, layers=[layer], cache=cache)[torch.tensor(chosen), 0]
        out = without_story_variation(out, acts, everything.emotion[chosen].to_numpy(), story_variance)
    return out


def label_shuffled_vectors(
    model: CourseModel,
    layer: int,
    n_shuffles: int,
    *,
    seed: int = 0,
    emotions: Sequence[str] | str | None = None,
    per_emotion: int | None = None,
    neutral_limit: int | None = None,
) -> tuple[list[str], torch.Tensor]:
    """Emotion vectors rebuilt exactly as build_emotion_vectors does, but from train stories whose labels were shuffled
    (seeded): (names, [n_shuffles, n_emotions, d]). Vectors made the same way with no emotion in them: the null of a
    causal test of the real vectors."""
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles={n_shuffles}: draw at least one")
    everything = load_stories(emotions=emotions, per_emotion=per_emotion)
    chosen = (everything.split == "train").to_numpy()
    labels = everything.emotion[chosen].to_numpy()
    names = [n for n in emotion_names() if n in set(labels)]
    acts = story_activations(model, everything, layers=[layer])[torch.tensor(chosen), 0]
    pcs = neutral_components(_neutral_acts(model, layer, neutral_limit))
    codes = torch.tensor(pd.Categorical(labels, categories=names).codes, dtype=torch.long)
    counts = torch.bincount(codes, minlength=len(names)).float()[:, None]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_shuffles):  # emotion_means of the shuffled labels, as one index_add
        shuffled = codes[torch.as_tensor(rng.permutation(len(codes)))]
        means = torch.zeros(len(names), acts.shape[1]).index_add_(0, shuffled, acts.float()) / counts
        out.append(project_out(center(means), pcs))
    return names, torch.stack(out)
