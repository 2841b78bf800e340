"""course_utils.steering: exact no-op at strength 0, exact edit at the chosen layer, generation, log-probs."""

from __future__ import annotations

import nnsight
import numpy as np
import pytest
import torch

from course_utils import chat
from course_utils.steering import (
    continuation_logprobs,
    generate,
    median_token_norm,
    perplexity,
    random_direction,
    steering_vector,
)

PROMPTS = ["The train was late again and", "She opened the envelope slowly, then"]
CONTS = [" everyone sighed at the board.", " read the first line twice."]


def test_median_norm_excludes_the_first_token(model):
    norm = median_token_norm(model, 20)
    assert 100 < norm < 1000  # the first token's ~2e4 norm would dominate a mean, not the median
    assert median_token_norm(model, 20) == norm  # cached


def test_steering_vector_is_scaled_to_the_median_norm(model):
    d = random_direction(model.d_model, 0)
    assert d.norm() == pytest.approx(1.0)
    v = steering_vector(model, 5 * d, 20, 0.1)
    assert v.norm() == pytest.approx(0.1 * median_token_norm(model, 20), rel=1e-5)
    with pytest.raises(ValueError, match="d_model"):
        steering_vector(model, torch.ones(3), 20, 0.1)
    with pytest.raises(ValueError, match="zero vector"):
        steering_vector(model, torch.zeros(model.d_model), 20, 0.1)


def test_strength_zero_equals_unsteered_exactly(model):
    d = random_direction(model.d_model, 1)
    plain = continuation_logprobs(model, PROMPTS, CONTS, cache=False)
    assert torch.equal(
        continuation_logprobs(model, PROMPTS, CONTS, d, layer=12, strength=0.0, reuse_prefix=False, cache=False), plain
    )
    assert torch.equal(continuation_logprobs(model, PROMPTS, CONTS, d, layer=12, strength=0.0, cache=False), plain)
    prompt = chat(model, "Name a fruit.")
    assert generate(model, prompt, d, layer=12, strength=0.0, max_new_tokens=8, cache=False) == generate(
        model, prompt, max_new_tokens=8, cache=False
    )


def test_edit_changes_the_stream_by_exactly_the_vector(model):
    layer, d = 12, random_direction(model.d_model, 2)
    delta = steering_vector(model, d, layer, 0.5)
    with torch.no_grad(), model.trace(PROMPTS[0]):
        before = nnsight.save(model.layer(layer).output.clone())
        model.layer(layer).output[:] = model.layer(layer).output + delta
        after = nnsight.save(model.layer(layer + 1).input)  # what the next layer receives
    torch.testing.assert_close(after - before, delta.expand_as(before), rtol=0, atol=1e-3)


def test_prefix_reuse_is_exact_and_steering_moves_logprobs(model):
    d = random_direction(model.d_model, 3)
    full = continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=0.5, reuse_prefix=False, cache=False)
    reused = continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=0.5, cache=False)
    torch.testing.assert_close(full, reused, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(full, continuation_logprobs(model, PROMPTS, CONTS, cache=False))


def test_logprobs_match_a_plain_forward(model):
    lp = continuation_logprobs(model, PROMPTS, CONTS, reduce="sum", cache=False)
    for i, (p, c) in enumerate(zip(PROMPTS, CONTS)):
        p_ids, c_ids = model.tokenizer(p)["input_ids"], model.tokenizer(c, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model._module(torch.tensor([p_ids + c_ids])).logits[0].float().log_softmax(-1)
        ref = sum(logits[len(p_ids) - 1 + j, t] for j, t in enumerate(c_ids))
        assert lp[i].item() == pytest.approx(ref.item(), abs=1e-3)


def test_shared_prompts_are_packed_without_changing_the_numbers(model):
    # Continuations of one prompt share a row (a 4-D mask keeps them apart): same numbers as one at a time.
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0]]
    conts = [CONTS[0], CONTS[1], " nobody noticed.", CONTS[1]]
    d = random_direction(model.d_model, 5)
    for kwargs in ({}, {"direction": d, "layer": 20, "strength": 0.3}):
        packed = continuation_logprobs(model, prompts, conts, cache=False, **kwargs)
        alone = torch.cat([continuation_logprobs(model, [p], [c], cache=False, **kwargs) for p, c in zip(prompts, conts)])
        torch.testing.assert_close(packed, alone, rtol=0, atol=1e-4)
    assert packed[0] != packed[3]  # same prompt, different continuation: different numbers, in the input order


