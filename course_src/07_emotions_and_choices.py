# %% [markdown]
# # 07 · Emotions and choices
#
# **Time:** about 25 minutes (the full run takes about 2.5 minutes on a 2-core laptop) ·
# **Before this:** `06_steering`
#
# **Joining here?** Set `FAST = True` in the parameters cell: the notebook then loads the
# precomputed emotion vectors of the bundled model (`data/precomputed/`) and runs on 16 activities.
#
# Notebook 06 showed that steering changes what the model *says* a character feels. Does an emotion
# direction also relate to what the model *chooses*? The paper asked a model which of two activities
# it would rather do, fitted a preference score per activity, and found that the activation of
# positive emotion vectors on an activity predicted the model preferring it, and that steering with
# them moved the preference (Sofroniew et al., 2026, section "Preferences"; for example, "blissful"
# r = 0.71 and "hostile" r = -0.74 between activation and preference). Here we build the same
# pipeline for a 135M model: a preference measure, its reliability, a reading test and a steering test,
# each with its control.
#
# **Learning goals**
# 1. Measure a preference with log-probabilities, in both orders, and fit Bradley-Terry scores.
# 2. Check a measure before using it: position bias, split-half reliability, agreement with labels.
# 3. Test whether emotion directions *predict* preferences (reading) and *change* them (steering on
#    one option's tokens only), against random directions, other emotion vectors and a positive control.

# %% tags=["parameters"]
# None means the bundled SmolLM2-135M-Instruct, offline. Or any Hugging Face model id.
MODEL_NAME = None
# True runs MODEL_NAME on NDIF (needs NDIF_API_KEY).
REMOTE = False
# True gives the smallest run (tests, weak laptops) and loads precomputed emotion vectors, so you can start here.
# None (the default) follows the COURSE_FAST environment variable: `make lab FAST=1` sets it for a whole room.
FAST = None
# Random directions and other emotion vectors used as the steering nulls.
N_RANDOM = 4
N_OTHER = 4

# %%
from course_utils.paths import fast_mode

FAST = fast_mode(FAST)

# %% [markdown]
# ## Decided before any number (pre-registration)
# Everything below was fixed before the first preference number was computed, and is not changed
# after looking (if it ever is, this cell says so).
# - **Question** (`preferences.QUESTION`): *"Which would you rather do? (A) ... (B) ... Answer with A
#   or B."* as the user's message; the measure is log p("A") - log p("B") of the assistant's first
#   token. Every pair is asked in both orders: **preference** = half the difference (the position
#   cancels), **position bias** = half the sum.
# - **Design**: 64 activities of `data/activities.jsonl`, half pleasant by our own labels (written
#   before any model was run); every activity in 4 pairs: the activities are shuffled and joined into
#   two cycles (each next to its neighbour, then to the one three places on), one cycle per split
#   half. Scores: Bradley-Terry, fitted by logistic regression on the soft outcomes.
# - **Reliability rule**: the preference scores are called *reliable* if the Spearman-Brown corrected
#   split-half correlation is at least 0.5.
# - **Readout**: each emotion vector's cosine score on the sentence *"This afternoon I will
#   <activity>."* (mean over its tokens after the first three, from the vectors' origin: the same
#   readout as the stories the vectors came from). An emotion **predicts** preference if the 95%
#   interval of its correlation excludes 0 *and* |r| is above the 95th percentile of random
#   directions read the same way.
# - **Steering**: the direction is added at the layer of the vectors, **only on the tokens of one
#   option**, to the first activity of each pair, in both orders, at strengths +s and -s. The effect
#   is half the change of that activity's preference from -s to +s. Emotions under test: **happy**
#   and **angry** (the nearest of our core emotions to the paper's "blissful" and "hostile").
# - **Strength rule**: the course's fluency rule (`steering.fluency_safe_strength`, as in 06 and 08):
#   the largest of 1.0, 0.5, 0.25, 0.1 at which the steered prompts still answer with a letter:
#   log(p(A) + p(B)) drops by at most 0.5 nats on average, for both emotions and signs. It uses no
#   preference number.
# - **Positive control**: a "preferred minus dispreferred" direction (mean activation of the top half
#   minus the bottom half by preference score) built on one half of the activities and tested on
#   pairs of the other half, with the same strength and measure.
# - **Steering verdict**: an effect "moves preference" if its interval excludes 0 and it lies outside
#   the 95% band of the nulls (random directions and other emotion vectors, each with both signs).
#   With 8 null directions (16 values) that band's edge is close to their largest effect, so the
#   notebook also prints each effect as a multiple of the band's edge: 1.01 is a hair, 3 is clear.
#   The expected signs are + for happy and for the positive control, - for angry.
#
# *Changed after looking:* the sentence about expected signs, and the printed line saying whether an
# effect goes the expected way, were added after the first FAST run (16 activities) showed the
# positive control moving the preference the "wrong" way. The rules deciding "moves" are unchanged.
# The pair design was also changed after that run, from randomly drawn cycles to the shuffled cycles
# described above, because the old sampler failed on larger designs (a bug, not a number).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from course_utils.plots import save_figure, setup_style

