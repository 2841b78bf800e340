"""Is a geometry the model's or the words'? Similarity matrices of emotion vectors, a words-only twin built
from TF-IDF centroids of the same stories, and their correlation (representational similarity analysis)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from .stats import _check_confidence, permutation_null


def similarity_matrix(vectors: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cosine similarity of every pair of rows: [n, n]."""
    v = torch.as_tensor(np.asarray(vectors), dtype=torch.float64)
    u = v / v.norm(dim=-1, keepdim=True)
    return (u @ u.T).numpy()


def tfidf_centroids(texts: Sequence[str], labels: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Words-only emotion vectors: mean TF-IDF of each emotion's texts minus the mean over emotions, [len(names), vocab]."""
    labels = np.asarray(labels)
    missing = [n for n in names if not (labels == n).any()]
    if missing:
        raise ValueError(f"no texts for {missing}: every name needs at least one labelled text")
    X = TfidfVectorizer(sublinear_tf=True, min_df=2).fit_transform(list(texts))
    means = np.vstack([np.asarray(X[labels == n].mean(0)) for n in names])
    return means - means.mean(0, keepdims=True)


def _upper(m: np.ndarray) -> np.ndarray:
    """The entries above the diagonal, as a flat array."""
    return m[np.triu_indices(m.shape[0], 1)]


def rsa(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Pearson r between two similarity matrices' off-diagonal entries: (r, low, high, p).

    The interval resamples the items (emotions) with replacement, keeping only pairs of distinct draws;
    p is a Mantel test: the share of item relabellings of `b` whose r is at least the observed one.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 4:
        raise ValueError(f"rsa needs two square matrices of the same size >= 4, got {a.shape} and {b.shape}")
    confidence = _check_confidence(confidence)
    n = a.shape[0]
    r = float(np.corrcoef(_upper(a), _upper(b))[0, 1])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        i, j = np.triu_indices(n, 1)
        keep = idx[i] != idx[j]
        x, y = a[idx[i][keep], idx[j][keep]], b[idx[i][keep], idx[j][keep]]
        boots.append(np.corrcoef(x, y)[0, 1])
    lo, hi = np.nanquantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    mantel = permutation_null(
        lambda p: np.corrcoef(_upper(a), _upper(b[np.ix_(p, p)]))[0, 1], np.arange(n), n_resamples=n_resamples, seed=seed
    )
    return r, float(lo), float(hi), mantel.pvalue
