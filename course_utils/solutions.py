"""Reference answers to the notebook exercises (used by the checks when an exercise is left unfilled)."""
from __future__ import annotations

from typing import Any

import nnsight
import torch


def residual_after(model: Any, prompt: str, layer: int) -> torch.Tensor:
    """The residual stream after decoder layer `layer` for one prompt: [n_tokens, d_model]."""
    with torch.no_grad(), model.trace(prompt, remote=getattr(model, "remote", False)):
        out = nnsight.save(model.layer(layer).output)
    return out[0].detach().cpu()  # the output is [batch, tokens, d_model]; row 0 is our only prompt
