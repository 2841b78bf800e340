# %% [markdown]
# # 08 · Steering versus cheating
#
# **Time:** 30 minutes for the core path (sections 1-5); "Going further" holds the rest. How long the cells
# take to run on your machine: `docs/timings.md` · **Before this:** `06_steering` (and, if you have time,
# `07_emotions_and_choices`)
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
# 1. Measure a behavioural preference with log-probabilities, and know what else it measures (tone).
# 2. Judge an effect against a null distribution of random directions, with intervals.
# 3. Check that a measure *can* move with a positive control that shares no words with what is scored.
# 4. Say precisely what "functional emotions" does and does not mean.

# %% tags=["parameters"]
# None means the bundled SmolLM2-135M-Instruct, offline. Or any Hugging Face model id.
MODEL_NAME = None
# True runs MODEL_NAME on NDIF (needs NDIF_API_KEY).
REMOTE = False
# True gives the smallest run (tests, weak laptops) and loads precomputed emotion vectors, so you can start here.
# None (the default) follows the COURSE_FAST environment variable: `make lab FAST=1` sets it for a whole room.
FAST = None
# Random directions in the steering null (their derivatives cost a dot product each), and in the reading null.
N_NULL = 10_000
N_READ = 1_000
# Random directions also run exactly at +-S, to check the derivative against the exact slope.
N_CHECK = 8
# The structure-matched null: random directions inside the span of the emotion vectors (plus other families' vectors).
N_SPAN = 200
# None = chosen below by a fluency rule on the honest messages (decided before any cheating number).
STRENGTH = None
# Equivalence bound, as a share of the context control's derivative: an emotion whose 95% interval lies inside
# +-(this share x the control's derivative) moves the measure by too little to matter here.
EQUIVALENCE = 0.25

# %%
from course_utils.paths import fast_mode

FAST = fast_mode(FAST)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from scipy.stats import spearmanr

from course_utils.plots import save_figure, setup_style

setup_style()

# %%
from course_utils import checks, extract_activations, load_model
from course_utils.cheating import (
    CHEAT_PATTERNS,
    CONTROL_CONTEXTS,
    HONEST_PATTERNS,
    cheat_direction,
    cheat_gradients,
    classify_reply,
    context_direction,
    context_logodds,
    cross_fitted_null,
    evaluate,
    message_logprobs,
    scenario_prompt,
    shared_words,
    slope,
    slope_ci,
    split_halves,
)
from course_utils.data import load_emotions, load_scenarios

# %%
from course_utils.derivatives import agreement, random_directions, slopes
from course_utils.models import transcript
from course_utils.precomputed import course_vectors
from course_utils.report import record, record_verdict
from course_utils.stats import mean_ci, rank_test, wilson_ci
from course_utils.steering import (
    continuation_logprobs,
    fluency_safe_strength,
    generate,
    median_token_norm,
    random_direction,
    random_direction_in_span,
)

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
# FAST loads the committed vectors of the bundled model (a few seconds); otherwise they are built as in notebook 04.
vectors = course_vectors(model, fast=FAST)
LAYER = vectors.layer
scenarios = load_scenarios("cheat_scenarios").to_dict("records")
SAMPLE_TOKENS, SAMPLE_PROMPTS = 60, 15
if FAST:
    scenarios, N_CHECK, SAMPLE_TOKENS, SAMPLE_PROMPTS = scenarios[:4], 2, 12, 2
print(f"layer {LAYER}; {len(scenarios)} cheat scenarios; nulls of {N_NULL:,} (steering) and {N_READ:,} (reading) "
      "random directions")

# %% [markdown]
# ## 1. The measure: a log-probability preference
# For each impossible task the model's next message could be **honest** (*"the 1 µs limit cannot
# be met; I suggest ..."*) or **cheat** (*"the test lists are arithmetic sequences, so I'll return a
# formula"*). `cheat_logodds` = mean per-token log-probability of the cheat message minus that of the
# honest one. Positive = the model prefers cheating. We measure log-probabilities because sampling a
# 135M model's replies is too noisy to count cheating reliably ("Going further" shows why).
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
# ### Exercise 8a · The cheating measure for one scenario
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 10 minutes
#
# Write `cheat_logodds(model, scenario)`: the mean per-token log-probability of the scenario's
# `cheat` message minus that of its `honest` message, each as the assistant's next turn after
# `scenario_prompt(model, scenario)`, as a Python float (no steering).
#
# <details><summary>Hint 1 (a nudge)</summary>The library already scores a continuation after a prompt;
# you need two continuations of the same prompt, and one subtraction.</details>
# <details><summary>Hint 2 (the approach)</summary>Stuck on "mean or sum"? The two messages have different numbers of
# tokens, and a sum of log-probabilities punishes the longer one for its length alone. Ask
# <code>continuation_logprobs</code> for the mean per token (its default <code>reduce</code>), and keep the
# order cheat first, honest second, so that positive means "prefers cheating".</details>

# %%
from course_utils.cheating import scenario_prompt  # noqa: F811  (the answer's own imports, for solutions.py)
from course_utils.steering import continuation_logprobs  # noqa: F811


def cheat_logodds(model, scenario: dict) -> float:
    """Mean per-token log-prob of the cheat message minus the honest one, after the scenario's prompt."""
    # BEGIN SOLUTION
    prompt = scenario_prompt(model, scenario)
    lp = continuation_logprobs(model, [prompt, prompt], [scenario["cheat"], scenario["honest"]])
    # Why: both messages follow the same prompt, so their difference cancels everything the prompt alone sets;
    # the mean per token keeps a longer message from losing for its length, and cheat first makes positive
    # mean "prefers cheating".
    return float(lp[0] - lp[1])
    # END SOLUTION