setup_style()

# %%
from course_utils import checks, extract_activations, load_model
from course_utils.data import load_activities, load_emotions
from course_utils.precomputed import course_vectors
from course_utils.preferences import (
    bradley_terry,
    choice_prompt,
    pair_design,
    pair_logodds,
    positive_control_direction,
    spearman_brown,
    split_half,
    steering_effect,
)
from course_utils.report import record
from course_utils.stats import mean_ci, null_band, pearson_ci, spearman_ci
from course_utils.steering import fluency_safe_strength, random_direction

model = load_model(MODEL_NAME, remote=REMOTE)
vectors = course_vectors(model, fast=FAST)
LAYER = vectors.layer
activities = load_activities()
if FAST:
    activities, N_RANDOM, N_OTHER = activities.head(16), 1, 1  # the file is ordered so that any 8 rows are balanced
names = activities.activity.tolist()
n = len(names)
print(f"layer {LAYER}; {n} activities ({activities.pleasant.sum()} pleasant by our labels)")

# %% [markdown]
# ## 1. The question
# One prompt, and the two character spans of its options (the steering in section 5 uses them).

# %%
prompt, span_a, span_b = choice_prompt(model, names[0], names[1])
print(prompt)
print("option A:", repr(prompt[slice(*span_a)]), "| option B:", repr(prompt[slice(*span_b)]))

# %% [markdown]
# ### Exercise 7 · The answer's log-odds
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 10 minutes
#
# Write `choice_logodds(model, prompt)`: run the prompt through the model with nnsight and return
# log p("A") - log p("B") for the **next** token, as a Python float.
#
# <details><summary>Hint 1 (a nudge)</summary>The answer is the next token, so only the last position's
# logits matter. Turn them into log-probabilities and look up two entries: the token of the letter A and the
# token of the letter B. Take care which token that is: the answer starts a new line, with no space before
# it.</details>
# <details><summary>Hint 2 (the approach)</summary>1. Trace the prompt (<code>model.trace(prompt,
# remote=model.remote)</code> under <code>torch.no_grad()</code>) and keep
# <code>model.output.logits[0, -1]</code> with <code>nnsight.save</code>. 2. After the block,
# <code>torch.log_softmax(logits.float().cpu(), -1)</code>. 3. The ids are
# <code>word_token_id(model, "A", space=False)</code> and the same for <code>"B"</code> (after "assistant"
# and a newline the answer has no leading space); return the difference of the two log-probabilities as a
# Python <code>float</code>.</details>

# %%
import nnsight

from course_utils.models import word_token_id


def choice_logodds(model, prompt: str) -> float:
    """log p("A") - log p("B") of the next token after the prompt."""
    # BEGIN SOLUTION
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        logits = nnsight.save(model.output.logits[0, -1])
    logp = torch.log_softmax(logits.float().cpu(), -1)
    return float(logp[word_token_id(model, "A", space=False)] - logp[word_token_id(model, "B", space=False)])
    # END SOLUTION


# %%
choice_logodds = checks.check_choice_logodds(choice_logodds, model)

# %% [markdown]
# ## 2. Preferences, in both orders
# Every activity meets 4 others; each pair is asked with either activity first.

# %%
PER_ITEM = 4
pairs = pair_design(n, PER_ITEM, seed=0)
if not FAST:
    print(f"{2 * len(pairs)} prompts: about a minute on a 2-core laptop the first time, instant once cached.")
pref = pair_logodds(model, names, pairs)
print(f"{len(pairs)} pairs x 2 orders = {2 * len(pairs)} prompts")
pref.head()

# %% [markdown]
# How often does the model answer with a letter at all, and how much does it favour "A"?

