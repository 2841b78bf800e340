# %% [markdown]
# # 07 · Emotions and choices
#
# **Time:** 25 minutes for the core path (sections 1-4); "Going further" holds the rest. How long the cells
# take to run on your machine: `docs/timings.md` · **Before this:** `06_steering`
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
# Random directions in the steering null (their derivatives cost a dot product each) and label permutations.
N_NULL = 10_000
N_PERM = 10_000
# Pilot items (the first N_PILOT activities choose the answer format), and random directions also run exactly.
N_PILOT = 16
N_CHECK = 4

# %%
from course_utils.paths import fast_mode

FAST = fast_mode(FAST)

# %% [markdown]
# ## The rules, fixed before the numbers
# - **Items**: the 64 activities of `data/activities.jsonl`, half pleasant by our labels; the first 16 are
#   the **pilot**, the other 48 the **main** items. Each pair is asked in both orders.
# - **The pilot picks the answer format** (`preferences.FORMATS`): among formats where the order decides
#   fewer than 90% of pairs, the one that agrees best with our labels; if none qualifies, letters.
# - **Validity gate** (main items, before any reading or steering): the order decides fewer than 90% of
#   pairs and the agreement with our labels has a 95% interval above 0. If not, no verdict is printed.
# - **Text control**: the same activity framed "lovely" vs "dreadful"; a measure of choice must prefer lovely.
# - **Steering, primary**: Spearman of every emotion vector's steering derivative with its valence,
#   against 10,000 label permutations; named directions against 10,000 random directions (rank p <= 0.05).

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
from scipy.stats import spearmanr

from course_utils import checks, extract_activations, load_model
from course_utils.data import load_activities, load_emotions
from course_utils.derivatives import agreement, random_directions, slopes
from course_utils.precomputed import course_vectors
from course_utils.preferences import (
    FORMATS,
    bradley_terry,
    choice_prompt,
    pair_design,
    pair_logodds,
    positive_control_direction,
    preference_gradients,
    spearman_brown,
    spearman_permutation_null,
    split_half,
    steering_effect,
)
from course_utils.report import record, record_verdict
from course_utils.stats import mean_ci, pearson_ci, rank_test, spearman_ci
from course_utils.steering import fluency_safe_strength, median_token_norm, random_direction

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
vectors = course_vectors(model, fast=FAST)
LAYER = vectors.layer
activities = load_activities()
if FAST:
    activities, N_PILOT, N_CHECK = activities.head(16), 8, 1  # the file is ordered so that any 8 rows are balanced
TESTED = [e for e in ("happy", "angry") if e in vectors.names]
names = activities.activity.tolist()
print(f"layer {LAYER}; {len(names)} activities ({activities.pleasant.sum()} pleasant by our labels), "
      f"{N_PILOT} of them for the pilot")

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
# <details><summary>Hint 2 (the approach)</summary>Stuck on "the values are gone after the trace"? Inside
# <code>with model.trace(...)</code> the logits are placeholders that nnsight fills in when the block ends, and
# it keeps only what you mark: wrap <code>model.output.logits[0, -1]</code> in <code>nnsight.save</code> inside
# the block, and do the log-softmax and the look-ups after it. For the token ids,
# <code>word_token_id(model, "A", space=False)</code>.</details>

# %%
import nnsight

from course_utils.models import word_token_id


def choice_logodds(model, prompt: str) -> float:
    """log p("A") - log p("B") of the next token after the prompt."""
    # BEGIN SOLUTION
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        logits = nnsight.save(model.output.logits[0, -1])
    logp = torch.log_softmax(logits.float().cpu(), -1)
    # Why: only the last position predicts the answer; log-softmax makes the two entries comparable log-probabilities
    # whatever else the model would say, and the difference of the two is the log-odds of A over B.
    return float(logp[word_token_id(model, "A", space=False)] - logp[word_token_id(model, "B", space=False)])
    # END SOLUTION

# %%
choice_logodds = checks.check_choice_logodds(choice_logodds, model)

# %% [markdown]
# ## 2. The pilot: which answer format measures a choice?
# A 135M model may answer "A" whatever the options are: then the letter's log-odds measures how
# strongly it says "A", not what it prefers. Three formats, each asked in both orders on the pilot
# items; the rule fixed above picks one before the main items are touched.

# %%
PER_ITEM = 4
pilot, main = activities.iloc[:N_PILOT].reset_index(drop=True), activities.iloc[N_PILOT:].reset_index(drop=True)
pilot_pairs = pair_design(len(pilot), PER_ITEM, seed=0)
rows = []
for fmt in FORMATS:
    p = pair_logodds(model, pilot.activity.tolist(), pilot_pairs, fmt=fmt)
    bt_p = bradley_terry(pilot_pairs, p.preference.to_numpy(), len(pilot))
    rows.append({"format": fmt, "order decides": float(np.mean(np.sign(p.ab) == np.sign(p.ba))),
                 "position bias": float(p.position_bias.mean()), "r with label": pearson_ci(pilot.pleasant.astype(float), bt_p)[0]})
