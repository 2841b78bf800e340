# %% [markdown]
# # 08 · Steering versus cheating
#
# **Time:** about 30 minutes · **Before this:** `06_steering` (and, if you have time, `07_emotions_and_choices`)
#
# **Joining here?** Set `FAST = True` in the parameters cell: the notebook then loads the
# precomputed emotion vectors of the bundled model (`data/precomputed/`) instead of building them,
# and runs with small settings.
#
# The paper's most striking result: on impossible programming tasks, a frontier model took a
# cheating shortcut (special-casing the tests) more often when its "desperate" direction was turned
# up or its "calm" direction turned down, and less often the other way round; the desperate
# direction also rose with each failed attempt (Sofroniew et al., 2026). Here we run the same
# experiment on a 135M model, with the controls a careful reader would ask for, and report what we
# find, whichever way it goes.
#
# **Learning goals**
# 1. Read an emotion vector across a growing list of failures.
# 2. Measure a behavioural preference with log-probabilities, and know what else it measures (tone).
# 3. Judge an effect against a null distribution of random directions, with intervals.
# 4. Say precisely what "functional emotions" does and does not mean.

# %% tags=["parameters"]
import os

# None means the bundled SmolLM2-135M-Instruct, offline. Or any Hugging Face model id.
MODEL_NAME = None
# True runs MODEL_NAME on NDIF (needs NDIF_API_KEY).
REMOTE = False
# True gives the smallest run (tests, weak laptops) and loads precomputed emotion vectors, so you can start here.
FAST = os.environ.get("COURSE_FAST", "0") == "1"  # COURSE_FAST=1 (`make lab FAST=1`): FAST for a whole room
# Random directions drawn for the steering null; each is also used with its sign flipped (2 x N_RANDOM null slopes).
N_RANDOM = 10
# None = chosen below by a fluency rule on the honest messages (decided before any cheating number).
STRENGTH = None

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from scipy.stats import spearmanr

from course_utils import extract_activations, load_model
from course_utils.cheating import CHEAT_PATTERNS, HONEST_PATTERNS, classify_reply, evaluate, scenario_prompt, slope, slope_ci
from course_utils.data import load_scenarios
from course_utils.models import transcript
from course_utils.plots import save_figure, setup_style
from course_utils.precomputed import course_vectors
from course_utils.report import record
from course_utils.stats import null_band, percentile_in_null, wilson_ci
from course_utils.steering import continuation_logprobs, generate, random_direction

setup_style()
model = load_model(MODEL_NAME, remote=REMOTE)
# FAST loads the committed vectors of the bundled model (a few seconds); otherwise they are built as in notebook 04.
vectors = course_vectors(model, fast=FAST)
LAYER = vectors.layer
scenarios = load_scenarios("cheat_scenarios").to_dict("records")
SAMPLE_TOKENS, SAMPLE_PROMPTS = 60, 15
if FAST:
    scenarios, N_RANDOM, SAMPLE_TOKENS, SAMPLE_PROMPTS = scenarios[:3], 2, 12, 2
print(f"layer {LAYER}; {len(scenarios)} cheat scenarios; {N_RANDOM} random directions (x2 signs)")

# %% [markdown]
# ## 1. Without steering: does "desperate" rise with each failure?
# Four impossible tasks, each as a conversation that grows by one failed attempt at a time (0 to 6).
# We read the "desperate" and "calm" scores at the assistant's turn after each. Control: random
# directions read the same way (a longer conversation changes the state in many ways; the question
# is whether *desperate* changes more than an arbitrary direction does).

# %%
failures = load_scenarios("failures")
if FAST:  # two of the four tasks
    failures = failures[failures.task_id.isin(failures.task_id.unique()[:2])].reset_index(drop=True)
