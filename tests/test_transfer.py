"""course_utils.transfer and stats.mcnemar: the style-shift table on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from course_utils.stats import mcnemar
from course_utils.transfer import (
    EXTRA_SPLITS,
    READERS,
    SITUATION_SPLITS,
    STORY_READER,
    beyond_words_verdict,
    leave_one_form_out,
    reader_predictions,
    transfer_table,
)
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


def test_the_table_adds_the_situation_split_as_a_third_test():
    stories, acts = _synthetic()
    situation = (stories.split == "style_test").to_numpy()
    stories = pd.concat([stories, stories[situation].assign(split="situation_test")], ignore_index=True)
    acts = torch.cat([acts, acts[torch.tensor(situation)]])
    vec = EmotionVectors(names=["joy", "gloom"], layer=0, vectors=torch.eye(8)[:2])
    preds = reader_predictions(acts, stories, vec, ["joy", "gloom"])
    table = transfer_table(stories, preds, ["joy", "gloom"], splits=SITUATION_SPLITS)
    assert table.loc["probe", "situation_test"] == table.loc["probe", "style_test"] >= 0.9
    assert table.loc["probe", "situation_test n"] == 60 and table.loc["probe", "situation_test p vs words"] < 0.001
    assert len(table.loc["bag of words", "situation_test ci"]) == 2 and "situation_test p vs words" in table
    assert "situation_test" not in transfer_table(stories, preds, ["joy", "gloom"])  # the default: the two tests only
    with pytest.raises(ValueError, match=r"must include \['test', 'style_test'\]"):
        transfer_table(stories, preds, ["joy", "gloom"], splits=["test", "situation_test"])


def test_extra_splits_add_the_new_words_stories_as_a_fourth_test():
    stories, acts = _synthetic()
    held = (stories.split == "style_test").to_numpy()
    extra = [stories[held].assign(split=split) for split in EXTRA_SPLITS[2:]]
    stories = pd.concat([stories, *extra], ignore_index=True)
    acts = torch.cat([acts, *[acts[torch.tensor(held)]] * len(extra)])
    vec = EmotionVectors(names=["joy", "gloom"], layer=0, vectors=torch.eye(8)[:2])
    table = transfer_table(stories, reader_predictions(acts, stories, vec, ["joy", "gloom"]), ["joy", "gloom"], EXTRA_SPLITS)
    assert EXTRA_SPLITS[-1] == "new_words_test" and table.loc["probe", "new_words_test n"] == 60
    assert table.loc["probe", "new_words_test"] == table.loc["probe", "situation_test"] == table.loc["probe", "style_test"]


def _confounded(n_per: int = 24, seed: int = 0):
    """Emotion along axis 0 (+-1); the form along axis 1 (+-3), with joy written mostly in one training form and gloom
    mostly in the other, so the mean difference picks up the form; the style test is all in a third form (+3)."""
    rng = np.random.default_rng(seed)
    rows, acts = [], []
    for split in ("train", "test", "style_test"):
        for e, sign in (("joy", 1.0), ("gloom", -1.0)):
            for i in range(n_per):
                form_sign = 3.0 if split == "style_test" else (sign if i % 3 else -sign) * 3.0
                form = "dialogue" if split == "style_test" else ("narration" if form_sign > 0 else "letter")
                acts.append([sign, form_sign, *rng.normal(0, 0.2, 2)])
                rows.append({"emotion": e, "split": split, "form": form, "text": f"story {i}"})
    return pd.DataFrame(rows), torch.tensor(np.array(acts), dtype=torch.float32)


def test_removing_story_variation_undoes_a_form_confound_that_fools_the_cosine():
    stories, acts = _confounded()
    train = (stories.split == "train").to_numpy()
    means = torch.stack([acts[torch.tensor(train & (stories.emotion == e).to_numpy())].mean(0) for e in ("joy", "gloom")])
    vec = EmotionVectors(["joy", "gloom"], 0, means - means.mean(0), means.mean(0))
    table = transfer_table(stories, reader_predictions(acts, stories, vec, ["joy", "gloom"]), ["joy", "gloom"])
    assert table.loc["emotion vectors", "style_test"] <= 0.6  # the form axis outweighs the emotion axis
    assert table.loc[STORY_READER, "style_test"] == 1.0 and table.loc[STORY_READER, "test"] == 1.0


def test_leave_one_form_out_holds_out_each_training_form_in_turn():
    stories, acts = _confounded()
    cv = leave_one_form_out(acts, stories, ["joy", "gloom"], torch.zeros(0, 4), layer=0)
    train = stories[stories.split == "train"]
    assert list(cv.index) == ["letter", "narration"] and list(cv.columns) == ["n", *READERS]
    assert cv.n.tolist() == [int((train.form == f).sum()) for f in cv.index]
    assert cv[STORY_READER].min() == 1.0 and ((cv[list(READERS)] >= 0) & (cv[list(READERS)] <= 1)).all().all()
    with pytest.raises(ValueError, match="at least two training forms"):
        leave_one_form_out(acts, stories.assign(form="letter"), ["joy", "gloom"], torch.zeros(0, 4), layer=0)
    one_form_each = stories.assign(form=np.where(stories.emotion == "joy", "narration", "letter"))
    with pytest.raises(ValueError, match="no training form could be held out"):
        leave_one_form_out(acts, one_form_each, ["joy", "gloom"], torch.zeros(0, 4), layer=0)


def test_beyond_words_verdict_follows_its_rule():
    """A reader right on every story beats shuffled names and words that are right on none: replicates; against
    words that are also always right it only beats the names: partly; a reader picking one emotion: does not."""
    emotions = ["joy", "gloom", "awe", "calm", "fear", "pride"]  # 720 orders of the names: a null of 200 draws
    truth = np.array(emotions * 10)
    stories = pd.DataFrame({"split": "new_words_test", "emotion": truth})
    wrong = np.roll(truth, 1)
    v = beyond_words_verdict(stories, {"r": truth, "bag of words": wrong}, "r", "new_words_test", emotions, "x")
    assert v.verdict == "replicates" and (v.only_reader, v.only_words) == (60, 0) and len(v.null) == 200
    assert v.reason.startswith("x (60): r 1.00 vs shuffled names")
    assert beyond_words_verdict(stories, {"r": truth, "bag of words": truth}, "r", "new_words_test", emotions, "x").verdict == (
        "partly replicates"
    )
    same = np.full(60, "joy")
    assert beyond_words_verdict(stories, {"r": same, "bag of words": wrong}, "r", "new_words_test", emotions, "x").verdict == (
        "does not replicate"
    )
    with pytest.raises(ValueError, match=r"split='situation_test': no stories of these emotions"):
        beyond_words_verdict(stories, {"r": truth, "bag of words": wrong}, "r", "situation_test", emotions, "x")
