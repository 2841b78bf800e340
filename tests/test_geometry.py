"""course_utils.geometry: the words-only twin of the emotion vectors and the RSA that compares geometries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.geometry import (
    partial_rsa,
    rating_distance,
    rsa,
    similarity_matrix,
    spearman_brown,
    split_half_vectors,
    tfidf_centroids,
)


def test_similarity_matrix_is_cosine():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    m = similarity_matrix(v)
    np.testing.assert_allclose(np.diag(m), 1.0)
    assert m[0, 1] == pytest.approx(0.0) and m[0, 2] == pytest.approx(2**-0.5)


def test_tfidf_centroids_are_centred_means_in_name_order():
    texts = ["rain rain grey", "rain grey cold", "sun warm bright", "sun bright beach", "sun rain"]
    labels = ["sad", "sad", "happy", "happy", "sad"]
    c = tfidf_centroids(texts, labels, ["happy", "sad"])
    assert c.shape[0] == 2 and np.allclose(c.sum(0), 0)
    assert similarity_matrix(c)[0, 1] == pytest.approx(-1.0)  # two centred rows point opposite ways
    with pytest.raises(ValueError, match=r"no texts for \['calm'\]"):
        tfidf_centroids(texts, labels, ["happy", "calm"])


def test_rsa_finds_a_shared_geometry_and_not_an_unrelated_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6))
    a = similarity_matrix(x)
    noisy = similarity_matrix(x + 0.2 * rng.normal(size=x.shape))
    unrelated = similarity_matrix(rng.normal(size=(12, 6)))
    r, lo, hi, p = rsa(a, noisy, n_resamples=300)
    assert r > 0.8 and lo > 0.5 and hi <= 1.0 and p < 0.01
    r0, lo0, hi0, p0 = rsa(a, unrelated, n_resamples=300)
    assert abs(r0) < 0.4 and lo0 < 0 < hi0 and p0 > 0.05
    with pytest.raises(ValueError, match="two square matrices"):
        rsa(a, a[:5, :5])


def test_rating_distance_is_the_absolute_difference():
    d = rating_distance([0.1, 0.5, 0.9])
    np.testing.assert_allclose(d, [[0, 0.4, 0.8], [0.4, 0, 0.4], [0.8, 0.4, 0]])
    with pytest.raises(ValueError, match="NaN"):
        rating_distance([0.1, np.nan])


def _ratings_world(weight: float, n: int = 24, seed: int = 0):
    """A target similarity = -weight * |valence difference| + a nuisance geometry + noise."""
    rng = np.random.default_rng(seed)
    val = rng.uniform(size=n)
    nuisance = similarity_matrix(rng.normal(size=(n, 5)))
    noise = rng.normal(scale=0.3, size=(n, n))
    target = -weight * rating_distance(val) + nuisance + (noise + noise.T) / 2
    return target, {"valence": rating_distance(val)}, {"words": nuisance}


def test_partial_rsa_finds_what_ratings_add_beyond_the_nuisance_geometry():
    target, tested, nuisance = _ratings_world(weight=1.0)
    res = partial_rsa(target, tested, nuisance, n_resamples=200)
    assert res.p < 0.01 and res.delta_r2 > 0.05 and 0 < res.r2 <= 1
    b = res.table.loc["valence"]
    assert b.beta < 0 and b.high < 0  # further apart in valence -> less similar
    assert res.table.loc["words"].low > 0 and list(res.table.index) == ["valence", "words"]


def test_partial_rsa_gives_no_credit_to_ratings_the_target_does_not_follow():
    target, tested, nuisance = _ratings_world(weight=0.0)
    res = partial_rsa(target, tested, nuisance, n_resamples=200)
    assert res.p > 0.05 and res.table.loc["valence"].low < 0 < res.table.loc["valence"].high
    assert res.null.shape == (200,) and (res.null >= 0).all()  # adding predictors never lowers R^2


def test_partial_rsa_controls_for_the_nuisance_geometry():
    """Ratings that only look related because the target follows a nuisance geometry that tracks them are not credited."""
    rng = np.random.default_rng(3)
    val = rng.uniform(size=24)
    words = -rating_distance(val) + 0.3 * rng.normal(size=(24, 24))
    words = (words + words.T) / 2
    target = words + 0.1 * rng.normal(size=(24, 24))
    target = (target + target.T) / 2
    assert rsa(target, -rating_distance(val), n_resamples=100)[3] < 0.05  # alone, valence "tracks" the target
    res = partial_rsa(target, {"valence": rating_distance(val)}, {"words": words}, n_resamples=200)
    assert res.delta_r2 < 0.02 and res.p > 0.05


def test_partial_rsa_refuses_bad_input():
    target, tested, nuisance = _ratings_world(weight=1.0)
    with pytest.raises(ValueError, match="square matrices of one size"):
        partial_rsa(target, {"valence": tested["valence"][:5, :5]}, nuisance)
    with pytest.raises(ValueError, match="at least one tested and one nuisance"):
        partial_rsa(target, tested, {})


def test_spearman_brown():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.0) == 0.0 and spearman_brown(1.0) == pytest.approx(1.0)
    np.testing.assert_allclose(spearman_brown(np.array([0.5, 0.8])), [2 / 3, 1.6 / 1.8])
    with pytest.raises(ValueError, match="factor"):
        spearman_brown(0.5, factor=0)


def test_split_half_vectors_use_disjoint_halves_of_each_emotion():
    labels = np.array(["a"] * 6 + ["b"] * 4 + ["c"] * 5)
    acts = torch.eye(len(labels) + 1)[: len(labels)]  # story i is the unit vector e_i: a mean shows which stories it used
    comps = torch.eye(len(labels) + 1)[-1:]  # a direction no story has
    a, b = split_half_vectors(acts, labels, ["a", "b", "c"], comps, seed=1)
    assert a.shape == b.shape == (3, len(labels) + 1)
    torch.testing.assert_close(a.sum(0), torch.zeros(len(labels) + 1))  # centred over emotions
    used_a, used_b = (v.abs().sum(0)[:-1] > 1e-6 for v in (a, b))
    assert not (used_a & used_b).any() and (used_a | used_b).all()  # disjoint halves covering every story
    for rows in (slice(0, 6), slice(6, 10), slice(10, 15)):  # each emotion split into halves of floor and ceil size
        size = len(range(15)[rows])
        assert sorted([int(used_a[rows].sum()), int(used_b[rows].sum())]) == [size // 2, size - size // 2]
    assert torch.equal(split_half_vectors(acts, labels, ["a", "b", "c"], comps, seed=1)[0], a)
    assert not torch.equal(split_half_vectors(acts, labels, ["a", "b", "c"], comps, seed=2)[0], a)
    with pytest.raises(ValueError, match="'d' has 1 stories"):
        split_half_vectors(torch.cat([acts, acts[:1]]), np.append(labels, "d"), ["a", "b", "c", "d"], comps)
