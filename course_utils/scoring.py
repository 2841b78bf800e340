"""Score continuations: the log-probability a model gives each continuation after its prompt, optionally
with a vector added to the residual stream after one layer (the steering edit itself is in `steering`).

Continuations of the same prompt share one row when packing is safe: the prompt runs once and an
additive attention mask (0 where a token may look, the dtype's minimum where not; the same under eager
and sdpa attention) keeps each continuation from seeing the others. Where packing is unsafe (linear or
hybrid attention layers, a sliding window shorter than a row, flash attention, which takes no 4-D mask)
every continuation gets a row of its own with an ordinary 2-D padding mask, so that the model applies its
own window and layer masks. Results are cached on disk per request.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import weakref
from collections.abc import Sequence
from typing import Any

import nnsight
import torch
from transformers import DynamicCache

from .cache import cached, code_version, request_key, tensor_sha256, texts_sha256
from .models import CourseModel, model_key

REDUCES = ("mean", "sum")
FULL_ATTENTION = {"full_attention", "sliding_attention", "chunked_attention"}


def packing_problem(model: CourseModel, row_length: int) -> str | None:
    """Why shared-prompt packing would be wrong for this model and row length (None when it is safe)."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    attn = getattr(cfg, "_attn_implementation", None) or getattr(model.config, "_attn_implementation", None) or "sdpa"
    if attn not in ("sdpa", "eager"):
        return f"attention implementation {attn!r} takes no custom 4-D mask"
    kinds = set(getattr(cfg, "layer_types", None) or [])
    if kinds - FULL_ATTENTION:
        return f"layer types {sorted(kinds - FULL_ATTENTION)} (linear/recurrent attention) ignore a 4-D mask"
    window = getattr(cfg, "sliding_window", None)
    uses_window = "sliding_attention" in kinds or (window and getattr(cfg, "use_sliding_window", True) and not kinds)
    if uses_window and window and window < row_length:
        return f"a sliding window of {window} tokens is shorter than a packed row ({row_length} tokens)"
    return None


def _prompt_ids(tok: Any, p: str, span: tuple[int, int] | None, i: int) -> tuple[list[int], list[bool] | None]:
    """A prompt's token ids and, with a character span, which of its tokens overlap that span (the steered ones)."""
    special = not (tok.bos_token and p.startswith(tok.bos_token))
    if span is None:
        return tok(p, add_special_tokens=special)["input_ids"], None
    start, end = span
    if not 0 <= start < end <= len(p):
        raise ValueError(f"steer_spans[{i}]={span}: must satisfy 0 <= start < end <= len(prompt) = {len(p)}")
    if not getattr(tok, "is_fast", False):
        raise ValueError("steer_spans needs a fast tokenizer (character offsets); this model's tokenizer is not one")
    enc = tok(p, add_special_tokens=special, return_offsets_mapping=True)
    where = [b > a and a < end and b > start for a, b in enc["offset_mapping"]]
    if not any(where):
        raise ValueError(f"steer_spans[{i}]={span} covers no token of prompts[{i}]")
    return enc["input_ids"], where


def _rows(
    tok: Any, prompts: Sequence[str], continuations: Sequence[str], pack: bool, spans: Sequence | None = None
) -> list[dict]:
    """Token ids grouped into rows: with pack, one row per distinct prompt (and steered span) holding all its continuations."""
    rows: dict[Any, dict] = {}
    for i, (p, c) in enumerate(zip(prompts, continuations)):
        c_ids = tok(c, add_special_tokens=False)["input_ids"]
        if not c_ids:
            raise ValueError(f"continuations[{i}] is empty (no tokens)")
        span = None if spans is None or spans[i] is None else tuple(int(x) for x in spans[i])
        key = (p, span) if pack else i
        if key not in rows:
            ids, where = _prompt_ids(tok, p, span, i)
            rows[key] = {"prompt": ids, "steer": where, "items": []}
        rows[key]["items"].append((i, c_ids))
    return list(rows.values())


