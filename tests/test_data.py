"""course_utils.data and the committed data files: schema, counts, clean text, stable split, clear errors."""

from __future__ import annotations

import json
import os
import shutil
from itertools import combinations

import pandas as pd
import pytest

from course_utils import data
from course_utils.data import DataError


@pytest.fixture(scope="module")
def stories():
    return data.load_stories()


@pytest.fixture(scope="module")
def emotions():
    return data.load_emotions()


CORE = {"happy", "sad", "afraid", "angry", "calm", "desperate", "loving", "guilty", "proud", "nervous", "surprised", "inspired"}


def test_emotions_table(emotions):
    assert len(emotions) == 171 and emotions.emotion.is_unique
    assert set(emotions.loc[emotions.core, "emotion"]) == CORE
    assert emotions.family.nunique() == 14
    rated = emotions.dropna(subset=["valence", "arousal"])
    assert len(rated) == 156, f"{len(rated)} of {len(emotions)} emotions are rated (NRC VAD)"
    assert set(emotions.emotion) - set(rated.emotion) >= {"at ease", "on edge", "worn out", "grief-stricken"}
    assert CORE <= set(rated.emotion), "every core emotion has human ratings"
    assert rated[["valence", "arousal", "dominance"]].apply(lambda c: c.between(0, 1)).all().all()
    quadrants = {(v > 0.5, a > 0.5) for v, a in zip(rated.valence, rated.arousal)}
    assert len(quadrants) == 4, "all four valence/arousal quadrants must be covered"
    for row in emotions.itertuples():
        assert row.emotion.replace(" ", "_") in row.forbidden, row.emotion


def test_emotions_are_in_the_paper_vocabulary(emotions):
    """The emotion words are exactly the paper's 171 (the shared reference sits beside the checkout)."""
    path = data.data_dir().parent.parent / "shared" / "reference" / "paper_emotion_words.txt"
    if not path.is_file():
        message = f"paper vocabulary {path} not found (the shared reference folder sits beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    paper = {w.strip() for w in path.read_text(encoding="utf-8").split("\n") if w.strip()}
    assert set(emotions.emotion) == paper, sorted(set(emotions.emotion) ^ paper)


def test_story_counts_per_emotion(stories, emotions):
    counts = stories.groupby("emotion").size().reindex(emotions.emotion, fill_value=0)
    core = emotions.set_index("emotion").core
    assert (counts[core] == 60).all(), counts[core][counts[core] != 60].to_dict()
    assert (counts[~core] == 12).all(), counts[~core][counts[~core] != 12].to_dict()
    assert len(stories) == 2628
    # sorted by emotion (emotions.csv order), then id
    order = {e: k for k, e in enumerate(emotions.emotion)}
    keys = list(zip(stories.emotion.map(order), stories.id))
    assert keys == sorted(keys)


def test_split_sizes(stories):
    assert stories.split.value_counts().to_dict() == {"train": 1403, "style_test": 876, "test": 349}
    # the style-shifted split holds out whole forms: every dialogue and text_message, nothing else
    style = stories.split == "style_test"
    assert (
        set(stories.form[style]) == {"dialogue", "text_message"}
        and not stories.form[~style].isin(["dialogue", "text_message"]).any()
    )
    # the in-style test split is 20% of every emotion's in-style stories, and every emotion is in every split
    in_style = stories[~style]
    share = (in_style.split == "test").groupby(in_style.emotion).mean()
    assert share.between(0.125, 0.25).all() and (in_style.split == "test").mean() == pytest.approx(0.2, abs=0.005)
    assert (stories.groupby("emotion").split.nunique() == 3).all()


def test_split_is_stable(stories):
    """The split is fixed by the plan: story i of emotion k's in-style stories is test when (i + k) % 5 == 4."""
    order = {e: k for k, e in enumerate(data.emotion_names())}
    for emotion, group in stories[stories.split != "style_test"].groupby("emotion"):
        k = order[emotion]
        expected = ["test" if (i + k) % 5 == 4 else "train" for i in range(len(group))]
        assert group.sort_values("id").split.tolist() == expected, emotion


@pytest.mark.parametrize("attribute", ["form", "person", "register", "length"])
def test_no_attribute_predicts_the_emotion(stories, attribute):
    """Every emotion has the same counts of each value per 12 stories (so a value says nothing about the emotion)."""
    counts = pd.crosstab(stories.emotion, stories[attribute])
    per12 = counts.div(counts.sum(axis=1) / 12, axis=0)
    assert (per12 == per12.iloc[0]).all().all(), per12[(per12 != per12.iloc[0]).any(axis=1)].head()


