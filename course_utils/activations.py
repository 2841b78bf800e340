"""Read the residual stream with nnsight: per-layer activations of many texts, reduced and cached on disk."""

from __future__ import annotations

from collections.abc import Sequence

import nnsight
import torch
from tqdm.auto import tqdm

from .cache import cached, code_version, request_key, texts_sha256
from .models import CourseModel, model_key, tokenize

REDUCES = ("mean", "last", "none", "norm")
PER_TOKEN = ("none", "norm")  # reductions that keep one entry per real token


def masked_mean(acts: torch.Tensor, mask: torch.Tensor, skip_first: int) -> torch.Tensor:
    """Mean over each row's real tokens from its `skip_first`-th on: acts [b, t, d], mask [b, t] -> [b, d]."""
    mask = mask.to(acts.device)
    position = mask.cumsum(-1) - 1  # index of each token among the real tokens of its row
    keep = (mask.bool() & (position >= skip_first)).float().unsqueeze(-1)
    return (acts.float() * keep).sum(1) / keep.sum(1)  # summed in float32 whatever the model's dtype


def last_token(acts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The activation at each row's last real token: acts [b, t, d], mask [b, t] -> [b, d]."""
    mask = mask.to(acts.device)
    idx = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(-1)
    return acts[torch.arange(acts.shape[0], device=acts.device), idx].float()


def _check_args(
    model: CourseModel, texts: Sequence[str], layers: Sequence[int] | None, reduce: str, skip_first: int, batch_size: int
) -> list[int]:
    """Validate arguments; return the layer list."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string (wrap it: [text])")
    if len(texts) == 0:
        raise ValueError("texts is empty: pass at least one text")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"texts[{i}] must be a non-empty string, got {t!r}")
    if reduce not in REDUCES:
        raise ValueError(f"reduce={reduce!r} is not allowed: use one of {REDUCES}")
    if not isinstance(skip_first, int) or skip_first < 0:
        raise ValueError(f"skip_first={skip_first!r} must be an int >= 0")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1")
    n = model.n_layers
    layers = list(range(n)) if layers is None else [int(l) for l in layers]
    bad = [l for l in layers if not 0 <= l < n]
    if bad or not layers:
        raise ValueError(f"layers={layers!r}: each layer must be in 0..{n - 1}")
    return layers


def _cache_key(model: CourseModel, texts: Sequence[str], layers: list[int], reduce: str, skip_first: int) -> str:
    """The JSON description of a request (with the code version of the extraction); its hash names the cache file."""
    request = {
        "model": model_key(model),
        "n_texts": len(texts),
        "texts_sha256": texts_sha256(texts),
        "layers": layers,
        "reduce": reduce,
        "skip_first": skip_first if reduce == "mean" else None,
    }
    return request_key(request, CODE_VERSION)


SESSION_BATCHES = 16  # a remote (NDIF) model runs this many batches per request, in one `model.session`


def _reduced_layers(
    model: CourseModel, mask: torch.Tensor, layers: list[int], reduce: str, skip_first: int
) -> list[torch.Tensor]:
    """Inside a trace: each asked layer's output, reduced where it lives (GPU or NDIF's server), as float32 on the CPU."""
    saved = []
    for layer in layers:
        out = model.layer(layer).output
        out = out[0] if isinstance(out, tuple) else out
        # the reductions move the client-side mask to the activations' device
        if reduce == "mean":
            out = masked_mean(out, mask, skip_first)
        elif reduce == "last":
            out = last_token(out, mask)
        elif reduce == "norm":
            out = out.float().norm(dim=-1)  # [b, t]: a per-token number instead of a d_model vector
        saved.append(out.detach().float().cpu())
    return saved


def _batch_outputs(model: CourseModel, encs: list[dict], layers: list[int], reduce: str, skip_first: int, show: bool):
    """Every batch's reduced layers: one trace per batch locally; on a remote model, SESSION_BATCHES per request."""
    if not model.remote:
        for enc in tqdm(encs, desc="extracting activations", disable=not show, leave=False):
            with torch.no_grad(), model.trace(enc) as tracer:
                saved = nnsight.save(_reduced_layers(model, enc["attention_mask"], layers, reduce, skip_first))
                tracer.stop()  # the layers above the last one asked for (and the unembedding) are not needed
            yield saved
        return
    for start in tqdm(range(0, len(encs), SESSION_BATCHES), desc="NDIF requests", disable=not show, leave=False):
        yield from _remote_outputs(model, encs[start : start + SESSION_BATCHES], layers, reduce, skip_first)