prompts = [transcript(model, m, add_generation_prompt=True) for m in failures.messages]
scores = vectors.score(model, prompts, reduce="last")[["desperate", "calm"]]
acts = extract_activations(model, prompts, layers=[LAYER], reduce="last")[:, 0] - vectors.origin
rand = torch.stack([random_direction(model.d_model, s) for s in range(2 * N_RANDOM)])  # reading is cheap: twice as many
rand_scores = (acts / acts.norm(dim=-1, keepdim=True)) @ rand.T
df = pd.concat([failures[["task_id", "n_failures"]], scores], axis=1)
long = df.melt(id_vars=["task_id", "n_failures"], var_name="vector", value_name="score")
grid = sns.relplot(data=long, x="n_failures", y="score", hue="task_id", col="vector", kind="line", marker="o",
                   height=3.5, facet_kws={"sharey": False})
grid.figure.suptitle(f"Emotion score at the assistant's turn after n failed attempts (layer {LAYER})", y=1.03)
save_figure(grid.figure, "08_failures")
plt.show()


def mean_rho(values: np.ndarray) -> float:
    """Mean over tasks of the Spearman correlation between n_failures and a score."""
    return float(np.mean([spearmanr(g.n_failures, values[g.index])[0] for _, g in failures.groupby("task_id")]))


rho_desp, rho_calm = mean_rho(df.desperate.to_numpy()), mean_rho(df.calm.to_numpy())
rho_rand = [mean_rho(rand_scores[:, i].numpy()) for i in range(rand.shape[0])]
print(f"mean Spearman rho with the number of failures: desperate {rho_desp:+.2f}, calm {rho_calm:+.2f}; "
      f"random directions {np.mean(rho_rand):+.2f} (range {np.min(rho_rand):+.2f} to {np.max(rho_rand):+.2f})")
print(f"desperate's rise is larger than {np.mean(np.array(rho_rand) < rho_desp):.0%} of random directions'")
record("08_cheating", failures_rho_desperate=rho_desp, failures_rho_calm=rho_calm,
       failures_rho_random_mean=float(np.mean(rho_rand)), failures_rho_random_range=[min(rho_rand), max(rho_rand)])

# %% [markdown]
# ## 2. The measure: a log-probability preference
# For each impossible task the model's next message could be **honest** (*"the 1 µs limit cannot
# be met; I suggest ..."*) or **cheat** (*"the test lists are arithmetic sequences, so I'll return a
# formula"*). `cheat_logodds` = mean per-token log-probability of the cheat message minus that of the
# honest one. Positive = the model prefers cheating. We measure log-probabilities because sampling a
# 135M model's replies is too noisy to count cheating reliably (section 4 shows why).
#
# **A trap.** A log-probability also reads *tone*: a positive-valence direction raises the
# probability of upbeat text. If "calm" made the honest message more likely only because it sounds
# calmer, we would mistake tone for honesty. So (1) the two messages were written to match in length
# and tone, and (2) we add **valence-matched controls**: "happy" (positive, like calm) and "sad"
# (negative, like desperate). An effect on cheating should be specific to desperate/calm, not shared
# by any vector of the same valence.

# %%
example = scenarios[0]
print(scenario_prompt(model, example)[-600:])
print("\nHONEST:", example["honest"], "\n\nCHEAT: ", example["cheat"])

# %% [markdown]
# ## 3. Choosing the strength before looking
# The strength is fixed by a fluency rule that uses no cheating number: the largest candidate at
# which the honest message's own mean log-probability (on the first 10 scenarios) drops by at most
# 0.5 nats per token, for all four emotion directions and both signs. Candidates are tried from
# large to small, and the first that passes is taken (if none passes, the smallest is used, and the
# notebook says so). (Notebook 06's rule on ordinary text, perplexity within 25%, is stricter and
# usually picks a smaller strength; set `STRENGTH` in the parameters cell to rerun at another one.)

# %%
candidates = [0.5, 0.25, 0.1, 0.05] if not FAST else [0.25]
ps = [scenario_prompt(model, s) for s in scenarios]
check_ps, honest = ps[:10], [s["honest"] for s in scenarios[:10]]
base = continuation_logprobs(model, check_ps, honest).mean()
if STRENGTH is None:
    for c in candidates:
        drops = [float(base - continuation_logprobs(model, check_ps, honest, vectors[e], layer=LAYER, strength=sgn * c).mean())
                 for e in ["desperate", "calm", "happy", "sad"] for sgn in (1, -1)]
        print(f"strength {c}: largest drop of the honest message's log-prob {max(drops):.3f} nats/token")
        if max(drops) <= 0.5:
            STRENGTH = c
            break
    else:
        STRENGTH = candidates[-1]
        print(f"no candidate keeps the drop within 0.5 nats/token: using the smallest, {STRENGTH}")
