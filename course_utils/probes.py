"""Linear probes and their controls: per-layer logistic regression, shuffled labels, bag-of-words."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .cache import cached, code_version, request_key, tensor_sha256, texts_sha256
from .stats import accuracy_ci  # noqa: F401  (re-exported: notebooks import it from here)

# Fixed in advance, never tuned on the test split.
PROBE_C = 1.0
BOW_C = 1.0
N_JOBS = 2  # layers are fitted in parallel processes (the results do not depend on it)


def make_probe(C: float = PROBE_C) -> object:
    """The course's probe: standardised features, then multinomial logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def fit_probe(X_train: np.ndarray, y_train: Sequence[str], C: float = PROBE_C, cache: bool = True) -> object:
    """Fit one probe on [n, d] features.

    With cache (default) the fitted parameters are stored under build/cache/probes, keyed by the exact features,
    labels, C and this code, and a rerun rebuilds the same probe from them (the same numbers, bit for bit).
    """
    X, y = np.asarray(X_train, dtype=np.float32), list(y_train)
    if not cache:
        return make_probe(C).fit(X, y)
    classes = np.unique(np.asarray(y))  # what LogisticRegression.fit stores as classes_
    request = {
        "what": "fit_probe",
        "X": tensor_sha256(torch.from_numpy(np.ascontiguousarray(X))),
        "labels": texts_sha256([str(v) for v in y]),
        "classes": [str(c) for c in classes] + [classes.dtype.kind],
        "C": float(C),
    }
    key = request_key(request, code_version(make_probe, _probe_params, _probe_from))
    return _probe_from(cached("probes", key, lambda: _probe_params(make_probe(C).fit(X, y))), classes, C)


def _probe_params(probe: object) -> dict[str, torch.Tensor]:
    """The fitted attributes of a probe's scaler and regression as tensors (classes_ aside: it is the labels')."""
    return {
        f"{part}.{name}" + (".scalar" if np.ndim(value) == 0 else ""): torch.as_tensor(np.atleast_1d(value))
        for part, step in (("scaler", probe[0]), ("regression", probe[-1]))
        for name, value in vars(step).items()
        if name.endswith("_") and not name.startswith("_") and name != "classes_"
    }


def _probe_from(params: dict[str, torch.Tensor], classes: np.ndarray, C: float) -> object:
    """A probe rebuilt from `_probe_params` and its sorted classes, ready to predict."""
    probe = make_probe(C)
    for name, tensor in params.items():
        part, attr, *scalar = name.split(".")
        value = tensor.numpy()
        if scalar:  # stored as [1]: a number such as n_features_in_ (int) or n_samples_seen_
            value = value[0].item() if value.dtype.kind in "iub" else value[0]
        setattr(probe[0] if part == "scaler" else probe[-1], attr, value)
    probe[-1].classes_ = classes
    return probe


def probe_by_layer(
    acts_train: torch.Tensor,
    y_train: Sequence[str],
    acts_test: torch.Tensor,
    y_test: Sequence[str],
    layers: Sequence[int] | None = None,
    shuffle_seed: int | None = None,
    C: float = PROBE_C,
    cache: bool = True,
) -> pd.DataFrame:
    """Test accuracy (with 95% CI) of a probe at each layer; shuffle_seed permutes the training labels (control).

    With cache (default) the table is stored under build/cache/probes, keyed by the exact activations, labels,
    layers, seed, C and this code, so a rerun of a notebook refits nothing.
    """
    if acts_train.dim() != 3 or acts_test.dim() != 3:
        raise ValueError("acts_train and acts_test must be [n_texts, n_layers, d_model]")
    if len(y_train) != acts_train.shape[0] or len(y_test) != acts_test.shape[0]:
        raise ValueError("labels must have one entry per text")
    y_train = np.asarray(y_train)
    if shuffle_seed is not None:
        y_train = np.random.default_rng(shuffle_seed).permutation(y_train)
    layers = [int(x) for x in (range(acts_train.shape[1]) if layers is None else layers)]
    y_test = np.asarray(y_test)
    request = {
        "what": "probe_by_layer",
        "train": tensor_sha256(acts_train),
        "test": tensor_sha256(acts_test),
        "labels": texts_sha256([str(y) for y in y_train] + ["|"] + [str(y) for y in y_test]),
        "layers": layers,
        "C": float(C),
    }

    def compute() -> dict[str, torch.Tensor]:
        jobs = (
            delayed(_layer_row)(acts_train[:, layer].numpy(), y_train, acts_test[:, layer].numpy(), y_test, layer, C)
            for layer in layers
        )
        table = pd.DataFrame(Parallel(n_jobs=min(N_JOBS, len(layers)))(jobs))
        return {c: torch.tensor(table[c].to_numpy(), dtype=torch.float64) for c in table.columns}

    key = request_key(request, code_version(_layer_row, fit_probe, make_probe))
    table = pd.DataFrame({c: t.numpy() for c, t in cached("probes", key, compute, use=cache).items()})
    return table.astype({"layer": int})