def test_topics_are_shared(stories):
    assert stories.topic.nunique() >= 30
    assert set(stories.topic) <= set(data.load_topics().id)
    assert stories.groupby("topic").emotion.nunique().min() >= 30, "every topic appears under many emotions"
    assert (stories.groupby("emotion").topic.nunique() == stories.groupby("emotion").size().clip(upper=47)).all()


def test_stories_follow_the_plan_and_length_classes(stories):
    data.check_corpus(stories)  # every planned story, fields as planned, no near-duplicates
    words = stories.text.str.split().str.len()
    for length, (lo, hi) in data.LENGTH_WORDS.items():
        w = words[stories.length == length]
        assert w.between(*data.length_bounds(length)).all() and lo * 0.9 <= w.median() <= hi, length


def test_no_own_word_leaks(stories):
    """No story contains a forbidden word or phrase of its own emotion (whole words, any case)."""
    leaks = [(r.id, h) for r in stories.itertuples() for h in data.forbidden_hits(r.text, emotions=r.emotion)]
    assert leaks == [], f"{len(leaks)} own-emotion words, e.g. {leaks[:10]}"


def test_forbidden_hits_words_of_several_emotions_and_phrases():
    hits = data.forbidden_hits("She was so happy and calm.")
    assert ("happy", "happy") in hits and ("happy", "joyful") in hits  # a synonym group shares its words
    assert {e for w, e in hits if w == "calm"} == {"calm", "serene", "peaceful"}
    assert data.forbidden_hits("She was so happy and calm.", emotions="calm") == [("calm", "calm")]
    assert data.forbidden_hits("At Ease, at last", emotions="at ease") == [("At Ease", "at ease"), ("Ease", "at ease")]
    assert data.forbidden_hits("grief stricken; Grief-Stricken", emotions="grief-stricken")[::2] == [
        ("grief stricken", "grief-stricken"),
        ("Grief-Stricken", "grief-stricken"),
    ]
    assert data.forbidden_hits("at the edge of town", emotions="on edge") == []  # a phrase needs its words in a row
    assert data.forbidden_hits("unhappy", emotions="happy") == [("unhappy", "happy")]  # whole words only:
    assert data.forbidden_hits("happyish", emotions="happy") == []
    assert data.emotion_names_in("what kind of day, worn out, at ease") == ["kind", "worn out", "at ease"]


def test_other_files_free_of_emotion_words():
    """Neutral dialogues and scenarios: no core emotion's forbidden word, no emotion name outside NAME_ALLOWED."""
    bad = []
    for row in data.load_neutral().itertuples():
        bad += [(row.id, h) for m in row.messages for h in data.emotion_word_problems(m["content"])]
    for name in ("implicit", "speakers"):
        for row in data.load_scenarios(name).itertuples():
            bad += [(row.id, h) for h in data.emotion_word_problems(row.text)]
    for row in data.load_scenarios("dose").itertuples():
        bad += [(row.id, h) for h in data.emotion_word_problems(row.template)]
    for row in data.load_scenarios("failures").itertuples():
        bad += [(row.id, h) for m in row.messages for h in data.emotion_word_problems(m["content"])]
    for row in data.load_scenarios("cheat_scenarios").itertuples():
        for field in (row.task, row.tests, row.honest, row.cheat, *row.failures):
            bad += [(row.id, h) for h in data.emotion_word_problems(field)]
    assert bad == [], f"{len(bad)} emotion words, e.g. {bad[:10]}"
    assert data.emotion_word_problems("a kind of safe test") == []
    problems = data.emotion_word_problems("she was scared and grumpy")
    assert problems == ["'scared' (afraid)", "'scared' (an emotion name)", "'grumpy' (an emotion name)"]


def test_near_duplicate_measure_matches_sets():
    texts = ["a b c d e f g", "A b c d e f h", "x y z w v u t", "a b c d e"]
    pairs = data.near_duplicates(texts, above=0.0)
    grams = [{tuple(w[k : k + 5]) for k in range(len(w) - 4)} for w in (t.lower().split() for t in texts)]
    for i, j in combinations(range(4), 2):
        expected = len(grams[i] & grams[j]) / len(grams[i] | grams[j])
        found = [x for a, b, x in pairs if (a, b) == (i, j)]
        assert found == ([pytest.approx(expected)] if expected > 0 else []), (i, j)
    assert pairs[0] == (0, 1, pytest.approx(2 / 4))
    assert [p[:2] for p in data.near_duplicates(texts)] == [(0, 1), (0, 3), (1, 3)]  # above 0.3: 1/2, 1/3, 1/3


