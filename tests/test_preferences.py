"""course_utils.preferences: the pair design, both-orders symmetry, Bradley-Terry on known scores, and the
option-only steering edit (the exact edit itself is tested against a plain forward in test_architectures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import preferences as P

ACTS = ["go for a walk", "scrub the floor", "eat warm bread", "wait in a queue", "swim in a lake"]


def test_pair_design_gives_every_item_its_pairs_once():
    pairs = P.pair_design(20, 4, seed=1)
    assert pairs.shape == (40, 2)
    assert np.bincount(pairs.ravel(), minlength=20).tolist() == [4] * 20
    assert len({frozenset(p) for p in pairs.tolist()}) == 40 and (pairs[:, 0] != pairs[:, 1]).all()
    for half in (pairs[:20], pairs[20:]):  # each cycle (a split half) also holds every item twice
        assert np.bincount(half.ravel(), minlength=20).tolist() == [2] * 20


@pytest.mark.parametrize("n, per, message", [(10, 3, "even number"), (4, 4, "at least per_item")])
def test_pair_design_errors(n, per, message):
    with pytest.raises(ValueError, match=message):
        P.pair_design(n, per)


def test_bradley_terry_recovers_known_scores():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 1.5, 30)
    true -= true.mean()
    pairs = P.pair_design(30, 8, seed=0)
    fitted = P.bradley_terry(pairs, true[pairs[:, 0]] - true[pairs[:, 1]], 30, C=1e6)
    np.testing.assert_allclose(fitted, true, atol=1e-3)  # exact soft outcomes: the scores come back
    shrunk = P.bradley_terry(pairs, true[pairs[:, 0]] - true[pairs[:, 1]], 30)
    assert np.corrcoef(shrunk, true)[0, 1] > 0.99
    halves = P.split_half(pairs, true[pairs[:, 0]] - true[pairs[:, 1]], 30, 8)
    assert np.corrcoef(*halves)[0, 1] > 0.98 and P.spearman_brown(0.5) == pytest.approx(2 / 3)


def test_both_orders_cancel_the_position(model):
    pairs = np.array([[0, 1], [2, 3], [4, 0]])
    df = P.pair_logodds(model, ACTS, pairs)
    swapped = P.pair_logodds(model, ACTS, pairs[:, ::-1])
    np.testing.assert_allclose(swapped.preference, -df.preference, atol=1e-5)  # a over b = -(b over a)
    np.testing.assert_allclose(swapped.position_bias, df.position_bias, atol=1e-5)
    np.testing.assert_allclose(df.preference, (df.ab - df.ba) / 2)
    assert (df.letter_logprob < 0).all()


def test_choice_prompt_spans_point_at_the_options(model):
    prompt, sa, sb = P.choice_prompt(model, ACTS[0], ACTS[1])
    assert prompt[slice(*sa)] == ACTS[0] and prompt[slice(*sb)] == ACTS[1] and sa[1] < sb[0]


def test_option_steering_moves_only_through_the_steered_option(model):
    """Strength 0 is no change; steering a or b with the same vector moves a's preference differently."""
    pairs = np.array([[0, 1], [2, 3]])
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))
    base = P.pair_logodds(model, ACTS, pairs)
    zero = P.pair_logodds(model, ACTS, pairs, v, layer=10, strength=0.0)
    np.testing.assert_allclose(zero.preference, base.preference, atol=1e-4)
    on_a = P.pair_logodds(model, ACTS, pairs, v, layer=10, strength=2.0, steer="a")
    on_b = P.pair_logodds(model, ACTS, pairs, v, layer=10, strength=2.0, steer="b")
    assert np.abs(on_a.preference - on_b.preference).max() > 1e-3
    eff = P.steering_effect(base, on_a, P.pair_logodds(model, ACTS, pairs, v, layer=10, strength=-2.0))
    assert eff.shape == (2,) and np.isfinite(eff).all()
    with pytest.raises(ValueError, match="same pairs"):
        P.steering_effect(base, on_a.iloc[::-1], on_a)
    with pytest.raises(ValueError, match=r"steer='c': use one of \('a', 'b'\)"):
        P.pair_logodds(model, ACTS, pairs, v, layer=10, strength=1.0, steer="c")
    with pytest.raises(ValueError, match=r"pairs index items 0..4"):
        P.pair_logodds(model, ACTS, np.array([[0, 9]]))


