# %% [markdown]
# # 02 · Extracting activations: the residual stream, the first-token outlier, the masked mean
#
# **Time:** about 25 minutes · **Before this:** `00_setup`, `01_reading_stories`
#
# Each decoder layer reads the *residual stream*, a vector of `d_model` numbers per token, and adds
# its own update to it. To find emotion directions we need one vector per story per layer. This
# notebook builds that vector by hand, shows the traps (the first token, padding), and then extracts
# the whole corpus once into a cache that every later notebook reuses.
#
# **Learning goals**
# 1. Read per-token activations of a story at every layer with nnsight.
# 2. See the first-token outlier and why it must stay out of averages.
# 3. Understand left padding and the attention mask; write the masked mean yourself.
# 4. Extract the corpus once, with a progress bar, into the shared cache.

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
import nnsight
import seaborn as sns
import torch

from course_utils import checks, extract_activations, load_model
from course_utils.data import load_stories
from course_utils.models import tokenize
from course_utils.plots import save_figure, setup_style
from course_utils.vectors import default_layer, neutral_texts, story_activations

setup_style()
model = load_model(MODEL_NAME, remote=REMOTE)
print(f"{model.n_layers} layers, d_model = {model.d_model}")

# %% [markdown]
# ## 1. One story, every layer, every token
# Inside one trace we read every layer's output. Each is `[batch, tokens, d_model]`. We only need each
# token's norm, so we reduce *inside* the trace and save just that: `[tokens]` per layer instead of
# `[tokens, d_model]` (on NDIF, only what you save travels back over the network). As in notebook 00, the
# layers' envoys are taken before the block: inside it, only envoys and torch (NDIF has no course code).

# %%
story = load_stories(emotions="afraid").iloc[0].text
decoder_layers = [model.layer(i) for i in range(model.n_layers)]  # envoys, before the trace
with torch.no_grad(), model.trace(story, remote=REMOTE):
    shape = nnsight.save(decoder_layers[0].output.shape)
    per_layer = nnsight.save([layer.output[0].float().norm(dim=-1).cpu() for layer in decoder_layers])
print("one layer's output [batch, tokens, d_model]:", tuple(shape))
norms = torch.stack(per_layer)  # [layers, tokens]
print("norms [layers, tokens]:", tuple(norms.shape))

# %% [markdown]
# ## 2. The first-token outlier
# The norm of each token's vector, layer by layer (log colour scale):

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
sns.heatmap(norms[:, :30].log10().numpy(), ax=axes[0], cmap="viridis", cbar_kws={"label": "log10 norm"})
axes[0].set(title="Residual norm per token and layer", xlabel="token position", ylabel="layer")
axes[1].plot(norms[:, 0].numpy(), marker="o", label="first token")
axes[1].plot(norms[:, 1:].median(dim=1).values.numpy(), marker="o", label="median of the other tokens")
axes[1].set(yscale="log", title="First token vs the rest", xlabel="layer", ylabel="norm (log scale)")
axes[1].legend()
save_figure(fig, "02_first_token_outlier")
plt.show()
ratio = (norms[:, 0] / norms[:, 1:].median(dim=1).values)
print("first-token norm / median norm, by layer:", ratio.round().int().tolist())

# %% [markdown]
# From about a third of the way in, the first token's vector is ~100 times longer than any other.
# Such "attention sinks" are common in language models: a place for attention to rest, not a
# carrier of meaning. One such vector inside an average of 100 tokens would swamp everything else.
# **Rule for the course: the first token never enters an average**, and steering strength (notebook
# 06) is scaled to the *median* token norm, not the mean.

# %% [markdown]
# ## 3. Batches, left padding and the attention mask
# To run many stories at once they must have the same length, so shorter ones get **pad tokens on
# the left** (so that every row's last position is a real token, handy for reading the state at the
# start of the assistant's reply). The attention mask marks real tokens with 1.

# %%
enc = tokenize(model, ["A short text.", "A somewhat longer text with more tokens in it."])
print("input_ids:\n", enc["input_ids"])
print("attention_mask:\n", enc["attention_mask"])

# %% [markdown]
# ### Exercise 2 · The masked mean
# > **Difficulty:** 🔴🔴🔴⚪⚪ · **Importance:** 🔵🔵🔵🔵🔵 · **Time:** 15 minutes
#
# Write `masked_mean(acts, mask, skip_first)`: `acts` is `[batch, tokens, d_model]`, `mask` is
# `[batch, tokens]` (1 = real token, 0 = pad, pads on the left). Return `[batch, d_model]`: for each
# row, the mean over its real tokens **after its first `skip_first` real tokens**.
# Careful: with left padding, each row's first real token sits at a different position.
#
# <details><summary>Hint 1 (a nudge)</summary>Slicing cannot work, because each row's real tokens start at a
# different column. Give every position a weight instead, 1 if it counts and 0 if not, and take a weighted
# mean. To decide the weight you need, at each position, how many real tokens of that row came before it:
# a running count along the token axis gives exactly that.</details>
# <details><summary>Hint 2 (the approach)</summary>1. <code>mask.cumsum(-1) - 1</code> is each real token's
# index among the real tokens of its row. 2. A position counts if it is a real token (<code>mask.bool()</code>)
# and its index is at least <code>skip_first</code>; turn that into a weight <code>keep</code> of
# <code>acts</code>' dtype, shape <code>[batch, tokens, 1]</code> (<code>.unsqueeze(-1)</code>, so it broadcasts
# over <code>d_model</code>). 3. Return <code>(acts * keep).sum(1) / keep.sum(1)</code>.</details>

