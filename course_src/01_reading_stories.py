# %% [markdown]
# # 01 · Reading stories: the corpus, the tokens, and the bar a probe must clear
#
# **Time:** about 20 minutes · **Before this:** `00_setup`
#
# The paper's method starts with text: many short stories, each written so that a character feels
# one emotion that is never named. In this notebook you get to know the course's corpus, see what
# the model does with a story token by token, and build the *lexical baseline*: how well a plain
# bag-of-words classifier guesses the emotion. Later, any claim that the model "represents" an
# emotion has to beat this baseline.
#
# **Learning goals**
# 1. Know the corpus: the paper's emotion words in families, stories in many voices (forms, persons,
#    registers, lengths) on shared topics, and fixed splits, one of them in held-out forms.
# 2. See why the emotion word never appears, and check it yourself.
# 3. Read the model's next-token predictions after a story.
# 4. Build the bag-of-words baseline, with its uncertainty.

# %% tags=["parameters"]
# None means the bundled SmolLM2-135M-Instruct, offline. Or any Hugging Face model id.
MODEL_NAME = None
# True runs MODEL_NAME on NDIF (needs NDIF_API_KEY).
REMOTE = False
# True gives the smallest run, used by the tests and by weak laptops.
# None (the default) follows the COURSE_FAST environment variable: `make lab FAST=1` sets it for a whole room.
FAST = None

# %%
from course_utils.paths import fast_mode

FAST = fast_mode(FAST)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from course_utils import chat, checks, load_model
from course_utils.data import forbidden_hits, load_emotions, load_stories
from course_utils.models import tokenize, word_token_id
from course_utils.plots import save_figure, setup_style
from course_utils.probes import accuracy_ci, bag_of_words_probe
from course_utils.report import record
from course_utils.scoring import next_token_logprobs

setup_style()

# %% [markdown]
# ## 1. The emotions
# `data/emotions.csv` lists the paper's emotion words, our families, which 12 are "core" (most
# exercises use those), and human ratings of each word's **valence** (pleasant vs unpleasant) and
# **arousal** (calm vs activated) from the NRC VAD lexicon (Mohammad, 2018). The lexicon does not
# rate every word (multi-word items such as "at ease" are missing): those cells are blank, and every
# analysis against the ratings says how many emotions it uses. We will compare the model's geometry
# with these ratings in notebook 04.

# %%
emotions = load_emotions()
rated = emotions.dropna(subset=["valence", "arousal"])  # words the NRC lexicon lacks have no rating
print(f"{len(emotions)} emotions in {emotions.family.nunique()} families, {emotions.core.sum()} core; "
      f"{len(rated)} rated by people (not rated: {', '.join(sorted(set(emotions.emotion) - set(rated.emotion)))})")
emotions.head(8)

# %%
fig, ax = plt.subplots(figsize=(8, 6))
sns.scatterplot(data=rated, x="valence", y="arousal", hue="family", style="core", s=70, ax=ax)
for row in rated[rated.core].itertuples():
    ax.annotate(row.emotion, (row.valence, row.arousal), xytext=(4, 3), textcoords="offset points", fontsize=9)
ax.set(title=f"The {len(rated)} rated emotion words of {len(emotions)}, rated by people (NRC VAD)",
       xlabel="valence (human rating, 0-1)", ylabel="arousal (human rating, 0-1)")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small")
save_figure(fig, "01_emotions_valence_arousal")
plt.show()

# %% [markdown]
# ## 2. The stories
# The stories are written "in many voices": each has a **form** (narration, dialogue, diary, text
# message, letter, or an address to "you"), a grammatical **person**, a **register** (plain, formal,
# casual, a child's voice) and a **length** (one sentence to two paragraphs). Every emotion has the
# same counts of each, and every topic (a bus stop, a kitchen repair, a school play...) is used by
# many emotions, so neither the form nor the topic of a story gives its emotion away. The core
# emotions have more stories than the others. The splits are fixed in the file:
# - `train`: what vectors and probes are fitted on;
# - `test`: held-out stories in the same forms as train (narration, diary, letter, address);
# - `style_test`: every dialogue and text message, forms never seen in training (each form had its
#   own writer, so these are new voices too).

