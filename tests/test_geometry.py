"""course_utils.geometry: the words-only twin of the emotion vectors and the RSA that compares geometries."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.geometry import rsa, similarity_matrix, tfidf_centroids


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
