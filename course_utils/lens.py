"""The logit lens: which output tokens a residual-stream direction promotes, read through the model's own final norm."""

from __future__ import annotations

import nnsight
import torch

from .models import CourseModel


def direction_logits(model: CourseModel, vector: torch.Tensor) -> torch.Tensor:
    """Logits [vocab] that `vector` adds: the unembedding of final_norm(vector) - final_norm(0).

    Applying the model's own norm module handles every gain convention (Llama's `weight`, Gemma's
    `1 + weight`, GPT-2's LayerNorm); subtracting its value at zero removes a LayerNorm's bias, which is
    not part of the direction.
    """
    if torch.as_tensor(vector).numel() != model.d_model:
        raise ValueError(f"vector has {torch.as_tensor(vector).numel()} dims; the model's d_model is {model.d_model}")
    if getattr(model, "remote", False):
        return _server_side(model, torch.as_tensor(vector).detach().float().cpu().flatten())
    norm, w_u = model.final_norm, model.unembed.weight
    v = torch.as_tensor(vector).detach().flatten().to(w_u.device, w_u.dtype)
    with torch.no_grad():
        shown = norm(v[None]) - norm(torch.zeros_like(v)[None])
        return (shown.float() @ w_u.float().T)[0].cpu()


def _server_side(model: CourseModel, v: torch.Tensor) -> torch.Tensor:
    """The same lens for a remote (NDIF) model, whose local copy has no weights (meta device): the final norm and
    the unembedding are called inside a one-token trace, so they run where the weights are."""
    norm = getattr(
        model._envoy_root(), next(n for n in ("norm", "ln_f", "final_layernorm") if hasattr(model._envoy_root()._module, n))
    )
    head = getattr(model, next(n for n, m in model._module.named_children() if m is model._module.get_output_embeddings()))
    with torch.no_grad(), model.trace(model.tokenizer.bos_token or " ", remote=model.remote):
        h = model.layer(model.n_layers - 1).output  # the server's device and dtype
        x = v.to(h.device, h.dtype)[None]
        logits = head(norm(x) - norm(torch.zeros_like(x)))
        logits = nnsight.save(logits.float()[0].cpu())
    return logits


def top_tokens(model: CourseModel, vector: torch.Tensor, k: int = 10) -> list[str]:
    """The k tokens whose logits `vector` raises most (logit lens)."""
    return [model.tokenizer.decode([int(i)]) for i in direction_logits(model, vector).topk(k).indices]
