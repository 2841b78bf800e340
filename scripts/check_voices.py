"""Validate the "many voices" stories (data/voices, issue 23) against their plan; print counts and balance tables.

    python scripts/check_voices.py                          # every data/voices/stories.jsonl + stories-*.jsonl
    python scripts/check_voices.py --emotions happy,sad     # check (and count) only these emotions' stories
    python scripts/check_voices.py data/voices/stories-a.jsonl   # only these files
    python scripts/check_voices.py --stats                  # the plan's balance tables (Markdown), for the data card

Records are plan rows (data/voices/plan.jsonl) plus a ``text`` field, one JSON object a line; files may be partial.
Errors (exit status 1), each naming file, line and field:

* bad JSON, blank line, a field missing or extra, an id not in the plan or written twice, a field that differs
  from the plan row, an empty text;
* a word count outside the length class, with 20% slack: sentence 15-35 words (12-42), short 35-70 (28-84),
  paragraph 70-120 (56-144), long 130-190 (104-228); a long narration/diary/letter/address needs two paragraphs
  (a line break between them);
* any forbidden word or phrase of the story's OWN emotion (emotions.csv, whole words, any case; ``at_ease`` is the
  phrase "at ease", "grief-stricken" matches "grief stricken" too);
* a near-duplicate: word 5-gram Jaccard similarity (lower-cased, split on whitespace) above 0.3 with any other story;
* form: a dialogue needs quoted speech or speaker turns ("Name: ..." lines, or lines opening with a dash); a
  text_message is one message a line (at most 50 words each), without a letter's "Dear ..." or "Yours ..."; an
  address speaks to "you".

Warnings (reported, not errors): the name of another emotion in the text (e.g. "content" in a story for "calm");
a first-person story without I/me/my/we/us/our.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path("data/voices")
PLAN_FIELDS = ("id", "emotion", "topic", "person", "form", "register", "length", "split")
LENGTH_WORDS = {"sentence": (15, 35), "short": (35, 70), "paragraph": (70, 120), "long": (130, 190)}
SLACK = 0.2
JACCARD_MAX = 0.3
TOKEN = re.compile(r"[a-z]+")
FIRST = {"i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves"}
YOU = {"you", "your", "yours", "yourself", "yourselves"}
SPEECH = re.compile(r"[\"“”‘]|^\s*[A-Z][A-Za-z .'-]{0,30}:\s*\S|^\s*[—–-]\s*\S", re.MULTILINE)
SALUTATION = re.compile(r"(?im)^\s*(dear\b|yours (sincerely|faithfully|truly)\b)")


def bounds(length: str) -> tuple[int, int]:
    """Allowed word counts of a length class, slack included."""
    lo, hi = LENGTH_WORDS[length]
    return round(lo * (1 - SLACK)), round(hi * (1 + SLACK))


def phrase(entry: str) -> str:
    """A forbidden entry as ' token token ' (padded), the form matched against a text."""
    return " " + " ".join(TOKEN.findall(entry.replace("_", " ").lower())) + " "


def padded(text: str) -> str:
    """A text as ' token token ... ' (lower-cased letters only), so phrases match as whole words."""
    return " " + " ".join(TOKEN.findall(text.lower())) + " "


def read_emotions(root: Path) -> dict[str, dict]:
    """Emotion -> {family, core, forbidden: [entries]} from emotions.csv."""
    with (root / "emotions.csv").open(encoding="utf-8", newline="") as f:
        return {
            r["emotion"]: {"family": r["family"], "core": r["core"] == "True", "forbidden": r["forbidden"].split()}
            for r in csv.DictReader(f)
        }


def read_plan(root: Path) -> dict[str, dict]:
    """Plan rows by id, in plan order."""
    with (root / "plan.jsonl").open(encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def story_files(root: Path) -> list[Path]:
    """data/voices/stories.jsonl and every stories-*.jsonl, sorted."""
    return sorted(p for p in [root / "stories.jsonl", *root.glob("stories-*.jsonl")] if p.is_file())


class Report:
    """Collects errors and warnings, each with file, line and field."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: Path, line: int, field: str | None, problem: str) -> None:
        self.errors.append(f"ERROR {path}, line {line}" + (f", field '{field}'" if field else "") + f": {problem}")

    def warn(self, path: Path, line: int, field: str | None, problem: str) -> None:
        self.warnings.append(f"warning {path}, line {line}" + (f", field '{field}'" if field else "") + f": {problem}")