def _remote_outputs(model: CourseModel, chunk: list[dict], layers: list[int], reduce: str, skip_first: int) -> list:
    """One NDIF request (a session) for a chunk of batches. The block sent holds only torch expressions and layer
    envoys resolved here on the client: NDIF has no course_utils, so no course function may travel in a request
    (the same reductions as masked_mean and last_token, written out). Only the asked layers come back; per-token
    outputs ("none") in the model's dtype, upcast here."""
    envoys = [model.layer(layer) for layer in layers]
    with torch.no_grad(), model.session(remote=model.remote):
        outs = list().save()
        for enc in chunk:
            with model.trace(enc):
                saved = []
                for envoy in envoys:
                    out = envoy.output
                    out = out[0] if isinstance(out, tuple) else out
                    mask = enc["attention_mask"].to(out.device)
                    if reduce == "mean":
                        keep = (mask.bool() & (mask.cumsum(-1) - 1 >= skip_first)).float().unsqueeze(-1)
                        out = (out.float() * keep).sum(1) / keep.sum(1)
                    elif reduce == "last":
                        idx = (mask * torch.arange(mask.shape[1], device=out.device)).argmax(-1)
                        out = out[torch.arange(out.shape[0], device=out.device), idx].float()
                    elif reduce == "norm":
                        out = out.float().norm(dim=-1)
                    saved.append(out.detach().cpu())
                outs.append(saved)
    return [[o.float() for o in saved] for saved in outs]


TOKEN_BUDGET = 4096  # at most this many padded tokens (rows x longest row) in one batch: long tails get small batches


def token_budget_batches(sorted_lengths: Sequence[int], batch_size: int, budget: int) -> list[list[int]]:
    """Consecutive index batches of at most `batch_size` rows and `budget` padded tokens (one row always fits)."""
    batches: list[list[int]] = []
    for i, n in enumerate(sorted_lengths):
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * n <= budget:
            batches[-1].append(i)  # lengths ascend, so n is the padded length of the grown batch
        else:
            batches.append([i])
    return batches


def _run_batches(
    model: CourseModel,
    texts: Sequence[str],
    layers: list[int],
    reduce: str,
    skip_first: int,
    batch_size: int,
    progress: bool | None,
) -> dict[str, torch.Tensor]:
    """Run the model over length-sorted batches and reduce each layer's output inside the trace."""
    lengths = [len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    if reduce == "mean":
        short = [i for i, n in enumerate(lengths) if n <= skip_first]
        if short:
            raise ValueError(
                f"texts[{short[0]}] has only {lengths[short[0]]} tokens, not more than "
                f"skip_first={skip_first}: nothing left to average (lower skip_first or lengthen it)"
            )
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    batches = token_budget_batches([lengths[i] for i in order], batch_size, TOKEN_BUDGET)
    batches = [[order[j] for j in b] for b in batches]
    encs = [tokenize(model, [texts[i] for i in batch]) for batch in batches]
    show = progress if progress is not None else len(batches) > 2
    results: dict[int, torch.Tensor] = {}
    for batch, enc, saved in zip(batches, encs, _batch_outputs(model, encs, layers, reduce, skip_first, show)):
        stacked = torch.stack(saved, dim=1)  # [b, L, (t,) d]
        mask = enc["attention_mask"]
        for j, i in enumerate(batch):
            if reduce in PER_TOKEN:
                results[i] = stacked[j][:, mask[j].bool()].transpose(0, 1)  # [t, L(, d)]
            else:
                results[i] = stacked[j]
    if reduce in PER_TOKEN:
        per_text = [results[i] for i in range(len(texts))]
        return {"acts": torch.cat(per_text), "lengths": torch.tensor([a.shape[0] for a in per_text])}
    return {"acts": torch.stack([results[i] for i in range(len(texts))])}


def extract_activations(
    model: CourseModel,
    texts: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    reduce: str = "mean",
    skip_first: int = 3,
    batch_size: int = 16,
    cache: bool = True,
    progress: bool | None = None,
) -> torch.Tensor | list[torch.Tensor]:
    """Residual-stream activations after each decoder layer: [n_texts, n_layers, d_model].

    reduce="none" gives a per-text list of [tokens, n_layers, d_model]; reduce="norm" the same list of per-token
    norms, [tokens, n_layers] (computed where the model runs: a remote model sends back numbers, not vectors).
    """
    layers = _check_args(model, texts, layers, reduce, skip_first, batch_size)
    key = _cache_key(model, texts, layers, reduce, skip_first)
    tensors = cached(
        "activations", key, lambda: _run_batches(model, texts, layers, reduce, skip_first, batch_size, progress), use=cache
    )
    if reduce in PER_TOKEN:
        return list(torch.split(tensors["acts"], tensors["lengths"].tolist()))
    return tensors["acts"]


CODE_VERSION = code_version(
    masked_mean, last_token, _reduced_layers, _batch_outputs, _remote_outputs, _run_batches
)  # part of every cache key
