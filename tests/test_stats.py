"""course_utils.stats: known answers for every interval and null, and the vectorised cluster bootstrap vs a loop."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from course_utils import stats

# ---------------------------------------------------------------- proportions


def test_wilson_known_values():
    # Wilson score interval, z = 1.95996: 5/10 -> [0.2366, 0.7634]; 0/10 -> [0, z^2 / (n + z^2)].
    lo, hi = stats.wilson_ci(5, 10)
    assert lo == pytest.approx(0.236593, abs=1e-5) and hi == pytest.approx(0.763407, abs=1e-5)
    lo, hi = stats.wilson_ci(0, 10)
    z2 = 1.959964**2
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(z2 / (10 + z2), abs=1e-5)
    lo90, hi90 = stats.wilson_ci(5, 10, confidence=0.90)
    assert 0.2366 < lo90 < hi90 < 0.7634
    assert all(math.isnan(v) for v in stats.wilson_ci(0, 0))
    with pytest.raises(ValueError, match="between 0 and n"):
        stats.wilson_ci(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        stats.wilson_ci(5, 10, confidence=95)


def test_accuracy_ci_is_wilson_and_never_collapses():
    acc, lo, hi = stats.accuracy_ci([True] * 30 + [False] * 10)
    assert acc == 0.75 and (lo, hi) == stats.wilson_ci(30, 40)
    acc, lo, hi = stats.accuracy_ci(np.ones(20, bool))  # a percentile bootstrap would give [1, 1] here
    assert acc == 1.0 and hi == pytest.approx(1.0) and lo < 0.9
    assert all(math.isnan(v) for v in stats.accuracy_ci([]))


def test_probes_reexports_accuracy_ci():
    from course_utils import probes

    assert probes.accuracy_ci is stats.accuracy_ci


# ---------------------------------------------------------------- bootstrap intervals


def test_mean_ci_width_and_determinism():
    v = np.random.default_rng(0).normal(3.0, 2.0, size=400)
    m, lo, hi = stats.mean_ci(v)
    assert m == pytest.approx(v.mean()) and lo < m < hi
    se = v.std(ddof=1) / np.sqrt(v.size)
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert stats.mean_ci(v) == (m, lo, hi)  # same seed, same interval
    assert stats.mean_ci(v, seed=1) != (m, lo, hi)
    _, blo, bhi = stats.mean_ci(v, method="BCa")
    assert blo < m < bhi
    with pytest.raises(ValueError, match="at least 2"):
        stats.mean_ci([1.0])


def test_mean_diff_ci_resamples_each_group():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 150), rng.normal(0.0, 2.0, 60)
    d, lo, hi = stats.mean_diff_ci(a, b)
    assert d == pytest.approx(a.mean() - b.mean()) and lo < d < hi
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_correlation_intervals():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    y = 0.6 * x + 0.8 * rng.normal(size=200)
    r, lo, hi = stats.corr_ci(x, y)
    assert r == pytest.approx(pearsonr(x, y)[0]) and lo < r < hi
    fr, flo, fhi = stats.pearson_ci(x, y)
    ci = pearsonr(x, y).confidence_interval()
    assert fr == pytest.approx(r) and (flo, fhi) == pytest.approx((ci.low, ci.high))
    assert lo == pytest.approx(flo, abs=0.05) and hi == pytest.approx(fhi, abs=0.05)  # bootstrap ~ Fisher at n=200
    rho, slo, shi = stats.spearman_ci(x, y)
    assert rho == pytest.approx(spearmanr(x, y)[0]) and slo < rho < shi
    assert stats.corr_ci(x, -y)[0] == pytest.approx(-r)
    with pytest.raises(ValueError, match="pearson"):
        stats.corr_ci(x, y, method="kendall")


# ---------------------------------------------------------------- slopes


def test_slope_on_exact_lines():
    x = np.array([-0.1, 0.0, 0.1, 0.3])
    assert stats.slope(x, 3 * x - 2) == pytest.approx(3.0)
    y = np.stack([a * x + b for a, b in [(1.0, 0.0), (-2.0, 5.0), (0.5, -1.0)]])
    assert stats.slopes(x, y) == pytest.approx([1.0, -2.0, 0.5])
    noisy = x**2 + x
    assert stats.slope(x, noisy) == pytest.approx(np.polyfit(x, noisy, 1)[0])
    assert math.isnan(stats.slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def _loop_grouped_slope_ci(df: pd.DataFrame, n_boot: int, seed: int) -> tuple[float, float]:
    """The straightforward cluster bootstrap: draw scenarios with replacement, stack their rows, refit."""
    groups = [(g.strength.to_numpy(), g.cheat_logodds.to_numpy()) for _, g in df.groupby("scenario_id")]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        x = np.concatenate([groups[i][0] for i in pick])
        y = np.concatenate([groups[i][1] for i in pick])
        boots.append(np.polyfit(x, y, 1)[0])
    return float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def _unbalanced_df(seed: int = 0) -> pd.DataFrame:
    """Scenarios with different numbers of rows, strengths and slopes (so weighting mistakes would show)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(25):
        strengths = rng.choice([-0.2, -0.1, 0.0, 0.1, 0.2, 0.4], size=rng.integers(2, 6), replace=False)
        b = 1.0 + rng.normal(0, 2.0)
        rows += [
            {"scenario_id": f"s{i:02d}", "strength": s, "cheat_logodds": b * s + rng.normal(0, 0.3) + i * 0.05} for s in strengths
        ]
    return pd.DataFrame(rows)


