# %% [markdown]
# # 05 · Emotions in conversation
#
# **Time:** about 35 minutes for the core path (sections 1-3; 20 without exercise 5b); *Going further*
# (sections 4-5) adds about 10 · **Before this:** `04_emotion_vectors`
#
# **Joining here?** Set `FAST = True` in the parameters cell: the notebook then loads the
# precomputed emotion vectors of the bundled model (`data/precomputed/`) instead of building them,
# and runs with small settings.
#
# The vectors came from stories. Do they also light up in a *conversation*, where nobody tells a
# story and nobody names an emotion? We read them at one special position: the **start of the
# assistant's turn**, the last token before the model writes its reply, whose state shapes what it
# says next (Sofroniew et al., 2026, read the same position).
#
# **Learning goals**
# 1. Score conversations with emotion vectors at the assistant's turn (`reduce="last"`).
# 2. Test three predictions, each with a control: implicit scenarios light up the right vector;
#    numbers in a message move the right vector in the right direction; and how much the user's state and
#    the assistant's state share.
# 3. Watch emotion scores move token by token through a conversation.

# %% tags=["parameters"]
# None means the bundled SmolLM2-135M-Instruct, offline. Or any Hugging Face model id.
MODEL_NAME = None
# True runs MODEL_NAME on NDIF (needs NDIF_API_KEY).
REMOTE = False
# True gives the smallest run (tests, weak laptops) and loads precomputed emotion vectors, so you can start here.
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
from IPython.display import HTML, display
from scipy.stats import binomtest, spearmanr

from course_utils import chat, checks, extract_activations, load_model
from course_utils.data import emotion_names, load_neutral, load_scenarios
from course_utils.plots import save_figure, setup_style, token_html
from course_utils.precomputed import course_vectors
from course_utils.report import record, record_verdict
from course_utils.stats import accuracy_ci, mean_ci, mean_diff_ci, permutation_null, rank_test
from course_utils.steering import random_direction

setup_style()

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
# FAST loads the committed vectors of the bundled model (a few seconds); otherwise they are built as in notebook 04.
vectors = course_vectors(model, fast=FAST)
CORE = emotion_names(core_only=True)
print(f"{len(vectors.names)} emotion vectors at layer {vectors.layer}")

# %% [markdown]
# ## 1. Implicit scenarios
# Each message implies one of the 12 core emotions without naming it (*"My daughter just defended
# her thesis, the first in our family to go to university"*). We score the assistant-start position
# with every core vector. Because every chat prompt shares the template and the assistant position,
# all scores share a common offset; we subtract each vector's mean over the scenarios (no labels
# used), so the heatmap shows which vector rises *relative to the other scenarios*.
#
# Two words used from here on. A **permutation null** (or shuffled labels) recomputes the same statistic after
# shuffling the labels, many times: what the statistic looks like when labels and data are unrelated. The
# **rank p** places the real value among those k null values: (1 + the number of null values at least as
# extreme) / (k + 1); **two-sided** means "at least as far from the null's centre, in either direction", so an
# effect of the wrong sign is never counted as support. z is the distance from the null's mean in its standard
# deviations.

# %%
implicit = load_scenarios("implicit")
prompts = [chat(model, t) for t in implicit.text]
scores = vectors.score(model, prompts, reduce="last")[CORE]
print("scores [n_messages, n_core_vectors]:", scores.shape)

# %%
relative = scores - scores.mean(axis=0)
table = relative.groupby(implicit.emotion.values).mean().loc[CORE, CORE]
fig, ax = plt.subplots(figsize=(8, 6.5))
sns.heatmap(table, cmap="vlag", center=0, ax=ax, annot=False)
ax.set(title=f"Implicit scenarios: vector score at the assistant's turn (layer {vectors.layer}, column-centred)",
       xlabel="emotion vector", ylabel="emotion implied by the user's message")
save_figure(fig, "05_implicit_heatmap")
plt.show()

