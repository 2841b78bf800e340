"""Valence of what a steered model would say, scored by an independent word lexicon (VADER), with no emotion words.

The lexicon is VADER's (Hutto & Gilbert, 2014; the `vaderSentiment` package, MIT licence, the word list ships in the
wheel and nothing is downloaded): about 7,500 English words rated from -4 (most negative) to +4 (most positive) by
human raters. Every word that data/emotions.csv forbids for any emotion (each emotion's name, synonyms and their
inflections, as the data module lists them) is removed first: otherwise a vector that makes the model say its own
name ("happy", "afraid") would be read back as a change of valence.

The measure (`expected_valence`): after each prompt comes one fixed neutral continuation; at each of its tokens, the
model's next-token distribution p gives an expected valence sum_t p(t) * valence(t), where a token's valence is its
lexicon word's (the token decoded, whitespace stripped, lower-cased; 0 for tokens that are no lexicon word). The
measure is the sum over the continuation's tokens. It is deterministic (no sampling), costs one forward pass per
prompt, and is a smooth function of the added vector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import nnsight
import torch

from .cache import cache_path, cached, code_version, read, request_key, tensor_sha256, texts_sha256
from .data import _entry_tokens, load_emotions
from .models import CourseModel, model_key
from .scoring import _batch, _model_dtype, _packed_rows, _unsteered_prefix, frozen_weights
from .steering import steering_vector

WORD = re.compile(r"[a-z]+")  # the lexicon entries kept: plain lower-case words (no emoticons, no phrases)


def emotion_words() -> frozenset[str]:
    """Every word of every forbidden entry and name of all emotions in emotions.csv, lower-cased ('at_ease' -> at, ease)."""
    emotions = load_emotions()
    words = set()
    for name, entries in zip(emotions.emotion, emotions.forbidden):
        for entry in [name, *entries]:
            words.update(_entry_tokens(entry))
    return frozenset(words)


@lru_cache(maxsize=1)
def _vader_lexicon() -> dict[str, float]:
    """VADER's word -> mean valence (-4..+4), read from the file in the installed package."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return dict(SentimentIntensityAnalyzer().lexicon)


def lexicon(drop_emotion_words: bool = True) -> dict[str, float]:
    """The scorer's lexicon: VADER's plain words -> valence (-4..+4), without the course's emotion words by default."""
    drop = emotion_words() if drop_emotion_words else frozenset()
    return {w: float(v) for w, v in _vader_lexicon().items() if WORD.fullmatch(w) and w not in drop}


def text_valence(text: str) -> float:
    """Mean valence (-4..+4) of a text's words found in `lexicon()` (emotion words removed); 0.0 if it has none."""
    lex = lexicon()
    found = [lex[w] for w in WORD.findall(text.lower()) if w in lex]
    return sum(found) / len(found) if found else 0.0


@lru_cache(maxsize=4)
def _token_valences(vocab: tuple[str, ...]) -> torch.Tensor:
    """The valence of each decoded token string (lexicon words only, emotion words removed): [vocab] float32."""
    lex = lexicon()
    return torch.tensor([lex.get(t.strip().lower(), 0.0) for t in vocab], dtype=torch.float32)


_VALENCES: dict[tuple[str, int], torch.Tensor] = {}


def token_valences(model: CourseModel) -> torch.Tensor:
    """[vocab] float32: each token id's valence (its decoded text, stripped and lower-cased, looked up in `lexicon()`)."""
    tok = model.tokenizer
    key = (model_key(model), len(tok))  # memoised: decoding the whole vocabulary costs about a second
    if key not in _VALENCES:
        _VALENCES[key] = _token_valences(tuple(tok.batch_decode([[i] for i in range(len(tok))])))
    return _VALENCES[key]


