"""Directional derivatives: how fast a measure moves when a direction is steered in, at strength 0.

Steering adds `s * N * d` (N the layer's median token norm, d a unit direction) to the residual stream after one
layer. For a measure m built from continuation log-probabilities (a cheat-vs-honest log-odds, a choice score, the
log-probability of a word), its slope at s = 0 is exactly

    dm/ds = N * g . d,     g = the gradient of m with respect to the added vector (summed over the steered positions)

One backward pass per prompt gives g; after that, the slope of *any* direction is a dot product. So a null of
10,000 random directions costs no more than one, and the effect of a named direction and its null are the same
statistic. For a uniform random unit direction the slope has a known law (`sphere_slope_null`), a check on the
machinery. Finite strengths stay exact evaluations (`scoring.continuation_logprobs`): the derivative tells what a
small push does, and the notebooks show the two side by side to say when the linear picture holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats as sps

from .cache import cached, code_version, request_key, texts_sha256
from .models import CourseModel, model_key
from .scoring import _batch, _model_dtype, _packed_rows, _unsteered_prefix, frozen_weights


def measure_gradients(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    weights: Sequence[float],
    *,
    layer: int,
    reduce: str = "mean",
    steer_spans: Sequence[tuple[int, int] | None] | None = None,
    batch_size: int = 4,
    cache: bool = True,
) -> torch.Tensor:
    """Per distinct prompt, the gradient of sum_i weights[i] * logprob(continuation i) w.r.t. a vector added after `layer`.

    Returns [n_distinct_prompts, d_model] float32 (prompts in order of first appearance): row p is d m_p / d delta,
    where m_p is the weighted sum over the continuations of prompt p and delta is added at every position (or only
    at the tokens of steer_spans). Multiply by the median token norm and dot with a unit direction for the slope.
    """
    if isinstance(prompts, str) or isinstance(continuations, str):
        raise TypeError("prompts and continuations must be lists of strings, not one string")
    weights = [float(w) for w in weights]
    if not (len(prompts) == len(continuations) == len(weights)) or not prompts:
        raise ValueError("prompts, continuations and weights must be non-empty lists of the same length")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce={reduce!r}: use one of ('mean', 'sum')")
    model.layer(layer)  # validates the index
    spans = None if steer_spans is None else [None if sp is None else tuple(int(x) for x in sp) for sp in steer_spans]
    if spans is not None and len(spans) != len(prompts):
        raise ValueError(f"steer_spans has {len(spans)} entries for {len(prompts)} prompts")
    request = {
        "what": "measure_gradients",
        "model": model_key(model),
        "texts_sha256": texts_sha256(list(prompts) + list(continuations)),
        "weights": weights,
        "layer": int(layer),
        "reduce": reduce,
        "steer_spans": spans,
        "batch_size": batch_size,
    }
    key = request_key(request, CODE_VERSION)
    compute = lambda: {"grad": _gradients(model, prompts, continuations, weights, layer, reduce, spans, batch_size)}  # noqa: E731
    return cached("gradients", key, compute, use=cache)["grad"]


def _gradients(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    weights: list[float],
    layer: int,
    reduce: str,
    spans: list | None,
    batch_size: int,
) -> torch.Tensor:
    """The uncached computation behind measure_gradients."""
    tok = model.tokenizer
    rows = _packed_rows(model, prompts, continuations, spans)
    order = {p: j for j, p in enumerate(dict.fromkeys(prompts))}  # distinct prompts, in order of first appearance
    for row in rows:
        row["group"] = order[prompts[row["items"][0][0]]]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    grads = torch.zeros(len(order), model.d_model)
    if model.remote:  # NDIF: nnsight's own backward, written in torch expressions (no course code travels)
        batches = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            enc, src, tgt, (items, where) = _batch(chunk, pad_id, torch.float32)
            batches.append((chunk, enc, src, tgt, _token_weights(items, weights, reduce, src.shape), where))
        for start in range(0, len(batches), SESSION_BATCHES):
            part = batches[start : start + SESSION_BATCHES]
            for (chunk, *_), g in zip(part, _remote_gradients(model, [b[1:] for b in part], layer)):
                for r, row in enumerate(chunk):
                    grads[row["group"]] += g[r]
        return grads
    with frozen_weights(model):  # gradients w.r.t. the added vector only, never the weights
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            enc, src, tgt, (items, where) = _batch(chunk, pad_id, _model_dtype(model))
            g = _batch_gradient(model, enc, src, tgt, where, items, weights, layer, reduce)
            for r, row in enumerate(chunk):
                grads[row["group"]] += g[r]
    return grads


def _batch_gradient(
    model: CourseModel,
    enc: dict[str, torch.Tensor],
    src: torch.Tensor,
    tgt: torch.Tensor,
    where: torch.Tensor | None,
    items: list[tuple[int, int, int, int]],
    weights: list[float],
    layer: int,
    reduce: str,
) -> torch.Tensor:
    """[b, d] gradients for one batch: position_gradients summed over the steered positions (all, or `where`)."""
    grad = position_gradients(model, enc, src, tgt, items, weights, layer, reduce)
    if where is not None:
        grad = grad * where.to(grad.device, grad.dtype).unsqueeze(-1)
    return grad.sum(1).float().cpu()


def position_gradients(
    model: CourseModel,
    enc: dict[str, torch.Tensor],
    src: torch.Tensor,
    tgt: torch.Tensor,
    items: list[tuple[int, int, int, int]],
    weights: list[float],
    layer: int,
    reduce: str = "mean",
) -> torch.Tensor:
    """[b, T, d]: d (sum_i weights[i] * logprob of item i) / d a vector added after `layer` at each position.

    One batch of scoring rows (`scoring._batch`); the unsteered stream up to `layer` is reused, the layers above run
    with autograd. Summing over positions gives the gradient of a vector added everywhere (or on any span), so one
    backward pass serves several steering spans (`cheating.cheat_gradients` sums it two ways).
    """
    prefix = _unsteered_prefix(model, enc, layer)
    delta = torch.zeros(prefix.shape, device=prefix.device, dtype=torch.float32, requires_grad=True)
    T = enc["input_ids"].shape[1]
    keep = T - int(src.min())
    idx = (src - (T - keep)).clamp(min=0)
    with torch.enable_grad():
        with model.trace(enc, logits_to_keep=keep):
            for i in range(layer):
                model.layer(i).skip(prefix)
            model.layer(layer).skip(prefix + delta.to(prefix.dtype))
            logits = model.output.logits.save()
        rows_i = torch.arange(logits.shape[0], device=logits.device)[:, None]
        picked = logits[rows_i, idx.to(logits.device)].float()
        token_lp = picked.gather(-1, tgt.to(logits.device).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, -1)
        total = token_lp.new_zeros(())
        for r, k, L, i in items:
            lp = token_lp[r, k : k + L]
            total = total + weights[i] * (lp.mean() if reduce == "mean" else lp.sum())
        (grad,) = torch.autograd.grad(total, delta)
    return grad


SESSION_BATCHES = 16  # a remote (NDIF) model computes this many batches' gradients per request


def _token_weights(items: list, weights: list[float], reduce: str, shape: torch.Size) -> torch.Tensor:
    """[b, n_tok] weight of each scored token in the measure: weights[i] (sum) or weights[i] / its length (mean)."""
    w = torch.zeros(shape)
    for r, k, L, i in items:
        w[r, k : k + L] = weights[i] / L if reduce == "mean" else weights[i]
    return w


def _remote_gradients(model: CourseModel, batches: list, layer: int) -> list[torch.Tensor]:
    """One NDIF request for a chunk of batches: each batch's [b, d] gradient of its weighted log-probabilities with
    respect to the stream after `layer`, summed over the steered positions, through nnsight's `with loss.backward()`."""
    edit = model.layer(layer)  # resolved here: NDIF's model has no course methods
    with model.session(remote=model.remote):
        outs = list().save()
        for enc, src, tgt, w, where in batches:
            T = enc["input_ids"].shape[1]
            keep = T - int(src.min())
            idx = (src - (T - keep)).clamp(min=0)
            mask = torch.ones(enc["input_ids"].shape) if where is None else where.float()
            with model.trace(enc, logits_to_keep=keep):
                h = edit.output
                h.requires_grad_(True)
                logits = model.output.logits
                rows_i = torch.arange(logits.shape[0], device=logits.device)[:, None]
                picked = logits[rows_i, idx.to(logits.device)].float()
                lp = picked.gather(-1, tgt.to(logits.device).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, -1)
                total = (lp * w.to(lp.device)).sum()
                with total.backward():
                    g = h.grad
                    outs.append((g.float() * mask.to(g.device).unsqueeze(-1)).sum(1).cpu())
    return list(outs)


