"""Check a helper's draft file before merge: python3 scripts/check_part.py KIND FILE [PLAN].

KIND is one of: stories, neutral, implicit, dose, speakers, failures, cheat.
Prints every problem with its line number; exit 1 if any.
"""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMOS = list(csv.DictReader(open(ROOT / "data/emotions.csv", encoding="utf-8")))
EMOTION_NAMES = {e["emotion"] for e in EMOS}
CORE = {e["emotion"] for e in EMOS if e["core"] == "True"}
FORBIDDEN = {w: e["emotion"] for e in EMOS for w in e["forbidden"].split()}
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def forbidden_hits(text: str) -> list[str]:
    """Forbidden emotion words found in text (case-insensitive, whole words)."""
    return [f"{w} ({FORBIDDEN[w.lower()]})" for w in WORD.findall(text) if w.lower() in FORBIDDEN]


def all_strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        return [s for x in obj for s in all_strings(x)]
    if isinstance(obj, dict):
        return [s for k, x in obj.items() if k not in ("emotion", "user_emotion", "assistant_stance", "id", "task_id", "direction", "topic", "person", "role") for s in all_strings(x)]
    return []


FIELDS = {
    "stories": ["id", "emotion", "topic", "person", "text"],
    "neutral": ["id", "topic", "messages"],
    "implicit": ["id", "emotion", "text"],
    "dose": ["id", "template", "values", "emotion", "direction"],
    "speakers": ["id", "text", "user_emotion", "assistant_stance"],
    "failures": ["id", "task_id", "n_failures", "messages"],
    "cheat": ["id", "task", "tests", "failures", "honest", "cheat"],
}


def main(kind: str, path: str, plan: str | None = None) -> int:
    problems = []
    rows = []
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            problems.append(f"line {i}: empty line"); continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {i}: bad JSON ({e})"); continue
        rows.append((i, r))
        for f in FIELDS[kind]:
            if f not in r or r[f] in ("", None, []):
                problems.append(f"line {i}: missing or empty field '{f}'")
        extra = set(r) - set(FIELDS[kind])
        if extra:
            problems.append(f"line {i}: unexpected fields {sorted(extra)}")
        for s in all_strings(r):
            h = forbidden_hits(s)
            if h:
                problems.append(f"line {i}: forbidden emotion words {h}")
        if kind == "stories":
            t = r.get("text", "")
            n = len(t.split())
            if not 60 <= n <= 120:
                problems.append(f"line {i}: {n} words (need 60-120)")
            if "\n" in t:
                problems.append(f"line {i}: more than one paragraph")
            if r.get("person") not in ("first", "third"):
                problems.append(f"line {i}: person must be first or third")
        for key in ("emotion", "user_emotion", "assistant_stance"):
            if key in r and r[key] not in EMOTION_NAMES:
                problems.append(f"line {i}: {key} '{r[key]}' is not in data/emotions.csv")
        if kind == "neutral" or kind == "failures":
            msgs = r.get("messages", [])
            for m in msgs:
                if set(m) != {"role", "content"} or m["role"] not in ("user", "assistant"):
                    problems.append(f"line {i}: each message needs exactly role (user/assistant) and content")
            if kind == "neutral" and not 4 <= len(msgs) <= 12:
                problems.append(f"line {i}: {len(msgs)} messages (need 2-6 exchanges = 4-12 messages)")
        if kind == "dose":
            if "{X}" not in r.get("template", ""):
                problems.append(f"line {i}: template needs {{X}}")
            v = r.get("values", [])
            if v != sorted(v) or len(v) < 5:
                problems.append(f"line {i}: values must be ascending, at least 5")
            if r.get("direction") not in ("up", "down"):
                problems.append(f"line {i}: direction must be up or down")
        if kind == "cheat":
            a, b = len(r.get("honest", "").split()), len(r.get("cheat", "").split())
            if a and b and not 0.8 <= a / b <= 1.25:
                problems.append(f"line {i}: honest {a} words vs cheat {b} words (keep within 20%)")
            if not isinstance(r.get("failures"), list):
                problems.append(f"line {i}: failures must be a list of strings")
    ids = [r.get("id") for _, r in rows]
    dup = {x for x in ids if ids.count(x) > 1}
    if dup:
        problems.append(f"duplicate ids: {sorted(dup)[:10]}")
    if plan:
        want = {json.loads(l)["id"]: json.loads(l) for l in open(plan)}
        got = {r.get("id"): r for _, r in rows}
        missing = sorted(set(want) - set(got))
        if missing:
            problems.append(f"{len(missing)} planned ids missing, e.g. {missing[:5]}")
        for k, r in got.items():
            if k in want:
                for f in ("emotion", "topic", "person"):
                    if r.get(f) != want[k][f]:
                        problems.append(f"id {k}: {f} is {r.get(f)!r}, plan says {want[k][f]!r}")
            else:
                problems.append(f"id {k}: not in plan")
    if kind == "stories":
        grams = {}
        for i, r in rows:
            w = r.get("text", "").lower().split()
            grams[i] = {tuple(w[j:j + 5]) for j in range(len(w) - 4)}
        items = list(grams.items())
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                ga, gb = items[a][1], items[b][1]
                if ga and gb and len(ga & gb) / len(ga | gb) > 0.3:
                    problems.append(f"lines {items[a][0]} and {items[b][0]}: near-duplicates")
        openings = [" ".join(r.get("text", "").split()[:3]).lower() for _, r in rows]
        common = {o: openings.count(o) for o in set(openings) if openings.count(o) > max(3, len(rows) // 40)}
        if common:
            problems.append(f"too many stories open the same way: {common}")
    for p in problems:
        print(p)
    print(f"{path}: {len(rows)} records, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