def _packed_rows(model: CourseModel, prompts: Sequence[str], continuations: Sequence[str], spans: Sequence | None) -> list[dict]:
    """The rows to score, shortest first: packed by prompt where packing is safe for this model, else one per item."""
    rows = _rows(model.tokenizer, prompts, continuations, pack=True, spans=spans)
    longest = max(len(r["prompt"]) + sum(len(c) for _, c in r["items"]) for r in rows)
    if packing_problem(model, longest) is not None:
        rows = _rows(model.tokenizer, prompts, continuations, pack=False, spans=spans)
    return sorted(rows, key=lambda r: len(r["prompt"]) + sum(len(c) for _, c in r["items"]))


def _batch(
    rows: list[dict], pad_id: int, dtype: torch.dtype, shared: int = 0
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, tuple]:
    """Left-padded ids, an additive 4-D mask in `dtype` and position ids for a batch of rows.

    With `shared` (the number of leading prompt tokens every row has in common), a packed batch puts those tokens in
    the first columns of every row and the padding after them (a 4-D mask ignores where the padding is), so that the
    first `shared` columns are the same in every row and every batch: their keys and values are computed once.

    A batch whose rows each hold one continuation (unpacked) gets the ordinary 2-D padding mask instead: the
    model then builds its own masks (a sliding window, a linear layer's padding), which a custom 4-D mask
    would replace. Also returns, for every continuation token, the position whose logits predict it and the token id,
    and (spans, where): where each continuation sits, and, when steer spans were given, the [b, T] positions that
    receive the delta (the prompt tokens inside each row's span; None: every position, continuations included).
    """
    lengths = [len(r["prompt"]) + sum(len(c) for _, c in r["items"]) for r in rows]
    T = max(lengths)
    n_tok = max(sum(len(c) for _, c in r["items"]) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    sees = torch.zeros(len(rows), 1, T, T, dtype=torch.bool)
    pos = torch.zeros(len(rows), T, dtype=torch.long)
    src = torch.zeros(len(rows), n_tok, dtype=torch.long)
    tgt = torch.zeros(len(rows), n_tok, dtype=torch.long)
    steer = torch.zeros(len(rows), T, dtype=torch.bool)  # where the delta is added (with steer spans)
    spans = []  # (row, first index in src/tgt, n tokens, original index)
    where = steer if any(row.get("steer") is not None for row in rows) else None  # None: the delta goes everywhere
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    packed = not all(len(row["items"]) == 1 for row in rows)
    S = shared if packed else 0  # an unpacked batch keeps its padding first (the 2-D mask the model builds on)
    if S and S >= min(len(row["prompt"]) for row in rows):
        raise ValueError(f"shared={S}: must be shorter than every prompt (its last token predicts the continuation)")
    for r, (row, n) in enumerate(zip(rows, lengths)):
        pad, P = T - n, len(row["prompt"])
        cols = torch.cat([torch.arange(S), torch.arange(S + pad, pad + P)])  # the prompt's columns; pads between
        ids[r, cols] = torch.tensor(row["prompt"])
        if row.get("steer") is not None:
            steer[r, cols] = torch.tensor(row["steer"])
        pos[r, cols] = torch.arange(P)
        sees[r, 0, cols[:, None], cols[None, :]] = causal[:P, :P]
        gap = torch.arange(S, S + pad)
        sees[r, 0, gap, gap] = True  # pads see only themselves (no empty softmax rows)
        start, k = pad + P, 0
        for i, c in row["items"]:
            L = len(c)
            ids[r, start : start + L] = torch.tensor(c)
            pos[r, start : start + L] = torch.arange(P, P + L)
            sees[r, 0, start : start + L, cols] = True
            sees[r, 0, start : start + L, start : start + L] = causal[:L, :L]
            src[r, k] = pad + P - 1  # the prompt's last position predicts the first token
            src[r, k + 1 : k + L] = torch.arange(start, start + L - 1)
            tgt[r, k : k + L] = torch.tensor(c)
            spans.append((r, k, L, i))
            start, k = start + L, k + L
    if not packed:
        real = torch.arange(T)[None, :] >= torch.tensor([T - n for n in lengths])[:, None]
        return {"input_ids": ids, "attention_mask": real.long(), "position_ids": pos}, src, tgt, (spans, where)
    # Additive, not boolean: eager attention adds the mask to the scores, so a boolean mask would not mask there.
    mask = torch.zeros(sees.shape, dtype=dtype).masked_fill(~sees, torch.finfo(dtype).min)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos}, src, tgt, (spans, where)


