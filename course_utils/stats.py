"""The course's one place for intervals and nulls: confidence intervals, slopes, permutation nulls, PCA.

Everything here is a thin, typed layer over scipy (and scikit-learn for PCA), so each number the
notebooks print comes from one documented function instead of a hand-written loop:

- proportions (`wilson_ci`, `accuracy_ci`): the Wilson score interval (scipy.stats.binomtest). It is
  deterministic, needs no resampling, and unlike a percentile bootstrap it does not collapse to a
  zero-width interval when every test item is right (or wrong) or when there are few items;
- means and correlations (`mean_ci`, `mean_diff_ci`, `corr_ci`, `spearman_ci`): percentile bootstrap
  (scipy.stats.bootstrap), resampling the items; `pearson_ci` is the Fisher-z interval of pearsonr;
- slopes (`slope`, `slopes`, `grouped_slope_ci`): least squares, and a cluster bootstrap over groups
  (scenarios) vectorised with numpy: a replicate is a multinomial count vector over the groups;
- nulls (`permutation_null`, `percentile_in_null`, `null_band`): scipy.stats.permutation_test over
  shuffled labels, and the two summaries of a null distribution the notebooks report.

Only numpy, scipy and pandas are imported at module level (scikit-learn inside `pca`; never torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as _st

ArrayLike = Sequence[float] | np.ndarray | pd.Series


class PermutationNull(NamedTuple):
    """Observed statistic, permutation p-value and the null distribution it was read from."""

    statistic: float
    pvalue: float
    null: np.ndarray


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A numpy Generator from a seed (or the Generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_confidence(confidence: float) -> float:
    """Validate a confidence level in (0, 1)."""
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence={confidence!r} must be between 0 and 1 (e.g. 0.95)")
    return float(confidence)


# ---------------------------------------------------------------- proportions


def wilson_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) for k successes out of n; (nan, nan) when n == 0."""
    confidence = _check_confidence(confidence)
    k, n = int(k), int(n)
    if n == 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must be between 0 and n={n}")
    ci = _st.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_ci(correct: Sequence[bool] | np.ndarray | pd.Series, confidence: float = 0.95) -> tuple[float, float, float]:
    """Accuracy over test items and its Wilson interval: (accuracy, low, high); all nan for no items."""
    correct = np.asarray(correct, dtype=bool).ravel()
    if correct.size == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = wilson_ci(int(correct.sum()), correct.size, confidence)
    return float(correct.mean()), lo, hi