# %%
def masked_mean(acts: torch.Tensor, mask: torch.Tensor, skip_first: int) -> torch.Tensor:
    """Mean over each row's real tokens from its `skip_first`-th on: [b, t, d], [b, t] -> [b, d]."""
    # BEGIN SOLUTION
    position = mask.cumsum(-1) - 1
    keep = (mask.bool() & (position >= skip_first)).to(acts.dtype).unsqueeze(-1)
    return (acts * keep).sum(1) / keep.sum(1)
    # END SOLUTION


# %%
masked_mean = checks.check_masked_mean(masked_mean)

# %% [markdown]
# Your function against the library on a real padded batch (at the course's layer, two-thirds deep):

# %%
LAYER = default_layer(model.n_layers)
texts = load_stories(emotions="calm").text.tolist()[:3]
enc = tokenize(model, texts)
layer = model.layer(LAYER)
with torch.no_grad(), model.trace(enc, remote=REMOTE):
    h = nnsight.save(layer.output)
mine = masked_mean(h.cpu().float(), enc["attention_mask"], 3)
library = extract_activations(model, texts, layers=[LAYER], skip_first=3)[:, 0]
if checks.is_reference(masked_mean):
    print("(this is the reference solution: fill in the exercise to compare yours)")
print("reference" if checks.is_reference(masked_mean) else "yours", "[batch, d_model]:", tuple(mine.shape),
      " max difference from the library:", f"{(mine - library).abs().max().item():.2e}")

# %% [markdown]
# ## 4. Extract the corpus once
# `extract_activations` does all of this in batches (sorted by length to waste little on padding),
# for every layer, and stores the result in `build/cache/activations/` keyed by the model, the exact
# texts and the settings. Every later notebook asks for the same thing and gets it from the cache.
# On a 2-core laptop the full corpus takes up to half an hour the first time and well under a second after.

# %%
stories = load_stories(per_emotion=4 if FAST else None, emotions="core" if FAST else None)
if not FAST:
    print(f"Reading all {len(stories)} stories at every layer: up to half an hour on a 2-core laptop the first time"
          " (28 minutes on a busy 2-core machine; a progress bar follows), under a second once cached."
          " In a workshop, start this cell early.")
acts = story_activations(model, stories)
print(f"stories: {len(stories)} -> activations [n_texts, n_layers, d_model] = {tuple(acts.shape)}")

# %%
import time

t0 = time.perf_counter()
again = story_activations(model, stories)
print(f"second call (from the cache): {time.perf_counter() - t0:.3f} s, identical: {torch.equal(acts, again)}")

# %% [markdown]
# The neutral dialogues too (notebook 04 uses them to remove directions that have nothing to do
# with emotion). They are rendered in the chat template, as the model would see a conversation.

# %%
neutral = extract_activations(model, neutral_texts(model, limit=20 if FAST else None))
print("neutral dialogues [n, n_layers, d_model]:", tuple(neutral.shape))

# %% [markdown]
# A first look: the norm of the mean story vector grows through the layers (each layer adds to the
# stream), which is why later notebooks compare *directions* (cosine similarity) rather than raw sizes.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(acts.norm(dim=-1).mean(0).numpy(), marker="o", label="stories")
ax.plot(neutral.norm(dim=-1).mean(0).numpy(), marker="o", label="neutral dialogues")
ax.set(title="Norm of the mean-token vector, by layer", xlabel="layer", ylabel="mean norm")
ax.legend()
save_figure(fig, "02_norm_by_layer")
plt.show()

# %% [markdown]
# ## Recap
# - `layer = model.layer(i)` (before the trace); inside it `layer.output` is `[batch, tokens, d_model]`: the
#   residual stream after layer `i`.
# - The first token is a ~100x outlier from the middle layers on: never average it in.
# - Pads are on the left; the attention mask keeps them out of every average.
# - The corpus is now in the cache: `[n_texts, n_layers, d_model]`.
#
# **Questions**
# 1. What would happen to a probe trained on averages that included the first token?
#    <details><summary>Our answer</summary>The first token's vector is huge and carries nothing about the
#    story, and in a mean it is divided by the story's length. So every average would hold a large
#    component that varies mainly with length, and it would swamp the differences between emotions in the
#    vectors' size and direction. A probe might still learn something after standardising, but it would be
#    fitting a length signal plus noise, and any cosine or mean-difference method (notebook 04) would be
#    dominated by it. You can check it: extract with <code>skip_first=0</code> and rerun the probe.</details>
# 2. Why average over tokens at all, rather than take the last token of a story?
#    <details><summary>Our answer</summary>The emotion of these stories is spread over the whole text
#    (actions, bodies, dialogue), not summed up at the end. The last token's state is mostly busy with
#    predicting the next word, so it depends a lot on how the last sentence happens to end. A mean over many
#    tokens is less noisy and uses the whole story. The last token is the right choice when a position has a
#    job of its own, which is why notebook 05 reads the start of the assistant's turn; for stories you could
#    compare both on the probe and let the test split decide.</details>
#
# **Next:** `03_probing`: is the emotion linearly readable from these vectors, and at which layer?