def continuation_logprobs(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    delta: torch.Tensor | None = None,
    layer: int | None = None,
    batch_size: int = 4,
    reduce: str = "mean",
    reuse_prefix: bool = True,
    steer_spans: Sequence[tuple[int, int] | None] | None = None,
    cache: bool = True,
) -> torch.Tensor:
    """Log-probability of each continuation after its prompt (mean per token or total), `delta` added after `layer`.

    With steer_spans (one (start, end) character span per prompt, or None), the delta is added only at the prompt's
    tokens that overlap its span (e.g. one option of a choice); without, at every position.

    With reuse_prefix (default), the unsteered stream up to `layer` is computed once per batch and reused by
    later calls with other vectors (the layers before the edit are skipped). With cache (default), results are
    stored under build/cache/logprobs, keyed by the model, the exact texts and the exact added vector.
    """
    if isinstance(prompts, str) or isinstance(continuations, str):
        raise TypeError("prompts and continuations must be lists of strings, not one string")
    if len(prompts) != len(continuations) or not prompts:
        raise ValueError("prompts and continuations must be non-empty lists of the same length")
    if reduce not in REDUCES:
        raise ValueError(f"reduce={reduce!r}: use one of {REDUCES}")
    if delta is not None:
        if layer is None:
            raise ValueError("layer is required when a vector is added")
        model.layer(layer)  # validates the index
        delta = delta.detach().float().cpu().flatten()  # moved to the activations' device and dtype inside the trace
        if delta.shape[0] != model.d_model:
            raise ValueError(f"delta has {delta.shape[0]} dims; the model's d_model is {model.d_model}")
        if not delta.any():
            delta = None  # a zero vector (+0.0 or -0.0) is the unsteered pass: one computation, one cache key
    if steer_spans is not None:
        steer_spans = list(steer_spans)
        if len(steer_spans) != len(prompts):
            raise ValueError(f"steer_spans has {len(steer_spans)} entries for {len(prompts)} prompts")
        if delta is None:
            steer_spans = None  # nothing is added: the spans change nothing (and must not split the cache)
    request = logprobs_request(model, prompts, continuations, delta, layer, batch_size, reduce, steer_spans)
    key = request_key(request, CODE_VERSION)
    return cached(
        "logprobs",
        key,
        lambda: {
            "logprobs": _compute(model, prompts, continuations, delta, layer, batch_size, reduce, reuse_prefix, steer_spans)
        },
        use=cache,
    )["logprobs"]


def logprobs_request(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    delta: torch.Tensor | None,
    layer: int | None,
    batch_size: int,
    reduce: str,
    steer_spans: Sequence[tuple[int, int] | None] | None = None,
) -> dict[str, Any]:
    """What identifies one continuation_logprobs computation (the cache key's request): model, texts, vector, decoding."""
    request: dict[str, Any] = {
        "what": "continuation_logprobs",
        "model": model_key(model),
        "n_prompts": len(prompts),
        "texts_sha256": texts_sha256(list(prompts) + list(continuations)),
        "delta_sha256": tensor_sha256(delta),
        "layer": layer if delta is not None else None,
        "batch_size": batch_size,
        "reduce": reduce,
    }
    if steer_spans is not None:
        request["steer_spans"] = [None if sp is None else [int(x) for x in sp] for sp in steer_spans]
    return request


def _model_dtype(model: CourseModel) -> torch.dtype:
    """The dtype of the model's weights (float32 for a meta-loaded remote model's mask)."""
    try:
        dtype = next(model._module.parameters()).dtype
    except StopIteration:
        dtype = torch.float32
    return dtype if dtype.is_floating_point else torch.float32