# ---------------------------------------------------------------- bootstrap intervals


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., Any],
    confidence: float,
    n_resamples: int,
    seed: int | np.random.Generator,
    paired: bool,
    method: str,
) -> tuple[float, float]:
    """scipy.stats.bootstrap with the course's defaults; returns (low, high)."""
    res = _st.bootstrap(
        data,
        statistic,
        n_resamples=int(n_resamples),
        confidence_level=_check_confidence(confidence),
        method=method,
        paired=paired,
        vectorized=True,
        rng=_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean along axis (the bootstrap's vectorised statistic)."""
    return np.mean(a, axis=axis)


def mean_ci(
    values: ArrayLike, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0, method: str = "percentile"
) -> tuple[float, float, float]:
    """Mean and its percentile-bootstrap interval over items (method="BCa" for bias-corrected): (mean, low, high)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2:
        raise ValueError(f"mean_ci needs at least 2 values, got {v.size}")
    return (float(v.mean()), *_bootstrap((v,), _mean, confidence, n_resamples, seed, False, method))


def mean_diff_ci(
    a: ArrayLike, b: ArrayLike, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0, method: str = "percentile"
) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its percentile-bootstrap interval, resampling each group separately."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.size < 2 or b.size < 2:
        raise ValueError(f"mean_diff_ci needs at least 2 values per group, got {a.size} and {b.size}")

    def diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        """Difference of means along axis."""
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    return (float(a.mean() - b.mean()), *_bootstrap((a, b), diff, confidence, n_resamples, seed, False, method))


def _pearson_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r of paired samples along axis (nan where either side is constant)."""
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis) / np.sqrt((xc * xc).sum(axis) * (yc * yc).sum(axis))


def _spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman rho (Pearson r of average ranks) of paired samples along axis."""
    return _pearson_along(_st.rankdata(x, axis=axis), _st.rankdata(y, axis=axis), axis=axis)


def corr_ci(
    x: ArrayLike, y: ArrayLike, method: str = "pearson", confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Correlation ("pearson" or "spearman") and its percentile-bootstrap interval over pairs: (r, low, high)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.size != y.size or x.size < 3:
        raise ValueError(f"corr_ci needs two samples of equal length >= 3, got {x.size} and {y.size}")
    funcs = {"pearson": _pearson_along, "spearman": _spearman_along}
    if method not in funcs:
        raise ValueError(f"method={method!r}: use 'pearson' or 'spearman'")
    r = float(funcs[method](x, y))
    return (r, *_bootstrap((x, y), funcs[method], confidence, n_resamples, seed, True, "percentile"))


def spearman_ci(
    x: ArrayLike, y: ArrayLike, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Spearman rho and its paired percentile-bootstrap interval: (rho, low, high)."""
    return corr_ci(x, y, "spearman", confidence, n_resamples, seed)


def pearson_ci(x: ArrayLike, y: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """Pearson r and its Fisher-z interval (scipy.stats.pearsonr): (r, low, high)."""
    res = _st.pearsonr(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    ci = res.confidence_interval(confidence_level=_check_confidence(confidence))
    return float(res.statistic), float(ci.low), float(ci.high)


# ---------------------------------------------------------------- slopes


def slopes(x: ArrayLike, y: ArrayLike, axis: int = -1) -> np.ndarray:
    """Least-squares slopes of y on x along axis, broadcasting (e.g. x [n], y [k, n] -> [k]); nan if x is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis) / (xc * xc).sum(axis)


def slope(x: ArrayLike, y: ArrayLike) -> float:
    """Least-squares slope of y on x (one line)."""
    return float(slopes(np.ravel(x), np.ravel(y)))


def grouped_slope_ci(
    df: pd.DataFrame, x: str, y: str, group: str, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Pooled slope of y on x and its percentile cluster-bootstrap interval, resampling whole groups: (slope, low, high)."""
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} must be at least 1")
    confidence = _check_confidence(confidence)
    xv, yv = df[x].to_numpy(dtype=float), df[y].to_numpy(dtype=float)
    if xv.size == 0:
        raise ValueError("grouped_slope_ci: the DataFrame is empty")
    xv, yv = xv - xv.mean(), yv - yv.mean()  # a shift leaves every slope unchanged and keeps the sums well conditioned
    codes, uniques = pd.factorize(df[group], sort=True)
    g = len(uniques)
    # Per-group sufficient statistics [G, 5]: n, Sx, Sy, Sxx, Sxy.
    sums = np.stack([np.bincount(codes, weights=w, minlength=g) for w in (np.ones_like(xv), xv, yv, xv * xv, xv * yv)], axis=1)
    counts = _rng(seed).multinomial(g, np.full(g, 1.0 / g), size=int(n_boot))  # [B, G]: how often each group is drawn
    n, sx, sy, sxx, sxy = (counts @ sums).T
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    lo, hi = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    return slope(xv, yv), float(lo), float(hi)


# ---------------------------------------------------------------- nulls


def permutation_null(
    statistic: Callable[[np.ndarray], Any],
    labels: Sequence[Any] | np.ndarray | pd.Series,
    n_resamples: int = 1000,
    seed: int = 0,
    alternative: str = "greater",
    vectorized: bool = False,
) -> PermutationNull:
    """Null distribution of statistic(shuffled labels) by scipy.stats.permutation_test, with its p-value.

    `statistic` takes the labels in some order and returns a number; with vectorized=True it takes a
    [batch, n] array of orders and returns [batch]. The p-value is scipy's: it counts the observed value
    as one of the null draws ((hits + 1) / (n_resamples + 1)), so it is never 0. When n! <= n_resamples
    scipy enumerates every ordering exactly once instead.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size < 2:
        raise ValueError("labels must be a 1-D sequence of at least 2 entries")

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        """The user's statistic on labels reordered by idx (scipy permutes indices, never the labels)."""
        perm = labels[np.moveaxis(idx, axis, -1)]
        if vectorized:
            return np.asarray(statistic(perm), dtype=float)
        flat = perm.reshape(-1, perm.shape[-1])
        return np.array([statistic(p) for p in flat], dtype=float).reshape(perm.shape[:-1])

    res = _st.permutation_test(
        (np.arange(labels.size),),
        stat,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=int(n_resamples),
        alternative=alternative,
        rng=_rng(seed),
    )
    return PermutationNull(float(res.statistic), float(res.pvalue), np.asarray(res.null_distribution, dtype=float))


def percentile_in_null(value: float, null: ArrayLike) -> float:
    """Share of the null strictly below value (0 = below every null draw, 1 = above every one)."""
    null = np.asarray(null, dtype=float).ravel()
    if null.size == 0:
        raise ValueError("the null distribution is empty")
    return float(np.mean(null < value))


def null_band(null: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Central band holding `confidence` of the null: its (1-c)/2 and (1+c)/2 quantiles."""
    confidence = _check_confidence(confidence)
    null = np.asarray(null, dtype=float).ravel()
    if null.size == 0:
        raise ValueError("the null distribution is empty")
    lo, hi = np.quantile(null, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def mcnemar(a_correct: ArrayLike, b_correct: ArrayLike) -> tuple[int, int, float]:
    """Exact McNemar test of two classifiers on the same items: (a right & b wrong, a wrong & b right, two-sided p)."""
    a, b = np.asarray(a_correct, dtype=bool).ravel(), np.asarray(b_correct, dtype=bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"a_correct and b_correct must be non-empty and paired (same items); got {a.size} and {b.size}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(_st.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return only_a, only_b, p


MIN_NULL = 100  # a verdict's null holds at least this many independent draws (mirrored copies do not count)
LEVEL = 0.05  # the course's one significance level, fixed before any number


class RankTest(NamedTuple):
    """An effect placed among null draws of the same statistic: exact rank p-value and z-score."""

    effect: float
    p: float  # (r + 1) / (k + 1), r = null draws at least as extreme as the effect
    z: float  # (effect - null mean) / null standard deviation
    k: int  # independent null draws
    share_below: float  # share of the null strictly below the effect

    @property
    def distinguishable(self) -> bool:
        """True when p <= LEVEL: the effect is distinguishable from the null at the course's level."""
        return self.p <= LEVEL

    def __str__(self) -> str:
        return f"{self.effect:+.4g} (rank p = {self.p:.3g} among {self.k:,} null draws, z = {self.z:+.2f})"


ALTERNATIVES = ("two-sided", "greater")


def rank_test(
    effect: float, null: ArrayLike, *, center: float | None = 0.0, alternative: str = "two-sided", min_null: int = MIN_NULL
) -> RankTest:
    """Exact rank test of `effect` among `null` draws of the same statistic: p = (1 + r) / (k + 1).

    two-sided: r = #{|null - c| >= |effect - c|}, with `center` c 0 for nulls symmetric about zero by construction
    (random directions) or None for the null's median; greater (a one-sided hypothesis fixed in advance, e.g. a
    diagonal margin): r = #{null >= effect}. The test holds its level when the effect and the null draws are
    exchangeable under the null hypothesis; with k draws the smallest possible p is 1/(k+1), so fewer than
    `min_null` draws is refused.
    """
    null = np.asarray(null, dtype=float).ravel()
    if null.size < min_null:
        raise ValueError(f"the null has {null.size} draws; a verdict needs at least min_null={min_null}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r}: use one of {ALTERNATIVES}")
    c = float(np.median(null)) if center is None else float(center)
    if alternative == "greater":
        r = int(np.sum(null >= float(effect)))
    else:
        r = int(np.sum(np.abs(null - c) >= abs(float(effect) - c)))
    sd = float(null.std(ddof=1))
    z = (float(effect) - float(null.mean())) / sd if sd > 0 else float("nan")
    return RankTest(float(effect), (r + 1) / (null.size + 1), z, int(null.size), float(np.mean(null < effect)))


# ---------------------------------------------------------------- PCA


def pca(X: Any, n_components: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the rows of X (scikit-learn, full SVD): (scores [n, k], explained_variance_ratio [k], components [k, d])."""
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be [n_samples, n_features], got shape {X.shape}")
    fit = PCA(n_components=n_components, svd_solver="full").fit(X)
    return fit.transform(X), fit.explained_variance_ratio_, fit.components_
