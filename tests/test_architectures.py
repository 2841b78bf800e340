"""The library's numbers on other architectures and dtypes, against plain Hugging Face forwards.

Tiny random models (hidden 64, the course tokenizer) of Llama, Qwen3, Gemma 2 (eager), GPT-2 (absolute
positions) and a 6-layer Llama, in float32 and bfloat16. Every reference is computed with the bare HF
module (`model._module`), one text at a time, with plain torch forward hooks for the steered case, so a
padding, packing, position-id, mask-dtype or norm-gain mistake in the library shows as a number.

Tolerances (library vs plain reference in the same dtype):
  float32: activations max |diff| <= 1e-5 x max |activation|, log-probabilities atol 1e-4;
  bfloat16: activations max |diff| <= 2e-2 x max |activation| (a few bf16 ulps: 8 mantissa bits, and a
  padded batch or a packed row sums in another order than a text alone), log-probabilities atol 0.25
  (about 1% of per-token means of ~-25 nats; logits of ~30 have a bf16 ulp of 0.125).
Run with `-s` to see the measured differences (a summary is printed at the end of the module).
The models run on COURSE_TEST_DEVICE (default cpu; scripts/gpu_check.sh sets cuda): the library and the plain
references run there, and every comparison is made on CPU copies, with the same tolerances.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

import course_utils.scoring as scoring
import course_utils.steering as steering
from course_utils.activations import extract_activations
from course_utils.derivatives import measure_gradients, random_directions, slopes
from course_utils.lens import direction_logits
from course_utils.models import CourseModel, tokenize, word_token_id
from course_utils.scoring import continuation_logprobs, packing_problem
from course_utils.vectors import default_layer

ARCHS = ("llama", "qwen3", "gemma2", "gpt2", "llama6")
DTYPES = ("fp32", "bf16")
TORCH_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16}
ACT_TOL = {"fp32": 1e-5, "bf16": 2e-2}  # max |diff| relative to the reference's max |value|
LP_TOL = {"fp32": dict(atol=1e-4, rtol=0), "bf16": dict(atol=2.5e-1, rtol=0)}

TEXTS = [
    "The cat sat on the warm mat by the kitchen door.",
    "Rain again, said the old man.",
    "She laughed, then looked away and said nothing more for a long while that evening.",
]
# The first two continuations share a prompt: they are packed into one row when packing is safe.
PROMPTS = ["The train was late again and", "The train was late again and", "She opened the envelope"]
CONTS = [" everyone sighed at the board.", " nobody said a word.", " slowly, then read the first line twice."]
GEN_PROMPTS = ["Once upon a time", "The weather in the mountains today is cold and"]
MEASURED: dict[str, float] = {}
DEVICE = torch.device(os.environ.get("COURSE_TEST_DEVICE", "cpu"))  # where the tiny models and the references run


def _measure(name: str, got: torch.Tensor, want: torch.Tensor) -> float:
    diff = float((got.float() - want.float()).abs().max())
    MEASURED[name] = max(diff, MEASURED.get(name, 0.0))
    print(f"{name}: max |diff| = {diff:.3g}")
    return diff


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    print("\n=== measured max |diff| (library vs plain HF, same dtype unless named) ===")
    for k in sorted(MEASURED):
        print(f"  {k:60s} {MEASURED[k]:.3g}")


@pytest.fixture(scope="module", autouse=True)
def _short_reference_texts():
    """steering_vector's median norm over a few short texts (the default corpus is 64 long ones): a faster suite."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(steering, "reference_texts", lambda model, n=32: TEXTS + CONTS)
        yield


# ----------------------------------------------------------------------------------------------- the factory


def _config(arch: str, vocab: int, pad_id: int, attn: str | None, over: dict):
    import transformers as tf

    common = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
    )
    if arch in ("llama", "llama6"):
        cfg = tf.LlamaConfig(num_hidden_layers=6 if arch == "llama6" else 4, **common)
    elif arch == "qwen3":
        cfg = tf.Qwen3Config(num_hidden_layers=4, head_dim=16, use_sliding_window=False, **common)
    elif arch == "gemma2":
        cfg = tf.Gemma2Config(num_hidden_layers=4, head_dim=16, **{**common, "num_attention_heads": 2, "num_key_value_heads": 1})
        attn = attn or "eager"  # Gemma 2's soft-capped attention: eager, as its model card asks
    elif arch == "mistral":
        cfg = tf.MistralConfig(num_hidden_layers=2, head_dim=16, **common)
    elif arch == "gpt2":
        cfg = tf.GPT2Config(
            vocab_size=vocab, n_embd=64, n_layer=4, n_head=4, n_positions=256, pad_token_id=pad_id, tie_word_embeddings=True
        )
    else:
        raise ValueError(arch)
    for k, v in over.items():
        setattr(cfg, k, v)
    cfg._attn_implementation = attn or "sdpa"
    return cfg