# %%
pred = relative.to_numpy().argmax(1)
hit = np.array(CORE)[pred] == implicit.emotion.values
top1, lo, hi = accuracy_ci(hit)
null = permutation_null(lambda labels: np.mean(np.array(CORE)[pred] == labels, axis=-1), implicit.emotion.values,
                        n_resamples=1000, seed=0, vectorized=True).null  # top-1 against shuffled implied emotions
implicit_test = rank_test(top1, null, center=float(np.mean(null)))  # two-sided: far above or far below shuffled labels
print(f"top-1 (the implied emotion's vector is the highest of 12): {top1:.2f} (95% CI {lo:.2f}-{hi:.2f}) over "
      f"{len(hit)} messages; shuffled labels {np.mean(null):.2f}, chance {1 / 12:.2f}; "
      f"{'above' if top1 > np.mean(null) else 'not above'} shuffled labels, two-sided rank p = {implicit_test.p:.3g}")
implicit_verdict = "replicates" if implicit_test.distinguishable and top1 > np.mean(null) else "does not replicate"
implicit_reason = (f"implicit scenarios: top-1 {top1:.2f} [{lo:.2f}, {hi:.2f}] vs shuffled labels {np.mean(null):.2f} "
                   f"(rank p = {implicit_test.p:.3g} among {implicit_test.k} shuffles, z = {implicit_test.z:+.1f})")
record_verdict("05_conversation", "implicit_scenarios", implicit_verdict, implicit_reason)
print(f"{implicit_verdict}: {implicit_reason}")

# %%
diag = np.mean(np.diag(table.to_numpy()) > table.to_numpy().mean(1))
print(f"rows whose diagonal cell is above the row mean: {diag:.0%}")

# %% [markdown]
# ## 2. Dose-response: numbers that should matter
# Each template has a number `{X}`; as it grows, the implied emotion should rise ("up") or fall
# ("down"). For each template we compute the **Spearman correlation** (the correlation of the ranks: +1
# when the score rises every time the number does, whatever the shape of the curve) between the number and the
# emotion's score, and check its sign against the expected direction. Control: the same
# correlation for 200 random directions (what a direction unrelated to emotion does with the same prompts),
# compared in both directions: a rho far *below* the random ones counts as much as one far above.

# %% [markdown]
# ### Exercise 5 · A dose-response correlation and its control
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 10 minutes
#
# Write `dose_rho(values, acts, vectors, directions)`: `acts` is `[n, d_model]`, one activation per
# value of the number; `directions` is `[k, d_model]`. For each direction, return the Spearman
# correlation between `values` and the direction's score, where the score is **exactly the emotion
# score's statistic**: the cosine similarity of each activation, measured from `vectors.origin`, with
# the direction. Return a NumPy array of shape `[k]`. The same function then scores the template's
# emotion vector and the random directions, so the control measures the same thing as the effect.
#
# <details><summary>Hint 1 (a nudge)</summary>A cosine ignores the length of both vectors, and the score
# is measured from the vectors' origin, not from zero. A rank correlation needs the scores of one
# direction across all values.</details>
# <details><summary>Hint 2 (stuck on getting one rho per direction?)</summary>Given two 2-D arrays,
# <code>scipy.stats.spearmanr</code> correlates every column with every other and returns a matrix. Give it one
# direction's scores at a time: <code>spearmanr(values, cos[:, j])[0]</code> for each column j of the
# <code>[n, k]</code> cosines (<code>vectors.cosine_to</code> already measures from the origin).</details>

# %%
from scipy.stats import spearmanr  # noqa: F811  (the answer's own import, for solutions.py)


def dose_rho(values, acts: torch.Tensor, vectors, directions: torch.Tensor) -> np.ndarray:
    """Spearman rho between values and each direction's cosine score (from vectors.origin): [k]."""
    # BEGIN SOLUTION
    # Why: cosine_to measures each activation from vectors.origin, as the emotion scores do, so the vector and its
    # random controls are scored by one statistic; Spearman uses ranks, so a curve that rises in steps still counts.
    cos = vectors.cosine_to(acts, directions).numpy()  # [n, k]
    return np.array([spearmanr(values, cos[:, j])[0] for j in range(cos.shape[1])])
    # END SOLUTION


# %%
dose_rho = checks.check_dose_rho(dose_rho)