def test_no_near_duplicate_stories(stories):
    """Word 5-gram Jaccard similarity between any two stories stays at or below JACCARD_MAX (0.3)."""
    assert data.near_duplicates(stories.text) == []


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
    with pytest.raises(ValueError, match=r"split='dev' is not allowed; use one of \['train', 'test', 'style_test', None\]"):
        data.load_stories(split="dev")
    with pytest.raises(ValueError, match=r"form='poem' is not allowed; use one of \['narration', 'dialogue'"):
        data.load_stories(form="poem")
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


def test_load_stories_filters(stories):
    style = data.load_stories(split="style_test", emotions="core")
    assert len(style) == 12 * 20 and set(style.form) == {"dialogue", "text_message"}
    letters = data.load_stories(form=["letter", "diary"], emotions="happy")
    assert len(letters) == 20 and set(letters.form) == {"letter", "diary"}
    small = data.load_stories(emotions="core", per_emotion=2)  # FAST: the first 2 of each emotion in each split
    assert small.groupby(["emotion", "split"]).size().eq(2).all() and len(small) == 12 * 3 * 2


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


SHORT_NARRATION = {
    "id": "happy-000",
    "emotion": "happy",
    "topic": "bus_stop",
    "person": "third",
    "form": "narration",
    "register": "plain",
    "length": "sentence",
    "split": "train",
    "text": "When the bus finally pulled in, Marta was still grinning at the photo of her new niece on her phone screen.",
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"split": "dev"}, r"field 'split': 'dev' is not allowed; use one of train, test, style_test"),
        ({"form": "poem"}, r"field 'form': 'poem' is not allowed; use one of narration, dialogue, diary, text_message, letter"),
        ({"person": "fourth"}, r"field 'person': 'fourth' is not allowed; use one of first, second, third, third_plural"),
        ({"register": "slang"}, r"field 'register': 'slang' is not allowed; use one of plain, formal, casual, child"),
        ({"length": "epic"}, r"field 'length': 'epic' is not allowed; use one of sentence, short, paragraph, long"),
        ({"split": "style_test"}, r"field 'split': 'style_test' for a narration: the forms dialogue, text_message"),
        ({"form": "dialogue", "split": "style_test"}, r"field 'text': a dialogue needs quoted speech or speaker turns"),
        ({"form": "address"}, r"field 'text': an address speaks to 'you'"),
        ({"length": "paragraph"}, r"field 'text': 21 words; a 'paragraph' story has 70-120 \(at most 56-144\)"),
        ({"text": "Dear Sam,\nI am so glad the bus came at last and that the whole family could come too today."}, None),
        (
            {"text": SHORT_NARRATION["text"] + " She was happy."},
            r"field 'text': forbidden word\(s\) of its own emotion 'happy': happy$",
        ),
        ({"text": SHORT_NARRATION["text"] + " Pure joy."}, r"field 'text': forbidden word\(s\) of its own emotion 'happy': joy"),
        (
            {"emotion": "at ease", "text": SHORT_NARRATION["text"] + " At ease."},
            r"field 'text': .*own emotion 'at ease': At ease",
        ),
        ({"text": SHORT_NARRATION["text"] + " She felt calm."}, None),  # another emotion's word is allowed
        ({"id": 7}, r"field 'id': expected str, got int"),
        ({"colour": "red"}, r"field 'colour': unexpected field"),
    ],
)
def test_bad_story_records_are_named(change, message):
    record = {**SHORT_NARRATION, **change}
    if message is None:
        assert data.check_record(record, "stories", path="stories.jsonl", line=3, emotions=data.emotion_names()) is record
        return
    with pytest.raises(DataError, match=r"stories.jsonl, line 3, " + message):
        data.check_record(record, "stories", path="stories.jsonl", line=3, emotions=data.emotion_names())


def test_check_corpus_names_plan_and_duplicate_problems(stories):
    bad = stories.copy()
    bad.loc[0, "topic"] = "moon_landing"
    bad.loc[5, "text"] = bad.loc[4, "text"] + " Then she left."
    with pytest.raises(DataError, match=r"3 problems: .*happy-000: field 'topic' is 'moon_landing', the plan says"):
        data.check_corpus(bad.drop(index=10))
    with pytest.raises(DataError, match=r"near-duplicates happy-004 and happy-005"):
        data.check_corpus(bad)


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
    assert not any(data.emotion_word_problems(t) for t in acts.activity)


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


