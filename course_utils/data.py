"""Load the course's data files as pandas DataFrames, validating every record on the way in."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from .paths import data_dir

SPLITS = ("train", "test")
PERSONS = ("first", "third")
# Every JSONL file: its required fields and each field's type.
SCHEMAS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "stories": {"id": str, "emotion": str, "topic": str, "person": str, "split": str, "text": str},
    "neutral_dialogues": {"id": str, "topic": str, "messages": list},
    "implicit": {"id": str, "emotion": str, "text": str},
    "dose": {"id": str, "template": str, "values": list, "emotion": str, "direction": str},
    "speakers": {"id": str, "text": str, "user_emotion": str, "assistant_stance": str},
    "failures": {"id": str, "task_id": str, "n_failures": int, "messages": list},
    "cheat_scenarios": {"id": str, "task": str, "tests": str, "failures": list, "honest": str, "cheat": str},
    "activities": {"id": str, "activity": str, "pleasant": bool, "social": bool, "effortful": bool},
}
SCENARIOS = ("implicit", "dose", "speakers", "failures", "cheat_scenarios")
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


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
        if record["split"] not in SPLITS:
            raise _fail(path, line, "split", f"{record['split']!r} is not one of {SPLITS}")
        if record["person"] not in PERSONS:
            raise _fail(path, line, "person", f"{record['person']!r} is not one of {PERSONS}")
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
        hits = forbidden_hits(text)
        if hits:
            raise _fail(
                path, line, "activity", f"names the emotion word {hits[0][0]!r} ({hits[0][1]}): describe the activity only"
            )
    if schema == "cheat_scenarios" and not all(isinstance(f, str) and f.strip() for f in record["failures"]):
        raise _fail(path, line, "failures", "must be a list of non-empty strings")
    return record


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
    split: str | None = None, emotions: Iterable[str] | str | None = None, per_emotion: int | None = None
) -> pd.DataFrame:
    """The emotion stories (id, emotion, topic, person, split, text); filter by split, emotions ('core'), count."""
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
    if per_emotion is not None:
        if not isinstance(per_emotion, int) or per_emotion < 1:
            raise ValueError(f"per_emotion={per_emotion!r} must be a positive int or None")
        df = df.groupby(["emotion", "split"], sort=False).head(per_emotion)
    return df.reset_index(drop=True)


def load_neutral() -> pd.DataFrame:
    """Neutral Human/Assistant dialogues (id, topic, messages) used to remove non-emotional directions."""
    return read_jsonl(data_dir() / "neutral_dialogues.jsonl", "neutral_dialogues")


def load_scenarios(name: str) -> pd.DataFrame:
    """One scenario set: 'implicit', 'dose', 'speakers', 'failures' or 'cheat_scenarios'."""
    _check_choice("name", name, SCENARIOS)
    return read_jsonl(data_dir() / f"{name}.jsonl", name, emotions=emotion_names())


def load_activities() -> pd.DataFrame:
    """Everyday activities (id, activity, pleasant, social, effortful) for the preference notebook; labels fixed a priori."""
    return read_jsonl(data_dir() / "activities.jsonl", "activities")


# emotions.csv path -> (the cached table it was built from, forbidden word -> emotion).
_FORBIDDEN: dict[Path, tuple[pd.DataFrame, dict[str, str]]] = {}


def _forbidden_table() -> dict[str, str]:
    """Forbidden word -> emotion, built once per loaded emotions.csv (rebuilt after _load_emotions_cached is cleared)."""
    path = data_dir() / "emotions.csv"
    emotions = _load_emotions_cached(path)
    cached = _FORBIDDEN.get(path)
    if cached is None or cached[0] is not emotions:
        cached = (emotions, {w: e for e, words in zip(emotions.emotion, emotions.forbidden) for w in words})
        _FORBIDDEN[path] = cached
    return cached[1]


def forbidden_hits(text: str) -> list[tuple[str, str]]:
    """(word, emotion) pairs for every forbidden emotion word in the text (whole words, any case)."""
    table = _forbidden_table()
    return [(w, table[w.lower()]) for w in WORD.findall(text) if w.lower() in table]