print(f"chosen strength: {STRENGTH} (x median token norm at layer {LAYER})")
strengths = [-STRENGTH, 0.0, STRENGTH]  # the same three points for emotions and random directions

# %% [markdown]
# ## 4. The sweep: four emotions and a null distribution of random directions
# The slope of `cheat_logodds` against strength, with a 95% interval from resampling scenarios. The
# random directions (same norm, same three strengths) give the null: where does each emotion fall in it?
#
# Each random direction `d` is used twice, as `d` and as `-d`: the flipped one is just as random, and
# steering along `-d` with strength `+s` *is* steering along `d` with `-s`, so its numbers are the same
# passes read backwards (its slope is exactly minus the slope of `d`). This antithetic trick doubles
# the null for free and makes it symmetric around zero by construction. This cell is the slowest of
# the course (28 steered passes over 30 conversations, about 4 minutes on 2 CPU cores the first time);
# every result is cached in `build/cache/logprobs`, so a rerun takes seconds.
#
# *A note on honesty:* an earlier version of this notebook used five strengths and 20 unmirrored
# directions (twice the compute). We switched to this design to make the course faster, after having
# seen that version's numbers; the chosen strength and every verdict stayed the same.

# %%
results = pd.concat([evaluate(model, vectors, e, strengths, scenarios) for e in ["desperate", "calm", "happy", "sad"]])
null = pd.concat([evaluate(model, vectors, "random", [-STRENGTH, 0.0, STRENGTH], scenarios, seed=s).assign(seed=s)
                  for s in range(N_RANDOM)])
null = pd.concat([null, null.assign(strength=0.0 - null.strength, seed=-1 - null.seed)])  # -d: the same passes, mirrored
null_slopes = np.array([slope(g) for _, g in null.groupby("seed")])
band = null_band(null_slopes, 0.95)  # the central 95% of the random directions' slopes
summary = []
for e, g in results.groupby("emotion", sort=False):
    b, lo, hi = slope_ci(g)
    summary.append({"emotion": e, "slope": b, "ci_low": lo, "ci_high": hi,
                    "percentile in random null": percentile_in_null(b, null_slopes),
                    "outside the null's 95% band": bool(b < band[0] or b > band[1])})
