"""Build data/story_plan.jsonl: one row per story of the corpus "in many voices" (issue 23); merge written stories.

    python scripts/make_story_plan.py                          # reads data/emotions.csv and data/topics.csv
    python scripts/make_story_plan.py --merge FILE [FILE ...]  # plan rows + text -> data/stories.jsonl, validated

The stories were written from this plan by six writers (a plan row plus a ``text`` field each); ``--merge`` checks
every written record against its plan row, sorts them (emotions.csv order, then id) and writes data/stories.jsonl,
then validates the result with course_utils.data (the one set of rules, see its docstring).

Fields: ``id, emotion, topic, person, form, register, length, split``. Deterministic (no randomness): the same
inputs always give the same file. Emotions come in emotions.csv order (index k); each gets ``N = 60`` stories if
core, else ``N = 12``, numbered j = 0..N-1 (id ``<emotion>-<jjj>``, spaces in the emotion as ``_``).

Design. The N stories of an emotion are cut into blocks of 12 (b = j // 12, slot u = j % 12); blocks are numbered
over the whole plan (g = 0..218) and every block holds exactly the same attribute counts, so no attribute (nor
its count) says anything about the emotion:

* form = FORMS[u % 6]: 2 of each form per block (10 per core emotion, 2 per other emotion).
* register = REGISTERS[(u + rho) % 4] with rho = g % 4: 3 of each per block. rho runs fastest, so every form meets
  every register equally often over the corpus.
* length = LENGTHS[(u + sigma) % 12], LENGTHS a fixed 12-cycle of 4 sentence, 4 short, 3 paragraph, 1 long
  (33/33/25/8%: about 63 words a story at the middle of each class), sigma = (g // 24 + 5 * (g % 24)) % 12, so the
  length of a slot moves independently of its form, register and person.
* person: the form "address" is always second person; diary, letter and text_message are mostly first person;
  narration and dialogue mostly third (singular or plural). Within these rules, each block uses one of 6
  templates PERSONS[(g // 4) % 6] (a person for each of the 12 slots), and every template gives 4 first,
  3 second, 3 third, 2 third_plural; over the 6 templates: narration 3/0/5/4 (first/second/third/plural),
  dialogue 3/0/6/3, diary 8/0/3/1, letter 4/3/2/3, text_message 6/3/2/1, address 0/12/0/0 (per 12 slots).
* topic = TOPICS[(7k + 5j) % T] (T = 47 topics, coprime with 5 and 7): an emotion's stories have all different
  topics (a core emotion covers all 47, 13 of them twice), and every topic appears under many emotions.
* split: every story of the forms dialogue and text_message is ``style_test`` (the held-out, style-shifted forms).
  The other stories (narration, diary, letter, address) are numbered i = 0, 1, ... in id order within their
  emotion; story i is ``test`` when (i + k) % 5 == 4, else ``train``: exactly 8 of 40 (20%) for a core emotion,
  1 or 2 of 8 for the others (20% over the corpus), spread over the four forms.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

from course_utils import data
from course_utils.data import FORMS, REGISTERS, STYLE_TEST_FORMS

LENGTHS = ("sentence", "short", "paragraph", "sentence", "short", "long") + ("sentence", "short", "paragraph") * 2
IN_STYLE = tuple(f for f in FORMS if f not in STYLE_TEST_FORMS)  # narration, diary, letter, address
N_CORE, N_OTHER = 60, 12

# Person templates: form -> (person of slot u = form index, person of slot u + 6). 1 first, 2 second, 3 third, P plural.
_TEMPLATES = [
    {"narration": "3P", "dialogue": "13", "diary": "11", "text_message": "3P", "letter": "12", "address": "22"},
    {"narration": "13", "dialogue": "3P", "diary": "13", "text_message": "11", "letter": "2P", "address": "22"},
    {"narration": "3P", "dialogue": "3P", "diary": "11", "text_message": "11", "letter": "23", "address": "22"},
    {"narration": "1P", "dialogue": "33", "diary": "1P", "text_message": "21", "letter": "13", "address": "22"},
    {"narration": "33", "dialogue": "1P", "diary": "13", "text_message": "21", "letter": "1P", "address": "22"},
    {"narration": "1P", "dialogue": "13", "diary": "13", "text_message": "23", "letter": "1P", "address": "22"},
]
_CODE = {"1": "first", "2": "second", "3": "third", "P": "third_plural"}
PERSONS: list[list[str]] = [[_CODE[t[FORMS[u % 6]][u // 6]] for u in range(12)] for t in _TEMPLATES]


def read_emotions(path: Path) -> list[tuple[str, bool]]:
    """(emotion, core) in file order."""
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["emotion"], r["core"] == "True") for r in csv.DictReader(f)]


def read_topics(path: Path) -> list[str]:
    """Topic ids in file order."""
    with path.open(encoding="utf-8", newline="") as f:
        return [r["id"] for r in csv.DictReader(f)]


def story_id(emotion: str, j: int) -> str:
    """The id of story j of an emotion, e.g. 'happy-007', 'at_ease-011'."""
    return f"{emotion.replace(' ', '_')}-{j:03d}"


def make_plan(emotions: list[tuple[str, bool]], topics: list[str]) -> list[dict[str, str]]:
    """All plan rows, emotion by emotion (see the module docstring for the rules)."""
    for person in PERSONS:
        assert Counter(person) == {"first": 4, "second": 3, "third": 3, "third_plural": 2}, person
    assert Counter(LENGTHS) == {"sentence": 4, "short": 4, "paragraph": 3, "long": 1}
    rows, g = [], 0
    for k, (emotion, core) in enumerate(emotions):
        n = N_CORE if core else N_OTHER
        i = 0  # index among the emotion's in-style stories
        for j in range(n):
            u = j % 12
            if u == 0 and j > 0:
                g += 1
            rho, sigma = g % 4, (g // 4) % 12
            template = (sigma + g // 48) % 6
            form = FORMS[u % 6]
            if form in IN_STYLE:
                split = "test" if (i + k) % 5 == 4 else "train"
                i += 1
            else:
                split = "style_test"
            rows.append(
                {
                    "id": story_id(emotion, j),
                    "emotion": emotion,
                    "topic": topics[(7 * k + 5 * j) % len(topics)],
                    "person": PERSONS[template][u],
                    "form": form,
                    "register": REGISTERS[(u + rho) % 4],
                    "length": LENGTHS[(u + sigma) % 12],
                    "split": split,
                }
            )
        g += 1
    return rows


def merge(files: list[Path], root: Path) -> int:
    """Written stories (plan row + text) -> root/stories.jsonl, in emotions.csv order then id; 1 if anything is off."""
    with (root / "story_plan.jsonl").open(encoding="utf-8") as f:
        plan = {r["id"]: r for r in map(json.loads, f)}
    order = {e: k for k, (e, _) in enumerate(read_emotions(root / "emotions.csv"))}
    written, problems = {}, []
    for path in files:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                rec = json.loads(line)
                rid = rec.get("id")
                if rid not in plan:
                    problems.append(f"{path}, line {n}: id {rid!r} is not in the plan")
                elif rid in written:
                    problems.append(f"{path}, line {n}: id {rid!r} written twice")
                elif {k: v for k, v in rec.items() if k != "text"} != plan[rid]:
                    problems.append(f"{path}, line {n}: fields differ from the plan row {plan[rid]}")
                else:
                    written[rid] = {**plan[rid], "text": rec["text"]}
    missing = sorted(set(plan) - set(written))
    if missing:
        problems.append(f"{len(missing)} planned stories not written, e.g. {missing[:5]}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    rows = sorted(written.values(), key=lambda r: (order[r["emotion"]], r["id"]))
    with (root / "stories.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    stories = data.load_stories()
    data.check_corpus(stories)
    print(f"wrote {root / 'stories.jsonl'}: {len(stories)} stories, validated")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Write story_plan.jsonl and print its size, or merge written stories into stories.jsonl."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--merge", nargs="+", type=Path, metavar="FILE", help="written story files to merge")
    ap.add_argument("--root", type=Path, default=Path("data"), help="the data folder")
    args = ap.parse_args(argv)
    root = args.root
    if args.merge:
        return merge(args.merge, root)
    emotions, topics = read_emotions(root / "emotions.csv"), read_topics(root / "topics.csv")
    assert len(topics) % 5 and len(topics) % 7, "the topic count must be coprime with 5 and 7"
    rows = make_plan(emotions, topics)
    with (root / "story_plan.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    splits = Counter(r["split"] for r in rows)
    print(
        f"wrote {root / 'story_plan.jsonl'}: {len(rows)} stories, {len(emotions)} emotions, {len(topics)} topics, {dict(splits)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
