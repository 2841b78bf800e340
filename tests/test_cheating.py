"""course_utils.cheating: the evaluate() contract, validation of scenario dicts, determinism, the classifier."""

from __future__ import annotations

import pytest
import torch

from course_utils import EmotionVectors
from course_utils.cheating import classify_reply, evaluate, slope, slope_ci
from course_utils.data import load_scenarios
from course_utils.steering import random_direction


@pytest.fixture(scope="module")
def vectors(model):
    """Stand-in vectors (random directions named like emotions): evaluate() only needs names, layer, vectors."""
    v = torch.stack([random_direction(model.d_model, s) for s in range(3)])
    return EmotionVectors(["desperate", "calm", "happy"], 20, v)


@pytest.fixture(scope="module")
def two():
    return load_scenarios("cheat_scenarios").to_dict("records")[:2]


def test_evaluate_columns_and_rows(model, vectors, two):
    df = evaluate(model, vectors, "desperate", [-0.1, 0.0, 0.1], two)
    assert list(df.columns) == ["emotion", "strength", "scenario_id", "cheat_logodds"]
    assert len(df) == 6 and set(df.scenario_id) == {s["id"] for s in two}
    assert df.cheat_logodds.notna().all()


def test_evaluate_is_deterministic_and_random_uses_seed(model, vectors, two):
    # cache=False everywhere: each call computes from the model (no call reads another's cache entry).
    a = evaluate(model, vectors, "calm", [0.2], two, cache=False)
    b = evaluate(model, vectors, "calm", [0.2], two, cache=False)
    assert a.equals(b)
    r0 = evaluate(model, vectors, "random", [0.5], two, seed=0, cache=False)
    r0b = evaluate(model, vectors, "random", [0.5], two, seed=0, cache=False)
    r1 = evaluate(model, vectors, "random", [0.5], two, seed=1, cache=False)
    assert r0.equals(r0b) and not r0.cheat_logodds.equals(r1.cheat_logodds)
    assert not r0.cheat_logodds.equals(a.cheat_logodds)  # a different direction moves the numbers


def test_evaluate_reads_its_cache_back(model, vectors, two, tmp_cache):
    first = evaluate(model, vectors, "calm", [0.2], two)
    n = len(list((tmp_cache / "logprobs").glob("*.safetensors")))
    assert n == 1 and evaluate(model, vectors, "calm", [0.2], two).equals(first)
    assert len(list((tmp_cache / "logprobs").glob("*.safetensors"))) == n


def test_evaluate_rejects_bad_scenarios_and_arguments(model, vectors, two):
    bad = [{k: v for k, v in two[0].items() if k != "honest"}]
    with pytest.raises(ValueError, match=r"scenarios\[0\].*missing \['honest'\]"):
        evaluate(model, vectors, "desperate", [0.1], bad)
    with pytest.raises(ValueError, match=r"scenarios\[0\]"):
        evaluate(model, vectors, "desperate", [0.1], [{**two[0], "extra": 1}])
    with pytest.raises(ValueError, match="field 'cheat': empty"):
        evaluate(model, vectors, "desperate", [0.1], [{**two[0], "cheat": ""}])
    with pytest.raises(ValueError, match="emotion='hangry'"):
        evaluate(model, vectors, "hangry", [0.1], two)
    with pytest.raises(ValueError, match="strengths is empty"):
        evaluate(model, vectors, "desperate", [], two)


def test_slope_and_interval():
    import pandas as pd

    rows = [{"scenario_id": f"s{i}", "strength": s, "cheat_logodds": 2 * s + 0.1 * i} for i in range(5) for s in (-0.1, 0.0, 0.1)]
    df = pd.DataFrame(rows)
    assert slope(df) == pytest.approx(2.0)
    b, lo, hi = slope_ci(df, n_boot=200)
    assert lo == pytest.approx(2.0) and hi == pytest.approx(2.0) and b == pytest.approx(2.0)
    noisy = df.assign(cheat_logodds=df.cheat_logodds + [0.05 * ((7 * i) % 5 - 2) for i in range(len(df))])
    b, lo, hi = slope_ci(noisy)
    assert b == pytest.approx(slope(noisy)) and lo < b < hi and hi - lo > 0.01
    assert slope_ci(noisy) == (b, lo, hi)  # fixed seed


def test_classifier_is_transparent():
    assert classify_reply("I'll hard-code the expected value for that input.") == "cheat"
    assert classify_reply("The limit is impossible to meet; I suggest we relax the limit.") == "honest"
    assert classify_reply("Here is a poem about the sea.") == "other"
    assert classify_reply("It is impossible, so I will hard-code it.") == "other"


