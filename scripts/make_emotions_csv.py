"""Build data/emotions.csv: the paper's 171 emotion words, our 14 families, forbidden words, NRC VAD ratings.

The one source of truth for the emotion table (the corpus "in many voices", issue 23). Run once by the maintainers
(needs ../shared/reference/paper_emotion_words.txt and ../shared/reference/nrc_vad_v1); the CSV is committed:

    python scripts/make_emotions_csv.py [REFERENCE_DIR]

Columns: ``emotion, family, core, valence, arousal, dominance, forbidden``.

* ``valence, arousal, dominance``: the NRC VAD v1.0 rating of the word itself (a multi-word item is looked up
  as written, e.g. "at ease"); blank when the lexicon does not rate it. Only these ratings enter the repository,
  never the lexicon.
* ``forbidden``: space-separated; the word, its inflections and derived forms, and its direct synonyms. An entry
  with ``_`` is a phrase (``at_ease`` = the words "at ease" in a row); a hyphenated entry (``grief-stricken``) is
  matched as its parts in a row too. Synonyms: every emotion of a group in SYNONYMS gets the whole word list of
  every other member (afraid forbids scared/scare/scary and frightened/fright/...), so that the names of
  near-identical paper words (scared/afraid/frightened, mad/angry, ...) never appear in each other's stories.
  A word may therefore be forbidden for several emotions.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

FAMILIES: dict[str, list[str]] = {
    "joy and excitement": [
        "happy", "joyful", "cheerful", "pleased", "delighted", "excited", "thrilled", "ecstatic",
        "elated", "euphoric", "exuberant", "jubilant", "blissful", "amused", "playful", "enthusiastic",
    ],
    "energy and alertness": ["energized", "invigorated", "rejuvenated", "refreshed", "stimulated", "vibrant", "aroused", "alert"],
    "calm and contentment": [
        "calm", "relaxed", "serene", "peaceful", "at ease", "content", "satisfied", "relieved", "safe",
        "patient", "reflective", "docile",
    ],
    "love and connection": [
        "loving", "kind", "compassionate", "empathetic", "sympathetic", "grateful", "thankful", "infatuated",
        "nostalgic", "sentimental",
    ],
    "pride and inspiration": [
        "proud", "inspired", "hope", "hopeful", "optimistic", "triumphant", "eager", "fulfilled",
        "self-confident", "valiant", "smug",
    ],
    "surprise and confusion": [
        "surprised", "amazed", "astonished", "awestruck", "dumbstruck", "shocked", "bewildered", "puzzled",
        "perplexed", "mystified", "disoriented",
    ],
    "fear and alarm": [
        "afraid", "scared", "frightened", "terrified", "horrified", "panicked", "hysterical", "alarmed",
        "shaken", "rattled", "unnerved",
    ],
    "anxiety and suspicion": [
        "nervous", "anxious", "worried", "on edge", "tense", "uneasy", "restless", "unsettled", "disturbed",
        "troubled", "paranoid", "suspicious", "skeptical", "vigilant",
    ],
    "anger and disgust": [
        "angry", "mad", "furious", "enraged", "irate", "outraged", "indignant", "offended", "insulted",
        "irritated", "annoyed", "grumpy", "exasperated", "frustrated", "impatient", "disgusted",
    ],
    "hostility and contempt": [
        "hateful", "hostile", "spiteful", "vengeful", "vindictive", "bitter", "resentful", "contemptuous",
        "disdainful", "scornful", "jealous", "envious", "greedy", "defiant", "stubborn", "obstinate",
    ],
    "sadness and loss": [
        "sad", "unhappy", "upset", "hurt", "heartbroken", "grief-stricken", "lonely", "gloomy", "miserable",
        "melancholy", "depressed", "dispirited", "brooding", "sullen",
    ],
    "shame and guilt": [
        "guilty", "ashamed", "embarrassed", "humiliated", "mortified", "regretful", "remorseful", "sorry",
        "self-conscious", "self-critical", "worthless", "vulnerable", "sensitive",
    ],
    "strain and distress": ["desperate", "trapped", "stuck", "overwhelmed", "stressed", "distressed", "tormented", "dependent"],
    "low energy": [
        "tired", "weary", "worn out", "sleepy", "sluggish", "droopy", "lazy", "listless", "bored",
        "indifferent", "resigned",
    ],
}  # fmt: skip
CORE = {"happy", "sad", "afraid", "angry", "calm", "desperate", "loving", "guilty", "proud", "nervous", "surprised", "inspired"}

# The word, its inflections and derived forms (and, from the first 62, the synonyms data/emotions.csv already had).
WORDS: dict[str, str] = {
    # the 62 lists of data/emotions.csv, kept (some extended)
    "happy": "happy happier happiest happily happiness unhappy",
    "excited": "excited exciting excitement excite excitedly",
    "thrilled": "thrilled thrill thrilling thrills",
    "delighted": "delighted delight delightful delights",
    "euphoric": "euphoric euphoria ecstatic elated",
    "amused": "amused amusing amusement",
    "playful": "playful playfully playfulness",
    "calm": "calm calmer calmly calmness calming calmed",
    "relaxed": "relaxed relax relaxing relaxation",
    "serene": "serene serenity serenely tranquil tranquility",
    "peaceful": "peaceful peace peacefully",
    "relieved": "relieved relief",
    "satisfied": "satisfied satisfaction satisfying satisfy",
    "refreshed": "refreshed refreshing refresh rejuvenated",
    "loving": "loving love loved loves lovingly",
    "grateful": "grateful gratitude gratefully thankful",
    "compassionate": "compassionate compassion",
    "nostalgic": "nostalgic nostalgia",
    "sympathetic": "sympathetic sympathy sympathize sympathise",
    "infatuated": "infatuated infatuation smitten",
    "proud": "proud pride proudly",
    "inspired": "inspired inspiration inspiring inspire",
    "hopeful": "hopeful hope hopes hoped hoping hopefully",
    "triumphant": "triumphant triumph triumphantly",
    "eager": "eager eagerly eagerness",
    "fulfilled": "fulfilled fulfillment fulfilment fulfilling",
    "surprised": "surprised surprise surprising surprisingly",
    "amazed": "amazed amazing amazement",
    "shocked": "shocked shock shocking",
    "bewildered": "bewildered bewilderment bewildering",
    "puzzled": "puzzled puzzling puzzlement",
    "afraid": "afraid fear fears feared fearful scared frightened",
    "nervous": "nervous nervously nervousness jittery",
    "terrified": "terrified terror terrifying petrified",
    "anxious": "anxious anxiety anxiously",
    "worried": "worried worry worrying worries",
    "panicked": "panicked panic panicking panicky",
    "paranoid": "paranoid paranoia",
    "angry": "angry anger angrily angered angrier angriest",
    "furious": "furious furiously fury rage enraged",
    "irritated": "irritated irritation irritating annoyed annoyance",
    "frustrated": "frustrated frustration frustrating",
    "resentful": "resentful resentment resent resented",
    "jealous": "jealous jealousy envious envy",
    "disgusted": "disgusted disgust disgusting",
    "sad": "sad sadness sadly sorrow",
    "heartbroken": "heartbroken heartbreak heartbreaking",
    "lonely": "lonely loneliness lonesome",
    "gloomy": "gloomy gloom",
    "miserable": "miserable misery",
    "melancholy": "melancholy melancholic",
    "guilty": "guilty guilt",
    "ashamed": "ashamed shame shameful",
    "embarrassed": "embarrassed embarrassing embarrassment",
    "humiliated": "humiliated humiliation humiliating",
    "regretful": "regretful regret regrets regretted",
    "desperate": "desperate desperately desperation",
    "trapped": "trapped trap",
    "overwhelmed": "overwhelmed overwhelming",
    "stressed": "stressed stress stressful",
    "tired": "tired tiredness exhausted exhaustion",
    "bored": "bored boring boredom",
    # the other 109 paper words
    "joyful": "joyful joyfully joy joys joyous",
    "cheerful": "cheerful cheerfully cheerfulness cheery cheer cheered cheering cheers",
    "pleased": "pleased pleasing pleasure pleasurable glad gladly",
    "ecstatic": "ecstatic ecstatically ecstasy",
    "elated": "elated elation",
    "exuberant": "exuberant exuberantly exuberance",
    "jubilant": "jubilant jubilantly jubilation",
    "blissful": "blissful blissfully bliss",
    "enthusiastic": "enthusiastic enthusiastically enthusiasm enthusiast",
    "energized": "energized energised energizing energising energetic energy",
    "invigorated": "invigorated invigorating invigorate",
    "rejuvenated": "rejuvenated rejuvenating rejuvenate",
    "stimulated": "stimulated stimulating stimulation stimulate",
    "vibrant": "vibrant vibrantly vibrancy",
    "aroused": "aroused arousal arouse arousing",
    "alert": "alert alertly alertness",
    "at ease": "at_ease ease eased",
    "content": "content contented contentedly contentment",
    "safe": "safe safely safety secure",
    "patient": "patient patiently patience",
    "reflective": "reflective reflect reflected reflecting reflection reflections pensive contemplative",
    "docile": "docile docility meek meekly submissive",
    "kind": "kind kinder kindest kindly kindness",
    "empathetic": "empathetic empathic empathy empathize empathise",
    "thankful": "thankful thankfully thankfulness",
    "sentimental": "sentimental sentimentally sentimentality",
    "hope": "hope hopes hoped hoping hopeful hopefully",
    "optimistic": "optimistic optimistically optimism optimist",
    "self-confident": "self-confident self-confidence confident confidently confidence self-assured",
    "valiant": "valiant valiantly valour valor brave bravely bravery courage courageous",
    "smug": "smug smugly smugness",
    "astonished": "astonished astonishing astonishingly astonishment astonish",
    "awestruck": "awestruck awe awed awesome",
    "dumbstruck": "dumbstruck dumbfounded speechless",
    "perplexed": "perplexed perplexing perplexity",
    "mystified": "mystified mystifying mystify baffled baffling",
    "disoriented": "disoriented disorientated disorientation disorienting",
    "scared": "scared scare scares scary scaring",
    "frightened": "frightened frighten frightens frightening fright frightful",
    "horrified": "horrified horrify horrifying horrific horror horrors",
    "hysterical": "hysterical hysterically hysteria hysterics",
    "alarmed": "alarmed alarm alarming alarmingly alarms",
    "shaken": "shaken",
    "rattled": "rattled",
    "unnerved": "unnerved unnerving unnerve",
    "on edge": "on_edge edgy",
    "tense": "tense tensed tensely tension",
    "uneasy": "uneasy uneasily uneasiness unease",
    "restless": "restless restlessly restlessness fidgety",
    "unsettled": "unsettled unsettling unsettle",
    "disturbed": "disturbed disturbing disturb disturbs disturbance",
    "troubled": "troubled troubling",
    "suspicious": "suspicious suspiciously suspicion suspicions distrust distrustful mistrust",
    "skeptical": "skeptical sceptical skeptically sceptically skepticism scepticism skeptic sceptic doubtful",
    "vigilant": "vigilant vigilantly vigilance watchful",
    "mad": "mad madder maddest madly madness maddening",
    "enraged": "enraged enrage rage raged raging",
    "irate": "irate irately",
    "outraged": "outraged outrage outrages outrageous",
    "indignant": "indignant indignantly indignation",
    "offended": "offended offend offends offence offense offensive",
    "insulted": "insulted insult insults insulting",
    "annoyed": "annoyed annoy annoys annoying annoyance",
    "grumpy": "grumpy grumpily grumpiness grouchy cranky",
    "exasperated": "exasperated exasperating exasperation exasperate",
    "impatient": "impatient impatiently impatience",
    "hateful": "hateful hate hates hated hating hatred",
    "hostile": "hostile hostility hostilities",
    "spiteful": "spiteful spitefully spite",
    "vengeful": "vengeful vengeance revenge avenge avenged",
    "vindictive": "vindictive vindictively vindictiveness",
    "bitter": "bitter bitterly bitterness",
    "contemptuous": "contemptuous contemptuously contempt",
    "disdainful": "disdainful disdainfully disdain disdained",
    "scornful": "scornful scornfully scorn scorned",
    "envious": "envious enviously envy envied",
    "greedy": "greedy greedily greed",
    "defiant": "defiant defiantly defiance defy defied defying",
    "stubborn": "stubborn stubbornly stubbornness",
    "obstinate": "obstinate obstinately obstinacy",
    "unhappy": "unhappy unhappily unhappiness happy happiness",
    "upset": "upset upsets upsetting",
    "hurt": "hurt hurts hurting hurtful",
    "grief-stricken": "grief-stricken grief grieve grieves grieved grieving",
    "depressed": "depressed depressing depression depressive",
    "dispirited": "dispirited dispiriting disheartened disheartening downhearted discouraged",
    "brooding": "brooding brood broods brooded",
    "sullen": "sullen sullenly sulky sulk sulks sulked sulking",
    "mortified": "mortified mortifying mortification",
    "remorseful": "remorseful remorsefully remorse",
    "sorry": "sorry",
    "self-conscious": "self-conscious self-consciously self-consciousness",
    "self-critical": "self-critical self-criticism",
    "worthless": "worthless worthlessness useless",
    "vulnerable": "vulnerable vulnerability",
    "sensitive": "sensitive sensitivity oversensitive",
    "stuck": "stuck",
    "distressed": "distressed distressing distress",
    "tormented": "tormented tormenting torment torments",
    "dependent": "dependent dependant dependence dependency reliant reliance",
    "weary": "weary wearily weariness",
    "worn out": "worn_out",
    "sleepy": "sleepy sleepily sleepiness drowsy drowsiness",
    "sluggish": "sluggish sluggishly sluggishness",
    "droopy": "droopy droop droops drooped drooping",
    "lazy": "lazy lazily laziness",
    "listless": "listless listlessly listlessness lethargic lethargy",
    "indifferent": "indifferent indifferently indifference apathetic apathy",
    "resigned": "resigned resignation",
}

# Groups of direct synonyms among the 171 words: each member forbids the others' whole word lists.
SYNONYMS: list[list[str]] = [
    ["afraid", "scared", "frightened"],
    ["angry", "mad"],
    ["furious", "enraged", "irate"],
    ["irritated", "annoyed"],
    ["hope", "hopeful", "optimistic"],
    ["content", "satisfied", "pleased"],
    ["sorry", "regretful", "remorseful"],
    ["thankful", "grateful"],
    ["happy", "joyful"],
    ["sad", "unhappy"],
    ["euphoric", "ecstatic", "elated"],
    ["refreshed", "rejuvenated"],
    ["energized", "invigorated"],
    ["tired", "weary", "worn out"],
    ["jealous", "envious"],
    ["calm", "serene", "peaceful"],
    ["relaxed", "at ease"],
    ["compassionate", "sympathetic", "empathetic"],
    ["surprised", "astonished", "amazed"],
    ["astonished", "dumbstruck"],
    ["bewildered", "puzzled", "perplexed", "mystified"],
    ["nervous", "on edge"],
    ["anxious", "worried"],
    ["uneasy", "unsettled"],
    ["rattled", "shaken", "unnerved"],
    ["offended", "insulted"],
    ["contemptuous", "disdainful", "scornful"],
    ["vengeful", "vindictive"],
    ["bitter", "resentful"],
    ["stubborn", "obstinate"],
    ["heartbroken", "grief-stricken"],
    ["embarrassed", "mortified"],
    ["humiliated", "mortified"],
    ["trapped", "stuck"],
    ["nostalgic", "sentimental"],
    ["alert", "vigilant"],
]


def forbidden_lists() -> dict[str, list[str]]:
    """Emotion -> its forbidden entries: its own words, then each synonym's words (no repeats, phrases with '_')."""
    out = {}
    for e, words in WORDS.items():
        entries = words.split()
        for group in SYNONYMS:
            if e in group:
                for other in group:
                    entries += WORDS[other].split()
        entries.insert(0, e.replace(" ", "_"))
        out[e] = list(dict.fromkeys(entries))
    return out


