"""Build data/emotions.csv: the course's emotion words, families, forbidden words and NRC VAD ratings.

Run once by the maintainers (needs ../shared/reference/nrc_vad_v1); the CSV is committed.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

FAMILIES: dict[str, list[str]] = {
    "joy and excitement": ["happy", "excited", "thrilled", "delighted", "euphoric", "amused", "playful"],
    "calm and contentment": ["calm", "relaxed", "serene", "peaceful", "relieved", "satisfied", "refreshed"],
    "love and connection": ["loving", "grateful", "compassionate", "nostalgic", "sympathetic", "infatuated"],
    "pride and inspiration": ["proud", "inspired", "hopeful", "triumphant", "eager", "fulfilled"],
    "surprise and confusion": ["surprised", "amazed", "shocked", "bewildered", "puzzled"],
    "fear and anxiety": ["afraid", "nervous", "terrified", "anxious", "worried", "panicked", "paranoid"],
    "anger and disgust": ["angry", "furious", "irritated", "frustrated", "resentful", "jealous", "disgusted"],
    "sadness and loss": ["sad", "heartbroken", "lonely", "gloomy", "miserable", "melancholy"],
    "shame and guilt": ["guilty", "ashamed", "embarrassed", "humiliated", "regretful"],
    "strain and fatigue": ["desperate", "trapped", "overwhelmed", "stressed", "tired", "bored"],
}
CORE = {"happy", "sad", "afraid", "angry", "calm", "desperate", "loving", "guilty", "proud", "nervous", "surprised", "inspired"}
FORBIDDEN: dict[str, list[str]] = {
    "happy": ["happy", "happier", "happiest", "happily", "happiness", "unhappy"],
    "excited": ["excited", "exciting", "excitement", "excite", "excitedly"],
    "thrilled": ["thrilled", "thrill", "thrilling", "thrills"],
    "delighted": ["delighted", "delight", "delightful", "delights"],
    "euphoric": ["euphoric", "euphoria", "ecstatic", "elated"],
    "amused": ["amused", "amusing", "amusement"],
    "playful": ["playful", "playfully", "playfulness"],
    "calm": ["calm", "calmer", "calmly", "calmness", "calming", "calmed"],
    "relaxed": ["relaxed", "relax", "relaxing", "relaxation"],
    "serene": ["serene", "serenity", "serenely", "tranquil", "tranquility"],
    "peaceful": ["peaceful", "peace", "peacefully"],
    "relieved": ["relieved", "relief"],
    "satisfied": ["satisfied", "satisfaction", "satisfying", "satisfy"],
    "refreshed": ["refreshed", "refreshing", "refresh", "rejuvenated"],
    "loving": ["loving", "love", "loved", "loves", "lovingly"],
    "grateful": ["grateful", "gratitude", "gratefully", "thankful"],
    "compassionate": ["compassionate", "compassion"],
    "nostalgic": ["nostalgic", "nostalgia"],
    "sympathetic": ["sympathetic", "sympathy", "sympathize", "sympathise"],
    "infatuated": ["infatuated", "infatuation", "smitten"],
    "proud": ["proud", "pride", "proudly"],
    "inspired": ["inspired", "inspiration", "inspiring", "inspire"],
    "hopeful": ["hopeful", "hope", "hopes", "hoped", "hoping", "hopefully"],
    "triumphant": ["triumphant", "triumph", "triumphantly"],
    "eager": ["eager", "eagerly", "eagerness"],
    "fulfilled": ["fulfilled", "fulfillment", "fulfilment", "fulfilling"],
    "surprised": ["surprised", "surprise", "surprising", "surprisingly"],
    "amazed": ["amazed", "amazing", "amazement"],
    "shocked": ["shocked", "shock", "shocking"],
    "bewildered": ["bewildered", "bewilderment", "bewildering"],
    "puzzled": ["puzzled", "puzzling", "puzzlement"],
    "afraid": ["afraid", "fear", "fears", "feared", "fearful", "scared", "frightened"],
    "nervous": ["nervous", "nervously", "nervousness", "jittery"],
    "terrified": ["terrified", "terror", "terrifying"],
    "anxious": ["anxious", "anxiety", "anxiously"],
    "worried": ["worried", "worry", "worrying", "worries"],
    "panicked": ["panicked", "panic", "panicking"],
    "paranoid": ["paranoid", "paranoia"],
    "angry": ["angry", "anger", "angrily", "angered"],
    "furious": ["furious", "furiously", "fury", "rage", "enraged"],
    "irritated": ["irritated", "irritation", "irritating", "annoyed", "annoyance"],
    "frustrated": ["frustrated", "frustration", "frustrating"],
    "resentful": ["resentful", "resentment", "resent", "resented"],
    "jealous": ["jealous", "jealousy", "envious", "envy"],
    "disgusted": ["disgusted", "disgust", "disgusting"],
    "sad": ["sad", "sadness", "sadly", "sorrow"],
    "heartbroken": ["heartbroken", "heartbreak", "heartbreaking"],
    "lonely": ["lonely", "loneliness", "lonesome"],
    "gloomy": ["gloomy", "gloom"],
    "miserable": ["miserable", "misery"],
    "melancholy": ["melancholy", "melancholic"],
    "guilty": ["guilty", "guilt"],
    "ashamed": ["ashamed", "shame", "shameful"],
    "embarrassed": ["embarrassed", "embarrassing", "embarrassment"],
    "humiliated": ["humiliated", "humiliation", "humiliating"],
    "regretful": ["regretful", "regret", "regrets", "regretted"],
    "desperate": ["desperate", "desperately", "desperation"],
    "trapped": ["trapped", "trap"],
    "overwhelmed": ["overwhelmed", "overwhelming"],
    "stressed": ["stressed", "stress", "stressful"],
    "tired": ["tired", "tiredness", "exhausted", "exhaustion"],
    "bored": ["bored", "boring", "boredom"],
}


def read_scores(path: Path) -> dict[str, float]:
    """Read one NRC VAD score file (word<TAB>score)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, score = line.split("\t")
        out[word] = float(score)
    return out


def main(nrc_dir: Path, out: Path) -> None:
    """Write the emotions table."""
    v, a, d = (read_scores(nrc_dir / f"{k}.scores") for k in "vad")
    assert set(FORBIDDEN) == {e for es in FAMILIES.values() for e in es}
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "family", "core", "valence", "arousal", "dominance", "forbidden"])
        for family, emotions in FAMILIES.items():
            for e in emotions:
                fmt = lambda s, e=e: f"{s[e]:.3f}" if e in s else ""  # noqa: E731
                w.writerow([e, family, e in CORE, fmt(v), fmt(a), fmt(d), " ".join(FORBIDDEN[e])])


if __name__ == "__main__":
    nrc = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/reference/nrc_vad_v1")
    main(nrc, Path("data/emotions.csv"))
