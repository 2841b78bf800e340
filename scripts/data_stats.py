"""Print the corpus figures quoted in data/README.md (counts, lengths, the bag-of-words baseline)."""

from __future__ import annotations

from course_utils import data
from course_utils.probes import bag_of_words_baseline


def main() -> None:
    s = data.load_stories()
    e = data.load_emotions()
    words = s.text.str.split().str.len()
    print(
        f"stories: {len(s)} ({(s.split == 'train').sum()} train / {(s.split == 'test').sum()} test), "
        f"{s.emotion.nunique()} emotions, {s.topic.nunique()} premises, "
        f"first person {(s.person == 'first').mean():.0%}, words {words.min()}-{words.max()} (median {words.median():.0f})"
    )
    print(
        f"emotions: {len(e)} in {e.family.nunique()} families, {e.core.sum()} core, "
        f"{e.valence.notna().sum()} with NRC VAD ratings"
    )
    for name in ("neutral", *data.SCENARIOS):
        df = data.load_neutral() if name == "neutral" else data.load_scenarios(name)
        print(f"{name}: {len(df)} records")
    for subset in ("core", None):
        acc, chance = bag_of_words_baseline(emotions=subset)
        print(f"bag-of-words baseline ({subset or 'all'} emotions): test accuracy {acc:.3f} (chance {chance:.3f})")


if __name__ == "__main__":
    main()
