# %% [markdown]
# # 02 · Extracting activations: the residual stream, the first-token outlier, the masked mean
#
# **Time:** about 40 minutes (25 without exercise 2b) · **Before this:** `00_setup`, `01_reading_stories`
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
# 4. Batch two prompts in one trace with nnsight invokers, and see that left padding changes nothing.
# 5. Extract the corpus once, with a progress bar, into the shared cache.

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
jump = int(ratio.diff().argmax()) + 1  # the layer where the ratio rises most
print(f"the ratio jumps from {ratio[jump - 1]:.0f} after layer {jump - 1} to {ratio[jump]:.0f} after layer {jump}; "
      f"its largest value is {ratio.max():.0f} (layer {int(ratio.argmax())}). Divided by this story's {norms.shape[1]} "
      f"tokens in a mean, that first vector alone would still be {float(ratio.max()) / norms.shape[1]:.1f} times as "
      "long as a typical token's vector")

# %% [markdown]
# The lines above give the layer where the first token becomes an outlier in this model and how large it gets.
# Such "attention sinks" are common in language models: a place for attention to rest, not a
# carrier of meaning, and inside an average it outweighs many ordinary tokens at once.
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
# <details><summary>Hint 1 (stuck on where each row's real tokens start?)</summary>Slicing cannot work, because
# with left padding each row's real tokens start at a different column. Give every position a weight instead,
# 1 if it counts and 0 if not, and take a weighted mean: a sum of weighted vectors over a sum of weights.</details>
# <details><summary>Hint 2 (stuck on which real tokens to skip?)</summary>A running count along the token axis
# (<code>cumsum</code>) of the mask tells you, at each position, how many real tokens of that row have been seen
# so far, pads never counting. Compare it with <code>skip_first</code>, and mind where the count starts.</details>

# %%
def masked_mean(acts: torch.Tensor, mask: torch.Tensor, skip_first: int) -> torch.Tensor:
    """Mean over each row's real tokens from its `skip_first`-th on: [b, t, d], [b, t] -> [b, d]."""
    # BEGIN SOLUTION
    # Why: cumsum - 1 numbers each row's real tokens 0, 1, 2... wherever the pads end, so one comparison skips the
    # first skip_first of each row; a 0/1 weight (unsqueezed to broadcast over d_model) and dividing by the weights'
    # sum give every row the mean of exactly its kept tokens, without a Python loop or touching `acts`.
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
# ### Exercise 2b · Two prompts in one trace: invokers
# > **Difficulty:** 🔴🔴🔴⚪⚪ · **Importance:** 🔵🔵🔵⚪⚪ · **Time:** 15 minutes
#
# nnsight can batch different inputs into one forward pass: open `model.trace()` with no input, then one
# `with tracer.invoke(prompt):` block per prompt. Inside an invoke, `envoy.output` is that prompt's own slice of
# the batch, `[1, tokens, d_model]`, where `tokens` is the batch's length: the shorter prompt is padded (on the
# left, as everywhere in the course). Write `two_prompt_reads(model, prompt_a, prompt_b, layer)` that reads the
# residual stream after decoder layer `layer` for both prompts in **one** trace with two invokes, and returns
# `(read_a, read_b)`, each `[n_tokens, d_model]` on the CPU with the pad positions removed. The cell after the
# check compares your reads with two separate traces.
#
# <details><summary>Hint 1 (stuck on the structure?)</summary>Take the envoy before the trace, as always. The
# trace takes no prompt; each invoke takes one, and each invoke's block saves its own read. Both saved values
# exist once the outer block has ended, not before.</details>
# <details><summary>Hint 2 (stuck on the pads?)</summary>Both reads have the longer prompt's length. Count a
# prompt's own tokens with <code>model.tokenizer</code>; with left padding, which end of the row are they
# at?</details>