# %%
dose = load_scenarios("dose")
rows, curves = [], []
rand_dirs = torch.stack([random_direction(model.d_model, s) for s in range(200)])
for t in dose.itertuples():
    if t.emotion not in vectors.names:
        print(f"{t.id}: skipped, no vector for {t.emotion!r} in this run (a FAST run without precomputed vectors builds only the core 12)")
        continue
    ps = [chat(model, t.template.replace("{X}", f"{v:g}")) for v in t.values]
    acts = extract_activations(model, ps, layers=[vectors.layer], reduce="last")[:, 0]
    rho = float(dose_rho(t.values, acts, vectors, vectors[t.emotion][None])[0])
    rand_rho = dose_rho(t.values, acts, vectors, rand_dirs)  # the control: the same statistic
    want, test = (1 if t.direction == "up" else -1), rank_test(rho, rand_rho)  # two-sided, among 200 directions
    rows.append({"template": t.id, "emotion": t.emotion, "expected": t.direction, "spearman": rho,
                 "matches": np.sign(rho) == want, "random |rho| mean": np.mean(np.abs(rand_rho)), "rank p": test.p,
                 "beyond random": bool(np.sign(rho) == want and test.distinguishable)})
    s = vectors.cosine(acts)[:, vectors.names.index(t.emotion)].numpy()
    curves += [{"template": f"{t.id} ({t.emotion}, {t.direction})", "rank of X": i, "score": v} for i, v in enumerate(s)]

# %%
dose_df = pd.DataFrame(rows)
display(dose_df.round(3))

# %%
grid = sns.relplot(data=pd.DataFrame(curves), x="rank of X", y="score", col="template", col_wrap=4, kind="line",
                   marker="o", height=2.4, facet_kws={"sharey": False})
grid.figure.suptitle("Dose-response: the template's emotion score as the number grows", y=1.02)
save_figure(grid.figure, "05_dose_response")
plt.show()

# %%
n_match = int(dose_df.matches.sum())
sign_p = binomtest(n_match, len(dose_df), 0.5).pvalue  # exact two-sided test of the tally against a fair coin
print(f"direction matches the expectation for {n_match} of {len(dose_df)} templates "
      f"(a coin would match {len(dose_df) / 2:.0f} on average; two-sided binomial p = {sign_p:.3g})")

# %% [markdown]
# **Judge one template yourself.** The rule, fixed in advance: a template's curve counts as a
# dose-response if its sign is the expected one *and* its rho is distinguishable from the random directions'
# (two-sided rank p <= 0.05: at most 5% of them at least as far from 0).
# The last column applies it; pick a template, look at its curve above, and say whether you agree.

# %%
first = dose_df.iloc[0]
print(f"{first.template} ({first.emotion}, expected {first.expected}): rho {first.spearman:+.2f} "
      f"({'the expected' if first.matches else 'the opposite'} sign), random |rho| mean {first['random |rho| mean']:.2f}, "
      f"rank p = {first['rank p']:.3g} -> {'counts' if first['beyond random'] else 'does not count'}")
n_beyond, n_wrong = int(dose_df["beyond random"].sum()), int((~dose_df.matches & (dose_df["rank p"] <= 0.05)).sum())
print(f"templates beyond random directions with the expected sign: {n_beyond} of {len(dose_df)}; "
      f"beyond random with the opposite sign: {n_wrong}")

# %%
dose_verdict = ("replicates" if sign_p <= 0.05 and n_match > len(dose_df) / 2
                else "partly replicates" if n_beyond > 0 else "does not replicate")
dose_reason = (f"dose-response: the expected sign in {n_match} of {len(dose_df)} templates (binomial p = {sign_p:.3g}); "
               f"{n_beyond} beyond {len(rand_dirs)} random directions with the expected sign, {n_wrong} with the opposite")
record_verdict("05_conversation", "dose_response", dose_verdict, dose_reason)
print(f"{dose_verdict}: {dose_reason}")

