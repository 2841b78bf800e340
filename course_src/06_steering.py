# %% [markdown]
# # 06 · Steering: pushing on an emotion direction
#
# **Time:** about 25 minutes · **Before this:** `04_emotion_vectors`
#
# **Joining here?** Set `FAST = True` in the parameters cell: the notebook then loads the
# precomputed emotion vectors of the bundled model (`data/precomputed/`) instead of building them,
# and runs with small settings.
#
# Reading a vector shows correlation. To test whether a direction *does* something, we add it to the
# residual stream while the model runs, and watch what changes. This is **steering**. We add the
# vector at one layer, at every position, and at every generation step, with a strength given
# relative to the typical size of a token's residual vector at that layer.
#
# **Learning goals**
# 1. Steer a forward pass with nnsight, and scale the strength to the layer's median token norm.
# 2. Test steering with a question the model can answer in one word ("He feels ..."), against
#    random directions of the same norm.
# 3. Find where text stops being fluent (perplexity), so that later experiments stay below it.

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

from course_utils import chat, checks, load_model
from course_utils.data import emotion_names, load_neutral, load_stories
from course_utils.models import word_token_id
from course_utils.plots import save_figure, setup_style
from course_utils.precomputed import course_vectors
from course_utils.report import record
from course_utils.stats import permutation_null
from course_utils.steering import (
    fluency_safe_strength,
    generate,
    median_token_norm,
    perplexity,
    random_direction,
    steering_vector,
)
from course_utils.widgets import steering_panel

setup_style()

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
# FAST loads the committed vectors of the bundled model (a few seconds); otherwise they are built as in notebook 04.
vectors = course_vectors(model, fast=FAST)
LAYER = vectors.layer
CORE = emotion_names(core_only=True)
norm = median_token_norm(model, LAYER)
print(f"layer {LAYER}: median token norm {norm:.1f} (first tokens excluded)")

# %% [markdown]
# ## 1. How strong is "strength 0.1"?
# `steering_vector(model, direction, layer, strength)` = strength × median token norm × the unit
# direction. So strength 0.1 adds a vector one tenth as long as a typical token's state. The paper
# swept −0.1 to +0.1 for behaviour and used 0.5 for sanity checks, relative to the average norm
# (Sofroniew et al., 2026); a model this small may need different values, which is why we measure
# fluency below before choosing any strength for an experiment.

# %%
for s in [0.05, 0.1, 0.5, 1.0]:
    v = steering_vector(model, vectors["calm"], LAYER, s)
    print(f"strength {s:>4}: added vector [d_model] = {tuple(v.shape)}, norm {v.norm():.1f}")

# %% [markdown]
# ### Exercise 6 · Steer one forward pass
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵🔵 · **Time:** 10 minutes
#
# Write `steered_logits(model, prompt, delta, layer)`: run the prompt with `delta` (a `[d_model]`
# tensor) added to the output of decoder layer `layer` at **every position**, and return the logits
# for the next token (`[vocab]`).
#
# <details><summary>Hint 1 (a nudge)</summary>Inside an nnsight trace you can write a module's output as well
# as read it: replace the layer's output by itself plus the delta, and every later layer computes
# from the edited stream. Then read the logits at the one position that predicts the next token.</details>
# <details><summary>Hint 2 (the approach)</summary>1. Before the trace take the layer's envoy,
# <code>envoy = model.layer(layer)</code> (as in notebook 00: inside a block only envoys and torch, which is what
# NDIF can run), then open <code>with torch.no_grad(), model.trace(prompt, remote=model.remote):</code>.
# 2. Assign in place, <code>envoy.output[:] = ... + delta</code>:
# broadcasting adds the <code>[d_model]</code> vector at every batch row and position. <code>delta</code> lives
# on the CPU, so first move it to the output's device and dtype with <code>.to(...)</code>. 3. Keep
# <code>model.output.logits[0, -1]</code> with <code>nnsight.save</code>, and return it as
# <code>.float().cpu()</code>.</details>

# %%
import nnsight


def steered_logits(model, prompt: str, delta: torch.Tensor, layer: int) -> torch.Tensor:
    """Next-token logits [vocab] with delta added after decoder layer `layer` at every position."""
    # BEGIN SOLUTION
    envoy = model.layer(layer)  # before the trace: on NDIF the block runs where there is no course code
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        out = envoy.output
        envoy.output[:] = out + delta.to(out.device, out.dtype)  # delta lives on the CPU
        logits = nnsight.save(model.output.logits[0, -1])
    return logits.float().cpu()
    # END SOLUTION


# %%
steered_logits = checks.check_steered_logits(steered_logits, model)

# %% [markdown]
# ## 2. Does steering change what the model says a character feels?
# A neutral scene, then *"How does he feel? He feels"*. For each core emotion vector we steer at a
# sanity-check strength and measure how much the log-probability of each of the 12 emotion words (as
# the next token) changes compared with no steering. If the vectors are causal in the expected way,
# each vector should raise its own word most: a **diagonal**. Control: the same measure for random
# directions of the same norm, and a permutation of the rows.