def test_disk_cache_reads_back_and_rebuilds_corrupted_files(model, tmp_cache, monkeypatch):
    import course_utils.scoring as scoring
    import course_utils.steering as steering

    d = random_direction(model.d_model, 6)
    first = continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=0.2)
    reply = generate(model, PROMPTS[0], d, layer=20, strength=0.2, max_new_tokens=6)
    files = sorted((tmp_cache / "logprobs").glob("*.safetensors"))
    assert len(files) == 1 and len(list((tmp_cache / "generations").glob("*.safetensors"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although an intact cache file exists")

    with monkeypatch.context() as m:
        m.setattr(scoring, "_compute", fail)
        m.setattr(steering, "_generate", fail)
        assert torch.equal(continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=0.2), first)
        assert generate(model, PROMPTS[0], d, layer=20, strength=0.2, max_new_tokens=6) == reply
    other = continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=-0.2)  # another vector: another entry
    assert not torch.equal(other, first)
    raw = bytearray(files[0].read_bytes())
    raw[-3] ^= 0xFF  # flip bits inside the stored numbers
    files[0].write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum"):
        again = continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=0.2)
    assert torch.equal(again, first)
    # Edited computing code has another code version: old entries are not read for it.
    monkeypatch.setattr(scoring, "CODE_VERSION", "edited-code")
    with monkeypatch.context() as m:
        m.setattr(scoring, "_compute", fail)
        with pytest.raises(AssertionError, match="recomputed"):
            continuation_logprobs(model, PROMPTS, CONTS, d, layer=20, strength=0.2)


def test_strong_steering_hurts_fluency(model):
    texts = ["The committee met on Tuesday to review the budget for the new library building."]
    d = random_direction(model.d_model, 4)
    assert perplexity(model, texts, d, layer=20, strength=2.0) > 1.5 * perplexity(model, texts)


def test_argument_errors(model):
    d = random_direction(model.d_model, 0)
    with pytest.raises(ValueError, match="same length"):
        continuation_logprobs(model, PROMPTS, CONTS[:1])
    with pytest.raises(ValueError, match="layer is required"):
        continuation_logprobs(model, PROMPTS, CONTS, d)
    with pytest.raises(ValueError, match="reduce="):
        continuation_logprobs(model, PROMPTS, CONTS, reduce="max")
    with pytest.raises(IndexError, match="0..29"):
        median_token_norm(model, 31)


