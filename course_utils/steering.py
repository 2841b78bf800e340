"""Steering: add a direction to the residual stream at one layer, at every position and every generation step.

Strength is relative: the added vector is `strength * median_token_norm(layer) * unit(direction)`, so
strength 0.1 means "a tenth of a typical token's residual norm at that layer" (the first token,
whose norm is ~100x the others, is left out of that median).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import torch

from .activations import extract_activations
from .cache import cached, code_version, request_key, tensor_sha256, texts_sha256
from .models import CourseModel, model_key, tokenize
from .scoring import continuation_logprobs as _score

REFERENCE_TEXTS = 32  # default reference corpus: this many training stories and this many neutral dialogues


_REFERENCE: dict[tuple, list[str]] = {}


def _data_stamp() -> tuple:
    """The (path, size, mtime) of the data files the reference corpus is read from: edited data is a new corpus."""
    from .paths import data_dir

    files = [data_dir() / "stories.jsonl", data_dir() / "neutral_dialogues.jsonl"]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def reference_texts(model: CourseModel, n: int = REFERENCE_TEXTS) -> list[str]:
    """The default corpus that defines a typical token's norm: n evenly spaced training stories and n neutral dialogues."""
    from .data import load_stories
    from .vectors import neutral_texts

    key = (model_key(model), n, _data_stamp())  # memoised: read, validated and rendered once per process
    if key not in _REFERENCE:
        stories = load_stories(split="train").text.tolist()
        _REFERENCE[key] = stories[:: max(1, len(stories) // n)][:n] + neutral_texts(model, n)
    return list(_REFERENCE[key])


_MEDIAN_NORMS: dict[tuple[str, int, str], float] = {}


def median_token_norm(model: CourseModel, layer: int, texts: Sequence[str] | None = None) -> float:
    """The median residual-stream norm of a token at `layer` over `texts` (default: `reference_texts`), first tokens excluded."""
    model.layer(layer)  # validates the index
    texts = reference_texts(model) if texts is None else list(texts)
    key = (model_key(model), layer, texts_sha256(texts))
    if key not in _MEDIAN_NORMS:
        per_text = extract_activations(model, texts, layers=[layer], reduce="norm", progress=False)
        norms = torch.cat([a[1:, 0] for a in per_text])  # leave out each text's first token
        if norms.numel() == 0:
            raise ValueError("texts give no tokens after the first: pass longer reference texts")
        _MEDIAN_NORMS[key] = float(norms.median())
    return _MEDIAN_NORMS[key]


def random_direction(d_model: int, seed: int) -> torch.Tensor:
    """A unit vector drawn uniformly at random (seeded): the control direction."""
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(d_model, generator=g)
    return v / v.norm()


def fluency_safe_strength(
    candidates: Sequence[float], drop: Callable[[float], float | Iterable[float]], max_drop: float
) -> float:
    """The course's one strength rule: the largest candidate whose worst log-prob drop (nats/token) is <= max_drop.

    `drop(strength)` gives the largest drop over the directions and signs tried, measured on text that holds no
    outcome of the experiment; or it yields one drop per direction and sign, and a candidate is rejected at the
    first drop over the limit (the remaining directions are not computed). Candidates are tried from the largest
    down and each drop is printed; if none passes, the smallest is returned (and the printout says so).
    """
    if not candidates:
        raise ValueError("candidates is empty: pass e.g. [0.5, 0.25, 0.1]")
    for c in sorted((float(c) for c in candidates), reverse=True):
        got = drop(c)
        worst, over = float("-inf"), 0
        single = not isinstance(got, Iterable) or torch.is_tensor(got)  # a number (python, numpy or 0-d tensor)
        for k, d in enumerate([got] if single else got, 1):
            worst = max(worst, float(d))
            if float(d) > max_drop:
                over = k
                break
        if over and not single:
            print(f"strength {c}: drop {worst:.3f} > {max_drop:.3f} at direction {over} (the rest not needed)")
            continue
        print(f"strength {c}: largest drop {worst:.3f} nats/token (allowed {max_drop:.3f})")
        if worst <= max_drop:
            return c
    smallest = float(min(candidates))
    print(f"no candidate keeps the drop within {max_drop:.3f} nats/token: using the smallest, {smallest}")
    return smallest


def random_direction_in_span(basis: torch.Tensor, seed: int) -> torch.Tensor:
    """A unit vector drawn at random inside the span of the rows of `basis` (seeded): a structure-matched control."""
    q, _ = torch.linalg.qr(torch.as_tensor(basis).float().T)  # orthonormal columns spanning the rows
    g = torch.Generator().manual_seed(int(seed))
    v = q @ torch.randn(q.shape[1], generator=g)
    return v / v.norm()


def steering_vector(model: CourseModel, direction: torch.Tensor, layer: int, strength: float) -> torch.Tensor:
    """The vector actually added (float32, on the CPU): strength x median token norm at `layer` x the unit direction."""
    direction = torch.as_tensor(direction).detach().float().cpu().flatten()
    if direction.shape[0] != model.d_model:
        raise ValueError(f"direction has {direction.shape[0]} dims; the model's d_model is {model.d_model}")
    norm = direction.norm()
    if norm == 0:
        raise ValueError("direction is the zero vector")
    # `+ 0.0` turns the -0.0 that `0.0 * negative` gives into +0.0: strength 0 is the same vector for every direction
    return float(strength) * median_token_norm(model, layer) * direction / norm + 0.0


def generate(
    model: CourseModel,
    prompts: str | Sequence[str],
    direction: torch.Tensor | None = None,
    *,
    layer: int | None = None,
    strength: float = 0.0,
    max_new_tokens: int = 40,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    cache: bool = True,
) -> list[str]:
    """Generate replies with `direction` added at `layer` on every step (prompt pass included); returns the new text.

    With cache (default), the new tokens are stored under build/cache/generations, keyed by the model, the
    prompts, the exact added vector and the sampling settings (seed included), so a rerun reads them back.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompts is empty")
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength) if direction is not None else None
    if delta is not None and not delta.any():
        delta = None  # strength 0 is the unsteered run: computed once, cached once
    request = {
        "what": "generate",
        "model": model_key(model),
        "n_texts": len(prompts),
        "texts_sha256": texts_sha256(prompts),
        "delta_sha256": tensor_sha256(delta),
        "layer": layer if delta is not None else None,
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "temperature": temperature if do_sample else None,
        "seed": seed if do_sample else None,
    }
    key = request_key(request, CODE_VERSION)
    new = cached(
        "generations",
        key,
        lambda: {"tokens": _generate(model, prompts, delta, layer, max_new_tokens, do_sample, temperature, seed)},
        use=cache,
    )["tokens"]
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def _generate(
    model: CourseModel,
    prompts: list[str],
    delta: torch.Tensor | None,
    layer: int | None,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    seed: int,
) -> torch.Tensor:
    """The uncached computation behind generate: the new token ids, [n_prompts, new_tokens].

    Decoding is exactly what the arguments say: greedy, or plain temperature sampling. Every setting a model's own
    generation_config.json may change (top_p, top_k, repetition penalty, beams...) is set explicitly to its neutral
    value, since transformers fills unset ones from that file. The seed is set inside the traced block, so a remote
    (NDIF) run samples from it too; the block holds only torch expressions and an envoy resolved here.
    """
    enc = tokenize(model, prompts)
    kwargs = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "temperature": float(temperature) if do_sample else 1.0,
        "top_k": 0,  # no top-k cut (transformers' default is 50)
        "top_p": 1.0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "epsilon_cutoff": 0.0,
        "eta_cutoff": 0.0,
        "repetition_penalty": 1.0,
        "encoder_repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "num_beams": 1,
        "min_length": 0,
        "min_new_tokens": 0,
        "pad_token_id": model.tokenizer.pad_token_id,
    }
    edit = model.layer(layer) if delta is not None else None
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        # An open `tracer.iter[:]` ends by outrunning the model; nnsight warns about that by design.
        warnings.filterwarnings("ignore", message=".*was never reached: the loop asked for a step.*")
        with torch.no_grad(), model.generate(**kwargs, remote=model.remote) as tracer:
            with tracer.invoke(enc):
                torch.manual_seed(seed)  # where the model runs (NDIF's server has its own random state)
                if edit is not None:
                    for _ in tracer.iter[:]:  # every generation step, the prompt pass included
                        out = edit.output
                        edit.output[:] = out + delta.to(out.device, out.dtype)
            with tracer.invoke():
                out = tracer.result.save()
    return out[:, enc["input_ids"].shape[1] :].cpu().contiguous()


def continuation_logprobs(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    direction: torch.Tensor | None = None,
    *,
    layer: int | None = None,
    strength: float = 0.0,
    batch_size: int = 4,
    reduce: str = "mean",
    reuse_prefix: bool = True,
    steer_spans: Sequence[tuple[int, int] | None] | None = None,
    cache: bool = True,
) -> torch.Tensor:
    """Log-probability of each continuation after its prompt with `direction` steered in at `strength` (see `scoring`)."""
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength) if direction is not None else None
    return _score(
        model,
        prompts,
        continuations,
        delta=delta,
        layer=layer,
        batch_size=batch_size,
        reduce=reduce,
        reuse_prefix=reuse_prefix,
        steer_spans=steer_spans,
        cache=cache,
    )


def perplexity(
    model: CourseModel,
    texts: Sequence[str],
    direction: torch.Tensor | None = None,
    *,
    layer: int | None = None,
    strength: float = 0.0,
) -> float:
    """Perplexity of texts under steering (from their 2nd token; exp of the mean negative log-probability)."""
    tok = model.tokenizer
    heads, tails = [], []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        heads.append(tok.decode(ids[:1]))
        tails.append(tok.decode(ids[1:]))
    lp = continuation_logprobs(model, heads, tails, direction, layer=layer, strength=strength, reduce="mean")
    return float(torch.exp(-lp.mean()))


CODE_VERSION = code_version(_generate)  # part of every generation's cache key