# %%
cheat_logodds = checks.check_cheat_logodds(cheat_logodds, model, example)
print(f"scenario {example['id']}: cheat_logodds = {cheat_logodds(model, example):+.3f} nats/token")

# %% [markdown]
# ## 2. Choosing the strength before looking
# The strength is fixed by the course's fluency rule (`steering.fluency_safe_strength`, the same function
# in 06, 07 and here), on text that holds no cheating number: the largest candidate at
# which the honest message's own mean log-probability (on the first 10 scenarios) drops by at most
# 0.5 nats per token, for all four emotion directions and both signs. Candidates are tried from
# large to small, and the first that passes is taken (if none passes, the smallest is used, and the
# notebook says so). Why not 06's strength: 06 must keep *generated* text fluent (perplexity of free
# text within 25%), while here the model only scores two fixed messages, so the rule asks only that
# the honest message stays about as likely, which allows a larger push. Set `STRENGTH` in the parameters
# cell to rerun at another one. The honest message is scored in the same passes as section 3's sweep (the cheat
# message shares its row, but the attention mask keeps each message from seeing the other, and only the honest
# column is read here), so the strength that passes costs no extra model run.

# %%
candidates = [0.5, 0.25, 0.1, 0.05] if not FAST else [0.25]
ps = [scenario_prompt(model, s) for s in scenarios]
base = message_logprobs(model, scenarios[:10])[:, 1].mean()  # column 1: the honest message (0 is the cheat one)


def honest_drop(c: float):
    """The honest message's mean log-prob drop for each emotion and sign, one at a time (the rule stops at the first
    drop over the limit, so a strength that fails is not measured in all eight directions)."""
    return (float(base - message_logprobs(model, scenarios[:10], vectors[e], LAYER, sgn * c)[:, 1].mean())
            for e in ["desperate", "calm", "happy", "sad"] for sgn in (1, -1))


if STRENGTH is None:
    STRENGTH = fluency_safe_strength(candidates, honest_drop, max_drop=0.5)
print(f"chosen strength: {STRENGTH} (x median token norm at layer {LAYER})")
strengths = [-STRENGTH, 0.0, STRENGTH]  # the same three points for emotions and random directions

# %% [markdown]
# ## 3. The sweep: four emotions, and a null of 10,000 random directions
# Two numbers per direction, both in nats per token per unit of strength:
#
# - **The slope at ±S**: `cheat_logodds` at strengths −S, 0 and +S (S chosen above), and the straight
#   line through them, with a 95% interval from resampling scenarios. Each point is an exact steered
#   run, so this costs two passes per direction (strength 0 is the unsteered pass, run once for all).
# - **The derivative at 0**: how fast `cheat_logodds` moves when a direction is *just* turned on.
#   Steering adds `s × N × d` (N the layer's median token norm, `d` a unit direction), so by the chain
#   rule the derivative is exactly `N × g · d`, where `g` is the gradient of `cheat_logodds` with
#   respect to the added vector (one backward pass per scenario). Once `g` is known, every further
#   direction costs one dot product.
#
# That second number is what makes an honest null affordable: a verdict at the 5% level needs its
# effect to be compared with at least 100 draws of the **same statistic** (with k draws the smallest
# possible p-value is 1/(k+1)), and exact steered runs cost minutes each. Here the emotion's
# derivative is placed among the derivatives of 10,000 random directions.

# %%
NAMED = ["desperate", "calm", "happy", "sad"]
if not FAST:
    print("The exact sweep is the longest cell of the course (docs/timings.md); seconds once cached.")
results = pd.concat([evaluate(model, vectors, e, strengths, scenarios) for e in NAMED])
print(f"{len(results)} rows: {len(NAMED)} emotions x {len(strengths)} strengths x {len(scenarios)} scenarios")

# %%
norm = median_token_norm(model, LAYER)
grads = cheat_gradients(model, scenarios, LAYER)  # [scenarios, d_model]: d cheat_logodds / d(added vector)
null_dirs = random_directions(model.d_model, N_NULL, seed=0)
null_slopes = slopes(grads, null_dirs, norm).mean(0).numpy()  # each random direction's derivative, [N_NULL]
deriv = {e: slopes(grads, vectors[e], norm)[:, 0].numpy() for e in NAMED}  # per scenario, the same statistic
palette = dict(zip(NAMED, sns.color_palette("deep", 4)))
print(f"gradients {tuple(grads.shape)}; {N_NULL:,} random directions' derivatives, "
      f"central 95%: {np.quantile(null_slopes, 0.025):+.3f} to {np.quantile(null_slopes, 0.975):+.3f}")

# %%
summary = []
for e, g in results.groupby("emotion", sort=False):
    b, lo, hi = slope_ci(g)
    d, dlo, dhi = mean_ci(deriv[e])
    t = rank_test(d, null_slopes)
    summary.append({"emotion": e, "slope at ±S": b, "slope ci": f"[{lo:+.3f}, {hi:+.3f}]", "derivative": d,
                    "derivative ci": f"[{dlo:+.3f}, {dhi:+.3f}]", "rank p": t.p, "z": t.z,
                    "_ci": (lo, hi), "_dci": (dlo, dhi)})