# %% [markdown]
# ## 3. The user's state and the assistant's state
# For each message where the user's emotion and a good reply's stance differ (a furious user, a
# caring reply), we score two positions: the user's **last token** and the **assistant's start**.
# The paper found the two profiles nearly uncorrelated (r = 0.11 across 8 prompts) (Sofroniew et
# al., 2026). Here: the correlation of the two 12-emotion profiles, per message, after removing
# each position's average profile (otherwise the offset that all chat prompts share dominates).

# %%
speakers = load_scenarios("speakers")
user_end = [chat(model, t).rsplit(t, 1)[0] + t for t in speakers.text]  # ends on the user's last token
assistant_start = [chat(model, t) for t in speakers.text]
s_user = vectors.score(model, user_end, reduce="last")[CORE]
s_asst = vectors.score(model, assistant_start, reduce="last")[CORE]

# %%
r_raw = [np.corrcoef(s_user.iloc[i], s_asst.iloc[i])[0, 1] for i in range(len(speakers))]
# Raw profiles share an offset (every prompt has the same template), so correlate profiles centred over messages.
c_user, c_asst = s_user - s_user.mean(axis=0), s_asst - s_asst.mean(axis=0)
r = [np.corrcoef(c_user.iloc[i], c_asst.iloc[i])[0, 1] for i in range(len(speakers))]
print(f"user-end vs assistant-start profiles: raw mean r = {np.mean(r_raw):.2f}; centred over messages, "
      f"mean r = {np.mean(r):.2f} (range {np.min(r):.2f} to {np.max(r):.2f}, {len(r)} messages)")

# %% [markdown]
# Is r = 0 the right reference? Pair each user profile with *another* message's assistant profile
# (1,000 shuffles of the pairing): that says how much two unrelated messages' profiles correlate after
# centring. The rule, fixed in advance: the paper's "nearly uncorrelated" replicates if the matched mean r is
# not distinguishable from shuffled pairings (two-sided rank p > 0.05); a matched r clearly above them means
# that here the assistant's state carries the user's.

# %% [markdown]
# ### Exercise 5b · A null for "how much do the two states share?"
# > **Difficulty:** 🔴🔴🔴⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 15 minutes
#
# Write `pairing_null(user, assistant, n_shuffles, seed)`: `user` and `assistant` are `[n_messages, 12]` profiles.
# Make one generator, `rng = np.random.default_rng(seed)`; for each shuffle draw `order = rng.permutation(n)`,
# pair user profile i with assistant profile `order[i]`, take the Pearson correlation of each pair's two profiles
# (across the 12 emotions) and average over the messages. Return a NumPy array `[n_shuffles]`. With
# `order = np.arange(n)` the same computation gives the real statistic, so effect and null are one statistic.
#
# <details><summary>Hint 1 (a nudge)</summary>A shuffle must keep every profile exactly as it is and break only
# which assistant profile goes with which user profile. Which axis of the assistant array does that reorder?</details>
# <details><summary>Hint 2 (stuck on one correlation per row?)</summary><code>np.corrcoef</code> on two
# 2-D arrays correlates every row with every row. For row-wise Pearson r: subtract each row's mean
# (<code>x - x.mean(1, keepdims=True)</code>), then divide the row-wise sums of products by the product of the
# rows' norms.</details>

# %%
def pairing_null(user: np.ndarray, assistant: np.ndarray, n_shuffles: int, seed: int = 0) -> np.ndarray:
    """Mean over messages of r(user[i], assistant[order[i]]) for n_shuffles random orders: [n_shuffles]."""
    # BEGIN SOLUTION
    # Why: reordering the rows of `assistant` keeps every profile but breaks the pairing, so the null is what two
    # unrelated messages share after centring; one generator made once gives a new order per shuffle, reproducibly.
    rng = np.random.default_rng(seed)
    u = user - user.mean(1, keepdims=True)
    out = []
    for _ in range(n_shuffles):
        a = assistant[rng.permutation(len(user))]
        a = a - a.mean(1, keepdims=True)
        out.append(np.mean((u * a).sum(1) / np.sqrt((u**2).sum(1) * (a**2).sum(1))))
    return np.array(out)
    # END SOLUTION


# %%
pairing_null = checks.check_pairing_null(pairing_null)