def unit_rows(directions: torch.Tensor) -> torch.Tensor:
    """Each row scaled to unit length, [k, d] float32 (a single [d] vector becomes [1, d])."""
    d = torch.as_tensor(directions).detach().float().cpu()
    d = d[None] if d.dim() == 1 else d
    norms = d.norm(dim=-1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("a direction is the zero vector")
    return d / norms


def slopes(gradients: torch.Tensor, directions: torch.Tensor, norm: float) -> torch.Tensor:
    """Slope of the measure per unit of relative strength, for each prompt and direction: [n_prompts, k]."""
    return float(norm) * gradients.float() @ unit_rows(directions).T


def random_directions(d_model: int, n: int, seed: int = 0) -> torch.Tensor:
    """n unit vectors drawn uniformly on the sphere (seeded), [n, d_model]: the null's directions."""
    if n < 1:
        raise ValueError(f"n={n}: draw at least one direction")
    g = torch.Generator().manual_seed(int(seed))
    return unit_rows(torch.randn(n, d_model, generator=g))


def sphere_slope_null(gradient: torch.Tensor, norm: float) -> sps.rv_continuous:
    """The exact law of N * g . u for u uniform on the unit sphere: N |g| (2B - 1), B ~ Beta((d-1)/2, (d-1)/2)."""
    g = torch.as_tensor(gradient).float().flatten()
    a = (g.numel() - 1) / 2
    scale = float(norm) * float(g.norm())
    return sps.beta(a, a, loc=-scale, scale=2 * scale)


def agreement(derivative: Sequence[float], exact: Sequence[float]) -> dict[str, float]:
    """How well derivatives predict exact finite-strength slopes: Pearson r and the largest absolute error."""
    a, b = np.asarray(derivative, float), np.asarray(exact, float)
    r = float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else float("nan")
    return {"r": r, "max_abs_error": float(np.max(np.abs(a - b))), "n": int(len(a))}


# part of every cache key
CODE_VERSION = code_version(_packed_rows, _gradients, _batch_gradient, position_gradients, _token_weights, _remote_gradients)
