"""course_utils.data and the committed data files: schema, counts, clean text, stable split, clear errors."""

from __future__ import annotations

import json
import os
import shutil
from itertools import combinations

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from course_utils import data
from course_utils.data import DataError


@pytest.fixture(scope="module")
def stories():
    return data.load_stories()


@pytest.fixture(scope="module")
def emotions():
    return data.load_emotions()


def test_emotions_table(emotions):
    assert len(emotions) >= 60
    core = set(emotions.loc[emotions.core, "emotion"])
    assert core == {
        "happy",
        "sad",
        "afraid",
        "angry",
        "calm",
        "desperate",
        "loving",
        "guilty",
        "proud",
        "nervous",
        "surprised",
        "inspired",
    }
    assert 8 <= emotions.family.nunique() <= 12
    rated = emotions.dropna(subset=["valence", "arousal"])
    assert len(rated) >= 50
    assert rated[["valence", "arousal", "dominance"]].apply(lambda c: c.between(0, 1)).all().all()
    quadrants = {(v > 0.5, a > 0.5) for v, a in zip(rated.valence, rated.arousal)}
    assert len(quadrants) == 4, "all four valence/arousal quadrants must be covered"
    for row in emotions.itertuples():
        assert row.emotion in row.forbidden


def test_emotions_are_in_the_paper_vocabulary(emotions):
    """Every emotion word is one the paper used (the shared reference sits beside the checkout)."""
    path = data.data_dir().parent.parent / "shared" / "reference" / "paper_emotion_words.txt"
    if not path.is_file():
        message = f"paper vocabulary {path} not found (the shared reference folder sits beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    paper = set(path.read_text(encoding="utf-8").split("\n"))
    missing = sorted(set(emotions.emotion) - paper)
    assert not missing, f"emotions not in {path.name}: {missing}"


def test_story_counts_and_split(stories, emotions):
    assert len(stories) >= 1300
    counts = stories.groupby("emotion").size()
    for row in emotions.itertuples():
        assert counts.get(row.emotion, 0) >= (50 if row.core else 15), row.emotion
        own = stories[stories.emotion == row.emotion]
        assert (own.split == "test").mean() >= 0.2, row.emotion
    assert set(stories.person) == {"first", "third"}
    assert stories.topic.nunique() >= 60


def test_split_is_stable(stories):
    # The split is fixed in the file by story number: number j of each emotion is test when j % 5 == 4.
    for row in stories.itertuples():
        j = int(row.id.rsplit("-", 1)[1])
        assert row.split == ("test" if j % 5 == 4 else "train"), row.id


def test_story_length_and_single_paragraph(stories):
    words = stories.text.str.split().str.len()
    assert words.between(60, 120).all(), stories.loc[~words.between(60, 120), "id"].tolist()[:5]
    assert not stories.text.str.contains("\n").any()


def test_no_forbidden_words_anywhere():
    hits = data.forbidden_hits

    bad = []
    for row in data.load_stories().itertuples():
        bad += [(row.id, h) for h in hits(row.text)]
    for row in data.load_neutral().itertuples():
        bad += [(row.id, h) for m in row.messages for h in hits(m["content"])]
    for name in ("implicit", "speakers"):
        for row in data.load_scenarios(name).itertuples():
            bad += [(row.id, h) for h in hits(row.text)]
    for row in data.load_scenarios("cheat_scenarios").itertuples():
        for field in (row.task, row.tests, row.honest, row.cheat, *row.failures):
            bad += [(row.id, h) for h in hits(field)]
    assert bad == [], f"{len(bad)} forbidden emotion words, e.g. {bad[:10]}"
    assert data.forbidden_hits("She was so happy and calm.") == [("happy", "happy"), ("calm", "calm")]


def _worst_5gram_jaccard(texts) -> tuple[float, int, int]:
    """Highest Jaccard similarity of word 5-gram sets (lower-cased, split on whitespace) over all pairs, and the pair."""
    grams = CountVectorizer(
        tokenizer=str.split, token_pattern=None, lowercase=True, ngram_range=(5, 5), binary=True
    ).fit_transform(list(texts))
    size = np.asarray(grams.sum(1)).ravel()
    inter = sparse.triu(grams @ grams.T, k=1).tocoo()  # shared 5-grams of every pair that shares any
    if inter.nnz == 0:
        return 0.0, -1, -1
    jaccard = inter.data / (size[inter.row] + size[inter.col] - inter.data)
    best = int(np.argmax(jaccard))
    return float(jaccard[best]), int(inter.row[best]), int(inter.col[best])


def test_near_duplicate_measure_matches_sets():
    texts = ["a b c d e f g", "A b c d e f h", "x y z w v u t", "a b c d e"]
    worst, i, j = _worst_5gram_jaccard(texts)
    grams = [{tuple(w[k : k + 5]) for k in range(len(w) - 4)} for w in (t.lower().split() for t in texts)]
    expected = max(len(a & b) / len(a | b) for a, b in combinations(grams, 2))
    assert worst == pytest.approx(expected) and worst == pytest.approx(2 / 4) and (i, j) == (0, 1)


def test_no_near_duplicate_stories(stories):
    """Word 5-gram Jaccard similarity between any two stories stays below 0.5."""
    worst, i, j = _worst_5gram_jaccard(stories.text)
    assert worst < 0.5, (worst, stories.id.iloc[i], stories.id.iloc[j])