def test_next_token_logprobs_match_a_plain_forward_and_are_cached(model, tmp_cache):
    from course_utils.scoring import next_token_logprobs

    ids = [model.tokenizer(" happy", add_special_tokens=False)["input_ids"][0], 11]
    lp = next_token_logprobs(model, PROMPTS, ids)
    for i, p in enumerate(PROMPTS):
        with torch.no_grad():
            logits = model._module(torch.tensor([model.tokenizer(p)["input_ids"]])).logits[0, -1].float()
        torch.testing.assert_close(lp[i], logits.log_softmax(-1)[ids], atol=1e-3, rtol=0)
    assert list((tmp_cache / "logprobs").glob("*")), "the result is cached"
    torch.testing.assert_close(next_token_logprobs(model, PROMPTS, ids), lp, atol=0, rtol=0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        next_token_logprobs(model, PROMPTS, [10**9])


def test_fluency_rule_stops_at_the_first_direction_over_the_limit(capsys):
    from course_utils.steering import fluency_safe_strength

    tried = []

    def drops(c):
        for d in [0.1, 0.9, 0.2] if c == 1.0 else [0.1, 0.2, 0.3]:
            tried.append((c, d))
            yield d

    assert fluency_safe_strength([1.0, 0.5], drops, max_drop=0.5) == 0.5
    assert tried == [(1.0, 0.1), (1.0, 0.9), (0.5, 0.1), (0.5, 0.2), (0.5, 0.3)]  # 1.0's third direction is skipped
    out = capsys.readouterr().out
    assert "strength 1.0: drop 0.900 > 0.500 at direction 2 (the rest not needed)" in out
    assert "strength 0.5: largest drop 0.300" in out


def test_fluency_safe_strength_is_the_largest_passing_candidate(capsys):
    from course_utils.steering import fluency_safe_strength

    drops = {1.0: 0.9, 0.5: 0.4, 0.25: 0.1}
    tried = []

    def drop(c):
        tried.append(c)
        return drops[c]

    assert fluency_safe_strength([0.25, 1.0, 0.5], drop, max_drop=0.5) == 0.5
    assert tried == [1.0, 0.5]  # from the largest down, stopping at the first that passes
    assert "strength 1.0: largest drop 0.900" in capsys.readouterr().out
    assert fluency_safe_strength([1.0, 0.5], lambda c: 0.9, max_drop=0.5) == 0.5  # none passes: the smallest
    assert fluency_safe_strength([1.0, 0.5], lambda c: np.float32(c / 2), max_drop=0.3) == 0.5  # numpy numbers too
    assert fluency_safe_strength([1.0, 0.5], lambda c: torch.tensor(c / 2), max_drop=0.3) == 0.5
    assert "using the smallest, 0.5" in capsys.readouterr().out
    with pytest.raises(ValueError, match="candidates is empty"):
        fluency_safe_strength([], drop, max_drop=0.5)


def test_strength_zero_is_the_unsteered_request(model, tmp_cache):
    """Strength 0 of any direction (-0.0 components included) is one computation and one cache entry."""
    d = -random_direction(model.d_model, 4).abs()  # every component negative: 0.0 * d would be all -0.0
    v = steering_vector(model, d, 12, 0.0)
    assert not torch.signbit(v).any()  # +0.0 everywhere: the same bytes for every direction
    plain = continuation_logprobs(model, PROMPTS, CONTS)
    files = set(tmp_cache.joinpath("logprobs").iterdir())
    for seed in (5, 6):
        z = continuation_logprobs(model, PROMPTS, CONTS, random_direction(model.d_model, seed), layer=12, strength=0.0)
        assert torch.equal(z, plain)
    assert set(tmp_cache.joinpath("logprobs").iterdir()) == files  # no new entry: strength 0 read the unsteered one


def test_reference_corpus_is_read_once(model, monkeypatch):
    """median_token_norm's default corpus is memoised: a later call neither re-reads nor re-renders the data."""
    import course_utils.data as data

    median_token_norm(model, 20)
    calls = []
    real = data.load_stories
    monkeypatch.setattr(data, "load_stories", lambda *a, **k: calls.append(1) or real(*a, **k))
    for s in (0.1, 0.2, 0.3):
        steering_vector(model, random_direction(model.d_model, 0), 20, s)
    assert calls == []


@pytest.mark.parametrize("which", ["tiny_model", "model"])
def test_word_gradients_equal_one_word_at_a_time(which, request):
    """One forward pass for all one-token words (one backward each) gives measure_gradients' numbers for each word."""
    from course_utils.derivatives import measure_gradients
    from course_utils.steering import word_gradients

    m = request.getfixturevalue(which)
    prompts = [*PROMPTS, "He read the letter. How does he feel? He feels", PROMPTS[0]]  # a repeated prompt included
    words = [" calm", " happy", " everyone sighed"]  # a multi-token word included
    layer = m.n_layers // 2
    got = word_gradients(m, prompts, words, layer=layer, batch_size=2, cache=False)
    assert got.shape == (len(words), len(prompts), m.d_model)
    distinct = prompts[:3]  # measure_gradients sums a repeated prompt's rows; word_gradients gives each its own
    for w, word in enumerate(words):
        one = measure_gradients(m, distinct, [word] * 3, [1.0] * 3, layer=layer, reduce="sum", cache=False)
        gap = float((got[w, :3] - one).abs().max())
        assert gap <= 1e-5, (word, gap)
    assert torch.equal(got[:, 3], got[:, 0])
    with pytest.raises(ValueError, match="non-empty"):
        word_gradients(m, prompts, [], layer=layer)


@pytest.mark.parametrize("which", ["tiny_model"])  # the mechanics; the notebook test runs the real model
def test_generate_each_equals_one_condition_at_a_time(which, request, tmp_cache):
    """Conditions batched as rows give generate's texts and write the very entries generate reads back."""
    from course_utils.steering import generate_each

    m = request.getfixturevalue(which)
    prompt, layer = chat(m, "Tell me about your week."), m.n_layers // 2
    dirs = [None, random_direction(m.d_model, 1), random_direction(m.d_model, 1), random_direction(m.d_model, 2)]
    strengths = [0.0, 0.0, 0.3, -0.5]
    alone = [generate(m, prompt, d, layer=layer, strength=s, max_new_tokens=10, cache=False) for d, s in zip(dirs, strengths)]
    assert generate_each(m, prompt, dirs, strengths, layer=layer, max_new_tokens=10) == [a[0] for a in alone]
    assert len(set(tmp_cache.joinpath("generations").iterdir())) == 3  # strength 0 is one entry with the unsteered run
    assert [generate(m, prompt, d, layer=layer, strength=s, max_new_tokens=10) for d, s in zip(dirs, strengths)] == alone
    assert len(set(tmp_cache.joinpath("generations").iterdir())) == 3  # generate read the batched entries back


def test_sampled_rows_share_random_numbers_across_conditions(tiny_model):
    """06's sampled demonstration: with one seed, sample k of a batch gets the same random numbers in every condition."""
    prompt, d = chat(tiny_model, "Say something."), random_direction(tiny_model.d_model, 7)
    kw = dict(max_new_tokens=8, do_sample=True, seed=0, cache=False)
    plain = generate(tiny_model, [prompt] * 3, **kw)
    assert generate(tiny_model, [prompt] * 3, d, layer=2, strength=1e-6, **kw) == plain  # a push of ~nothing: same samples
    assert len(set(plain)) == 3  # the rows are different samples


def test_continuation_logprobs_each_equals_one_condition_at_a_time(tiny_model, tmp_cache, monkeypatch):
    """Conditions as extra rows of each batch (packed rows, chunked by the logits budget) give the one-call numbers."""
    import course_utils.steering as steering

    prompts = [p for p in PROMPTS for _ in range(3)]
    conts = [" calm", " happy", " read the first line twice."] * 2
    dirs = [random_direction(tiny_model.d_model, s) for s in (1, 1, 2, 3)]
    strengths = [0.4, -0.4, 0.0, 1.0]
    for budget in (steering.LOGITS_BYTES, 1):  # all conditions in one pass, then one per pass
        monkeypatch.setattr(steering, "LOGITS_BYTES", budget)
        got = steering.continuation_logprobs_each(tiny_model, prompts, conts, dirs, strengths, layer=2, reduce="sum", cache=False)
        alone = torch.stack(
            [
                continuation_logprobs(tiny_model, prompts, conts, d, layer=2, strength=s, reduce="sum", cache=False)
                for d, s in zip(dirs, strengths)
            ]
        )
        assert (got - alone).abs().max() <= 1e-5, float((got - alone).abs().max())
    cached_once = steering.continuation_logprobs_each(tiny_model, prompts, conts, dirs, strengths, layer=2, reduce="sum")
    monkeypatch.setattr(steering, "_logprobs_each", None)  # a warm call reads every entry back, computes nothing
    files = set(tmp_cache.joinpath("logprobs").iterdir())
    assert torch.equal(
        steering.continuation_logprobs_each(tiny_model, prompts, conts, dirs, strengths, layer=2, reduce="sum"), cached_once
    )
    assert set(tmp_cache.joinpath("logprobs").iterdir()) == files  # no new entry: nothing went the one-call way


def test_perplexity_each_equals_perplexity(tiny_model):
    """The fluency sweep's batched form gives each condition's own perplexity (strength 0 included)."""
    from course_utils.steering import perplexity_each

    texts = [PROMPTS[0] + CONTS[0], PROMPTS[1] + CONTS[1], "A short one."]
    dirs, strengths = [random_direction(tiny_model.d_model, s) for s in (1, 1, 2)], [0.0, 0.5, 1.0]
    got = perplexity_each(tiny_model, texts, dirs, strengths, layer=2)
    want = [perplexity(tiny_model, texts, d, layer=2, strength=s) for d, s in zip(dirs, strengths)]
    assert np.allclose(got, want, rtol=1e-5, atol=0), (got, want)