# %%
def two_prompt_reads(model, prompt_a: str, prompt_b: str, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual stream after `layer` for two prompts read in one trace (two invokes), pads removed."""
    # BEGIN SOLUTION
    # Why: each invoke sees only its own rows, so `.output` in it is [1, tokens, d] for that prompt (on a whole
    # batch, [0] would be batch row 0 for every prompt); the batch is padded to the longer prompt on the left, so
    # a prompt's real tokens are its row's last n_tokens positions.
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(remote=model.remote) as tracer:
        with tracer.invoke(prompt_a):
            out_a = nnsight.save(envoy.output)
        with tracer.invoke(prompt_b):
            out_b = nnsight.save(envoy.output)
    n_a, n_b = (len(model.tokenizer(p)["input_ids"]) for p in (prompt_a, prompt_b))
    return out_a[0, -n_a:].detach().cpu(), out_b[0, -n_b:].detach().cpu()
    # END SOLUTION


# %%
two_prompt_reads = checks.check_two_prompt_reads(two_prompt_reads, model)

# %% [markdown]
# Batched against separate traces: do the pads change what the real tokens compute?

# %%
prompt_a, prompt_b = texts[0].split(".")[0] + ".", texts[1]  # a story's first sentence, and a whole story
read_a, read_b = two_prompt_reads(model, prompt_a, prompt_b, LAYER)
alone = []
for p in (prompt_a, prompt_b):
    with torch.no_grad(), model.trace(p, remote=REMOTE):
        out = nnsight.save(layer.output)
    alone.append(out[0].cpu())
diff = max(float((r - s).abs().max() / s.abs().max()) for r, s in zip((read_a, read_b), alone))
print(f"tokens: A {read_a.shape[0]}, B {read_b.shape[0]}; largest difference from separate traces, relative to the "
      f"largest value: {diff:.1e} ({'float rounding: the mask keeps the pads out' if diff < 1e-4 else 'more than rounding'})")

# %% [markdown]
# ## 4. Extract the corpus once
# `extract_activations` does all of this in batches (sorted by length to waste little on padding),
# for every layer, and stores the result in `build/cache/activations/` keyed by the model, the exact
# texts and the settings. Every later notebook asks for the same thing and gets it from the cache.
# The full corpus is the course's one long computation the first time (its time is in `docs/timings.md`, and
# `make check` estimates it for your laptop); after that it comes from the cache.

# %%
stories = load_stories(per_emotion=4 if FAST else None, emotions="core" if FAST else None)
if not FAST:
    print(f"Reading all {len(stories)} stories at every layer: the course's longest step the first time (see"
          " docs/timings.md; a progress bar follows), quick once cached. In a workshop, start this cell early.")
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
# A first look: how long is the mean story vector at each layer? Each layer adds to the stream, so sizes
# differ from layer to layer (the cell prints by how much), which is why later notebooks compare *directions*
# (cosine similarity) rather than raw sizes.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(acts.norm(dim=-1).mean(0).numpy(), marker="o", label="stories")
ax.plot(neutral.norm(dim=-1).mean(0).numpy(), marker="o", label="neutral dialogues")
ax.set(title="Norm of the mean-token vector, by layer", xlabel="layer", ylabel="mean norm")
ax.legend()
save_figure(fig, "02_norm_by_layer")
plt.show()
mean_norm = acts.norm(dim=-1).mean(0)
grows = int((mean_norm.diff() > 0).sum())
print(f"the mean story vector's norm grows at {grows} of {model.n_layers - 1} layer steps, from {mean_norm[0]:.1f} "
      f"after layer 0 to {mean_norm[-1]:.1f} after layer {model.n_layers - 1} (largest: {mean_norm.max():.1f})")

# %% [markdown]
# ## Going further
# 1. **The first token in the average.** Extract a few stories with `skip_first=0` and with the default, and
#    compare the cosine similarity between two stories of different emotions in each case. What does the
#    outlier do to it?
# 2. **Right padding.** Set `model.tokenizer.padding_side = "right"` and rerun exercise 2b's comparison cell:
#    which prompt's difference grows, and why does the `-n_tokens:` slice now pick pads? Set it back to `"left"`
#    afterwards (every later notebook expects it).
# 3. **The last token.** Compare the last token's vector with the masked mean for the same stories (notebook
#    03's probe can tell you which one carries more emotion).

# %% [markdown]
# ## Recap
# - `layer = model.layer(i)` (before the trace); inside it `layer.output` is `[batch, tokens, d_model]`: the
#   residual stream after layer `i`.
# - The first token is an outlier (section 2 prints from which layer, and how large): never average it in.
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
