"""Load the course's data files as pandas DataFrames, validating every record on the way in.

The one set of rules for the data (the data card, data/README.md, explains them):

* every JSONL record: its fields present, typed and non-empty, ids unique; a bad record raises DataError naming
  file, line and field (and, for a field with fixed values, the allowed values);
* a story (stories.jsonl): ``form, person, register, length, split`` from their allowed values below; its word count
  inside its length class (with 20% slack); a ``long`` narration/diary/letter/address has two paragraphs; a
  dialogue has quoted speech or speaker turns; a text_message is one short message a line (at most 50 words, no
  letter salutation); an address speaks to "you"; and **no forbidden word or phrase of its own emotion**
  (emotions.csv: whole words, any case; ``at_ease`` is the phrase "at ease", "grief-stricken" also matches "grief
  stricken"). Another emotion's words are allowed in a story (everyday words such as *content*, *safe*, *kind*
  are emotion names among the 171);
* the other text files (neutral dialogues, scenarios, activities): no forbidden word of the 12 core emotions,
  and no name of any of the 171 emotions except those in NAME_ALLOWED (everyday senses: "kind of", "content",
  "safe", ...), see `emotion_word_problems`;
* a situation story (situation_stories.jsonl, `load_situation_stories`): a core emotion, form 'situation', split
  'situation_test', a 'sentence' or 'short' length; no forbidden word of any core emotion, no emotion name (as for the
  other text files) and no REACTION_WORDS (body, face, emotional behaviour, feeling): it tells only what happens;
  a topic of topics.csv; no near-duplicate among them or of a story in stories.jsonl;
* a new-words story (new_words_stories.jsonl, `load_new_words_stories`): a core emotion in a held-out form (dialogue
  or text_message, with their form rules), split 'new_words_test', a 'sentence' or 'short' length; no emotion word
  (as for the situation stories) and **no marker word of its own emotion** (`marker_words`: a word the training
  stories use for that emotion far more than for the others); a topic of topics.csv; no near-duplicate;
* the corpus as a whole (`check_corpus`, run by the tests and by `scripts/make_story_plan.py --merge`): every
  story matches its row of story_plan.jsonl and no two stories are near-duplicates (word 5-gram Jaccard above
  JACCARD_MAX).
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from .paths import data_dir

SPLITS = ("train", "test", "style_test")  # style_test: the held-out forms (every dialogue and text_message)
FORMS = ("narration", "dialogue", "diary", "text_message", "letter", "address")
STYLE_TEST_FORMS = ("dialogue", "text_message")
PERSONS = ("first", "second", "third", "third_plural")
REGISTERS = ("plain", "formal", "casual", "child")
LENGTHS = ("sentence", "short", "paragraph", "long")
LENGTH_WORDS = {"sentence": (15, 35), "short": (35, 70), "paragraph": (70, 120), "long": (130, 190)}
LENGTH_SLACK = 0.2  # a story's word count may miss its class by this share
JACCARD_MAX = 0.3  # near-duplicate: word 5-gram Jaccard similarity above this
# Emotion names allowed in the non-story files in their everyday sense (data/README.md): "example content",
# "light-dependent", "the past tense", "worn out pads", "stuck in an elevator", "case-sensitive", "what kind of",
# "safe to delete", "a patient", "an alert".
NAME_ALLOWED = ("content", "dependent", "tense", "worn out", "stuck", "sensitive", "kind", "safe", "patient", "alert")
# The situation split (data/situation_stories.jsonl): stories that tell only what happens, for the 12 core emotions.
SITUATION_SPLIT, SITUATION_FORM, SITUATION_LENGTHS = "situation_test", "situation", ("sentence", "short")
# Why: a situation story must carry its emotion by events alone, so words for a body's reaction, a face, an emotional
# act or a feeling (what the main corpus uses to show emotion, and what bag-of-words learns) are not allowed in it.
REACTION_WORDS = frozenset(
    """smile smiled smiles smiling grin grinned grins grinning beam beamed beaming laugh laughed laughs laughing laughter
    giggle giggled giggling chuckle chuckled cry cried cries crying tear tears tearful teary weep wept weeping sob sobbed
    sobbing sniffle sniffled shake shook shaking shaky tremble trembled trembling shiver shivered shivering shudder
    shuddered quiver quivered shout shouted shouting yell yelled yelling scream screamed screaming shriek shrieked roar
    roared hug hugged hugging hugs embrace embraced kiss kissed kissing slam slammed slamming sigh sighed sighing gasp
    gasped gasping groan groaned heart heartbeat pulse breath breathe breathed breathing sweat sweated sweating sweaty
    blush blushed blushing flushed frown frowned frowning scowl scowled glare glared glaring clench clenched fist fists
    jaw gritted wince winced flinch flinched cringe cringed paced pacing fidget fidgeted fidgeting stomp stomped stormed
    pale paled stare stared staring gulp gulped beg begged begging plead pleaded pleading cheer cheered cheering whoop
    whooped hum hummed humming grimace grimaced nauseous numb tingling throat goosebumps feel feels felt feeling feelings
    mood dread panic terror horror grief shame rage fury worry worries anxiety relief regret dismay delight bliss misery
    envy awe disappointed disappointment glad thrill""".split()
)
# The new-words split (data/new_words_stories.jsonl): stories for the 12 core emotions, in the held-out forms, that
# avoid every word marking their emotion in the training stories, so a reader of words has little to go on.
NEW_WORDS_SPLIT, NEW_WORDS_LENGTHS = "new_words_test", ("sentence", "short")
# A marker word of emotion e (fixed before any new-words story was written): a bag-of-words token (the baseline's own
# tokenizer) in at least MARKER_MIN_STORIES of e's core train stories, and in at least MARKER_RATIO times as many of
# them as the mean over the 12 core emotions.
MARKER_MIN_STORIES, MARKER_RATIO = 2, 2.0
# A story's fields with fixed values: field -> allowed values.
STORY_CHOICES = {"form": FORMS, "person": PERSONS, "register": REGISTERS, "length": LENGTHS, "split": SPLITS}
# Every JSONL file: its required fields and each field's type.
SCHEMAS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "stories": {
        "id": str,
        "emotion": str,
        "topic": str,
        "person": str,
        "form": str,
        "register": str,
        "length": str,
        "split": str,
        "text": str,
    },
    "neutral_dialogues": {"id": str, "topic": str, "messages": list},
    "implicit": {"id": str, "emotion": str, "text": str},
    "dose": {"id": str, "template": str, "values": list, "emotion": str, "direction": str},
    "speakers": {"id": str, "text": str, "user_emotion": str, "assistant_stance": str},
    "failures": {"id": str, "task_id": str, "n_failures": int, "messages": list},
    "cheat_scenarios": {"id": str, "task": str, "tests": str, "failures": list, "honest": str, "cheat": str},
    "activities": {"id": str, "activity": str, "pleasant": bool, "social": bool, "effortful": bool},
    "feels_scenes": {"id": str, "text": str, "pronoun": str},
}
SCHEMAS["situation_stories"] = SCHEMAS["stories"]
SCHEMAS["new_words_stories"] = SCHEMAS["stories"]
PRONOUNS = ("he", "she", "they")
SCENARIOS = ("implicit", "dose", "speakers", "failures", "cheat_scenarios")
TOKEN = re.compile(r"[A-Za-z]+")
YOU = {"you", "your", "yours", "yourself", "yourselves"}
SPEECH = re.compile(r"[\"“”‘]|^\s*[A-Z][A-Za-z .'-]{0,30}:\s*\S|^\s*[—–-]\s*\S", re.MULTILINE)
SALUTATION = re.compile(r"(?im)^\s*(dear\b|yours (sincerely|faithfully|truly)\b)")


class DataError(ValueError):
    """A data file (or a record passed in by a user) breaks the course's schema."""


