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
# Label-shuffled rebuilds of the vectors: the null of the "He feels" test.
N_SHUFFLE = 200

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
from course_utils.data import emotion_names, load_feels_scenes, load_neutral, load_stories
from course_utils.derivatives import measure_gradients
from course_utils.plots import save_figure, setup_style
from course_utils.precomputed import course_vectors
from course_utils.report import record
from course_utils.stats import rank_test
from course_utils.steering import (
    continuation_logprobs,
    fluency_safe_strength,
    generate,
    median_token_norm,
    perplexity,
    random_direction,
    steering_vector,
)
from course_utils.vectors import build_emotion_vectors, label_shuffled_vectors
from course_utils.widgets import steering_panel

setup_style()

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
# FAST loads the committed vectors of the bundled model (a few seconds); otherwise they are built as in notebook 04.
vectors = course_vectors(model, fast=FAST)
LAYER = vectors.layer
# FAST: the "He feels" test compares vectors and their label-shuffled rebuilds made from the same small subset.
SUBSET = dict(emotions="core", per_emotion=4, neutral_limit=20) if FAST else {}
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
# A neutral scene, then *"How does he feel? He feels"*: 40 scenes written before any run
# (`data/feels_scenes.jsonl`). For each core emotion vector we ask how fast the log-probability of each
# of the 12 emotion words (as the next word) rises when the vector is turned on. If the vectors are
# causal in the expected way, each vector raises its own word more than the others: a **diagonal**.
#
# "How fast" is the derivative at strength 0 (as in 07 and 08): one backward pass per word gives the
# gradient `g_w` of log p(word) with respect to the added vector, and a vector `v` moves the word at
# `N × g_w · v / |v|` per unit strength. The statistic is the **diagonal margin**: how much more a vector
# raises its own word than the other words (each word centred over the vectors first). The controls,
# all the same statistic:
# - **Vectors with no emotion in them**: the vectors rebuilt exactly as in 04 from the same stories with
#   their labels shuffled (200 times). Rule, fixed in advance: the real margin must exceed them with
#   rank p <= 0.05 (one-sided).
# - **The direct path**: the same derivatives taken after the last layer instead of the vectors' layer,
#   i.e. what the vector would do if the layers above it did nothing. If the full margin far exceeds the
#   direct path's, the layers above carry the effect; if not, the vector mostly says its own word.

# %%
scenes = load_feels_scenes()
scenes = scenes.head(8) if FAST else scenes
prompts = [f"{t} How does {p} feel? {p.capitalize()} feels" for t, p in zip(scenes.text, scenes.pronoun)]
words = [" " + w for w in CORE]


def word_gradients(layer: int) -> torch.Tensor:
    """[12 words, d_model]: the mean over scenes of the gradient of log p(word) w.r.t. a vector added after `layer`."""
    return torch.stack([measure_gradients(model, prompts, [w] * len(prompts), [1.0] * len(prompts), layer=layer,
                                          reduce="sum").mean(0) for w in words])


g_words = word_gradients(LAYER)
print(f"{len(prompts)} scenes; gradients {tuple(g_words.shape)} (words x d_model)")

# %%
def margins(vecs: torch.Tensor, grads: torch.Tensor = g_words) -> tuple[torch.Tensor, torch.Tensor]:
    """For vector sets [..., 12, d]: the centred effect matrices [..., 12, 12] and their diagonal margins [...]."""
    effect = norm * (vecs / vecs.norm(dim=-1, keepdim=True)) @ grads.T  # [..., vector, word], nats per unit strength
    relative = effect - effect.mean(-2, keepdim=True)  # each word centred over the vectors
    diag = relative.diagonal(dim1=-2, dim2=-1)
    return relative, diag.mean(-1) - (relative.sum(-1) - diag).div(len(CORE) - 1).mean(-1)


test_vectors = build_emotion_vectors(model, layer=LAYER, **SUBSET) if FAST else vectors
core_vecs = torch.stack([test_vectors[e] for e in CORE])
relative, margin = margins(core_vecs)
top1 = float((relative.argmax(1) == torch.arange(len(CORE))).float().mean())
print(f"diagonal margin {float(margin):+.3f} nats per unit strength; top-1 {top1:.2f} of rows (chance {1 / len(CORE):.2f})")