formats = pd.DataFrame(rows).set_index("format")
usable = formats[formats["order decides"] < 0.9]
FORMAT = usable["r with label"].idxmax() if len(usable) else "letters"
display(formats.round(2))
print(f"chosen format: {FORMAT!r} (by the rule fixed above, on the {len(pilot)} pilot items only)")

# %% [markdown]
# ## 3. The main items, and the validity gate

# %%
names = main.activity.tolist()
n = len(names)
pairs = pair_design(n, PER_ITEM, seed=0)
if not FAST:
    print(f"{2 * len(pairs)} prompts: see docs/timings.md for this notebook's run time; instant once cached.")
pref = pair_logodds(model, names, pairs, fmt=FORMAT)
bt = bradley_terry(pairs, pref.preference.to_numpy(), n)
main = main.assign(score=bt)
order_decides = float(np.mean(np.sign(pref.ab) == np.sign(pref.ba)))
bias, bias_lo, bias_hi = mean_ci(pref.position_bias)
print(f"{len(pairs)} pairs x 2 orders; the order decides {order_decides:.0%} of pairs; "
      f"position bias {bias:+.2f} [{bias_lo:+.2f}, {bias_hi:+.2f}] log-odds")
main.sort_values("score")[["activity", "pleasant", "score"]].iloc[[0, 1, 2, -3, -2, -1]]

# %%
half1, half2 = split_half(pairs, pref.preference.to_numpy(), n, PER_ITEM)
r_half = pearson_ci(half1, half2)[0]
reliability = spearman_brown(r_half)
r_label, r_label_lo, r_label_hi = pearson_ci(main.pleasant.astype(float), bt)
r_length = pearson_ci([len(a.split()) for a in names], bt)[0]
VALID = order_decides < 0.9 and r_label_lo > 0
print(f"split-half reliability {reliability:.2f}; r with our 'pleasant' label {r_label:+.2f} "
      f"[{r_label_lo:+.2f}, {r_label_hi:+.2f}]; r with the option's length in words {r_length:+.2f}")
print("VALIDITY:", "the measure is a choice that follows pleasantness: reading and steering below are tested." if VALID
      else "NOT VALID: on this model the measure is not a choice that follows pleasantness, so the notebook prints "
           "no reading or steering verdict below (the numbers are shown, to be read as a test of the method).")

# %% [markdown]
# **The text positive control.** Each main activity against itself, once framed as lovely, once as
# dreadful. Whatever the emotions do, a measure of choice must prefer the lovely framing.

# %%
framed = [f"{a}, which will be lovely" for a in names] + [f"{a}, which will be dreadful" for a in names]
text_pref = pair_logodds(model, framed, np.array([[i, i + n] for i in range(n)]), fmt=FORMAT).preference
text_effect, text_lo, text_hi = mean_ci(text_pref)
TEXT_MOVES = text_lo > 0
print(f"preference for the lovely framing: {text_effect:+.3f} [{text_lo:+.3f}, {text_hi:+.3f}] -> "
      + ("the measure moves with the text" if TEXT_MOVES else "the measure does NOT follow even the text"))

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
axes[0].scatter(half1, half2, s=18)
axes[0].set(title=f"Split halves (reliability {reliability:.2f})", xlabel="score from half 1", ylabel="score from half 2")
sns.stripplot(data=main, x="pleasant", y="score", ax=axes[1], hue="social", palette="colorblind")
axes[1].set(title=f"Scores by our label (r = {r_label:+.2f})", xlabel="pleasant (our label)", ylabel="Bradley-Terry score")
save_figure(fig, "07_reliability")
plt.show()

# %% [markdown]
# ## 4. Steering one option: a derivative for every emotion vector
# The test half of the main items is steered; the build half gives the positive control. For each pair,
# one backward pass gives the gradient of the steered option's preference with respect to a vector
# added on that option's tokens; each direction's slope is then `N × g · d` (as in 08).

# %%
order = np.random.default_rng(1).permutation(n)
build_half, test_half = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
steer_pairs = test_half[pair_design(len(test_half), 2, seed=2)[: len(test_half)]]  # one cycle: each steered once
norm = median_token_norm(model, LAYER)
acts = extract_activations(model, [f"This afternoon I will {a}." for a in names], layers=[LAYER])[:, 0]  # the control's
valence = load_emotions().set_index("emotion").valence.reindex(vectors.names)
rated = valence.notna()
grads = preference_gradients(model, names, steer_pairs, layer=LAYER, fmt=FORMAT)  # [pairs, d_model]
null_slopes = slopes(grads, random_directions(model.d_model, N_NULL, seed=0), norm).mean(0).numpy()
effects = pd.Series(slopes(grads, vectors.vectors, norm).mean(0).numpy(), index=vectors.names)
print(f"{len(steer_pairs)} steered pairs; derivatives of {len(effects)} emotion vectors and {N_NULL:,} random directions")

