"""Out-of-distribution transfer: read emotions on stories written in forms (and by writers) never seen in training.

The strongest control against lexical shortcuts: a reader that learned our stories' words rather than their
emotion loses most of its accuracy when the form changes (a dialogue, a text message), while a reader of the
model's representation keeps more of it. Four readers, all fitted on the `train` stories only:
emotion vectors (cosine top-1), the same vectors with the within-emotion directions of the training stories
projected out (`vectors.without_story_variation`), a linear probe on the same layer, and the bag-of-words baseline.
`leave_one_form_out` scores them inside the training split, one training form held out at a time: the
cross-validation that chooses a readout before any style-shifted number is seen. The situation stories
(`data.load_situation_stories`, split "situation_test"), appended to the stories, add a third test where no story
describes a reaction: `transfer_table(..., splits=SITUATION_SPLITS)`; the new-words stories
(`data.load_new_words_stories`, split "new_words_test") a fourth, where no story uses a word that marks its emotion in
the training stories: `splits=EXTRA_SPLITS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .probes import bag_of_words_probe, fit_probe
from .stats import RankTest, accuracy_ci, mcnemar, mean_diff_ci, permutation_null, rank_test
from .vectors import EmotionVectors, center, emotion_means, project_out, without_story_variation

STORY_READER = "emotion vectors, story variation removed"
READERS = ("emotion vectors", STORY_READER, "probe", "bag of words")
VECTOR_READERS = READERS[:2]  # the two vector readouts leave_one_form_out chooses between
EVAL_SPLITS = ("test", "style_test")
SITUATION_SPLITS = (*EVAL_SPLITS, "situation_test")  # with data.load_situation_stories appended to the stories
EXTRA_SPLITS = (*SITUATION_SPLITS, "new_words_test")  # and data.load_new_words_stories


def reader_predictions(
    acts: torch.Tensor, stories: pd.DataFrame, vectors: EmotionVectors, emotions: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each reader's predicted emotion for every story (rows of `stories`, acts [n, d] at the vectors' layer).

    The probe and bag-of-words are fitted on the train stories of `emotions`; the story-variation reader removes the
    within-emotion directions of every train story whose emotion has a vector (pass all emotions' stories for that).
    """
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
    fitted = (stories.split == "train").to_numpy() & stories.emotion.isin(vectors.names).to_numpy()
    denoised = without_story_variation(vectors, X[torch.tensor(fitted)], stories.emotion[fitted].to_numpy())
    by_denoised = np.array(emotions)[denoised.cosine(X)[:, cols].argmax(1).numpy()]
    probe = fit_probe(X[train].numpy(), stories.emotion[train].values)
    bow = bag_of_words_probe(stories.text[train], stories.emotion[train].values)
    return {"emotion vectors": by_vector, STORY_READER: by_denoised, "probe": probe.predict(X.numpy()),
            "bag of words": bow.predict(stories.text)}  # fmt: skip


def fold_vectors(acts: torch.Tensor, labels: Sequence[str], neutral_pcs: torch.Tensor, layer: int) -> EmotionVectors:
    """Emotion vectors by the paper's recipe from given stories (acts [n, d], one label each): per-emotion means minus
    their mean, `neutral_pcs` [k, d] projected out (build_emotion_vectors without the model, for a CV fold)."""
    labels = np.asarray(labels)
    names = list(dict.fromkeys(labels.tolist()))
    means = emotion_means(torch.as_tensor(acts).float(), labels, names)
    return EmotionVectors(names, layer, project_out(center(means), neutral_pcs), means.mean(0), {"fold": True})