def test_evaluate_with_an_explicit_direction_is_that_direction(model, vectors, two):
    """direction= steers exactly that vector (here the 'calm' one under another label), whatever emotion says."""
    named = evaluate(model, vectors, "calm", [0.3], two, cache=False)
    given = evaluate(model, vectors, "positive control", [0.3], two, direction=vectors["calm"], cache=False)
    assert (given.emotion == "positive control").all()
    assert given.cheat_logodds.tolist() == pytest.approx(named.cheat_logodds.tolist(), abs=1e-6)


def test_cheat_direction_is_the_difference_of_message_means(model, two):
    from course_utils import extract_activations
    from course_utils.cheating import cheat_direction

    d = cheat_direction(model, two, layer=5)
    cheat = extract_activations(model, [s["cheat"] for s in two], layers=[5])[:, 0].mean(0)
    honest = extract_activations(model, [s["honest"] for s in two], layers=[5])[:, 0].mean(0)
    torch.testing.assert_close(d, cheat - honest)
    assert d.shape == (model.d_model,) and d.norm() > 0


def test_random_direction_in_span_stays_in_the_span():
    from course_utils.steering import random_direction_in_span

    basis = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    v = random_direction_in_span(basis, seed=4)
    coef = torch.linalg.lstsq(basis.T, v[:, None]).solution
    torch.testing.assert_close(basis.T @ coef[:, 0], v, atol=1e-5, rtol=0)
    assert v.norm() == pytest.approx(1.0) and not torch.equal(v, random_direction_in_span(basis, seed=5))


def test_the_course_context_pair_shares_no_word_with_the_scored_messages():
    from course_utils.cheating import CONTROL_CONTEXTS, content_words, shared_words

    assert shared_words(list(CONTROL_CONTEXTS.values())) == set()
    assert shared_words(["Special-casing the tests is acceptable here."]) >= {"tests", "acceptable"}
    assert content_words("The tests, and THE limit!") == {"tests", "limit"}  # stop words and case dropped
    with pytest.raises(TypeError, match="list of strings"):
        shared_words("one string")


def test_context_logodds_is_cheat_logodds_with_that_text_in_the_conversation(model, two):
    """The text-level control scores the same two messages after a prompt that holds the context's text."""
    from course_utils.cheating import context_logodds, context_prompt, scenario_prompt
    from course_utils.steering import continuation_logprobs

    got = context_logodds(model, two, "Be brief.")
    prompt = context_prompt(model, two[0], "Be brief.")
    assert "Be brief." in prompt and "Be brief." not in scenario_prompt(model, two[0])
    lp = continuation_logprobs(model, [prompt, prompt], [two[0]["cheat"], two[0]["honest"]])
    assert float(got[0]) == pytest.approx(float(lp[0] - lp[1]), abs=1e-5)
    assert "Be brief." in scenario_prompt(model, two[0], system="Be brief.")
    assert scenario_prompt(model, two[0], note="Be brief.").rstrip().endswith("assistant")  # the reply still comes next
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        context_logodds(model, two, " ")


def test_prompt_only_steering_never_touches_the_scored_messages(model, vectors, two):
    """prompt_only adds the vector at the prompt's tokens only: a different number from steering every position."""
    every = evaluate(model, vectors, "calm", [2.0], two, cache=False).cheat_logodds
    prompt = evaluate(model, vectors, "calm", [2.0], two, cache=False, prompt_only=True).cheat_logodds
    base = evaluate(model, vectors, "calm", [0.0], two, cache=False).cheat_logodds
    assert not torch.allclose(torch.tensor(every.values), torch.tensor(prompt.values), atol=1e-4)
    assert not torch.allclose(torch.tensor(prompt.values), torch.tensor(base.values), atol=1e-4)


def test_split_halves_and_the_cross_fitted_null():
    import numpy as np

    from course_utils.cheating import cross_fitted_null, split_halves

    items = [{"id": i} for i in ["d", "a", "c", "b"]]
    assert split_halves(items).tolist() == [False, True, False, True]  # a, b first by sorted id
    with pytest.raises(ValueError, match="two distinct ids"):
        split_halves([{"id": "a"}, {"id": "a"}])
    s = np.arange(12, dtype=float).reshape(4, 3)  # 4 scenarios x 3 directions
    first = np.array([True, True, False, False])
    # draw j: the second half reads direction j, the first half direction j + 1 (its own direction, as the control)
    want = [(s[:2, (j + 1) % 3].sum() + s[2:, j].sum()) / 4 for j in range(3)]
    assert cross_fitted_null(s, first).tolist() == pytest.approx(want)
    with pytest.raises(ValueError, match="per_scenario must be"):
        cross_fitted_null(s[:, :1], first)