# %%
rho_steer = spearmanr(effects[rated], valence[rated])[0]
# rho with the valences in N_PERM random orders (the loop of spearmanr, done as one matrix product of ranks)
perm_null = spearman_permutation_null(effects[rated].to_numpy(), valence[rated].to_numpy(), N_PERM, seed=0)
steer_test = rank_test(rho_steer, perm_null)
print(f"PRIMARY: Spearman rho(steering derivative, valence) over {int(rated.sum())} emotion vectors = {steer_test}")

# %% [markdown]
# The cross-fitted positive control: the mean activation of the better-liked half of the build items
# minus the less-liked half. First read on the test items (does it predict their scores?), then steered.

# %%
control_dir = positive_control_direction(acts, bt, build_half)
control_read = pearson_ci(vectors.cosine_to(acts[test_half], control_dir[None])[:, 0], bt[test_half])
tests = {e: rank_test(effects[e], null_slopes) for e in TESTED}
tests["positive control"] = rank_test(float(slopes(grads, control_dir, norm).mean()), null_slopes)
print(f"positive control read on the test items: r = {control_read[0]:+.2f} [{control_read[1]:+.2f}, {control_read[2]:+.2f}]")
for name, t in tests.items():
    print(f"{name}: derivative {t}")

# %%
EXPECTED_SIGN = {"happy": 1, "angry": -1, "positive control": 1}
for name, t in tests.items():
    sign = "" if np.sign(t.effect) == EXPECTED_SIGN[name] else " (its sign is opposite to the expected one)"
    print(f"{name}: " + ("distinguishable from random directions" if t.distinguishable else
                         "not distinguishable from random directions") + sign)

# %%
gate = (f"the order decides {order_decides:.0%} of pairs and r with our label is {r_label:+.2f} "
        f"[{r_label_lo:+.2f}, {r_label_hi:+.2f}]")
if not VALID:
    verdict, reason = "cannot be measured on this model", f"the measure failed its validity gate: {gate}"
elif steer_test.distinguishable and steer_test.effect > 0:
    verdict, reason = "replicates", f"steering effects follow valence: rho {steer_test}"
else:
    verdict, reason = "cannot be measured on this model", (f"steering effects vs valence: rho {steer_test} -> not "
                                                          "distinguishable from permuted labels" + (
                                                              "; its sign is opposite" if steer_test.effect < 0 else ""))
record_verdict("07_choices", "preference_steering", verdict, reason)
print(f"VERDICT (primary): {verdict}. {reason}")

# %% [markdown]
# ## Recap
# - A preference measured by log-probabilities must be asked in both orders, and a measure is
#   validated before it is read or steered: a pilot chose its format, a gate fixed in advance asked
#   whether it is a choice at all, and a text control asked whether it moves when the options obviously change.
# - A reliable measure is not yet a valid one: a model that always answers "A" can be very consistent.

# %%
print(f"This run: format {FORMAT!r}; {gate}; reliability {reliability:.2f}; lovely minus dreadful "
      f"{text_effect:+.3f} [{text_lo:+.3f}, {text_hi:+.3f}] -> measure {'valid' if VALID else 'NOT valid'}; "
      f"steering vs valence {steer_test.effect:+.2f} (p {steer_test.p:.3g}).")

# %% [markdown]
# ## Going further
# Reading emotion scores against the preference (A), the exact steering effects beside the derivatives
# (B), and questions.

# %% [markdown]
# ### A. Reading: do emotion scores on an activity predict the preference?
# Each emotion's cosine score on *"This afternoon I will <activity>."* (section 4 read these activations),
# correlated with the scores; the null is 1,000 random directions read the same way (the same statistic).

# %%
emo_scores = pd.DataFrame(vectors.cosine(acts).numpy(), columns=vectors.names)
rand_r = np.array([np.corrcoef(col, bt)[0, 1] for col in vectors.cosine_to(acts, random_directions(model.d_model, 1000, 7)).T.numpy()])
reading = pd.DataFrame([(e, *pearson_ci(emo_scores[e], bt)) for e in vectors.names], columns=["emotion", "r", "low", "high"])
reading["rank p"] = [rank_test(r, rand_r).p for r in reading.r]
reading = reading.set_index("emotion")
rho_val, rho_lo, rho_hi = spearman_ci(valence[rated], reading.r[rated])
n_predict = int((reading["rank p"] <= 0.05).sum())