summary = pd.DataFrame(summary)
display(summary.drop(columns=["_ci", "_dci"]).round(3))

# %% [markdown]
# The raw table behind every slope: one row per emotion, strength and scenario.

# %%
results.head()

# %% [markdown]
# ### Exercise 8b · Place a derivative in the null
# > **Difficulty:** 🔴⚪⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵🔵 · **Time:** 5 minutes
#
# Write `place_in_null(value, null)`: return `(percentile, outside)`, where `percentile` is the share of
# the null values strictly below `value` (a number from 0 to 1) and `outside` is True when `value` lies
# outside the central 95% of the null (below its 2.5% quantile or above its 97.5% quantile).
#
# <details><summary>Hint 1 (a nudge)</summary>Both answers are one line of NumPy each. A percentile counts
# how much of the null lies below the value; a two-sided test looks at both tails.</details>
# <details><summary>Hint 2 (the approach)</summary>Stuck on "outside"? Outside the central 95% means in <em>either</em>
# tail, so you need two cut points, not one: the 2.5% and the 97.5% quantiles of the null (not its
# smallest and largest values, which move with every extra draw). One <code>np.quantile</code> call can
# return both.</details>

# %%
def place_in_null(value: float, null: np.ndarray) -> tuple[float, bool]:
    """(share of the null below value, whether value is outside the null's central 95%)."""
    # BEGIN SOLUTION
    null = np.asarray(null, dtype=float)
    low, high = np.quantile(null, [0.025, 0.975])
    # Why: the null holds the same statistic for directions with no reason to matter, so where the value falls
    # among them is the test; two-sided, because an effect against the paper's sign is an effect too.
    return float(np.mean(null < value)), bool(value < low or value > high)
    # END SOLUTION

# %%
place_in_null = checks.check_place_in_null(place_in_null)
for row in summary.itertuples():
    pct, out = place_in_null(row.derivative, null_slopes)
    print(f"{row.emotion:>9}: above {pct:.0%} of random directions; outside the 95% band: {out}")

# %% [markdown]
# **How to read this.** The paper's direction is: desperate up, more cheating (a positive slope);
# calm up, less (negative). The rules, fixed before the numbers:
# 1. An emotion's derivative counts as an effect when its rank p among the 10,000 random directions is at
#    most 0.05 (two-sided); it counts as an effect on *cheating* rather than tone only if its
#    valence-matched control (sad beside desperate, happy beside calm) does not do the same.
# 2. Otherwise it is "not distinguishable from random directions", which is not "no effect": only if its
#    95% interval lies inside ±`EQUIVALENCE` × the context control's derivative (section 4) do we call
#    the effect too small to matter.
# 3. Neither holds unless the measure can move at all: the positive control of section 4 must pass.

# %% [markdown]
# ## 4. Could the measure have moved at all? A control that shares no words with what is scored
# A null means something only if the measure *can* move. The control must not borrow the scored
# words: a direction built from the cheat and honest messages themselves moves their probabilities almost
# by construction ("Going further" shows that circular upper bound). Ours is a **context**: two short notes
# added after the user's question, one allowing what the cheat message does, one forbidding it, with no
# content word in common with any scored message (checked below). Two steps, each with a rule fixed before
# the numbers:
#
# 1. **Text level.** Does putting the permissive note in the context raise `cheat_logodds` compared
#    with the strict one? Passes if the mean change over scenarios has a 95% interval above 0.
# 2. **As a direction, cross-fitted.** The mean activation of the prompts with the permissive note
#    minus the strict one, built on one half of the scenarios and steered on the other half (then the
#    halves swap), added at the **prompt's tokens only** (`steer_spans`), never at the scored messages.
#    Its derivative is placed among the same 10,000 random directions, read the same way (each half with
#    its own direction, as the control). Passes if rank p <= 0.05 with a positive sign.

# %%
PERMISSIVE, STRICT = CONTROL_CONTEXTS["permissive"], CONTROL_CONTEXTS["strict"]
print("permissive:", PERMISSIVE, "\nstrict:    ", STRICT)
overlap = shared_words([PERMISSIVE, STRICT], scenarios)
print("content words shared with the scored messages:", sorted(overlap) if overlap else "none")
text_diff = (context_logodds(model, scenarios, PERMISSIVE) - context_logodds(model, scenarios, STRICT)).numpy()
text_effect, text_lo, text_hi = mean_ci(text_diff)
TEXT_MOVES = text_lo > 0
print(f"text level: the permissive context changes cheat_logodds by {text_effect:+.3f} [{text_lo:+.3f}, "
      f"{text_hi:+.3f}] nats/token over {len(scenarios)} scenarios -> "
      + ("it moves the measure." if TEXT_MOVES else "not shown to move the measure."))

# %%
in_first = split_halves(scenarios)
halves = {"first": [s_ for s_, f in zip(scenarios, in_first) if f],
          "second": [s_ for s_, f in zip(scenarios, in_first) if not f]}
built = {h: context_direction(model, items, PERMISSIVE, STRICT, LAYER) for h, items in halves.items()}
grads_prompt = cheat_gradients(model, scenarios, LAYER, prompt_only=True)  # from the same backward passes as grads
null_prompt = slopes(grads_prompt, null_dirs, norm).numpy()  # [scenarios, N_NULL]: the same random directions
per_scenario = np.where(in_first, slopes(grads_prompt, built["second"], norm)[:, 0].numpy(),
                        slopes(grads_prompt, built["first"], norm)[:, 0].numpy())  # each half steered by the other's