def test_feels_scenes_are_neutral_and_validated(data_copy):
    """06's scenes: at least 40, unique, free of emotion words (they must not prime a word), pronouns named."""
    scenes = data.load_feels_scenes()
    assert len(scenes) >= 40 and scenes.text.is_unique and set(scenes.pronoun) <= set(data.PRONOUNS)
    assert not any(data.emotion_word_problems(t) for t in scenes.text)
    path = data_copy / "feels_scenes.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "pronoun": "it"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 3, field 'pronoun': 'it' is not one of"):
        data.load_feels_scenes()


@pytest.fixture(scope="module")
def situations():
    return data.load_situation_stories()


def test_situation_stories_are_balanced(situations, emotions):
    """20 stories for each core emotion; person and register balanced per emotion; every topic under several emotions."""
    assert situations.groupby("emotion").size().to_dict() == dict.fromkeys(emotions.loc[emotions.core, "emotion"], 20)
    assert set(situations.form) == {"situation"} and set(situations.split) == {"situation_test"} and situations.id.is_unique
    for attribute in ("person", "register"):
        counts = pd.crosstab(situations.emotion, situations[attribute])
        assert (counts == 5).all().all(), counts
    assert situations.groupby("topic").emotion.nunique().min() >= 3, "no topic belongs to few emotions"
    assert (situations.groupby("topic").emotion.agg(lambda e: e.value_counts().iloc[0]) <= 2).all()


def test_situation_stories_tell_only_what_happens(situations, stories):
    """No emotion word, no reaction word (REACTION_WORDS), no near-duplicate of each other or of the main corpus."""
    leaks = [
        (r.id, w) for r in situations.itertuples() for w in data.emotion_word_problems(r.text) + data.reaction_words_in(r.text)
    ]
    assert leaks == [], leaks[:10]
    assert data.near_duplicates([*situations.text, *stories.text]) == []
    assert data.reaction_words_in("She smiled; her Heart raced, then she felt fine") == ["smiled", "heart", "felt"]
    assert data.reaction_words_in("The heartbeat-free hearth") == ["heartbeat"]  # whole words only


BUS = "The bus came late, and the driver waited at the stop until she had crossed the road with her bags."


@pytest.mark.parametrize(
    "change, message",
    [
        ({"text": BUS + " She smiled."}, r"field 'text': reaction word\(s\) smiled: tell only what happens"),
        ({"text": BUS + " Her heart raced."}, r"field 'text': reaction word\(s\) heart"),
        ({"text": BUS + " She was happy."}, r"field 'text': emotion word\(s\) 'happy' \(happy\)"),
        ({"text": BUS + " She was sleepy."}, r"field 'text': emotion word\(s\) 'sleepy' \(an emotion name\)"),
        ({"text": "The bus came late."}, r"field 'text': 4 words; a 'sentence' story has 12-42"),
        ({"form": "dialogue"}, r"field 'form': 'dialogue' is not allowed; use one of situation$"),
        ({"split": "test"}, r"field 'split': 'test' is not allowed; use one of situation_test$"),
        ({"emotion": "joyful"}, r"field 'emotion': 'joyful' is not allowed; use one of happy, calm"),
        ({"length": "paragraph"}, r"field 'length': 'paragraph' is not allowed; use one of sentence, short$"),
        ({"topic": "moon_landing"}, r"field 'topic': 'moon_landing' is not an id of topics.csv"),
        ({"id": "situation-happy-000"}, r"field 'id': duplicate id 'situation-happy-000' \(first on line 1\)"),
    ],
)
def test_bad_situation_lines_are_named(data_copy, change, message):
    path = data_copy / "situation_stories.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), **change})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"situation_stories.jsonl, line 2, " + message):
        data.load_situation_stories()


def test_situation_near_duplicates_are_named(data_copy, stories):
    """A situation story that repeats another line, or a story of stories.jsonl, is named with what it repeats."""
    path = data_copy / "situation_stories.jsonl"
    original = path.read_text().splitlines()
    lines = original.copy()
    lines[2] = json.dumps({**json.loads(lines[2]), "text": json.loads(lines[0])["text"] + " It was Monday."})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'text': near-duplicate of line 3 \(5-gram Jaccard 0\.\d+ > 0.3\)"):
        data.load_situation_stories()
    clean = [r for r in stories.itertuples() if r.length == "sentence" and not data.reaction_words_in(r.text)]
    story = next(r for r in clean if not data.emotion_word_problems(r.text))
    lines = original.copy()
    lines[2] = json.dumps({**json.loads(lines[2]), "text": story.text})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"line 3, field 'text': near-duplicate of stories.jsonl story {story.id} "):
        data.load_situation_stories()