def _randomise(hf: torch.nn.Module, gemma: bool) -> None:
    """Weights big enough that attention is far from uniform, and norm gains that are clearly not 1."""
    with torch.no_grad():
        for mod in hf.modules():
            is_norm = "Norm" in type(mod).__name__
            for name, p in mod.named_parameters(recurse=False):
                if is_norm and name == "weight":
                    # Gemma 2 scales by (1 + weight): random non-zero weights, so a gain of `weight` would show.
                    p.copy_(0.5 * torch.randn_like(p) if gemma else 1 + 0.3 * torch.randn_like(p))
                elif p.dim() == 1:
                    p.normal_(0, 0.1)
                elif isinstance(mod, torch.nn.Embedding):
                    p.normal_(0, 1.0)
                else:
                    p.normal_(0, 0.15)
        hf.get_input_embeddings().weight.normal_(0, 1.0)  # tied to the unembedding: logits of std ~5, not ~uniform


@pytest.fixture(scope="module")
def build(model):
    """build(arch, dtype="fp32", attn=None, tokenizer=None, **config_overrides) -> a CourseModel (memoised).

    The bf16 model is the fp32 model's weights cast with `.to(torch.bfloat16)` (same seed), so the two compare.
    """
    made: dict = {}

    def make(arch: str, dtype: str = "fp32", attn: str | None = None, tokenizer=None, **over) -> CourseModel:
        tok = tokenizer or model.tokenizer
        key = (arch, dtype, attn, id(tok), tuple(sorted(over.items())))
        if key not in made:
            torch.manual_seed(0)
            cfg = _config(arch, len(model.tokenizer), model.tokenizer.pad_token_id, attn, over)
            from transformers import AutoModelForCausalLM

            hf = AutoModelForCausalLM.from_config(cfg, attn_implementation=cfg._attn_implementation)
            _randomise(hf, gemma=arch == "gemma2")
            hf = hf.to(DEVICE, TORCH_DTYPE[dtype]).eval()
            m = CourseModel(hf, tokenizer=tok)
            m.course_id = f"tiny-{arch}-{cfg._attn_implementation}-{sorted(over.items())}-{id(tok)}"
            made[key] = m
        return made[key]

    return make


# ------------------------------------------------------------------------------------- plain HF references


def _decoder_layers(hf: torch.nn.Module):
    body = hf.model if hasattr(hf, "model") else hf.transformer
    return body.layers if hasattr(body, "layers") else body.h


def _ids(m: CourseModel, text: str) -> list[int]:
    tok = m.tokenizer
    return tok(text, add_special_tokens=not (tok.bos_token and text.startswith(tok.bos_token)))["input_ids"]


