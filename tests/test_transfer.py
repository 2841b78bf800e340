"""course_utils.transfer and stats.mcnemar: the style-shift table on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from course_utils.stats import mcnemar
from course_utils.transfer import READERS, reader_predictions, transfer_table
from course_utils.vectors import EmotionVectors


def test_mcnemar_counts_discordant_pairs_and_is_exact():
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 0], bool)
    only_a, only_b, p = mcnemar(a, b)
    assert (only_a, only_b) == (6, 0) and p == pytest.approx(2 * 0.5**6)  # two-sided exact binomial
    assert mcnemar(a, a)[2] == 1.0
    with pytest.raises(ValueError, match="paired"):
        mcnemar(a, b[:5])


def _synthetic(n_per: int = 30, seed: int = 0):
    """Two emotions whose activations sit along two axes; the words give the emotion only in the 'test' form."""
    rng = np.random.default_rng(seed)
    rows, acts = [], []
    for split, words in (("train", True), ("test", True), ("style_test", False)):
        for e, axis in (("joy", 0), ("gloom", 1)):
            for i in range(n_per):
                x = rng.normal(0, 0.5, 8)
                x[axis] += 2.0
                acts.append(x)
                text = (
                    f"{'sunny bright' if e == 'joy' else 'grey rain'} story {i}"
                    if words
                    else f"plain story {i} {rng.integers(9)}"
                )
                rows.append({"emotion": e, "split": split, "text": text})
    return pd.DataFrame(rows), torch.tensor(np.array(acts), dtype=torch.float32)


def test_the_table_shows_words_failing_out_of_style_while_the_representation_transfers():
    stories, acts = _synthetic()
    vec = EmotionVectors(names=["joy", "gloom"], layer=0, vectors=torch.eye(8)[:2])
    preds = reader_predictions(acts, stories, vec, ["joy", "gloom"])
    table = transfer_table(stories, preds, ["joy", "gloom"])
    assert list(table.index) == list(READERS)
    assert table.loc["bag of words", "test"] == 1.0 and table.loc["bag of words", "style_test"] <= 0.65
    assert table.loc["emotion vectors", "style_test"] >= 0.9 and table.loc["probe", "style_test"] >= 0.9
    assert table.loc["bag of words", "drop"] > 0.3 and table.loc["bag of words", "drop ci"][0] > 0
    assert table.loc["probe", "style_test p vs words"] < 0.001  # paired on the same stories
    assert table.loc["probe", "test n"] == 60 and table.loc["probe", "chance"] == 0.5
    with pytest.raises(ValueError, match="have no vector"):
        reader_predictions(acts, stories, vec, ["joy", "awe"])
