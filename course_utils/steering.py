"""Steering: add a direction to the residual stream at one layer, at every position and every generation step.

Strength is relative: the added vector is `strength * median_token_norm(layer) * unit(direction)`, so
strength 0.1 means "a tenth of a typical token's residual norm at that layer" (the first token,
whose norm is ~100x the others, is left out of that median).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence

import nnsight
import torch

from .activations import cached, extract_activations, texts_sha256
from .models import CourseModel, tokenize

STEER_CACHE_VERSION = 2
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
             temperature: float = 1.0, seed: int = 0, cache: bool = True) -> list[str]:
    """Generate replies with `direction` added at `layer` on every step (prompt pass included); returns the new text.

    With cache (default), the new tokens are stored under build/cache/generations, keyed by the model, the
    prompts, the exact added vector and the sampling settings (seed included), so a rerun reads them back.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompts is empty")
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength).to(model.device) if direction is not None else None
    key = _request_key(model, "generate", prompts, delta, layer=layer, max_new_tokens=max_new_tokens,
                       do_sample=do_sample, temperature=temperature if do_sample else None, seed=seed if do_sample else None)
    new = cached("generations", key, lambda: {"tokens": _generate(model, prompts, delta, layer, max_new_tokens, do_sample,
                                                                   temperature, seed)}, use=cache)["tokens"]
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def _generate(model: CourseModel, prompts: list[str], delta: torch.Tensor | None, layer: int | None,
              max_new_tokens: int, do_sample: bool, temperature: float, seed: int) -> torch.Tensor:
    """The uncached computation behind generate: the new token ids, [n_prompts, new_tokens]."""
    enc = tokenize(model, prompts)
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
              "pad_token_id": model.tokenizer.pad_token_id}
    if do_sample:
        kwargs["temperature"] = temperature
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
    return out[:, enc["input_ids"].shape[1]:].cpu().contiguous()


def _request_key(model: CourseModel, what: str, texts: Sequence[str], delta: torch.Tensor | None, **params) -> str:
    """The JSON description of a steered computation; its hash names the cache file."""
    d = hashlib.sha256(delta.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest() if delta is not None else None
    return json.dumps({"version": STEER_CACHE_VERSION, "what": what, "model": model.course_id, "n_texts": len(texts),
                       "texts_sha256": texts_sha256(texts), "delta_sha256": d, **params}, sort_keys=True)


def continuation_logprobs(model: CourseModel, prompts: Sequence[str], continuations: Sequence[str],
                          direction: torch.Tensor | None = None, *, layer: int | None = None, strength: float = 0.0,
                          batch_size: int = 4, reduce: str = "mean", reuse_prefix: bool = True,
                          cache: bool = True) -> torch.Tensor:
    """Log-probability of each continuation after its prompt, steered: mean per token ("mean") or total ("sum").

    Sequences run in length-sorted batches. With reuse_prefix (default), the unsteered stream up to `layer`
    is computed once per batch and reused by later calls with other directions or strengths (the layers
    before the edit are skipped). With cache (default), results are stored under build/cache/logprobs,
    keyed by the model, the exact texts and the exact added vector, so a rerun reads them back.
    """
    if len(prompts) != len(continuations) or not prompts:
        raise ValueError("prompts and continuations must be non-empty lists of the same length")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce={reduce!r}: use 'mean' or 'sum'")
    if direction is not None and layer is None:
        raise ValueError("layer is required when a direction is given")
    delta = steering_vector(model, direction, layer, strength).to(model.device) if direction is not None else None
    key = _request_key(model, "continuation_logprobs", list(prompts) + list(continuations), delta,
                       n_prompts=len(prompts), layer=layer, batch_size=batch_size, reduce=reduce)
    compute = lambda: {"logprobs": _continuation_logprobs(model, prompts, continuations, delta, layer, batch_size, reduce,
                                                          reuse_prefix)}
    return cached("logprobs", key, compute, use=cache)["logprobs"]


def _pack(tok: object, prompts: Sequence[str], continuations: Sequence[str]) -> list[dict]:
    """Group continuations by prompt: one row per distinct prompt, its continuations side by side after it."""
    rows: dict[str, dict] = {}
    for i, (p, c) in enumerate(zip(prompts, continuations)):
        c_ids = tok(c, add_special_tokens=False)["input_ids"]
        if not c_ids:
            raise ValueError(f"continuations[{i}] is empty")
        if p not in rows:
            rows[p] = {"prompt": tok(p, add_special_tokens=not (tok.bos_token and p.startswith(tok.bos_token)))["input_ids"],
                       "items": []}
        rows[p]["items"].append((i, c_ids))
    return list(rows.values())


def _packed_batch(rows: list[dict], pad_id: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, list]:
    """Left-padded ids, a 4-D mask (each continuation sees its prompt and itself, not its neighbours) and positions.

    Also returns, for every continuation token, the position whose logits predict it and the token id.
    """
    lengths = [len(r["prompt"]) + sum(len(c) for _, c in r["items"]) for r in rows]
    T = max(lengths)
    n_tok = max(sum(len(c) for _, c in r["items"]) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), 1, T, T, dtype=torch.bool)
    pos = torch.zeros(len(rows), T, dtype=torch.long)
    src = torch.zeros(len(rows), n_tok, dtype=torch.long)
    tgt = torch.zeros(len(rows), n_tok, dtype=torch.long)
    spans = []  # (row, first index in src/tgt, n tokens, original index)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for r, (row, n) in enumerate(zip(rows, lengths)):
        pad, P = T - n, len(row["prompt"])
        ids[r, pad:pad + P] = torch.tensor(row["prompt"])
        pos[r, pad:pad + P] = torch.arange(P)
        mask[r, 0, pad:pad + P, pad:pad + P] = causal[:P, :P]
        mask[r, 0, torch.arange(pad), torch.arange(pad)] = True  # pads see only themselves (no empty softmax rows)
        start, k = pad + P, 0
        for i, c in row["items"]:
            L = len(c)
            ids[r, start:start + L] = torch.tensor(c)
            pos[r, start:start + L] = torch.arange(P, P + L)
            mask[r, 0, start:start + L, pad:pad + P] = True
            mask[r, 0, start:start + L, start:start + L] = causal[:L, :L]
            src[r, k] = pad + P - 1  # the prompt's last position predicts the first token
            src[r, k + 1:k + L] = torch.arange(start, start + L - 1)
            tgt[r, k:k + L] = torch.tensor(c)
            spans.append((r, k, L, i))
            start, k = start + L, k + L
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}, src, tgt, spans


