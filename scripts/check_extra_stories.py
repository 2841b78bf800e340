"""Check a file of extra test stories line by line and print every problem at once (the loaders stop at the first).

python scripts/check_extra_stories.py data/new_words_stories.jsonl            # schema from the file name
python scripts/check_extra_stories.py draft.jsonl --schema new_words_stories
python scripts/check_extra_stories.py --markers afraid                        # the marker words to avoid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from course_utils import data

SCHEMAS = ("situation_stories", "new_words_stories")


def problems(path: Path, schema: str) -> list[str]:
    """Every problem of every line: record rules, unknown topic, duplicate id, near-duplicates (with the corpus)."""
    out, records, lines = [], [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(data.check_record(json.loads(line), schema, path=path, line=n, emotions=data.emotion_names()))
            lines.append(n)
        except (data.DataError, json.JSONDecodeError) as e:
            out.append(str(e))
    ids = [r["id"] for r in records]
    out += [f"{path}, line {n}: duplicate id {r['id']!r}" for n, r in zip(lines, records) if ids.count(r["id"]) > 1]
    if records:
        out += [str(e) for e in data.extra_split_problems(pd.DataFrame(records), path, lines)]
    return out


def main() -> None:
    """Print the problems of a file (exit 1 if any), or one emotion's marker words."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path)
    parser.add_argument("--schema", choices=SCHEMAS, help="default: the file name's stem")
    parser.add_argument("--markers", metavar="EMOTION", help="print a core emotion's marker words and stop")
    args = parser.parse_args()
    if args.markers:
        print(" ".join(sorted(data.marker_words(args.markers))))
        return
    if args.path is None:
        parser.error("give a path (or --markers EMOTION)")
    schema = args.schema or args.path.stem
    if schema not in SCHEMAS:
        parser.error(f"--schema: {schema!r} is not one of {', '.join(SCHEMAS)} (name the file after one, or pass it)")
    found = problems(args.path, schema)
    print("\n".join(found) or f"{args.path}: no problems")
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()