# %%
stories = load_stories()
per_emotion = stories.groupby("emotion").size()
print(f"{len(stories)} stories: {per_emotion[emotions.emotion[emotions.core]].iloc[0]} for each core emotion, "
      f"{per_emotion.min()} for each other one; {stories.topic.nunique()} shared topics")
print("splits:", stories.split.value_counts().to_dict())
same = all((pd.crosstab(stories.emotion, stories[a]).div(per_emotion / 12, axis=0).nunique() == 1).all()
           for a in ["form", "person", "register", "length"])
print(f"every emotion has the same form, person, register and length counts per 12 stories: {same}")
pd.crosstab(stories.form, stories.split, margins=True)

# %%
for emotion in ["desperate", "calm", "proud"]:
    row = stories[stories.emotion == emotion].iloc[0]
    print(f"--- {emotion} ({row.form}, {row.person} person, {row.register}, {row.length}; topic: {row.topic})\n{row.text}\n")

# %% [markdown]
# ### Why the emotion word never appears
# If a story said "she felt desperate", a model (or a probe) could pick up the *word* rather than
# the *situation*. So the stories convey emotion only through actions, bodies, dialogue and
# circumstances, and every story is checked against its emotion's list of forbidden words (the
# emotion word, its inflections and direct synonyms; a word can be forbidden for several emotions).
# With this many emotions, everyday words such as "kind", "safe" or "content" are emotion names too,
# so a story is checked against its **own** emotion's list. Try it:

# %%
print(forbidden_hits("Her hands shook as she read the letter again."))
print(forbidden_hits("She was terrified, and her fear grew."))
hits = sum(len(forbidden_hits(row.text, emotions=row.emotion)) for row in stories.itertuples())
print(f"forbidden words of their own emotion in all {len(stories)} stories: {hits}")

# %% [markdown]
# ## 3. What the model reads: tokens, and what it predicts next
# The model never sees words, only **tokens**. Let us tokenise the start of a story.

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
story = stories[stories.emotion == "afraid"].iloc[0].text
ids = model.tokenizer(story)["input_ids"]
print(f"{len(story.split())} words -> {len(ids)} tokens")
print([model.tokenizer.decode([i]) for i in ids[:25]])

# %% [markdown]
# Now ask the model, after the story, how the character feels, and read its next-token
# distribution. We compare the probabilities of the 12 core emotion words as the next token: this is
# the model's *behaviour*, before we look inside.

# %%
core = emotions.loc[emotions.core, "emotion"].tolist()
word_ids = [word_token_id(model, w) for w in core]  # first token of " word" (never a BOS token)
print({w: model.tokenizer.decode([i]) for w, i in zip(core, word_ids)})


def feel_prompt(text: str) -> str:
    """A story, the question, and the start of the answer, in the chat template."""
    return chat(model, f"{text}\n\nIn one word, how does the main character feel?") + "The character feels"


def emotion_word_logprobs(texts: list[str]) -> torch.Tensor:
    """Log-probability of each core emotion word as the next token after a story + question: [n, 12]."""
    prompts = [feel_prompt(t) for t in texts]
    # logits_to_keep=1: the unembedding runs for the last position only (the only one we read).
    with torch.no_grad(), model.trace(tokenize(model, prompts), remote=REMOTE, logits_to_keep=1):
        logits = model.output.logits[:, -1].save()
    return torch.log_softmax(logits.float(), -1)[:, word_ids].cpu()


print(emotion_word_logprobs([story]).round(decimals=1))

