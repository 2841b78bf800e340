"""course_utils.scoring: the prompt prefix every row shares is computed once (its keys and values reused by every
batch), and that changes no number beyond float error; the kept logits start at each row's first scored token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import scoring
from course_utils.preferences import _pair_prompts
from course_utils.steering import random_direction, steering_vector

ACTS = ["go for a walk", "scrub the floor", "eat warm bread", "wait in a queue", "swim in a lake", "fold the laundry"]
PAIRS = np.array([[0, 1], [2, 3], [4, 5], [1, 4], [3, 0]])
TOL = 5e-5  # float32 noise of a 30-layer pass: the plain path itself moves ~1e-5 between batch sizes


def _plain(model, prompts, conts, reduce, delta=None, layer=None, spans=None) -> torch.Tensor:
    """Each prompt run alone with its continuations, no memo and no shared columns: the reference numbers."""
    out = []
    for i, (p, c) in enumerate(zip(prompts, conts)):
        kw = dict(delta=delta, layer=layer, steer_spans=None if spans is None else [spans[i]])
        out.append(scoring.continuation_logprobs(model, [p], [c], reduce=reduce, reuse_prefix=False, cache=False, **kw))
    return torch.cat(out)


@pytest.mark.parametrize("fmt", ["letters", "rather"])
def test_shared_prefix_runs_once_and_changes_no_number(model, fmt, monkeypatch):
    """All choice prompts start with the same system prompt and question: one row of it is run, every batch replays
    on its keys and values, and the log-probs equal each prompt run alone (unsteered and steered on one option)."""
    prompts, spans, firsts, seconds, reduce = _pair_prompts(model, ACTS, PAIRS, "a", fmt)
    P, C, S = prompts + prompts, firsts + seconds, spans + spans
    runs = []
    past = scoring._unsteered_past
    monkeypatch.setattr(
        scoring,
        "_unsteered_past",
        lambda m, enc, start, shared=False: runs.append((start, shared)) or past(m, enc, start, shared),
    )
    scoring.clear_prefix_memo()
    delta = steering_vector(model, random_direction(model.d_model, 1), 15, 0.5)
    for kw in ({}, {"delta": delta, "layer": 15, "spans": S}):
        fast = scoring.continuation_logprobs(
            model, P, C, reduce=reduce, batch_size=4, cache=False, steer_spans=kw.pop("spans", None), **kw
        )
        plain = _plain(model, P, C, reduce, spans=S if kw else None, **kw)
        assert (fast - plain).abs().max() <= TOL
    assert runs and all(shared and start > 20 for start, shared in runs)  # after the system prompt and question
    shared_rows = [k for k in scoring._PREFIXES[model] if k[0] == "shared"]
    assert len(shared_rows) == 1  # one row of keys and values for every batch, unsteered and steered


def test_shared_length_stops_before_the_last_prompt_token_and_the_first_steered_one():
    rows = [{"prompt": [1, 2, 3, 4, 5], "steer": None}, {"prompt": [1, 2, 3, 9], "steer": None}]
    assert scoring.shared_length(rows) == 3
    assert scoring.shared_length([rows[0], {"prompt": [1, 2, 3], "steer": None}]) == 2  # its last token stays
    rows[0]["steer"] = [False, True, True, False, False]
    assert scoring.shared_length(rows) == 1
    assert scoring.shared_length([{"prompt": [7, 2], "steer": None}, {"prompt": [1, 2], "steer": None}]) == 0


def test_shared_columns_come_first_and_pads_only_see_themselves():
    rows = [
        {"prompt": [1, 2, 3, 4, 5], "steer": None, "items": [(0, [7]), (1, [8])]},
        {"prompt": [1, 2, 3], "steer": None, "items": [(2, [7]), (3, [8])]},
    ]
    enc, src, tgt, _ = scoring._batch(rows, 0, torch.float32, shared=2)
    assert enc["input_ids"].tolist() == [[1, 2, 3, 4, 5, 7, 8], [1, 2, 0, 0, 3, 7, 8]]
    assert enc["position_ids"][1].tolist() == [0, 1, 0, 0, 2, 3, 3]
    seen = enc["attention_mask"][1, 0] == 0
    assert seen[4].tolist() == [True, True, False, False, True, False, False]  # the prompt skips the pads
    assert seen[2].tolist() == [False, False, True, False, False, False, False]
    assert src[:, 0].tolist() == [4, 4]  # each row's last prompt token predicts its first continuation
    with pytest.raises(ValueError, match="shared=3"):
        scoring._batch(rows, 0, torch.float32, shared=3)


def test_output_head_sees_only_the_scored_positions(model):
    """The head unembeds one position per scored token (not pads, not the kept columns that predict nothing), and the
    log-probs equal a plain forward's log-softmax."""
    shapes = []
    handle = model._module.get_output_embeddings().register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape[:2])))
    prompts = ["The train was late again and", "The train was late again and", "She opened the envelope slowly, then"]
    conts = [" A", " everyone sighed.", " B"]
    try:
        lp = scoring.continuation_logprobs(model, prompts, conts, reduce="sum", batch_size=4, cache=False)
    finally:
        handle.remove()
    n_tok = [len(model.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in conts]
    assert shapes == [(2, n_tok[0] + n_tok[1])]  # one batch of two rows, as many positions as the longest row scores
    for i, (p, c) in enumerate(zip(prompts, conts)):
        p_ids, c_ids = model.tokenizer(p)["input_ids"], model.tokenizer(c, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = model._module(torch.tensor([p_ids + c_ids])).logits[0].float().log_softmax(-1)
        ref = sum(logp[len(p_ids) - 1 + j, t] for j, t in enumerate(c_ids))
        assert abs(lp[i].item() - ref.item()) <= 2 * TOL  # a sum of up to five tokens (batched vs alone: float noise)


def test_logits_are_kept_from_each_rows_first_scored_token(model, monkeypatch):
    """Continuations of different lengths leave zeros in the index of scored positions: they must not make every
    position's logits kept."""
    seen = []
    trace = type(model).trace
    monkeypatch.setattr(
        type(model), "trace", lambda self, *a, **kw: seen.append(kw.get("logits_to_keep")) or trace(self, *a, **kw)
    )
    prompts = ["The train was late again and"] * 2 + ["She opened the envelope slowly, then"] * 2
    conts = [" everyone sighed.", " nobody", " read the first line twice.", " smiled"]
    lp = scoring.continuation_logprobs(model, prompts, conts, batch_size=4, cache=False)
    kept = [k for k in seen if k is not None]
    n_tok = [len(model.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in conts]
    assert kept and max(kept) == 1 + max(n_tok[0] + n_tok[1], n_tok[2] + n_tok[3])  # last prompt token, continuations
    assert (lp - _plain(model, prompts, conts, "mean")).abs().max() <= TOL