def test_grouped_slope_ci_agrees_with_a_loop():
    df = _unbalanced_df()
    b, lo, hi = stats.grouped_slope_ci(df, "strength", "cheat_logodds", "scenario_id", n_boot=4000, seed=0)
    assert b == pytest.approx(np.polyfit(df.strength, df.cheat_logodds, 1)[0])
    llo, lhi = _loop_grouped_slope_ci(df, n_boot=4000, seed=123)
    width = lhi - llo
    assert width > 0.5  # a real interval, not a degenerate one
    # Monte-Carlo error of a 2.5% quantile with 4000 draws is ~1% of the width; allow ~4 standard errors.
    assert abs(lo - llo) < 0.06 * width and abs(hi - lhi) < 0.06 * width, ((lo, hi), (llo, lhi))
    assert stats.grouped_slope_ci(df, "strength", "cheat_logodds", "scenario_id", n_boot=500, seed=3) == stats.grouped_slope_ci(
        df, "strength", "cheat_logodds", "scenario_id", n_boot=500, seed=3
    )


def test_grouped_slope_ci_on_an_exact_line_has_zero_width():
    rows = [{"g": i, "x": s, "y": 2 * s + 0.1 * i} for i in range(5) for s in (-0.1, 0.0, 0.1)]
    b, lo, hi = stats.grouped_slope_ci(pd.DataFrame(rows), "x", "y", "g", n_boot=300)
    assert (b, lo, hi) == pytest.approx((2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="n_boot"):
        stats.grouped_slope_ci(pd.DataFrame(rows), "x", "y", "g", n_boot=0)


def test_cheating_slope_wrappers():
    from course_utils.cheating import slope, slope_ci

    df = _unbalanced_df(1)
    assert slope(df) == pytest.approx(stats.slope(df.strength, df.cheat_logodds))
    assert slope_ci(df, n_boot=300, seed=4) == stats.grouped_slope_ci(
        df, "strength", "cheat_logodds", "scenario_id", n_boot=300, seed=4
    )


# ---------------------------------------------------------------- nulls


def test_permutation_null_of_fixed_points():
    labels = np.arange(10)
    res = stats.permutation_null(lambda p: np.mean(p == labels), labels, n_resamples=1000, seed=0)
    assert res.statistic == 1.0 and res.null.shape == (1000,)
    assert res.null.mean() == pytest.approx(0.1, abs=0.02)  # a random permutation fixes 1 of 10 on average
    assert res.pvalue == pytest.approx(1 / 1001)  # only the identity reaches 1.0; scipy counts the observed draw
    vec = stats.permutation_null(lambda p: np.mean(p == labels, axis=-1), labels, 1000, seed=0, vectorized=True)
    assert np.array_equal(vec.null, res.null)
    assert not np.array_equal(stats.permutation_null(lambda p: np.mean(p == labels), labels, 1000, seed=1).null, res.null)
    names = np.array(list("abcdefgh"))
    low = stats.permutation_null(lambda p: np.mean(p == names), names, 500, alternative="less")
    assert low.pvalue == pytest.approx(1.0)
    small = stats.permutation_null(lambda p: float(p[0]), np.arange(4), n_resamples=1000)
    assert small.null.shape == (24,)  # 4! <= n_resamples: every ordering exactly once
    with pytest.raises(ValueError, match="1-D"):
        stats.permutation_null(np.mean, [1.0])


def test_percentile_in_null_counts_strictly_below():
    null = [1.0, 2.0, 3.0, 4.0]
    assert stats.percentile_in_null(3.0, null) == 0.5
    assert stats.percentile_in_null(3.5, null) == 0.75
    assert stats.percentile_in_null(0.0, null) == 0.0 and stats.percentile_in_null(9.0, null) == 1.0
    with pytest.raises(ValueError, match="empty"):
        stats.percentile_in_null(1.0, [])


def test_null_band_is_the_central_quantiles():
    null = np.arange(1001.0)
    assert stats.null_band(null) == pytest.approx((25.0, 975.0))
    assert stats.null_band(null, 0.9) == pytest.approx((50.0, 950.0))
    shuffled = np.random.default_rng(0).permutation(null)
    assert stats.null_band(shuffled) == stats.null_band(null)
    with pytest.raises(ValueError, match="confidence"):
        stats.null_band(null, 1.5)


# ---------------------------------------------------------------- PCA


def test_pca_matches_numpy_svd_up_to_sign():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 6)) @ rng.normal(size=(6, 6)) + 5.0
    scores, ratio, comps = stats.pca(X, 3)
    Xc = X - X.mean(0)
    _, s, vh = np.linalg.svd(Xc, full_matrices=False)
    assert ratio == pytest.approx((s**2 / (s**2).sum())[:3])
    signs = np.sign((comps * vh[:3]).sum(1))
    assert np.all(np.abs(signs) == 1)
    assert comps * signs[:, None] == pytest.approx(vh[:3], abs=1e-8)
    assert scores * signs == pytest.approx(Xc @ vh[:3].T, abs=1e-8)
    with pytest.raises(ValueError, match="n_samples, n_features"):
        stats.pca(np.ones(5), 1)