def test_load_situation_stories_filters():
    small = data.load_situation_stories(emotions=["sad", "calm"], per_emotion=3)
    assert small.emotion.tolist() == ["calm"] * 3 + ["sad"] * 3
    with pytest.raises(ValueError, match=r"emotions: \['joyful'\] have no situation stories; allowed: 'core'"):
        data.load_situation_stories(emotions="joyful")


def test_marker_words_follow_their_rule(stories):
    """A marker of e: in >= MARKER_MIN_STORIES of e's core train stories and >= MARKER_RATIO x the core mean (recounted)."""
    train = stories[(stories.split == "train") & stories.emotion.isin(data.emotion_names(core_only=True))]
    has = pd.DataFrame([dict.fromkeys(data.bow_tokens(t), 1) for t in train.text]).fillna(0).groupby(train.emotion.values).sum()
    for emotion in has.index:
        n = has.loc[emotion]
        rule = (n >= data.MARKER_MIN_STORIES) & (n >= data.MARKER_RATIO * has.mean())
        assert data.marker_words(emotion) == frozenset(n.index[rule]), emotion
    assert {"breath", "trembling"} <= data.marker_words("afraid") and "the" not in data.marker_words("afraid")
    assert data.marker_words_in("She held her Breath; the breath came back.", "afraid") == ["held", "breath"]
    with pytest.raises(ValueError, match=r"emotion='joyful': marker words exist for the core emotions only"):
        data.marker_words("joyful")


@pytest.fixture(scope="module")
def new_words():
    return data.load_new_words_stories()


def test_new_words_stories_are_balanced(new_words, emotions):
    """20 stories per core emotion, half dialogues and half text messages, half sentences; topics under many emotions."""
    assert new_words.groupby("emotion").size().to_dict() == dict.fromkeys(emotions.loc[emotions.core, "emotion"], 20)
    assert set(new_words.split) == {"new_words_test"} and new_words.id.is_unique
    for attribute in ("form", "length"):
        assert (pd.crosstab(new_words.emotion, new_words[attribute]) == 10).all().all(), attribute
    assert new_words.groupby("topic").emotion.nunique().min() >= 3, "no topic belongs to few emotions"
    assert (new_words.groupby("topic").emotion.agg(lambda e: e.value_counts().iloc[0]) <= 2).all()


def test_new_words_stories_avoid_their_markers(new_words, stories, situations):
    """No marker word of its own emotion, no emotion word, no near-duplicate of each other or of any other story."""
    leaks = [(r.id, w) for r in new_words.itertuples() for w in data.marker_words_in(r.text, r.emotion)]
    leaks += [(r.id, w) for r in new_words.itertuples() for w in data.emotion_word_problems(r.text)]
    assert leaks == [], leaks[:10]
    assert data.near_duplicates([*new_words.text, *stories.text, *situations.text]) == []


CHAT = "Sam: Is the bus coming at all?\nJo: The board says four minutes, then it says twelve."


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"emotion": "afraid", "text": CHAT + " Sam: Hold my hand."},
            r"field 'text': marker word\(s\) of 'afraid' in the training stories: hold",
        ),
        ({"text": CHAT + " Sam: I am so happy."}, r"field 'text': emotion word\(s\) 'happy' \(happy\)"),
        ({"form": "narration"}, r"field 'form': 'narration' is not allowed; use one of dialogue, text_message$"),
        ({"split": "style_test"}, r"field 'split': 'style_test' is not allowed; use one of new_words_test$"),
        ({"length": "long"}, r"field 'length': 'long' is not allowed; use one of sentence, short$"),
        (
            {"form": "dialogue", "text": "The bus was late again and nobody at the stop said a word about it all morning long."},
            r"field 'text': a dialogue needs quoted speech",
        ),
        ({"topic": "moon_landing"}, r"field 'topic': 'moon_landing' is not an id of topics.csv"),
    ],
)
def test_bad_new_words_lines_are_named(data_copy, change, message):
    path = data_copy / "new_words_stories.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    lines[1] = json.dumps({**record, "length": "sentence", **change})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"new_words_stories.jsonl, line 2, " + message):
        data.load_new_words_stories()


def test_load_new_words_stories_filters():
    small = data.load_new_words_stories(emotions=["sad", "calm"], per_emotion=3)
    assert small.emotion.tolist() == ["calm"] * 3 + ["sad"] * 3
    with pytest.raises(ValueError, match=r"emotions: \['joyful'\] have no new words stories; allowed: 'core'"):
        data.load_new_words_stories(emotions="joyful")