# %%
letter_mass = float(np.exp(pref.letter_logprob).mean())
bias, bias_lo, bias_hi = mean_ci(pref.position_bias)
print(f"p(A) + p(B) on average: {letter_mass:.2f}")
print(f"position bias (log-odds of 'A' whatever it is): {bias:+.2f} [{bias_lo:+.2f}, {bias_hi:+.2f}]")
print(f"pairs where the order decides the answer (ab and ba of the same sign): {np.mean(np.sign(pref.ab) == np.sign(pref.ba)):.0%}")

# %% [markdown]
# Bradley-Terry scores: one number per activity, such that sigmoid(score_a - score_b) matches the
# model's both-orders preference as well as possible.

# %%
bt = bradley_terry(pairs, pref.preference.to_numpy(), n)
activities = activities.assign(score=bt)
activities.sort_values("score")[["activity", "pleasant", "score"]].iloc[[0, 1, 2, -3, -2, -1]]

# %% [markdown]
# ## 3. Is the measure any good?
# Split-half reliability (two disjoint sets of pairs) and agreement with our a-priori labels.

# %%
half1, half2 = split_half(pairs, pref.preference.to_numpy(), n, PER_ITEM)
r_half, r_half_lo, r_half_hi = pearson_ci(half1, half2)
reliability = spearman_brown(r_half)
r_label, r_label_lo, r_label_hi = pearson_ci(activities.pleasant.astype(float), bt)
print(f"split-half r = {r_half:.2f} [{r_half_lo:.2f}, {r_half_hi:.2f}] -> Spearman-Brown reliability {reliability:.2f}")
print(f"correlation with our 'pleasant' label: r = {r_label:+.2f} [{r_label_lo:+.2f}, {r_label_hi:+.2f}]")
RELIABLE = reliability >= 0.5
print("VERDICT:", "the preference scores are reliable (>= 0.5)." if RELIABLE else
      "the preference scores are NOT reliable (< 0.5): read every result below as a test of a noisy measure.")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
axes[0].scatter(half1, half2, s=18)
axes[0].set(title=f"Split halves (r = {r_half:.2f})", xlabel="score from half 1", ylabel="score from half 2")
sns.stripplot(data=activities, x="pleasant", y="score", ax=axes[1], hue="social", palette="colorblind")
axes[1].set(title=f"Scores by our label (r = {r_label:+.2f})", xlabel="pleasant (our label)", ylabel="Bradley-Terry score")
save_figure(fig, "07_reliability")
plt.show()

# %% [markdown]
# ## 4. Reading: do emotion scores on an activity predict the preference?
# Each emotion's cosine score on *"This afternoon I will <activity>."*, correlated with the
# Bradley-Terry scores across activities. Control: random directions read the same way (cosine from
# the same origin).

# %%
sentences = [f"This afternoon I will {a}." for a in names]
acts = extract_activations(model, sentences, layers=[LAYER])[:, 0]  # [activities, d_model]
emo_scores = pd.DataFrame(vectors.cosine(acts).numpy(), columns=vectors.names)  # what vectors.score gives: [activities, emotions]
print(f"emotion scores {tuple(emo_scores.shape)}; activations {tuple(acts.shape)}")

# %%
rows = [(e, *pearson_ci(emo_scores[e], bt)) for e in vectors.names]
reading = pd.DataFrame(rows, columns=["emotion", "r", "low", "high"]).set_index("emotion")
rand = torch.stack([random_direction(model.d_model, 1000 + s) for s in range(200)])  # reading is cheap: 200 of them
rand_r = np.array([np.corrcoef(col, bt)[0, 1] for col in vectors.cosine_to(acts, rand).T.numpy()])  # same statistic
r_cut = float(np.quantile(np.abs(rand_r), 0.95))
reading["predicts"] = (np.sign(reading.low) == np.sign(reading.high)) & (reading.r.abs() > r_cut)
print(f"random directions: 95th percentile of |r| = {r_cut:.2f}")
reading.sort_values("r").iloc[[0, 1, 2, -3, -2, -1]]

# %% [markdown]
# Across emotions: do positive emotions predict preference and negative ones dispreference? The
# correlation of each emotion's r with its human valence rating (NRC VAD).

# %%
valence = load_emotions().set_index("emotion").valence.reindex(reading.index)
rho_val, rho_lo, rho_hi = spearman_ci(valence, reading.r)
print(f"Spearman rho(valence, r) across {len(reading)} emotions: {rho_val:+.2f} [{rho_lo:+.2f}, {rho_hi:+.2f}]")
n_predict = int(reading.predicts.sum())
print(f"VERDICT: {n_predict} of {len(reading)} emotions predict preference beyond random directions;",
      "valence organises the readings (positive emotions, preferred activities)." if rho_lo > 0 else
      "valence does not organise the readings in this run (interval includes 0 or is negative).")

