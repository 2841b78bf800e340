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


def bow_accuracy(train: Any, test: Any) -> float:
    """Bag-of-words baseline: TF-IDF + logistic regression fitted on train stories, accuracy on test stories."""
    from .probes import bag_of_words_probe

    clf = bag_of_words_probe(train.text, train.emotion)
    return float((clf.predict(test.text) == test.emotion).mean())


def probe_accuracy(X_train: Any, y_train: Any, X_test: Any, y_test: Any) -> float:
    """Fit the course probe on train activations [n, d], return accuracy on the test activations."""
    import numpy as np

    from .probes import fit_probe

    return float((fit_probe(X_train, y_train).predict(np.asarray(X_test)) == np.asarray(y_test)).mean())


def emotion_vectors(acts: torch.Tensor, labels: Any, names: list[str]) -> torch.Tensor:
    """Per-emotion mean of acts [n, d], minus the mean over emotions: [n_emotions, d]."""
    from .vectors import center, emotion_means

    return center(emotion_means(acts, labels, names))


def project_out(vectors: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Remove from each row of vectors [n, d] its projection on the orthonormal rows of components [k, d]."""
    from .vectors import project_out as library_version

    return library_version(vectors, components)


def steered_logits(model: Any, prompt: str, delta: torch.Tensor, layer: int) -> torch.Tensor:
    """Next-token logits [vocab] for one prompt with `delta` added to the residual stream after `layer` at every position."""
    with torch.no_grad(), model.trace(prompt, remote=getattr(model, "remote", False)):
        model.layer(layer).output[:] = model.layer(layer).output + delta
        logits = nnsight.save(model.output.logits[0, -1])
    return logits.detach().float().cpu()