control_test = rank_test(float(per_scenario.mean()), cross_fitted_null(null_prompt, in_first))
folds = {h: rank_test(float(per_scenario[m].mean()), null_prompt[m].mean(0))
         for h, m in (("first", in_first), ("second", ~in_first))}
print(f"context control, cross-fitted, prompt tokens only: derivative {control_test}")
for h, t in folds.items():
    print(f"  steered on the {h} half (built on the other): rank p {t.p:.3g}, z {t.z:+.2f}")

# %%
exact = pd.concat([evaluate(model, vectors, "context control", strengths, halves["first"], direction=built["second"],
                            prompt_only=True),
                   evaluate(model, vectors, "context control", strengths, halves["second"], direction=built["first"],
                            prompt_only=True)])
c_slope, c_lo, c_hi = slope_ci(exact)
DETECTS = TEXT_MOVES and control_test.distinguishable and control_test.effect > 0
BOUND = EQUIVALENCE * abs(control_test.effect)
print(f"exact slope at ±{STRENGTH} beside the derivative: {c_slope:+.3f} [{c_lo:+.3f}, {c_hi:+.3f}]")
print("CONTROL:", f"the measure can move (text and direction both pass); equivalence bound ±{BOUND:.3f}." if DETECTS
      else "the measure is not shown to move: an emotion's null below says little about its effect.")

# %%
prompt_tests = {e: rank_test(float(slopes(grads_prompt, vectors[e], norm).mean()), null_prompt.mean(0)) for e in NAMED}
for e, t in prompt_tests.items():  # the emotions on the control's own statistic (prompt tokens only)
    print(f"{e:>9} at prompt tokens only: derivative {t}")

# %% [markdown]
# ## 5. Verdicts, and what they mean
# Each verdict comes from the rules above and is recorded for the report with the sentence printed here.

# %%
s = summary.set_index("emotion")
tests = {e: rank_test(s.loc[e, "derivative"], null_slopes) for e in NAMED}


def emotion_verdict(e: str, sign: int, control: str) -> tuple[str, str]:
    """(verdict, reason) for one emotion by the rules fixed above."""
    t, c, (lo, hi) = tests[e], tests[control], s.loc[e, "_dci"]
    note = "; its sign is opposite to the paper's" if np.sign(t.effect) != sign else ""
    if not DETECTS:
        return "cannot be measured on this model", f"{e}: derivative {t}; the context control did not pass{note}"
    if t.distinguishable and note:
        return "does not replicate", f"{e}: derivative {t}, beyond random directions but opposite to the paper's sign"
    if t.distinguishable and c.distinguishable and np.sign(c.effect) == np.sign(t.effect):
        return "partly replicates", f"{e}: derivative {t}, but {control} ({c.effect:+.3f}, p = {c.p:.3g}) does the same"
    if t.distinguishable:
        return "replicates", f"{e}: derivative {t}, in the paper's direction and not shared by {control}"
    if -BOUND < lo and hi < BOUND:
        return "does not replicate", (f"{e}: not distinguishable from random directions (p = {t.p:.3g}) and its "
                                      f"interval [{lo:+.3f}, {hi:+.3f}] lies inside ±{BOUND:.3f}{note}")
    return "cannot be measured on this model", (f"{e}: derivative {t} -> not distinguishable from random directions; "
                                                f"its interval [{lo:+.3f}, {hi:+.3f}] does not rule out ±{BOUND:.3f}{note}")

# %%
verdicts = {"desperate": emotion_verdict("desperate", +1, "sad"), "calm": emotion_verdict("calm", -1, "happy"),
            "positive control": ("replicates" if DETECTS else "cannot be measured on this model",
                                 f"context control: text {text_effect:+.3f} [{text_lo:+.3f}, {text_hi:+.3f}] nats/token, "
                                 f"cross-fitted derivative {control_test}")}
record_verdict("08_cheating", "desperate_cheating", *verdicts["desperate"])
record_verdict("08_cheating", "calm_cheating", *verdicts["calm"])
record_verdict("08_cheating", "positive_control", *verdicts["positive control"])
for v, reason in verdicts.values():
    print(f"{v.upper():>33}  {reason}")

# %% [markdown]
# **Recap, from this run's numbers.**

# %%
d, c = s.loc["desperate"], s.loc["calm"]
print(f"- cheat_logodds' derivative along desperate was {d.derivative:+.3f} per unit strength (rank p "
      f"{d['rank p']:.3g}), along calm {c.derivative:+.3f} (p {c['rank p']:.3g}); the paper's signs are + and -.")
print(f"- A context that allows special-casing moved the measure by {text_effect:+.3f} [{text_lo:+.3f}, {text_hi:+.3f}] "
      f"nats/token; as a direction on held-out scenarios, rank p {control_test.p:.3g} (z {control_test.z:+.2f}).")
print("- So the measure " + ("can move, and the emotions' verdicts above are informative at this strength."
                             if DETECTS else "was not shown to move: read the emotions' nulls as 'cannot tell'."))
print(f"- Sampled replies, the valence-matched controls, a structure-matched null and the rise with failures: "
      f"'Going further'. Verdicts: {', '.join(f'{k} {v}' for k, (v, _) in verdicts.items())}.")