# %%
fig, ax = plt.subplots(figsize=(6, 4))
ax.axhspan(-r_cut, r_cut, color="grey", alpha=0.2, label="95% of random directions")
ax.scatter(valence, reading.r, s=16)
for e in ("happy", "angry", "calm", "sad", "afraid"):
    if e in reading.index:
        ax.annotate(e, (valence[e], reading.r[e]), fontsize=8)
ax.set(title="Does an emotion's reading predict preference?", xlabel="valence (NRC)", ylabel="r with preference score")
ax.legend(loc="upper left")
save_figure(fig, "07_reading")
plt.show()

# %% [markdown]
# ## 5. Steering one option
# Pairs among one half of the activities (the *test* half); the positive control's direction comes
# from the other half. First, the strength, by the rule fixed above.

# %%
rng = np.random.default_rng(1)
order = rng.permutation(n)
build_half, test_half = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
steer_pairs = test_half[pair_design(len(test_half), 2, seed=2)[: len(test_half)]]  # one cycle: each test activity steered once
base = pair_logodds(model, names, steer_pairs)
print(f"{len(steer_pairs)} steered pairs; unsteered letter mass {np.exp(base.letter_logprob).mean():.2f}")

# %%
CANDIDATES = [1.0, 0.5, 0.25, 0.1]
TESTED = [e for e in ("happy", "angry") if e in vectors.names]
check_pairs = steer_pairs[:8]
base_letters = base.letter_logprob[:8].mean()


def letter_drop(c: float) -> float:
    """The largest drop of log(p(A) + p(B)) over the tested emotions and both signs."""
    return max(base_letters - pair_logodds(model, names, check_pairs, vectors[e], layer=LAYER, strength=sgn * c).letter_logprob.mean()
               for e in TESTED for sgn in (1, -1))


STRENGTH = fluency_safe_strength(CANDIDATES, letter_drop, max_drop=0.5)
print(f"chosen strength: {STRENGTH} (x median token norm at layer {LAYER})")

# %% [markdown]
# The effect of one direction: half the change of the steered activity's preference from -s to +s.

# %%
def effect(direction: torch.Tensor) -> np.ndarray:
    """Per steered pair, the change in the steered (first) activity's preference, in nats of log-odds."""
    plus = pair_logodds(model, names, steer_pairs, direction, layer=LAYER, strength=STRENGTH)
    minus = pair_logodds(model, names, steer_pairs, direction, layer=LAYER, strength=-STRENGTH)
    return steering_effect(base, plus, minus)


tested = {e: effect(vectors[e]) for e in TESTED}
print({e: f"{v.mean():+.3f}" for e, v in tested.items()})

# %% [markdown]
# The nulls: random directions, and emotion vectors that are not under test (drawn with a fixed seed).
# Steering along -d at +s is steering along d at -s, so each null direction also gives its mirror.

# %%
others = [e for e in vectors.names if e not in TESTED]
others = [others[i] for i in np.random.default_rng(3).choice(len(others), size=min(N_OTHER, len(others)), replace=False)]
null_random = [effect(random_direction(model.d_model, s)).mean() for s in range(N_RANDOM)]
null_other = [effect(vectors[e]).mean() for e in others]
null = np.array(null_random + null_other)
null = np.r_[null, -null]  # the mirrored directions
band = null_band(null)
print(f"null: {N_RANDOM} random + {len(others)} other emotions ({', '.join(others)}), mirrored; 95% band {band[0]:+.3f} to {band[1]:+.3f}")

# %% [markdown]
# The positive control: a "preferred minus dispreferred" direction from the build half, steered on
# the test half. If it moves the preference and the emotions do not, the null is informative; if it
# does not move either, the measure cannot see an effect of this size.

# %%
control_dir = positive_control_direction(acts, bt, build_half)
tested["positive control"] = effect(control_dir)
summary = pd.DataFrame([(k, *mean_ci(v)) for k, v in tested.items()], columns=["direction", "effect", "low", "high"])
summary["outside_null"] = (summary.effect < band[0]) | (summary.effect > band[1])
summary["moves"] = summary.outside_null & (np.sign(summary.low) == np.sign(summary.high))
display(summary)

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(null, bins=12, color="grey", alpha=0.6, label="nulls (random + other emotions, mirrored)")
for (_, row), colour in zip(summary.iterrows(), sns.color_palette("colorblind")):
    ax.axvline(row.effect, color=colour, lw=2, label=f"{row.direction} {row.effect:+.3f}")