def leave_one_form_out(
    acts: torch.Tensor, stories: pd.DataFrame, emotions: Sequence[str], neutral_pcs: torch.Tensor, layer: int
) -> pd.DataFrame:
    """Top-1 of every reader on each training form when fitted on the other training forms' train stories (rows:
    held-out form, with its story count; a form is skipped when some emotion has no story left to fit on)."""
    emotions = list(emotions)
    if len(acts) != len(stories):
        raise ValueError(f"acts has {len(acts)} rows for {len(stories)} stories")
    train = (stories.split == "train").to_numpy()
    forms = list(dict.fromkeys(stories.form[train].tolist()))
    if len(forms) < 2:
        raise ValueError(f"leave-one-form-out needs at least two training forms; the train split has {forms}")
    X = torch.as_tensor(acts)[torch.tensor(train)].float()
    rows = []
    for form in forms:
        fold = stories[train].assign(split=np.where(stories.form[train] == form, "test", "train")).reset_index(drop=True)
        fit = (fold.split == "train").to_numpy()
        held = ~fit & fold.emotion.isin(emotions).to_numpy()
        if not held.any() or not set(emotions) <= set(fold.emotion[fit]):
            continue
        vectors = fold_vectors(X[torch.tensor(fit)], fold.emotion[fit], neutral_pcs, layer)
        predictions = reader_predictions(X, fold, vectors, emotions)
        truth = fold.emotion.to_numpy()[held]
        rows.append({"held-out form": form, "n": int(held.sum()), **{r: float(np.mean(p[held] == truth))
                                                                     for r, p in predictions.items()}})  # fmt: skip
    if not rows:
        raise ValueError(f"no training form could be held out: every emotion in {emotions} needs stories in two forms")
    return pd.DataFrame(rows).set_index("held-out form")


def transfer_table(
    stories: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    emotions: Sequence[str],
    splits: Sequence[str] = EVAL_SPLITS,
) -> pd.DataFrame:
    """Accuracy [95% Wilson] per reader (the keys of `predictions`, one of them "bag of words") on each of `splits`
    (default: the in-style test and the style-shifted test; SITUATION_SPLITS and EXTRA_SPLITS add the extra tests), the drop
    from the in-style to the style-shifted test [95% bootstrap], and McNemar's exact p against bag-of-words on the
    same stories."""
    emotions, splits = list(emotions), list(splits)
    if "bag of words" not in predictions:
        raise ValueError(f"predictions needs a 'bag of words' reader (the lexical baseline); got {list(predictions)}")
    if not set(EVAL_SPLITS) <= set(splits):
        raise ValueError(f"splits={splits}: must include {list(EVAL_SPLITS)} (the drop compares them)")
    rows = []
    for reader in predictions:
        row: dict = {"reader": reader}
        correct = {}
        for split in splits:
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


@dataclass
class SplitVerdict:
    """A reader's verdict on one extra test split: against shuffled emotion names and against bag-of-words."""

    verdict: str
    reason: str
    null: np.ndarray  # top-1 of the reader's picks with the emotion names shuffled
    rank: RankTest
    only_reader: int  # stories only the reader gets right
    only_words: int  # stories only bag-of-words gets right
    p_words: float  # McNemar's exact p


def beyond_words_verdict(
    stories: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    reader: str,
    split: str,
    emotions: Sequence[str],
    label: str,
    n_shuffles: int = 200,
    seed: int = 0,
) -> SplitVerdict:
    """The rule of 04's extra splits: *replicates* if `reader` beats its picks with shuffled names (rank p <= 0.05) and
    bag-of-words on the same stories (McNemar p <= 0.05, reader ahead); *partly* if only the first; else *does not*."""
    emotions = list(emotions)
    on = (stories.split == split).to_numpy() & stories.emotion.isin(emotions).to_numpy()
    if not on.any():
        raise ValueError(f"split={split!r}: no stories of these emotions; splits present: {sorted(set(stories.split))}")
    truth, picks = stories.emotion.to_numpy()[on], predictions[reader][on]
    pick_idx = np.array([emotions.index(e) for e in picks])
    null = permutation_null(lambda shuffled: np.mean(shuffled[..., pick_idx] == truth, axis=-1), emotions,
                            n_resamples=n_shuffles, seed=seed, vectorized=True).null  # fmt: skip
    acc, bow = float(np.mean(picks == truth)), float(np.mean(predictions["bag of words"][on] == truth))
    rank = rank_test(acc, null, alternative="greater")
    only_reader, only_words, p_words = mcnemar(picks == truth, predictions["bag of words"][on] == truth)
    verdict = ("replicates" if rank.distinguishable and p_words <= 0.05 and only_reader > only_words else
               "partly replicates" if rank.distinguishable else "does not replicate")  # fmt: skip
    reason = (f"{label} ({on.sum()}): {reader} {acc:.2f} vs shuffled names {null.mean():.2f} (rank p = {rank.p:.3g}) and "
              f"bag-of-words {bow:.2f} (only the vectors right on {only_reader}, only the words on {only_words}; "
              f"McNemar p = {p_words:.3g})")  # fmt: skip
    return SplitVerdict(verdict, reason, null, rank, only_reader, only_words, p_words)
