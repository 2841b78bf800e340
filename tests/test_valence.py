"""course_utils.valence: an independent lexicon without any emotion word, and the expected valence of what a
steered model would say (exact, and its derivative at strength 0)."""

from __future__ import annotations

import pytest
import torch

from course_utils import valence
from course_utils.data import _entry_tokens, load_emotions
from course_utils.steering import median_token_norm, random_direction

PROMPTS = ["The report is finished. My view of it:", "We moved the meeting to Tuesday. Honestly,"]
CONT = " I think it is a"


def test_no_forbidden_word_of_any_emotion_is_left_in_the_lexicon():
    lex = valence.lexicon()
    emotions = load_emotions()
    every = {w for name, entries in zip(emotions.emotion, emotions.forbidden) for e in [name, *entries] for w in _entry_tokens(e)}
    assert len(emotions) >= 60 and {"happy", "afraid", "calm", "ease", "joyous"} <= every
    assert not every & set(lex), sorted(every & set(lex))[:10]
    full = valence.lexicon(drop_emotion_words=False)
    assert len(every & set(full)) > 50  # the removal did something: VADER has many of them
    assert lex["good"] > 0 > lex["terrible"] and len(lex) > 5000  # ordinary evaluative words stay
    assert all(w.isalpha() and w.islower() for w in lex)


def test_token_valences_read_words_not_emotion_names(model):
    values = valence.token_valences(model)
    assert values.shape == (len(model.tokenizer),)
    tid = lambda w: model.tokenizer(w, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert values[tid(" good")[0]] > 0 > values[tid(" terrible")[0]]
    for word in (" happy", " sad", " afraid", " calm", " angry"):
        ids = tid(word)
        assert len(ids) == 1 and values[ids[0]] == 0, word


def test_expected_valence_by_hand_and_at_strength_zero(model):
    got = valence.expected_valence(model, PROMPTS, CONT, cache=False)
    values = valence.token_valences(model)
    want = []
    for p in PROMPTS:
        ids = model.tokenizer(p + CONT, return_tensors="pt")["input_ids"]
        n = len(model.tokenizer(CONT, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logits = model._module(ids).logits[0, -n - 1 : -1].float()
        want.append(float((logits.softmax(-1) @ values).sum()))
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-3, rtol=1e-3)
    d = random_direction(model.d_model, 0)
    zero = valence.expected_valence(model, PROMPTS, CONT, d, layer=20, strength=0.0, cache=False)
    assert torch.equal(zero, got)
    steered = valence.expected_valence(model, PROMPTS, CONT, d, layer=20, strength=0.5, cache=False)
    assert (steered - got).abs().max() > 1e-3  # steering moves it


def test_the_derivative_equals_a_finite_difference(model):
    layer, h = 20, 1e-2
    grads = valence.valence_gradients(model, PROMPTS, CONT, layer=layer, cache=False)
    assert grads.shape == (2, model.d_model)
    d = random_direction(model.d_model, 1)
    ev = lambda s: valence.expected_valence(model, PROMPTS, CONT, d, layer=layer, strength=s, cache=False)  # noqa: E731
    fd = (ev(h) - ev(-h)) / (2 * h)
    got = median_token_norm(model, layer) * grads @ (d / d.norm())
    torch.testing.assert_close(got, fd, atol=3e-3 * max(1.0, float(fd.abs().max())), rtol=0.02)


def test_bad_arguments_are_named(model):
    with pytest.raises(TypeError, match="list of strings"):
        valence.expected_valence(model, "one prompt", CONT)
    with pytest.raises(ValueError, match="continuation="):
        valence.expected_valence(model, PROMPTS, "  ")
    with pytest.raises(ValueError, match="layer is required"):
        valence.expected_valence(model, PROMPTS, CONT, random_direction(model.d_model, 0))


def test_text_valence_is_the_mean_over_lexicon_words_only():
    lex = valence.lexicon()
    assert valence.text_valence("a good day") == pytest.approx(lex["good"])
    assert valence.text_valence("good and terrible") == pytest.approx((lex["good"] + lex["terrible"]) / 2)
    assert valence.text_valence("I am so happy and proud") == 0.0  # emotion words are not read back
    assert valence.text_valence("") == 0.0


@pytest.mark.parametrize("which", ["tiny_model"])  # the mechanics; the notebook test runs the real model
def test_conditions_in_shared_batches_equal_one_at_a_time(which, request, tmp_cache):
    """expected_valence_each: the same numbers as one expected_valence call per condition, in the same cache entries."""
    m = request.getfixturevalue(which)
    layer = m.n_layers // 2
    dirs = [random_direction(m.d_model, s) for s in (1, 1, 2, 3)]
    strengths = [0.3, -0.3, 0.0, 0.5]
    prompts = [*PROMPTS, "Lunch is at noon; the room is booked. So", PROMPTS[0]]
    alone = torch.stack(
        [
            valence.expected_valence(m, prompts, CONT, d, layer=layer, strength=s, batch_size=2, cache=False)
            for d, s in zip(dirs, strengths)
        ]
    )
    got = valence.expected_valence_each(m, prompts, CONT, dirs, strengths, layer=layer, batch_size=2)
    assert (got - alone).abs().max() <= 1e-5, float((got - alone).abs().max())
    files = set(tmp_cache.joinpath("valence").iterdir())
    assert len(files) == 4  # one entry per condition; strength 0 is the unsteered entry
    again = torch.stack(
        [valence.expected_valence(m, prompts, CONT, d, layer=layer, strength=s, batch_size=2) for d, s in zip(dirs, strengths)]
    )
    assert torch.equal(again, got) and set(tmp_cache.joinpath("valence").iterdir()) == files  # read back, not recomputed