def _compute(
    model: CourseModel,
    prompts: Sequence[str],
    continuations: Sequence[str],
    delta: torch.Tensor | None,
    layer: int | None,
    batch_size: int,
    reduce: str,
    reuse_prefix: bool,
    steer_spans: Sequence | None = None,
) -> torch.Tensor:
    """The uncached computation behind continuation_logprobs: [n] float32 log-probabilities on the CPU."""
    tok = model.tokenizer
    rows = _packed_rows(model, prompts, continuations, steer_spans)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    dtype = _model_dtype(model)
    shared = shared_length(rows) if delta is None or steer_spans is not None else 0  # the edit spares these columns
    batches = []
    for start in range(0, len(rows), batch_size):
        enc, src, tgt, (spans, where) = _batch(rows[start : start + batch_size], pad_id, dtype, shared)
        T = enc["input_ids"].shape[1]
        keep = T - int(src[:, 0].min())  # logits from the earliest predicting position (a row's first) to the end
        first = shared if enc["attention_mask"].dim() == 4 else 0  # the columns every row shares, in this batch
        batches.append((enc, keep, (src - (T - keep)).clamp(min=0), tgt, where, spans, first))
    results: dict[int, torch.Tensor] = {}
    for batch, token_lp in zip(batches, _batch_logprobs(model, batches, delta, layer, reuse_prefix)):
        for r, k, L, i in batch[5]:  # the batch's spans
            lp = token_lp[r, k : k + L]
            results[i] = lp.mean() if reduce == "mean" else lp.sum()
    return torch.stack([results[i] for i in range(len(prompts))])


def shared_length(rows: list[dict]) -> int:
    """How many leading prompt tokens all rows have in common (e.g. a system prompt and question), stopping before any
    row's last prompt token and before its first steered token (those columns are the same, steered or not)."""
    prompts = [row["prompt"] for row in rows]
    n = min(len(p) for p in prompts) - 1
    for row in rows:
        if row.get("steer") is not None and any(row["steer"]):
            n = min(n, row["steer"].index(True))
    n = max(n, 0)
    return next((j for j in range(n) if any(p[j] != prompts[0][j] for p in prompts)), n)


SESSION_BATCHES = 16  # a remote (NDIF) model scores this many batches per request, in one `model.session`