def expected_valence(
    model: CourseModel,
    prompts: Sequence[str],
    continuation: str,
    direction: torch.Tensor | None = None,
    *,
    layer: int | None = None,
    strength: float = 0.0,
    batch_size: int = 8,
    cache: bool = True,
) -> torch.Tensor:
    """[n_prompts]: the summed expected lexicon valence of the next-token distributions over `continuation`'s tokens.

    `direction` is steered in after `layer` at `strength` (relative to the layer's median token norm, as in
    `steering`), at every position; None (or strength 0) is the unsteered model.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if not prompts:
        raise ValueError("prompts is empty")
    if not isinstance(continuation, str) or not continuation.strip():
        raise ValueError(f"continuation={continuation!r}: give one non-empty string (the fixed neutral continuation)")
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength) if direction is not None else None
    if delta is not None and not delta.any():
        delta = None  # strength 0 is the unsteered run: one computation, one cache key
    values = token_valences(model)
    key = _valence_key(model, prompts, continuation, delta, layer, batch_size)
    compute = lambda: {"valence": _compute(model, list(prompts), continuation, delta, layer, values, batch_size)}  # noqa: E731
    return cached("valence", key, compute, use=cache)["valence"]


def expected_valence_each(
    model: CourseModel,
    prompts: Sequence[str],
    continuation: str,
    directions: Sequence[torch.Tensor],
    strengths: Sequence[float],
    *,
    layer: int,
    batch_size: int = 8,
    cache: bool = True,
) -> torch.Tensor:
    """[n_conditions, n_prompts]: `expected_valence` for each (direction, strength), the uncached ones in shared passes.

    Each condition reads and writes the cache entry its own `expected_valence` call does; the missing ones run as
    extra rows of the same batches, on the unsteered prefix computed once (a remote model runs them one by one).
    """
    if len(directions) != len(strengths) or not len(directions):
        raise ValueError(f"directions ({len(directions)}) and strengths ({len(strengths)}): give one of each per condition")
    one = lambda d, s, c=cache: expected_valence(
        model, prompts, continuation, d, layer=layer, strength=s, batch_size=batch_size, cache=c
    )  # noqa: E731
    if model.remote:
        return torch.stack([one(d, s) for d, s in zip(directions, strengths)])
    deltas = [steering_vector(model, d, layer, s) for d, s in zip(directions, strengths)]
    todo = [
        j
        for j, d in enumerate(deltas)
        if d.any() and not (cache and _is_cached(model, prompts, continuation, d, layer, batch_size))
    ]
    done: dict[int, torch.Tensor] = {}
    if todo:
        values = token_valences(model)
        stacked = torch.stack([deltas[j] for j in todo])
        got = _compute_each(model, list(prompts), continuation, stacked, layer, values, batch_size)
        done = {j: got[n] for n, j in enumerate(todo)}
    out = []
    for j, (d, s) in enumerate(zip(directions, strengths)):
        if j in done:
            key = _valence_key(model, prompts, continuation, deltas[j], layer, batch_size)
            out.append(cached("valence", key, lambda j=j: {"valence": done[j]}, use=cache)["valence"] if cache else done[j])
        else:
            out.append(one(d, s))
    return torch.stack(out)


def _valence_key(
    model: CourseModel, prompts: Sequence[str], continuation: str, delta: torch.Tensor | None, layer: int | None, batch_size: int
) -> str:
    """The cache key of one expected_valence request (delta None: unsteered)."""
    request = {
        "what": "expected_valence",
        "model": model_key(model),
        "texts_sha256": texts_sha256([*prompts, continuation]),
        "valences_sha256": tensor_sha256(token_valences(model)),
        "delta_sha256": tensor_sha256(delta),
        "layer": layer if delta is not None else None,
        "batch_size": batch_size,
    }
    return request_key(request, CODE_VERSION)


def _is_cached(
    model: CourseModel, prompts: Sequence[str], continuation: str, delta: torch.Tensor, layer: int, batch_size: int
) -> bool:
    """Whether an intact cache entry holds this expected_valence request."""
    key = _valence_key(model, prompts, continuation, delta, layer, batch_size)
    return read(cache_path(key, "valence"), key, "valence") is not None


def _compute_each(
    model: CourseModel,
    prompts: list[str],
    continuation: str,
    deltas: torch.Tensor,
    layer: int,
    values: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """[k, n]: _compute for k added vectors at once (each batch repeated k times, row block j steered by deltas[j])."""
    tok = model.tokenizer
    rows = _packed_rows(model, prompts, [continuation] * len(prompts), None)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    k = deltas.shape[0]
    out = torch.zeros(k, len(prompts))
    for start in range(0, len(rows), batch_size):
        enc, src, _, (items, _) = _batch(rows[start : start + batch_size], pad_id, _model_dtype(model))
        b, T = enc["input_ids"].shape
        keep = T - int(src.min())
        idx = (src - (T - keep)).clamp(min=0)
        prefix = _unsteered_prefix(model, enc, layer)
        big = {name: t.repeat(k, *([1] * (t.dim() - 1))) for name, t in enc.items()}
        added = deltas.to(prefix.device, prefix.dtype).repeat_interleave(b, 0)[:, None, :]  # [k * b, 1, d]
        streams = prefix.repeat(k, 1, 1)
        with torch.no_grad(), model.trace(big, logits_to_keep=keep):
            for i in range(layer):
                model.layer(i).skip(streams)
            model.layer(layer).skip(streams + added)
            logits = model.output.logits.save()  # [k * b, keep, vocab]
        rows_i = torch.arange(b, device=logits.device)[:, None]
        for j in range(k):  # one condition's rows at a time: the [rows, tokens, vocab] temporaries stay a batch's size
            picked = logits[j * b : (j + 1) * b][rows_i, idx.to(logits.device)].float()  # [b, n_tok, vocab]
            ev = (picked.softmax(-1) @ values.to(picked.device)).cpu()  # [b, n_tok]
            for r, q, L, i in items:
                out[j, i] = ev[r, q : q + L].sum()
    return out


def _compute(
    model: CourseModel,
    prompts: list[str],
    continuation: str,
    delta: torch.Tensor | None,
    layer: int | None,
    values: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """The uncached computation behind expected_valence (the scoring engine's rows, batches and unsteered prefix)."""
    tok = model.tokenizer
    rows = _packed_rows(model, prompts, [continuation] * len(prompts), None)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = torch.zeros(len(prompts))
    for start in range(0, len(rows), batch_size):
        enc, src, _, (items, _) = _batch(rows[start : start + batch_size], pad_id, _model_dtype(model))
        T = enc["input_ids"].shape[1]
        keep = T - int(src.min())
        idx = (src - (T - keep)).clamp(min=0)
        prefix = _unsteered_prefix(model, enc, layer) if delta is not None else None
        with torch.no_grad(), model.trace(enc, logits_to_keep=keep):
            if prefix is not None:  # layers up to the edit do not depend on it: feed the cached stream + delta
                for i in range(layer):
                    model.layer(i).skip(prefix)
                model.layer(layer).skip(prefix + delta.to(prefix.device, prefix.dtype))
            elif delta is not None:  # a remote model: edit the stream in place
                h = model.layer(layer).output
                model.layer(layer).output[:] = h + delta.to(h.device, h.dtype)
            logits = model.output.logits
            rows_i = torch.arange(logits.shape[0], device=logits.device)[:, None]
            picked = logits[rows_i, idx.to(logits.device)].float()  # [b, n_tok, vocab]
            ev = nnsight.save((picked.softmax(-1) @ values.to(picked.device)).cpu())  # [b, n_tok]
        for r, k, L, i in items:
            out[i] = ev[r, k : k + L].sum()
    return out


def valence_gradients(
    model: CourseModel, prompts: Sequence[str], continuation: str, *, layer: int, batch_size: int = 8, cache: bool = True
) -> torch.Tensor:
    """[n_prompts, d_model]: the gradient of `expected_valence` w.r.t. a vector added after `layer` (at strength 0).

    As in `derivatives`: a unit direction d steered at relative strength s moves prompt p's valence at
    s * N * grad[p] . d for small s (N the layer's median token norm), so one backward pass serves every direction.
    """
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    if model.remote:
        raise ValueError("valence_gradients runs on a local model only (remote=False); use expected_valence remotely")
    model.layer(layer)  # validates the index
    values = token_valences(model)
    request = {
        "what": "valence_gradients",
        "model": model_key(model),
        "texts_sha256": texts_sha256([*prompts, continuation]),
        "valences_sha256": tensor_sha256(values),
        "layer": int(layer),
        "batch_size": batch_size,
    }
    key = request_key(request, CODE_VERSION)
    compute = lambda: {"grad": _gradients(model, list(prompts), continuation, layer, values, batch_size)}  # noqa: E731
    return cached("valence", key, compute, use=cache)["grad"]


def _gradients(
    model: CourseModel, prompts: list[str], continuation: str, layer: int, values: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """The uncached computation behind valence_gradients (autograd through the layers above `layer`)."""
    tok = model.tokenizer
    rows = _packed_rows(model, prompts, [continuation] * len(prompts), None)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = torch.zeros(len(prompts), model.d_model)
    with frozen_weights(model):  # gradients w.r.t. the added vector only, never the weights
        for start in range(0, len(rows), batch_size):
            enc, src, _, (items, _) = _batch(rows[start : start + batch_size], pad_id, _model_dtype(model))
            prefix = _unsteered_prefix(model, enc, layer)
            T = enc["input_ids"].shape[1]
            keep = T - int(src.min())
            idx = (src - (T - keep)).clamp(min=0)
            delta = torch.zeros(prefix.shape[0], 1, prefix.shape[-1], dtype=torch.float32, requires_grad=True)
            with torch.enable_grad():
                with model.trace(enc, logits_to_keep=keep):
                    for i in range(layer):
                        model.layer(i).skip(prefix)
                    model.layer(layer).skip(prefix + delta.to(prefix.device, prefix.dtype))
                    logits = model.output.logits.save()
                rows_i = torch.arange(logits.shape[0], device=logits.device)[:, None]
                ev = logits[rows_i, idx.to(logits.device)].float().softmax(-1) @ values.to(logits.device)
                total = sum(ev[r, k : k + L].sum() for r, k, L, _ in items)
                (grad,) = torch.autograd.grad(total, delta)
            for r, _, _, i in items:
                out[i] = grad[r, 0].float().cpu()
    return out


CODE_VERSION = code_version(_compute, _compute_each, _gradients, _token_valences, lexicon, emotion_words, _packed_rows, _batch)