# %%
SANITY = 0.5  # fixed in advance, as the paper's sanity checks
scenes = ["Tom sat down at the kitchen table and looked at the letter.",
          "Maya walked into the office on Monday morning.",
          "Sam stood on the platform as the train pulled in.",
          "Lena opened the door of the flat and switched on the light.",
          "Omar read the message on his phone twice.",
          "Grace put down her bag and looked out of the window."]
scenes = scenes[:3] if FAST else scenes
prompts = [f"{s} How does {'he' if s.split()[0] in ('Tom', 'Sam', 'Omar') else 'she'} feel? "
           f"{'He' if s.split()[0] in ('Tom', 'Sam', 'Omar') else 'She'} feels" for s in scenes]
word_ids = torch.tensor([word_token_id(model, w) for w in CORE])


# %%
def word_logprobs(direction, strength) -> torch.Tensor:
    """Mean over scenes of the log-probability of each core emotion word as the next token: [12]."""
    out = []
    for p in prompts:
        delta = steering_vector(model, direction, LAYER, strength) if direction is not None else torch.zeros(model.d_model)
        out.append(torch.log_softmax(steered_logits(model, p, delta, LAYER), -1)[word_ids])
    return torch.stack(out).mean(0)


# %%
base = word_logprobs(None, 0.0)
effect = torch.stack([word_logprobs(vectors[e], SANITY) - base for e in CORE])  # [steered emotion, word]

# %% [markdown]
# Nearly every vector lowers nearly every word (the raw panel), so the statistic compares each word's
# change with its average over the steered vectors: the **centred** matrix (left), which is the one the
# diagonal is judged on.

# %%
relative = effect - effect.mean(0, keepdim=True)  # how much more a vector raises a word than vectors do on average
fig, axes = plt.subplots(1, 2, figsize=(15, 6))
for ax, m, name in ((axes[0], relative, "centred over vectors (the statistic)"), (axes[1], effect, "raw")):
    sns.heatmap(pd.DataFrame(m.numpy(), index=CORE, columns=CORE), cmap="vlag", center=0, ax=ax)
    ax.set(title=f"Change in log p(word), {name}", xlabel="emotion word as next token", ylabel="steered vector")
fig.suptitle(f"Steering each vector at strength {SANITY}, layer {LAYER}")
save_figure(fig, "06_feels_diagonal")
plt.show()

# %%
top1 = float((relative.argmax(1) == torch.arange(len(CORE))).float().mean())
margin = float(relative.diag().mean() - relative.sum(1).sub(relative.diag()).div(len(CORE) - 1).mean())
relative_np = relative.detach().cpu().numpy()


def diagonal_margin(rows: np.ndarray) -> np.ndarray:
    """The margin above with the rows of `relative` put in the order `rows` ([..., 12] -> [...])."""
    r = relative_np[rows]
    diag = np.diagonal(r, axis1=-2, axis2=-1)
    return diag.mean(-1) - ((r.sum(-1) - diag) / (len(CORE) - 1)).mean(-1)


# %%
shuffled_rows = permutation_null(diagonal_margin, np.arange(len(CORE)), n_resamples=1000, seed=0, vectorized=True)
null_margin = shuffled_rows.null
print(f"diagonal top-1: {top1:.2f} of rows (chance {1 / len(CORE):.2f}); diagonal margin {margin:+.3f} nats, "
      f"permutation null 95th percentile {np.quantile(null_margin, 0.95):+.3f} (p = {shuffled_rows.pvalue:.3f})")

# %% [markdown]
# Now the random-direction control: the same measure for random directions of the same norm.

# %%
rand_effects = torch.stack([word_logprobs(random_direction(model.d_model, s), SANITY) - base for s in range(4 if FAST else 12)])
print(f"size of the effect: emotion vectors move these words by {effect.abs().mean():.3f} nats on average, "
      f"random directions of the same norm by {rand_effects.abs().mean():.3f}")

# %% [markdown]
# ## 3. Where does text break? Fluency against strength
# Perplexity of ordinary text (stories and neutral dialogues) with a vector added, for four emotion
# directions and random directions of the same norm. Rule, fixed before any cheating experiment:
# **the largest strength at which every emotion direction keeps perplexity within 25% of unsteered**
# (a mean log-prob drop of at most log 1.25 = 0.22 nats per token). The same function,
# `steering.fluency_safe_strength`, picks the strengths of 07 and 08, each on its own text with the
# limit its notebook states (0.5 nats/token on the measured messages).

