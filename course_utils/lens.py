"""The logit lens: which output tokens a residual-stream direction promotes, read through the model's own final norm."""

from __future__ import annotations

from typing import Any

import torch

from .models import CourseModel

CHUNK_ROWS = 8192  # unembedding rows upcast to float32 at a time (a 128k x 4096 head would be 2 GB as one copy)


def _as_rows(model: CourseModel, vectors: Any) -> torch.Tensor:
    """Directions as a float32 CPU matrix [n, d_model] (one vector becomes one row); checks the width."""
    v = torch.as_tensor(vectors).detach().float().cpu()
    if v.dim() > 2 or v.shape[-1] != model.d_model or (v.dim() == 1 and v.numel() != model.d_model):
        raise ValueError(f"vector has shape {tuple(v.shape)}; the model's d_model is {model.d_model} ([d] or [n, d])")
    return v.reshape(-1, model.d_model)


def direction_logits(model: CourseModel, vector: torch.Tensor) -> torch.Tensor:
    """Logits [vocab] (or [n, vocab] for [n, d] vectors) that `vector` adds: unembedding of final_norm(v) - final_norm(0).

    Applying the model's own norm module handles every gain convention (Llama's `weight`, Gemma's
    `1 + weight`, GPT-2's LayerNorm); subtracting its value at zero removes a LayerNorm's bias, which is
    not part of the direction. The norm runs in the model's dtype; the product is summed in float32, CHUNK_ROWS
    rows of the unembedding at a time, so no float32 copy of the whole unembedding is ever made.
    """
    rows = _as_rows(model, vector)
    if getattr(model, "remote", False):
        logits = _server_side(model, rows, k=None)
    else:
        norm, w_u = model.final_norm, model.unembed.weight
        v = rows.to(w_u.device, w_u.dtype)
        with torch.no_grad():
            shown = (norm(v) - norm(torch.zeros_like(v))).float()
            logits = torch.empty(shown.shape[0], w_u.shape[0], dtype=torch.float32, device=w_u.device)
            for start in range(0, w_u.shape[0], CHUNK_ROWS):
                logits[:, start : start + CHUNK_ROWS] = shown @ w_u[start : start + CHUNK_ROWS].float().T
        logits = logits.cpu()
    return logits[0] if torch.as_tensor(vector).dim() == 1 else logits


def top_token_ids(model: CourseModel, vectors: torch.Tensor, k: int = 10) -> torch.Tensor:
    """The ids [n, k] of the k tokens each direction (rows of `vectors`, or one vector) raises most.

    On a remote (NDIF) model all directions go in ONE request and only the k ids per direction come back.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be an int >= 1")
    rows = _as_rows(model, vectors)
    if getattr(model, "remote", False):
        return _server_side(model, rows, k=k)
    return direction_logits(model, rows).topk(k, dim=-1).indices


def _server_side(model: CourseModel, rows: torch.Tensor, k: int | None) -> torch.Tensor:
    """The lens for a remote (NDIF) model, whose local copy has no weights (meta device): the final norm and the
    unembedding are called inside a one-token trace, so they run where the weights are. The block holds only
    torch expressions and envoys resolved here (NDIF has no course_utils); with k, only the top-k ids come back."""
    root = model._envoy_root()
    norm = getattr(root, next(n for n in ("norm", "ln_f", "final_layernorm") if hasattr(root._module, n)))
    head = getattr(model, next(n for n, m in model._module.named_children() if m is model._module.get_output_embeddings()))
    last = model.layer(model.n_layers - 1)
    with torch.no_grad(), model.trace(model.tokenizer.bos_token or " ", remote=model.remote):
        h = last.output
        h = h[0] if isinstance(h, tuple) else h  # the server's device and dtype
        x = rows.to(h.device, h.dtype)
        logits = head(norm(x) - norm(torch.zeros_like(x))).float()
        if k is None:
            result = logits.cpu().save()
        else:
            result = logits.topk(k, dim=-1).indices.cpu().save()
    return result


def top_tokens(model: CourseModel, vector: torch.Tensor, k: int = 10) -> list[str]:
    """The k tokens whose logits `vector` raises most (logit lens)."""
    return top_tokens_of_each(model, _as_rows(model, vector), k)[0]


def top_tokens_of_each(model: CourseModel, vectors: torch.Tensor, k: int = 10) -> list[list[str]]:
    """The k tokens each row of `vectors` [n, d] raises most: one NDIF request for all of them on a remote model."""
    return [[model.tokenizer.decode([int(i)]) for i in ids] for ids in top_token_ids(model, vectors, k)]
