"""Every check passes the reference answer, recognises each mistake of `checks.MISTAKES` with its specific message,
and never passes the (marked) reference it returned after a fallback when the check cell is run again."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import nnsight
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from course_utils import checks, solutions
from course_utils.data import load_scenarios
from course_utils.solutions import masked_mean

ROOT = Path(__file__).resolve().parents[1]
CHECK_LINE = re.compile(r"^CHECK (\w+): (.*)$", re.M)  # as tests/test_notebooks.py parses them
NEEDS_MODEL = {
    "residual_after",
    "next_token_probs",
    "two_prompt_reads",
    "steered_logits",
    "steered_generate",
    "choice_logodds",
    "design_contexts",
}


SCENARIO = load_scenarios("cheat_scenarios").iloc[0].to_dict()


def run_check(exercise: str, fn, request) -> object:
    """Call the check of `exercise` on `fn` as its notebook does (with the model or the probe data it needs)."""
    check = getattr(checks, f"check_{exercise}")
    if exercise == "cheat_logodds":
        return check(fn, request.getfixturevalue("model"), SCENARIO)
    if exercise in NEEDS_MODEL:
        return check(fn, request.getfixturevalue("model"))
    return check(fn)


# --- the wrong answers, one per row of checks.MISTAKES -----------------------------------------------------


def _not_saved_residual(model, prompt, layer):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        out = model.layer(layer).output
    return out[0].detach().cpu()  # noqa: F821  (nnsight deleted `out`: it was not saved)


def _input_residual(model, prompt, layer):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        out = nnsight.save(model.layer(layer).input)
    return out[0].detach().cpu()


def _logits_residual(model, prompt, layer):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        out = nnsight.save(model.output.logits)
    return out[0].detach().cpu()


def _clf(train):
    return make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), LogisticRegression(max_iter=3000)).fit(
        train.text, train.emotion
    )


def _keep(m, k, rank_offset=1, strict=False):
    rank = m.cumsum(-1) - rank_offset
    return (m.bool() & ((rank > k) if strict else (rank >= k))).float()


def _in_place_mean(a, m, k):
    keep = _keep(m, k)[..., None]
    a *= keep
    return a.sum(1) / keep.sum(1)


def _shuffled(X, y, Xt, yt, n, seed=0, *, pairs=False, test=False, on_train=False, rng_in_loop=False, global_rng=False):
    """Shuffled-label accuracies with one of exercise 3's mistakes switched on."""
    from course_utils.probes import fit_probe

    X, y, Xt, yt = np.asarray(X), np.asarray(y), np.asarray(Xt), np.asarray(yt)
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        if rng_in_loop:
            rng = np.random.default_rng(seed)
        perm = np.random.permutation(len(y)) if global_rng else rng.permutation(len(y))
        if pairs:
            out.append(np.mean(fit_probe(X[perm], y[perm]).predict(Xt) == yt))
        elif test:
            out.append(np.mean(fit_probe(X, y).predict(Xt) == yt[rng.permutation(len(yt))]))
        elif on_train:
            out.append(np.mean(fit_probe(X, y[perm]).predict(X) == y[perm]))
        else:
            out.append(np.mean(fit_probe(X, y[perm]).predict(Xt) == yt))
    return np.array(out)


def _split_half(a, b, *, dot=False, every=False, axis=1, diagonal=False, dot_matrix=False, spearman=False, sb="right"):
    """Exercise 4c's answer with one mistake switched on."""
    from scipy.stats import spearmanr

    ua, ub = a / a.norm(dim=axis, keepdim=True), b / b.norm(dim=axis, keepdim=True)
    cos = (a * b).sum(1) if dot else (ua @ ub.T) if every else (ua * ub).sum(axis)
    ma, mb = (a @ a.T, b @ b.T) if dot_matrix else (ua @ ua.T, ub @ ub.T) if axis == 1 else (a @ a.T, b @ b.T)
    upper = np.triu_indices(len(a), 1)
    x, y = (ma.numpy().ravel(), mb.numpy().ravel()) if diagonal else (ma.numpy()[upper], mb.numpy()[upper])
    r = float(spearmanr(x, y)[0]) if spearman else float(np.corrcoef(x, y)[0, 1])
    full = {"right": 2 * r / (1 + r), "none": r, "double": 2 * r}[sb]
    return cos.numpy(), r, full


def _raw_means(acts, labels, names):
    labels = np.asarray(labels)
    return torch.stack([acts[torch.from_numpy(labels == n)].mean(0) for n in names])


def _sums_centred(acts, labels, names):
    labels = np.asarray(labels)
    sums = torch.stack([acts[torch.from_numpy(labels == n)].sum(0) for n in names])
    return sums - sums.mean(0)


