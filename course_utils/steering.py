"""Steering: add a direction to the residual stream at one layer, at every position and every generation step.

Strength is relative: the added vector is `strength * median_token_norm(layer) * unit(direction)`, so
strength 0.1 means "a tenth of a typical token's residual norm at that layer" (the first token,
whose norm is ~100x the others, is left out of that median).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import nnsight
import torch

from .activations import extract_activations
from .cache import cache_path, cached, code_version, read, request_key, tensor_sha256, texts_sha256
from .models import CourseModel, model_key, tokenize
from .scoring import CODE_VERSION as SCORING_VERSION
from .scoring import _batch, _model_dtype, _packed_rows, _rows, _unsteered_prefix, frozen_weights, logprobs_request
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


def remember_median_norm(model: CourseModel, layer: int, reference_sha256: str, value: float) -> bool:
    """Give median_token_norm a value measured earlier over the default reference corpus (the committed one of FAST's
    precomputed vectors): kept only when that corpus is today's `reference_texts`; returns whether it was kept."""
    key = (model_key(model), layer, texts_sha256(reference_texts(model)))
    if key[2] != reference_sha256:
        return False
    _MEDIAN_NORMS.setdefault(key, float(value))
    return True


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
    delta = _added_vector(model, direction, layer, strength)
    key = _generate_key(model, prompts, delta, layer, max_new_tokens, do_sample, temperature, seed)
    new = cached(
        "generations",
        key,
        lambda: {"tokens": _generate(model, prompts, delta, layer, max_new_tokens, do_sample, temperature, seed)},
        use=cache,
    )["tokens"]
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def _added_vector(model: CourseModel, direction: torch.Tensor | None, layer: int | None, strength: float) -> torch.Tensor | None:
    """steering_vector, or None for no direction and for strength 0 (the unsteered run: computed once, cached once)."""
    delta = steering_vector(model, direction, layer, strength) if direction is not None else None
    return delta if delta is not None and delta.any() else None


def _generate_key(
    model: CourseModel,
    prompts: list[str],
    delta: torch.Tensor | None,
    layer: int | None,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    seed: int,
) -> str:
    """The cache key of one generation request (the model, the prompts, the exact added vector, the decoding)."""
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
    return request_key(request, CODE_VERSION)


def generate_each(
    model: CourseModel,
    prompt: str,
    directions: Sequence[torch.Tensor | None],
    strengths: Sequence[float],
    *,
    layer: int,
    max_new_tokens: int = 40,
    cache: bool = True,
) -> list[str]:
    """Greedy replies to one prompt, one per (direction, strength): `generate`'s texts, the uncached ones in one batch.

    Each condition reads and writes the cache entry `generate(model, prompt, direction, layer=layer,
    strength=strength, max_new_tokens=max_new_tokens)` does; the missing ones run together as the rows of one
    generation, each row with its own added vector (strength 0 or None: the unsteered row, run once).
    """
    if not isinstance(prompt, str):
        raise TypeError("prompt must be one string")
    if len(directions) != len(strengths) or not directions:
        raise ValueError(f"directions ({len(directions)}) and strengths ({len(strengths)}): give one of each per condition")
    deltas = [_added_vector(model, d, layer, s) for d, s in zip(directions, strengths)]
    keys = [_generate_key(model, [prompt], d, layer, max_new_tokens, False, 1.0, 0) for d in deltas]
    todo = list(dict.fromkeys(k for k in keys if not cache or read(cache_path(k, "generations"), k, "generation") is None))
    if todo:
        rows = [deltas[keys.index(k)] for k in todo]
        stacked = torch.stack([torch.zeros(model.d_model) if d is None else d for d in rows])[:, None, :]  # [rows, 1, d]
        steered = any(d is not None for d in rows)
        new = _generate(model, [prompt] * len(todo), stacked if steered else None, layer, max_new_tokens, False, 1.0, 0)
        done = {k: _until_end(row, _eos_ids(model)) for k, row in zip(todo, new)}
    tokens = [
        cached("generations", k, lambda k=k: {"tokens": done[k]}, use=cache)["tokens"][0] if cache else done[k][0] for k in keys
    ]
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in tokens]


