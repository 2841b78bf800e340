"""course_utils.probes: layer sweep, shuffled control, Wilson intervals, bag-of-words baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from course_utils.probes import accuracy_ci, bag_of_words_baseline, probe_by_layer, shuffled_null


def _toy(n_per=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = np.array(["a", "b"] * n_per)
    acts = torch.randn(len(y), 3, 6, generator=g)
    acts[:, 2, 0] += torch.tensor([3.0 if c == "a" else -3.0 for c in y])  # only layer 2 carries the label
    return acts, y


def test_probe_finds_the_informative_layer_and_shuffled_does_not():
    acts, y = _toy()
    test_acts, ty = _toy(seed=1)
    df = probe_by_layer(acts, y, test_acts, ty)
    assert df.set_index("layer").accuracy.idxmax() == 2 and df.accuracy.max() > 0.9
    shuffled = probe_by_layer(acts, y, test_acts, ty, layers=[2], shuffle_seed=0)
    assert shuffled.accuracy.iloc[0] < 0.8
    assert (df.ci_low <= df.accuracy).all() and (df.accuracy <= df.ci_high).all()


def test_probe_tables_are_cached_exactly_and_keyed_by_labels(tmp_cache, monkeypatch):
    from course_utils import probes

    acts, y = _toy()
    test_acts, ty = _toy(seed=1)
    first = probe_by_layer(acts, y, test_acts, ty)
    with monkeypatch.context() as m:
        m.setattr(probes, "Parallel", lambda **k: pytest.fail("refitted instead of reading the cache"))
        pd.testing.assert_frame_equal(probe_by_layer(acts, y, test_acts, ty), first)  # read back, nothing refitted
    assert len(list((tmp_cache / "probes").glob("*"))) == 1
    probe_by_layer(acts, y[::-1].copy(), test_acts, ty, layers=[2], cache=False)
    assert probe_by_layer(acts, y, test_acts, ty, layers=[2], shuffle_seed=0) is not None
    assert len(list((tmp_cache / "probes").glob("*"))) == 2  # the shuffled labels are another request


def test_shuffled_null_equals_the_exercise_answer_and_is_cached(tmp_cache, monkeypatch):
    """Notebook 03 takes its verdict's null from shuffled_null: it must be exactly the answer's draws, read back."""
    from course_utils import probes
    from course_utils.solutions import shuffled_accuracies

    acts, y = _toy(n_per=10)
    test_acts, ty = _toy(n_per=10, seed=1)
    args = (acts[:, 2], y, test_acts[:, 2], ty)
    got = shuffled_null(*args, 6, seed=3)
    assert np.ptp(got) > 0  # every shuffle is a new order
    with monkeypatch.context() as m:
        m.setattr(probes, "Parallel", lambda **k: pytest.fail("refitted instead of reading the cache"))
        np.testing.assert_array_equal(shuffled_null(*args, 6, seed=3), got)
    np.testing.assert_array_equal(shuffled_null(*args, 8, seed=3)[:6], got)  # more shuffles extend the same sequence
    assert len(list((tmp_cache / "probes").glob("*"))) == 2  # one file per null (its probes are not stored one by one)
    np.testing.assert_array_equal(got, shuffled_accuracies(*args, 6, seed=3))


@pytest.mark.parametrize("labels", ["str", "object", "int"])
def test_fit_probe_rebuilt_from_the_cache_is_the_fitted_probe(tmp_cache, monkeypatch, labels):
    """A cached probe predicts exactly what a fresh fit does (labels, probabilities, classes and their dtype)."""
    from course_utils import cache as cache_module
    from course_utils import probes
    from course_utils.probes import fit_probe

    acts, y = _toy(n_per=15)
    y = np.where(np.arange(len(y)) % 3 == 0, "c", y)  # three classes
    y = {"str": list(y), "object": y.astype(object), "int": np.unique(y, return_inverse=True)[1] * 10 - 5}[labels]
    X, Xt = acts[:, 2].numpy(), _toy(n_per=15, seed=1)[0][:, 2].numpy()
    fresh = fit_probe(X, y, cache=False)
    first = fit_probe(X, y)
    with monkeypatch.context() as m:
        m.setattr(probes.LogisticRegression, "fit", lambda *a, **k: pytest.fail("refitted instead of reading the cache"))
        again = fit_probe(X, y)
        cache_module._MEMO.clear()  # read back from the file itself
        from_disk = fit_probe(X, y)
    for p in (first, again, from_disk):
        np.testing.assert_array_equal(p.predict(Xt), fresh.predict(Xt))
        np.testing.assert_array_equal(p.predict_proba(Xt), fresh.predict_proba(Xt))
        np.testing.assert_array_equal(p[-1].classes_, fresh[-1].classes_)
        assert p[-1].classes_.dtype == fresh[-1].classes_.dtype
    assert len(list((tmp_cache / "probes").glob("*"))) == 1
    fit_probe(X, y, C=0.1)  # another C is another probe
    assert len(list((tmp_cache / "probes").glob("*"))) == 2


def test_shuffled_null_argument_errors():
    acts, y = _toy()
    with pytest.raises(ValueError, match="n_shuffles must be a positive integer"):
        shuffled_null(acts[:, 2], y, acts[:, 2], y, 0)
    with pytest.raises(ValueError, match=r"\[n_texts, d_model\]"):
        shuffled_null(acts, y, acts, y, 3)
    with pytest.raises(ValueError, match="one entry per text"):
        shuffled_null(acts[:, 2], y[:-1], acts[:, 2], y, 3)


def test_probe_argument_errors():
    acts, y = _toy()
    with pytest.raises(ValueError, match=r"\[n_texts, n_layers, d_model\]"):
        probe_by_layer(acts[:, 0], y, acts[:, 0], y)
    with pytest.raises(ValueError, match="one entry per text"):
        probe_by_layer(acts, y[:-1], acts, y)


def test_accuracy_ci_brackets_the_mean():
    acc, lo, hi = accuracy_ci([True] * 30 + [False] * 10)
    assert acc == 0.75 and lo < 0.75 < hi and 0.55 < lo and hi < 0.9
    assert (lo, hi) == pytest.approx((0.59806, 0.85813), abs=1e-4)  # Wilson score interval for 30/40


def test_bag_of_words_baseline_is_above_chance_and_fixed():
    acc, chance = bag_of_words_baseline("core")
    assert chance == pytest.approx(1 / 12)
    assert acc > 3 * chance
    assert bag_of_words_baseline("core")[0] == acc