def _added(delta: torch.Tensor, where: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The delta as added to `like` [b, t, d], in its device and dtype: everywhere, or only where `where` [b, t] is True."""
    d = delta.to(like.device, like.dtype)
    return d if where is None else d * where.to(like.device, like.dtype).unsqueeze(-1)


def _token_logprobs(
    model: CourseModel,
    idx: torch.Tensor,
    tgt: torch.Tensor,
    delta: torch.Tensor | None,
    where: torch.Tensor | None,
    layer: int | None,
    prefix,
) -> torch.Tensor:
    """Inside a trace: the steering edit, then log p of each target token, [b, n_tok] float32 on the CPU."""
    if prefix is not None:
        # Layers 0..layer do not depend on the edit: skip them and feed the cached stream + delta.
        for i in range(layer):
            model.layer(i).skip(prefix)
        model.layer(layer).skip(prefix + _added(delta, where, prefix))
    elif delta is not None:
        out = model.layer(layer).output
        model.layer(layer).output[:] = out + _added(delta, where, out)
    logits = model.output.logits
    if idx is None:  # the output head already saw only the scored positions (`scored_positions`)
        picked = logits.float()
    else:
        rows_i = torch.arange(logits.shape[0], device=logits.device)[:, None]
        picked = logits[rows_i, idx.to(logits.device)].float()  # [b, n_tok, vocab], in float32 whatever the model
    # log p(token) = its logit - logsumexp over the vocabulary (no full log_softmax copy: less memory)
    token_lp = picked.gather(-1, tgt.to(logits.device).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, -1)
    return token_lp.cpu()


@contextlib.contextmanager
def scored_positions(model: CourseModel, idx: torch.Tensor):
    """Inside the block, the output head of a local model sees only positions `idx` [b, n_tok] of its input (the kept
    columns): logits [b, n_tok, vocab], one per scored token, instead of one per kept column (pads and positions that
    predict nothing are not unembedded). Whatever the model does after its head (a soft cap, a scale) still applies."""
    head = model._module.get_output_embeddings()
    rows_i = torch.arange(idx.shape[0])[:, None]

    def gather(module: torch.nn.Module, args: tuple) -> tuple:
        h = args[0]
        return (h[rows_i.to(h.device), idx.to(h.device)], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def _batch_logprobs(model: CourseModel, batches: list, delta: torch.Tensor | None, layer: int | None, reuse_prefix: bool):
    """Each batch's token log-probabilities: one trace per batch locally; on a remote model, SESSION_BATCHES per request."""
    if not model.remote:
        for enc, keep, idx, tgt, where, _, shared in batches:
            T = enc["input_ids"].shape[1]
            prefix = _unsteered_prefix(model, enc, layer) if delta is not None and reuse_prefix else None
            # Replay from the end of the columns every row shares (their keys and values computed once for all
            # batches), or else from the first steered column (on the batch's own unsteered keys and values).
            start = (
                min(shared, T - keep) if reuse_prefix and shared else _replay_start(enc, where, keep) if prefix is not None else 0
            )
            past = _unsteered_past(model, enc, start, shared=start == shared) if start and model not in _NO_REPLAY else None
            cache = {}
            if past is not None:  # the columns before the first steered token are unchanged: replay from it on their K/V
                cache = {_CACHE_ARG[type(model._module)]: past, "use_cache": True}
                enc = _columns_from(enc, start)
                where = where[:, start:] if where is not None else None
                prefix = prefix[:, start:] if prefix is not None else None
            with torch.no_grad(), scored_positions(model, idx), model.trace(enc, logits_to_keep=keep, **cache):
                token_lp = nnsight.save(_token_logprobs(model, None, tgt, delta, where, layer, prefix))
            yield token_lp
        return
    for start in range(0, len(batches), SESSION_BATCHES):
        yield from _remote_logprobs(model, [b[:5] for b in batches[start : start + SESSION_BATCHES]], delta, layer)


def _replay_start(enc: dict[str, torch.Tensor], where: torch.Tensor | None, keep: int) -> int:
    """The first column any row steers (0: replay everything), for a packed batch (4-D mask) steered on spans only."""
    if where is None or enc["attention_mask"].dim() != 4 or not where.any():
        return 0
    first = int(where.float().argmax(1)[where.any(1)].min())
    return max(0, min(first, enc["input_ids"].shape[1] - keep))


def _columns_from(enc: dict[str, torch.Tensor], start: int) -> dict[str, torch.Tensor]:
    """A packed batch's columns from `start` on: their ids and positions, their mask rows over every column."""
    return {
        "input_ids": enc["input_ids"][:, start:],
        "attention_mask": enc["attention_mask"][:, :, start:],
        "position_ids": enc["position_ids"][:, start:],
    }


_NO_REPLAY: weakref.WeakSet = weakref.WeakSet()  # models whose cache cannot be replayed from (run whole)


class _CacheArg(dict):
    """The forward argument that takes a key/value cache, per model class (`cache` in recent transformers)."""

    def __missing__(self, cls: type) -> str:
        self[cls] = "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"
        return self[cls]


_CACHE_ARG = _CacheArg()


def _unsteered_past(model: CourseModel, enc: dict[str, torch.Tensor], start: int, shared: bool = False) -> DynamicCache | None:
    """The unsteered keys and values of a packed batch's first `start` columns at every layer, memoised like the prefix
    (None where the model's cache does not keep every column: then the batch is run whole). With shared, those
    columns hold the same tokens in every row: they are computed once, from one row, for every batch that starts so."""
    memo = _PREFIXES.setdefault(model, {})
    b = enc["input_ids"].shape[0]
    if shared:  # one row of the shared columns, with their own block of the mask (causal among themselves)
        run = {"input_ids": enc["input_ids"][:1, :start], "position_ids": enc["position_ids"][:1, :start]}
        run["attention_mask"] = enc["attention_mask"][:1, :, :start, :start]
        key = ("shared", model_key(model), tuple(run["input_ids"][0].tolist()), tensor_sha256(run["attention_mask"]))
    else:
        run = enc
        key = (
            "past",
            model_key(model),
            start,
            tuple(map(tuple, enc["input_ids"].tolist())),
            tensor_sha256(enc["attention_mask"]),
        )
    if key not in memo:
        device = next(model._module.parameters()).device
        with torch.no_grad():  # the batch (or its shared row) as the plain pass computes it; the first `start` columns kept
            out = model._module(**{k: v.to(device) for k, v in run.items()}, use_cache=True, logits_to_keep=1)
        past = getattr(out, "cache", None) or out.past_key_values
        layers = getattr(past, "layers", None) or []
        T = run["input_ids"].shape[1]
        if len(layers) != model.n_layers or any(getattr(x, "keys", None) is None or x.keys.shape[-2] != T for x in layers):
            _NO_REPLAY.add(model)  # e.g. a sliding-window layer that drops old columns: not tried again for this model
            return None
        kv = torch.stack([torch.stack([x.keys[..., :start, :], x.values[..., :start, :]]) for x in layers])
        size = kv.numel() * kv.element_size()
        if size > PREFIX_CACHE_BYTES:
            return DynamicCache(ddp_cache_data=[(k.expand(b, *k.shape[1:]), v.expand(b, *v.shape[1:])) for k, v in kv])
        _evict_prefixes(size)
        memo[key] = (next(_PREFIX_CLOCK), kv)
    memo[key] = (next(_PREFIX_CLOCK), memo[key][1])
    # a fresh cache (the replay appends to it); a shared row is the same for every row of the batch
    return DynamicCache(ddp_cache_data=[(k.expand(b, *k.shape[1:]), v.expand(b, *v.shape[1:])) for k, v in memo[key][1]])


def _remote_logprobs(model: CourseModel, chunk: list, delta: torch.Tensor | None, layer: int | None) -> list[torch.Tensor]:
    """One NDIF request (a session) for a chunk of batches: `_token_logprobs` without prefix reuse, written out in
    torch expressions on an envoy resolved here (NDIF has no course_utils: no course function may travel)."""
    edit = model.layer(layer) if delta is not None else None
    with torch.no_grad(), model.session(remote=model.remote):
        outs = list().save()
        for enc, keep, idx, tgt, where in chunk:
            with model.trace(enc, logits_to_keep=keep):
                if edit is not None:
                    out = edit.output
                    added = delta.to(out.device, out.dtype)
                    if where is not None:
                        added = added * where.to(out.device, out.dtype).unsqueeze(-1)
                    edit.output[:] = out + added
                logits = model.output.logits
                rows_i = torch.arange(logits.shape[0], device=logits.device)[:, None]
                picked = logits[rows_i, idx.to(logits.device)].float()
                lp = picked.gather(-1, tgt.to(logits.device).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, -1)
                outs.append(lp.cpu())
    return list(outs)


# The unsteered residual streams, per model object (a weak key: a deleted model's entries go with it, and a new
# model at the same address cannot see them), least recently used evicted first, bounded by bytes.
_PREFIXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PREFIX_CACHE_BYTES = 512 * 2**20  # at most this much (on the model's device) in all models' memos together
_PREFIX_CLOCK = itertools.count()


def clear_prefix_memo() -> None:
    """Forget every memoised prefix (run_course does it between notebooks sharing a kernel)."""
    _PREFIXES.clear()


def _prefix_bytes() -> int:
    """Bytes held by the prefix memo, all models together."""
    return sum(t.numel() * t.element_size() for memo in list(_PREFIXES.values()) for _, t in memo.values())


def _evict_prefixes(room: int) -> None:
    """Drop least recently used prefixes until `room` more bytes fit under PREFIX_CACHE_BYTES."""
    while _PREFIXES and _prefix_bytes() + room > PREFIX_CACHE_BYTES:
        memo, key = min(
            ((m, k) for m in list(_PREFIXES.values()) for k in m), key=lambda mk: mk[0][mk[1]][0], default=(None, None)
        )
        if memo is None:
            return
        del memo[key]


@contextlib.contextmanager
def frozen_weights(model: CourseModel):
    """Turn off the weights' gradients for the block (gradients w.r.t. an added vector only); restore them after."""
    frozen = [p for p in model._module.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _unsteered_prefix(model: CourseModel, enc: dict[str, torch.Tensor], layer: int) -> torch.Tensor | None:
    """The unsteered residual stream after `layer` for a batch, memoised in memory (None for remote models)."""
    if model.remote:
        return None
    memo = _PREFIXES.setdefault(model, {})
    key = (model_key(model), layer, tuple(map(tuple, enc["input_ids"].tolist())), tensor_sha256(enc["attention_mask"]))
    if key in memo:
        memo[key] = (next(_PREFIX_CLOCK), memo[key][1])
        return memo[key][1]
    with torch.no_grad(), model.trace(enc) as tracer:
        out = nnsight.save(model.layer(layer).output)
        tracer.stop()  # nothing above `layer` is needed
    out = out.detach()
    size = out.numel() * out.element_size()
    if size <= PREFIX_CACHE_BYTES:
        _evict_prefixes(size)
        memo[key] = (next(_PREFIX_CLOCK), out)
    return out


CODE_VERSION = code_version(  # part of every cache key
    _prompt_ids,
    _rows,
    _packed_rows,
    _batch,
    _compute,
    _added,
    _token_logprobs,
    scored_positions,
    _batch_logprobs,
    _remote_logprobs,
    _unsteered_prefix,
    _replay_start,
    _columns_from,
    _unsteered_past,
    shared_length,
    packing_problem,
)


def next_token_logprobs(
    model: CourseModel, prompts: Sequence[str], token_ids: Sequence[int], *, batch_size: int = 16, cache: bool = True
) -> torch.Tensor:
    """Log-probability of each of `token_ids` as the next token after each prompt: [n_prompts, n_ids], cached on disk.

    The same computation as one `model.trace` reading `model.output.logits[:, -1]` (left padding, so the last
    position is every row's next token), batched by a token budget and run once per request.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if not prompts or not token_ids:
        raise ValueError("prompts and token_ids must be non-empty")
    vocab = len(model.tokenizer)
    bad = [int(i) for i in token_ids if not 0 <= int(i) < vocab]
    if bad:
        raise ValueError(f"token_ids {bad[:5]} are outside the vocabulary (0..{vocab - 1})")
    request = {
        "what": "next_token_logprobs",
        "model": model_key(model),
        "texts_sha256": texts_sha256(list(prompts)),
        "token_ids": [int(i) for i in token_ids],
    }
    key = request_key(request, code_version(_next_token_compute))
    compute = lambda: {"logprobs": _next_token_compute(model, list(prompts), [int(i) for i in token_ids], batch_size)}  # noqa: E731
    return cached("logprobs", key, compute, use=cache)["logprobs"]


def _next_token_compute(model: CourseModel, prompts: list[str], ids: list[int], batch_size: int) -> torch.Tensor:
    """The uncached computation behind next_token_logprobs (shortest prompts first, token-budget batches)."""
    from .activations import TOKEN_BUDGET, token_budget_batches
    from .models import tokenize

    lengths = [len(model.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    batches = [[order[j] for j in b] for b in token_budget_batches([lengths[i] for i in order], batch_size, TOKEN_BUDGET)]
    index = torch.tensor(ids)
    encs = [tokenize(model, [prompts[i] for i in batch]) for batch in batches]
    with torch.no_grad(), model.session(remote=model.remote) if model.remote else contextlib.nullcontext():
        saved = list().save() if model.remote else []
        for enc in encs:
            with model.trace(enc, logits_to_keep=1):
                logits = model.output.logits[:, -1]
                saved.append(nnsight.save(torch.log_softmax(logits.float(), -1)[:, index.to(logits.device)].cpu()))
    out = torch.empty(len(prompts), len(ids))
    for batch, lp in zip(batches, saved):
        out[batch] = lp.float()
    return out