def _continuation_logprobs(model: CourseModel, prompts: Sequence[str], continuations: Sequence[str],
                           delta: torch.Tensor | None, layer: int | None, batch_size: int, reduce: str,
                           reuse_prefix: bool) -> torch.Tensor:
    """The uncached computation behind continuation_logprobs.

    Continuations of the same prompt share one row: the prompt is run once, and a 4-D attention mask keeps
    each continuation from seeing the others (their positions restart after the prompt). Rows run in
    length-sorted batches of `batch_size`.
    """
    rows = _pack(model.tokenizer, prompts, continuations)
    rows.sort(key=lambda r: len(r["prompt"]) + sum(len(c) for _, c in r["items"]))
    pad_id = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    results: dict[int, torch.Tensor] = {}
    for start in range(0, len(rows), batch_size):
        enc, src, tgt, spans = _packed_batch(rows[start:start + batch_size], pad_id)
        T = enc["input_ids"].shape[1]
        keep = T - int(src.min())  # logits from the earliest predicting position to the end
        idx = (src - (T - keep)).clamp(min=0).to(model.device)
        tgt_d = tgt.to(model.device)
        prefix = _unsteered_prefix(model, enc, layer) if delta is not None and reuse_prefix else None
        with torch.no_grad(), model.trace(enc, remote=model.remote, logits_to_keep=keep):
            if prefix is not None:
                # Layers 0..layer do not depend on the steering: skip them and feed the cached stream + delta.
                for i in range(layer):
                    model.layer(i).skip(prefix)
                model.layer(layer).skip(prefix + delta)
            elif delta is not None:
                model.layer(layer).output[:] = model.layer(layer).output + delta
            logits = model.output.logits
            picked = logits[torch.arange(logits.shape[0], device=logits.device)[:, None], idx].float()  # [b, n_tok, vocab]
            # log p(token) = its logit - logsumexp over the vocabulary (no full log_softmax copy: less memory)
            token_lp = picked.gather(-1, tgt_d.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, -1)
            token_lp = nnsight.save(token_lp)
        token_lp = token_lp.cpu()
        for r, k, L, i in spans:
            lp = token_lp[r, k:k + L]
            results[i] = lp.mean() if reduce == "mean" else lp.sum()
    return torch.stack([results[i] for i in range(len(prompts))])


_PREFIXES: dict[tuple, torch.Tensor] = {}
PREFIX_CACHE_ITEMS = 64


def _unsteered_prefix(model: CourseModel, enc: dict[str, torch.Tensor], layer: int) -> torch.Tensor | None:
    """The unsteered residual stream after `layer` for a batch, memoised in memory (None for remote models)."""
    if model.remote:
        return None
    key = (model.course_id, id(model), layer, tuple(map(tuple, enc["input_ids"].tolist())),
           hashlib.sha256(enc["attention_mask"].numpy().tobytes()).hexdigest())
    if key not in _PREFIXES:
        with torch.no_grad(), model.trace(enc) as tracer:
            out = nnsight.save(model.layer(layer).output)
            tracer.stop()  # nothing above `layer` is needed
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