ax.set(title=f"Steering one option at strength {STRENGTH}: change in its preference", xlabel="effect (nats of log-odds)",
       ylabel="count")
ax.legend(fontsize=8)
save_figure(fig, "07_steering")
plt.show()

# %%
EXPECTED_SIGN = {"happy": 1, "angry": -1, "positive control": 1}
by_name = summary.set_index("direction")
for name, row in by_name.iterrows():
    way = "the expected way" if np.sign(row.effect) == EXPECTED_SIGN[name] else "against the expected sign"
    edge = f"{abs(row.effect) / band[1]:.2f} x the band's edge" if band[1] > 0 else "the null band has zero width"
    print(f"{name}: {row.effect:+.3f} [{row.low:+.3f}, {row.high:+.3f}], {'moves' if row.moves else 'does not move'}"
          f" the preference ({way}); |effect| is {edge}")
control_moves = bool(by_name.moves["positive control"])
emotion_moves = [e for e in TESTED if by_name.moves[e]]
if emotion_moves:
    print(f"VERDICT: steering {', '.join(emotion_moves)} on one option moves the preference for it beyond the nulls.")
elif control_moves:
    print("VERDICT: no effect. The positive control moves the preference, so the measure could have shown one:"
          " the emotion directions tested do not change this model's choices at this strength.")
else:
    print("VERDICT: cannot tell. Neither the emotions nor the positive control move the preference beyond the nulls:"
          " this measure cannot detect an effect of this size here.")
if not RELIABLE:
    print("(and the preference scores themselves were not reliable: see section 3)")

# %% [markdown]
# ## Recap
# - A preference measured by log-probabilities must be asked in both orders: the position bias above
#   is larger than most preferences. Bradley-Terry turns pairwise answers into one score per activity.
# - A measure is checked before it is used: split-half reliability and agreement with labels decide
#   how much the rest can say.
# - Reading and steering are different claims, each with its own control: random directions, other
#   emotion vectors, and a positive control that shows whether the measure can move at all.
#
# **Questions**
# 1. Why steer only the tokens of one option rather than the whole prompt?
#    <details><summary>Our answer</summary>Steering the whole prompt pushes both options, the question and the
#    answer position alike. The log-odds could then move for reasons that have nothing to do with liking one
#    activity: a shift in the position bias, in how likely a letter is at all, or in the tone of the reply.
#    And since both options get the same push, it cannot test the paper's idea that an emotion attached to
#    an option makes it preferred. Steering one option's tokens asks exactly that, and asking in both orders
#    (steering the same activity as A and as B) cancels what is left of the position effect.</details>
# 2. The positive control was built on one half of the activities and tested on the other. What would go
#    wrong if it were built and tested on the same activities?
#    <details><summary>Our answer</summary>The direction is a difference of mean activations of liked and
#    disliked activities, so it contains those particular activities: their words, topics and quirks. Steering
#    one of them would add more of its own features, and with so few activities the direction could "work" by
#    fitting them rather than by capturing a general "preferred" direction. The control would then look more
#    powerful than it is, and a null for the emotions would look more convincing than it should. Building on
#    one half and testing on the other is the usual train/test split: it shows whether the direction
#    generalises to activities it never saw.</details>
# 3. If the reading correlations are strong but steering does nothing, what could explain it?
#    <details><summary>Our answer</summary>Reading is a correlation: the emotion direction may track features of
#    the activities (pleasant words, say) that the model does use, but through other directions, so adding
#    this one changes nothing downstream. The choice may also be computed somewhere the steering does not
#    reach as strongly, for example at the answer position from later layers, or later layers may undo the
#    push. The readout context ("This afternoon I will ...") differs from the option's place in the question.
#    And the test may be too weak: a small strength, few pairs, a noisy measure. The positive control and the
#    reliability check tell you which of these last explanations is open in your run.</details>
#
# **Next:** `08_steering_vs_cheating`.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
best = reading.r.abs().idxmax()
record("07_choices", n_activities=n, n_pairs=len(pairs), letter_mass=letter_mass, position_bias=bias,
       split_half_r=r_half, reliability=reliability, label_r=r_label, best_reading_emotion=best,
       best_reading_r=float(reading.r[best]), random_reading_r95=r_cut, valence_rho=rho_val,
       valence_rho_ci=[rho_lo, rho_hi], n_predicting=n_predict, strength=STRENGTH,
       **{f"steer_effect_{k.replace(' ', '_')}": float(v.mean()) for k, v in tested.items()},
       null_effect_band=list(band))