def test_neutral_dialogues():
    neutral = data.load_neutral()
    assert len(neutral) >= 150
    assert neutral.messages.map(len).between(4, 12).all()


def test_scenario_sets(emotions):
    core = set(emotions.loc[emotions.core, "emotion"])
    implicit = data.load_scenarios("implicit")
    assert (implicit.groupby("emotion").size().reindex(sorted(core)).fillna(0) >= 3).all()
    dose = data.load_scenarios("dose")
    assert len(dose) >= 6 and set(dose.direction) == {"up", "down"}
    assert len(data.load_scenarios("speakers")) >= 8
    failures = data.load_scenarios("failures")
    for _task, group in failures.groupby("task_id"):
        group = group.sort_values("n_failures")
        assert group.n_failures.tolist() == list(range(len(group)))
        msgs = group.messages.tolist()
        for shorter, longer in zip(msgs, msgs[1:]):  # each transcript extends the previous by one failure
            assert longer[: len(shorter)] == shorter and len(longer) == len(shorter) + 2
            assert longer[-1]["role"] == "user"
    cheat = data.load_scenarios("cheat_scenarios")
    assert len(cheat) >= 24
    ratio = cheat.honest.str.split().str.len() / cheat.cheat.str.split().str.len()
    assert ratio.between(0.8, 1.25).all(), "honest and cheat messages must be matched in length"


def test_argument_errors():
    with pytest.raises(ValueError, match=r"split='dev' is not allowed"):
        data.load_stories(split="dev")
    with pytest.raises(ValueError, match=r"not in data/emotions.csv"):
        data.load_stories(emotions=["hangry"])
    with pytest.raises(ValueError, match=r"name='blackmail' is not allowed"):
        data.load_scenarios("blackmail")


@pytest.fixture()
def data_copy(tmp_path, monkeypatch):
    shutil.copytree(data.data_dir(), tmp_path / "data")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    data._load_emotions_cached.cache_clear()
    yield tmp_path / "data"
    data._load_emotions_cached.cache_clear()


def _replace_line(path, n, new):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[n - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_corrupted_files_name_file_line_and_field(data_copy):
    path = data_copy / "stories.jsonl"
    record = json.loads(path.read_text().splitlines()[6])
    _replace_line(path, 7, '{"id": "x", "emotion": ')
    with pytest.raises(DataError, match=r"stories.jsonl, line 7: bad JSON"):
        data.load_stories()
    _replace_line(path, 7, json.dumps({**record, "text": ""}))
    with pytest.raises(DataError, match=r"stories.jsonl, line 7, field 'text': empty"):
        data.load_stories()
    _replace_line(path, 7, json.dumps({k: v for k, v in record.items() if k != "topic"}))
    with pytest.raises(DataError, match=r"line 7, field 'topic': missing field"):
        data.load_stories()
    _replace_line(path, 7, json.dumps({**record, "emotion": "hangry"}))
    with pytest.raises(DataError, match=r"line 7, field 'emotion': unknown emotion 'hangry'"):
        data.load_stories()
    _replace_line(path, 7, json.dumps({**record, "split": "dev"}))
    with pytest.raises(DataError, match=r"line 7, field 'split'"):
        data.load_stories()


def test_corrupted_emotions_csv(data_copy):
    path = data_copy / "emotions.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",0.", ",1.", 1).replace(",1.", ",7.", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"emotions.csv, line 4, field 'valence'"):
        data.load_emotions()


def test_forbidden_hits_follow_the_emotions_file(data_copy):
    assert data.forbidden_hits("A zebra.") == []  # builds the cached table for this copy
    path = data_copy / "emotions.csv"
    lines = path.read_text().splitlines()
    first = lines[1].split(",")[0]
    lines[1] += " zebra"
    path.write_text("\n".join(lines) + "\n")
    data._load_emotions_cached.cache_clear()
    assert data.forbidden_hits("A Zebra.") == [("Zebra", first)]


def test_scenario_dict_with_missing_key_is_named():
    good = data.load_scenarios("cheat_scenarios").iloc[0].to_dict()
    bad = {k: v for k, v in good.items() if k != "honest"}
    with pytest.raises(DataError, match=r"field 'honest': missing field"):
        data.check_record(bad, "cheat_scenarios")


def test_activities_are_balanced_and_free_of_emotion_words():
    acts = data.load_activities()
    assert len(acts) >= 64 and acts.activity.is_unique
    # 8 cells of pleasant x social x effortful, equally filled, and every prefix of 8 rows holds one of each
    assert acts.groupby(["pleasant", "social", "effortful"]).size().eq(len(acts) // 8).all()
    assert acts.head(8).groupby(["pleasant", "social", "effortful"]).size().eq(1).all()
    assert not any(data.forbidden_hits(t) for t in acts.activity)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"activity": "Go for a walk"}, r"line 1, field 'activity': .*lower-case verb phrase"),
        ({"activity": "go for a walk."}, r"line 1, field 'activity': .*without end punctuation"),
        ({"activity": "go for a happy walk"}, r"line 1, field 'activity': names the emotion word 'happy' \(happy\)"),
        ({"pleasant": "yes"}, r"line 1, field 'pleasant': expected bool, got str"),
        ({"social": None}, r"line 1, field 'social': expected bool"),
    ],
)
def test_bad_activity_lines_are_named(data_copy, change, message):
    path = data_copy / "activities.jsonl"
    lines = path.read_text().splitlines()
    lines[0] = json.dumps({**json.loads(lines[0]), **change})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        data.load_activities()
