"""The logit lens: which output tokens a residual-stream direction promotes, read through the model's own final norm."""
from __future__ import annotations

import torch

from .models import CourseModel


def direction_logits(model: CourseModel, vector: torch.Tensor) -> torch.Tensor:
    """Logits [vocab] that `vector` adds: the unembedding of final_norm(vector) - final_norm(0).

    Applying the model's own norm module handles every gain convention (Llama's `weight`, Gemma's
    `1 + weight`, GPT-2's LayerNorm); subtracting its value at zero removes a LayerNorm's bias, which is
    not part of the direction.
    """
    norm, w_u = model.final_norm, model.unembed.weight
    v = torch.as_tensor(vector).detach().flatten().to(w_u.device, w_u.dtype)
    if v.shape[0] != model.d_model:
        raise ValueError(f"vector has {v.shape[0]} dims; the model's d_model is {model.d_model}")
    with torch.no_grad():
        shown = norm(v[None]) - norm(torch.zeros_like(v)[None])
        return (shown.float() @ w_u.float().T)[0].cpu()


def top_tokens(model: CourseModel, vector: torch.Tensor, k: int = 10) -> list[str]:
    """The k tokens whose logits `vector` raises most (logit lens)."""
    return [model.tokenizer.decode([int(i)]) for i in direction_logits(model, vector).topk(k).indices]