def _eos_ids(model: CourseModel) -> set[int]:
    """The token ids that end a generation (the generation config's and the tokenizer's end-of-sequence ids)."""
    eos = getattr(getattr(model._module, "generation_config", None), "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    return ids | ({model.tokenizer.eos_token_id} if model.tokenizer.eos_token_id is not None else set())


def _until_end(row: torch.Tensor, ends: set[int]) -> torch.Tensor:
    """[1, n]: one batch row's new tokens up to its first end token included (a row generated alone stops there)."""
    stop = next((j for j, t in enumerate(row.tolist()) if t in ends), len(row) - 1)
    return row[: stop + 1][None].contiguous()


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


def word_gradients(
    model: CourseModel, prompts: Sequence[str], words: Sequence[str], *, layer: int, batch_size: int = 4, cache: bool = True
) -> torch.Tensor:
    """[n_words, n_prompts, d_model]: d log p(word | prompt) (its tokens summed) / d a vector added after `layer`.

    For each word, the numbers of `derivatives.measure_gradients(model, prompts, [word] * n, [1.0] * n, layer=layer,
    reduce="sum")` (which sums a repeated prompt's rows; here each prompt keeps its own). Words of one token share
    one forward pass per batch (they are all read from the prompt's last position), then one backward pass each;
    longer words, and a remote model, take measure_gradients one word at a time.
    """
    from .derivatives import measure_gradients

    prompts, words = list(prompts), list(words)
    if not prompts or not words or any(not isinstance(t, str) or not t for t in [*prompts, *words]):
        raise ValueError("prompts and words must be non-empty lists of non-empty strings")
    model.layer(layer)  # validates the index
    ids = [model.tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    single = [w for w, i in enumerate(ids) if len(i) == 1 and not model.remote]
    out = torch.zeros(len(words), len(prompts), model.d_model)
    distinct = list(dict.fromkeys(prompts))
    where = [distinct.index(p) for p in prompts]
    for w in (w for w in range(len(words)) if w not in single):
        n = len(distinct)
        out[w] = measure_gradients(model, distinct, [words[w]] * n, [1.0] * n, layer=layer, reduce="sum", cache=cache)[where]
    if single:
        request = {
            "what": "word_gradients",
            "model": model_key(model),
            "texts_sha256": texts_sha256(distinct),
            "token_ids": [ids[w][0] for w in single],
            "continuation": words[single[0]],
            "layer": int(layer),
            "batch_size": batch_size,
        }
        key = request_key(request, WORD_GRADIENTS_VERSION)
        compute = lambda: {
            "grad": _word_gradients(model, distinct, words[single[0]], [ids[w][0] for w in single], layer, batch_size)
        }  # noqa: E731
        out[single] = cached("gradients", key, compute, use=cache)["grad"][:, where]
    return out


def _word_gradients(
    model: CourseModel, prompts: list[str], first: str, token_ids: list[int], layer: int, batch_size: int
) -> torch.Tensor:
    """[n_ids, n_prompts, d]: the rows measure_gradients builds for word `first`, one forward each, one backward per id."""
    tok = model.tokenizer
    rows = sorted(_rows(tok, prompts, [first] * len(prompts), pack=False), key=lambda r: len(r["prompt"]))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = torch.zeros(len(token_ids), len(prompts), model.d_model)
    with frozen_weights(model):  # gradients w.r.t. the added vector only, never the weights
        for start in range(0, len(rows), batch_size):
            enc, src, _, (items, _) = _batch(rows[start : start + batch_size], pad_id, _model_dtype(model))
            prefix = _unsteered_prefix(model, enc, layer)
            T = enc["input_ids"].shape[1]
            keep = T - int(src[:, 0].min())
            delta = torch.zeros(prefix.shape[0], 1, prefix.shape[-1], device=prefix.device, requires_grad=True)
            with torch.enable_grad():
                with model.trace(enc, logits_to_keep=keep):
                    for i in range(layer):
                        model.layer(i).skip(prefix)
                    model.layer(layer).skip(prefix + delta.to(prefix.dtype))
                    logits = model.output.logits.save()
                rows_i = torch.arange(logits.shape[0], device=logits.device)
                last = logits[rows_i, (src[:, 0] - (T - keep)).to(logits.device)].float()  # [b, vocab]: the next token
                lp = last[:, token_ids] - torch.logsumexp(last, -1, keepdim=True)  # [b, n_ids]
                for j in range(len(token_ids)):
                    (grad,) = torch.autograd.grad(lp[:, j].sum(), delta, retain_graph=j < len(token_ids) - 1)
                    for r, _, _, i in items:
                        out[j, i] = grad[r, 0].float().cpu()
    return out


LOGITS_BYTES = 256 * 2**20  # continuation_logprobs_each stacks conditions while their kept logits stay under this


def continuation_logprobs_each(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    directions: Sequence[torch.Tensor],
    strengths: Sequence[float],
    *,
    layer: int,
    batch_size: int = 4,
    reduce: str = "mean",
    cache: bool = True,
) -> torch.Tensor:
    """[n_conditions, n]: `continuation_logprobs` for each (direction, strength), the uncached ones sharing passes.

    Each condition is cached on its own, keyed like `continuation_logprobs` (plus this code's version); the missing
    ones run as extra rows of the same batches on the unsteered prefix (as many as LOGITS_BYTES allows per pass).
    A remote model, and strength 0, take the one-call path.
    """
    if len(directions) != len(strengths) or not len(directions):
        raise ValueError(f"directions ({len(directions)}) and strengths ({len(strengths)}): give one of each per condition")
    kw = dict(layer=layer, batch_size=batch_size, reduce=reduce, cache=cache)
    deltas = [steering_vector(model, d, layer, s) for d, s in zip(directions, strengths)]
    keys = [  # its own entries (another computation), keyed like continuation_logprobs' requests
        request_key(logprobs_request(model, prompts, continuations, d, layer, batch_size, reduce), LOGPROBS_EACH_VERSION)
        for d in deltas
    ]
    todo = [
        j
        for j, d in enumerate(deltas)
        if not model.remote and d.any() and not (cache and read(cache_path(keys[j], "logprobs"), keys[j], "logprob") is not None)
    ]
    done = (
        dict(
            zip(
                todo,
                _logprobs_each(model, list(prompts), list(continuations), [deltas[j] for j in todo], layer, batch_size, reduce),
            )
        )
        if todo
        else {}
    )
    out = []
    for j, (d, s) in enumerate(zip(directions, strengths)):
        if model.remote or not deltas[j].any():  # the one-call path (strength 0: the unsteered entry)
            out.append(continuation_logprobs(model, prompts, continuations, d, strength=s, **kw))
        elif j in done:
            out.append(
                cached("logprobs", keys[j], lambda j=j: {"logprobs": done[j]}, use=cache)["logprobs"] if cache else done[j]
            )
        else:  # cached: read this function's own entry back (recomputed alone only if it vanished since the check)
            again = lambda j=j: {
                "logprobs": _logprobs_each(model, list(prompts), list(continuations), [deltas[j]], layer, batch_size, reduce)[0]
            }  # noqa: E731
            out.append(cached("logprobs", keys[j], again)["logprobs"])
    return torch.stack(out)


def _logprobs_each(
    model: CourseModel,
    prompts: list[str],
    continuations: list[str],
    deltas: list[torch.Tensor],
    layer: int,
    batch_size: int,
    reduce: str,
) -> list[torch.Tensor]:
    """The uncached computation behind continuation_logprobs_each: each batch repeated once per condition in the chunk."""
    from .scoring import _token_logprobs, scored_positions

    tok = model.tokenizer
    rows = _packed_rows(model, prompts, continuations, None)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    results = [dict() for _ in deltas]
    vocab = model._module.get_output_embeddings().weight.shape[0]
    for start in range(0, len(rows), batch_size):
        enc, src, tgt, (spans, _) = _batch(rows[start : start + batch_size], pad_id, _model_dtype(model))
        (b, T), n_tok = enc["input_ids"].shape, src.shape[1]
        keep = T - int(src[:, 0].min())  # from the earliest predicting position (a row's first) to the end
        idx = (src - (T - keep)).clamp(min=0)
        prefix = _unsteered_prefix(model, enc, layer)
        per = max(1, LOGITS_BYTES // (b * max(keep, n_tok) * vocab * 4))  # conditions per pass
        for c0 in range(0, len(deltas), per):
            k = len(deltas[c0 : c0 + per])
            big = {name: t.repeat(k, *([1] * (t.dim() - 1))) for name, t in enc.items()}
            added = torch.stack(deltas[c0 : c0 + per]).to(prefix.device, prefix.dtype).repeat_interleave(b, 0)[:, None, :]
            with torch.no_grad(), scored_positions(model, idx.repeat(k, 1)), model.trace(big, logits_to_keep=keep):
                token_lp = nnsight.save(
                    _token_logprobs(model, None, tgt.repeat(k, 1), added, None, layer, prefix.repeat(k, 1, 1))
                )
            for j in range(k):
                for r, q, L, i in spans:
                    lp = token_lp[j * b + r, q : q + L]
                    results[c0 + j][i] = lp.mean() if reduce == "mean" else lp.sum()
    return [torch.stack([res[i] for i in range(len(prompts))]) for res in results]


def perplexity_each(
    model: CourseModel, texts: Sequence[str], directions: Sequence[torch.Tensor], strengths: Sequence[float], *, layer: int
) -> list[float]:
    """`perplexity` for each (direction, strength): the steered runs share passes (`continuation_logprobs_each`)."""
    heads, tails = _split_first_token(model, texts)
    lp = continuation_logprobs_each(model, heads, tails, directions, strengths, layer=layer, reduce="mean")
    return [float(torch.exp(-row.mean())) for row in lp]


def _split_first_token(model: CourseModel, texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each text's first token (the prompt) and the rest (the scored continuation), decoded."""
    tok = model.tokenizer
    heads, tails = [], []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        heads.append(tok.decode(ids[:1]))
        tails.append(tok.decode(ids[1:]))
    return heads, tails


def perplexity(
    model: CourseModel,
    texts: Sequence[str],
    direction: torch.Tensor | None = None,
    *,
    layer: int | None = None,
    strength: float = 0.0,
) -> float:
    """Perplexity of texts under steering (from their 2nd token; exp of the mean negative log-probability)."""
    heads, tails = _split_first_token(model, texts)
    lp = continuation_logprobs(model, heads, tails, direction, layer=layer, strength=strength, reduce="mean")
    return float(torch.exp(-lp.mean()))


CODE_VERSION = code_version(_generate)  # part of every generation's cache key
WORD_GRADIENTS_VERSION = code_version(_word_gradients) + SCORING_VERSION  # part of every word_gradients key
LOGPROBS_EACH_VERSION = code_version(_logprobs_each) + SCORING_VERSION  # part of continuation_logprobs_each keys