def test_option_steering_replays_from_the_first_steered_token(model, monkeypatch):
    """Steering one option reruns only the columns after the system prompt and question all prompts share, on their
    unsteered keys and values (computed once, from one row): the same numbers as the full steered pass."""
    from course_utils import scoring
    from course_utils.steering import continuation_logprobs

    starts, past = [], scoring._unsteered_past
    monkeypatch.setattr(
        scoring,
        "_unsteered_past",
        lambda m, enc, start, shared=False: starts.append((start, shared)) or past(m, enc, start, shared),
    )
    pairs = np.array([[0, 1], [2, 3], [4, 0]])
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(1))
    for steer in ("a", "b"):
        prompts, spans, firsts, seconds, reduce = P._pair_prompts(model, ACTS, pairs, steer, "letters")
        args = (model, prompts + prompts, firsts + seconds, v)
        kw = dict(layer=10, strength=2.0, reduce=reduce, steer_spans=spans + spans, cache=False)
        full = continuation_logprobs(*args, reuse_prefix=False, **kw)
        replayed = continuation_logprobs(*args, **kw)
        assert (full - replayed).abs().max() <= 5e-5  # float32 noise (the plain path moves ~1e-5 with the batch size)
        assert (full - continuation_logprobs(*args[:3], cache=False, reduce=reduce)).abs().max() > 1e-3  # it steers
    assert starts and all(shared and start > 20 for start, shared in starts)  # after the shared prefix, at an option


def test_positive_control_direction_is_liked_minus_disliked():
    acts = torch.eye(4)
    d = P.positive_control_direction(acts, np.array([3.0, -1.0, 2.0, 0.0]), np.array([0, 1, 2, 3]))
    torch.testing.assert_close(d, torch.tensor([0.5, -0.5, 0.5, -0.5]))


@pytest.mark.parametrize("fmt", ["letters", "rather"])
def test_preference_gradient_is_the_slope_of_the_steered_preference(model, fmt):
    """N g . d equals the central difference of the steered option's preference (both orders, span-only steering)."""
    from course_utils.derivatives import slopes
    from course_utils.preferences import preference_gradients
    from course_utils.steering import median_token_norm, random_direction

    LAYER = 20
    acts = ["walk in the park", "clean the oven", "read a novel"]
    pairs = np.array([[0, 1], [2, 0]])
    grads = preference_gradients(model, acts, pairs, layer=LAYER, fmt=fmt)
    assert grads.shape == (2, model.d_model)
    d, h = random_direction(model.d_model, 3), 1e-2
    norm = median_token_norm(model, LAYER)

    def pref(s: float) -> np.ndarray:
        df = P.pair_logodds(model, acts, pairs, d, layer=LAYER, strength=s, fmt=fmt)
        return df.preference.to_numpy()

    one, half = ((pref(k) - pref(-k)) / (2 * k) for k in (h, h / 2))
    fd = (4 * half - one) / 3
    got = slopes(grads, d, norm)[:, 0].numpy()
    assert np.abs(fd).max() > 1e-3  # the steered preference does move
    np.testing.assert_allclose(got, fd, atol=3e-3 * max(1.0, np.abs(fd).max()))


def test_answer_formats_and_their_errors(model):
    from course_utils.preferences import FORMATS, answers, choice_prompt

    for fmt in FORMATS:
        p, sa, sb = choice_prompt(model, "walk in the park", "clean the oven", fmt)
        assert p[slice(*sa)] == "walk in the park" and p[slice(*sb)] == "clean the oven"
    assert choice_prompt(model, "x y", "z", "rather")[0].endswith("I would rather")
    assert answers("rather", "x y", "z") == (" x y", " z", "mean") and answers("numbers", "a", "b") == ("1", "2", "sum")
    with pytest.raises(ValueError, match="fmt='yesno': use one of"):
        choice_prompt(model, "a", "b", "yesno")


@pytest.mark.parametrize("n", [5, 40])
def test_spearman_permutation_null_is_the_loop_of_spearmanr(n):
    """07's permutation null: the same draws and the same rank-test count as the loop it replaces (ties included)."""
    from scipy.stats import spearmanr

    from course_utils.stats import rank_test

    g = np.random.default_rng(n)
    y = np.round(g.uniform(-1, 1, n), 1)  # valences with ties
    x = y + g.normal(0, 0.5, n)
    rng = np.random.default_rng(3)
    loop = np.array([spearmanr(x, rng.permutation(y))[0] for _ in range(2000)])
    got = P.spearman_permutation_null(x, y, 2000, seed=3)
    assert np.abs(got - loop).max() < 1e-12
    observed = spearmanr(x, y)[0]
    for alternative in ("two-sided", "greater"):
        assert rank_test(observed, got, alternative=alternative).p == rank_test(observed, loop, alternative=alternative).p
    # with 5 items many orders give the observed rho itself: those draws are scipy's own numbers, bit for bit
    same = np.isclose(np.abs(loop), abs(observed), atol=1e-9)
    np.testing.assert_array_equal(got[same], loop[same])
    with pytest.raises(ValueError, match="n_perm must be a positive integer"):
        P.spearman_permutation_null(x, y, 0)
    with pytest.raises(ValueError, match="same length"):
        P.spearman_permutation_null(x, y[:-1], 10)