# %%
test_core = load_stories(split="test", emotions="core", per_emotion=3 if FAST else None)
# The same trace for every test story, from the library: batched by length and cached on disk (a rerun is instant).
lp = next_token_logprobs(model, [feel_prompt(t) for t in test_core.text], word_ids)
assert torch.allclose(lp[:2], emotion_word_logprobs(test_core.text.tolist()[:2]), atol=1e-3)  # our trace agrees
pred = np.array(core)[lp.argmax(1).numpy()]
acc, lo, hi = accuracy_ci(pred == test_core.emotion.values)
print(f"the model names the right core emotion (top-1 of 12 words) for {acc:.0%} of {len(test_core)} test stories "
      f"(95% CI {lo:.0%}-{hi:.0%}; chance {1 / 12:.0%})")
print("how often each word is the model's answer:", {str(k): int(v) for k, v in zip(*np.unique(pred, return_counts=True))})
words, counts = np.unique(pred, return_counts=True)
print(f"its favourite answer, {str(words[counts.argmax()])!r}, is given for {counts.max() / len(pred):.0%} of the stories; "
      f"{len(words)} of the 12 words are ever its answer")

# %% [markdown]
# The two lines above say how varied the model's *answer* is and how often it is right. The rest of the course
# asks a different question: is the emotion present in its *internal state*, even where its answer is poor?

# %% [markdown]
# ## 4. The bar to clear: a bag-of-words baseline
#
# ### Exercise 1 · The lexical baseline
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 10 minutes
#
# Write `bow_accuracy(train, test)`: fit a TF-IDF vectoriser and a logistic regression on the
# *training* stories (`train.text` → `train.emotion`), and return the accuracy on the *test* stories.
# Use scikit-learn: `TfidfVectorizer(sublinear_tf=True, min_df=2)` and `LogisticRegression(max_iter=3000)`
# in a `make_pipeline`.
#
# <details><summary>Hint 1 (stuck on how text becomes numbers?)</summary>The vectoriser turns each story into a
# vector of word weights, and the classifier works on those vectors. Chained in a pipeline, the pair behaves
# like one model that takes raw texts.</details>
# <details><summary>Hint 2 (is your accuracy suspiciously high?)</summary>Which stories does each step see?
# Fitting is learning, vocabulary included: only <code>train</code> may reach <code>.fit</code>, and the test
# stories only <code>.predict</code>. The number to return is a fraction between 0 and 1.</details>

# %%
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def bow_accuracy(train, test) -> float:
    """Accuracy on test stories of a TF-IDF + logistic regression classifier fitted on train stories."""
    # BEGIN SOLUTION
    # Why: the pipeline fits the vocabulary and the weights on the training stories only, so no word of a test story
    # leaks into the model; the mean of a boolean comparison is the accuracy, and float() makes it a plain number.
    clf = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), LogisticRegression(max_iter=3000))
    clf.fit(train.text, train.emotion)
    return float((clf.predict(test.text) == test.emotion).mean())
    # END SOLUTION


# %%
bow_accuracy = checks.check_bow_accuracy(bow_accuracy)

# %% [markdown]
# Now the baseline for the 12 core emotions and for all of them, with a 95% Wilson interval over test
# stories. The classifier's settings were fixed in advance, never tuned on the test split.

# %%
rows = {}
for subset in ["core", None]:
    s = load_stories(emotions=subset)
    train, test = s[s.split == "train"], s[s.split == "test"]
    clf = bag_of_words_probe(train.text, train.emotion)
    correct = clf.predict(test.text) == test.emotion.values
    rows[subset or "all"] = (*accuracy_ci(correct), 1 / s.emotion.nunique())
    print(f"{subset or 'all'} emotions: accuracy {rows[subset or 'all'][0]:.3f} "
          f"(95% CI {rows[subset or 'all'][1]:.3f}-{rows[subset or 'all'][2]:.3f}), chance {1 / s.emotion.nunique():.3f}")