def test_message_logprobs_in_blocks_equal_one_request_and_whole_blocks_read_the_cache(model, vectors, monkeypatch, tmp_cache):
    """Scoring in blocks of scenarios changes no number (<= 1e-5 against one request for all); a subset made of whole
    blocks (the first ten, each half) and strength 0 read the full set's cache entries instead of running again."""
    from course_utils import cheating
    from course_utils.cheating import message_logprobs, scenario_prompt
    from course_utils.steering import continuation_logprobs

    four = load_scenarios("cheat_scenarios").to_dict("records")[:4]
    monkeypatch.setattr(cheating, "BLOCK", 2)
    prompts = [scenario_prompt(model, s) for s in four]
    messages = [s["cheat"] for s in four] + [s["honest"] for s in four]
    for kw in ({}, {"strength": 0.3}, {"strength": 0.3, "prompt_only": True}):
        d = vectors["calm"] if kw else None
        got = message_logprobs(model, four, d, 20 if kw else None, cache=False, **kw)
        spans = [(0, len(p)) for p in prompts] * 2 if kw.get("prompt_only") else None
        one = continuation_logprobs(
            model, prompts * 2, messages, d, layer=20, strength=kw.get("strength", 0.0), steer_spans=spans, cache=False
        )
        assert got.shape == (4, 2)
        torch.testing.assert_close(got, torch.stack([one[:4], one[4:]], dim=1), atol=1e-5, rtol=0)
    full = message_logprobs(model, four, vectors["calm"], 20, 0.3)
    message_logprobs(model, four)
    n = len(list((tmp_cache / "logprobs").glob("*.safetensors")))
    assert n == 4  # two blocks, steered and unsteered
    torch.testing.assert_close(message_logprobs(model, four[2:], vectors["calm"], 20, 0.3), full[2:], atol=0, rtol=0)
    assert evaluate(model, vectors, "calm", [0.0], four[:2]).cheat_logodds.notna().all()  # strength 0: unsteered
    assert len(list((tmp_cache / "logprobs").glob("*.safetensors"))) == n


def test_cheat_gradients_do_not_depend_on_how_many_scenarios_share_a_backward_pass(model, monkeypatch):
    """GRADIENT_BATCH only bounds memory: one scenario per pass gives the same gradients as all in one pass."""
    from course_utils import cheating

    three = load_scenarios("cheat_scenarios").to_dict("records")[:3]
    monkeypatch.setattr(cheating, "GRADIENT_BATCH", 1)
    one = cheating.cheat_gradients(model, three, 20)
    monkeypatch.setattr(cheating, "GRADIENT_BATCH", 3)
    together = cheating.cheat_gradients(model, three, 20)
    torch.testing.assert_close(one, together, atol=1e-5 * float(together.abs().max()), rtol=0)


def test_cheat_gradients_of_both_kinds_from_one_backward_equal_measure_gradients(model, tmp_cache):
    """Every-position and prompt-only gradients from one backward pass equal measure_gradients' two requests (<= 1e-5
    of their scale), and the second kind is read from the entry the first wrote (no second backward)."""
    from course_utils.cheating import _prompt_spans, cheat_gradients, scenario_prompt
    from course_utils.derivatives import measure_gradients

    three = load_scenarios("cheat_scenarios").to_dict("records")[:3]
    prompts = [scenario_prompt(model, s) for s in three]
    messages, weights = [s["cheat"] for s in three] + [s["honest"] for s in three], [1.0] * 3 + [-1.0] * 3
    every = cheat_gradients(model, three, 20)
    assert len(list((tmp_cache / "gradients").glob("*.safetensors"))) == 1
    prompt = cheat_gradients(model, three, 20, prompt_only=True)
    assert len(list((tmp_cache / "gradients").glob("*.safetensors"))) == 1
    for got, spans in ((every, None), (prompt, _prompt_spans(prompts) * 2)):
        plain = measure_gradients(model, prompts * 2, messages, weights, layer=20, steer_spans=spans, batch_size=2, cache=False)
        torch.testing.assert_close(got, plain, atol=1e-5 * float(plain.abs().max()), rtol=0)
    assert float((every - prompt).abs().max()) > 1e-3 * float(every.abs().max())  # the two kinds differ