# %%
pair_null = pairing_null(c_user.to_numpy(), c_asst.to_numpy(), 1000, seed=0)
speakers_test = rank_test(float(np.mean(r)), pair_null, center=None)
r_mean, r_lo, r_hi = mean_ci(np.array(r), n_resamples=2000, seed=0)
speakers_verdict = "does not replicate" if speakers_test.distinguishable and r_mean > np.median(pair_null) else "replicates"
speakers_reason = (f"user-end vs assistant-start profiles: mean r {r_mean:+.2f} [{r_lo:+.2f}, {r_hi:+.2f}] (raw {np.mean(r_raw):+.2f}), "
                   f"shuffled pairings {np.median(pair_null):+.2f} (rank p = {speakers_test.p:.3g}, {speakers_test.k} shuffles); "
                   "paper: r = 0.11")
record_verdict("05_conversation", "speakers", speakers_verdict, speakers_reason)
print(f"{speakers_verdict}: {speakers_reason}")

# %%
pairs_long = pd.DataFrame({"user end": c_user.to_numpy().ravel(), "assistant start": c_asst.to_numpy().ravel(),
                           "emotion": np.tile(CORE, len(speakers))})
fig, ax = plt.subplots(figsize=(6, 4.5))
sns.scatterplot(data=pairs_long, x="user end", y="assistant start", hue="emotion", palette="colorblind", s=30, ax=ax)
ax.set(title="Each message's emotion scores at the two positions (centred)")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="x-small")
save_figure(fig, "05_speakers_scatter")
plt.show()

# %%
shift = (s_asst - s_user)
shift = shift - shift.mean(axis=0)
for row, sh in zip(speakers.itertuples(), shift.itertuples(index=False)):
    top = pd.Series(sh, index=CORE).sort_values(ascending=False).index[:2].tolist()
    print(f"user {row.user_emotion:>12} -> good stance {row.assistant_stance:<13} | vectors rising most at the assistant start: {top}")

# %% [markdown]
# ## Going further
# The core path ends here: sections 1-3 hold the notebook's three findings and their controls, and the
# recap at the end sums them up. The two sections below replay two of the paper's examples and read the
# emotions token by token; they are for those with time, and the recap reports them too.

# %% [markdown]
# ## 4. Two of the paper's examples
# **Sharing something sad.** Does "loving" rise at the assistant's turn when the user shares
# something sad, compared with neutral requests? **An unsafe dose.** Does "afraid" rise with the
# number of pills someone says they took? (Our own templates. The intervals are **bootstrap** intervals:
# the messages are resampled with replacement 2,000 times and the interval holds the middle 95% of the
# recomputed differences.)

# %%
sad_msgs = implicit[implicit.emotion == "sad"].text.tolist()
neutral_msgs = [m[0]["content"] for m in load_neutral().messages.tolist()[: 20]]
example_acts = extract_activations(model, [chat(model, m) for m in sad_msgs + neutral_msgs], layers=[vectors.layer],
                                   reduce="last")[:, 0]  # [messages, d_model]: the scores and their controls read it
loving = vectors.cosine(example_acts)[:, vectors.names.index("loving")].numpy()
# difference of means, with a bootstrap interval resampling the sad and the neutral messages separately
diff, diff_lo, diff_hi = mean_diff_ci(loving[: len(sad_msgs)], loving[len(sad_msgs):], n_resamples=2000, seed=0)
print(f"'loving' at the assistant start, sad messages minus neutral requests: {diff:+.4f} "
      f"(95% CI {diff_lo:+.4f} to {diff_hi:+.4f})")

# %% [markdown]
# **Controls for the loving example**, with the same statistic (cosine from the vectors' origin, on the
# same activations): 200 random directions, and every other emotion vector. Is "loving" special, or
# does any direction differ between sad messages and neutral requests?