def _fail(path: Path | str, line: int | None, field: str | None, problem: str) -> DataError:
    """Build an error message naming file, line and field."""
    where = f"{path}" + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
    return DataError(f"{where}: {problem}")


def check_record(
    record: Any,
    schema: str,
    *,
    path: Path | str = "<record>",
    line: int | None = None,
    exact: bool = True,
    emotions: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Check one record against a schema (fields present, non-empty, right type); return it."""
    fields = SCHEMAS[schema]
    if not isinstance(record, dict):
        raise _fail(path, line, None, f"expected a JSON object, got {type(record).__name__}")
    for name, typ in fields.items():
        if name not in record:
            raise _fail(path, line, name, "missing field")
        value = record[name]
        if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
            raise _fail(path, line, name, f"expected {getattr(typ, '__name__', typ)}, got {type(value).__name__}")
        if isinstance(value, (str, list)) and len(value) == 0 or isinstance(value, str) and not value.strip():
            raise _fail(path, line, name, "empty")
    if exact and set(record) != set(fields):
        extra = sorted(set(record) - set(fields))
        raise _fail(path, line, extra[0], f"unexpected field (allowed: {', '.join(fields)})")
    known = set(emotions) if emotions is not None else None
    for name in ("emotion", "user_emotion", "assistant_stance"):
        if name in fields and known is not None and record[name] not in known:
            raise _fail(path, line, name, f"unknown emotion {record[name]!r} (not in emotions.csv)")
    if schema == "stories":
        _check_story(record, path, line, known)
    if schema == "situation_stories":
        _check_situation(record, path, line)
    if schema == "new_words_stories":
        _check_new_words(record, path, line)
    if schema in ("neutral_dialogues", "failures"):
        for i, m in enumerate(record["messages"]):
            if (
                not isinstance(m, dict)
                or set(m) != {"role", "content"}
                or m["role"] not in ("user", "assistant")
                or not isinstance(m["content"], str)
                or not m["content"].strip()
            ):
                raise _fail(path, line, f"messages[{i}]", "needs exactly 'role' (user/assistant) and non-empty 'content'")
    if schema == "feels_scenes" and record["pronoun"] not in PRONOUNS:
        raise _fail(path, line, "pronoun", f"{record['pronoun']!r} is not one of {PRONOUNS}")
    if schema == "dose":
        if "{X}" not in record["template"]:
            raise _fail(path, line, "template", "must contain the slot {X}")
        if record["direction"] not in ("up", "down"):
            raise _fail(path, line, "direction", f"{record['direction']!r} is not 'up' or 'down'")
        v = record["values"]
        if not all(isinstance(x, (int, float)) for x in v) or v != sorted(v):
            raise _fail(path, line, "values", "must be numbers in ascending order")
    if schema == "activities":
        text = record["activity"]
        if text != text.strip() or text[0].isupper() or text.endswith((".", "!", "?")):
            raise _fail(path, line, "activity", f"{text!r}: write a lower-case verb phrase without end punctuation")
        problems = emotion_word_problems(text)
        if problems:
            raise _fail(path, line, "activity", f"names the emotion word {problems[0]}: describe the activity only")
    if schema == "cheat_scenarios" and not all(isinstance(f, str) and f.strip() for f in record["failures"]):
        raise _fail(path, line, "failures", "must be a list of non-empty strings")
    return record


def length_bounds(length: str) -> tuple[int, int]:
    """Allowed word counts of a length class, slack included (e.g. sentence 15-35 words -> 12-42)."""
    lo, hi = LENGTH_WORDS[length]
    return round(lo * (1 - LENGTH_SLACK)), round(hi * (1 + LENGTH_SLACK))


def _check_story(record: dict[str, Any], path: Path | str, line: int | None, known: set[str] | None) -> None:
    """The story rules (module docstring): allowed attribute values, length, form, no word of its own emotion."""
    for name, allowed in STORY_CHOICES.items():
        if record[name] not in allowed:
            raise _fail(path, line, name, f"{record[name]!r} is not allowed; use one of {', '.join(allowed)}")
    text, form, length = record["text"], record["form"], record["length"]
    if (record["split"] == "style_test") != (form in STYLE_TEST_FORMS):
        raise _fail(
            path,
            line,
            "split",
            f"{record['split']!r} for a {form}: the forms {', '.join(STYLE_TEST_FORMS)} and only they are 'style_test'",
        )
    words = len(text.split())
    lo, hi = length_bounds(length)
    if not lo <= words <= hi:
        plan_lo, plan_hi = LENGTH_WORDS[length]
        raise _fail(path, line, "text", f"{words} words; a '{length}' story has {plan_lo}-{plan_hi} (at most {lo}-{hi})")
    _check_form(text, form, length, path, line)
    if known is not None and record["emotion"] in known:
        own = forbidden_hits(text, emotions=[record["emotion"]])
        if own:
            words_found = ", ".join(dict.fromkeys(w for w, _ in own))
            raise _fail(path, line, "text", f"forbidden word(s) of its own emotion '{record['emotion']}': {words_found}")


def _check_form(text: str, form: str, length: str, path: Path | str, line: int | None) -> None:
    """A form's rules: two paragraphs for a long story, speech in a dialogue, short lines in a text message, ..."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    if length == "long" and form not in STYLE_TEST_FORMS and len(paragraphs) < 2:
        raise _fail(path, line, "text", "a 'long' story has two paragraphs (a line break between them)")
    if form == "dialogue" and not SPEECH.search(text):
        raise _fail(path, line, "text", "a dialogue needs quoted speech or speaker turns ('Name: ...' lines)")
    if form == "text_message":
        if SALUTATION.search(text):
            raise _fail(path, line, "text", "a text_message has no letter salutation ('Dear ...', 'Yours ...')")
        longest = max(len(p.split()) for p in paragraphs)
        if longest > 50:
            raise _fail(path, line, "text", f"a message of {longest} words: one short message a line (at most 50)")
    if form == "address" and not {t.lower() for t in TOKEN.findall(text)} & YOU:
        raise _fail(path, line, "text", "an address speaks to 'you'")


def reaction_words_in(text: str) -> list[str]:
    """The REACTION_WORDS (body, face, emotional behaviour, feeling) that a text contains as whole words, in text order."""
    return list(dict.fromkeys(w for w in (t.lower() for t in TOKEN.findall(text)) if w in REACTION_WORDS))


def _check_extra_story(
    record: dict[str, Any], forms: tuple[str, ...], split: str, lengths: tuple[str, ...], path: Path | str, line: int | None
) -> None:
    """An extra test split's shared rules: a core emotion, allowed form, split, person, register and length, its word count."""
    choices = {"emotion": emotion_names(core_only=True), "form": forms, "split": (split,), "person": PERSONS,
               "register": REGISTERS, "length": lengths}  # fmt: skip
    for name, allowed in choices.items():
        if record[name] not in allowed:
            raise _fail(path, line, name, f"{record[name]!r} is not allowed; use one of {', '.join(allowed)}")
    words, (lo, hi) = len(record["text"].split()), length_bounds(record["length"])
    if not lo <= words <= hi:
        raise _fail(path, line, "text", f"{words} words; a '{record['length']}' story has {lo}-{hi}")


def _check_situation(record: dict[str, Any], path: Path | str, line: int | None) -> None:
    """The situation-story rules: a core emotion, the fixed form and split, a short length, no emotion or reaction word."""
    _check_extra_story(record, (SITUATION_FORM,), SITUATION_SPLIT, SITUATION_LENGTHS, path, line)
    text = record["text"]
    problems = emotion_word_problems(text)
    if problems:
        raise _fail(path, line, "text", f"emotion word(s) {', '.join(problems)}: a situation story names no emotion")
    reactions = reaction_words_in(text)
    if reactions:
        raise _fail(path, line, "text", f"reaction word(s) {', '.join(reactions)}: tell only what happens (REACTION_WORDS)")


def _check_new_words(record: dict[str, Any], path: Path | str, line: int | None) -> None:
    """The new-words rules: a core emotion in a held-out form, a short length, no emotion word, no marker of its emotion."""
    _check_extra_story(record, STYLE_TEST_FORMS, NEW_WORDS_SPLIT, NEW_WORDS_LENGTHS, path, line)
    text = record["text"]
    _check_form(text, record["form"], record["length"], path, line)
    problems = emotion_word_problems(text)
    if problems:
        raise _fail(path, line, "text", f"emotion word(s) {', '.join(problems)}: a new-words story names no emotion")
    markers = marker_words_in(text, record["emotion"])
    if markers:
        raise _fail(path, line, "text", f"marker word(s) of '{record['emotion']}' in the training stories: "
                                        f"{', '.join(markers)} (see marker_words)")  # fmt: skip


def bow_tokens(text: str) -> list[str]:
    """The tokens the bag-of-words baseline reads (scikit-learn's default analyzer: lower case, words of 2+ letters)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer().build_analyzer()(text)


@lru_cache(maxsize=4)
def _marker_table(folder: str) -> dict[str, frozenset[str]]:
    """Every core emotion's marker words in the core train stories of `folder` (the rule at MARKER_MIN_STORIES)."""
    train = load_stories(split="train", emotions="core")
    counts = {e: Counter() for e in emotion_names(core_only=True)}  # in how many of e's train stories a token occurs
    for emotion, text in zip(train.emotion, train.text, strict=True):
        counts[emotion].update(set(bow_tokens(text)))
    total = sum(counts.values(), Counter())
    return {e: frozenset(w for w, n in c.items() if n >= MARKER_MIN_STORIES and n >= MARKER_RATIO * total[w] / len(counts))
            for e, c in counts.items()}  # fmt: skip


def marker_words(emotion: str) -> frozenset[str]:
    """The words marking a core emotion in the training stories (see MARKER_RATIO); new-words stories avoid them."""
    table = _marker_table(str(data_dir()))
    if emotion not in table:
        raise ValueError(f"emotion={emotion!r}: marker words exist for the core emotions only: {sorted(table)}")
    return table[emotion]


def marker_words_in(text: str, emotion: str) -> list[str]:
    """The marker words of `emotion` that a text contains, in text order."""
    markers = marker_words(emotion)
    return list(dict.fromkeys(t for t in bow_tokens(text) if t in markers))


def read_jsonl(path: Path, schema: str, emotions: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate a JSONL file; any bad line raises DataError naming file, line and field."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (is COURSE_DATA_DIR right?)")
    emotions = list(emotions) if emotions is not None else None
    records, seen = [], {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                raise _fail(path, n, None, "blank line (every line must hold one JSON object)")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise _fail(path, n, None, f"bad JSON: {e.msg} at column {e.colno}") from e
            check_record(record, schema, path=path, line=n, emotions=emotions)
            if record["id"] in seen:
                raise _fail(path, n, "id", f"duplicate id {record['id']!r} (first on line {seen[record['id']]})")
            seen[record["id"]] = n
            records.append(record)
    if not records:
        raise DataError(f"{path}: no records")
    return pd.DataFrame.from_records(records, columns=list(SCHEMAS[schema]))


@lru_cache(maxsize=4)
def _load_emotions_cached(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found (is COURSE_DATA_DIR right?)")
    columns = ["emotion", "family", "core", "valence", "arousal", "dominance", "forbidden"]
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != columns:
            raise _fail(path, 1, None, f"header must be {','.join(columns)}; got {','.join(reader.fieldnames or [])}")
        for n, row in enumerate(reader, 2):
            for name in ("emotion", "family", "forbidden"):
                if not (row[name] or "").strip():
                    raise _fail(path, n, name, "empty")
            if row["core"] not in ("True", "False"):
                raise _fail(path, n, "core", f"{row['core']!r} must be True or False")
            rec: dict[str, Any] = {"emotion": row["emotion"], "family": row["family"], "core": row["core"] == "True"}
            for name in ("valence", "arousal", "dominance"):
                text = row[name].strip()
                try:
                    value = float(text) if text else float("nan")
                except ValueError as e:
                    raise _fail(path, n, name, f"{text!r} is not a number") from e
                if text and not 0.0 <= value <= 1.0:
                    raise _fail(path, n, name, f"{value} is outside the NRC range 0..1")
                rec[name] = value
            rec["forbidden"] = row["forbidden"].split()
            if row["emotion"] in {r["emotion"] for r in rows}:
                raise _fail(path, n, "emotion", f"duplicate emotion {row['emotion']!r}")
            rows.append(rec)
    return pd.DataFrame(rows)


def load_emotions() -> pd.DataFrame:
    """The course's emotion words: family, core flag, NRC valence/arousal/dominance, forbidden words."""
    return _load_emotions_cached(data_dir() / "emotions.csv").copy()


def emotion_names(core_only: bool = False) -> list[str]:
    """Emotion names in file order (only the 12 core ones with core_only=True)."""
    df = load_emotions()
    return df.loc[df.core, "emotion"].tolist() if core_only else df.emotion.tolist()


def _check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; use one of {allowed}")


def load_stories(
    split: str | None = None,
    emotions: Iterable[str] | str | None = None,
    per_emotion: int | None = None,
    form: Iterable[str] | str | None = None,
) -> pd.DataFrame:
    """The emotion stories (id, emotion, topic, person, form, register, length, split, text), validated.

    split: 'train', 'test' (held out, same forms as train) or 'style_test' (held-out forms: every dialogue and
    text_message), None for all. emotions: 'core', a name or a list. form: a form or a list of forms.
    per_emotion: keep the first n stories of each emotion in each split (a small balanced subset).
    """
    known = emotion_names()
    df = read_jsonl(data_dir() / "stories.jsonl", "stories", emotions=known)
    if split is not None:
        _check_choice("split", split, [*SPLITS, None])
        df = df[df.split == split]
    if emotions is not None:
        if emotions == "core":
            emotions = emotion_names(core_only=True)
        emotions = [emotions] if isinstance(emotions, str) else list(emotions)
        unknown = [e for e in emotions if e not in known]
        if unknown:
            raise ValueError(f"emotions: {unknown} not in data/emotions.csv; allowed: 'core' or any of {known}")
        df = df[df.emotion.isin(emotions)]
    if form is not None:
        forms = [form] if isinstance(form, str) else list(form)
        for f in forms:
            _check_choice("form", f, FORMS)
        df = df[df.form.isin(forms)]
    if per_emotion is not None:
        if not isinstance(per_emotion, int) or per_emotion < 1:
            raise ValueError(f"per_emotion={per_emotion!r} must be a positive int or None")
        df = df.groupby(["emotion", "split"], sort=False).head(per_emotion)
    return df.reset_index(drop=True)


def load_situation_stories(emotions: Iterable[str] | str | None = None, per_emotion: int | None = None) -> pd.DataFrame:
    """The situation split (same fields as load_stories, form 'situation', split 'situation_test'), validated.

    Each story tells only what happens: the record rules (_check_situation), a topic of topics.csv, and no
    near-duplicate among them or of any story in stories.jsonl. emotions: 'core', a core name or a list;
    per_emotion: the first n stories of each emotion (FAST).
    """
    return _load_extra_split("situation_stories", emotions, per_emotion)


def load_new_words_stories(emotions: Iterable[str] | str | None = None, per_emotion: int | None = None) -> pd.DataFrame:
    """The new-words split (same fields as load_stories, split 'new_words_test': dialogues and text messages), validated.

    No story uses a marker word of its own emotion (`marker_words`) or any emotion word: the record rules
    (_check_new_words), a topic of topics.csv, no near-duplicate among them or of any story in stories.jsonl.
    emotions: 'core', a core name or a list; per_emotion: the first n stories of each emotion (FAST).
    """
    return _load_extra_split("new_words_stories", emotions, per_emotion)


def extra_split_problems(df: pd.DataFrame, path: Path | str, lines: Iterable[int]) -> list[DataError]:
    """What the record rules cannot see in an extra split (rows of `df` on `lines`): unknown topics, near-duplicates
    among them or of a story in stories.jsonl."""
    lines = list(lines)
    topics = set(load_topics().id)
    out = [_fail(path, n, "topic", f"{t!r} is not an id of topics.csv") for n, t in zip(lines, df.topic) if t not in topics]
    corpus = load_stories()
    for i, j, x in near_duplicates(df.text.tolist() + corpus.text.tolist()):
        other = f"line {lines[j]}" if j < len(df) else f"stories.jsonl story {corpus.id.iloc[j - len(df)]}"
        out.append(_fail(path, lines[i], "text", f"near-duplicate of {other} (5-gram Jaccard {x:.2f} > {JACCARD_MAX})"))
    return out


def _load_extra_split(name: str, emotions: Iterable[str] | str | None, per_emotion: int | None) -> pd.DataFrame:
    """Read and check one extra test split of the core emotions (data/<name>.jsonl), then filter it."""
    path = data_dir() / f"{name}.jsonl"
    df = read_jsonl(path, name, emotions=emotion_names())
    for problem in extra_split_problems(df, path, range(1, len(df) + 1)):
        raise problem
    if emotions is not None:
        core = emotion_names(core_only=True)
        emotions = core if emotions == "core" else [emotions] if isinstance(emotions, str) else list(emotions)
        unknown = [e for e in emotions if e not in core]
        if unknown:
            raise ValueError(f"emotions: {unknown} have no {name.replace('_', ' ')}; allowed: 'core' or any of {core}")
        df = df[df.emotion.isin(emotions)]
    if per_emotion is not None:
        if not isinstance(per_emotion, int) or per_emotion < 1:
            raise ValueError(f"per_emotion={per_emotion!r} must be a positive int or None")
        df = df.groupby("emotion", sort=False).head(per_emotion)
    return df.reset_index(drop=True)


def load_plan() -> pd.DataFrame:
    """The story plan (story_plan.jsonl): one row per story, every field of a story but its text."""
    fields = [f for f in SCHEMAS["stories"] if f != "text"]
    path = data_dir() / "story_plan.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: file not found (is COURSE_DATA_DIR right?)")
    with path.open(encoding="utf-8") as f:
        return pd.DataFrame.from_records([json.loads(line) for line in f], columns=fields)


def load_topics() -> pd.DataFrame:
    """The shared story topics (id, description)."""
    return pd.read_csv(data_dir() / "topics.csv")


def load_neutral() -> pd.DataFrame:
    """Neutral Human/Assistant dialogues (id, topic, messages) used to remove non-emotional directions."""
    return read_jsonl(data_dir() / "neutral_dialogues.jsonl", "neutral_dialogues")


def load_scenarios(name: str) -> pd.DataFrame:
    """One scenario set: 'implicit', 'dose', 'speakers', 'failures' or 'cheat_scenarios'."""
    _check_choice("name", name, SCENARIOS)
    return read_jsonl(data_dir() / f"{name}.jsonl", name, emotions=emotion_names())


def load_feels_scenes() -> pd.DataFrame:
    """Neutral scenes (id, text, pronoun) for notebook 06's "How does he feel? He feels" test; written before any run."""
    return read_jsonl(data_dir() / "feels_scenes.jsonl", "feels_scenes")


def load_activities() -> pd.DataFrame:
    """Everyday activities (id, activity, pleasant, social, effortful) for the preference notebook; labels fixed a priori."""
    return read_jsonl(data_dir() / "activities.jsonl", "activities")


# emotions.csv path -> (the cached table it was built from, its lookup tables: see _lookup).
_FORBIDDEN: dict[Path, tuple[pd.DataFrame, dict[str, Any]]] = {}
_Entries = dict[str, list[tuple[tuple[str, ...], str]]]  # first token -> [(entry tokens, label), ...]


def _entry_tokens(entry: str) -> tuple[str, ...]:
    """A forbidden entry as lower-case tokens: 'at_ease' -> ('at', 'ease'), 'grief-stricken' -> ('grief', 'stricken')."""
    return tuple(t.lower() for t in TOKEN.findall(entry.replace("_", " ")))


def _lookup() -> dict[str, Any]:
    """Lookup tables built once per loaded emotions.csv (rebuilt after _load_emotions_cached is cleared).

    'by_emotion': emotion -> its forbidden entries; 'names': the emotion names themselves. A word forbidden for
    several emotions (synonym groups) is in each of their tables.
    """
    path = data_dir() / "emotions.csv"
    emotions = _load_emotions_cached(path)
    cached = _FORBIDDEN.get(path)
    if cached is None or cached[0] is not emotions:
        by_emotion: dict[str, _Entries] = {}
        names: _Entries = {}
        for e, entries in zip(emotions.emotion, emotions.forbidden):
            table = by_emotion.setdefault(e, {})
            for tokens in dict.fromkeys(_entry_tokens(x) for x in entries):
                if tokens:
                    table.setdefault(tokens[0], []).append((tokens, e))
            name = _entry_tokens(e)
            names.setdefault(name[0], []).append((name, e))
        cached = (emotions, {"by_emotion": by_emotion, "names": names, "order": list(emotions.emotion)})
        _FORBIDDEN[path] = cached
    return cached[1]


def _matches(text: str, tables: Iterable[_Entries]) -> list[tuple[str, str]]:
    """(text as written, label) for every entry of the tables found in the text as whole words in a row, in text order."""
    spans = [(m.group().lower(), m.start(), m.end()) for m in TOKEN.finditer(text)]
    words = [w for w, _, _ in spans]
    tables = list(tables)
    out = []
    for i, w in enumerate(words):
        for table in tables:
            for tokens, label in table.get(w, ()):
                if tuple(words[i : i + len(tokens)]) == tokens:
                    out.append((text[spans[i][1] : spans[i + len(tokens) - 1][2]], label))
    return out


def forbidden_hits(text: str, emotions: Iterable[str] | str | None = None) -> list[tuple[str, str]]:
    """(word, emotion) for every forbidden word or phrase of an emotion in the text (whole words, any case).

    A word forbidden for several emotions gives one pair per emotion (emotions.csv order); a phrase ('at_ease',
    'grief-stricken') is reported as written in the text. `emotions` ('core', a name or a list) restricts the
    check to those emotions' lists (a story is checked against its own emotion only).
    """
    lookup = _lookup()
    if emotions is None:
        keep = lookup["order"]
    elif emotions == "core":
        keep = emotion_names(core_only=True)
    else:
        keep = [emotions] if isinstance(emotions, str) else list(emotions)
    return _matches(text, (lookup["by_emotion"][e] for e in keep if e in lookup["by_emotion"]))


def emotion_names_in(text: str) -> list[str]:
    """The emotion names (of emotions.csv, e.g. 'content', 'at ease') that the text contains as whole words."""
    return list(dict.fromkeys(e for _, e in _matches(text, [_lookup()["names"]])))


def emotion_word_problems(text: str) -> list[str]:
    """Why a non-story text breaks the emotion-word rule: core forbidden words, or emotion names not allowed.

    The rule for neutral dialogues, scenarios and activities: no forbidden word of the 12 core emotions, and no
    name of any of the 171 emotions except NAME_ALLOWED (everyday senses). Empty list: the text is clean.
    """
    out = [f"{w!r} ({e})" for w, e in forbidden_hits(text, emotions="core")]
    out += [f"{e!r} (an emotion name)" for e in emotion_names_in(text) if e not in NAME_ALLOWED]
    return list(dict.fromkeys(out))


def near_duplicates(texts: Iterable[str], above: float = JACCARD_MAX) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every pair of texts whose word 5-gram sets (lower-cased, split on whitespace) overlap above `above`.

    Sparse: only pairs that share a 5-gram are compared, so 2,628 stories take about a second.
    """
    grams = []
    index: dict[tuple[str, ...], list[int]] = {}
    for i, text in enumerate(texts):
        w = text.lower().split()
        g = {tuple(w[k : k + 5]) for k in range(len(w) - 4)}
        grams.append(g)
        for x in g:
            index.setdefault(x, []).append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for docs in index.values():
        shared.update(combinations(docs, 2))
    pairs = [(i, j, n / (len(grams[i]) + len(grams[j]) - n)) for (i, j), n in shared.items()]
    return sorted((p for p in pairs if p[2] > above), key=lambda p: -p[2])


def check_corpus(stories: pd.DataFrame | None = None) -> None:
    """The corpus-level rules: every story matches its plan row (all planned stories written, none extra), no
    near-duplicates. Raises DataError listing the problems (the record-level rules run on every load)."""
    stories = load_stories() if stories is None else stories
    plan = load_plan().set_index("id")
    problems = []
    missing, extra = sorted(set(plan.index) - set(stories.id)), sorted(set(stories.id) - set(plan.index))
    if missing:
        problems.append(f"{len(missing)} planned stories missing, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} stories not in story_plan.jsonl, e.g. {extra[:5]}")
    both = stories.set_index("id").loc[[i for i in stories.id if i in plan.index]]
    for name in plan.columns:
        differ = both.index[both[name].to_numpy() != plan.loc[both.index, name].to_numpy()]
        problems += [f"{i}: field '{name}' is {both.at[i, name]!r}, the plan says {plan.at[i, name]!r}" for i in differ]
    ids = stories.id.tolist()
    for i, j, x in near_duplicates(stories.text):
        problems.append(f"near-duplicates {ids[i]} and {ids[j]}: 5-gram Jaccard {x:.2f} > {JACCARD_MAX}")
    if problems:
        raise DataError(f"{data_dir() / 'stories.jsonl'}: {len(problems)} problems: " + "; ".join(problems[:20]))
