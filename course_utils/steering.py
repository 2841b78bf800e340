"""Steering: add a direction to the residual stream at one layer, at every position and every generation step.

Strength is relative: the added vector is `strength * median_token_norm(layer) * unit(direction)`, so
strength 0.1 means "a tenth of a typical token's residual norm at that layer" (the first token,
whose norm is ~100x the others, is left out of that median).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import nnsight
import torch

from .activations import extract_activations
from .models import CourseModel, tokenize

REFERENCE_TEXTS = 32  # stories and neutral dialogues used to measure a layer's typical token norm


_MEDIAN_NORMS: dict[tuple[str, int], float] = {}


def median_token_norm(model: CourseModel, layer: int) -> float:
    """The median residual-stream norm of a token at `layer` (first tokens excluded), over reference texts."""
    model.layer(layer)  # validates the index
    key = (model.course_id, layer)
    if key not in _MEDIAN_NORMS:
        from .data import load_stories
        from .vectors import neutral_texts

        stories = load_stories(split="train").text.tolist()
        texts = stories[:: max(1, len(stories) // REFERENCE_TEXTS)][:REFERENCE_TEXTS]
        texts += neutral_texts(model, REFERENCE_TEXTS)
        per_text = extract_activations(model, texts, layers=[layer], reduce="none", progress=False)
        norms = torch.cat([a[1:, 0].norm(dim=-1) for a in per_text])  # leave out each text's first token
        _MEDIAN_NORMS[key] = float(norms.median())
    return _MEDIAN_NORMS[key]


def random_direction(d_model: int, seed: int) -> torch.Tensor:
    """A unit vector drawn uniformly at random (seeded): the control direction."""
    g = torch.Generator().manual_seed(int(seed))
    v = torch.randn(d_model, generator=g)
    return v / v.norm()


def steering_vector(model: CourseModel, direction: torch.Tensor, layer: int, strength: float) -> torch.Tensor:
    """The vector actually added: strength x median token norm at `layer` x the unit direction."""
    direction = torch.as_tensor(direction, dtype=torch.float32).flatten()
    if direction.shape[0] != model.d_model:
        raise ValueError(f"direction has {direction.shape[0]} dims; the model's d_model is {model.d_model}")
    norm = direction.norm()
    if norm == 0:
        raise ValueError("direction is the zero vector")
    return float(strength) * median_token_norm(model, layer) * direction / norm


def generate(model: CourseModel, prompts: str | Sequence[str], direction: torch.Tensor | None = None, *,
             layer: int | None = None, strength: float = 0.0, max_new_tokens: int = 40, do_sample: bool = False,
             temperature: float = 1.0, seed: int = 0) -> list[str]:
    """Generate replies with `direction` added at `layer` on every step (prompt pass included); returns the new text."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompts is empty")
    enc = tokenize(model, prompts)
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
              "pad_token_id": model.tokenizer.pad_token_id}
    if do_sample:
        kwargs["temperature"] = temperature
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength).to(model.device) if direction is not None else None
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        # An open `tracer.iter[:]` ends by outrunning the model; nnsight warns about that by design.
        warnings.filterwarnings("ignore", message=".*was never reached: the loop asked for a step.*")
        with torch.no_grad(), model.generate(**kwargs, remote=model.remote) as tracer:
            with tracer.invoke(enc):
                if delta is not None:
                    for _ in tracer.iter[:]:  # every generation step, the prompt pass included
                        model.layer(layer).output[:] = model.layer(layer).output + delta
            with tracer.invoke():
                out = tracer.result.save()
    new = out[:, enc["input_ids"].shape[1]:]
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def continuation_logprobs(model: CourseModel, prompts: Sequence[str], continuations: Sequence[str],
                          direction: torch.Tensor | None = None, *, layer: int | None = None, strength: float = 0.0,
                          batch_size: int = 8, reduce: str = "mean", reuse_prefix: bool = True) -> torch.Tensor:
    """Log-probability of each continuation after its prompt, steered: mean per token ("mean") or total ("sum").

    With reuse_prefix (default), the unsteered stream up to `layer` is computed once per batch and reused
    by every later call with other directions or strengths (the layers before the edit are skipped).
    """
    if len(prompts) != len(continuations) or not prompts:
        raise ValueError("prompts and continuations must be non-empty lists of the same length")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce={reduce!r}: use 'mean' or 'sum'")
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength).to(model.device) if direction is not None else None
    tok = model.tokenizer
    results = []
    for start in range(0, len(prompts), batch_size):
        ids, n_cont = [], []
        for p, c in zip(prompts[start:start + batch_size], continuations[start:start + batch_size]):
            p_ids = tok(p, add_special_tokens=not (tok.bos_token and p.startswith(tok.bos_token)))["input_ids"]
            c_ids = tok(c, add_special_tokens=False)["input_ids"]
            if not c_ids:
                raise ValueError(f"continuation {start + len(ids)} is empty")
            ids.append(p_ids + c_ids)
            n_cont.append(len(c_ids))
        enc = dict(tok.pad({"input_ids": ids}, return_tensors="pt", padding=True))
        keep = max(n_cont) + 1  # pads are on the left, so every continuation sits in the last `keep` positions
        targets = enc["input_ids"][:, -keep + 1:].to(model.device)
        prefix = _unsteered_prefix(model, enc, layer) if delta is not None and reuse_prefix else None
        with torch.no_grad(), model.trace(enc, remote=model.remote, logits_to_keep=keep):
            if prefix is not None:
                # Layers 0..layer do not depend on the steering: skip them and feed the cached stream + delta.
                for i in range(layer):
                    model.layer(i).skip(prefix)
                model.layer(layer).skip(prefix + delta)
            elif delta is not None:
                model.layer(layer).output[:] = model.layer(layer).output + delta
            logits = model.output.logits[:, :-1].float()  # logits at position i predict token i + 1
            token_lp = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            token_lp = nnsight.save(token_lp)
        token_lp = token_lp.cpu()
        for row, n in enumerate(n_cont):
            lp = token_lp[row, -n:]
            results.append(lp.mean() if reduce == "mean" else lp.sum())
    return torch.stack(results)


_PREFIXES: dict[tuple, torch.Tensor] = {}
PREFIX_CACHE_ITEMS = 64


def _unsteered_prefix(model: CourseModel, enc: dict[str, torch.Tensor], layer: int) -> torch.Tensor | None:
    """The unsteered residual stream after `layer` for a batch, memoised in memory (None for remote models)."""
    if model.remote:
        return None
    key = (model.course_id, id(model), layer, tuple(map(tuple, enc["input_ids"].tolist())))
    if key not in _PREFIXES:
        with torch.no_grad(), model.trace(enc):
            out = nnsight.save(model.layer(layer).output)
        if len(_PREFIXES) >= PREFIX_CACHE_ITEMS:
            _PREFIXES.pop(next(iter(_PREFIXES)))
        _PREFIXES[key] = out.detach()
    return _PREFIXES[key]


def perplexity(model: CourseModel, texts: Sequence[str], direction: torch.Tensor | None = None, *,
               layer: int | None = None, strength: float = 0.0) -> float:
    """Perplexity of texts under steering (from their 2nd token; exp of the mean negative log-probability)."""
    tok = model.tokenizer
    heads, tails = [], []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        heads.append(tok.decode(ids[:1]))
        tails.append(tok.decode(ids[1:]))
    lp = continuation_logprobs(model, heads, tails, direction, layer=layer, strength=strength, reduce="mean")
    return float(torch.exp(-lp.mean()))