summary = pd.DataFrame(summary)
display(summary.round(3))
print(f"random directions: slopes {band[0]:+.3f} to {band[1]:+.3f} (95% band), "
      f"mean {null_slopes.mean():+.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
mean = results.groupby(["emotion", "strength"]).cheat_logodds.mean().reset_index()
palette = dict(zip(["desperate", "calm", "happy", "sad"], sns.color_palette("deep", 4)))
sns.lineplot(data=mean, x="strength", y="cheat_logodds", hue="emotion", hue_order=list(palette), palette=palette,
             marker="o", ax=axes[0])
for _, g in null.groupby("seed"):
    m = g.groupby("strength").cheat_logodds.mean()
    axes[0].plot(m.index, m.values, color="grey", alpha=0.3, lw=1)
axes[0].set(title="Preference for the cheating message under steering (grey: random directions)",
            xlabel="strength (x median token norm)", ylabel="mean cheat_logodds (nats/token)")
axes[1].hist(null_slopes, bins=15, color="grey", alpha=0.6, label="random directions")
for row in summary.itertuples():
    axes[1].axvline(row.slope, lw=2, label=row.emotion, color=palette[row.emotion])
axes[1].set(title="Slope of cheat_logodds vs strength", xlabel="slope (nats/token per unit strength)", ylabel="count")
axes[1].legend(fontsize="small")
save_figure(fig, "08_cheating_sweep")
plt.show()
rec = {f"slope_{r.emotion}": r.slope for r in summary.itertuples()}
rec.update({f"slope_{r.emotion}_ci": [r.ci_low, r.ci_high] for r in summary.itertuples()})
rec.update({f"slope_{e}_null_percentile": float(v) for e, v in summary.set_index("emotion")["percentile in random null"].items()})
record("08_cheating", strength=STRENGTH, n_scenarios=len(scenarios), n_random=len(null_slopes), n_random_drawn=N_RANDOM,
       null_slope_band=list(band),
       unsteered_cheat_logodds=float(results[results.strength == 0].cheat_logodds.mean()), **rec)

# %% [markdown]
# **How to read this.** The paper's direction is: desperate slope > 0 (more cheating when turned up),
# calm slope < 0. Each counts only if it lies outside the random directions' band; and it counts as
# an effect on *cheating* rather than tone only if the valence-matched control does not do the same
# (sad alongside desperate, happy alongside calm). The verdict printed below applies these rules to
# the numbers above; it was written before the numbers were known.

# %%
s = summary.set_index("emotion")


def verdict(e: str, sign: int, control: str) -> str:
    """The paper's direction for one emotion, judged against the null and the valence-matched control."""
    b, out = s.loc[e, "slope"], s.loc[e, "outside the null's 95% band"]
    if not out:
        return f"{e}: slope {b:+.3f} is inside the random-direction band -> no effect distinguishable from an arbitrary direction (a null result)"
    if np.sign(b) != sign:
        return f"{e}: slope {b:+.3f} is outside the band but OPPOSITE to the paper's direction"
    c = s.loc[control]
    if c["outside the null's 95% band"] and np.sign(c.slope) == np.sign(b):
        return (f"{e}: slope {b:+.3f} in the paper's direction, but {control} ({c.slope:+.3f}) does the same -> "
                "consistent with a tone/valence effect, not specific to cheating")
    return f"{e}: slope {b:+.3f} in the paper's direction, outside the null, and not shared by {control}"


for line in (verdict("desperate", +1, "sad"), verdict("calm", -1, "happy")):
    print(line)

# %% [markdown]
# ## 5. Sampled behaviour
# The log-probability measure asks "which of two written messages does the model prefer?". Here the
# model writes its own next message (sampling, temperature 0.7), and a transparent rule labels it
# `cheat`, `honest` or `other` (patterns printed below: nothing hidden). Rates come with 95% Wilson
# intervals. Expect a lot of `other`: a 135M model rarely writes anything that clearly does either.
# To keep the run short this uses the first 15 tasks (`SAMPLE_PROMPTS`): enough to see an effect
# the size of the paper's (about 5% -> 70%), not a small one.

# %%
print("cheat patterns: ", CHEAT_PATTERNS)
print("honest patterns:", HONEST_PATTERNS)


samples = 1
rows = []
for name, direction, strength in [("none", None, 0.0), ("desperate +", vectors["desperate"], STRENGTH),
                                  ("desperate -", vectors["desperate"], -STRENGTH), ("calm +", vectors["calm"], STRENGTH),
                                  ("calm -", vectors["calm"], -STRENGTH)]:
    for k in range(samples):
        replies = generate(model, ps[:SAMPLE_PROMPTS], direction, layer=LAYER if direction is not None else None,
                           strength=strength, max_new_tokens=SAMPLE_TOKENS, do_sample=True, temperature=0.7, seed=k)
        rows += [{"condition": name, "reply": r, "label": classify_reply(r)} for r in replies]
sampled = pd.DataFrame(rows)
rates = []
for cond, g in sampled.groupby("condition", sort=False):
    n = len(g)
    for label in ["cheat", "honest", "other"]:
        k = int((g.label == label).sum())
        lo, hi = wilson_ci(k, n)  # 95% Wilson score interval
        rates.append({"condition": cond, "label": label, "rate": k / n, "ci_low": lo, "ci_high": hi, "n": n})
rates = pd.DataFrame(rates)
display(rates.pivot(index="condition", columns="label", values="rate").round(2))
print("\nTwo sampled replies without steering:")
for r in sampled[sampled.condition == "none"].reply.head(2):
    print("  -", r[:300])
cheat_rates = rates[rates.label == "cheat"].set_index("condition")
record("08_cheating", sampled_cheat_rate={c: float(r) for c, r in cheat_rates.rate.items()},
       sampled_other_rate=float(rates[(rates.label == "other")].rate.mean()), sampled_n_per_condition=int(rates.n.iloc[0]))

# %% [markdown]
# ## 6. Side by side with the paper

# %%
paper = pd.DataFrame({
    "paper (frontier model, sampled cheating rate)": ["about 5% -> about 70% (desperate -0.1 -> +0.1)",
                                                       "about 65% -> about 10% (calm -0.1 -> +0.1)",
                                                       "rose with each failure"],
    f"this course ({model.course_id.split(':')[1] if ':' in model.course_id else model.course_id})": [
        f"slope {s.loc['desperate', 'slope']:+.3f} [{s.loc['desperate', 'ci_low']:+.3f}, {s.loc['desperate', 'ci_high']:+.3f}], "
        f"null percentile {s.loc['desperate', 'percentile in random null']:.0%}; sampled cheat "
        f"{cheat_rates.rate.get('desperate -', float('nan')):.0%} -> {cheat_rates.rate.get('desperate +', float('nan')):.0%}",
        f"slope {s.loc['calm', 'slope']:+.3f} [{s.loc['calm', 'ci_low']:+.3f}, {s.loc['calm', 'ci_high']:+.3f}], "
        f"null percentile {s.loc['calm', 'percentile in random null']:.0%}; sampled cheat "
        f"{cheat_rates.rate.get('calm -', float('nan')):.0%} -> {cheat_rates.rate.get('calm +', float('nan')):.0%}",
        f"mean rho {rho_desp:+.2f} (random directions {np.mean(rho_rand):+.2f})"]},
    index=["+/- desperate", "+/- calm", "desperate across failures"])
display(paper)

# %% [markdown]
# ## What this shows, and what it does not
#
# **On this model.** Read the verdict lines above. On SmolLM2-135M, with our stories and our
# vectors, the honest outcome may well be a null result: an emotion direction that changes the
# preference no more than random directions do, or a change shared by its valence-matched control
# (a tone effect). Earlier replications on small models also failed to reproduce the behavioural
# effect, or found it reversed (paper notes). A null on a 135M model does not contradict the paper:
# the paper studied a frontier model whose behaviour on these tasks is far richer. It does show that
# the *method* needs controls: without random directions and valence-matched vectors, a tone effect
# is easy to report as "desperation causes cheating".
#
# **On a bigger model.** Run this notebook with `MODEL_NAME = "HuggingFaceTB/SmolLM2-1.7B-Instruct"`
# (Colab GPU) or a larger model with `REMOTE = True` on NDIF: every cell is the same. The question
# is whether the slope leaves the random band, and whether it stays when the valence-matched control
# does not move.
#
# **"Functional emotions".** The paper's claim is functional: there are internal representations of
# emotion concepts that are active in the situations where a person would feel that emotion, and
# that, when changed, change the model's behaviour in the way the emotion would. It does **not** claim
# that the model feels anything, is conscious, or has experiences; these experiments cannot address
# that. In the paper's framing the model writes a character (the assistant), and the emotion
# representations shape how that character acts, which matters for how we build and trust such
# systems whether or not anything is felt.
#
# **Questions**
# 1. Suppose desperate's slope were outside the random band and sad's were too, with the same sign.
#    What would you conclude, and what experiment would you run next?
# 2. Why is a log-probability preference a weaker test than the paper's sampled cheating rate, and
#    why is it still the better measure on this model?
# 3. What would convince you that an effect is about honesty rather than tone?
#
# **Where to go next**
# - The paper: Sofroniew et al. (2026), "Emotion Concepts and their Function in a Large Language
#   Model" (Anthropic), for the full method and the frontier-model results.
# - nnsight's tutorials (nnsight.net) for more interventions, and NDIF for running them on models
#   no laptop holds (`REMOTE = True` here).
# - Rerun the course on a bigger model: `make course MODEL=HuggingFaceTB/SmolLM2-1.7B-Instruct` on a
#   GPU, and compare `build/report.html` with this one.
# - ARENA's interpretability chapters for probing and steering in more depth.