def test_stats_imports_no_torch_or_sklearn():
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('course_stats', {stats.__file__!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "bad = [n for n in ('torch', 'sklearn', 'nnsight') if n in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
@pytest.mark.parametrize("k", [100, 1_000, 10_000])
@pytest.mark.parametrize("law", ["normal", "t3"])
def test_rank_test_holds_its_level_with_exchangeable_draws(k, law, alternative):
    """An effect drawn from the same law as its null is called distinguishable at most 5% of the time."""
    from course_utils.stats import LEVEL, rank_test

    rng = np.random.default_rng(k)
    n_sim = 2_000 if k <= 1_000 else 400
    draw = (lambda size: rng.standard_normal(size)) if law == "normal" else (lambda size: rng.standard_t(3, size))
    rejections = [rank_test(x[0], x[1:], alternative=alternative).distinguishable for x in draw((n_sim, k + 1))]
    rate, se = np.mean(rejections), np.sqrt(LEVEL * (1 - LEVEL) / n_sim)
    assert rate <= LEVEL + 3 * se, f"false-positive rate {rate:.3f} with k={k} ({law})"
    assert rate >= LEVEL - 4 * se  # and the test is not trivially conservative (it can reject at all)


def test_rank_test_p_is_exact_and_small_nulls_are_refused():
    from course_utils.stats import rank_test

    null = np.arange(-50, 50) + 0.5  # 100 draws symmetric about 0
    t = rank_test(49.0, null)  # |null| >= 49 for the two end draws: r = 2 -> p = 3 / 101
    assert t.p == pytest.approx(3 / 101) and t.k == 100 and t.distinguishable
    t = rank_test(47.0, null)  # six draws at least as extreme: p = 7 / 101 > 0.05
    assert t.p == pytest.approx(7 / 101) and not t.distinguishable
    assert rank_test(1e6, null).p == pytest.approx(1 / 101) and rank_test(1e6, null).distinguishable
    assert rank_test(-1e6, null).z < 0  # two-sided: a large negative effect is as extreme
    assert rank_test(-49.0, null, alternative="greater").p == pytest.approx(100 / 101)  # one-sided: low is not extreme
    assert rank_test(49.0, null, alternative="greater").p == pytest.approx(2 / 101)
    with pytest.raises(ValueError, match="alternative='less'"):
        rank_test(1.0, null, alternative="less")
    with pytest.raises(ValueError, match="at least min_null=100"):
        rank_test(1.0, np.r_[null[:5], -null[:5]])  # 10 draws, mirrored or not, cannot hold 5%
