"""course_utils.derivatives: the slope of a measure at strength 0 is N * g . d, exactly, and its null is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.derivatives import (
    agreement,
    measure_gradients,
    random_directions,
    slopes,
    sphere_slope_null,
    unit_rows,
)
from course_utils.steering import continuation_logprobs, median_token_norm, random_direction

PROMPTS = ["The tests still fail. My next step is", "The tests still fail. My next step is", "She read the note and"]
CONTS = [" to special-case the inputs.", " to explain that the limit is wrong.", " smiled at the window."]
WEIGHTS = [1.0, -1.0, 1.0]


def test_derivative_equals_a_finite_difference_on_the_bundled_model(model):
    layer = 20
    norm = median_token_norm(model, layer)
    grads = measure_gradients(model, PROMPTS, CONTS, WEIGHTS, layer=layer, cache=False)
    assert grads.shape == (2, model.d_model)  # one row per distinct prompt
    h = 1e-2
    for seed in (0, 1):
        d = random_direction(model.d_model, seed)

        def m(s: float, d: torch.Tensor = d) -> torch.Tensor:
            lp = continuation_logprobs(model, PROMPTS, CONTS, d, layer=layer, strength=s, cache=False)
            return torch.stack([lp[0] - lp[1], lp[2]])

        one, half = ((m(k) - m(-k)) / (2 * k) for k in (h, h / 2))
        fd = (4 * half - one) / 3  # central difference with one Richardson step
        got = slopes(grads, d, norm)[:, 0]
        torch.testing.assert_close(got, fd, atol=3e-3 * max(1.0, float(fd.abs().max())), rtol=0)
        assert float(fd.abs().max()) > 1e-2  # the measure does move: the comparison is not 0 == 0


def test_gradients_are_cached_and_validated(model, tmp_cache):
    a = measure_gradients(model, PROMPTS[:2], CONTS[:2], WEIGHTS[:2], layer=20)
    assert any(tmp_cache.joinpath("gradients").iterdir())
    assert torch.equal(measure_gradients(model, PROMPTS[:2], CONTS[:2], WEIGHTS[:2], layer=20), a)
    with pytest.raises(ValueError, match="same length"):
        measure_gradients(model, PROMPTS, CONTS, [1.0], layer=20)
    with pytest.raises(ValueError, match="reduce='max'"):
        measure_gradients(model, PROMPTS, CONTS, WEIGHTS, layer=20, reduce="max")
    with pytest.raises(IndexError, match="layer=99 is out of range"):
        measure_gradients(model, PROMPTS, CONTS, WEIGHTS, layer=99)


def test_slopes_are_linear_in_the_gradient_and_blind_to_direction_length():
    g = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    d = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    s = slopes(g, d, norm=2.0)
    assert s.shape == (3, 5)
    torch.testing.assert_close(s, slopes(g, 7 * d, norm=2.0))  # a direction's length does not matter
    torch.testing.assert_close(slopes(g, -d, 2.0), -s)  # the mirrored direction is the same number, negated
    torch.testing.assert_close(s[:, 0], 2.0 * g @ (d[0] / d[0].norm()))
    with pytest.raises(ValueError, match="zero vector"):
        unit_rows(torch.zeros(2, 16))


def test_random_directions_are_unit_seeded_and_match_the_sphere_law():
    d = random_directions(576, 10_000, seed=0)
    assert d.shape == (10_000, 576)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(10_000))
    assert torch.equal(d, random_directions(576, 10_000, seed=0))
    assert not torch.equal(d, random_directions(576, 10_000, seed=1))
    g = torch.randn(576, generator=torch.Generator().manual_seed(3))
    null = slopes(g[None], d, norm=150.0)[0].numpy()
    law = sphere_slope_null(g, norm=150.0)
    for q in (0.025, 0.5, 0.975):  # the empirical quantiles of 10,000 draws sit on the closed form's
        assert np.quantile(null, q) == pytest.approx(law.ppf(q), abs=0.04 * law.std())
    assert law.std() == pytest.approx(150.0 * float(g.norm()) / np.sqrt(576), rel=1e-3)


def test_agreement_reports_r_and_the_largest_error():
    a = agreement([0.1, 0.2, 0.3, 0.4], [0.1, 0.25, 0.3, 0.35])
    assert a["max_abs_error"] == pytest.approx(0.05) and 0.9 < a["r"] < 1 and a["n"] == 4
