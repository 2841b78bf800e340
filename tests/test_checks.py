"""Every check passes the reference answer and catches typical mistakes with a specific message."""
from __future__ import annotations

import numpy as np
import torch

from course_utils import checks, solutions
from course_utils.solutions import masked_mean


def _verdict(capsys) -> str:
    return capsys.readouterr().out


def test_unfilled_exercise_falls_back_with_notice(capsys):
    def stub(*args):
        raise NotImplementedError
    assert checks.check_masked_mean(stub) is masked_mean
    assert checks.FALLBACK in _verdict(capsys)


def test_masked_mean_check(capsys):
    assert checks.check_masked_mean(masked_mean) is masked_mean
    assert "PASS" in _verdict(capsys)
    checks.check_masked_mean(lambda a, m, k: a[:, k:].mean(1))
    assert "padding tokens were averaged in" in _verdict(capsys)
    checks.check_masked_mean(lambda a, m, k: masked_mean(a, m, 0))
    assert "first real token was included" in _verdict(capsys)
    checks.check_masked_mean(lambda a, m, k: a.mean(2))
    assert "expected shape" in _verdict(capsys)
    checks.check_masked_mean(lambda a, m, k: 1 / 0)
    assert "ZeroDivisionError" in _verdict(capsys)


def test_residual_after_check(model, capsys):
    assert checks.check_residual_after(solutions.residual_after, model) is solutions.residual_after
    assert "PASS" in _verdict(capsys)
    checks.check_residual_after(lambda m, p, l: solutions.residual_after(m, p, l + 1), model)
    assert "after layer 11, not 10" in _verdict(capsys)
    checks.check_residual_after(lambda m, p, l: solutions.residual_after(m, p, l)[None], model)
    assert "batch axis" in _verdict(capsys)
    checks.check_residual_after(lambda m, p, l: solutions.residual_after(m, p, l).T, model)
    assert "transposed" in _verdict(capsys)


def test_bow_check(capsys):
    assert checks.check_bow_accuracy(solutions.bow_accuracy) is solutions.bow_accuracy
    assert "PASS" in _verdict(capsys)
    checks.check_bow_accuracy(lambda train, test: solutions.bow_accuracy(train, train))
    assert "accuracy on the training stories" in _verdict(capsys)


def test_probe_check(capsys):
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 8, generator=g) * 2
    y = np.array(["a", "b", "c"] * 20)
    X = centers[[ord(c) - 97 for c in y]] + torch.randn(60, 8, generator=g) * 2.5
    Xt = centers[[ord(c) - 97 for c in y]] + torch.randn(60, 8, generator=g) * 2.5
    assert checks.check_probe_accuracy(solutions.probe_accuracy, X, y, Xt, y) is solutions.probe_accuracy
    assert "PASS" in _verdict(capsys)
    checks.check_probe_accuracy(lambda a, b, c, d: solutions.probe_accuracy(a, b, a, b), X, y, Xt, y)
    assert "training accuracy" in _verdict(capsys)


def test_emotion_vectors_check(capsys):
    assert checks.check_emotion_vectors(solutions.emotion_vectors) is solutions.emotion_vectors
    assert "PASS" in _verdict(capsys)

    def raw_means(acts, labels, names):
        labels = np.asarray(labels)
        return torch.stack([acts[torch.from_numpy(labels == n)].mean(0) for n in names])
    checks.check_emotion_vectors(raw_means)
    assert "raw means" in _verdict(capsys)
    checks.check_emotion_vectors(lambda a, l, n: raw_means(a, l, n) - a.mean(0))
    assert "mean over all stories" in _verdict(capsys)


def test_project_out_check(capsys):
    assert checks.check_project_out(solutions.project_out) is solutions.project_out
    assert "PASS" in _verdict(capsys)
    checks.check_project_out(lambda v, c: (v @ c.T) @ c)
    assert "inside" in _verdict(capsys)
    checks.check_project_out(lambda v, c: v - (v @ c) @ c.T if v.shape[1] == c.shape[0] else v - v @ c.T @ c @ c.T @ c * 0.5)
    assert "still has a component" in _verdict(capsys)


def test_steered_logits_check(model, capsys):
    assert checks.check_steered_logits(solutions.steered_logits, model) is solutions.steered_logits
    assert "PASS" in _verdict(capsys)
    checks.check_steered_logits(lambda m, p, d, l: solutions.steered_logits(m, p, -d, l), model)
    assert "subtracted" in _verdict(capsys)
    checks.check_steered_logits(lambda m, p, d, l: solutions.steered_logits(m, p, d, l + 1), model)
    assert "neighbouring layer" in _verdict(capsys)
    checks.check_steered_logits(lambda m, p, d, l: solutions.steered_logits(m, p, d * 0, l), model)
    assert "unchanged" in _verdict(capsys)


def test_generated_solutions_agree_with_the_library():
    """The exercises' answers (generated from the notebooks) and the library's own functions are the same maths."""
    from course_utils import activations, vectors

    g = torch.Generator().manual_seed(7)
    acts = torch.randn(3, 6, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]])
    torch.testing.assert_close(solutions.masked_mean(acts, mask, 1), activations.masked_mean(acts, mask, 1))
    labels, names = ["a", "b", "b", "c", "a", "a"], ["c", "a", "b"]
    x = torch.randn(6, 5, generator=g)
    torch.testing.assert_close(solutions.emotion_vectors(x, labels, names),
                               vectors.center(vectors.emotion_means(x, labels, names)))
    comps = torch.linalg.qr(torch.randn(5, 2, generator=g))[0].T
    torch.testing.assert_close(solutions.project_out(x, comps), vectors.project_out(x, comps))


def test_solutions_module_is_generated_not_edited():
    import inspect

    assert "GENERATED by scripts/make_notebooks.py" in inspect.getsource(solutions)
