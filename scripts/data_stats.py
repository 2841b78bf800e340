"""Print the corpus figures quoted in data/README.md: counts, balance tables, size in tokens, the bag-of-words baseline.

    python scripts/data_stats.py            # counts, size in tokens (bundled model's tokenizer), bag-of-words numbers
    python scripts/data_stats.py --stats    # the balance tables (Markdown) of data/stories.jsonl, for the data card

The rules themselves (schema, plan, forbidden words, near-duplicates) live in course_utils.data and its tests.
"""

from __future__ import annotations

import argparse
from collections import Counter

import pandas as pd

from course_utils import data
from course_utils.probes import bag_of_words_probe
from course_utils.stats import accuracy_ci

ATTRIBUTES = ("form", "person", "register", "length", "split")


def table(rows: pd.DataFrame, row_key: str, col_key: str) -> str:
    """A Markdown count table of two fields, with totals."""
    counts = Counter(zip(rows[row_key], rows[col_key]))
    rkeys, cols = list(dict.fromkeys(rows[row_key])), list(dict.fromkeys(rows[col_key]))
    lines = [f"| {row_key} \\ {col_key} | " + " | ".join(cols) + " | all |", "|---" * (len(cols) + 2) + "|"]
    for rk in rkeys:
        vals = [counts[rk, c] for c in cols]
        lines.append(f"| {rk} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    tot = [sum(counts[rk, c] for rk in rkeys) for c in cols]
    lines.append("| all | " + " | ".join(map(str, tot)) + f" | {sum(tot)} |")
    return "\n".join(lines)


def stats(s: pd.DataFrame, e: pd.DataFrame) -> None:
    """The balance tables: each attribute per core and per other emotion, then attribute x attribute."""
    core = set(e.loc[e.core, "emotion"])
    ex_core, ex_other = e.loc[e.core, "emotion"].iloc[0], e.loc[~e.core, "emotion"].iloc[0]
    print(
        f"{len(s)} stories, {s.emotion.nunique()} emotions ({len(core)} core x {(s.emotion == ex_core).sum()}, "
        f"{s.emotion.nunique() - len(core)} others x {(s.emotion == ex_other).sum()}), {s.topic.nunique()} topics\n"
    )
    print("| attribute | value | all | per core emotion | per other emotion |")
    print("|---|---|---|---|---|")
    for field in ATTRIBUTES:
        for v in dict.fromkeys(s[field]):
            n_core, n_other = ((s.emotion == x) & (s[field] == v) for x in (ex_core, ex_other))
            print(f"| {field} | {v} | {(s[field] == v).sum()} | {n_core.sum()} | {n_other.sum()} |")
    print()
    for a, b in (("form", "person"), ("form", "register"), ("form", "length"), ("form", "split"), ("register", "length")):
        print(table(s, a, b), end="\n\n")
    topics_per_emotion = Counter(s.groupby("emotion").topic.nunique())
    per_topic = s.topic.value_counts()
    print(
        f"distinct topics per emotion: {dict(sorted(topics_per_emotion.items()))}; "
        f"stories per topic: {per_topic.min()}-{per_topic.max()}"
    )


def baseline(s: pd.DataFrame, subset: str) -> dict[str, tuple[float, float, float]]:
    """Bag-of-words (TF-IDF + logistic regression, C fixed in advance) trained on train: accuracy with 95% CI per split."""
    train = s[s.split == "train"]
    clf = bag_of_words_probe(train.text, train.emotion)
    out = {}
    for split in ("test", "style_test"):
        held = s[s.split == split]
        out[split] = accuracy_ci(clf.predict(held.text) == held.emotion.to_numpy())
        print(
            f"bag-of-words ({subset}, {s.emotion.nunique()} emotions, chance {1 / s.emotion.nunique():.3f}): "
            f"{split} accuracy {out[split][0]:.3f} [{out[split][1]:.3f}, {out[split][2]:.3f}] on {len(held)} stories"
        )
    return out


def figures(s: pd.DataFrame, e: pd.DataFrame) -> None:
    """Counts, sizes in words and tokens, other-emotion names, the other files, and the bag-of-words numbers."""
    from course_utils import load_model

    words = s.text.str.split().str.len()
    print(
        f"stories: {len(s)} ({', '.join(f'{k} {v}' for k, v in s.split.value_counts().items())}), "
        f"{s.emotion.nunique()} emotions, {s.topic.nunique()} topics, words {words.min()}-{words.max()} "
        f"(median {words.median():.0f}, total {words.sum():,})"
    )
    print(words.groupby(s.length).agg(["min", "median", "max"]).to_string())
    tok = load_model().tokenizer
    tokens = pd.Series([len(tok(t, add_special_tokens=False)["input_ids"]) for t in s.text], index=s.index)
    train = tokens[s.split == "train"].sum()
    print(
        f"tokens (bundled model's tokenizer, no special tokens): {tokens.sum():,} in all, train {train:,}, "
        f"mean {tokens.mean():.1f} a story, {tokens.sum() / words.sum():.2f} a word"
    )
    rated = e.valence.notna() & e.arousal.notna()
    print(f"emotions: {len(e)} in {e.family.nunique()} families, {e.core.sum()} core, {rated.sum()} with NRC VAD ratings")
    others = sum(any(n != r.emotion for n in data.emotion_names_in(r.text)) for r in s.itertuples())
    print(f"stories naming another emotion (allowed; e.g. 'kind', 'safe'): {others}")
    for name in ("neutral", *data.SCENARIOS):
        df = data.load_neutral() if name == "neutral" else data.load_scenarios(name)
        print(f"{name}: {len(df)} records")
    for subset in ("core", None):
        baseline(data.load_stories(emotions=subset), subset or "all")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stats", action="store_true", help="print the balance tables (Markdown) and exit")
    args = ap.parse_args()
    s, e = data.load_stories(), data.load_emotions()
    if args.stats:
        stats(s, e)
    else:
        figures(s, e)


if __name__ == "__main__":
    main()