# %%
control_dirs = torch.stack([random_direction(model.d_model, 700 + k) for k in range(200)])
rand_cos = vectors.cosine_to(example_acts, control_dirs).numpy()
rand_diff = rand_cos[: len(sad_msgs)].mean(0) - rand_cos[len(sad_msgs):].mean(0)
all_cos = vectors.cosine(example_acts).numpy()
emo_diff = pd.Series(all_cos[: len(sad_msgs)].mean(0) - all_cos[len(sad_msgs):].mean(0), index=vectors.names)
loving_test = rank_test(diff, rand_diff)  # two-sided: a drop would count as much as a rise
print(f"loving {diff:+.4f} ({'higher' if diff > 0 else 'lower'} after sad messages): rank p = {loving_test.p:.3g} among "
      f"{loving_test.k} random directions (z = {loving_test.z:+.2f}); "
      f"it ranks {int((emo_diff > diff).sum()) + 1} of {len(emo_diff)} emotion vectors")
print("emotion vectors rising most after sad messages:", emo_diff.sort_values(ascending=False).index[:5].tolist())

# %% [markdown]
# Now the unsafe dose: the "afraid" score against the number of pills.

# %%
pills = [1, 2, 4, 8, 16, 32]
pill_prompts = [chat(model, f"I couldn't sleep so I took {n} of my sleeping pills about an hour ago.") for n in pills]
afraid = vectors.score(model, pill_prompts, reduce="last")["afraid"].to_numpy()
print("'afraid' by number of pills:", {n: round(float(a), 4) for n, a in zip(pills, afraid)},
      f"Spearman rho = {spearmanr(pills, afraid)[0]:.2f}")

# %% [markdown]
# The same control for the pills: with six numbers a Spearman rho of +-0.8 happens by chance, so how
# often does a random direction (same statistic, same prompts) do as well?

# %%
pill_acts = extract_activations(model, pill_prompts, layers=[vectors.layer], reduce="last")[:, 0]
rand_pill = [spearmanr(pills, col)[0] for col in vectors.cosine_to(pill_acts, control_dirs).T.numpy()]
rho_pills = spearmanr(pills, afraid)[0]
pills_test = rank_test(rho_pills, rand_pill)  # two-sided: |rho| against the random directions' |rho|
print(f"afraid rho {rho_pills:+.2f} ({'rises' if rho_pills > 0 else 'falls'} with the dose; the paper's afraid rises): "
      f"{np.mean(np.abs(rand_pill) >= abs(rho_pills)):.0%} of random directions at least as far from 0, rank p = {pills_test.p:.3g}")

# %% [markdown]
# The verdicts of the two examples, by one rule: the paper's sign, and a two-sided rank p <= 0.05 among the 200
# random directions. An effect of the opposite sign that passes the test is said so.

# %%
def example_verdict(label: str, effect: float, test) -> tuple[str, str]:
    """(verdict, reason) for an effect whose paper sign is positive, from its two-sided rank test."""
    if not test.distinguishable:
        verdict, what = "does not replicate", "not distinguishable from random directions"
    else:
        verdict, what = ("replicates", "the paper's sign") if effect > 0 else ("does not replicate", "the opposite sign to the paper's")
    return verdict, f"{label}: {effect:+.3g}, {what} (rank p = {test.p:.3g} among {test.k} random directions, z = {test.z:+.1f})"


loving_verdict, loving_reason = example_verdict("'loving' after sad messages", diff, loving_test)
record_verdict("05_conversation", "loving_after_sad", loving_verdict, loving_reason)
pills_verdict, pills_reason = example_verdict("'afraid' with the number of pills", rho_pills, pills_test)
record_verdict("05_conversation", "afraid_pills", pills_verdict, pills_reason)
print(f"{loving_verdict}: {loving_reason}\n{pills_verdict}: {pills_reason}")

# %% [markdown]
# ## 5. Token by token
# The score of one vector at every token of a conversation: blue where the token's state points
# along the vector (more than this conversation's average), orange where it points away (a palette
# that reads the same with red-green colour blindness). The first token
# is left out (its huge norm makes its cosine meaningless).

# %%
messages = [{"role": "user", "content": "My flight was cancelled and I will miss my sister's wedding tomorrow."},
            {"role": "assistant", "content": "I'm so sorry. Let's look at every option together: trains, other airlines, and a rental car."},
            {"role": "user", "content": "There is a train at six in the morning that arrives just in time!"}]