# %%
fig, ax = plt.subplots(figsize=(8, 6.5))
sns.heatmap(pd.DataFrame(relative.numpy(), index=CORE, columns=CORE), cmap="vlag", center=0, ax=ax)
ax.set(title=f"d log p(word) / d strength at 0, centred over vectors (layer {LAYER})", xlabel="emotion word as next word",
       ylabel="steered vector")
save_figure(fig, "06_feels_diagonal")
plt.show()

# %%
names_s, shuffled = label_shuffled_vectors(model, LAYER, N_SHUFFLE, seed=0, **SUBSET)
null_margins = margins(shuffled[:, [names_s.index(e) for e in CORE]])[1].numpy()
feels = rank_test(float(margin), null_margins, alternative="greater")
direct_margin = float(margins(core_vecs, word_gradients(model.n_layers - 1))[1])
print(f"real vectors: {feels} among label-shuffled vectors (their 95th percentile {np.quantile(null_margins, 0.95):+.3f})")
print(f"direct path (the same push after the last layer): margin {direct_margin:+.3f}; "
      f"full model / direct path = {float(margin) / direct_margin:.1f}x" if direct_margin > 0 else
      f"direct path (the same push after the last layer): margin {direct_margin:+.3f} (not positive)")
print("VERDICT:", "the vectors raise their own words beyond label-shuffled vectors (rank p <= 0.05)." if feels.distinguishable
      else "the diagonal is not distinguishable from vectors built on shuffled labels.")

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
# Back to "He feels", now exactly, at the fluency-safe strength: does the derivative's diagonal hold
# for a push of that size? (Exact runs: one per vector, all 12 words of a scene scored in one row.)

# %%
def word_logprobs(direction, strength: float) -> torch.Tensor:
    """[12]: mean over scenes of log p(word) with `direction` steered in at `strength` (None: unsteered)."""
    lp = continuation_logprobs(model, [p for p in prompts for _ in words], words * len(prompts), direction,
                               layer=LAYER, strength=strength, reduce="sum")
    return lp.reshape(len(prompts), len(words)).mean(0)


base_words = word_logprobs(None, 0.0)
exact = torch.stack([word_logprobs(v, safe) for v in core_vecs]) - base_words  # [vector, word] at +safe
exact_rel = exact - exact.mean(0, keepdim=True)
exact_margin = float(exact_rel.diagonal().mean() - (exact_rel.sum(1) - exact_rel.diagonal()).div(len(CORE) - 1).mean())
exact_top1 = float((exact_rel.argmax(1) == torch.arange(len(CORE))).float().mean())
print(f"at strength {safe}: margin {exact_margin:+.3f} nats ({exact_margin / safe:+.3f} per unit strength; the "
      f"derivative said {float(margin):+.3f}), top-1 {exact_top1:.2f}")

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
# - The "He feels ..." test asks whether each vector raises its own word more than the others do; its
#   null is the same vectors rebuilt from shuffled labels, and the direct path says how much of the
#   effect needs the layers above the edit.
# - A derivative at strength 0 turns one backward pass into the effect of any number of directions;
#   exact runs at a chosen strength say whether the straight line still holds there.
# - Past a certain strength, any direction (emotion or random) destroys fluency. Each experiment
#   picks its strength with the same rule on its own text (here: perplexity of ordinary text within
#   25%; 07 and 08: at most 0.5 nats per token on the text they measure), before its outcome is seen.
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
# **Next:** `07_emotions_and_choices`.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
record("06_steering", n_scenes=len(prompts), feels_top1=top1, feels_margin=float(margin), feels_margin_p=feels.p,
       feels_null_n=feels.k, feels_direct_margin=direct_margin, feels_exact_margin=exact_margin / safe,
       feels_exact_top1=exact_top1)
record("06_steering", fluency_safe_strength=safe, perplexity_unsteered=base_ppl,
       perplexity_by_strength=emo.groupby("strength").perplexity.max().round(2).to_dict())