# %% [markdown]
# Which words does the baseline lean on? If they were emotion words, the stories would be leaking the label.
# The cell below prints each core emotion's eight heaviest words, then counts how many are forbidden words of
# their emotion (a leak) and how many are function words (scikit-learn's English stop-word list): words that
# say nothing about a feeling, but whose frequency differs between the emotions' stories (who is in them, how
# they are told). A probe on the model's activations must beat this baseline by a clear margin to show
# something beyond words.

# %%
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

s = load_stories(emotions="core")
clf = bag_of_words_probe(s[s.split == "train"].text, s[s.split == "train"].emotion)
vocab = np.array(clf[0].get_feature_names_out())
tops = {emotion: vocab[np.argsort(-clf[1].coef_[i])[:8]].tolist() for i, emotion in enumerate(clf[1].classes_)}
for emotion, top_words in tops.items():
    print(f"{emotion:>10}: {', '.join(top_words)}")
n_top = sum(len(w) for w in tops.values())
leaks = sum(len(forbidden_hits(" ".join(w), emotions=e)) for e, w in tops.items())
function = sum(word in ENGLISH_STOP_WORDS for w in tops.values() for word in w)
print(f"of these {n_top} words, {leaks} are forbidden words of their emotion and {function} ({function / n_top:.0%}) "
      f"are function words; the other {n_top - function} are content words")

# %% [markdown]
# ## Going further
# 1. **The baseline's confusions.** Build the confusion matrix of the bag-of-words classifier on the core test
#    stories (`sklearn.metrics.ConfusionMatrixDisplay.from_predictions`). Which pairs does it mix up? Keep it
#    for notebook 03, where the probe gets its own matrix.
# 2. **Without function words.** Refit the baseline with `TfidfVectorizer(stop_words="english", ...)`: how much
#    accuracy do the function words carry? Read the top words again.
# 3. **Another question.** Change the question in `emotion_word_logprobs` (e.g. "Which emotion fits this
#    story best?") and rerun the top-1 cell: does the favourite answer change with the wording?

# %% [markdown]
# ## Recap
# - The paper's emotion words, stories in many voices on shared topics, fixed splits (one of them in
#   forms never trained on); no story names its own emotion.
# - The model's direct answer ("The character feels ...") is a weak signal in a model this small.
# - A bag-of-words classifier's accuracy (section 4, with its interval) is the bar for the probes.
#
# **Questions**
# 1. Which pairs of emotions would you expect any classifier to confuse? Why?
#    <details><summary>Our answer</summary>Pairs that are close in valence and arousal and told through the
#    same kinds of situations and bodies: afraid and nervous (racing heart, shaking hands), happy and proud or
#    inspired, sad and guilty, angry and desperate (both agitated). The stories never name the emotion, so a
#    classifier only sees situations and reactions, and neighbouring emotions share many of them; people
#    writing or reading the stories would sometimes disagree too. Check against the confusion matrix of
#    notebook 03: its errors should fall mostly between such neighbours, not at random.</details>
# 2. The baseline's top words include bodies and actions (look at the lists in section 4). Is a model that
#    tracks such words "representing emotion", or just words? What experiment would tell the two apart?
#    <details><summary>Our answer</summary>From the stories alone you cannot tell: in this corpus emotion and
#    body words go together, so anything that tracks one tracks the other. To separate them, break the link.
#    Write test texts that carry the emotion with none of the baseline's top words (only the situation), and
#    texts that use those words in a context where they mean something else ("the bridge was trembling in the
#    wind"). A representation of emotion should follow the situation, and a word detector should follow the
#    words. Notebook 05 does a version of this with conversations that describe a situation and no
#    feelings.</details>
#
# **Next:** `02_extracting_activations`.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
record("01_reading_stories", next_token_top1=acc, next_token_top1_ci=[lo, hi], n_test_stories=len(test_core))
record("01_reading_stories", bow_core=rows["core"][0], bow_core_ci=rows["core"][1:3],
       bow_all=rows["all"][0], bow_all_ci=rows["all"][1:3])