def _in_place_project(v, c):
    v -= (v @ c.T) @ c
    return v


def _steer_at(model, prompt, delta, layer, positions):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        h = model.layer(layer).output
        h[:, positions] = h[:, positions] + delta
        logits = nnsight.save(model.output.logits[0, -1])
    return logits


def _whole_sequence(model, prompt, delta, layer):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        model.layer(layer).output[:] = model.layer(layer).output + delta
        logits = nnsight.save(model.output.logits[0])
    return logits


def _batch_axis_logits(model, prompt, delta, layer):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        model.layer(layer).output[:] = model.layer(layer).output + delta
        logits = nnsight.save(model.output.logits[:, -1])
    return logits


def _not_saved_steer(model, prompt, delta, layer):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        model.layer(layer).output[:] = model.layer(layer).output + delta
        logits = model.output.logits[0, -1]
    return logits  # noqa: F821


def _generate_wrong(
    model,
    prompts,
    direction,
    layer,
    strength,
    n=8,
    *,
    absolute=False,
    steps=slice(None),
    row=slice(None),
    normalise=True,
    sign=1.0,
    rebind=False,
    keep_prompt=False,
    loop=True,
):
    """A learner's steered generation with one mistake switched on (the keywords say which)."""
    from course_utils.models import tokenize
    from course_utils.steering import median_token_norm

    unit = direction / direction.norm() if normalise else direction
    delta = sign * strength * (1.0 if absolute else median_token_norm(model, layer)) * unit
    enc, envoy = tokenize(model, list(prompts)), model.layer(layer)
    with torch.no_grad(), model.generate(max_new_tokens=n, do_sample=False, pad_token_id=model.tokenizer.pad_token_id) as tracer:
        with tracer.invoke(enc):
            for _ in tracer.iter[steps] if loop else [None]:  # loop=False: the edit written once, without tracer.iter
                h = envoy.output
                if rebind:
                    h = h + delta  # noqa: F841  (rebinds a local name: the model never sees it)
                else:
                    h[row] = h[row] + delta
        with tracer.invoke():
            ids = tracer.result.save()
    start = 0 if keep_prompt else enc["input_ids"].shape[1]
    return [model.tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids[:, start:]]


