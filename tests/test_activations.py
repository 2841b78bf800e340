"""course_utils.activations: equal to transformers, padding-proof, cached, deterministic, clear errors."""

from __future__ import annotations

import time

import pytest
import torch

from course_utils import chat, extract_activations
from course_utils.activations import last_token, masked_mean

TEXTS = [
    "The kettle clicked off and she poured the water slowly over the leaves.",
    "A short one, with a few words.",
    "He checked the timetable twice, then a third time, and the train was still not listed anywhere at all.",
]
# Float32 on CPU; batching with padding changes summation order only. Values reach ~2e4 on the first
# token, so we compare with a relative tolerance of 1e-4 plus an absolute 1e-3.
RTOL, ATOL = 1e-4, 1e-3


def test_nnsight_matches_output_hidden_states(model, tmp_cache):
    acts = extract_activations(model, TEXTS[:1], reduce="none", cache=False)[0]  # [t, L, d]
    enc = model.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        hidden = model._module(**enc, output_hidden_states=True).hidden_states
    for layer in range(model.n_layers - 1):  # hidden_states[-1] has the final norm applied
        torch.testing.assert_close(acts[:, layer], hidden[layer + 1][0], rtol=RTOL, atol=ATOL)


def test_alone_equals_inside_padded_batch(model, tmp_cache):
    batch_mean = extract_activations(model, TEXTS, cache=False, skip_first=1)
    batch_last = extract_activations(model, TEXTS, reduce="last", cache=False)
    for i, text in enumerate(TEXTS):
        torch.testing.assert_close(
            extract_activations(model, [text], cache=False, skip_first=1)[0], batch_mean[i], rtol=RTOL, atol=ATOL
        )
        torch.testing.assert_close(
            extract_activations(model, [text], reduce="last", cache=False)[0], batch_last[i], rtol=RTOL, atol=ATOL
        )


def test_shapes_and_layer_subset(model, tmp_cache):
    acts = extract_activations(model, TEXTS, layers=[3, 20], cache=False)
    assert acts.shape == (3, 2, model.d_model)
    full = extract_activations(model, TEXTS, cache=False)
    assert full.shape == (3, model.n_layers, model.d_model)
    torch.testing.assert_close(acts, full[:, [3, 20]], rtol=RTOL, atol=ATOL)


def test_mean_leaves_out_the_first_token(model, tmp_cache):
    per_token = extract_activations(model, TEXTS[:1], reduce="none", layers=[20], cache=False)[0][:, 0]
    mean = extract_activations(model, TEXTS[:1], layers=[20], skip_first=3, cache=False)[0, 0]
    torch.testing.assert_close(mean, per_token[3:].mean(0), rtol=RTOL, atol=ATOL)
    assert per_token[0].norm() > 30 * per_token[3:].norm(dim=-1).median()  # the first-token outlier


def test_chat_prompt_last_token_is_assistant_start(model, tmp_cache):
    prompt = chat(model, "My dog has been missing for three days.")
    last = extract_activations(model, [prompt], reduce="last", layers=[10], cache=False)
    per_token = extract_activations(model, [prompt], reduce="none", layers=[10], cache=False)[0]
    torch.testing.assert_close(last[0, 0], per_token[-1, 0])


def test_cache_returns_identical_tensors_and_is_fast(model, tmp_cache, capsys):
    t0 = time.perf_counter()
    first = extract_activations(model, TEXTS)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = extract_activations(model, TEXTS)
    warm = time.perf_counter() - t0
    assert torch.equal(first, second)
    assert len(list(tmp_cache.glob("activations/*.safetensors"))) == 1
    with capsys.disabled():
        print(f"\n[cache] cold {cold:.3f} s, warm {warm:.4f} s ({cold / max(warm, 1e-9):.0f}x faster)")


def test_cache_per_token(model, tmp_cache):
    first = extract_activations(model, TEXTS, reduce="none", layers=[5])
    second = extract_activations(model, TEXTS, reduce="none", layers=[5])
    assert [a.shape[0] for a in first] == [len(model.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_corrupted_cache_is_detected_and_rebuilt(model, tmp_cache):
    good = extract_activations(model, TEXTS, layers=[2])
    path = next(tmp_cache.glob("activations/*.safetensors"))
    raw = bytearray(path.read_bytes())
    raw[-8:] = b"\x00\xff" * 4  # flip the last bytes of tensor data
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum"):
        again = extract_activations(model, TEXTS, layers=[2])
    torch.testing.assert_close(again, good)
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        extract_activations(model, TEXTS, layers=[2])


def test_two_fresh_runs_are_identical(model, tmp_cache):
    a = extract_activations(model, TEXTS, cache=False)
    b = extract_activations(model, TEXTS, cache=False)
    assert torch.equal(a, b)


def test_error_paths(model):
    with pytest.raises(ValueError, match="empty"):
        extract_activations(model, [])
    with pytest.raises(ValueError, match=r"reduce='max' is not allowed: use one of \('mean', 'last', 'none', 'norm'\)"):
        extract_activations(model, TEXTS, reduce="max")
    with pytest.raises(TypeError, match="list of strings"):
        extract_activations(model, "one string")
    with pytest.raises(ValueError, match=r"layers=.*0..29"):
        extract_activations(model, TEXTS, layers=[30])
    with pytest.raises(ValueError, match=r"texts\[1\] has only"):
        extract_activations(model, ["long enough text here", "Hi"], skip_first=3, cache=False)


def test_reducers_on_known_tensors():
    acts = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    assert masked_mean(acts, mask, 1)[:, 0].tolist() == [2.0, 7.0]  # row 1 keeps only position 3
    assert last_token(acts, mask)[:, 0].tolist() == [3.0, 7.0]


def test_tiny_random_model_works_too(tiny_model, tmp_cache):
    acts = extract_activations(tiny_model, TEXTS, cache=False)
    assert acts.shape == (3, 4, 64) and torch.isfinite(acts).all()


def test_token_budget_batches_cap_rows_and_padded_tokens():
    from course_utils.activations import token_budget_batches

    lengths = [10, 10, 20, 30, 300, 900, 1000]  # ascending, with a long tail
    batches = token_budget_batches(lengths, batch_size=3, budget=1000)
    assert [i for b in batches for i in b] == list(range(7))  # every text once, in order
    assert all(len(b) <= 3 and len(b) * lengths[b[-1]] <= 1000 or len(b) == 1 for b in batches)
    assert batches == [[0, 1, 2], [3, 4], [5], [6]]  # 2 rows x 300 fit in 1000 tokens; 900 + 1000 would not
    assert token_budget_batches([5] * 10, batch_size=4, budget=10**6) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