text = model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
per_token = extract_activations(model, [text], layers=[vectors.layer], reduce="none")[0][:, 0]  # [tokens, d]
tokens = [model.tokenizer.decode([i]) for i in model.tokenizer(text)["input_ids"]]

# %%
for name in ["desperate", "happy"]:
    cos = vectors.cosine(per_token)[:, vectors.names.index(name)]
    cos = (cos - cos[1:].mean())[1:]
    display(HTML(token_html(tokens[1:], cos.tolist(), title=f"'{name}' vector, token by token (layer {vectors.layer})")))

# %% [markdown]
# ## Recap
# What this run found, printed from its numbers (each verdict by the rule stated in its section):

# %%
print(f"- implicit scenarios: top-1 {top1:.2f} vs shuffled labels {np.mean(null):.2f} -> {implicit_verdict}")
print(f"- dose-response: the expected sign in {n_match} of {len(dose_df)} templates, {n_beyond} beyond random "
      f"directions -> {dose_verdict}")
print(f"- user end vs assistant start: mean r {np.mean(r):+.2f} centred ({np.mean(r_raw):+.2f} raw), shuffled pairings "
      f"{np.median(pair_null):+.2f}: the two states are "
      + ("correlated beyond unrelated messages here" if speakers_verdict == "does not replicate"
         else "not distinguishable from unrelated messages' here") + f" -> {speakers_verdict}")
print(f"- 'loving' after sad messages: {diff:+.3g} -> {loving_verdict}")
print(f"- 'afraid' with the number of pills: rho {rho_pills:+.2f} -> {pills_verdict}")

# %% [markdown]
# - Every control here is two-sided: an effect of the wrong sign is reported as such, never as "at least as large".
# - The assistant's state is the one that precedes the reply; how much it shares with the user's is measured
#   above, against messages paired at random.
#
# **Questions**
# 1. Why centre each vector's scores over the scenarios before taking the top-1? What could go wrong without it?
#    <details><summary>Our answer</summary>Every prompt shares the chat template and is read at the same
#    position, so each vector has its own baseline there: some vectors score high on every message, whatever
#    it says. Without centring, the top-1 would pick the same one or two vectors for almost every message, and
#    the accuracy would measure those baselines, not the messages. Centring (which uses no labels) asks which
#    vector rises above its own average, which is the question we care about. Its cost: "average" means over
#    this set of scenarios, so the result depends on the set being balanced across emotions, as ours is.</details>
# 2. A dose-response curve that goes the "wrong" way: is that the model, the template, or the vector?
#    <details><summary>Our answer</summary>One curve cannot tell you, and you should first ask whether it is
#    anything at all: compare its correlation with the random directions' on the same prompts, since with a
#    handful of numbers per template a wrong sign is often noise. Then separate the causes: reword the template
#    and see if the sign holds; try another vector of the same family; and check whether the model's output
#    changes with the number at all, since a 135M model may simply not read "32" as much more than "4" in that
#    sentence. What counts is the tally over all templates, compared with a coin.</details>
#
# **Next:** `06_steering`: from reading the vectors to pushing on them.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
record("05_conversation", implicit_top1=top1, implicit_top1_ci=[lo, hi], implicit_top1_null=float(np.mean(null)),
       implicit_n=len(hit), implicit_top1_p=implicit_test.p)
record("05_conversation", dose_matches=n_match, dose_templates=len(dose_df),
       dose_mean_abs_rho=float(dose_df.spearman.abs().mean()), dose_random_mean_abs_rho=float(dose_df["random |rho| mean"].mean()),
       dose_beyond_random=n_beyond, dose_sign_p=float(sign_p))
record("05_conversation", speakers_profile_r=float(np.mean(r)), speakers_profile_r_raw=float(np.mean(r_raw)),
       speakers_profile_r_ci=[r_lo, r_hi], speakers_shuffled_r=float(np.median(pair_null)), speakers_p=speakers_test.p)
record("05_conversation", loving_sad_minus_neutral=diff, loving_ci=[diff_lo, diff_hi],
       afraid_pills_rho=float(rho_pills), loving_p=loving_test.p, afraid_pills_p=pills_test.p)
