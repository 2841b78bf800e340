"""Out-of-distribution transfer: read emotions on stories written in forms (and by writers) never seen in training.

The strongest control against lexical shortcuts: a reader that learned our stories' words rather than their
emotion loses most of its accuracy when the form changes (a dialogue, a text message), while a reader of the
model's representation keeps more of it. Three readers, all fitted on the `train` stories only:
emotion vectors (cosine top-1), a linear probe on the same layer, and the bag-of-words baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .probes import bag_of_words_probe, fit_probe
from .stats import accuracy_ci, mcnemar, mean_diff_ci
from .vectors import EmotionVectors

READERS = ("emotion vectors", "probe", "bag of words")
EVAL_SPLITS = ("test", "style_test")


def reader_predictions(
    acts: torch.Tensor, stories: pd.DataFrame, vectors: EmotionVectors, emotions: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each reader's predicted emotion for every story (rows of `stories`, acts [n, d] at the vectors' layer)."""
    emotions = list(emotions)
    if len(acts) != len(stories):
        raise ValueError(f"acts has {len(acts)} rows for {len(stories)} stories")
    missing = [e for e in emotions if e not in vectors.names]
    if missing:
        raise ValueError(f"emotions {missing} have no vector; available: {vectors.names}")
    train = (stories.split == "train").to_numpy() & stories.emotion.isin(emotions).to_numpy()
    cols = [vectors.names.index(e) for e in emotions]
    X = torch.as_tensor(acts).float()
    by_vector = np.array(emotions)[vectors.cosine(X)[:, cols].argmax(1).numpy()]
    probe = fit_probe(X[train].numpy(), stories.emotion[train].values)
    bow = bag_of_words_probe(stories.text[train], stories.emotion[train].values)
    return {"emotion vectors": by_vector, "probe": probe.predict(X.numpy()), "bag of words": bow.predict(stories.text)}


def transfer_table(stories: pd.DataFrame, predictions: dict[str, np.ndarray], emotions: Sequence[str]) -> pd.DataFrame:
    """Accuracy [95% Wilson] per reader (the keys of `predictions`, one of them "bag of words") on the in-style test
    and the style-shifted test, the drop between them [95% bootstrap], and McNemar's exact p against bag-of-words
    on the same stories."""
    emotions = list(emotions)
    if "bag of words" not in predictions:
        raise ValueError(f"predictions needs a 'bag of words' reader (the lexical baseline); got {list(predictions)}")
    rows = []
    for reader in predictions:
        row: dict = {"reader": reader}
        correct = {}
        for split in EVAL_SPLITS:
            sel = (stories.split == split).to_numpy() & stories.emotion.isin(emotions).to_numpy()
            if not sel.any():
                raise ValueError(f"no {split} stories for these emotions")
            correct[split] = predictions[reader][sel] == stories.emotion.to_numpy()[sel]
            acc, lo, hi = accuracy_ci(correct[split])
            row.update({f"{split}": acc, f"{split} ci": (lo, hi), f"{split} n": int(sel.sum())})
            if reader != "bag of words":
                bow = predictions["bag of words"][sel] == stories.emotion.to_numpy()[sel]
                row[f"{split} p vs words"] = mcnemar(correct[split], bow)[2]
        row["drop"], *ci = mean_diff_ci(correct["test"].astype(float), correct["style_test"].astype(float))
        row["drop ci"] = tuple(ci)
        rows.append(row)
    out = pd.DataFrame(rows).set_index("reader")
    out["chance"] = 1 / len(emotions)
    return out