# %%
print(f"{n_predict} of {len(reading)} emotions beyond 1,000 random directions (rank p <= 0.05; about "
      f"{0.05 * len(reading):.0f} expected by chance); rho(valence, r) over {int(rated.sum())} rated emotions "
      f"{rho_val:+.2f} [{rho_lo:+.2f}, {rho_hi:+.2f}]")
reading_verdict = ("cannot be measured on this model" if not VALID else "replicates" if rho_lo > 0
                   else "cannot be measured on this model")
reading_reason = (f"rho(valence, reading r) {rho_val:+.2f} [{rho_lo:+.2f}, {rho_hi:+.2f}]"
                  + ("" if VALID else "; the measure failed its validity gate"))
record_verdict("07_choices", "preference_reading", reading_verdict, reading_reason)
print(f"VERDICT (reading): {reading_verdict}. {reading_reason}")
reading.sort_values("r").iloc[[0, 1, 2, -3, -2, -1]]

# %% [markdown]
# ### B. Exact effects at ±S
# Exact effects at ±S beside the derivatives: half the change of the steered option's preference from
# −S to +S. The strength follows the course's fluency rule: the largest candidate at which the answers'
# total probability drops by at most 0.5 nats on average, for both emotions and signs.
# Why not 06's strength: 06 keeps *generated* text fluent, while here only the two answers are scored, so the
# rule asks only that their probability stays, which allows a larger push.

# %%
base = pair_logodds(model, names, steer_pairs, fmt=FORMAT)


def answer_drops(c: float):
    """The drop of the two answers' total log-probability, one tested emotion and sign at a time (the rule stops
    a candidate at its first drop over the limit)."""
    for e in TESTED:
        for sgn in (1, -1):
            steered = pair_logodds(model, names, steer_pairs, vectors[e], layer=LAYER, strength=sgn * c, fmt=FORMAT)
            yield float(base.letter_logprob.mean() - steered.letter_logprob.mean())


STRENGTH = fluency_safe_strength([1.0, 0.5, 0.25, 0.1] if not FAST else [0.5], answer_drops, max_drop=0.5)


def effect(direction: torch.Tensor) -> float:
    """Mean over steered pairs of the exact effect at +-STRENGTH (nats of log-odds per unit strength)."""
    plus, minus = (pair_logodds(model, names, steer_pairs, direction, layer=LAYER, strength=sgn * STRENGTH, fmt=FORMAT)
                   for sgn in (1, -1))
    return float(steering_effect(base, plus, minus).mean() / STRENGTH)


named = {"happy": vectors["happy"], "angry": vectors["angry"], "positive control": control_dir}
named.update({f"random {s}": random_direction(model.d_model, s) for s in range(N_CHECK)})
pairs_df = pd.DataFrame([(k, float(slopes(grads, d, norm).mean()), effect(d)) for k, d in named.items()],
                        columns=["direction", "derivative", f"slope at ±{STRENGTH}"])
agree = agreement(pairs_df.derivative, pairs_df[f"slope at ±{STRENGTH}"])
display(pairs_df.round(3))
print(f"derivative vs exact slope: r = {agree['r']:+.2f}, largest error {agree['max_abs_error']:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].hist(null_slopes, bins=60, color="grey", alpha=0.6, label=f"{N_NULL:,} random directions")
for (name, t), colour in zip(tests.items(), sns.color_palette("colorblind")):
    axes[0].axvline(t.effect, color=colour, lw=2, label=f"{name} {t.effect:+.3f}")
axes[0].set(title="Steering one option: derivative of its preference", xlabel="nats of log-odds per unit strength",
            ylabel="count")
axes[0].legend(fontsize=8)
axes[1].scatter(valence[rated], effects[rated], s=14)
axes[1].set(title=f"Every emotion vector (rho = {rho_steer:+.2f}, p = {steer_test.p:.3g})", xlabel="valence (NRC)",
            ylabel="steering derivative")
save_figure(fig, "07_steering")
plt.show()

# %% [markdown]
# ### C. Questions
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
record("07_choices", n_activities=n, n_pairs=len(pairs), answer_format=FORMAT, order_decides=order_decides,
       position_bias=bias, reliability=reliability, label_r=r_label, label_r_ci=[r_label_lo, r_label_hi],
       length_r=r_length, valid=bool(VALID), text_control=text_effect, text_control_ci=[text_lo, text_hi],
       best_reading_emotion=best, best_reading_r=float(reading.r[best]), n_predicting=n_predict,
       valence_rho=rho_val, valence_rho_ci=[rho_lo, rho_hi], strength=STRENGTH, n_null=N_NULL,
       steer_valence_rho=steer_test.effect, steer_valence_p=steer_test.p, agreement_r=agree["r"],
       **{f"steer_derivative_{k.replace(' ', '_')}": t.effect for k, t in tests.items()},
       **{f"steer_p_{k.replace(' ', '_')}": t.p for k, t in tests.items()})
