"""Checks that run right after each exercise: they say what is wrong, and fall back to the reference.

Every check prints one line, "PASS  <name> ..." or "CHECK <name>: <what is wrong>", and returns the learner's
function if it passed, else the reference solution. The reference returned after a failure is *marked*
(`is_reference`), so that running the check cell again (which checks whatever the name now holds) never
reports a pass for the reference: it asks the learner to re-run their definition cell first.

`MISTAKES` lists every mistake a check recognises with a specific message: (exercise, mistake, a fragment of
the message). tests/test_checks.py runs one wrong function per row, and docs/instructor_guide.md's table is
generated from it (scripts/mistakes_table.py).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable
from typing import Any

import nnsight
import numpy as np
import torch

FALLBACK = "using the reference solution; fill in the cell above to use yours"
NOT_FILLED = "not filled in yet"
RERUN = "this is still the reference solution from an earlier fallback: re-run your definition cell above first, then this check"
NOT_SAVED = "nnsight deletes values that were not saved when the trace ends"
RETURNED_NONE = "your function returned None: did you forget the `return`?"

# Where each checked function is written, as the notebooks number the exercises.
EXERCISES = {
    "residual_after": "exercise 0",
    "next_token_probs": "exercise 0b",
    "bow_accuracy": "exercise 1",
    "masked_mean": "exercise 2",
    "two_prompt_reads": "exercise 2b",
    "shuffled_accuracies": "exercise 3",
    "emotion_vectors": "exercise 4a",
    "project_out": "exercise 4b",
    "split_half_agreement": "exercise 4c",
    "dose_rho": "exercise 5",
    "pairing_null": "exercise 5b",
    "steered_logits": "exercise 6",
    "steered_generate": "exercise 6b",
    "choice_logodds": "exercise 7",
    "cheat_logodds": "exercise 8a",
    "place_in_null": "exercise 8b",
    "design_contexts": "exercise 8c",
}

# (exercise, mistake, fragment of what the check says). One row per recognised mistake, in the order of EXERCISES.
MISTAKES: list[tuple[str, str, str]] = [
    ("residual_after", "forgetting `nnsight.save` (UnboundLocalError/NameError after the trace)", NOT_SAVED),
    ("residual_after", "keeping the batch axis (`[1, tokens, d]`)", "still has the batch axis: take row 0"),
    ("residual_after", "returning `[d_model, tokens]` (transposed)", "is transposed"),
    ("residual_after", "reading the layer after the one asked (`model.layer(layer + 1)`)", "one layer too deep"),
    ("residual_after", "reading `.input` instead of `.output` (the stream after the layer before)", "one layer too shallow"),
    ("residual_after", "returning a tuple around the tensor", "return the tensor itself"),
    ("residual_after", "returning only the last token (`[0, -1]`)", "the last token's vector only"),
    ("residual_after", "indexing `[0]` twice (tuple habit): only the first token", "the first token's vector only"),
    ("residual_after", "averaging over tokens", "the mean over tokens"),
    ("residual_after", "returning the logits (`model.output`) instead of the layer's output", "these look like logits"),
    ("residual_after", "leaving the tensor on the GPU (no `.cpu()`)", "move it to the CPU"),
    ("residual_after", "no `return`", RETURNED_NONE),
    ("next_token_probs", "returning the logits (no softmax)", "these are logits"),
    ("next_token_probs", "returning log-probabilities (`log_softmax`)", "these are log-probabilities"),
    ("next_token_probs", "the edit never reaches the model (`envoy.output * scale` not assigned)", "the edit never reached"),
    ("next_token_probs", "scaling the layer after the one asked", "one layer too deep"),
    ("next_token_probs", "scaling the layer before (editing `.input`)", "one layer too shallow"),
    ("next_token_probs", "reading the first position (`logits[0, 0]`)", "the first position's prediction"),
    ("next_token_probs", "keeping the batch axis (`[1, vocab]`)", "still has the batch axis"),
    ("next_token_probs", "returning every position (`[tokens, vocab]`)", "one row per position"),
    ("next_token_probs", "forgetting `nnsight.save` on the logits", NOT_SAVED),
    ("next_token_probs", "no `return`", RETURNED_NONE),
    (
        "bow_accuracy",
        "fitting and scoring on the test stories (or fitting on train and test together)",
        "fitted and scored on the test stories",
    ),
    ("bow_accuracy", "scoring on the training stories", "accuracy on the training stories"),
    (
        "bow_accuracy",
        "labels out of line with the texts (shuffled `train.emotion`)",
        "chance level: are labels aligned with the texts?",
    ),
    ("bow_accuracy", "returning a percentage (64.2 for 0.642)", "looks like a percentage"),
    ("bow_accuracy", "returning the number of correct predictions", "the number of correct predictions"),
    ("bow_accuracy", "returning the error rate", "is the error rate"),
    ("bow_accuracy", "returning a numpy array (the per-story comparison)", "got a numpy array of"),
    ("bow_accuracy", "returning a pandas Series (`predict(...) == test.emotion`)", "got a pandas Series of"),
    ("bow_accuracy", "returning a list", "got a list of"),
    ("bow_accuracy", "no `return`", RETURNED_NONE),
    (
        "masked_mean",
        "skipping the first `skip_first` positions, not each row's first real tokens (`mask[:, skip_first:]`)",
        "you skipped the first skip_first *positions*",
    ),
    ("masked_mean", "averaging pads in (`acts[:, skip_first:].mean(1)`, no mask)", "padding tokens were averaged in"),
    ("masked_mean", "mask not applied and skip_first ignored (`acts.mean(1)`)", "neither the mask nor skip_first"),
    ("masked_mean", "ignoring skip_first", "skip_first was ignored"),
    ("masked_mean", "off by one: `>` instead of `>=` (skips skip_first + 1)", "one real token too many was skipped"),
    ("masked_mean", "off by one the other way (skips skip_first - 1)", "one real token too few was skipped"),
    ("masked_mean", "dividing by all positions T", "divided by the number of positions"),
    ("masked_mean", "dividing by all real tokens, skipped ones included", "divided by all real tokens"),
    ("masked_mean", "a sum, not a mean", "that is a sum, not a mean"),
    ("masked_mean", "mask not unsqueezed (shape error)", "so that it broadcasts over d_model"),
    ("masked_mean", "averaging over the wrong axis (`dim=2`)", "you averaged over d_model"),
    ("masked_mean", "averaging over the batch axis (`dim=0`)", "you averaged over the batch axis"),
    ("masked_mean", "`keepdim=True` (`[batch, 1, d]`)", "drop keepdim=True"),
    ("masked_mean", "modifying `acts` in place (`acts *= keep`)", "you modified `acts` in place"),
    ("masked_mean", "no `return`", RETURNED_NONE),
    ("two_prompt_reads", "keeping the shorter prompt's pad positions", "still has its pad positions"),
    ("two_prompt_reads", "cutting the pads from the right (`out[0, :n]`)", "the course pads on the left"),
    (
        "two_prompt_reads",
        "`layer.output[0]` on a whole batch (tuple habit): batch row 0 for both prompts",
        "is batch row 0 (prompt A) again",
    ),
    ("two_prompt_reads", "returning the two reads in the wrong order", "the two results are swapped"),
    ("two_prompt_reads", "keeping the batch axis (`[1, tokens, d]`)", "still has the batch axis"),
    ("two_prompt_reads", "returning one tensor (the padded batch)", "return two tensors"),
    ("two_prompt_reads", "forgetting `nnsight.save` inside an invoke", NOT_SAVED),
    ("two_prompt_reads", "no `return`", RETURNED_NONE),
    ("shuffled_accuracies", "permuting X_train and y_train together (nothing is shuffled)", "nothing was shuffled"),
    ("shuffled_accuracies", "shuffling the test labels instead of the training labels", "you shuffled the test labels"),
    (
        "shuffled_accuracies",
        "scoring each shuffled probe on its own (shuffled) training data",
        "the training accuracy of the shuffled probes",
    ),
    ("shuffled_accuracies", "a new generator with the same seed inside the loop (one permutation)", "the same accuracy"),
    ("shuffled_accuracies", "the global `np.random.permutation` instead of the seeded generator", "not reproducible"),
    ("shuffled_accuracies", "returning error rates (1 - accuracy)", "looks like error rates"),
    ("shuffled_accuracies", "returning percentages", "look like percentages"),
    ("shuffled_accuracies", "returning the mean of the shuffles", "return one accuracy per shuffle"),
    ("shuffled_accuracies", "returning a list", "return a NumPy array"),
    ("shuffled_accuracies", "no `return`", RETURNED_NONE),
    ("emotion_vectors", "not centring (raw means)", "these are the raw means"),
    ("emotion_vectors", "centring on the mean over stories, not over emotions", "the mean over all stories"),
    ("emotion_vectors", "rows not in the order of `names` (e.g. sorted)", "rows are not in the order of `names`"),
    ("emotion_vectors", "unit-normalising the rows", "normalised to unit length"),
    ("emotion_vectors", "summing the stories instead of averaging", "you summed the stories"),
    ("emotion_vectors", "centring each row over d_model (`mean(1)`)", "each row's mean over d_model"),
    ("emotion_vectors", "returning `[d_model, n_emotions]` (transposed)", "is transposed"),
    ("emotion_vectors", "comparing a Python list with a name (`labels == n` is False)", "on a Python list is just False"),
    ("emotion_vectors", "returning a list of vectors", "torch.stack them"),
    ("emotion_vectors", "no `return`", RETURNED_NONE),
    ("project_out", "returning the part inside the span", "that is the part *inside* the span"),
    ("project_out", "adding the projection instead of subtracting it", "you added the projection"),
    ("project_out", "removing only one component", "only one component was removed"),
    ("project_out", "transposes wrong (`(v @ C) @ C.T`: a shape error)", "check the transposes"),
    ("project_out", "a wrongly scaled projection (part of the span left)", "still has a part in the span"),
    ("project_out", "returning the components", "you returned the components"),
    ("project_out", "returning the coefficients `v @ C.T`", "those are the coefficients"),
    ("project_out", "returning `[d_model, n]` (transposed)", "is transposed"),
    ("project_out", "modifying `vectors` in place (`vectors -= ...`)", "you modified `vectors` in place"),
    ("project_out", "no `return`", RETURNED_NONE),
    ("split_half_agreement", "dot products instead of cosines", "those are dot products, not cosines"),
    ("split_half_agreement", "every row of A against every row of B (`ua @ ub.T`)", "keep the diagonal only"),
    ("split_half_agreement", "normalising over the wrong axis (one cosine per dimension)", "cosines over the wrong axis"),
    ("split_half_agreement", "the diagonal included in the matrices' correlation", "the diagonal (always 1)"),
    ("split_half_agreement", "similarity matrices of dot products", "the similarity matrices hold dot products"),
    ("split_half_agreement", "Spearman instead of Pearson for the matrices", "a rank correlation"),
    ("split_half_agreement", "no Spearman-Brown step (r_full = r_half)", "Spearman-Brown was not applied"),
    ("split_half_agreement", "Spearman-Brown as 2 r (no division)", "divide by 1 + r"),
    ("split_half_agreement", "cosines as a torch tensor", "return a NumPy array (.numpy())"),
    ("split_half_agreement", "no `return`", RETURNED_NONE),
    ("dose_rho", "projecting instead of taking the cosine (`(acts - origin) @ d`)", "a projection, not a cosine"),
    ("dose_rho", "the cosine from zero, not from `vectors.origin`", "measured from zero"),
    ("dose_rho", "Pearson instead of Spearman", "Pearson"),
    ("dose_rho", "returning a list", "return a NumPy array"),
    ("dose_rho", "only the first direction", "one value per direction"),
    ("dose_rho", "no `return`", RETURNED_NONE),
    ("pairing_null", "pairing each user profile with its own assistant profile (no shuffle)", "nothing was shuffled"),
    ("pairing_null", "a new generator with the same seed inside the loop", "every shuffle drew the same order"),
    ("pairing_null", "the global `np.random` instead of the seeded generator", "not reproducible"),
    ("pairing_null", "shuffling the emotions (columns) instead of the messages", "you shuffled the emotions"),
    ("pairing_null", "correlating over messages (axis 0) instead of over emotions", "correlations across messages"),
    ("pairing_null", "keeping one r per message (no mean)", "average over the messages"),
    ("pairing_null", "returning a list", "return a NumPy array"),
    ("pairing_null", "no `return`", RETURNED_NONE),
    ("steered_logits", "the edit never reaches the model (logits unchanged)", "the logits are unchanged"),
    ("steered_logits", "subtracting the vector", "you subtracted the vector"),
    ("steered_logits", "steering the layer after the one asked", "neighbouring layer, one too deep"),
    ("steered_logits", "steering the layer before (e.g. editing `.input`)", "neighbouring layer, one too shallow"),
    ("steered_logits", "steering only the last position (`[:, -1]`)", "only the last position was steered"),
    ("steered_logits", "steering only the first position (`[:, 0]`)", "only the first position was steered"),
    ("steered_logits", "returning the logits of the whole sequence", "the logits at every position"),
    ("steered_logits", "keeping the batch axis (`[1, vocab]`)", "still has the batch axis"),
    ("steered_logits", "returning probabilities (softmax)", "these are probabilities"),
    ("choice_logodds", "forgetting `nnsight.save` on the logits", NOT_SAVED),
    ("choice_logodds", "the sign flipped (log p(B) - log p(A))", "flip the sign"),
    ("choice_logodds", "a difference of probabilities, not log-probabilities", "a difference of probabilities"),
    ("choice_logodds", "returning the odds p(A) / p(B)", "that is the odds"),
    ("choice_logodds", "the tokens ' A' and ' B' (with a leading space)", "with a leading space"),
    ("choice_logodds", "reading the first position's logits (`[0, 0]`)", "the first position"),
    ("choice_logodds", "returning the whole log-probability vector", "the whole vector"),
    ("choice_logodds", "returning a 0-d tensor", "wrap it in float("),
    ("choice_logodds", "no `return`", RETURNED_NONE),
    ("cheat_logodds", "the sign flipped (honest minus cheat)", "honest minus cheat"),
    ("cheat_logodds", "a sum over tokens instead of the mean per token", "a sum over tokens"),
    ("cheat_logodds", "a ratio of probabilities (exp of the log-odds)", "exp of the log-odds"),
    ("cheat_logodds", "only the cheat message's log-probability", "only the cheat message"),
    ("cheat_logodds", "returning a tensor", "wrap it in float("),
    ("cheat_logodds", "no `return`", RETURNED_NONE),
    ("place_in_null", "the percentile from the wrong side (share above)", "the share *above*"),
    ("place_in_null", "a percentage (0-100) instead of a share", "a percentage"),
    ("place_in_null", "a one-sided test (only above the 95th percentile)", "one-sided"),
    ("place_in_null", "the band from the null's min and max", "the min and max"),
    ("place_in_null", "returning only the percentile", "return both"),
    ("place_in_null", "no `return`", RETURNED_NONE),
    ("design_contexts", "returning one string instead of the pair", "return a pair (permissive, strict)"),
    ("design_contexts", "the same message twice", "the same message twice"),
    ("design_contexts", "borrowing words of the scored messages ('tests', 'acceptable')", "shares words with the scored"),
    ("design_contexts", "two messages of different lengths", "lengths differ"),
    ("design_contexts", "two unrelated messages (not a minimal pair)", "differ in more than the permission"),
    ("design_contexts", "the strict message first (or a permission that lowers cheating)", "makes the cheat message less"),
    ("design_contexts", "no `return`", RETURNED_NONE),
    ("steered_logits", "returning log-probabilities (log_softmax)", "these are log-probabilities"),
    ("steered_logits", "normalising delta", "delta was normalised to unit length"),
    ("steered_logits", "adding delta twice (scaled by 2)", "match delta scaled by"),
    ("steered_logits", "returning the predicted token id (argmax)", "the id of the predicted token"),
    ("steered_logits", "forgetting `nnsight.save`", NOT_SAVED),
    ("steered_logits", "no `return`", RETURNED_NONE),
    ("steered_generate", "an absolute strength (the unit direction times strength, no median norm)", "an absolute length"),
    ("steered_generate", "steering only the first step (no `tracer.iter[:]` loop, or `iter[0]`)", "only the first step"),
    ("steered_generate", "skipping the prompt pass (`tracer.iter[1:]`)", "the prompt pass was not steered"),
    ("steered_generate", "`output[0]` (tuple habit): only batch row 0 is steered", "only the first prompt was steered"),
    ("steered_generate", "the direction not normalised (strength x norm x direction)", "was not normalised to unit length"),
    ("steered_generate", "subtracting the vector", "you subtracted the vector"),
    ("steered_generate", "the edit never reaches the model (a local name rebound)", "the text is the unsteered model's"),
    ("steered_generate", "returning the prompt with the reply", "the prompt is still in front"),
    ("steered_generate", "one string instead of a list", "a single string"),
    ("steered_generate", "no `return`", RETURNED_NONE),
]


# --- the reference returned after a fallback is marked ------------------------------------------------------

_MARKED: dict[Callable, Callable] = {}


def _marked(reference: Callable) -> Callable:
    """The reference, wrapped (same name, signature, docstring and behaviour) and marked as the reference."""
    if reference not in _MARKED:

        @functools.wraps(reference)
        def course_reference(*args: Any, **kwargs: Any) -> Any:
            return reference(*args, **kwargs)

        course_reference.__course_reference__ = True
        _MARKED[reference] = course_reference
    return _MARKED[reference]


def is_reference(fn: Any) -> bool:
    """True if `fn` is the reference solution a check returned after a fallback (not the learner's own function)."""
    return getattr(fn, "__course_reference__", False) is True


def _report(ok: bool, message: str) -> None:
    """Print a check's verdict (plain text, so it reads the same in Jupyter, Colab and papermill logs)."""
    print(("PASS  " if ok else "CHECK ") + message)


def _verdict(fn: Callable, reference: Callable, problem: str | None, name: str) -> Callable:
    """Return the learner's function if it passed, else explain and return the (marked) reference."""
    if problem is None:
        _report(True, f"{name} matches the reference. Well done.")
        return fn
    _report(False, f"{name}: {problem}")
    print(f"      -> {FALLBACK}")
    return _marked(reference)


def _run(fn: Callable[..., Any], *args: Any, explain: Callable[[Exception], str | None] | None = None) -> tuple[Any, str | None]:
    """Call a learner's function; return (result, None) or (None, why it could not be used)."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, NOT_FILLED
    except Exception as e:  # the learner's code raised: show the error, keep the notebook going
        text = (str(e).strip().splitlines() or [""])[0][:200]
        why = f"your function raised {type(e).__name__}: {text}"
        hint = explain(e) if explain is not None else None
        return None, f"{why}: {hint}" if hint else why


# How close two answers must be, by the lower precision of the two: a correct answer computed in another order
# differs by a few units in the last place (bfloat16 keeps 8 mantissa bits: eps 7.8e-3; float16 11: eps 9.8e-4).
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-4, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def tolerance(*tensors: Any) -> float:
    """The check tolerance (atol and rtol) for answers in these tensors' dtypes: the loosest that applies."""
    return max((TOLERANCE.get(t.dtype, 1e-4) for t in tensors if isinstance(t, torch.Tensor)), default=1e-4)


def _same(a: Any, b: Any, atol: float | None = None, rtol: float | None = None) -> bool:
    """Both tensors, same shape, same values (on the CPU, as float), within the tolerance of their dtypes."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    if a.device.type == "meta" or b.device.type == "meta":
        return False
    tol = tolerance(a, b)
    atol, rtol = max(atol or 0.0, tol), max(rtol or 0.0, tol)
    return torch.allclose(a.detach().float().cpu(), b.detach().float().cpu(), atol=atol, rtol=rtol)


def _kind(x: Any) -> str:
    """A short description of a wrong return value: 'a list of 3', 'a tensor of shape (2, 5)'."""
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"a {'tensor' if isinstance(x, torch.Tensor) else 'numpy array'} of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _not_saved_hint(example: str) -> Callable[[Exception], str | None]:
    """Explain the error nnsight leads to when a value used after the trace was never saved."""

    def explain(e: Exception) -> str | None:
        text = str(e).lower()
        if isinstance(e, NameError) or any(
            s in text for s in ("before it's been set", "not been set", "was not saved", "never saved", "not saved")
        ):
            return f"{NOT_SAVED}; wrap what you use after the trace in nnsight.save(...) inside it ({example})"
        return None

    return explain


# --- exercise 0 ------------------------------------------------------------------------------------------------


def check_residual_after(
    fn: Callable, model: Any, prompt: str = "The lighthouse keeper climbed the stairs.", layer: int | None = None
) -> Callable:
    """Exercise 00: fn(model, prompt, layer) -> [n_tokens, d_model], the residual stream after `layer` (default: a third deep)."""
    from .solutions import residual_after

    if is_reference(fn):
        return _verdict(fn, residual_after, RERUN, "residual_after")
    layer = model.n_layers // 3 if layer is None else layer
    got, problem = _run(fn, model, prompt, layer, explain=_not_saved_hint("out = nnsight.save(envoy.output)"))
    if problem is None:
        problem = _residual_problem(got, residual_after, model, prompt, layer)
    return _verdict(fn, residual_after, problem, "residual_after")


def _residual_problem(got: Any, reference: Callable, model: Any, prompt: str, layer: int) -> str | None:
    want = reference(model, prompt, layer)
    n, d = want.shape
    if got is None:
        return RETURNED_NONE
    if isinstance(got, (tuple, list)):
        return (
            f"expected a torch.Tensor, got {_kind(got)}: return the tensor itself, [n_tokens, d_model], "
            "not a tuple or list around it"
        )
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor, got {_kind(got)}"
    if got.dim() == 3 and got.shape[0] == 1 and got.shape[1:] == want.shape:
        return (
            f"shape {tuple(got.shape)} still has the batch axis: take row 0 "
            f"(the layer output is [batch, tokens, d_model]) to get [tokens, d_model]"
        )
    if got.shape == want.shape[::-1] and n != d:
        return f"shape {tuple(got.shape)} is transposed: expected [n_tokens, d_model] = {tuple(want.shape)}"
    if got.shape == (d,):
        if _same(got, want[-1]):
            return "that is the last token's vector only: return every token, [n_tokens, d_model] (index with [0], not [0, -1])"
        if _same(got, want[0]):
            return (
                "that is the first token's vector only: index the batch axis once ([0]); in this version of "
                "transformers the layer output is a tensor, not a tuple, so a second [0] picks token 0"
            )
        if _same(got, want.mean(0)):
            return "that is the mean over tokens: return every token's vector, [n_tokens, d_model]"
        return f"shape {tuple(got.shape)} is a single vector: return every token, [n_tokens, d_model] = {tuple(want.shape)}"
    vocab = getattr(getattr(model, "unembed", None), "out_features", None)
    if got.dim() >= 2 and vocab and got.shape[-1] == vocab:
        return (
            f"shape {tuple(got.shape)} has one column per vocabulary entry: these look like logits "
            "(model.output): save model.layer(layer).output instead"
        )
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected [n_tokens, d_model] = {tuple(want.shape)}"
    if got.device.type != "cpu":
        return f"the tensor is on {got.device}: move it to the CPU with .cpu() after the trace"
    if _same(got, want):
        return None
    if layer >= 1 and _same(got, reference(model, prompt, layer - 1)):
        return (
            f"these are the activations after layer {layer - 1}, not {layer}: one layer too shallow, the stream "
            f"going *into* layer {layer} (its .input, or hidden_states[{layer}] of output_hidden_states): "
            "save model.layer(layer).output"
        )
    if layer + 1 < model.n_layers and _same(got, reference(model, prompt, layer + 1)):
        return (
            f"these are the activations after layer {layer + 1}, not {layer}: one layer too deep "
            "(model.layer(i).output is the stream *after* decoder layer i; in output_hidden_states that is "
            "hidden_states[i + 1])"
        )
    return "values differ from the reference: did you save .output of model.layer(layer)?"


# --- exercise 0b ------------------------------------------------------------------------------------------------


def _edited_probs(model: Any, prompt: str, layer: int, scale: float, position: int = -1) -> torch.Tensor:
    """Next-token probabilities [vocab] at `position` after scaling the stream after `layer` (the check's variants)."""
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        envoy.output[:] = envoy.output * scale
        logits = nnsight.save(model.output.logits[0, position])
    return torch.softmax(logits.float(), -1).cpu()


def check_next_token_probs(
    fn: Callable, model: Any, prompt: str = "The capital of France is", layer: int | None = None, scale: float = 0.25
) -> Callable:
    """Exercise 0b: fn(model, prompt, layer, scale) -> [vocab], next-token probabilities with the stream scaled."""
    from .solutions import next_token_probs

    if is_reference(fn):
        return _verdict(fn, next_token_probs, RERUN, "next_token_probs")
    layer = model.n_layers // 3 if layer is None else layer
    got, problem = _run(fn, model, prompt, layer, scale, explain=_not_saved_hint("nnsight.save(model.output.logits[0, -1])"))
    if problem is None:
        problem = _next_token_problem(got, model, prompt, layer, scale)
    return _verdict(fn, next_token_probs, problem, "next_token_probs")


def _next_token_problem(got: Any, model: Any, prompt: str, layer: int, scale: float) -> str | None:
    want = _edited_probs(model, prompt, layer, scale)
    (vocab,) = want.shape
    if got is None:
        return RETURNED_NONE
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of shape [vocab] = ({vocab},), got {_kind(got)}"
    if got.shape == (1, vocab):
        return f"shape {tuple(got.shape)} still has the batch axis: take row 0 of the logits ([0, -1]) to get [vocab]"
    if got.dim() in (2, 3) and got.shape[-1] == vocab:
        return (
            f"shape {tuple(got.shape)} has one row per position: the next token is predicted at the last position "
            "only (logits[0, -1])"
        )
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, expected [vocab] = ({vocab},)"
    if got.device.type != "cpu":
        return f"the tensor is on {got.device}: move it to the CPU with .cpu()"
    if _same(got, want):
        return None
    got = got.detach().float()
    if _same(got.exp(), want):
        return "these are log-probabilities (log_softmax): return probabilities, torch.softmax(logits, -1)"
    if abs(float(got.sum()) - 1) > 1e-3 and _same(torch.softmax(got, -1), want):
        return "these are logits (scores that do not add up to 1): apply torch.softmax over the vocabulary"
    if _same(got, _edited_probs(model, prompt, layer, 1.0)):
        return (
            "these are the unedited model's probabilities: the edit never reached the model. Write it back into "
            "the output (envoy.output[:] = envoy.output * scale); a bare expression is computed and thrown away"
        )
    if layer + 1 < model.n_layers and _same(got, _edited_probs(model, prompt, layer + 1, scale)):
        return f"the stream after layer {layer + 1} was scaled, not after {layer}: one layer too deep"
    if layer >= 1 and _same(got, _edited_probs(model, prompt, layer - 1, scale)):
        return (
            f"the stream going *into* layer {layer} was scaled (its .input, the output of layer {layer - 1}): one "
            "layer too shallow; scale model.layer(layer).output"
        )
    if _same(got, _edited_probs(model, prompt, layer, scale, position=0)):
        return "this is the first position's prediction: the next token after the prompt is predicted at the last position"
    return "values differ from the reference: scale model.layer(layer).output in place, then softmax the last position's logits"


# --- exercise 2 ------------------------------------------------------------------------------------------------


def _broadcast_hint(e: Exception) -> str | None:
    if isinstance(e, RuntimeError) and "must match the size of tensor" in str(e):
        return (
            "the mask is [batch, tokens]: give it a last axis (mask.unsqueeze(-1), or keep[..., None]) "
            "so that it broadcasts over d_model"
        )
    return None


def check_masked_mean(fn: Callable) -> Callable:
    """Exercise 02: fn(acts [b,t,d], mask [b,t], skip_first) -> [b, d], mean over real tokens after skip_first."""
    from .solutions import masked_mean

    if is_reference(fn):
        return _verdict(fn, masked_mean, RERUN, "masked_mean")
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(3, 8, 4, generator=g)
    acts[:, :, 0] += 100.0 * torch.arange(8)  # make positions easy to tell apart
    mask = torch.tensor([[1] * 8, [0] * 2 + [1] * 6, [0] * 4 + [1] * 4])  # left padding: 8, 6 and 4 real tokens
    k = 2
    given_acts, given_mask = acts.clone(), mask.clone()
    got, problem = _run(fn, given_acts, given_mask, k, explain=_broadcast_hint)
    if problem is None:
        problem = _masked_mean_problem(got, masked_mean(acts, mask, k), acts, mask, k)
    if problem is None and not (torch.equal(given_acts, acts) and torch.equal(given_mask, mask)):
        which = "acts" if not torch.equal(given_acts, acts) else "mask"
        problem = (
            f"you modified `{which}` in place (e.g. *= or masked_fill_): the caller's tensor changed. "
            "Compute new tensors instead (acts * keep)"
        )
    return _verdict(fn, masked_mean, problem, "masked_mean")


def _masked_mean_problem(got: Any, want: torch.Tensor, acts: torch.Tensor, mask: torch.Tensor, k: int) -> str | None:
    b, t, d = acts.shape
    if got is None:
        return RETURNED_NONE
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of shape [batch, d_model] = {(b, d)}, got {_kind(got)}"
    if got.shape == (b, 1, d):
        return f"shape {tuple(got.shape)} has an extra axis of size 1: drop keepdim=True to get [batch, d_model]"
    if got.shape == (d, b):
        return f"shape {tuple(got.shape)} is transposed: expected [batch, d_model] = {(b, d)}"
    if got.shape == (t, d):
        return f"shape {tuple(got.shape)}: you averaged over the batch axis (dim=0): average over tokens, dim=1"
    if got.shape == (b, t):
        return f"shape {tuple(got.shape)}: you averaged over d_model (the last axis): average over tokens, dim=1"
    if got.shape != want.shape:
        return (
            f"expected shape [batch, d_model] = {tuple(want.shape)}, got {tuple(got.shape)} (average over the token axis, dim=1)"
        )
    if _same(got, want):
        return None
    real = mask.bool()
    rank = mask.cumsum(-1) - 1  # each token's index among its row's real tokens

    def mean_over(keep: torch.Tensor, denominator: torch.Tensor | None = None) -> torch.Tensor:
        w = keep.to(acts.dtype)
        return (acts * w.unsqueeze(-1)).sum(1) / (w.sum(1, keepdim=True) if denominator is None else denominator)

    def kept(skip: int) -> torch.Tensor:
        return real & (rank >= skip)

    positions = torch.arange(t).expand(b, t)
    if _same(got, acts.mean(1)):
        return (
            "this is the plain mean over every position: neither the mask nor skip_first was used, so pads were "
            "averaged in and the first real tokens kept"
        )
    if _same(got, acts[:, k:].mean(1)):
        return (
            "padding tokens were averaged in: skipping the first positions does not remove pads; multiply by "
            "the attention mask before summing and divide by the count of real tokens"
        )
    if _same(got, mean_over(real & (positions >= k))):
        return (
            "you skipped the first skip_first *positions*, not each row's first skip_first real tokens: with left "
            "padding those positions are pads in padded rows. Rank the real tokens with mask.cumsum(-1) - 1"
        )
    if _same(got, mean_over(kept(0))):
        return (
            "skip_first was ignored: each row's first skip_first real tokens were included (with left padding "
            "they sit at a different position in each row: use mask.cumsum(-1) - 1)"
        )
    if _same(got, mean_over(kept(k + 1))):
        return "one real token too many was skipped: keep tokens whose rank is >= skip_first (not >)"
    if k >= 1 and _same(got, mean_over(kept(k - 1))):
        return (
            "one real token too few was skipped: the rank of a real token is mask.cumsum(-1) - 1 "
            "(the first real token has rank 0); keep rank >= skip_first"
        )
    if _same(got, mean_over(kept(k), torch.tensor(float(t)))):
        return "you divided by the number of positions T: divide by the number of tokens kept in each row (keep.sum(1))"
    if _same(got, mean_over(kept(k), mask.sum(1, keepdim=True).to(acts.dtype))):
        return (
            "you divided by all real tokens, skipped ones included: divide by the number of tokens kept in each row (keep.sum(1))"
        )
    if _same(got, (acts * kept(k).to(acts.dtype).unsqueeze(-1)).sum(1)):
        return "that is a sum, not a mean: divide by the number of tokens kept in each row"
    return "values differ from the reference: check the mask, the skipped tokens and the division"


# --- exercise 2b -----------------------------------------------------------------------------------------------

TWO_PROMPTS = ("A short text.", "A somewhat longer text with more tokens in it.")  # A is shorter: it gets the pads


def check_two_prompt_reads(
    fn: Callable, model: Any, prompts: tuple[str, str] = TWO_PROMPTS, layer: int | None = None
) -> Callable:
    """Exercise 2b: fn(model, prompt_a, prompt_b, layer) -> ([n_a, d], [n_b, d]), read in one trace, pads removed."""
    from .solutions import two_prompt_reads

    if is_reference(fn):
        return _verdict(fn, two_prompt_reads, RERUN, "two_prompt_reads")
    layer = model.n_layers // 3 if layer is None else layer
    got, problem = _run(fn, model, *prompts, layer, explain=_not_saved_hint("out_a = nnsight.save(envoy.output)"))
    if problem is None:
        problem = _two_reads_problem(got, two_prompt_reads(model, *prompts, layer), model, prompts, layer)
    return _verdict(fn, two_prompt_reads, problem, "two_prompt_reads")


def _padded_batch(model: Any, prompts: tuple[str, str], layer: int) -> torch.Tensor:
    """The layer's output for both prompts in one left-padded batch, pads included: [2, tokens, d_model]."""
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(list(prompts), remote=model.remote):
        out = nnsight.save(envoy.output)
    return out.detach().cpu()


def _two_reads_problem(
    got: Any, want: tuple[torch.Tensor, torch.Tensor], model: Any, prompts: tuple[str, str], layer: int
) -> str | None:
    want_a, want_b = want
    if got is None:
        return RETURNED_NONE
    if isinstance(got, torch.Tensor):
        return f"got one tensor of shape {tuple(got.shape)}: return two tensors, one per prompt, as (read_a, read_b)"
    if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(x, torch.Tensor) for x in got):
        return f"expected a tuple of two tensors, (read_a, read_b), got {_kind(got)}"
    a, b = (x.detach() for x in got)
    if any(x.dim() == 3 and x.shape[0] == 1 for x in (a, b)):
        return "a read of shape [1, tokens, d_model] still has the batch axis: take row 0 of each saved output"
    if any(x.device.type != "cpu" for x in (a, b)):
        return "a read is not on the CPU: move each with .cpu() after the trace"
    if _same(a, want_b) and _same(b, want_a):
        return "the two results are swapped: return prompt A's read first, then prompt B's"
    rows = _padded_batch(model, prompts, layer)
    n_a, pads = want_a.shape[0], rows.shape[1] - want_a.shape[0]
    if _same(b, rows[0]) or _same(b, rows[0, -b.shape[0] :]):
        return (
            "the second result is batch row 0 (prompt A) again: in transformers 5 a decoder layer's output is a tensor, "
            "so .output[0] is batch row 0, not the first element of a tuple; read each prompt in its own invoke"
        )
    if _same(a, rows[0]):
        return (
            f"prompt A's read still has its pad positions ({pads} of {rows.shape[1]}): it was padded to prompt B's "
            f"length; keep only its last {n_a} positions, its real tokens"
        )
    if _same(a, rows[0, :n_a]):
        return (
            f"you kept prompt A's first {n_a} positions: the course pads on the left, so the first {pads} of them are "
            "pads; its real tokens are the last ones (out[0, -n_tokens:])"
        )
    if a.shape != want_a.shape or b.shape != want_b.shape:
        return (
            f"shapes {tuple(a.shape)} and {tuple(b.shape)}, expected [n_tokens, d_model] for each: "
            f"{tuple(want_a.shape)} and {tuple(want_b.shape)}"
        )
    if _same(a, want_a) and _same(b, want_b):
        return None
    return "values differ from the reference: read model.layer(layer).output in each invoke and keep each prompt's real tokens"


# --- exercise 1: accuracies ---------------------------------------------------------------------------


def _accuracy_problem(
    got: Any,
    want: float,
    *,
    chance: float,
    n_test: int,
    tol: float,
    items: str,
    aligned: str,
    training: str,
    ignores_train: Callable[[float], bool],
    ignores_test: Callable[[float], bool],
    leak_values: Callable[[], tuple[float, float]],
) -> str | None:
    """What is wrong with an accuracy `got` (None if nothing), given the reference's accuracy `want`.

    items: what is classified ('stories'); aligned: what labels go with ('texts'); training: the message for
    scoring on the training data; ignores_train/test(g): whether the learner's function gives g again on other
    training (test) data; leak_values(): the reference fitted on train scored on train, and fitted on test on test.
    """
    if got is None:
        return RETURNED_NONE
    single = "return one number, the fraction of test " + items + " predicted correctly, as a float"
    if isinstance(got, (list, tuple)):
        return f"got a {type(got).__name__} of {len(got)} values: {single}"
    if type(got).__name__ == "Series":
        return f"got a pandas Series of {len(got)} values: {single}, e.g. float((predicted == truth).mean())"
    if isinstance(got, np.ndarray) and got.ndim >= 1:
        return f"got a numpy array of shape {got.shape}: {single}, e.g. float((predicted == truth).mean())"
    if isinstance(got, (np.ndarray, torch.Tensor)) and got.ndim == 0:
        kind = "torch tensor" if isinstance(got, torch.Tensor) else "numpy array"
        return f"got a 0-d {kind}: wrap it in float(...) to return a Python number"
    if isinstance(got, torch.Tensor):
        return f"got a tensor of shape {tuple(got.shape)}: {single}"
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        return f"expected an accuracy between 0 and 1, got {got!r}"
    g = float(got)
    if math.isnan(g):
        return "got NaN: was the test split empty?"
    if g > 1:
        count = float(g).is_integer() and abs(g - want * n_test) < 0.5  # exactly the number of correct predictions
        if count and n_test == 100:  # with exactly 100 test items the two mistakes give the same number
            return (
                f"{g:.0f} looks like a percentage, or the number of correct predictions out of {n_test}: return a "
                "fraction between 0 and 1 (the .mean() of the comparison)"
            )
        if abs(g / 100 - want) <= tol and not count:
            return f"{g:.1f} looks like a percentage: return a fraction between 0 and 1 (the notebook formats it)"
        if float(g).is_integer() and abs(g / n_test - want) <= tol:
            return (
                f"{g:.0f} is the number of correct predictions: divide by the number of test {items} "
                "(or take the .mean() of the comparison)"
            )
        return f"expected an accuracy between 0 and 1, got {g}"
    if g < 0:
        return f"expected an accuracy between 0 and 1, got {g}"
    if abs(g - want) <= tol:
        return None
    if abs((1 - g) - want) <= 0.02:
        return (
            f"{g:.2f} is the error rate (1 - accuracy, the reference's is {1 - want:.2f}): count predictions equal to the labels"
        )
    if g > want + tol:
        on_train, on_test = leak_values()
        no_train, no_test = ignores_train(g), ignores_test(g)
        if (no_train and not no_test) or (not no_train and not no_test and abs(g - on_test) < 0.02 <= abs(g - on_train)):
            return (
                f"{g:.2f} is what a classifier fitted and scored on the test {items} gets (the reference "
                f"fitted on test scores {on_test:.2f} on test): the test {items} must not be in the data it is "
                f"fitted on; fit on the training {items} only, then score on test"
            )
        if (no_test and not no_train) or (not no_train and not no_test and abs(g - on_train) < 0.02 <= abs(g - on_test)):
            return training.format(g=g)
        return (
            f"{g:.2f} is too good to be true (the reference scores {want:.2f}): were test {items} in the data "
            "the classifier was fitted on?"
        )
    threshold = chance + max(0.05, 3 * math.sqrt(chance * (1 - chance) / max(n_test, 1)))
    if g <= threshold < want:
        return (
            f"{g:.2f} is at chance level: are labels aligned with the {aligned}? (chance is {chance:.2f}; the "
            f"reference scores {want:.2f}; shuffled or reordered labels give chance)"
        )
    return None  # the caller adds its own "far from the reference" message


def _conflicting(y: Any) -> np.ndarray:
    """The labels in another order, fixed: paired with a copy of the same rows they make the data contradict itself."""
    y = np.asarray(y)
    return y[np.random.default_rng(0).permutation(len(y))]


def _number_again(fn: Callable, *args: Any) -> float | None:
    """fn(*args) as a float, or None if it raised or did not return a number (used to see what fn depends on)."""
    try:
        out = fn(*args)
        return float(out) if isinstance(out, numbers.Real) and not isinstance(out, bool) else None
    except Exception:
        return None


@functools.lru_cache(maxsize=1)
def _bow_reference() -> tuple[Any, Any, float]:
    """The fixed split of the bag-of-words check and the reference's accuracy on it (computed once)."""
    from .data import load_stories
    from .solutions import bow_accuracy

    s = load_stories(emotions="core")
    train, test = s[s.split == "train"], s[s.split == "test"]
    return train, test, bow_accuracy(train, test)


@functools.lru_cache(maxsize=1)
def _bow_leaks() -> tuple[float, float]:
    """The reference fitted on train and scored on train, and fitted on test and scored on test."""
    from .solutions import bow_accuracy

    train, test, _ = _bow_reference()
    return bow_accuracy(train, train), bow_accuracy(test, test)


def check_bow_accuracy(fn: Callable) -> Callable:
    """Exercise 01: fn(train_df, test_df) -> test accuracy of a TF-IDF + logistic-regression baseline."""
    import pandas as pd

    from .solutions import bow_accuracy

    if is_reference(fn):
        return _verdict(fn, bow_accuracy, RERUN, "bow_accuracy")
    train, test, want = _bow_reference()
    got, problem = _run(fn, train.copy(), test.copy())
    if problem is None:

        def doubled(df: Any) -> Any:
            return pd.concat([df, df.assign(emotion=_conflicting(df.emotion))], ignore_index=True)

        problem = _accuracy_problem(
            got,
            want,
            chance=1 / train.emotion.nunique(),
            n_test=len(test),
            tol=0.08,
            items="stories",
            aligned="texts",
            training=(
                "{g:.2f} is the accuracy on the training stories: score on `test`, never on the data the classifier was fitted on"
            ),
            ignores_train=lambda g: _number_again(fn, doubled(train), test.copy()) == g,
            ignores_test=lambda g: _number_again(fn, train.copy(), doubled(test)) == g,
            leak_values=_bow_leaks,
        )
        if problem is None and abs(float(got) - want) > 0.08:
            problem = (
                f"accuracy {float(got):.2f} is far from the reference {want:.2f}: fit TfidfVectorizer + "
                "LogisticRegression on train texts and train emotions, predict test texts"
            )
    return _verdict(fn, bow_accuracy, problem, "bow_accuracy")


# --- exercise 4 ------------------------------------------------------------------------------------------------


def check_emotion_vectors(fn: Callable) -> Callable:
    """Exercise 04a: fn(acts [n,d], labels, names) -> [n_emotions, d] per-emotion means minus their mean."""
    from .solutions import emotion_vectors

    if is_reference(fn):
        return _verdict(fn, emotion_vectors, RERUN, "emotion_vectors")
    g = torch.Generator().manual_seed(1)
    names = ["calm", "afraid", "proud"]
    labels = ["calm"] * 6 + ["afraid"] * 2 + ["proud"] * 3  # unbalanced on purpose
    acts = torch.randn(len(labels), 5, generator=g) + 3.0
    got, problem = _run(fn, acts.clone(), list(labels), list(names))
    if problem is None:
        want = emotion_vectors(acts, labels, names)
        sel = [[i for i, lab in enumerate(labels) if lab == n] for n in names]
        means = torch.stack([acts[i].mean(0) for i in sel])
        sums = torch.stack([acts[i].sum(0) for i in sel])
        if got is None:
            problem = RETURNED_NONE
        elif isinstance(got, (list, tuple)):
            problem = f"got {_kind(got)}: torch.stack them into one [n_emotions, d_model] tensor"
        elif not isinstance(got, torch.Tensor):
            problem = f"expected a torch.Tensor of shape [n_emotions, d_model] = {tuple(want.shape)}, got {_kind(got)}"
        elif got.dim() == 3 or (got.is_floating_point() and torch.isnan(got).any()):
            problem = (
                f"shape {tuple(got.shape)}{' with NaN' if torch.isnan(got).any() else ''}: `labels == name` "
                "on a Python list is just False (so no story is selected): make labels a NumPy array "
                "first, labels = np.asarray(labels)"
            )
        elif got.shape == want.shape[::-1]:
            problem = f"shape {tuple(got.shape)} is transposed: expected [n_emotions, d_model] = {tuple(want.shape)}"
        elif got.shape != want.shape:
            problem = f"expected shape [n_emotions, d_model] = {tuple(want.shape)}, got {tuple(got.shape)}"
        elif _same(got, want):
            problem = None
        elif _same(got, means):
            problem = "these are the raw means: subtract the mean over emotions so that what all emotions share is removed"
        elif _same(got, means - acts.mean(0)):
            problem = (
                "you subtracted the mean over all stories; emotions with more stories then weigh more. "
                "Subtract the mean of the per-emotion means instead"
            )
        elif any(_same(got[list(p)], want) for p in itertools.permutations(range(len(names)))):
            problem = "rows are not in the order of `names`: build them with [... for n in names]"
        elif _same(got, want / want.norm(dim=1, keepdim=True)) or _same(got, means / means.norm(dim=1, keepdim=True)):
            problem = "the rows were normalised to unit length: keep the centred means as they are (their norms matter later)"
        elif _same(got, sums) or _same(got, sums - sums.mean(0)):
            problem = "you summed the stories of each emotion: take their mean (.mean(0)), so counts do not matter"
        elif _same(got, means - means.mean(1, keepdim=True)):
            problem = (
                "you subtracted each row's mean over d_model (dim=1): subtract the mean over emotions, "
                "means.mean(0, keepdim=True)"
            )
        else:
            problem = "values differ from the reference: mean per emotion (dim=0 over its stories), then centre"
    return _verdict(fn, emotion_vectors, problem, "emotion_vectors")


def _matmul_hint(e: Exception) -> str | None:
    if isinstance(e, RuntimeError) and (
        "cannot be multiplied" in str(e) or "size mismatch" in str(e) or "must match the size" in str(e)
    ):
        return (
            "check the transposes: vectors are [n, d] and components [k, d], so the coefficients are "
            "vectors @ components.T ([n, k]) and the part in the span is (vectors @ components.T) @ components"
        )
    return None


def check_project_out(fn: Callable) -> Callable:
    """Exercise 04b: fn(vectors [n,d], components [k,d] orthonormal) -> vectors without their part in that span."""
    from .solutions import project_out

    if is_reference(fn):
        return _verdict(fn, project_out, RERUN, "project_out")
    g = torch.Generator().manual_seed(2)
    vectors = torch.randn(4, 6, generator=g)
    components = torch.linalg.qr(torch.randn(6, 3, generator=g))[0].T  # [3, 6], orthonormal rows
    given_v, given_c = vectors.clone(), components.clone()
    got, problem = _run(fn, given_v, given_c, explain=_matmul_hint)
    if problem is None:
        want = project_out(vectors, components)
        inside = (vectors @ components.T) @ components
        if not torch.equal(given_v, vectors):
            problem = (
                "you modified `vectors` in place (-= or sub_): the caller's raw vectors changed. "
                "Return a new tensor, vectors - ..."
            )
        elif not torch.equal(given_c, components):
            problem = "you modified `components` in place: compute new tensors instead"
        elif got is None:
            problem = RETURNED_NONE
        elif not isinstance(got, torch.Tensor):
            problem = f"expected a torch.Tensor of shape {tuple(want.shape)} (same as vectors), got {_kind(got)}"
        elif _same(got, components):
            problem = "you returned the components: return the vectors with their part in the components' span removed"
        elif _same(got, vectors @ components.T):
            problem = (
                "those are the coefficients vectors @ components.T ([n, k]): multiply them by components "
                "to get the part in the span, and subtract that from the vectors"
            )
        elif got.shape == want.shape[::-1]:
            problem = f"shape {tuple(got.shape)} is transposed: expected the shape of vectors, {tuple(want.shape)}"
        elif got.shape != want.shape:
            problem = f"expected shape {tuple(want.shape)} (same as vectors), got {tuple(got.shape)}"
        elif _same(got, want):
            problem = None
        elif _same(got, inside):
            problem = "that is the part *inside* the span: subtract it from the vectors"
        elif _same(got, vectors + inside):
            problem = "you added the projection: subtract it, vectors - (vectors @ components.T) @ components"
        elif any(_same(got, project_out(vectors, components[i : i + 1])) for i in range(len(components))):
            problem = (
                "only one component was removed: project onto all rows of components at once, "
                "(vectors @ components.T) @ components sums over them"
            )
        elif (got.float() @ components.T).abs().max() > 1e-4:
            problem = (
                "the result still has a part in the span of the components (its dot product with them "
                "is not 0): subtract exactly (vectors @ components.T) @ components"
            )
        else:
            problem = "values differ from the reference"
    return _verdict(fn, project_out, problem, "project_out")


# --- exercise 6 ------------------------------------------------------------------------------------------------


def _steer(model: Any, prompt: str, delta: torch.Tensor, layer: int, positions: Any = slice(None)) -> torch.Tensor:
    """Next-token logits [vocab] with delta added after `layer` at `positions` only (the mistakes' answers)."""
    envoy = model.layer(layer)  # resolved here: a block sent to NDIF may hold only envoys and torch
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        h = envoy.output
        h[:, positions] = h[:, positions] + delta.to(h.device, h.dtype)
        logits = nnsight.save(model.output.logits[0, -1])
    return logits.float().cpu()


def check_steered_logits(fn: Callable, model: Any, prompt: str = "The weather today is", layer: int | None = None) -> Callable:
    """Exercise 06: fn(model, prompt, delta, layer) -> next-token logits with delta added after `layer` (default: 40% deep)."""
    from .solutions import steered_logits

    if is_reference(fn):
        return _verdict(fn, steered_logits, RERUN, "steered_logits")
    layer = round(0.4 * model.n_layers) if layer is None else layer

    g = torch.Generator().manual_seed(3)
    delta = torch.randn(model.d_model, generator=g)
    delta = 40.0 * delta / delta.norm()
    if not model.remote:
        delta = delta.to(model.device)  # so that a correct answer that adds it as it is also works on a GPU
    got, problem = _run(
        fn, model, prompt, delta.clone(), layer, explain=_not_saved_hint("logits = nnsight.save(model.output.logits[0, -1])")
    )
    if problem is None:
        want = steered_logits(model, prompt, delta, layer)
        problem = _steered_problem(got, want, model, prompt, delta, layer)
    return _verdict(fn, steered_logits, problem, "steered_logits")


def _steered_problem(got: Any, want: torch.Tensor, model: Any, prompt: str, delta: torch.Tensor, layer: int) -> str | None:
    def close(a: Any, b: Any) -> bool:
        return _same(a, b, atol=1e-3, rtol=1e-3)

    if got is None:
        return RETURNED_NONE
    if (isinstance(got, numbers.Integral) and not isinstance(got, bool)) or (isinstance(got, torch.Tensor) and got.dim() == 0):
        return "a single number: that looks like the id of the predicted token (argmax): return the whole logit vector, [vocab]"
    if not isinstance(got, torch.Tensor):
        return f"expected next-token logits of shape {tuple(want.shape)}, got {_kind(got)}"
    if got.shape == (1, *want.shape):
        return f"shape {tuple(got.shape)} still has the batch axis: return logits[0, -1], shape {tuple(want.shape)}"
    if got.dim() in (2, 3) and got.shape[-1] == want.shape[-1]:
        return (
            f"shape {tuple(got.shape)}: those are the logits at every position: return only the next-token "
            f"logits, logits[0, -1], shape {tuple(want.shape)}"
        )
    if got.shape != want.shape:
        return f"expected next-token logits of shape {tuple(want.shape)}, got {tuple(got.shape)}"
    if close(got, want):
        return None
    x = got.detach().float().cpu()
    if x.min() >= 0 and abs(x.sum().item() - 1) < 1e-3:
        return "these are probabilities (they sum to 1): return the raw logits, without softmax"
    if abs(torch.logsumexp(x, -1).item()) < 1e-3:
        return "these are log-probabilities (their exp sums to 1): return the raw logits, without log_softmax"
    if close(got, _steer(model, prompt, delta * 0, layer)):
        return "the logits are unchanged: the edit did not reach the model (assign into .output[:] inside the trace)"
    if close(got, _steer(model, prompt, -delta, layer)):
        return "you subtracted the vector: add it"
    if layer + 1 < model.n_layers and close(got, _steer(model, prompt, delta, layer + 1)):
        return (
            f"the vector went in at a neighbouring layer, one too deep (after layer {layer + 1}, not {layer}): "
            "edit model.layer(layer).output"
        )
    if layer >= 1 and close(got, _steer(model, prompt, delta, layer - 1)):
        return (
            f"the vector went in at a neighbouring layer, one too shallow (after layer {layer - 1}, not {layer}; "
            "editing .input of a layer does that): edit model.layer(layer).output"
        )
    if close(got, _steer(model, prompt, delta, layer, positions=-1)):
        return "only the last position was steered: add the vector at every position ([:] or [:, :], not [:, -1])"
    if close(got, _steer(model, prompt, delta, layer, positions=0)):
        return "only the first position was steered: add the vector at every position ([:] or [:, :], not [:, 0])"
    unit = 1 / delta.norm().item()
    if close(got, _steer(model, prompt, delta * unit, layer)):
        return "delta was normalised to unit length: add it as it is (its norm is the steering strength)"
    for scale in (2.0, 0.5):
        if close(got, _steer(model, prompt, delta * scale, layer)):
            return f"the logits match delta scaled by {scale:g}: add delta once, as it is"
    return "values differ from the reference: add delta to the whole output of the layer, then read logits[0, -1]"


CHOICE_ACTIVITIES = ("go for a long walk through an autumn forest", "scrub mould off a bathroom ceiling")


def check_choice_logodds(fn: Callable, model: Any) -> Callable:
    """Exercise 07: fn(model, prompt) -> log p("A") - log p("B") of the next token, as a float."""
    from .models import word_token_id
    from .preferences import choice_prompt
    from .solutions import choice_logodds

    if is_reference(fn):
        return _verdict(fn, choice_logodds, RERUN, "choice_logodds")
    prompt = choice_prompt(model, *CHOICE_ACTIVITIES)[0]
    got, problem = _run(fn, model, prompt, explain=_not_saved_hint("logits = nnsight.save(model.output.logits[0, -1])"))
    if problem is None:
        with torch.no_grad(), model.trace(prompt, remote=model.remote):
            logits = nnsight.save(model.output.logits[0])
        lp = torch.log_softmax(logits.float().cpu(), -1)  # [tokens, vocab]
        ids = {w: word_token_id(model, w, space=False) for w in "AB"}
        spaced = {w: word_token_id(model, w) for w in "AB"}
        problem = _choice_problem(got, lp, ids, spaced)
    return _verdict(fn, choice_logodds, problem, "choice_logodds")


def _choice_problem(got: Any, lp: torch.Tensor, ids: dict, spaced: dict) -> str | None:
    """What is wrong with a returned log-odds, given the prompt's log-probabilities at every position [t, vocab]."""
    want = float(lp[-1, ids["A"]] - lp[-1, ids["B"]])
    if got is None:
        return RETURNED_NONE
    if isinstance(got, torch.Tensor) and got.dim() > 0:
        return f"got {_kind(got)}: that is the whole vector; return one number, log p(A) - log p(B) at the last position"
    if isinstance(got, torch.Tensor):
        return "a 0-d tensor: wrap it in float(...) so that it is a plain number"
    if not isinstance(got, numbers.Real) or isinstance(got, bool):
        return f"expected a float, got {_kind(got)}"
    got = float(got)

    def near(x: float) -> bool:
        return math.isclose(got, x, abs_tol=1e-3, rel_tol=1e-3)

    if near(want):
        return None
    p = lp[-1].exp()
    if near(-want):
        return "that is log p(B) - log p(A): flip the sign (A first)"
    if near(float(p[ids["A"]] - p[ids["B"]])):
        return "a difference of probabilities: take log-probabilities (log_softmax) and subtract those"
    if near(math.exp(want)):
        return "that is the odds p(A) / p(B): return its log, log p(A) - log p(B)"
    if near(float(lp[-1, spaced["A"]] - lp[-1, spaced["B"]])):
        return "you used the tokens ' A' and ' B' with a leading space: the answer follows a newline, use space=False"
    if near(float(lp[0, ids["A"]] - lp[0, ids["B"]])):
        return "these are the first position's logits: the next token is predicted at the last position, logits[0, -1]"
    return f"got {got:.4f}, expected {want:.4f}: read logits[0, -1], take log_softmax, subtract the B entry from the A entry"


def check_cheat_logodds(fn: Callable, model: Any, scenario: dict) -> Callable:
    """Exercise 08a: fn(model, scenario) -> mean per-token log-prob of cheat minus honest, as a float."""
    from .cheating import scenario_prompt
    from .solutions import cheat_logodds
    from .steering import continuation_logprobs

    if is_reference(fn):
        return _verdict(fn, cheat_logodds, RERUN, "cheat_logodds")
    got, problem = _run(fn, model, scenario)
    if problem is None:
        prompt = scenario_prompt(model, scenario)
        conts = [scenario["cheat"], scenario["honest"]]
        mean = continuation_logprobs(model, [prompt, prompt], conts)
        lengths = torch.tensor([len(model.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in conts])
        total = mean * lengths  # each message's sum over its tokens, without a second model run
        problem = _cheat_problem(got, mean, total)
    return _verdict(fn, cheat_logodds, problem, "cheat_logodds")


def _cheat_problem(got: Any, mean: torch.Tensor, total: torch.Tensor) -> str | None:
    """What is wrong with a returned cheat_logodds, given the two messages' mean and total log-probabilities."""
    if got is None:
        return RETURNED_NONE
    if isinstance(got, torch.Tensor):
        return "a tensor: wrap it in float(...) so that it is a plain number"
    if not isinstance(got, numbers.Real) or isinstance(got, bool):
        return f"expected a float, got {_kind(got)}"
    want = float(mean[0] - mean[1])

    def near(x: float) -> bool:
        return math.isclose(float(got), x, abs_tol=1e-4, rel_tol=1e-4)

    if near(want):
        return None
    if near(-want):
        return "that is honest minus cheat: the measure is cheat minus honest (positive = prefers cheating)"
    if near(float(total[0] - total[1])):
        return "that is a sum over tokens: use the mean per token (reduce='mean'), so longer messages are not penalised"
    if near(math.exp(want)):
        return "that is the exp of the log-odds (a ratio): return the difference of log-probabilities itself"
    if near(float(mean[0])):
        return "that is only the cheat message's log-probability: subtract the honest message's"
    return f"got {float(got):.4f}, expected {want:.4f}: score both messages after scenario_prompt and subtract"


def check_place_in_null(fn: Callable) -> Callable:
    """Exercise 08b: fn(value, null) -> (share of the null below value, outside the central 95%)."""
    from .solutions import place_in_null

    if is_reference(fn):
        return _verdict(fn, place_in_null, RERUN, "place_in_null")
    null = np.linspace(-1.0, 1.0, 201)  # quantiles 2.5% / 97.5% at -0.95 / +0.95, min/max at -1 / +1
    cases = [0.5, 0.97, -0.97, 0.9, 1.2]
    problem = None
    for value in cases:
        got, problem = _run(fn, value, null.copy())
        if problem is None:
            problem = _null_problem(got, value, null)
        if problem is not None:
            break
    return _verdict(fn, place_in_null, problem, "place_in_null")


def _null_problem(got: Any, value: float, null: np.ndarray) -> str | None:
    """What is wrong with (percentile, outside) for one value."""
    if got is None:
        return RETURNED_NONE
    if isinstance(got, numbers.Real):
        return "you returned one number: return both, (percentile, outside)"
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (percentile, outside), got {_kind(got)}"
    pct, out = got
    share = float(np.mean(null < value))
    low, high = np.quantile(null, [0.025, 0.975])
    outside = bool(value < low or value > high)
    if not math.isclose(float(pct), share, abs_tol=1e-9):
        if math.isclose(float(pct), float(np.mean(null > value)), abs_tol=1e-9):
            return "that is the share *above* the value: the percentile is the share of the null below it"
        if math.isclose(float(pct), 100 * share, abs_tol=1e-6):
            return "that looks like a percentage: return a share between 0 and 1"
        return f"percentile {float(pct):.3f} for value {value}, expected {share:.3f} (the share of the null below it)"
    if bool(out) != outside:
        if bool(out) == bool(value > np.quantile(null, 0.95)):
            return "a one-sided test: outside means below the 2.5% quantile OR above the 97.5% quantile"
        if bool(out) == bool(value < null.min() or value > null.max()):
            return "that band is the min and max of the null: use its 2.5% and 97.5% quantiles"
        return f"outside={bool(out)} for value {value}, expected {outside}: compare with np.quantile(null, [0.025, 0.975])"
    return None


def _dose_data() -> tuple[np.ndarray, torch.Tensor, Any, torch.Tensor]:
    """Synthetic dose data where a projection, a cosine from zero, Pearson and Spearman all give different answers."""
    from .vectors import EmotionVectors

    g = torch.Generator().manual_seed(11)
    d = 16
    origin = 4.0 * torch.randn(d, generator=g)
    values = np.array([1, 2, 3, 5, 8, 13, 21, 34], dtype=float)
    signal = torch.randn(d, generator=g)
    lengths = torch.tensor([0.5, 3.0, 1.0, 2.5, 0.7, 2.0, 1.2, 2.8])[:, None]  # rows of very different lengths
    acts = origin + lengths * (torch.randn(8, d, generator=g) + torch.tensor(np.log(values)).float()[:, None] * signal)
    vectors = EmotionVectors(["a", "b"], 0, torch.randn(2, d, generator=g), origin)
    directions = torch.cat([signal[None], torch.randn(3, d, generator=g)])
    return values, acts, vectors, directions


def check_dose_rho(fn: Callable) -> Callable:
    """Exercise 05: fn(values, acts, vectors, directions) -> Spearman rho of each direction's cosine score, [k]."""
    from scipy.stats import pearsonr, spearmanr

    from .solutions import dose_rho

    if is_reference(fn):
        return _verdict(fn, dose_rho, RERUN, "dose_rho")
    values, acts, vectors, directions = _dose_data()
    got, problem = _run(fn, values, acts.clone(), vectors, directions.clone())
    if problem is None:
        want = dose_rho(values, acts, vectors, directions)

        def rhos(scores: torch.Tensor, corr: Callable = spearmanr) -> np.ndarray:
            return np.array([corr(values, scores[:, j].numpy())[0] for j in range(scores.shape[1])])

        unit = directions / directions.norm(dim=-1, keepdim=True)
        raw = acts / acts.norm(dim=-1, keepdim=True)
        problem = _dose_problem(
            got,
            want,
            {
                "projection": rhos((acts - vectors.origin) @ directions.T),
                "from zero": rhos(raw @ unit.T),
                "pearson": rhos(vectors.cosine_to(acts, directions), pearsonr),
            },
        )
    return _verdict(fn, dose_rho, problem, "dose_rho")


def _dose_problem(got: Any, want: np.ndarray, wrong: dict[str, np.ndarray]) -> str | None:
    """What is wrong with a returned array of rhos, given the right one and the likely wrong ones."""
    if got is None:
        return RETURNED_NONE
    if isinstance(got, (list, tuple)):
        return f"got {_kind(got)}: return a NumPy array (np.array([...]))"
    if isinstance(got, numbers.Real) or (isinstance(got, np.ndarray) and got.size == 1 and want.size > 1):
        return f"got one number: return one value per direction, shape {want.shape}"
    got = np.asarray(got.numpy() if isinstance(got, torch.Tensor) else got, dtype=float)
    if got.shape != want.shape:
        return f"expected shape {want.shape} (one value per direction), got {got.shape}"
    if np.allclose(got, want, atol=1e-6):
        return None
    if np.allclose(got, wrong["projection"], atol=1e-6):
        return (
            "that is a projection, not a cosine: divide by the lengths (vectors.cosine_to does), "
            "so that the control is the score's statistic"
        )
    if np.allclose(got, wrong["from zero"], atol=1e-6):
        return "those cosines are measured from zero: subtract vectors.origin first (as the emotion score does)"
    if np.allclose(got, wrong["pearson"], atol=1e-6):
        return "those are Pearson correlations: the dose-response uses Spearman's rank correlation"
    return "values differ from the reference: cosine from vectors.origin with each direction, then Spearman with values"


# --- exercise 3: the shuffled-label null ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _shuffle_data() -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
    """5 classes in 160 dimensions, 100 rows per split: the probe scores ~0.6 on test, its shuffled twins ~0.2."""
    g = torch.Generator().manual_seed(5)
    centers = torch.randn(5, 160, generator=g) * 0.2
    y = np.array(list("abcde") * 20)
    idx = [ord(c) - 97 for c in y]
    return centers[idx] + torch.randn(100, 160, generator=g), y, centers[idx] + torch.randn(100, 160, generator=g), y.copy()


@functools.lru_cache(maxsize=1)
def _shuffle_reference() -> dict[str, float]:
    """The numbers a right answer and each wrong answer give on the check's data (computed once)."""
    from .probes import fit_probe

    X_tr, y_tr, X_te, y_te = _shuffle_data()
    real = fit_probe(X_tr.numpy(), y_tr)
    rng = np.random.default_rng(0)
    on_train = []
    for _ in range(4):
        perm = rng.permutation(y_tr)
        on_train.append(np.mean(fit_probe(X_tr.numpy(), perm).predict(X_tr.numpy()) == perm))
    one = y_te == "a"
    return {
        "real": float(np.mean(real.predict(X_te.numpy()) == y_te)),
        "real_one_class": float(np.mean(real.predict(X_te[torch.tensor(one)].numpy()) == "a")),
        "train": float(np.mean(on_train)),
        "chance": 1 / len(set(y_tr)),
    }


def check_shuffled_accuracies(fn: Callable) -> Callable:
    """Exercise 03: fn(X_train, y_train, X_test, y_test, n_shuffles, seed) -> [n_shuffles] accuracies of shuffled probes."""
    from .solutions import shuffled_accuracies

    if is_reference(fn):
        return _verdict(fn, shuffled_accuracies, RERUN, "shuffled_accuracies")
    X_tr, y_tr, X_te, y_te = _shuffle_data()
    got, problem = _run(fn, X_tr.clone(), y_tr.copy(), X_te.clone(), y_te.copy(), 8, 0)
    if problem is None:
        problem = _shuffled_problem(fn, got, 8)
    return _verdict(fn, shuffled_accuracies, problem, "shuffled_accuracies")


def _shuffled_problem(fn: Callable, got: Any, n: int) -> str | None:
    """What is wrong with the accuracies of n shuffled probes (None if nothing)."""
    if got is None:
        return RETURNED_NONE
    if isinstance(got, numbers.Real) or (isinstance(got, (np.ndarray, torch.Tensor)) and got.ndim == 0):
        return f"got one number: return one accuracy per shuffle, an array of shape ({n},) (the null is all of them)"
    if isinstance(got, (list, tuple)):
        return f"got {_kind(got)}: return a NumPy array, np.array([...])"
    got = np.asarray(got.numpy() if isinstance(got, torch.Tensor) else got, dtype=float)
    if got.shape != (n,):
        return f"expected shape ({n},), one accuracy per shuffle, got {got.shape}"
    if got.max() > 1:
        return "these look like percentages: return shares between 0 and 1"
    X_tr, y_tr, X_te, y_te = _shuffle_data()
    again, _ = _run(fn, X_tr.clone(), y_tr.copy(), X_te.clone(), y_te.copy(), n, 0)
    if again is None or not np.allclose(np.asarray(again, dtype=float), got):
        return (
            "not reproducible: two calls with the same seed gave different accuracies. Draw the permutations from "
            "rng = np.random.default_rng(seed), created once"
        )
    ref, mean, band = _shuffle_reference(), float(got.mean()), 0.06
    if abs(mean - ref["real"]) < band:
        return (
            f"mean {mean:.2f} is the real probe's accuracy ({ref['real']:.2f}): nothing was shuffled. Permute y_train "
            "alone (permuting X_train and y_train together keeps every pair)"
        )
    if abs(mean - ref["train"]) < band:
        return (
            f"mean {mean:.2f} is the training accuracy of the shuffled probes: score each one on X_test against "
            "y_test, the real test labels"
        )
    if abs(mean - (1 - ref["chance"])) < band:
        return f"mean {mean:.2f} looks like error rates (1 - accuracy): count predictions equal to y_test"
    if np.ptp(got) == 0:
        return (
            "every shuffle gave the same accuracy: each one must be a new permutation. Create the generator once, "
            "before the loop, and call rng.permutation(y_train) inside it"
        )
    one = y_te == "a"
    single, _ = _run(fn, X_tr.clone(), y_tr.copy(), X_te[torch.tensor(one)].clone(), y_te[one].copy(), n, 0)
    if single is not None and np.mean(np.asarray(single, dtype=float)) > (ref["real_one_class"] + ref["chance"]) / 2:
        return (
            "you shuffled the test labels: the probe was fitted on the real training labels, so it still reads the "
            "emotion (on a test set of one class, shuffling its labels changes nothing). Shuffle y_train"
        )
    if abs(mean - ref["chance"]) > 0.12:
        return f"mean {mean:.2f} is far from chance ({ref['chance']:.2f}), where probes on shuffled labels land"
    return None


# --- exercise 4c: split-half reliability ------------------------------------------------------------------------


def check_split_half_agreement(fn: Callable) -> Callable:
    """Exercise 04c: fn(half_a [n,d], half_b [n,d]) -> (cosine per row [n], r of the similarity matrices, Spearman-Brown r)."""
    from .solutions import split_half_agreement

    if is_reference(fn):
        return _verdict(fn, split_half_agreement, RERUN, "split_half_agreement")
    g = torch.Generator().manual_seed(4)
    a = torch.randn(6, 8, generator=g) * torch.tensor([[0.5], [2.0], [1.0], [3.0], [0.7], [1.5]])
    b = a + 0.8 * torch.randn(6, 8, generator=g)
    got, problem = _run(fn, a.clone(), b.clone())
    if problem is None:
        problem = _split_half_problem(got, a, b, split_half_agreement(a, b))
    return _verdict(fn, split_half_agreement, problem, "split_half_agreement")


def _split_half_problem(got: Any, a: torch.Tensor, b: torch.Tensor, want: tuple) -> str | None:
    """What is wrong with (cosines, r_half, r_full) (None if nothing)."""
    from scipy.stats import spearmanr

    if got is None:
        return RETURNED_NONE
    if not isinstance(got, tuple) or len(got) != 3:
        return f"expected a tuple (cosines, r_half, r_full), got {_kind(got)}"
    cos, r_half, r_full = got
    if isinstance(cos, torch.Tensor):
        return "the cosines are a torch tensor: return a NumPy array (.numpy())"
    cos = np.asarray(cos, dtype=float)
    n = a.shape[0]
    if cos.shape == (n, n):
        return (
            "you returned the cosine of every row of half A with every row of half B: keep the diagonal only, "
            "each emotion against itself"
        )
    if cos.shape == (a.shape[1],):
        return "cosines over the wrong axis (one per dimension): normalise each row, then compare row i of A with row i of B"
    if cos.shape != (n,):
        return f"expected {n} cosines (one per emotion), got shape {cos.shape}"
    if np.allclose(cos, (a * b).sum(1).numpy(), atol=1e-4):
        return "those are dot products, not cosines: divide each row by its norm first"
    if not np.allclose(cos, want[0], atol=1e-4):
        return "the cosines differ from the reference: normalise the rows of both halves, then sum their products"
    i, j = np.triu_indices(n, 1)
    ua, ub = (v / v.norm(dim=1, keepdim=True) for v in (a, b))
    sa, sb = (ua @ ua.T).numpy(), (ub @ ub.T).numpy()
    if math.isclose(float(r_half), float(np.corrcoef(sa.ravel(), sb.ravel())[0, 1]), abs_tol=1e-4):
        return "the diagonal (always 1) entered the correlation: use the entries above the diagonal only"
    if math.isclose(float(r_half), float(np.corrcoef((a @ a.T).numpy()[i, j], (b @ b.T).numpy()[i, j])[0, 1]), abs_tol=1e-4):
        return "the similarity matrices hold dot products: use cosine similarities (unit rows) in both"
    if math.isclose(float(r_half), float(spearmanr(sa[i, j], sb[i, j])[0]), abs_tol=1e-4):
        return "that is a rank correlation (Spearman): correlate the similarities with Pearson's r (np.corrcoef)"
    if not math.isclose(float(r_half), want[1], abs_tol=1e-4):
        return f"r_half = {float(r_half):.3f}, expected {want[1]:.3f}: Pearson r of the two matrices' upper triangles"
    if math.isclose(float(r_full), want[1], abs_tol=1e-6):
        return "r_full equals r_half: Spearman-Brown was not applied (a half-length measure, stepped up to full length)"
    if math.isclose(float(r_full), 2 * want[1], abs_tol=1e-4):
        return "2 * r alone can pass 1 and is not a reliability: divide by 1 + r"
    if not math.isclose(float(r_full), want[2], abs_tol=1e-4):
        return f"r_full = {float(r_full):.3f}, expected {want[2]:.3f}: 2 r / (1 + r)"
    return None


# --- exercise 6b: steering every step of a generation -------------------------------------------------------------

GENERATE_PROMPTS = ("The weather today is", "After the long meeting, the whole team decided to")  # two lengths: padding
GENERATE_STRENGTH = 1.0
GENERATE_TOKENS = 6


def _generated(model: Any, delta: torch.Tensor, layer: int, steps: slice = slice(None), rows: Any = slice(None)) -> list[str]:
    """Greedy new text of GENERATE_PROMPTS with delta added after `layer` at generation `steps` and batch `rows` only."""
    import warnings

    from .models import tokenize

    enc, envoy = tokenize(model, list(GENERATE_PROMPTS)), model.layer(layer)
    kwargs = {"max_new_tokens": GENERATE_TOKENS, "do_sample": False, "pad_token_id": model.tokenizer.pad_token_id}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        with model.generate(**kwargs, remote=model.remote) as tracer:
            with tracer.invoke(enc):
                for _ in tracer.iter[steps]:
                    h = envoy.output
                    h[rows] = h[rows] + delta.to(h.device, h.dtype)
            with tracer.invoke():
                out = tracer.result.save()
    return [model.tokenizer.decode(r, skip_special_tokens=True).strip() for r in out[:, enc["input_ids"].shape[1] :]]


def check_steered_generate(fn: Callable, model: Any, layer: int | None = None) -> Callable:
    """Exercise 6b: fn(model, prompts, direction, layer, strength, max_new_tokens) -> new text per prompt, steered every step."""
    from .solutions import steered_generate
    from .steering import generate, random_direction

    if is_reference(fn):
        return _verdict(fn, steered_generate, RERUN, "steered_generate")
    layer = round(0.4 * model.n_layers) if layer is None else layer
    direction = 3.0 * random_direction(model.d_model, 5)  # not unit length: the answer must normalise it
    args = (model, list(GENERATE_PROMPTS), direction.clone(), layer, GENERATE_STRENGTH, GENERATE_TOKENS)
    got, problem = _run(fn, *args)
    if problem is None:
        want = generate(model, list(GENERATE_PROMPTS), direction, layer=layer, strength=GENERATE_STRENGTH,
                        max_new_tokens=GENERATE_TOKENS, cache=False)  # fmt: skip
        rerun = lambda strength: _run(fn, *args[:4], strength, GENERATE_TOKENS)[0]  # noqa: E731
        problem = _generate_problem(got, want, model, direction, layer, rerun)
    return _verdict(fn, steered_generate, problem, "steered_generate")


def _generate_problem(
    got: Any, want: list[str], model: Any, direction: torch.Tensor, layer: int, rerun: Callable[[float], Any]
) -> str | None:
    """What is wrong with a list of generated texts, found by regenerating with each recognised mistake.

    An absolute strength can leave the text unchanged at the check's strength; then the learner's function is run
    again at strength x the median norm, which reproduces the library's text exactly when that is the mistake.
    """
    from .steering import median_token_norm

    if got is None:
        return RETURNED_NONE
    if isinstance(got, str):
        return f"a single string: return a list of strings, one per prompt ({len(want)} here)"
    if not isinstance(got, (list, tuple)) or len(got) != len(want) or not all(isinstance(t, str) for t in got):
        return f"expected a list of {len(want)} strings (one per prompt), got {_kind(got)}"
    got = [t.strip() for t in got]
    if got == want:
        return None
    if all(g.endswith(w) and g != w and p.split()[0] in g for g, w, p in zip(got, want, GENERATE_PROMPTS)):
        return "the prompt is still in front of the reply: keep only the new tokens (the columns after the padded prompt)"
    unit = direction / direction.norm()
    norm = median_token_norm(model, layer)
    delta = GENERATE_STRENGTH * norm * unit
    absolute = (
        "the strength was used as an absolute length: multiply the unit direction by strength x the layer's median_token_norm"
    )
    variants = [  # (the answer with one mistake, what the check says), tried in this order, each generated only if needed
        (lambda: _generated(model, GENERATE_STRENGTH * unit, layer), absolute),
        (lambda: _generated(model, delta, layer, steps=slice(0, 1)),
         "only the first step (the prompt pass) was steered: loop over every step with `for _ in tracer.iter[:]`"),
        (lambda: _generated(model, delta, layer, steps=slice(1, None)),
         "the prompt pass was not steered (tracer.iter[1:]): steer every step, the first included, with tracer.iter[:]"),
        (lambda: _generated(model, delta, layer, rows=0),
         "only the first prompt was steered: the layer's output is one tensor [batch, tokens, d_model], so output[0] "
         "is batch row 0, not a tuple's first element: edit output[:]"),
        (lambda: _generated(model, GENERATE_STRENGTH * norm * direction, layer),
         "the direction was not normalised to unit length: divide it by its norm before scaling"),
        (lambda: _generated(model, -delta, layer), "you subtracted the vector: add it"),
        (lambda: _generated(model, delta * 0, layer),
         "the text is the unsteered model's: the edit never reached the model (assign into envoy.output[:] inside the loop)"),
    ]  # fmt: skip
    for texts, message in variants:
        if got == texts():
            if message == absolute and got == _generated(model, delta * 0, layer):
                scaled = rerun(GENERATE_STRENGTH * norm)
                if not (isinstance(scaled, list) and [str(t).strip() for t in scaled] == want):
                    continue  # unchanged text, and not because of the strength's scale: the edit itself never arrived
            return message
    return "the texts differ from the library's steered generation: compare your added vector and the steps it reaches"


# --- exercise 5b: the shuffled-pairing null -------------------------------------------------------------------------


def _pairing_data() -> tuple[np.ndarray, np.ndarray]:
    """Fixed [10, 12] user and assistant profiles that share a pattern per message (so the pairing matters)."""
    rng = np.random.default_rng(11)
    shared = rng.normal(size=(10, 12))
    return shared + 0.8 * rng.normal(size=(10, 12)), shared + 0.8 * rng.normal(size=(10, 12))


def _row_r(u: np.ndarray, a: np.ndarray, axis: int = 1) -> np.ndarray:
    """Pearson r of matching rows (axis=1) or columns (axis=0) of two arrays."""
    u, a = u - u.mean(axis, keepdims=True), a - a.mean(axis, keepdims=True)
    return (u * a).sum(axis) / np.sqrt((u**2).sum(axis) * (a**2).sum(axis))


def _pairing_variant(user: np.ndarray, assistant: np.ndarray, k: int, seed: int, mistake: str) -> np.ndarray:
    """The reference's shuffles with one recognised mistake: 'columns' (emotions shuffled) or 'axis' (r over messages)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        if mistake == "columns":
            out.append(_row_r(user, assistant[:, rng.permutation(user.shape[1])]).mean())
        else:
            out.append(_row_r(user, assistant[rng.permutation(len(user))], axis=0).mean())
    return np.array(out)


def check_pairing_null(fn: Callable) -> Callable:
    """Exercise 5b: fn(user [n, e], assistant [n, e], n_shuffles, seed) -> [n_shuffles] mean r over shuffled pairings."""
    from .solutions import pairing_null

    if is_reference(fn):
        return _verdict(fn, pairing_null, RERUN, "pairing_null")
    user, assistant = _pairing_data()
    got, problem = _run(fn, user.copy(), assistant.copy(), 50, 3)
    if problem is None:
        again, _ = _run(fn, user.copy(), assistant.copy(), 50, 3)
        problem = _pairing_problem(got, again, pairing_null(user, assistant, 50, 3), user, assistant)
    return _verdict(fn, pairing_null, problem, "pairing_null")


def _pairing_problem(got: Any, again: Any, want: np.ndarray, user: np.ndarray, assistant: np.ndarray) -> str | None:
    """What is wrong with a returned null of mean pairing correlations."""
    if got is None:
        return RETURNED_NONE
    if isinstance(got, (list, tuple)):
        return f"got a {type(got).__name__}: return a NumPy array (np.array(...)), shape {want.shape}"
    if not isinstance(got, np.ndarray):
        return f"expected a NumPy array of shape {want.shape}, got {_kind(got)}"
    if got.shape == (want.shape[0], len(user)):
        return f"shape {got.shape}: one r per message and shuffle: average over the messages, one value per shuffle"
    if got.shape != want.shape:
        return f"expected shape {want.shape} (one value per shuffle), got {got.shape}"
    if np.allclose(got, want, atol=1e-6):
        return None
    if not (isinstance(again, np.ndarray) and again.shape == got.shape and np.allclose(got, again)):
        return "not reproducible: two calls with the same seed differ: draw from np.random.default_rng(seed), made once"
    matched = _row_r(user, assistant).mean()
    if np.allclose(got, matched):
        return "nothing was shuffled: every value is the matched statistic (pair user i with assistant order[i])"
    if np.allclose(got, got[0]):
        return "every shuffle drew the same order: make the generator once, before the loop, not inside it"
    if np.allclose(got, _pairing_variant(user, assistant, len(want), 3, "columns"), atol=1e-6):
        return "you shuffled the emotions within each profile: shuffle which message's assistant profile is paired"
    if np.allclose(got, _pairing_variant(user, assistant, len(want), 3, "axis"), atol=1e-6):
        return "those are correlations across messages (one per emotion): correlate each pair's two profiles across emotions"
    return "values differ from the reference: per shuffle, order = rng.permutation(n), then mean r(user[i], assistant[order[i]])"


def check_design_contexts(fn: Callable, model: Any, n_scenarios: int = 4) -> Callable:
    """Exercise 08c: fn() -> (permissive, strict) context notes, judged by a control's properties, not one answer."""
    from .solutions import design_contexts

    if is_reference(fn):
        return _verdict(fn, design_contexts, RERUN, "design_contexts")
    got, problem = _run(fn)
    if problem is None:
        problem = _contexts_problem(got, model, n_scenarios)
    return _verdict(fn, design_contexts, problem, "design_contexts")


def _contexts_problem(got: Any, model: Any, n_scenarios: int) -> str | None:
    """The first property of a context control that (permissive, strict) lacks, or None."""
    from .cheating import content_words, context_logodds, shared_words
    from .data import load_scenarios

    if got is None:
        return RETURNED_NONE
    if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(t, str) and t.strip() for t in got):
        return f"expected two non-empty strings: return a pair (permissive, strict), got {_kind(got)}"
    permissive, strict = got
    if " ".join(permissive.lower().split()) == " ".join(strict.lower().split()):
        return "the same message twice: the strict message must withhold the permission the other one grants"
    scenarios = load_scenarios("cheat_scenarios").to_dict("records")
    taken = shared_words([permissive, strict], scenarios)
    if taken:
        return f"shares words with the scored messages {sorted(taken)}: the control could move them by echoing them"
    n_a, n_b = (len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (permissive, strict))
    if abs(n_a - n_b) > 0.2 * max(n_a, n_b):
        return f"the lengths differ ({n_a} vs {n_b} tokens): match them within 20%, so that length is not what differs"
    a, b = content_words(permissive), content_words(strict)
    if len(a & b) < 0.5 * len(a | b):
        return (
            f"the two messages differ in more than the permission (they share {len(a & b)} of {len(a | b)} "
            "content words): keep everything else the same"
        )
    items = scenarios[:n_scenarios]
    change = float((context_logodds(model, items, permissive) - context_logodds(model, items, strict)).mean())
    if change <= 0:
        return (
            f"your pair makes the cheat message less likely ({change:+.3f} nats/token on {len(items)} scenarios): "
            "is the permissive message first? If it is, reword the permission"
        )
    return None