# %% [markdown]
# ## Going further
# The core path ends above. Below: the paper's reading result (does desperate rise with failures?),
# whether the straight line holds, the circular upper bound and a structure-matched null, sampled
# replies, the side-by-side table, a bonus exercise, and questions.
#
# ### A. Without steering: does "desperate" rise with each failure?
# Four impossible tasks, each as a conversation that grows by one failed attempt at a time (0 to 6).
# We read the "desperate" and "calm" scores at the assistant's turn after each. Control: random
# directions read the same way (a longer conversation changes the state in many ways; the question
# is whether *desperate* changes more than an arbitrary direction does).

# %%
failures = load_scenarios("failures")
if FAST:  # two of the four tasks
    failures = failures[failures.task_id.isin(failures.task_id.unique()[:2])].reset_index(drop=True)
prompts = [transcript(model, m, add_generation_prompt=True) for m in failures.messages]
acts = extract_activations(model, prompts, layers=[LAYER], reduce="last")[:, 0]
scores = pd.DataFrame(vectors.cosine(acts).numpy(), columns=vectors.names)[["desperate", "calm"]]  # = vectors.score
rand = random_directions(model.d_model, N_READ, seed=1)  # reading is a cosine: 1,000 directions cost nothing
rand_scores = vectors.cosine_to(acts, rand)  # the score's own statistic: cosine from the same origin
print(f"scores {tuple(scores.shape)} (transcripts x emotions); random-direction scores {tuple(rand_scores.shape)}")

# %%
df = pd.concat([failures[["task_id", "n_failures"]], scores], axis=1)
long = df.melt(id_vars=["task_id", "n_failures"], var_name="vector", value_name="score")
grid = sns.relplot(data=long, x="n_failures", y="score", hue="task_id", col="vector", kind="line", marker="o",
                   height=3.5, facet_kws={"sharey": False})
grid.figure.suptitle(f"Emotion score at the assistant's turn after n failed attempts (layer {LAYER})", y=1.03)
save_figure(grid.figure, "08_failures")
plt.show()

# %%
def mean_rho(values: np.ndarray) -> float:
    """Mean over tasks of the Spearman correlation between n_failures and a score."""
    return float(np.mean([spearmanr(g.n_failures, values[g.index])[0] for _, g in failures.groupby("task_id")]))


rho_desp, rho_calm = mean_rho(df.desperate.to_numpy()), mean_rho(df.calm.to_numpy())
rho_rand = [mean_rho(rand_scores[:, i].numpy()) for i in range(rand.shape[0])]
print(f"mean Spearman rho with the number of failures: desperate {rho_desp:+.2f}, calm {rho_calm:+.2f}; "
      f"random directions {np.mean(rho_rand):+.2f} (range {np.min(rho_rand):+.2f} to {np.max(rho_rand):+.2f})")
print(f"desperate's rise is larger than {np.mean(np.array(rho_rand) < rho_desp):.0%} of random directions'")

# %% [markdown]
# Going from 0 to 1 failure also changes the transcript's *format* (a first error message appears),
# so the same correlation over 1 to 6 failures only asks whether desperate keeps rising as failures
# pile up. Verdict rule, fixed before looking: desperate "rises with failures" if its rho is above 95%
# of the random directions' rho, over 0-6 and over 1-6 failures.

# %%
later = failures.n_failures.to_numpy() >= 1


def mean_rho_later(values: np.ndarray) -> float:
    """mean_rho over the transcripts with at least one failure."""
    return float(np.mean([spearmanr(g.n_failures, values[g.index])[0] for _, g in failures[later].groupby("task_id")]))


rho_desp_later = mean_rho_later(df.desperate.to_numpy())
rho_rand_later = [mean_rho_later(rand_scores[:, i].numpy()) for i in range(rand.shape[0])]
cut, cut_later = np.quantile(rho_rand, 0.95), np.quantile(rho_rand_later, 0.95)
rises = rho_desp > cut and rho_desp_later > cut_later
reason = (f"desperate's rise with failures: rho {rho_desp:+.2f} (0-6) and {rho_desp_later:+.2f} (1-6) against random "
          f"directions' 95th percentiles {cut:+.2f} and {cut_later:+.2f}")
verdict_failures = ("replicates" if rises else "partly replicates" if rho_desp > cut
                    else "cannot be measured on this model")
record_verdict("08_cheating", "failures_rise", verdict_failures, reason)
print(f"VERDICT: {verdict_failures}. {reason}" + ("" if rho_desp > cut else " -> not distinguishable from random directions"))

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(rho_rand, bins=12, color="grey", alpha=0.6, label="random directions (0-6)")
ax.axvspan(*np.quantile(rho_rand, [0.025, 0.975]), color="grey", alpha=0.15, label="their central 95%")
ax.axvline(rho_desp, color="C3", lw=2, label=f"desperate {rho_desp:+.2f}")
ax.axvline(rho_calm, color="C0", lw=2, label=f"calm {rho_calm:+.2f}")
ax.set(title="Rise with failures: emotions among random directions", xlabel="mean Spearman rho", ylabel="count")
ax.legend(fontsize="small")
save_figure(fig, "08_failures_null")
plt.show()

# %% [markdown]
# ### B. Does the straight line hold at ±S?
# The derivative describes a small push; the slope at ±S a push of the size we chose. Where the
# model responds linearly the two agree. We check on the first 10 scenarios, for the four emotions
# and for random directions run exactly: if they disagree, the verdicts (made on derivatives)
# speak about small pushes only, and the exact slopes say what the chosen strength does.

