"""Is a geometry the model's or the words'? Similarity matrices of emotion vectors, a words-only twin built
from TF-IDF centroids of the same stories, and their correlation (representational similarity analysis); a partial
test of what human ratings add over such geometries, and split-half reliability of the vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
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


def rating_distance(ratings: Sequence[float] | np.ndarray) -> np.ndarray:
    """|rating_i - rating_j| for every pair of items: [n, n] (e.g. how far apart two emotions are in valence)."""
    r = np.asarray(ratings, dtype=float).ravel()
    if np.isnan(r).any():
        raise ValueError("ratings contain NaN: keep only the rated items")
    return np.abs(r[:, None] - r[None, :])


class PartialRSA(NamedTuple):
    """Multiple regression of one similarity matrix on others: what the `tested` matrices add over the `nuisance` ones."""

    table: pd.DataFrame  # one row per predictor: standardised coefficient beta and its bootstrap interval (low, high)
    r2: float  # R^2 of the full fit
    delta_r2: float  # R^2 gained by adding the tested predictors to the nuisance-only fit
    p: float  # permutation p of delta_r2 (tested matrices relabelled jointly in rows and columns)
    null: np.ndarray  # the delta_r2 of each relabelling


def _design(mats: Sequence[np.ndarray], idx: np.ndarray | None = None) -> np.ndarray:
    """Off-diagonal entries of each matrix (optionally on resampled items), z-scored, as columns: [pairs, k]."""
    cols = []
    for m in mats:
        if idx is None:
            v = _upper(m)
        else:
            i, j = np.triu_indices(len(idx), 1)
            keep = idx[i] != idx[j]
            v = m[idx[i][keep], idx[j][keep]]
        sd = v.std()
        cols.append((v - v.mean()) / sd if sd > 0 else np.zeros_like(v, dtype=float))
    return np.column_stack(cols)


def _fit(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares coefficients of y on the columns of X (both centred), and R^2."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ beta
    return beta, 1.0 - float(resid @ resid) / float(y @ y)


def partial_rsa(
    target: np.ndarray,
    tested: dict[str, np.ndarray],
    nuisance: dict[str, np.ndarray],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PartialRSA:
    """Regress `target`'s off-diagonal entries on the tested and nuisance matrices (all z-scored); see PartialRSA.

    The rule, fixed in advance: the statistic is the R^2 the tested matrices add over the nuisance ones; its null
    relabels the items of the tested matrices (one permutation applied to rows and columns of all of them, so their
    relation to each other is kept) while the target and nuisance matrices stay as they are; p counts the observed
    value as one of the draws. The intervals resample items with replacement, keeping pairs of distinct draws.
    """
    mats = [np.asarray(m, dtype=float) for m in (target, *tested.values(), *nuisance.values())]
    n = mats[0].shape[0]
    if any(m.shape != (n, n) for m in mats) or n < 5:
        raise ValueError(f"partial_rsa needs square matrices of one size >= 5, got {[m.shape for m in mats]}")
    if not tested or not nuisance:
        raise ValueError("partial_rsa needs at least one tested and one nuisance matrix (dicts name -> [n, n])")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples!r} must be at least 1")
    confidence = _check_confidence(confidence)
    k = len(tested)
    names = [*tested, *nuisance]

    def stats(t: list[np.ndarray], idx: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
        """Coefficients, full R^2 and delta R^2 for one set of matrices."""
        design = _design([mats[0], *t, *mats[1 + k :]], idx)
        y, X = design[:, 0], design[:, 1:]
        beta, r2 = _fit(y, X)
        return beta, r2, r2 - _fit(y, X[:, k:])[1]

    beta, r2, delta = stats(mats[1 : 1 + k])
    rng = np.random.default_rng(seed)
    null = np.empty(n_resamples)
    for b in range(n_resamples):
        p = rng.permutation(n)
        null[b] = stats([m[np.ix_(p, p)] for m in mats[1 : 1 + k]])[2]
    boots = np.array([stats(mats[1 : 1 + k], rng.integers(0, n, n))[0] for _ in range(n_resamples)])
    lo, hi = np.nanquantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    table = pd.DataFrame({"beta": beta, "low": lo, "high": hi}, index=pd.Index(names, name="predictor"))
    pvalue = (1 + int(np.sum(null >= delta))) / (n_resamples + 1)
    return PartialRSA(table, float(r2), float(delta), float(pvalue), null)


def spearman_brown(r: float | np.ndarray, factor: float = 2.0) -> float | np.ndarray:
    """Reliability of a measure `factor` times as long, from the reliability r of one part: factor*r / (1 + (factor-1)*r)."""
    if factor <= 0:
        raise ValueError(f"factor={factor!r} must be positive (2 = from a half to the whole)")
    return factor * r / (1 + (factor - 1) * r)


def split_half_vectors(
    acts: torch.Tensor, labels: Sequence[str], names: Sequence[str], components: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Emotion vectors from two random halves of each emotion's stories (the recipe of vectors.py): two [n, d]."""
    from .vectors import center, emotion_means, project_out

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    half = np.zeros(len(labels), dtype=bool)
    for n in names:
        rows = np.flatnonzero(labels == n)
        if rows.size < 2:
            raise ValueError(f"emotion {n!r} has {rows.size} stories; a split half needs at least 2")
        half[rng.permutation(rows)[: rows.size // 2]] = True
    a, b = (project_out(center(emotion_means(acts[torch.tensor(m)], labels[m], names)), components) for m in (half, ~half))
    return a, b
