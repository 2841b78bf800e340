"""Checks that run right after each exercise: they say what is wrong, and fall back to the reference."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nnsight
import torch

FALLBACK = "using the reference solution; fill in the cell above to use yours"


def _report(ok: bool, message: str) -> None:
    """Print a check's verdict (plain text, so it reads the same in Jupyter, Colab and papermill logs)."""
    print(("PASS  " if ok else "CHECK ") + message)


def _run(fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """Call a learner's function; return (result, None) or (None, why it could not be used)."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not filled in yet"
    except Exception as e:  # the learner's code raised: show the error, keep the notebook going
        return None, f"your function raised {type(e).__name__}: {e}"


def _verdict(fn: Callable, reference: Callable, problem: str | None, name: str) -> Callable:
    """Return the learner's function if it passed, else explain and return the reference."""
    if problem is None:
        _report(True, f"{name} matches the reference. Well done.")
        return fn
    _report(False, f"{name}: {problem}")
    print(f"      -> {FALLBACK}")
    return reference


def _same(a: Any, b: Any, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=rtol)


def check_residual_after(fn: Callable, model: Any, prompt: str = "The lighthouse keeper climbed the stairs.",
                         layer: int | None = None) -> Callable:
    """Exercise 00: fn(model, prompt, layer) -> [n_tokens, d_model], the residual stream after `layer` (default: a third deep)."""
    from .solutions import residual_after

    layer = model.n_layers // 3 if layer is None else layer

    got, problem = _run(fn, model, prompt, layer)
    if problem is None:
        want = residual_after(model, prompt, layer)
        if not isinstance(got, torch.Tensor):
            problem = f"expected a torch.Tensor, got {type(got).__name__}"
        elif got.dim() == 3 and got.shape[0] == 1:
            problem = (f"shape {tuple(got.shape)} still has the batch axis: take row 0 "
                       f"(the layer output is [batch, tokens, d_model]) to get [tokens, d_model]")
        elif got.shape == want.shape[::-1]:
            problem = f"shape {tuple(got.shape)} is transposed: expected [n_tokens, d_model] = {tuple(want.shape)}"
        elif got.shape != want.shape:
            problem = f"shape {tuple(got.shape)}, expected [n_tokens, d_model] = {tuple(want.shape)}"
        elif not _same(got, want):
            for off in (-1, 1):
                if 0 <= layer + off < model.n_layers and _same(got, residual_after(model, prompt, layer + off)):
                    problem = (f"these are the activations after layer {layer + off}, not {layer}: "
                               "remember model.layer(i).output is the stream *after* decoder layer i "
                               "(in output_hidden_states, that is hidden_states[i + 1])")
                    break
            else:
                problem = "values differ from the reference: did you read .output of model.layer(layer)?"
    return _verdict(fn, residual_after, problem, "residual_after")


def check_masked_mean(fn: Callable) -> Callable:
    """Exercise 02: fn(acts [b,t,d], mask [b,t], skip_first) -> [b, d], mean over real tokens after skip_first."""
    from .solutions import masked_mean

    g = torch.Generator().manual_seed(0)
    acts = torch.randn(3, 6, 4, generator=g)
    acts[:, :, 0] += 100.0 * torch.arange(6)  # make positions easy to tell apart
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    got, problem = _run(fn, acts, mask, 1)
    want = masked_mean(acts, mask, 1)
    if problem is None:
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            problem = f"expected shape [batch, d_model] = {tuple(want.shape)}, got {shape} (average over the token axis, dim=1)"
        elif _same(got, masked_mean(acts, torch.ones_like(mask), 1)) or _same(got, acts[:, 1:].mean(1)):
            problem = "padding tokens were averaged in: multiply by the attention mask before summing and divide by the count of real tokens"
        elif _same(got, masked_mean(acts, mask, 0)):
            problem = "the first real token was included: with left padding it sits at a different position in each row; skip it using each row's own token count (cumsum of the mask)"
        elif _same(got, (acts * mask.unsqueeze(-1)).sum(1)):
            problem = "that is a sum, not a mean: divide by the number of tokens kept in each row"
        elif not _same(got, want):
            problem = "values differ from the reference: check the mask, the skipped tokens and the division"
    return _verdict(fn, masked_mean, problem, "masked_mean")


def check_bow_accuracy(fn: Callable) -> Callable:
    """Exercise 01: fn(train_df, test_df) -> test accuracy of a TF-IDF + logistic-regression baseline."""
    from .data import load_stories
    from .solutions import bow_accuracy

    s = load_stories(emotions="core")
    train, test = s[s.split == "train"], s[s.split == "test"]
    got, problem = _run(fn, train, test)
    if problem is None:
        want = bow_accuracy(train, test)
        leaky = bow_accuracy(train, train)
        if not isinstance(got, (float, int)) or not 0 <= float(got) <= 1:
            problem = f"expected an accuracy between 0 and 1, got {got!r}"
        elif abs(got - leaky) < 0.02 and abs(got - want) > 0.05:
            problem = (f"{got:.2f} is the accuracy on the training stories: score on `test`, "
                       "never on the data the classifier was fitted on")
        elif got > 0.95:
            problem = f"{got:.2f} is too good to be true for words alone: was the classifier fitted on test stories?"
        elif abs(got - want) > 0.08:
            problem = (f"accuracy {got:.2f} is far from the reference {want:.2f}: fit TfidfVectorizer + "
                       "LogisticRegression on train texts and train emotions, predict test texts")
    return _verdict(fn, bow_accuracy, problem, "bow_accuracy")


def check_probe_accuracy(fn: Callable, acts_train: torch.Tensor, y_train: Any, acts_test: torch.Tensor,
                         y_test: Any) -> Callable:
    """Exercise 03: fn(X_train [n,d], y_train, X_test [m,d], y_test) -> test accuracy of a logistic probe."""
    from .solutions import probe_accuracy

    got, problem = _run(fn, acts_train, y_train, acts_test, y_test)
    if problem is None:
        want = probe_accuracy(acts_train, y_train, acts_test, y_test)
        on_train = probe_accuracy(acts_train, y_train, acts_train, y_train)
        if not isinstance(got, (float, int)) or not 0 <= float(got) <= 1:
            problem = f"expected an accuracy between 0 and 1, got {got!r}"
        elif abs(got - on_train) < 1e-9 and abs(on_train - want) > 0.02:
            problem = f"{got:.2f} is the training accuracy: predict on X_test and compare with y_test"
        elif abs(got - want) > 0.1:
            problem = (f"accuracy {got:.2f} vs the reference {want:.2f}: did you standardise the features "
                       "(StandardScaler) and fit on the training split only?")
    return _verdict(fn, probe_accuracy, problem, "probe_accuracy")


def check_emotion_vectors(fn: Callable) -> Callable:
    """Exercise 04a: fn(acts [n,d], labels, names) -> [n_emotions, d] per-emotion means minus their mean."""
    from .solutions import emotion_vectors

    g = torch.Generator().manual_seed(1)
    names = ["calm", "afraid", "proud"]
    labels = ["calm"] * 6 + ["afraid"] * 2 + ["proud"] * 3  # unbalanced on purpose
    acts = torch.randn(len(labels), 5, generator=g) + 3.0
    got, problem = _run(fn, acts, labels, names)
    if problem is None:
        want = emotion_vectors(acts, labels, names)
        means = torch.stack([acts[[i for i, l in enumerate(labels) if l == n]].mean(0) for n in names])
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            problem = f"expected shape [n_emotions, d_model] = {tuple(want.shape)}, got {getattr(got, 'shape', type(got))}"
        elif _same(got, means):
            problem = "these are the raw means: subtract the mean over emotions so that what all emotions share is removed"
        elif _same(got, means - acts.mean(0)):
            problem = ("you subtracted the mean over all stories; emotions with more stories then weigh more. "
                       "Subtract the mean of the per-emotion means instead")
        elif _same(got[[1, 0, 2]], want) or _same(got[[2, 1, 0]], want):
            problem = "rows are not in the order of `names`"
        elif not _same(got, want):
            problem = "values differ from the reference: mean per emotion (dim=0 over its stories), then centre"
    return _verdict(fn, emotion_vectors, problem, "emotion_vectors")


def check_project_out(fn: Callable) -> Callable:
    """Exercise 04b: fn(vectors [n,d], components [k,d] orthonormal) -> vectors without their part in that span."""
    from .solutions import project_out

    g = torch.Generator().manual_seed(2)
    vectors = torch.randn(4, 6, generator=g)
    components = torch.linalg.qr(torch.randn(6, 2, generator=g))[0].T  # [2, 6], orthonormal rows
    got, problem = _run(fn, vectors, components)
    if problem is None:
        want = project_out(vectors, components)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            problem = f"expected shape {tuple(want.shape)} (same as vectors), got {getattr(got, 'shape', type(got))}"
        elif _same(got, (vectors @ components.T) @ components):
            problem = "that is the part *inside* the span: subtract it from the vectors"
        elif (got @ components.T).abs().max() > 1e-4:
            problem = "the result still has a component along the neutral directions: check the transposes (v @ C.T) @ C"
        elif not _same(got, want):
            problem = "values differ from the reference"
    return _verdict(fn, project_out, problem, "project_out")


def check_steered_logits(fn: Callable, model: Any, prompt: str = "The weather today is",
                         layer: int | None = None) -> Callable:
    """Exercise 06: fn(model, prompt, delta, layer) -> next-token logits with delta added after `layer` (default: 40% deep)."""
    from .solutions import steered_logits

    layer = round(0.4 * model.n_layers) if layer is None else layer

    g = torch.Generator().manual_seed(3)
    delta = torch.randn(model.d_model, generator=g)
    delta = 40.0 * delta / delta.norm()
    if not model.remote:
        delta = delta.to(model.device)  # so that a correct answer that adds it as it is also works on a GPU
    got, problem = _run(fn, model, prompt, delta, layer)
    if problem is None:
        want = steered_logits(model, prompt, delta, layer)
        close = lambda a, b: _same(a, b, atol=1e-3, rtol=1e-3)  # noqa: E731
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            problem = f"expected next-token logits of shape {tuple(want.shape)}, got {getattr(got, 'shape', type(got))}"
        elif close(got, steered_logits(model, prompt, delta * 0, layer)):
            problem = "the logits are unchanged: the edit did not reach the model (assign into .output[:] inside the trace)"
        elif close(got, steered_logits(model, prompt, -delta, layer)):
            problem = "you subtracted the vector: add it"
        elif any(close(got, steered_logits(model, prompt, delta, layer + o)) for o in (-1, 1) if 0 <= layer + o < model.n_layers):
            problem = "the vector went in at a neighbouring layer: edit model.layer(layer).output"
        elif not close(got, want):
            with torch.no_grad(), model.trace(prompt, remote=model.remote):
                h = model.layer(layer).output
                h[:, -1] = h[:, -1] + delta.to(h.device, h.dtype)
                last_only = nnsight.save(model.output.logits[0, -1])
            if close(got, last_only.float().cpu()):
                problem = "only the last position was steered: add the vector at every position ([:, :] not [:, -1])"
            else:
                problem = "values differ from the reference: add delta to the whole output of the layer, then read logits[0, -1]"
    return _verdict(fn, steered_logits, problem, "steered_logits")