def read_scores(path: Path) -> dict[str, float]:
    """Read one NRC VAD score file (word<TAB>score)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, score = line.split("\t")
        out[word] = float(score)
    return out


def main(reference: Path, out: Path) -> None:
    """Write the 171-emotion table (families in the order above, emotions in family order)."""
    paper = [w.strip() for w in (reference / "paper_emotion_words.txt").read_text(encoding="utf-8").splitlines() if w.strip()]
    listed = [e for es in FAMILIES.values() for e in es]
    assert len(paper) == 171 and len(set(paper)) == 171, "expected the paper's 171 words"
    assert sorted(listed) == sorted(paper), (sorted(set(paper) - set(listed)), sorted(set(listed) - set(paper)))
    assert set(WORDS) == set(paper), sorted(set(WORDS) ^ set(paper))
    assert CORE <= set(paper)
    for group in SYNONYMS:
        assert set(group) <= set(paper), group
    forbidden = forbidden_lists()
    v, a, d = (read_scores(reference / "nrc_vad_v1" / f"{k}.scores") for k in "vad")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["emotion", "family", "core", "valence", "arousal", "dominance", "forbidden"])
        for family, emotions in FAMILIES.items():
            for e in emotions:
                fmt = lambda s, e=e: f"{s[e]:.3f}" if e in s else ""  # noqa: E731
                w.writerow([e, family, e in CORE, fmt(v), fmt(a), fmt(d), " ".join(forbidden[e])])
    rated = sum(e in v for e in paper)
    print(f"wrote {out}: {len(paper)} emotions in {len(FAMILIES)} families, {len(CORE)} core, {rated} with NRC VAD ratings")


if __name__ == "__main__":
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/reference")
    main(ref, Path("data/emotions.csv"))
