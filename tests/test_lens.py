"""GPU-memory behaviour of the library on big models, checked on tiny ones: the logit lens without a float32 copy
of the unembedding, the bounded prefix memo keyed by the model object, and generation that decodes exactly as asked."""

from __future__ import annotations

import gc

import pytest
import torch

import course_utils.lens as lens
import course_utils.scoring as scoring
import course_utils.steering as steering
from course_utils.models import CourseModel, tokenize

PROMPTS = ["The train was late again and", "She opened the envelope"]
CONTS = [" everyone sighed.", " slowly, then read it twice."]


def _bf16(tiny_model: CourseModel) -> CourseModel:
    """The tiny random Llama in bfloat16 (a copy: the session fixture stays float32)."""
    import copy

    m = CourseModel(copy.deepcopy(tiny_model._module).to(torch.bfloat16), tokenizer=tiny_model.tokenizer)
    m.course_id = tiny_model.course_id + "-bf16"
    return m


def test_the_lens_never_upcasts_the_whole_unembedding(tiny_model, monkeypatch):
    """Summed in float32 CHUNK_ROWS rows at a time: equal to the full float32 product, with no vocab-sized copy."""
    m = _bf16(tiny_model)
    v = torch.randn(3, m.d_model, generator=torch.Generator().manual_seed(0))
    w_u = m.unembed.weight
    with torch.no_grad():
        shown = (m.final_norm(v.to(torch.bfloat16)) - m.final_norm(torch.zeros(3, m.d_model, dtype=torch.bfloat16))).float()
    want = shown @ w_u.float().T  # the old way: one float32 copy of the whole unembedding
    upcast: list[int] = []
    real = torch.Tensor.float

    def recording(self, *args, **kwargs):
        upcast.append(self.numel())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lens, "CHUNK_ROWS", 5000)
    monkeypatch.setattr(torch.Tensor, "float", recording)
    got = lens.direction_logits(m, v)
    monkeypatch.undo()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert max(upcast) <= 5000 * m.d_model < w_u.numel()  # never more than one chunk of rows in float32
    assert lens.direction_logits(m, v[1]).shape == (w_u.shape[0],)
    assert lens.top_token_ids(m, v, k=4).tolist() == want.topk(4, dim=-1).indices.tolist()


def test_the_prefix_memo_is_bounded_by_bytes(tiny_model, monkeypatch):
    monkeypatch.setattr(scoring, "_PREFIXES", type(scoring._PREFIXES)())
    delta = torch.randn(tiny_model.d_model)
    one = tokenize(tiny_model, [PROMPTS[0] + CONTS[0]])
    size = scoring._unsteered_prefix(tiny_model, one, 1).numel() * 4
    monkeypatch.setattr(scoring, "PREFIX_CACHE_BYTES", int(2.5 * size))
    scoring._PREFIXES.clear()
    for i in range(6):
        texts = [f"{p} {i}" for p in PROMPTS]
        scoring.continuation_logprobs(tiny_model, texts, CONTS, delta=delta, layer=1, batch_size=1, cache=False)
        assert scoring._prefix_bytes() <= scoring.PREFIX_CACHE_BYTES
    assert len(scoring._PREFIXES[tiny_model]) >= 1


def test_the_prefix_memo_dies_with_its_model_and_never_aliases(tiny_model, monkeypatch):
    """Keyed by the model object (weakly): a deleted model's streams are freed, a new model sees none of them."""
    monkeypatch.setattr(scoring, "_PREFIXES", type(scoring._PREFIXES)())
    enc = tokenize(tiny_model, PROMPTS)
    other = CourseModel(tiny_model._module, tokenizer=tiny_model.tokenizer)
    other.course_id = tiny_model.course_id  # same model_key: an id()- or key-based memo would hand it the same entry
    first = scoring._unsteered_prefix(other, enc, 2)
    assert len(scoring._PREFIXES) == 1
    del other
    gc.collect()
    assert len(scoring._PREFIXES) == 0  # freed with the model
    again = CourseModel(tiny_model._module, tokenizer=tiny_model.tokenizer)
    again.course_id = tiny_model.course_id
    assert scoring._unsteered_prefix(again, enc, 2) is not first


def _greedy_by_hand(m: CourseModel, prompt: str, n: int) -> list[int]:
    """Plain argmax decoding with the bare module: what greedy means."""
    ids = m.tokenizer(prompt, return_tensors="pt")["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(m._module(input_ids=ids).logits[0, -1].argmax())
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return new


def test_greedy_ignores_the_models_own_generation_config(tiny_model, monkeypatch):
    """A generation_config.json with sampling, a repetition penalty, n-gram blocking and beams changes nothing."""
    cfg = tiny_model._module.generation_config
    for k, v in dict(do_sample=True, top_k=3, top_p=0.5, temperature=0.3, repetition_penalty=5.0, no_repeat_ngram_size=1).items():
        monkeypatch.setattr(cfg, k, v)
    monkeypatch.setattr(cfg, "eos_token_id", None)
    prompt = "Once upon a time there was"
    new = steering._generate(tiny_model, [prompt], None, None, 12, False, 1.0, 0)
    assert new[0].tolist() == _greedy_by_hand(tiny_model, prompt, 12)


def test_checks_pass_on_a_bfloat16_model(tiny_model):
    """The exercise checks' own tolerances hold in bfloat16: the reference answers pass them."""
    from course_utils import checks, solutions

    m = _bf16(tiny_model)
    assert checks.check_residual_after(solutions.residual_after, m) is solutions.residual_after
    assert checks.check_steered_logits(solutions.steered_logits, m) is solutions.steered_logits


@pytest.mark.parametrize("seed", [1, 2])
def test_sampling_is_plain_temperature_sampling_and_seeded(tiny_model, seed):
    a = steering._generate(tiny_model, PROMPTS, None, None, 6, True, 1.3, seed)
    assert torch.equal(a, steering._generate(tiny_model, PROMPTS, None, None, 6, True, 1.3, seed))


def test_check_tolerances_follow_the_dtype():
    """A correct answer summed in another order passes in bfloat16; the same gap in float32 is a real difference."""
    from course_utils import checks

    x = torch.randn(64, 576, generator=torch.Generator().manual_seed(0))
    a = x.to(torch.bfloat16).mean(0)
    b = torch.zeros(576, dtype=torch.bfloat16)
    for row in x.to(torch.bfloat16):  # the same mean, summed one row at a time, rounding to bfloat16 at each step
        b = b + row
    b = b / 64
    assert (a.float() - b.float()).abs().max() > 1e-3  # bf16 rounding: far above the float32 tolerance
    assert checks._same(a, b)
    assert not checks._same(a.float(), b.float())
    assert not checks._same(a, x[1:].to(torch.bfloat16).mean(0) * 1.5)  # a wrong answer is still wrong in bf16
    assert checks.tolerance(torch.zeros(1)) == 1e-4 and checks.tolerance(torch.zeros(1, dtype=torch.float16)) == 4e-3