def shuffled_null(
    X_train: np.ndarray | torch.Tensor,
    y_train: Sequence[str],
    X_test: np.ndarray | torch.Tensor,
    y_test: Sequence[str],
    n_shuffles: int,
    seed: int = 0,
    cache: bool = True,
) -> np.ndarray:
    """Test accuracies of n_shuffles probes, each on the training labels in a new order from one seeded generator.

    The same draws as exercise 3's answer (rng = default_rng(seed), one rng.permutation per shuffle), fitted in
    parallel and cached under build/cache/probes, keyed by the exact features, labels, count, seed and this code.
    """
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
        raise ValueError(f"n_shuffles must be a positive integer, got {n_shuffles!r}")
    X_train, X_test = (torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in (X_train, X_test))
    if X_train.dim() != 2 or X_test.dim() != 2:
        raise ValueError("X_train and X_test must be [n_texts, d_model] (one layer)")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(y_train) != X_train.shape[0] or len(y_test) != X_test.shape[0]:
        raise ValueError("labels must have one entry per text")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(y_train) for _ in range(int(n_shuffles))]  # drawn in sequence: the answer's draws
    request = {
        "what": "shuffled_null",
        "train": tensor_sha256(X_train),
        "test": tensor_sha256(X_test),
        "labels": texts_sha256([str(y) for y in y_train] + ["|"] + [str(y) for y in y_test]),
        "n_shuffles": int(n_shuffles),
        "seed": int(seed),
    }

    def compute() -> dict[str, torch.Tensor]:
        jobs = (delayed(_shuffled_accuracy)(X_train.numpy(), order, X_test.numpy(), y_test) for order in orders)
        accs = Parallel(n_jobs=min(N_JOBS, len(orders)))(jobs)
        return {"accuracy": torch.tensor(accs, dtype=torch.float64)}

    key = request_key(request, code_version(_shuffled_accuracy, fit_probe, make_probe))
    return cached("probes", key, compute, use=cache)["accuracy"].numpy()


def _shuffled_accuracy(X_train: np.ndarray, y_order: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of one probe fitted on one order of the training labels (one job of shuffled_null)."""
    return float(np.mean(fit_probe(X_train, y_order, cache=False).predict(X_test) == y_test))  # the null is cached


def _layer_row(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, layer: int, C: float) -> dict:
    """Fit and score the probe of one layer (one job of probe_by_layer)."""
    correct = fit_probe(X_train, y_train, C, cache=False).predict(X_test) == y_test  # the table is cached
    acc, lo, hi = accuracy_ci(correct)
    return {"layer": layer, "accuracy": acc, "ci_low": lo, "ci_high": hi}


def bag_of_words_probe(train_texts: Sequence[str], y_train: Sequence[str], C: float = BOW_C) -> object:
    """TF-IDF over words + logistic regression: the lexical baseline any activation probe must beat."""
    return make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), LogisticRegression(C=C, max_iter=3000)).fit(
        list(train_texts), list(y_train)
    )


def bag_of_words_baseline(emotions: str | Sequence[str] | None = None) -> tuple[float, float]:
    """Train->test accuracy of the bag-of-words baseline on the course stories, and chance (1/classes)."""
    from .data import load_stories

    s = load_stories(emotions=emotions)
    train, test = s[s.split == "train"], s[s.split == "test"]
    clf = bag_of_words_probe(train.text, train.emotion)
    return float((clf.predict(test.text) == test.emotion).mean()), 1.0 / s.emotion.nunique()