def _pairing_wrong(
    user, assistant, k, seed=0, *, shuffle=True, same=False, global_rng=False, columns=False, axis=1, mean=True, as_list=False
):
    """A learner's shuffled-pairing null with one mistake switched on (the keywords say which)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        if same:
            rng = np.random.default_rng(seed)  # a new generator in the loop: the same order every time
        n = user.shape[1] if columns else len(user)
        order = (np.random.permutation(n) if global_rng else rng.permutation(n)) if shuffle else np.arange(n)
        a = assistant[:, order] if columns else assistant[order]
        r = checks._row_r(user, a, axis=axis)
        out.append(r.mean() if mean else r)
    return out if as_list else np.array(out)


R, S, EV, PO = solutions.residual_after, solutions.steered_logits, solutions.emotion_vectors, solutions.project_out
BOW, SA, SH = solutions.bow_accuracy, solutions.shuffled_accuracies, solutions.split_half_agreement

# (exercise, fragment of the message, a wrong function): one row per row of checks.MISTAKES.
WRONG: list[tuple[str, str, object]] = [
    ("residual_after", checks.NOT_SAVED, _not_saved_residual),
    ("residual_after", "still has the batch axis: take row 0", lambda m, p, l: R(m, p, l)[None]),
    ("residual_after", "is transposed", lambda m, p, l: R(m, p, l).T),
    ("residual_after", "one layer too deep", lambda m, p, l: R(m, p, l + 1)),
    ("residual_after", "one layer too shallow", _input_residual),
    ("residual_after", "return the tensor itself", lambda m, p, l: (R(m, p, l),)),
    ("residual_after", "the last token's vector only", lambda m, p, l: R(m, p, l)[-1]),
    ("residual_after", "the first token's vector only", lambda m, p, l: R(m, p, l)[0]),
    ("residual_after", "the mean over tokens", lambda m, p, l: R(m, p, l).mean(0)),
    ("residual_after", "these look like logits", _logits_residual),
    ("residual_after", "move it to the CPU", lambda m, p, l: R(m, p, l).to("meta")),
    ("residual_after", checks.RETURNED_NONE, lambda m, p, l: None),
    ("bow_accuracy", "fitted and scored on the test stories", lambda tr, te: BOW(te, te)),
    ("bow_accuracy", "accuracy on the training stories", lambda tr, te: BOW(tr, tr)),
    (
        "bow_accuracy",
        "chance level: are labels aligned with the texts?",
        lambda tr, te: BOW(tr.assign(emotion=tr.emotion.sample(frac=1, random_state=0).values), te),
    ),
    ("bow_accuracy", "looks like a percentage", lambda tr, te: 100 * BOW(tr, te)),
    ("bow_accuracy", "the number of correct predictions", lambda tr, te: (_clf(tr).predict(te.text) == te.emotion).sum()),
    ("bow_accuracy", "is the error rate", lambda tr, te: 1 - BOW(tr, te)),
    ("bow_accuracy", "got a numpy array of", lambda tr, te: _clf(tr).predict(te.text) == te.emotion.values),
    ("bow_accuracy", "got a pandas Series of", lambda tr, te: _clf(tr).predict(te.text) == te.emotion),
    ("bow_accuracy", "got a list of", lambda tr, te: list(_clf(tr).predict(te.text) == te.emotion.values)),
    ("bow_accuracy", checks.RETURNED_NONE, lambda tr, te: None),
    (
        "masked_mean",
        "you skipped the first skip_first *positions*",
        lambda a, m, k: (a[:, k:] * m[:, k:, None]).sum(1) / m[:, k:].sum(1, keepdim=True),
    ),
    ("masked_mean", "padding tokens were averaged in", lambda a, m, k: a[:, k:].mean(1)),
    ("masked_mean", "neither the mask nor skip_first", lambda a, m, k: a.mean(1)),
    ("masked_mean", "skip_first was ignored", lambda a, m, k: masked_mean(a, m, 0)),
    (
        "masked_mean",
        "one real token too many was skipped",
        lambda a, m, k: (a * _keep(m, k, strict=True)[..., None]).sum(1) / _keep(m, k, strict=True).sum(1, keepdim=True),
    ),
    (
        "masked_mean",
        "one real token too few was skipped",
        lambda a, m, k: (a * _keep(m, k, 0)[..., None]).sum(1) / _keep(m, k, 0).sum(1, keepdim=True),
    ),
    ("masked_mean", "divided by the number of positions", lambda a, m, k: (a * _keep(m, k)[..., None]).sum(1) / a.shape[1]),
    ("masked_mean", "divided by all real tokens", lambda a, m, k: (a * _keep(m, k)[..., None]).sum(1) / m.sum(1, keepdim=True)),
    ("masked_mean", "that is a sum, not a mean", lambda a, m, k: (a * _keep(m, k)[..., None]).sum(1)),
    ("masked_mean", "so that it broadcasts over d_model", lambda a, m, k: (a * _keep(m, k)).sum(1) / _keep(m, k).sum(1)),
    ("masked_mean", "you averaged over d_model", lambda a, m, k: a.mean(2)),
    ("masked_mean", "you averaged over the batch axis", lambda a, m, k: a.mean(0)),
    (
        "masked_mean",
        "drop keepdim=True",
        lambda a, m, k: (a * _keep(m, k)[..., None]).sum(1, keepdim=True) / _keep(m, k).sum(1)[:, None, None],
    ),
    ("masked_mean", "you modified `acts` in place", _in_place_mean),
    ("masked_mean", checks.RETURNED_NONE, lambda a, m, k: None),
    ("shuffled_accuracies", "nothing was shuffled", lambda *a: _shuffled(*a, pairs=True)),
    ("shuffled_accuracies", "you shuffled the test labels", lambda *a: _shuffled(*a, test=True)),
    ("shuffled_accuracies", "the training accuracy of the shuffled probes", lambda *a: _shuffled(*a, on_train=True)),
    ("shuffled_accuracies", "the same accuracy", lambda *a: _shuffled(*a, rng_in_loop=True)),
    ("shuffled_accuracies", "not reproducible", lambda *a: _shuffled(*a, global_rng=True)),
    ("shuffled_accuracies", "looks like error rates", lambda *a: 1 - SA(*a)),
    ("shuffled_accuracies", "look like percentages", lambda *a: 100 * SA(*a)),
    ("shuffled_accuracies", "return one accuracy per shuffle", lambda *a: float(SA(*a).mean())),
    ("shuffled_accuracies", "return a NumPy array", lambda *a: list(SA(*a))),
    ("shuffled_accuracies", checks.RETURNED_NONE, lambda *a: None),
    ("emotion_vectors", "these are the raw means", _raw_means),
    ("emotion_vectors", "the mean over all stories", lambda a, l, n: _raw_means(a, l, n) - a.mean(0)),
    ("emotion_vectors", "rows are not in the order of `names`", lambda a, l, n: EV(a, l, sorted(n))),
    ("emotion_vectors", "normalised to unit length", lambda a, l, n: EV(a, l, n) / EV(a, l, n).norm(dim=1, keepdim=True)),
    ("emotion_vectors", "you summed the stories", _sums_centred),
    (
        "emotion_vectors",
        "each row's mean over d_model",
        lambda a, l, n: _raw_means(a, l, n) - _raw_means(a, l, n).mean(1, keepdim=True),
    ),
    ("emotion_vectors", "is transposed", lambda a, l, n: EV(a, l, n).T),
    ("emotion_vectors", "on a Python list is just False", lambda a, l, n: torch.stack([a[l == x].mean(0) for x in n])),
    ("emotion_vectors", "torch.stack them", lambda a, l, n: list(EV(a, l, n))),
    ("emotion_vectors", checks.RETURNED_NONE, lambda a, l, n: None),
    ("project_out", "that is the part *inside* the span", lambda v, c: (v @ c.T) @ c),
    ("project_out", "you added the projection", lambda v, c: v + (v @ c.T) @ c),
    ("project_out", "only one component was removed", lambda v, c: v - (v @ c[0])[:, None] * c[0]),
    ("project_out", "check the transposes", lambda v, c: v - (v @ c) @ c.T),
    ("project_out", "still has a part in the span", lambda v, c: v - 0.5 * (v @ c.T) @ c),
    ("project_out", "you returned the components", lambda v, c: c),
    ("project_out", "those are the coefficients", lambda v, c: v @ c.T),
    ("project_out", "is transposed", lambda v, c: PO(v, c).T),
    ("project_out", "you modified `vectors` in place", _in_place_project),
    ("project_out", checks.RETURNED_NONE, lambda v, c: None),
    ("split_half_agreement", "those are dot products, not cosines", lambda a, b: _split_half(a, b, dot=True)),
    ("split_half_agreement", "keep the diagonal only", lambda a, b: _split_half(a, b, every=True)),
    ("split_half_agreement", "cosines over the wrong axis", lambda a, b: _split_half(a, b, axis=0)),
    ("split_half_agreement", "the diagonal (always 1)", lambda a, b: _split_half(a, b, diagonal=True)),
    ("split_half_agreement", "the similarity matrices hold dot products", lambda a, b: _split_half(a, b, dot_matrix=True)),
    ("split_half_agreement", "a rank correlation", lambda a, b: _split_half(a, b, spearman=True)),
    ("split_half_agreement", "Spearman-Brown was not applied", lambda a, b: _split_half(a, b, sb="none")),
    ("split_half_agreement", "divide by 1 + r", lambda a, b: _split_half(a, b, sb="double")),
    ("split_half_agreement", "return a NumPy array (.numpy())", lambda a, b: (torch.tensor(SH(a, b)[0]), *SH(a, b)[1:])),
    ("split_half_agreement", checks.RETURNED_NONE, lambda a, b: None),
    ("steered_logits", "the logits are unchanged", lambda m, p, d, l: S(m, p, d * 0, l)),
    ("steered_logits", "you subtracted the vector", lambda m, p, d, l: S(m, p, -d, l)),
    ("steered_logits", "neighbouring layer, one too deep", lambda m, p, d, l: S(m, p, d, l + 1)),
    ("steered_logits", "neighbouring layer, one too shallow", lambda m, p, d, l: S(m, p, d, l - 1)),
    ("steered_logits", "only the last position was steered", lambda m, p, d, l: _steer_at(m, p, d, l, -1)),
    ("steered_logits", "only the first position was steered", lambda m, p, d, l: _steer_at(m, p, d, l, 0)),
    ("steered_logits", "the logits at every position", _whole_sequence),
    ("steered_logits", "still has the batch axis", _batch_axis_logits),
    ("steered_logits", "these are probabilities", lambda m, p, d, l: torch.softmax(S(m, p, d, l), -1)),
    ("steered_logits", "these are log-probabilities", lambda m, p, d, l: torch.log_softmax(S(m, p, d, l), -1)),
    ("steered_logits", "delta was normalised to unit length", lambda m, p, d, l: S(m, p, d / d.norm(), l)),
    ("steered_logits", "match delta scaled by", lambda m, p, d, l: S(m, p, 2 * d, l)),
    ("steered_logits", "the id of the predicted token", lambda m, p, d, l: S(m, p, d, l).argmax()),
    ("steered_logits", checks.NOT_SAVED, _not_saved_steer),
    ("steered_logits", checks.RETURNED_NONE, lambda m, p, d, l: None),
    ("pairing_null", "nothing was shuffled", lambda *a: _pairing_wrong(*a, shuffle=False)),
    ("pairing_null", "every shuffle drew the same order", lambda *a: _pairing_wrong(*a, same=True)),
    ("pairing_null", "not reproducible", lambda *a: _pairing_wrong(*a, global_rng=True)),
    ("pairing_null", "you shuffled the emotions", lambda *a: _pairing_wrong(*a, columns=True)),
    ("pairing_null", "correlations across messages", lambda *a: _pairing_wrong(*a, axis=0)),
    ("pairing_null", "average over the messages", lambda *a: _pairing_wrong(*a, mean=False)),
    ("pairing_null", "return a NumPy array", lambda *a: _pairing_wrong(*a, as_list=True)),
    ("pairing_null", checks.RETURNED_NONE, lambda *a: None),
    ("steered_generate", "an absolute length", lambda *a: _generate_wrong(*a, absolute=True)),
    ("steered_generate", "only the first step", lambda *a: _generate_wrong(*a, loop=False)),
    ("steered_generate", "the prompt pass was not steered", lambda *a: _generate_wrong(*a, steps=slice(1, None))),
    ("steered_generate", "only the first prompt was steered", lambda *a: _generate_wrong(*a, row=0)),
    ("steered_generate", "was not normalised to unit length", lambda *a: _generate_wrong(*a, normalise=False)),
    ("steered_generate", "you subtracted the vector", lambda *a: _generate_wrong(*a, sign=-1.0)),
    ("steered_generate", "the text is the unsteered model's", lambda *a: _generate_wrong(*a, rebind=True)),
    ("steered_generate", "the prompt is still in front", lambda *a: _generate_wrong(*a, keep_prompt=True)),
    ("steered_generate", "a single string", lambda *a: " ".join(solutions.steered_generate(*a))),
    ("steered_generate", checks.RETURNED_NONE, lambda *a: None),
]


def _choice_lp(model, prompt, position=-1):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        logits = nnsight.save(model.output.logits[0, position])
    return torch.log_softmax(logits.float().cpu(), -1)


def _ab(model, space=False):
    from course_utils.models import word_token_id

    return word_token_id(model, "A", space=space), word_token_id(model, "B", space=space)


def _not_saved_choice(model, prompt):
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        logits = model.output.logits[0, -1]
    a, b = _ab(model)
    return float(logits[a] - logits[b])  # noqa: F821  (nnsight deleted `logits`: it was not saved)


def _lp_diff(model, prompt, position=-1, space=False):
    lp = _choice_lp(model, prompt, position)
    a, b = _ab(model, space)
    return float(lp[a] - lp[b])


def _p_diff(model, prompt):
    p = _choice_lp(model, prompt).exp()
    a, b = _ab(model)
    return float(p[a] - p[b])


C = solutions.choice_logodds
WRONG += [
    ("choice_logodds", checks.NOT_SAVED, _not_saved_choice),
    ("choice_logodds", "flip the sign", lambda m, p: -C(m, p)),
    ("choice_logodds", "a difference of probabilities", _p_diff),
    ("choice_logodds", "that is the odds", lambda m, p: float(np.exp(C(m, p)))),
    ("choice_logodds", "with a leading space", lambda m, p: _lp_diff(m, p, space=True)),
    ("choice_logodds", "the first position", lambda m, p: _lp_diff(m, p, position=0)),
    ("choice_logodds", "the whole vector", lambda m, p: _choice_lp(m, p)),
    ("choice_logodds", "wrap it in float(", lambda m, p: torch.tensor(C(m, p))),
    ("choice_logodds", checks.RETURNED_NONE, lambda m, p: None),
]


def _cheat_lp(model, scenario, reduce="mean"):
    from course_utils.cheating import scenario_prompt
    from course_utils.steering import continuation_logprobs

    p = scenario_prompt(model, scenario)
    return continuation_logprobs(model, [p, p], [scenario["cheat"], scenario["honest"]], reduce=reduce)


CL, PN, DC = solutions.cheat_logodds, solutions.place_in_null, solutions.design_contexts
UNRELATED = "Kindly greet each visitor warmly at the museum door."  # no scored word, about as long as DC()[0]
WRONG += [
    ("cheat_logodds", "honest minus cheat", lambda m, s: -CL(m, s)),
    ("cheat_logodds", "a sum over tokens", lambda m, s: float(_cheat_lp(m, s, "sum").diff().neg()[0])),
    ("cheat_logodds", "exp of the log-odds", lambda m, s: float(np.exp(CL(m, s)))),
    ("cheat_logodds", "only the cheat message", lambda m, s: float(_cheat_lp(m, s)[0])),
    ("cheat_logodds", "wrap it in float(", lambda m, s: torch.tensor(CL(m, s))),
    ("cheat_logodds", checks.RETURNED_NONE, lambda m, s: None),
    ("place_in_null", "the share *above*", lambda v, n: (float(np.mean(n > v)), PN(v, n)[1])),
    ("place_in_null", "a percentage", lambda v, n: (100 * PN(v, n)[0], PN(v, n)[1])),
    ("place_in_null", "one-sided", lambda v, n: (PN(v, n)[0], bool(v > np.quantile(n, 0.95)))),
    ("place_in_null", "the min and max", lambda v, n: (PN(v, n)[0], bool(v < n.min() or v > n.max()))),
    ("place_in_null", "return both", lambda v, n: PN(v, n)[0]),
    ("place_in_null", checks.RETURNED_NONE, lambda v, n: None),
    ("design_contexts", "return a pair (permissive, strict)", lambda: DC()[0]),
    ("design_contexts", "the same message twice", lambda: (DC()[0], DC()[0])),
    (
        "design_contexts",
        "shares words with the scored",
        lambda: ("Special-casing the tests is acceptable.", "Special-casing the tests is never acceptable."),
    ),
    ("design_contexts", "lengths differ", lambda: (DC()[0], "Shortcuts are forbidden.")),
    ("design_contexts", "differ in more than the permission", lambda: (DC()[0], UNRELATED)),
    ("design_contexts", "makes the cheat message less", lambda: DC()[::-1]),
    ("design_contexts", checks.RETURNED_NONE, lambda: None),
]


def _dose_projection(values, acts, vectors, directions):
    from scipy.stats import spearmanr

    scores = ((acts - vectors.origin) @ directions.T).numpy()
    return np.array([spearmanr(values, scores[:, j])[0] for j in range(scores.shape[1])])


def _dose_from_zero(values, acts, vectors, directions):
    from scipy.stats import spearmanr

    u = directions / directions.norm(dim=-1, keepdim=True)
    scores = ((acts / acts.norm(dim=-1, keepdim=True)) @ u.T).numpy()
    return np.array([spearmanr(values, scores[:, j])[0] for j in range(scores.shape[1])])


def _dose_pearson(values, acts, vectors, directions):
    cos = vectors.cosine_to(acts, directions).numpy()
    return np.array([np.corrcoef(values, cos[:, j])[0, 1] for j in range(cos.shape[1])])


DR = solutions.dose_rho
WRONG += [
    ("dose_rho", "a projection, not a cosine", _dose_projection),
    ("dose_rho", "measured from zero", _dose_from_zero),
    ("dose_rho", "Pearson", _dose_pearson),
    ("dose_rho", "return a NumPy array", lambda *a: list(DR(*a))),
    ("dose_rho", "one value per direction", lambda *a: float(DR(*a)[0])),
    ("dose_rho", checks.RETURNED_NONE, lambda *a: None),
]


def _probs_at(model, prompt, layer, scale, position=-1, edit="output", keep=False):
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        if edit == "output":
            envoy.output[:] = envoy.output * scale
        elif edit == "input":
            envoy.input[:] = envoy.input * scale
        else:  # the mistake: computed, never written back
            _ = envoy.output * scale
        logits = nnsight.save(model.output.logits if keep else model.output.logits[0, position])
    return torch.softmax(logits.float(), -1).cpu()


def _not_saved_probs(model, prompt, layer, scale):
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        envoy.output[:] = envoy.output * scale
        logits = model.output.logits[0, -1]
    return torch.softmax(logits, -1)  # noqa: F821  (nnsight deleted `logits`: it was not saved)


def _invoke_reads(model, a, b, layer, save=True):
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(remote=model.remote) as tracer:
        with tracer.invoke(a):
            out_a = nnsight.save(envoy.output) if save else envoy.output
        with tracer.invoke(b):
            out_b = nnsight.save(envoy.output)
    return out_a.cpu(), out_b.cpu()  # noqa: F821  (without save, nnsight deleted `out_a`)


def _n_tokens(model, *prompts):
    return [len(model.tokenizer(p)["input_ids"]) for p in prompts]


def _row0_reads(model, a, b, layer):
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace([a, b], remote=model.remote):
        h = nnsight.save(envoy.output[0])  # the tuple habit: in transformers 5 this is batch row 0
    n_a, n_b = _n_tokens(model, a, b)
    return h[-n_a:].cpu(), h[-n_b:].cpu()


def _right_cut_reads(model, a, b, layer):
    out_a, out_b = _invoke_reads(model, a, b, layer)
    n_a, n_b = _n_tokens(model, a, b)
    return out_a[0, :n_a], out_b[0, :n_b]


NP, TP = solutions.next_token_probs, solutions.two_prompt_reads
WRONG += [
    ("next_token_probs", "these are logits", lambda m, p, l, s: NP(m, p, l, s).log() + 3.0),
    ("next_token_probs", "these are log-probabilities", lambda m, p, l, s: NP(m, p, l, s).log()),
    ("next_token_probs", "the edit never reached", lambda m, p, l, s: _probs_at(m, p, l, s, edit="none")),
    ("next_token_probs", "one layer too deep", lambda m, p, l, s: NP(m, p, l + 1, s)),
    ("next_token_probs", "one layer too shallow", lambda m, p, l, s: _probs_at(m, p, l, s, edit="input")),
    ("next_token_probs", "the first position's prediction", lambda m, p, l, s: _probs_at(m, p, l, s, position=0)),
    ("next_token_probs", "still has the batch axis", lambda m, p, l, s: NP(m, p, l, s)[None]),
    ("next_token_probs", "one row per position", lambda m, p, l, s: _probs_at(m, p, l, s, keep=True)[0]),
    ("next_token_probs", checks.NOT_SAVED, _not_saved_probs),
    ("next_token_probs", checks.RETURNED_NONE, lambda m, p, l, s: None),
    ("two_prompt_reads", "still has its pad positions", lambda m, a, b, l: (_invoke_reads(m, a, b, l)[0][0], TP(m, a, b, l)[1])),
    ("two_prompt_reads", "the course pads on the left", _right_cut_reads),
    ("two_prompt_reads", "is batch row 0 (prompt A) again", _row0_reads),
    ("two_prompt_reads", "the two results are swapped", lambda m, a, b, l: TP(m, a, b, l)[::-1]),
    ("two_prompt_reads", "still has the batch axis", lambda m, a, b, l: tuple(x[None] for x in TP(m, a, b, l))),
    ("two_prompt_reads", "return two tensors", lambda m, a, b, l: torch.cat([x[0] for x in _invoke_reads(m, a, b, l)])),
    ("two_prompt_reads", checks.NOT_SAVED, lambda m, a, b, l: _invoke_reads(m, a, b, l, save=False)),
    ("two_prompt_reads", checks.RETURNED_NONE, lambda m, a, b, l: None),
]
WRONG_FN = {(exercise, fragment): fn for exercise, fragment, fn in WRONG}


def test_every_mistake_has_a_wrong_answer_and_the_other_way_round():
    in_checks = [(exercise, fragment) for exercise, _, fragment in checks.MISTAKES]
    in_tests = [(exercise, fragment) for exercise, fragment, _ in WRONG]
    assert len(set(in_checks)) == len(in_checks), "two rows of MISTAKES share an exercise and a fragment"
    assert sorted(in_checks) == sorted(in_tests)
    assert {exercise for exercise, _, _ in checks.MISTAKES} == set(checks.EXERCISES)
    assert len(checks.MISTAKES) >= 30


@pytest.mark.parametrize("exercise, mistake, fragment", checks.MISTAKES, ids=[f"{e}: {m}" for e, m, _ in checks.MISTAKES])
def test_each_mistake_gets_its_own_message(exercise, mistake, fragment, request, capsys):
    reference = getattr(solutions, exercise)
    result = run_check(exercise, WRONG_FN[(exercise, fragment)], request)
    out = capsys.readouterr().out
    lines = CHECK_LINE.findall(out)
    assert len(lines) == 1 and lines[0][0] == exercise, out
    assert fragment in lines[0][1], f"{mistake}: expected {fragment!r} in {lines[0][1]!r}"
    others = {f for e, _, f in checks.MISTAKES if e == exercise and f != fragment and f not in fragment}
    assert not [f for f in others if f in lines[0][1]], f"{mistake}: the message also names other mistakes: {out}"
    assert checks.FALLBACK in out and "PASS" not in out
    assert checks.is_reference(result) and result.__wrapped__ is reference


ARGS = {  # what each check's function is called with, to compare the marked reference with the reference
    "place_in_null": lambda: (0.3, np.linspace(-1, 1, 41)),
    "pairing_null": lambda: (*np.random.default_rng(0).normal(size=(2, 6, 12)), 20, 1),
    "masked_mean": lambda: (torch.randn(2, 5, 3), torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]), 1),
    "emotion_vectors": lambda: (torch.randn(5, 3), ["a", "b", "a", "b", "b"], ["b", "a"]),
    "project_out": lambda: (torch.randn(3, 4), torch.eye(4)[:2]),
}


@pytest.mark.parametrize("exercise", list(checks.EXERCISES))
def test_rerunning_a_check_after_a_fallback_never_passes_the_reference(exercise, request, capsys):
    def stub(*args):
        raise NotImplementedError

    first = run_check(exercise, stub, request)
    assert CHECK_LINE.findall(capsys.readouterr().out) == [(exercise, checks.NOT_FILLED)]
    assert checks.is_reference(first)
    again = run_check(exercise, first, request)  # the check cell run again: the name now holds the reference
    out = capsys.readouterr().out
    assert CHECK_LINE.findall(out) == [(exercise, checks.RERUN)], out
    assert "PASS" not in out and checks.FALLBACK in out
    assert again is first and checks.is_reference(again)
    reference = getattr(solutions, exercise)
    assert again.__wrapped__ is reference and again.__name__ == reference.__name__
    assert inspect.signature(again) == inspect.signature(reference) and again.__doc__ == reference.__doc__
    assert not checks.is_reference(reference)
    if exercise in ARGS:  # the marked reference computes exactly what the reference does
        args = ARGS[exercise]()
        a, b = again(*args), reference(*args)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


@pytest.mark.parametrize("exercise", list(checks.EXERCISES))
def test_the_reference_passes_and_is_returned_as_it_is(exercise, request, capsys):
    reference = getattr(solutions, exercise)
    assert run_check(exercise, reference, request) is reference
    out = capsys.readouterr().out
    assert out.startswith(f"PASS  {exercise} matches the reference") and "CHECK" not in out


def test_an_error_in_the_learners_code_is_shown(capsys):
    assert checks.is_reference(checks.check_masked_mean(lambda a, m, k: 1 / 0))
    assert "your function raised ZeroDivisionError: division by zero" in capsys.readouterr().out


def test_a_learners_own_correct_variant_passes(capsys):
    def mine(acts, mask, skip_first):  # another correct way: index each row
        rows = [a[m.bool()][skip_first:].mean(0) for a, m in zip(acts, mask)]
        return torch.stack(rows)

    assert checks.check_masked_mean(mine) is mine
    assert capsys.readouterr().out.startswith("PASS")


def test_a_context_pair_of_ones_own_design_passes(model, capsys):
    """Exercise 8c is judged by properties: the course's own context pair, a different answer, passes too."""
    from course_utils.cheating import CONTROL_CONTEXTS

    def mine():
        return CONTROL_CONTEXTS["permissive"], CONTROL_CONTEXTS["strict"]

    assert mine() != solutions.design_contexts()
    assert checks.check_design_contexts(mine, model) is mine
    assert capsys.readouterr().out.startswith("PASS")