def load_records(files: list[Path], plan: dict[str, dict], report: Report, selected: set[str]) -> list[tuple[Path, int, dict]]:
    """Every well-formed record whose id is in the plan, as (file, line, record); problems go to the report.

    Problems of a record planned for an emotion outside `selected` are not reported (another writer's slice).
    """
    quiet = Report()
    out, seen = [], {}
    for path in files:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    report.error(path, n, None, "blank line (every line must hold one JSON object)")
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    report.error(path, n, None, f"bad JSON: {e.msg} at column {e.colno}")
                    continue
                if not isinstance(rec, dict):
                    report.error(path, n, None, "expected a JSON object")
                    continue
                rid = rec.get("id")
                if rid not in plan:
                    report.error(path, n, "id", f"{rid!r} is not in plan.jsonl")
                    continue
                if rid in seen:
                    report.error(path, n, "id", f"duplicate id {rid!r} (first at {seen[rid][0]}, line {seen[rid][1]})")
                    continue
                seen[rid] = (path, n)
                rep = report if plan[rid]["emotion"] in selected else quiet
                ok = True
                for name in (*PLAN_FIELDS, "text"):
                    if name not in rec:
                        rep.error(path, n, name, "missing field")
                        ok = False
                    elif name != "text" and rec[name] != plan[rid][name]:
                        rep.error(path, n, name, f"{rec[name]!r} differs from the plan row ({plan[rid][name]!r})")
                        ok = False
                for name in sorted(set(rec) - {*PLAN_FIELDS, "text"}):
                    rep.error(path, n, name, f"unexpected field (allowed: {', '.join(PLAN_FIELDS)}, text)")
                    ok = False
                if "text" in rec and (not isinstance(rec["text"], str) or not rec["text"].strip()):
                    rep.error(path, n, "text", "empty or not a string")
                    ok = False
                if ok:
                    out.append((path, n, rec))
    return out


def check_text(path: Path, n: int, rec: dict, emotions: dict[str, dict], names: dict[str, str], report: Report) -> None:
    """Length, forbidden words, form rules and warnings for one record."""
    text, form, emotion = rec["text"], rec["form"], rec["emotion"]
    words = len(text.split())
    lo, hi = bounds(rec["length"])
    if not lo <= words <= hi:
        plan_lo, plan_hi = LENGTH_WORDS[rec["length"]]
        report.error(path, n, "text", f"{words} words; a '{rec['length']}' story has {plan_lo}-{plan_hi} (at most {lo}-{hi})")
    paragraphs = [p for p in text.split("\n") if p.strip()]
    if rec["length"] == "long" and form not in ("dialogue", "text_message") and len(paragraphs) < 2:
        report.error(path, n, "text", "a 'long' story has two paragraphs (put a line break between them)")
    pad = padded(text)
    own = [e for e in emotions[emotion]["forbidden"] if phrase(e) in pad]
    if own:
        report.error(path, n, "text", f"forbidden word(s) of '{emotion}': {', '.join(own)}")
    others = sorted({name for key, name in names.items() if name != emotion and key in pad and name not in own})
    others = [o for o in others if phrase(o) not in {phrase(e) for e in emotions[emotion]["forbidden"]}]
    if others:
        report.warn(path, n, "text", f"names other emotion(s): {', '.join(others)}")
    tokens = set(pad.split())
    if form == "dialogue" and not SPEECH.search(text):
        report.error(path, n, "text", "a dialogue needs quoted speech or speaker turns ('Name: ...' lines)")
    if form == "text_message":
        if SALUTATION.search(text):
            report.error(path, n, "text", "a text_message has no letter salutation ('Dear ...', 'Yours ...')")
        longest = max(len(p.split()) for p in paragraphs)
        if longest > 50:
            report.error(path, n, "text", f"a message of {longest} words: one short message a line (at most 50 words)")
    if form == "address" and not tokens & YOU:
        report.error(path, n, "text", "an address speaks to 'you'")
    if rec["person"] == "first" and not tokens & FIRST:
        report.warn(path, n, "person", "first person, but no I/me/my/we/us/our")


def near_duplicates(records: list[tuple[Path, int, dict]], selected: set[str], report: Report) -> None:
    """Word 5-gram Jaccard over all pairs sharing a 5-gram (inverted index: sparse, fast for thousands of texts)."""
    grams = []
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, (_, _, rec) in enumerate(records):
        w = rec["text"].lower().split()
        g = {tuple(w[k : k + 5]) for k in range(len(w) - 4)}
        grams.append(g)
        for x in g:
            index[x].append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for docs in index.values():
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                shared[docs[a], docs[b]] += 1
    for (a, b), inter in shared.items():
        jac = inter / (len(grams[a]) + len(grams[b]) - inter)
        ra, rb = records[a][2], records[b][2]
        if jac > JACCARD_MAX and (ra["emotion"] in selected or rb["emotion"] in selected):
            path, n, _ = records[b]
            report.error(
                path, n, "text", f"near-duplicate of {ra['id']} ({records[a][0]}, line {records[a][1]}): Jaccard {jac:.2f}"
            )