def _plain(m: CourseModel, ids: list[int], delta: torch.Tensor | None = None, layer: int | None = None):
    """One unpadded forward of the bare module: (logits [t, vocab] float32, hidden_states, {layer: output [t, d]})."""
    outs: dict[int, torch.Tensor] = {}
    hooks = []
    for i, blk in enumerate(_decoder_layers(m._module)):

        def hook(mod, args, out, i=i):
            h = out[0] if isinstance(out, tuple) else out
            if delta is not None and i == layer:
                h = h + delta.to(h.device, h.dtype)
                out = (h, *out[1:]) if isinstance(out, tuple) else h
            outs[i] = h[0].detach().cpu()
            return out

        hooks.append(blk.register_forward_hook(hook))
    try:
        with torch.no_grad():
            res = m._module(input_ids=torch.tensor([ids], device=DEVICE), output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    return res.logits[0].float().cpu(), tuple(h.cpu() for h in res.hidden_states), outs


def _plain_logprobs(m: CourseModel, prompts, conts, delta=None, layer=None) -> torch.Tensor:
    """Mean log-probability of each continuation, prompt+continuation run alone through the bare module."""
    got = []
    for p, c in zip(prompts, conts):
        p_ids, c_ids = _ids(m, p), m.tokenizer(c, add_special_tokens=False)["input_ids"]
        logits, _, _ = _plain(m, p_ids + c_ids, delta, layer)
        lp = logits.log_softmax(-1)[len(p_ids) - 1 : -1].gather(-1, torch.tensor(c_ids)[:, None])[:, 0]
        got.append(lp.mean())
    return torch.stack(got)


def _close_acts(got: torch.Tensor, want: torch.Tensor, dtype: str, name: str) -> None:
    """max |got - want| <= ACT_TOL[dtype] x max |want|; the relative difference is recorded under `name`."""
    scale = float(want.abs().max())
    rel = _measure(name + " (relative to max |act|)", got / scale, want / scale)
    assert rel <= ACT_TOL[dtype], f"{name}: max |diff| is {rel:.3g} of max |act| (allowed {ACT_TOL[dtype]})"


def _delta(m: CourseModel, seed: int = 0, norm: float = 8.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(m.d_model, generator=g)
    return norm * v / v.norm()


# ------------------------------------------------------------------------------------------ 1. extraction


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_extraction_matches_plain_forward(build, arch, dtype):
    m = build(arch, dtype)
    n = m.n_layers
    layers = sorted({0, n // 2, n - 1})
    alone = {}
    for j, t in enumerate(TEXTS):
        _, hidden, outs = _plain(m, _ids(m, t))
        for i in layers:
            if i < n - 1:  # hidden_states[n] is after the final norm; the last layer's output comes from a hook
                torch.testing.assert_close(outs[i], hidden[i + 1][0], rtol=0, atol=0)
        alone[j] = {i: outs[i].float() for i in layers}
    # one padded batch of three texts of different lengths
    mean = extract_activations(m, TEXTS, layers=layers, reduce="mean", skip_first=2, cache=False)
    last = extract_activations(m, TEXTS, layers=layers, reduce="last", cache=False)
    none = extract_activations(m, TEXTS, layers=layers, reduce="none", cache=False)
    assert mean.dtype == last.dtype == torch.float32 and mean.shape == (len(TEXTS), len(layers), m.d_model)
    for j in range(len(TEXTS)):
        want = torch.stack([alone[j][i] for i in layers], dim=1)  # [t, L, d]
        _close_acts(none[j], want, dtype, f"extract none {arch} {dtype}")
        _close_acts(mean[j], want[2:].mean(0), dtype, f"extract mean {arch} {dtype}")
        _close_acts(last[j], want[-1], dtype, f"extract last {arch} {dtype}")
    if dtype == "bf16":
        ref = extract_activations(build(arch, "fp32"), TEXTS, layers=layers, reduce="mean", skip_first=2, cache=False)
        scale = float(ref.abs().max())
        d = _measure(f"bf16 vs fp32 extract mean {arch} (relative to max |act|)", mean / scale, ref / scale)
        assert d < 0.05


# --------------------------------------------------------------------------------- 2. continuation log-probs


def _lp_cases(m, pack: bool, monkeypatch):
    if not pack:
        monkeypatch.setattr(scoring, "packing_problem", lambda model, row_length: "forced: one continuation a row")
    assert (scoring.packing_problem(m, 64) is None) == pack


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_logprobs_match_plain_forward(build, arch, dtype, pack, monkeypatch):
    m = build(arch, dtype)
    _lp_cases(m, pack, monkeypatch)
    layer = m.n_layers // 2
    delta = _delta(m, norm=0.5 * steering.median_token_norm(m, layer))  # half a typical token's norm
    want = _plain_logprobs(m, PROMPTS, CONTS)
    got = continuation_logprobs(m, PROMPTS, CONTS, cache=False)
    _measure(f"logprobs {'packed' if pack else 'unpacked'} {arch} {dtype}", got, want)
    torch.testing.assert_close(got, want, **LP_TOL[dtype])
    want_steered = _plain_logprobs(m, PROMPTS, CONTS, delta, layer)
    assert (want_steered - want).abs().max() > 4 * LP_TOL[dtype]["atol"]  # the edit does move the numbers
    for reuse in (False, True):
        # bf16: the float32 delta meets a bf16 stream (and a bf16 cached prefix): no dtype error
        got_s = continuation_logprobs(m, PROMPTS, CONTS, delta=delta, layer=layer, reuse_prefix=reuse, cache=False)
        assert got_s.dtype == torch.float32 and torch.isfinite(got_s).all()
        _measure(f"logprobs steered {'packed' if pack else 'unpacked'} {arch} {dtype}", got_s, want_steered)
        torch.testing.assert_close(got_s, want_steered, **LP_TOL[dtype])
    if dtype == "bf16":
        ref = continuation_logprobs(build(arch, "fp32"), PROMPTS, CONTS, cache=False)
        assert _measure(f"bf16 vs fp32 logprobs {arch}", got, ref) < 0.5


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_llama_packed_equals_plain_under_eager_and_sdpa(build, attn):
    m = build("llama", "fp32", attn=attn)
    assert m.config._attn_implementation == attn and packing_problem(m, 64) is None
    want = _plain_logprobs(m, PROMPTS, CONTS)
    got = continuation_logprobs(m, PROMPTS, CONTS, cache=False)
    _measure(f"packed vs plain llama fp32 {attn}", got, want)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    delta, layer = _delta(m, 1), 1
    got_s = continuation_logprobs(m, PROMPTS, CONTS, delta=delta, layer=layer, cache=False)
    _measure(f"packed vs plain llama fp32 {attn} steered", got_s, _plain_logprobs(m, PROMPTS, CONTS, delta, layer))
    torch.testing.assert_close(got_s, _plain_logprobs(m, PROMPTS, CONTS, delta, layer), atol=1e-4, rtol=0)


def test_packing_problem_linear_layer_types(build):
    # Fake layer types on a Llama (which ignores them; use_cache off, else the cache would build linear-attention
    # layers): packing must be refused, and the one-continuation-a-row path must still give the plain numbers.
    m = build(
        "llama", "fp32", use_cache=False, layer_types=("full_attention", "linear_attention", "full_attention", "linear_attention")
    )
    reason = packing_problem(m, 16)
    assert reason is not None and "linear_attention" in reason
    assert packing_problem(build("llama", "fp32"), 16) is None
    got = continuation_logprobs(m, PROMPTS, CONTS, cache=False)  # one continuation per row
    torch.testing.assert_close(got, _plain_logprobs(m, PROMPTS, CONTS), atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["gemma2", "mistral"])
def test_sliding_window_shorter_than_the_row(build, arch):
    """A window of 8 tokens and rows of ~12-15: unpacked rows must keep the model's own sliding-window mask."""
    m = build(arch, "fp32", sliding_window=8)
    longest = max(len(_ids(m, p)) + len(m.tokenizer(c, add_special_tokens=False)["input_ids"]) for p, c in zip(PROMPTS, CONTS))
    assert longest > 8
    reason = packing_problem(m, longest)
    assert reason is not None and "sliding window" in reason
    want = _plain_logprobs(m, PROMPTS, CONTS)
    # the window matters here: the same weights with a long window give other numbers
    assert (want - _plain_logprobs(build(arch, "fp32", sliding_window=4096), PROMPTS, CONTS)).abs().max() > 1e-3
    got = continuation_logprobs(m, PROMPTS, CONTS, cache=False)
    _measure(f"sliding window 8 unpacked vs plain {arch}", got, want)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    delta, layer = _delta(m, 2), 0
    for reuse in (False, True):
        got_s = continuation_logprobs(m, PROMPTS, CONTS, delta=delta, layer=layer, reuse_prefix=reuse, cache=False)
        torch.testing.assert_close(got_s, _plain_logprobs(m, PROMPTS, CONTS, delta, layer), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------- 3. generation


def _plain_generate(m: CourseModel, prompt: str, n: int, delta=None, layer=None) -> list[int]:
    hooks = []
    if delta is not None:

        def hook(mod, args, out):
            if isinstance(out, tuple):
                return (out[0] + delta.to(out[0].device, out[0].dtype), *out[1:])
            return out + delta.to(out.device, out.dtype)

        hooks.append(_decoder_layers(m._module)[layer].register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = m._module.generate(
                torch.tensor([_ids(m, prompt)], device=DEVICE),
                max_new_tokens=n,
                do_sample=False,
                pad_token_id=m.tokenizer.pad_token_id,
            )
    finally:
        for h in hooks:
            h.remove()
    return out[0, len(_ids(m, prompt)) :].tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_generate(build, arch, dtype):
    m = build(arch, dtype)
    layer = m.n_layers // 2
    direction = _delta(m, 3)
    plain = steering.generate(m, GEN_PROMPTS, max_new_tokens=6, cache=False)
    assert steering.generate(m, GEN_PROMPTS, direction, layer=layer, strength=0.0, max_new_tokens=6, cache=False) == plain
    steered = steering.generate(m, GEN_PROMPTS, direction, layer=layer, strength=1.0, max_new_tokens=6, cache=False)
    assert len(steered) == len(GEN_PROMPTS) and all(isinstance(s, str) for s in steered)
    if dtype == "fp32":  # greedy token ids against HF's own generate, each prompt alone (padding must not matter)
        delta = steering.steering_vector(m, direction, layer, 1.0)
        new = steering._generate(m, GEN_PROMPTS, None, None, 6, False, 1.0, 0)
        new_s = steering._generate(m, GEN_PROMPTS, delta, layer, 6, False, 1.0, 0)
        for j, p in enumerate(GEN_PROMPTS):
            assert new[j].tolist() == _plain_generate(m, p, 6)
            assert new_s[j].tolist() == _plain_generate(m, p, 6, delta, layer)


# ------------------------------------------------------------------------------------------ 4. logit lens


def _hand_norm(m: CourseModel, x: torch.Tensor, gain: str) -> torch.Tensor:
    norm = m.final_norm
    w = norm.weight.detach().float().cpu()
    x = x.float()
    if isinstance(norm, torch.nn.LayerNorm):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps) * w
    eps = getattr(norm, "eps", None) or norm.variance_epsilon
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1 + w) if gain == "1+w" else w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_lens_is_the_hand_formula(build, arch, dtype):
    m = build(arch, dtype)
    v = _delta(m, 4, norm=10.0)
    got = direction_logits(m, v)
    w_u = m.unembed.weight.detach().float().cpu()
    gain = "1+w" if arch == "gemma2" else "w"
    want = _hand_norm(m, v.to(TORCH_DTYPE[dtype]), gain) @ w_u.T  # norm(0) is 0 for RMSNorm; a LayerNorm's is its bias
    scale = float(want.abs().max())
    _measure(f"lens {arch} {dtype} (relative)", got / scale, want / scale)
    torch.testing.assert_close(got / scale, want / scale, atol=1e-5 if dtype == "fp32" else 2e-2, rtol=0)
    if arch == "gemma2":
        wrong = _hand_norm(m, v, "w") @ w_u.T
        assert (got - wrong).abs().max() > 0.1 * scale  # a plain `weight` gain would be visibly wrong
    if arch == "gpt2":  # the LayerNorm bias is not part of the direction
        assert m.final_norm.bias.abs().max() > 0


# ------------------------------------------------------------------------------- 5. BOS and layer defaults


def test_word_token_id_never_returns_bos(build, model):
    tok = copy.deepcopy(model.tokenizer)
    tok.add_bos_token = True
    assert tok("hello")["input_ids"][0] == tok.bos_token_id  # this tokenizer does add a BOS
    m = build("llama", "fp32", tokenizer=tok)
    for word in ("happy", "sad", "calm", " angry "):
        wid = word_token_id(m, word)
        assert wid != tok.bos_token_id
        assert wid == model.tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"][0]
    # prompts get one BOS (not two when they already start with it), and the scores still match a plain forward
    enc = tokenize(m, ["hello there", tok.bos_token + "hello there"])
    assert (enc["input_ids"][:, :2] != tok.bos_token_id).sum() >= 1
    assert enc["input_ids"][0].tolist() == enc["input_ids"][1].tolist()
    torch.testing.assert_close(
        continuation_logprobs(m, PROMPTS, CONTS, cache=False), _plain_logprobs(m, PROMPTS, CONTS), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("n", list(range(2, 41)))
def test_default_layers_stay_inside_the_model(n):
    for layer in (default_layer(n), n // 3, round(0.4 * n)):
        assert 0 <= layer < n


def test_defaults_on_a_six_layer_model(build):
    from course_utils import checks, solutions

    m = build("llama6", "fp32")
    assert m.n_layers == 6 and default_layer(m.n_layers) == 4
    with pytest.raises(IndexError):
        m.layer(6)
    assert checks.check_residual_after(solutions.residual_after, m) is solutions.residual_after  # layer n // 3
    assert checks.check_steered_logits(solutions.steered_logits, m) is solutions.steered_logits  # round(0.4 n)
    acts = extract_activations(m, TEXTS[:1], cache=False)  # layers=None: every layer, none past the end
    assert acts.shape == (1, 6, m.d_model)


# --------------------------------------------------------------------------- 6. NDIF dry run: remote="local"


@pytest.fixture()
def simulated(monkeypatch):
    """Counts the requests that really went through nnsight's local NDIF simulation (serialise + deserialise)."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    calls = []
    run = LocalSimulationBackend.__call__

    def counting(self, tracer):
        calls.append(type(tracer).__name__)
        return run(self, tracer)

    monkeypatch.setattr(LocalSimulationBackend, "__call__", counting)
    return calls


@pytest.fixture(scope="module")
def remote_pair(build):
    """The same tiny Llama twice: one local, one with `remote = "local"` (nnsight serialises every request
    as for NDIF, deserialises it with the course's own modules hidden, and runs it in-process)."""
    local = build("llama", "fp32")
    remote = CourseModel(local._module, tokenizer=local.tokenizer)
    remote.course_id = local.course_id
    remote.remote = "local"
    return local, remote


def test_remote_local_extraction(remote_pair, simulated):
    local, remote = remote_pair
    for reduce in ("mean", "last"):
        a = extract_activations(local, TEXTS, layers=[0, 2], reduce=reduce, cache=False)
        b = extract_activations(remote, TEXTS, layers=[0, 2], reduce=reduce, cache=False)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    for a, b in zip(
        extract_activations(local, TEXTS, layers=[1], reduce="none", cache=False),
        extract_activations(remote, TEXTS, layers=[1], reduce="none", cache=False),
    ):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    assert len(simulated) == 3


def test_remote_local_logprobs_steered(remote_pair, simulated):
    local, remote = remote_pair
    delta = _delta(local, 5)
    want = continuation_logprobs(local, PROMPTS, CONTS, delta=delta, layer=1, cache=False)
    got = continuation_logprobs(remote, PROMPTS, CONTS, delta=delta, layer=1, cache=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        continuation_logprobs(remote, PROMPTS, CONTS, cache=False),
        continuation_logprobs(local, PROMPTS, CONTS, cache=False),
        atol=1e-5,
        rtol=0,
    )
    assert len(simulated) == 2  # remote: no prefix reuse (that would keep a server tensor client-side)


def test_remote_local_generate_steered(remote_pair, simulated):
    local, remote = remote_pair
    d = _delta(local, 6)
    want = steering.generate(local, GEN_PROMPTS, d, layer=1, strength=1.0, max_new_tokens=5, cache=False)
    assert steering.generate(remote, GEN_PROMPTS, d, layer=1, strength=1.0, max_new_tokens=5, cache=False) == want
    assert steering.generate(remote, GEN_PROMPTS, max_new_tokens=5, cache=False) == steering.generate(
        local, GEN_PROMPTS, max_new_tokens=5, cache=False
    )
    assert len(simulated) >= 2  # the two generations (and the median-norm extraction, unless memoised)


def test_remote_local_lens(remote_pair, simulated):
    local, remote = remote_pair
    v = _delta(local, 7)
    torch.testing.assert_close(direction_logits(remote, v), direction_logits(local, v), atol=1e-5, rtol=0)
    assert len(simulated) == 1  # remote: the norm and unembedding run inside a (simulated) NDIF request


def test_remote_local_from_a_meta_loaded_model(build, tmp_path):
    """As on NDIF, the client's model is meta-loaded (no weights). nnsight's "local" simulation then dispatches it
    (loads the real weights, here from a local folder) before running, so the numbers can be compared; the lens,
    which ran on the local modules before, must not touch the meta weights."""
    local = build("llama", "fp32")
    local._module.save_pretrained(tmp_path)
    local.tokenizer.save_pretrained(tmp_path)
    meta = CourseModel(str(tmp_path), tokenizer=local.tokenizer)
    assert not meta.dispatched and next(meta._module.parameters()).is_meta
    meta.remote = "local"
    meta.course_id = "meta-" + local.course_id
    v = _delta(local, 8)
    torch.testing.assert_close(direction_logits(meta, v), direction_logits(local, v), atol=1e-5, rtol=0)
    delta = _delta(local, 9)
    torch.testing.assert_close(
        continuation_logprobs(meta, PROMPTS, CONTS, delta=delta, layer=1, cache=False),
        continuation_logprobs(local, PROMPTS, CONTS, delta=delta, layer=1, cache=False),
        atol=1e-5,
        rtol=0,
    )


def test_remote_local_batches_share_one_request(remote_pair, simulated):
    """On a remote model the batches of one call go to NDIF together (one `model.session`), not one request each."""
    local, remote = remote_pair
    a = extract_activations(local, TEXTS, layers=[1], reduce="mean", batch_size=1, cache=False)
    b = extract_activations(remote, TEXTS, layers=[1], reduce="mean", batch_size=1, cache=False)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    want = continuation_logprobs(local, PROMPTS, CONTS, batch_size=1, cache=False)
    got = continuation_logprobs(remote, PROMPTS, CONTS, batch_size=1, cache=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert simulated == ["Tracer", "Tracer"]  # three batches each, one session request each


def test_remote_local_norms_vectors_and_cheating(remote_pair, simulated):
    """The rest of the course's model-running functions, remote vs local: median norm (computed server-side as
    per-token norms), emotion vectors from stories, their scores on texts, and the cheating measure."""
    from course_utils import cheating
    from course_utils.vectors import build_emotion_vectors

    local, remote = remote_pair
    steering._MEDIAN_NORMS.clear()
    assert steering.median_token_norm(remote, 2, TEXTS) == pytest.approx(steering.median_token_norm(local, 2, TEXTS), abs=1e-5)
    norms = extract_activations(remote, TEXTS, layers=[2], reduce="norm", cache=False)
    full = extract_activations(local, TEXTS, layers=[2], reduce="none", cache=False)
    for n, a in zip(norms, full):
        torch.testing.assert_close(n, a.norm(dim=-1), atol=1e-4, rtol=0)
    kw = dict(layer=2, emotions=["happy", "sad", "afraid"], per_emotion=2, neutral_limit=6, cache=False)
    vl, vr = build_emotion_vectors(local, **kw), build_emotion_vectors(remote, **kw)
    torch.testing.assert_close(vr.vectors, vl.vectors, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        torch.tensor(vr.score(remote, TEXTS, cache=False).to_numpy()),
        torch.tensor(vl.score(local, TEXTS, cache=False).to_numpy()),
        atol=1e-5,
        rtol=0,
    )
    scen = cheating.load_scenarios("cheat_scenarios").head(2).to_dict("records")
    el = cheating.evaluate(local, vl, "sad", [0.0, 0.5], scen, cache=False)
    er = cheating.evaluate(remote, vl, "sad", [0.0, 0.5], scen, cache=False)
    assert er.cheat_logodds.to_numpy() == pytest.approx(el.cheat_logodds.to_numpy(), abs=1e-4)
    assert len(simulated) >= 6  # every one of them really went through the simulated NDIF request


def test_remote_local_meta_model_extraction_and_generation(build, tmp_path):
    """The meta-loaded client (as on NDIF) also extracts, measures norms and generates without touching meta weights."""
    local = build("llama", "fp32")
    local._module.save_pretrained(tmp_path)
    local.tokenizer.save_pretrained(tmp_path)
    meta = CourseModel(str(tmp_path), tokenizer=local.tokenizer)
    meta.remote = "local"
    meta.course_id = "meta2-" + local.course_id
    torch.testing.assert_close(
        extract_activations(meta, TEXTS, layers=[0, 3], cache=False),
        extract_activations(local, TEXTS, layers=[0, 3], cache=False),
        atol=1e-5,
        rtol=0,
    )
    assert steering.median_token_norm(meta, 1, TEXTS) == pytest.approx(steering.median_token_norm(local, 1, TEXTS), abs=1e-5)
    d = _delta(local, 10)
    assert steering.generate(meta, GEN_PROMPTS, d, layer=1, strength=1.0, max_new_tokens=4, cache=False) == steering.generate(
        local, GEN_PROMPTS, d, layer=1, strength=1.0, max_new_tokens=4, cache=False
    )


# ------------------------------------------------------------------ 7. option-only steering (steer_spans)

SPAN_PROMPTS = ["Pick one. (A) a walk in the park (B) a cold bath", "Pick one. (A) a walk in the park (B) a cold bath"]
SPAN_CONTS = [" A", " B"]


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_steer_spans_edit_only_the_span_tokens(build, arch, pack, monkeypatch):
    """The delta lands exactly on the prompt tokens overlapping the span, nowhere else (not on the continuation)."""
    m = build(arch, "fp32")
    _lp_cases(m, pack, monkeypatch)
    p = SPAN_PROMPTS[0]
    start = p.index("a walk")
    span = (start, start + len("a walk in the park"))
    delta = _delta(m, 11)
    got = continuation_logprobs(m, SPAN_PROMPTS, SPAN_CONTS, delta=delta, layer=1, steer_spans=[span, span], cache=False)
    enc = m.tokenizer(p, return_offsets_mapping=True, add_special_tokens=True)
    hit = [b > a and a < span[1] and b > span[0] for a, b in enc["offset_mapping"]]
    words = m.tokenizer.decode([i for i, h in zip(enc["input_ids"], hit) if h])
    assert words.strip() == "a walk in the park"  # the tokens chosen are the option's, found from character offsets
    want = []
    for c in SPAN_CONTS:
        p_ids, c_ids = _ids(m, p), m.tokenizer(c, add_special_tokens=False)["input_ids"]
        per_pos = torch.zeros(len(p_ids) + len(c_ids), m.d_model)
        per_pos[: len(p_ids)][torch.tensor(hit)] = delta
        logits, _, _ = _plain(m, p_ids + c_ids, per_pos, 1)
        want.append(logits.log_softmax(-1)[len(p_ids) - 1 : -1].gather(-1, torch.tensor(c_ids)[:, None])[:, 0].mean())
    torch.testing.assert_close(got, torch.stack(want), **LP_TOL["fp32"])
    everywhere = continuation_logprobs(m, SPAN_PROMPTS, SPAN_CONTS, delta=delta, layer=1, cache=False)
    assert (everywhere - got).abs().max() > 1e-3  # a span is not the same edit as steering every position
    plain = continuation_logprobs(m, SPAN_PROMPTS, SPAN_CONTS, cache=False)
    assert (plain - got).abs().max() > 1e-3  # and the span edit does move the answer


def test_steer_spans_errors(build):
    m = build("llama", "fp32")
    d = _delta(m, 12)
    with pytest.raises(ValueError, match=r"steer_spans has 1 entries for 2 prompts"):
        continuation_logprobs(m, SPAN_PROMPTS, SPAN_CONTS, delta=d, layer=1, steer_spans=[(0, 3)], cache=False)
    with pytest.raises(ValueError, match=r"steer_spans\[0\]=\(5, 500\): must satisfy 0 <= start < end"):
        continuation_logprobs(m, SPAN_PROMPTS, SPAN_CONTS, delta=d, layer=1, steer_spans=[(5, 500), None], cache=False)


def test_remote_local_steer_spans(remote_pair, simulated):
    local, remote = remote_pair
    p = SPAN_PROMPTS[0]
    span = (p.index("a cold"), len(p))
    kw = dict(delta=_delta(local, 13), layer=2, steer_spans=[span, span], cache=False)
    want = continuation_logprobs(local, SPAN_PROMPTS, SPAN_CONTS, **kw)
    torch.testing.assert_close(continuation_logprobs(remote, SPAN_PROMPTS, SPAN_CONTS, **kw), want, atol=1e-5, rtol=0)
    assert len(simulated) == 1


# ------------------------------------------------------------------ 8. directional derivatives (the nulls' engine)


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma2"])
def test_derivative_equals_a_central_finite_difference(build, arch, pack, monkeypatch):
    """N * g . d equals (m(+h) - m(-h)) / 2h from exact steered evaluations, for a weighted measure and a span."""
    m = build(arch, "fp32", attn="eager" if arch == "gemma2" else None)
    _lp_cases(m, pack, monkeypatch)
    layer, weights = 1, [1.0, -1.0, 0.5]  # prompt 0: cont 0 minus cont 1 (a log-odds); prompt 1: half its log-prob
    norm = steering.median_token_norm(m, layer)
    grads = measure_gradients(m, PROMPTS, CONTS, weights, layer=layer, cache=False)
    assert grads.shape == (2, m.d_model)
    dirs = random_directions(m.d_model, 3, seed=5)
    h = 1e-2  # float32 rounding dominates a smaller step's difference; curvature is negligible at this one

    def measure(s: float, d: torch.Tensor, spans=None) -> torch.Tensor:
        lp = continuation_logprobs(m, PROMPTS, CONTS, delta=s * norm * d, layer=layer, steer_spans=spans, cache=False)
        return torch.stack([lp[0] - lp[1], 0.5 * lp[2]])

    def central(d: torch.Tensor, spans=None) -> torch.Tensor:
        """Central difference with one Richardson step (cancels the h^2 term)."""
        one, half = ((measure(k, d, spans) - measure(-k, d, spans)) / (2 * k) for k in (h, h / 2))
        return (4 * half - one) / 3

    for d in dirs:
        fd = central(d)
        got = slopes(grads, d, norm)[:, 0]
        _measure(f"derivative vs finite difference {arch} {'packed' if pack else 'unpacked'}", got, fd)
        torch.testing.assert_close(got, fd, atol=3e-3 * max(1.0, float(fd.abs().max())), rtol=0)
    # option-only steering: the derivative of a span edit is the span's own gradient
    p = PROMPTS[0]
    spans = [(0, len("The train")), (0, len("The train")), None]
    g_span = measure_gradients(m, PROMPTS, CONTS, weights, layer=layer, steer_spans=spans, cache=False)
    d = dirs[0]
    fd = central(d, spans)
    torch.testing.assert_close(slopes(g_span, d, norm)[:, 0], fd, atol=3e-3 * max(1.0, float(fd.abs().max())), rtol=0)
    assert (g_span[0] - grads[0]).abs().max() > 1e-4 and p.startswith("The train")  # a span is not every position
