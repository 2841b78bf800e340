"""Merge the helpers' reviewed draft files (build/parts/) into the committed data files.

Stories get their fixed split here: story number j of each emotion is "test" when j % 5 == 4 (20%).
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "build" / "parts"
DATA = ROOT / "data"


def merge_stories() -> None:
    """Write data/stories.jsonl in emotions.csv order, then story number."""
    order = [r["emotion"] for r in csv.DictReader(open(DATA / "emotions.csv", encoding="utf-8"))]
    rows = [json.loads(l) for p in sorted(PARTS.glob("stories_*.jsonl")) for l in open(p, encoding="utf-8")]
    rows.sort(key=lambda r: (order.index(r["emotion"]), r["id"]))
    with open(DATA / "stories.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            j = int(r["id"].rsplit("-", 1)[1])
            out = {"id": r["id"], "emotion": r["emotion"], "topic": r["topic"], "person": r["person"],
                   "split": "test" if j % 5 == 4 else "train", "text": " ".join(r["text"].split())}
            f.write(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"stories: {len(rows)}")


def copy_sets() -> None:
    """Copy the dialogue and scenario sets under their course names."""
    for src, dst in [("neutral", "neutral_dialogues"), ("implicit", "implicit"), ("dose", "dose"),
                     ("speakers", "speakers"), ("failures", "failures"), ("cheat", "cheat_scenarios")]:
        if (PARTS / f"{src}.jsonl").exists():
            shutil.copy(PARTS / f"{src}.jsonl", DATA / f"{dst}.jsonl")
            print(dst, sum(1 for _ in open(DATA / f"{dst}.jsonl")))


if __name__ == "__main__":
    copy_sets()
    if len(list(PARTS.glob("stories_*.jsonl"))) == 5:
        merge_stories()