def table(rows: list[dict], row_key: str, col_key: str, cols: list[str] | None = None) -> str:
    """A Markdown count table of two fields."""
    counts = Counter((r[row_key], r[col_key]) for r in rows)
    rkeys = list(dict.fromkeys(r[row_key] for r in rows))
    cols = cols or list(dict.fromkeys(r[col_key] for r in rows))
    lines = [f"| {row_key} \\ {col_key} | " + " | ".join(cols) + " | all |", "|---" * (len(cols) + 2) + "|"]
    for rk in rkeys:
        vals = [counts[rk, c] for c in cols]
        lines.append(f"| {rk} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    tot = [sum(counts[rk, c] for rk in rkeys) for c in cols]
    lines.append("| all | " + " | ".join(map(str, tot)) + f" | {sum(tot)} |")
    return "\n".join(lines)


def stats(plan: dict[str, dict], emotions: dict[str, dict]) -> None:
    """Print the plan's balance tables (Markdown)."""
    rows = list(plan.values())
    core = [r for r in rows if emotions[r["emotion"]]["core"]]
    other = [r for r in rows if not emotions[r["emotion"]]["core"]]
    one_core = [r for r in rows if r["emotion"] == core[0]["emotion"]]
    one_other = [r for r in rows if r["emotion"] == other[0]["emotion"]]
    print(f"plan: {len(rows)} stories, {len(emotions)} emotions ({len({r['emotion'] for r in core})} core x 60, "
          f"{len({r['emotion'] for r in other})} others x 12), {len({r['topic'] for r in rows})} topics\n")  # fmt: skip
    for field in ("form", "person", "register", "length", "split"):
        values = list(dict.fromkeys(r[field] for r in rows))
        ex_core, ex_other = one_core[0]["emotion"], one_other[0]["emotion"]
        print(f"| {field} | all | per core emotion (e.g. {ex_core}) | per other emotion (e.g. {ex_other}) |")
        print("|---|---|---|---|")
        for v in values:
            n_all = sum(r[field] == v for r in rows)
            print(f"| {v} | {n_all} | {sum(r[field] == v for r in one_core)} | {sum(r[field] == v for r in one_other)} |")
        print()
    for a, b in (("form", "person"), ("form", "register"), ("form", "length"), ("form", "split"), ("register", "length")):
        print(table(rows, a, b), end="\n\n")
    per_emotion = {
        f: sorted(set(Counter(tuple(sorted(Counter(r[f] for r in rows if r["emotion"] == e).items())) for e in emotions)))
        for f in ("form", "person", "register", "length")
    }
    same = all(len({c for c in per_emotion[f] if sum(n for _, n in c) == 12}) <= 1 for f in per_emotion)
    print(f"every non-core emotion has the same form/person/register/length counts: {same}")
    topics_per_emotion = Counter(len({r["topic"] for r in rows if r["emotion"] == e}) for e in emotions)
    emotions_per_topic = Counter(r["topic"] for r in rows)
    print(f"distinct topics per emotion: {dict(sorted(topics_per_emotion.items()))}; "
          f"stories per topic: {min(emotions_per_topic.values())}-{max(emotions_per_topic.values())}")  # fmt: skip
    mid = {k: (lo + hi) / 2 for k, (lo, hi) in LENGTH_WORDS.items()}
    words = sum(mid[r["length"]] for r in rows)
    print(f"estimated size at the middle of each length class: {words:,.0f} words, mean {words / len(rows):.1f} a story, "
          f"about {words * 1.26:,.0f} tokens (1.26 SmolLM2 tokens a word, measured on data/stories.jsonl)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="story files (default: data/voices/stories.jsonl + stories-*.jsonl)")
    ap.add_argument("--emotions", help="comma-separated emotions to check and count (default: all)")
    ap.add_argument("--stats", action="store_true", help="print the plan's balance tables (Markdown) and exit")
    ap.add_argument("--root", type=Path, default=ROOT, help="the data/voices folder")
    ap.add_argument("--max-warnings", type=int, default=50, help="print at most this many warnings")
    args = ap.parse_args(argv)
    emotions, plan = read_emotions(args.root), read_plan(args.root)
    if args.stats:
        stats(plan, emotions)
        return 0
    selected = set(emotions)
    if args.emotions:
        wanted = [e.strip() for e in args.emotions.split(",") if e.strip()]
        unknown = [e for e in wanted if e not in emotions]
        if unknown:
            print(f"unknown emotion(s) {unknown}; see {args.root / 'emotions.csv'}", file=sys.stderr)
            return 2
        selected = set(wanted)
    files = args.files or story_files(args.root)
    report = Report()
    records = load_records(files, plan, report, selected)
    names = {phrase(e): e for e in emotions}
    for path, n, rec in records:
        if rec["emotion"] in selected:
            check_text(path, n, rec, emotions, names, report)
    near_duplicates(records, selected, report)
    written = Counter(rec["emotion"] for _, _, rec in records)
    planned = Counter(r["emotion"] for r in plan.values())
    shown = [e for e in emotions if e in selected]
    print(f"files: {', '.join(map(str, files)) or '(none)'}")
    print("written/planned per emotion:")
    cells = [f"{e} {written[e]}/{planned[e]}" for e in shown]
    for k in range(0, len(cells), 6):
        print("  " + ", ".join(cells[k : k + 6]))
    done, todo = sum(written[e] for e in shown), sum(planned[e] for e in shown)
    complete = sum(written[e] >= planned[e] for e in shown)
    print(f"total: {done}/{todo} stories, {complete}/{len(shown)} emotions complete")
    for w in report.warnings[: args.max_warnings]:
        print(w)
    if len(report.warnings) > args.max_warnings:
        print(f"... and {len(report.warnings) - args.max_warnings} more warnings")
    for e in report.errors:
        print(e)
    print(f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