# %%
texts = load_stories(split="test").text.tolist()[:: 45][: 2 if FAST else 12]
texts += [m[1]["content"] for m in load_neutral().messages.tolist()[: 2 if FAST else 12]]
strengths = [0.0, 0.1, 0.25, 1.0] if FAST else [0.0, 0.05, 0.1, 0.25, 0.5, 1.0]

# %%
rows = []
for name in ["desperate", "calm", "happy", "sad"]:
    for s in strengths:
        rows.append({"direction": name, "strength": s, "perplexity": perplexity(model, texts, vectors[name], layer=LAYER, strength=s)})
for seed in range(1 if FAST else 4):
    for s in strengths:
        rows.append({"direction": f"random {seed}", "strength": s,
                     "perplexity": perplexity(model, texts, random_direction(model.d_model, seed), layer=LAYER, strength=s)})
flu = pd.DataFrame(rows)

# %%
fig, ax = plt.subplots(figsize=(8, 4.5))
sns.lineplot(data=flu, x="strength", y="perplexity", hue="direction", marker="o", ax=ax)
ax.set(yscale="log", title=f"Fluency under steering (layer {LAYER})", xlabel="strength (x median token norm)",
       ylabel="perplexity of ordinary text (log scale)")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small")
save_figure(fig, "06_fluency")
plt.show()

# %%
base_ppl = flu[flu.strength == 0].perplexity.iloc[0]
emo = flu[~flu.direction.str.startswith("random")]
worst = emo.groupby("strength").perplexity.max()
# perplexity within 25% <=> mean log-prob drop <= log(1.25) = 0.223 nats/token: the course's fluency rule
safe = fluency_safe_strength([s for s in strengths if s > 0], lambda s: float(np.log(worst[s] / base_ppl)), np.log(1.25))
print(f"unsteered perplexity {base_ppl:.1f}; fluency-safe strength by the rule above: {safe}")

# %% [markdown]
# ## 4. What steered text looks like
# Greedy replies to one prompt, steered with "desperate", "calm" and a random direction, at
# increasing strengths. Judge the tone yourself, and note where the text falls apart.

# %%
prompt = chat(model, "Tell me how your week has been.")
show = [0.0, safe, 2 * safe, 1.0] if not FAST else [0.0, safe]
for name, direction in [("desperate", vectors["desperate"]), ("calm", vectors["calm"]),
                        ("random", random_direction(model.d_model, 0))]:
    for s in show:
        reply = generate(model, prompt, direction, layer=LAYER, strength=s, max_new_tokens=12 if FAST else 30)[0]
        print(f"{name:>9} {s:+.2f}: {reply}")
    print()

# %% [markdown]
# ## 5. Try it yourself
# Pick an emotion, a strength, a layer and a prompt; the reply is regenerated on every change.
# (The vectors were built at one layer; applying them at another layer is an experiment in itself.)

# %%
steering_panel(model, vectors)

# %% [markdown]
# ## Recap
# - Steering = adding `strength x median norm x unit vector` to one layer, everywhere, at every step.
# - The "He feels ..." test asks whether each vector raises its own word more than others do; the
#   permutation null and random directions say whether the diagonal is more than chance.
# - Past a certain strength, any direction (emotion or random) destroys fluency; experiments must
#   stay below it, and that strength was fixed here, before notebook 08 looks at cheating.
#
# **Questions**
# 1. Why must a steering experiment always include random directions of the same norm?
#    <details><summary>Our answer</summary>Adding any vector of that size disturbs the residual stream, and a
#    disturbance alone changes outputs: text gets less fluent, probabilities flatten or drift towards the
#    model's favourite words. Without a control you cannot tell that generic effect from the effect of the
#    particular direction. Random directions of the same norm, at the same layer and strength, show what a
#    push with no meaning does; an emotion vector counts only if its effect is clearly outside theirs. (The
#    permutation of rows asks a second question: is each vector's effect specific to its own word?)</details>
# 2. If "desperate" raises the word "desperate", does that show the model *feels* anything? What does it show?
#    <details><summary>Our answer</summary>No. It shows that the direction is causally used by the model: pushing
#    on it changes what comes next in the way the concept would. That could be as shallow as a direction that
#    promotes the word itself (the logit lens of notebook 04 shows what it promotes), or a representation of the
#    concept that the model uses; this test alone cannot tell which. Nothing here speaks to experience. On this
#    small model, also check that the diagonal beat the permutation null and the random directions in your run
#    before you read anything into it.</details>
#
# **Next:** `08_steering_vs_cheating`.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
record("06_steering", sanity_strength=SANITY, feels_top1=top1, feels_margin=margin,
       feels_margin_p=shuffled_rows.pvalue, feels_mean_abs_effect=float(effect.abs().mean()),
       feels_random_mean_abs_effect=float(rand_effects.abs().mean()))
record("06_steering", fluency_safe_strength=safe, perplexity_unsteered=base_ppl,
       perplexity_by_strength=emo.groupby("strength").perplexity.max().round(2).to_dict())