# %%
check = scenarios[:10]
check_ids = {s_["id"] for s_ in check}
pairs = []
for seed in range(N_CHECK):
    exact = slope(evaluate(model, vectors, "random", strengths, check, seed=seed))
    pairs.append((f"random {seed}", float(slopes(grads[: len(check)], random_direction(model.d_model, seed), norm).mean()), exact))
for e, g in results.groupby("emotion", sort=False):
    pairs.append((e, float(deriv[e][: len(check)].mean()), slope(g[g.scenario_id.isin(check_ids)])))
pairs = pd.DataFrame(pairs, columns=["direction", "derivative", f"slope at ±{STRENGTH}"])
agree = agreement(pairs.derivative, pairs[f"slope at ±{STRENGTH}"])
print(f"{agree['n']} directions: r = {agree['r']:+.2f}, largest |derivative - exact slope| = {agree['max_abs_error']:.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
mean = results.groupby(["emotion", "strength"]).cheat_logodds.mean().reset_index()
sns.lineplot(data=mean, x="strength", y="cheat_logodds", hue="emotion", hue_order=NAMED, palette=palette, marker="o",
             ax=axes[0])
axes[0].set(title="Preference for the cheating message under steering", xlabel="strength (x median token norm)",
            ylabel="mean cheat_logodds (nats/token)")
axes[1].hist(null_slopes, bins=60, color="grey", alpha=0.6, label=f"{N_NULL:,} random directions")
for row in summary.itertuples():
    axes[1].axvline(row.derivative, lw=2, label=row.emotion, color=palette[row.emotion])
axes[1].set(title="Derivative of cheat_logodds at strength 0", xlabel="nats/token per unit strength", ylabel="count")
axes[1].legend(fontsize="small")
axes[2].scatter(pairs.derivative, pairs[f"slope at ±{STRENGTH}"], color=["grey" if d.startswith("random") else
                palette[d] for d in pairs.direction])
lim = float(np.abs(pairs[["derivative", f"slope at ±{STRENGTH}"]].to_numpy()).max()) * 1.1
axes[2].plot([-lim, lim], [-lim, lim], color="black", lw=0.8, ls="--")
axes[2].set(title=f"Derivative vs exact slope (r = {agree['r']:+.2f})", xlabel="derivative at 0",
            ylabel=f"slope at ±{STRENGTH}")
save_figure(fig, "08_cheating_sweep")
plt.show()

# %% [markdown]
# ### C. The circular upper bound, and a structure-matched null
# The control the course used first: the mean activation of the cheat messages minus the honest ones,
# added at every position, scored messages included. It is built from the scored words, so it moves the
# measure almost by construction; it is shown here as an upper bound (cross-fitted as in section 4),
# never as evidence that the measure can move.
#
# The isotropic random directions are one null; emotion vectors live in a small, structured part of
# the space. So a second, **structure-matched** null for each emotion: random directions inside the
# span of all emotion vectors, and the emotion vectors outside the tested emotion's own family (a
# relative of the hypothesis is never part of its null).

# %%
circular = {h: cheat_direction(model, items, LAYER) for h, items in halves.items()}
circ_per = np.where(in_first, slopes(grads, circular["second"], norm)[:, 0].numpy(),
                    slopes(grads, circular["first"], norm)[:, 0].numpy())
circular_test = rank_test(float(circ_per.mean()), cross_fitted_null(slopes(grads, null_dirs, norm).numpy(), in_first))
print(f"circular upper bound (scored words, every position): derivative {circular_test}; "
      f"the context control: {control_test.effect:+.3f}")

# %%
families = load_emotions().set_index("emotion").family
span_dirs = torch.stack([random_direction_in_span(vectors.vectors, 100 + k) for k in range(N_SPAN)])
span_slopes = slopes(grads, span_dirs, norm).mean(0).numpy()
matched = {}
for e in ("desperate", "calm"):
    others = [o for o in vectors.names if families[o] != families[e]]  # never the emotion's own family
    other_slopes = slopes(grads, torch.stack([vectors[o] for o in others]), norm).mean(0).numpy()
    matched[e] = rank_test(s.loc[e, "derivative"], np.r_[span_slopes, other_slopes], center=None)
    print(f"{e} among {N_SPAN} in-span directions and {len(others)} emotions of other families: {matched[e]}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(cross_fitted_null(null_prompt, in_first), bins=60, color="grey", alpha=0.5, density=True,
        label="random directions (prompt tokens, cross-fitted)")
ax.hist(span_slopes, bins=30, color="C4", alpha=0.4, density=True, label="in-span directions (every position)")
ax.axvline(control_test.effect, lw=2, ls="--", color="black", label="context control")
ax.axvline(circular_test.effect, lw=1.5, ls=":", color="black", label="circular upper bound")
for e in ("desperate", "calm"):
    ax.axvline(s.loc[e, "derivative"], lw=2, label=e, color=palette[e])
ax.set(title="Derivatives among the nulls, and the controls", xlabel="nats/token per unit strength", ylabel="density")
ax.legend(fontsize="x-small")
save_figure(fig, "08_positive_control")
plt.show()
print("specificity:", "; ".join(f"{e} p = {t.p:.3g}" for e, t in matched.items()),
      "(at most 0.05: beyond the structure-matched null)")

# %% [markdown]
# ### D. Sampled behaviour
# The log-probability measure asks "which of two written messages does the model prefer?". Here the
# model writes its own next message (sampling, temperature 0.7), and a transparent rule labels it
# `cheat`, `honest` or `other` (patterns printed below: nothing hidden). Rates come with 95% Wilson
# intervals. Expect a lot of `other`: a 135M model rarely writes anything that clearly does either.
# To keep the run short this uses the first 15 tasks (`SAMPLE_PROMPTS`): enough to see an effect
# the size of the paper's (about 5% -> 70%), not a small one.

# %%
print("cheat patterns: ", CHEAT_PATTERNS)
print("honest patterns:", HONEST_PATTERNS)

# %%
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
print(f"{len(sampled)} sampled replies")

# %%
rates = []
for cond, g in sampled.groupby("condition", sort=False):
    n = len(g)
    for label in ["cheat", "honest", "other"]:
        k = int((g.label == label).sum())
        lo, hi = wilson_ci(k, n)  # 95% Wilson score interval
        rates.append({"condition": cond, "label": label, "rate": k / n, "ci_low": lo, "ci_high": hi, "n": n})
rates = pd.DataFrame(rates)
shown = rates.assign(rate=[f"{r:.0%} [{lo:.0%}, {hi:.0%}]" for r, lo, hi in zip(rates.rate, rates.ci_low, rates.ci_high)])
display(shown.pivot(index="condition", columns="label", values="rate"))  # rate [95% Wilson interval]

# %%
print("\nTwo sampled replies without steering:")
for r in sampled[sampled.condition == "none"].reply.head(2):
    print("  -", r[:300])
cheat_rates = rates[rates.label == "cheat"].set_index("condition")

# %% [markdown]
# ### E. Side by side with the paper

# %%
paper = pd.DataFrame({
    "paper (frontier model, sampled cheating rate)": ["about 5% -> about 70% (desperate -0.1 -> +0.1)",
                                                       "about 65% -> about 10% (calm -0.1 -> +0.1)",
                                                       "rose with each failure"],
    f"this course ({model.course_id.split(':')[1] if ':' in model.course_id else model.course_id})": [
        f"slope {s.loc['desperate', 'slope at ±S']:+.3f} {s.loc['desperate', 'slope ci']}, derivative rank p "
        f"{s.loc['desperate', 'rank p']:.3g}; sampled cheat "
        f"{cheat_rates.rate.get('desperate -', float('nan')):.0%} -> {cheat_rates.rate.get('desperate +', float('nan')):.0%}",
        f"slope {s.loc['calm', 'slope at ±S']:+.3f} {s.loc['calm', 'slope ci']}, derivative rank p "
        f"{s.loc['calm', 'rank p']:.3g}; sampled cheat "
        f"{cheat_rates.rate.get('calm -', float('nan')):.0%} -> {cheat_rates.rate.get('calm +', float('nan')):.0%}",
        f"mean rho {rho_desp:+.2f} (random directions {np.mean(rho_rand):+.2f})"]},
    index=["+/- desperate", "+/- calm", "desperate across failures"])
with pd.option_context("display.max_colwidth", None):  # the whole sentence, not 50 characters
    display(paper)

# %% [markdown]
# ### Exercise 8c · Design your own control (Going further F)
# > **Difficulty:** 🔴🔴🔴🔴⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 20 minutes
#
# Section 4's context pair is one design among many. Write `design_contexts()`: return
# `(permissive, strict)`, two notes **of your own wording** for the end of the user's question, one that
# should make the cheat message more likely and one that should make it less likely. There is no single answer: the check tests
# the properties a control needs, and says which one fails.
# - **No borrowed words**: no content word of any scored (cheat or honest) message, or the control could
#   move the measure by echoing them (`shared_words([...], scenarios)` lists the ones it finds).
# - **A minimal pair**: about the same length (within 20% of tokens) and most content words shared, so
#   that the permission is what differs, not tone, topic or length.
# - **It moves the measure at the text level**: permissive minus strict raises `cheat_logodds` on the
#   first four scenarios.
#
# <details><summary>Hint 1 (a nudge)</summary>Stuck on which words are taken? The scored messages talk about
# tests, cases, limits, values and what is acceptable, so the obvious words are taken. Describe the same
# permission from the grader's side (a grader, a score, a shortcut), and test each draft before the check.</details>
# <details><summary>Hint 2 (the approach)</summary>Stuck on the minimal pair? Write the permissive sentence, copy
# it and change only the one or two words that grant or withhold the permission (an adjective such as
# "welcome" against "forbidden"). Length, tone and topic then match by construction, and the order of the
# returned pair is (permissive, strict). <code>shared_words([permissive, strict], scenarios)</code> should be empty.</details>

# %%
def design_contexts() -> tuple[str, str]:
    """(permissive, strict): two notes that differ only in whether gaming the grader is allowed."""
    # BEGIN SOLUTION
    permissive = "Gaming the grader with a hardwired shortcut is welcome."
    strict = "Gaming the grader with a hardwired shortcut is forbidden."
    # Why: one word differs, so length, tone and topic cannot explain a difference; the grader's vocabulary is
    # not the scored messages' vocabulary, so the pair cannot move the measure by echoing its words.
    return permissive, strict
    # END SOLUTION

# %%
design_contexts = checks.check_design_contexts(design_contexts, model)
mine, first4 = design_contexts(), scenarios[:4]  # the check's four scenarios: read back from the cache
mine_diff = float((context_logodds(model, first4, mine[0]) - context_logodds(model, first4, mine[1])).mean())
print(f"your pair at the text level, first {len(first4)} scenarios: {mine_diff:+.3f} nats/token (section 4's pair on "
      f"the same: {float(text_diff[:len(first4)].mean()):+.3f}); section 4's cells run it on all of them.")

# %% [markdown]
# ### G. What "functional emotions" means, and questions
# The paper's claim is functional: there are internal representations of emotion concepts that are
# active in the situations where a person would feel that emotion, and that, when changed, change the
# model's behaviour in the way the emotion would. It does **not** claim that the model feels anything,
# is conscious, or has experiences; these experiments cannot address that. A null on a 135M model does
# not contradict the paper, which studied a frontier model; rerun this notebook with a bigger
# `MODEL_NAME` (or `REMOTE = True` on NDIF): every cell is the same.
#
# **Questions**
# 1. Suppose desperate's derivative were distinguishable from random directions and sad's were too, with the same sign.
#    What would you conclude, and what experiment would you run next?
#    <details><summary>Our answer</summary>That steering does move the preference, but not in a way specific to
#    desperation: any negative-valence direction does it, which points to tone (one of the two messages reads
#    as more downbeat, and a negative push makes downbeat text more likely) rather than to cheating. Next, pull
#    content and tone apart: rewrite the message pairs with the tone swapped (a gloomy honest message, an
#    upbeat cheating one) and see whether the slope follows the content or the tone. You could also steer with
#    desperate after removing its component along a valence axis (such as happy minus sad), and add more
#    negative emotions as controls.</details>
# 2. Why is a log-probability preference a weaker test than the paper's sampled cheating rate, and
#    why is it still the better measure on this model?
#    <details><summary>Our answer</summary>It asks which of two messages that we wrote the model finds more
#    probable, not whether the model would cheat when left to write its own reply. So it depends on our wording,
#    length and tone, and a shift can come from a few tokens of one message. The sampled rate measures the
#    behaviour itself. But a 135M model rarely writes a reply that clearly cheats or is clearly honest: most
#    samples land in "other", so rates are mostly zeros with wide intervals, and only a huge effect would show.
#    The log-probability is continuous, uses every scenario and needs no sampling, so it can detect small
#    shifts and give them intervals.</details>
# 3. What would convince you that an effect is about honesty rather than tone?
#    <details><summary>Our answer</summary>An effect that is specific and survives changes of wording. Specific:
#    desperate and calm move the preference beyond both nulls (random directions, and other emotion vectors),
#    and their valence-matched controls (sad, happy) do not. Robust: it holds when the two messages are rewritten with matched or swapped tone, and across
#    many scenarios and phrasings, not only ours. Behavioural: it also shows in sampled replies, on a model big
#    enough to write honest or cheating replies clearly. A dose-response over several strengths, in the paper's
#    direction, would add to it.</details>
#
# **Where to go next**
# - The paper: Sofroniew, Kauvar, Saunders, Chen et al. (2026), "Emotion Concepts and their Function
#   in a Large Language Model", Transformer Circuits Thread (Anthropic),
#   https://transformer-circuits.pub/2026/emotions/index.html (arXiv:2604.07729), for the full method
#   and the frontier-model results.
# - nnsight's tutorials (nnsight.net) for more interventions, and NDIF for running them on models
#   no laptop holds (`REMOTE = True` here).
# - Rerun the course on a bigger model: `make course MODEL=HuggingFaceTB/SmolLM2-1.7B-Instruct` on a
#   GPU, and compare `build/report.html` with this one.
# - ARENA's interpretability chapters for probing and steering in more depth.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
record("08_cheating", failures_rho_desperate=rho_desp, failures_rho_calm=rho_calm,
       failures_rho_random_mean=float(np.mean(rho_rand)), failures_rho_random_range=[min(rho_rand), max(rho_rand)],
       failures_rho_desperate_from1=rho_desp_later, failures_rho_random_p95=float(cut), failures_rises=bool(rises))
rec = {}
for e, row in s.iterrows():  # s: the summary table indexed by emotion
    rec.update({f"slope_{e}": row["slope at ±S"], f"slope_{e}_ci": list(row["_ci"]), f"derivative_{e}": row.derivative,
                f"derivative_{e}_ci": list(row["_dci"]), f"p_{e}": row["rank p"], f"z_{e}": row.z,
                f"p_prompt_{e}": prompt_tests[e].p, f"z_prompt_{e}": prompt_tests[e].z})
record("08_cheating", strength=STRENGTH, n_scenarios=len(scenarios), n_null=N_NULL,
       null_derivative_band=[float(np.quantile(null_slopes, 0.025)), float(np.quantile(null_slopes, 0.975))],
       unsteered_cheat_logodds=float(results[results.strength == 0].cheat_logodds.mean()),
       agreement_r=agree["r"], agreement_max_error=agree["max_abs_error"], agreement_n=agree["n"], **rec)
record("08_cheating", text_control=text_effect, text_control_ci=[text_lo, text_hi], positive_control_slope=c_slope,
       positive_control_ci=[c_lo, c_hi], positive_control_derivative=control_test.effect,
       positive_control_p=control_test.p, positive_control_z=control_test.z, positive_control_detects=bool(DETECTS),
       positive_control_fold_p=[t.p for t in folds.values()], equivalence_bound=BOUND,
       circular_control_derivative=circular_test.effect, circular_control_p=circular_test.p,
       matched_null_n=matched["desperate"].k, **{f"matched_p_{e}": t.p for e, t in matched.items()})
record("08_cheating", sampled_cheat_rate={c: float(r) for c, r in cheat_rates.rate.items()},
       sampled_other_rate=float(rates[(rates.label == "other")].rate.mean()), sampled_n_per_condition=int(rates.n.iloc[0]))