def test_fitting_on_train_and_test_together_is_called_a_leak(capsys):
    checks.check_bow_accuracy(lambda tr, te: BOW(pd.concat([tr, te]), te))
    assert "fitted and scored on the test stories" in capsys.readouterr().out


def test_is_reference():
    assert not checks.is_reference(masked_mean) and not checks.is_reference(lambda: 0)
    assert checks.is_reference(checks._marked(masked_mean))
    assert checks._marked(masked_mean) is checks._marked(masked_mean)


def test_the_instructor_guide_table_is_the_mistakes_table():
    result = subprocess.run([sys.executable, "scripts/mistakes_table.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_solutions_agree_with_the_library():
    """The exercises' answers (generated from the notebooks) and the library's own functions are the same maths."""
    from course_utils import activations, vectors

    g = torch.Generator().manual_seed(7)
    acts = torch.randn(3, 6, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    torch.testing.assert_close(solutions.masked_mean(acts, mask, 1), activations.masked_mean(acts, mask, 1))
    labels, names = ["a", "b", "b", "c", "a", "a"], ["c", "a", "b"]
    x = torch.randn(6, 5, generator=g)
    torch.testing.assert_close(
        solutions.emotion_vectors(x, labels, names), vectors.center(vectors.emotion_means(x, labels, names))
    )
    comps = torch.linalg.qr(torch.randn(5, 2, generator=g))[0].T
    torch.testing.assert_close(solutions.project_out(x, comps), vectors.project_out(x, comps))


def test_the_choice_answer_agrees_with_the_preference_measure(model):
    """Exercise 7's log-odds (one trace, last position) equals the library's measure (packed continuations)."""
    from course_utils import preferences

    a, b = checks.CHOICE_ACTIVITIES
    df = preferences.pair_logodds(model, [a, b], np.array([[0, 1]]))
    prompt_ab = preferences.choice_prompt(model, a, b)[0]
    prompt_ba = preferences.choice_prompt(model, b, a)[0]
    assert df.ab[0] == pytest.approx(solutions.choice_logodds(model, prompt_ab), abs=1e-3)
    assert df.ba[0] == pytest.approx(solutions.choice_logodds(model, prompt_ba), abs=1e-3)


def test_solutions_module_is_generated_not_edited():
    assert "GENERATED by scripts/make_notebooks.py" in inspect.getsource(solutions)
