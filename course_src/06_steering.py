# %% [markdown]
# # 06 · Steering: pushing on an emotion direction
#
# **Time:** about 35 minutes for the core path (sections 1-4); *Going further* (section 5, exercise 6b
# and section 6) adds about 35 · **Before this:** `04_emotion_vectors`
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
from course_utils.plots import save_figure, setup_style
from course_utils.precomputed import course_vectors
from course_utils.report import record, record_verdict
from course_utils.stats import rank_test
from course_utils.steering import (
    continuation_logprobs,
    fluency_safe_strength,
    generate,
    median_token_norm,
    perplexity_each,
    random_direction,
    steering_vector,
    word_gradients,
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
# <details><summary>Hint 2 (stuck on making the edit reach the model?)</summary><code>h = envoy.output</code>
# then <code>h = h + delta</code> only rebinds your own name: the model never sees it. Assign into the output in
# place, <code>envoy.output[:] = ...</code>, and every later layer computes from the edited stream. A
# <code>[d_model]</code> vector broadcasts over the batch and the positions by itself; move it to the output's
# device and dtype first (<code>.to(out.device, out.dtype)</code>).</details>

# %%
import nnsight


def steered_logits(model, prompt: str, delta: torch.Tensor, layer: int) -> torch.Tensor:
    """Next-token logits [vocab] with delta added after decoder layer `layer` at every position."""
    # BEGIN SOLUTION
    # Why: an in-place assignment into .output[:] becomes part of the forward pass, so every later layer reads the
    # pushed stream; a [d_model] delta broadcasts over batch and positions, which is "every position".
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
# Log-probabilities in this course are in **nats** (natural logarithms): a change of +1 nat multiplies a
# probability by e, about 2.7. "How fast" is the derivative at strength 0 (as in 07 and 08): one backward pass per word gives the
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

# [12 words, d_model]: the mean over scenes of d log p(word) / d the added vector (one forward pass, one backward per word)
g_words = word_gradients(model, prompts, words, layer=LAYER).mean(1)
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
direct_margin = float(margins(core_vecs, word_gradients(model, prompts, words, layer=model.n_layers - 1).mean(1))[1])
print(f"real vectors: {feels} among label-shuffled vectors (their 95th percentile {np.quantile(null_margins, 0.95):+.3f})")
print(f"direct path (the same push after the last layer): margin {direct_margin:+.3f}; "
      f"full model / direct path = {float(margin) / direct_margin:.1f}x" if direct_margin > 0 else
      f"direct path (the same push after the last layer): margin {direct_margin:+.3f} (not positive)")
feels_verdict = "replicates" if feels.distinguishable else "does not replicate"
feels_reason = (f"'He feels' diagonal over {len(prompts)} scenes: margin {float(margin):+.3f} nats per unit strength, top-1 "
                f"{top1:.2f}; " + ("beyond" if feels.distinguishable else "not distinguishable from")
                + f" label-shuffled vectors (rank p = {feels.p:.3g} among {feels.k}, z = {feels.z:+.1f}); direct path {direct_margin:+.3f}")
record_verdict("06_steering", "feels_diagonal", feels_verdict, feels_reason)
print(f"{feels_verdict}: {feels_reason}")

# %% [markdown]
# ## 3. Where does text break? Fluency against strength
# **Perplexity** says how surprised a model is by a text: the exponential of the mean negative
# log-probability per token, roughly the number of equally likely tokens it would be choosing among at each
# step (lower is more fluent). We measure it on ordinary text (stories and neutral dialogues) with a vector
# added, for four emotion directions and random directions of the same norm. Rule, fixed before the
# experiments below: **the largest strength at which every emotion direction keeps perplexity within 25% of
# unsteered** (a mean log-prob drop of at most log 1.25 = 0.22 nats per token).
#
# The strength this rule picks serves this notebook only: the "He feels" test at that strength and the
# valence test of section 4. Notebooks 07 and 08 do not reuse it; each applies the same function,
# `steering.fluency_safe_strength`, to the text it measures, with its own limit, stated and argued there.

# %%
texts = load_stories(split="test").text.tolist()[:: 45][: 2 if FAST else 12]
texts += [m[1]["content"] for m in load_neutral().messages.tolist()[: 2 if FAST else 12]]
strengths = [0.0, 0.1, 0.25, 1.0] if FAST else [0.0, 0.05, 0.1, 0.25, 0.5, 1.0]

# %%
named = {name: vectors[name] for name in ["desperate", "calm", "happy", "sad"]}
named |= {f"random {seed}": random_direction(model.d_model, seed) for seed in range(1 if FAST else 4)}
conditions = [(name, s) for name in named for s in strengths]
# the steered runs share each batch's passes (extra rows on the unsteered prefix); strength 0 is the unsteered run
ppl = perplexity_each(model, texts, [named[name] for name, _ in conditions], [s for _, s in conditions], layer=LAYER)
flu = pd.DataFrame([{"direction": name, "strength": s, "perplexity": p} for (name, s), p in zip(conditions, ppl)])

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
# for a push of that size? (Exact runs: one per vector, all 12 words of a scene scored in one row; the vectors'
# runs share the passes, as extra rows of each batch.)

# %%
from course_utils.steering import continuation_logprobs_each

pairs = ([p for p in prompts for _ in words], words * len(prompts))  # every scene with each of the 12 words
base_words = continuation_logprobs(model, *pairs, reduce="sum").reshape(len(prompts), len(words)).mean(0)  # [word]
# the twelve steered runs share each batch's passes: one block of rows per vector on the unsteered prefix
steered = continuation_logprobs_each(model, *pairs, list(core_vecs), [safe] * len(CORE), layer=LAYER, reduce="sum")
exact = steered.reshape(len(CORE), len(prompts), len(words)).mean(1) - base_words  # [vector, word] at +safe
exact_rel = exact - exact.mean(0, keepdim=True)
exact_margin = float(exact_rel.diagonal().mean() - (exact_rel.sum(1) - exact_rel.diagonal()).div(len(CORE) - 1).mean())
exact_top1 = float((exact_rel.argmax(1) == torch.arange(len(CORE))).float().mean())
print(f"at strength {safe}: margin {exact_margin:+.3f} nats ({exact_margin / safe:+.3f} per unit strength; the "
      f"derivative said {float(margin):+.3f}), top-1 {exact_top1:.2f}")

# %% [markdown]
# ## 4. Does steering change the valence of what the model would say?
# "He feels" asks for an emotion word. A broader test: with a vector added, does the model lean towards
# pleasant or unpleasant words in replies that are not about feelings at all? The measure, fixed before the run:
# - **Prompts**: 48 neutral requests written for the course before this analysis (the first user message of the
#   last 48 dialogues in `data/neutral_dialogues.jsonl`; a FAST run takes 8), each followed by the same neutral
#   start of a reply.
# - **Valence of a word**: VADER's lexicon (Hutto & Gilbert, 2014), about 7,500 English words that people rated
#   from -4 (most unpleasant) to +4, independent of this course. Every word that `emotions.csv` forbids for *any*
#   emotion (names, synonyms, their inflections) is removed from it first: a vector that only makes the model
#   say its own name ("happy") scores nothing.
# - **The measure**: at each token of the reply's start, the model's next-token distribution p gives an
#   expected valence, the sum over tokens t of p(t) x valence(t) (tokens that are no lexicon word count 0);
#   summed over the reply's tokens. No sampling, so it is exact and repeatable.
# - **Each vector's effect**: valence at strength +s minus valence at -s (s the fluency-safe strength above), mean
#   over prompts. With the derivative of section 2 (one backward pass per prompt), that is 2 s N g . v for every
#   vector at once; exact runs at +s and -s check the straight line on six core vectors.
# - **Rule, fixed in advance**: across all vectors with a valence in `emotions.csv` (NRC VAD; Mohammad, 2018),
#   the Spearman correlation between effect and valence must be positive with two-sided rank p <= 0.05 among
#   1,000 shuffles of the valences over the vectors (a **label-permutation null**).

# %%
from scipy.stats import spearmanr

from course_utils.data import load_emotions
from course_utils.derivatives import agreement
from course_utils.stats import permutation_null
from course_utils.valence import expected_valence, expected_valence_each, lexicon, text_valence, valence_gradients

neutral_users = [m[0]["content"] for m in load_neutral().messages.tolist()][-48:]
val_prompts = [chat(model, u) for u in neutral_users[: 8 if FAST else 48]]
REPLY = "Sure. Here is what I think about it. Overall, it is a"  # the fixed neutral start of every reply
lex = lexicon()
print(f"{len(val_prompts)} prompts; a lexicon of {len(lex)} words without emotion words, e.g. "
      + ", ".join(f"{w} {lex[w]:+.1f}" for w in ("awful", "bad", "fine", "good", "great")))

# %%
nrc = load_emotions().set_index("emotion").valence.dropna()
val_names = [e for e in vectors.names if e in nrc.index]
unit = torch.stack([vectors[e] / vectors[e].norm() for e in val_names])  # [n_vectors, d_model]
grads = valence_gradients(model, val_prompts, REPLY, layer=LAYER)  # [prompts, d_model]
change = (2 * safe * norm * grads.mean(0) @ unit.T).numpy()  # +s minus -s, to first order, per vector
base_val = float(expected_valence(model, val_prompts, REPLY).mean())
print(f"unsteered valence {base_val:+.3f}; {len(val_names)} vectors: change (+s minus -s, s = {safe}) from "
      f"{change.min():+.3f} to {change.max():+.3f}")

# %%
rho_val = spearmanr(change, nrc[val_names].to_numpy())[0]
perm = permutation_null(lambda v: spearmanr(change, v)[0], nrc[val_names].to_numpy(), n_resamples=1000, seed=0).null
valence_test = rank_test(rho_val, perm)
print(f"Spearman(change, NRC valence) = {rho_val:+.3f}: {valence_test} among shuffled valences")

# %% [markdown]
# Does the straight line hold at s? Exact runs at +s and -s (two passes each) for six core vectors spread
# over the valence range (every other one in order of valence), beside their first-order changes.

# %%
core_v = [e for e in CORE if e in val_names]
exact_v = sorted(core_v, key=nrc.get)[::2]
# the twelve exact conditions (+s and -s for each vector) run as rows of the same batches
each = expected_valence_each(model, val_prompts, REPLY, [vectors[e] for e in exact_v for _ in "+-"],
                             [sign * safe for _ in exact_v for sign in (1, -1)], layer=LAYER)
exact_change = (each[0::2] - each[1::2]).mean(1).double().numpy()
fit = agreement(change[[val_names.index(e) for e in exact_v]], exact_change)
rho_core = spearmanr(exact_change, nrc[exact_v])[0]
print(f"exact vs first-order change r = {fit['r']:+.2f} (largest gap {fit['max_abs_error']:.3f}); "
      f"exact changes' Spearman with valence {rho_core:+.2f} over these {len(exact_v)} vectors")
print(pd.Series(exact_change, index=exact_v).sort_values().round(3).to_dict())

# %%
val_ok = valence_test.distinguishable and rho_val > 0
what = ("positive, beyond shuffled valences" if val_ok else "the opposite sign to the expected"
        if valence_test.distinguishable else "not distinguishable from shuffled valences")
valence_verdict = "replicates" if val_ok else "does not replicate"
valence_reason = (f"valence of neutral replies, +{safe} vs -{safe} ({len(val_prompts)} prompts, emotion words removed): "
                  f"Spearman with NRC valence {rho_val:+.2f} over {len(val_names)} vectors, {what} (rank p = "
                  f"{valence_test.p:.3g} among {valence_test.k} shuffles, z = {valence_test.z:+.1f}); perplexity of "
                  f"ordinary text at s: {worst[safe] / base_ppl:.2f}x unsteered")
record_verdict("06_steering", "steered_valence", valence_verdict, valence_reason)
print(f"{valence_verdict}: {valence_reason}")

# %% [markdown]
# ## Going further
# The core path ends here: sections 1-4 hold the two steering findings (what a character feels, the
# valence of a reply) with their controls and the fluency rule. Below: steered text to read, the hardest
# exercise of the course (6b: steering every step of a generation with `tracer.iter`), and a sandbox.

# %% [markdown]
# ## 5. What steered text looks like
# Greedy replies to one prompt, steered with "desperate", "calm" and a random direction, at
# increasing strengths. Judge the tone yourself, and note where the text falls apart.

# %%
from course_utils.steering import generate_each

prompt = chat(model, "Tell me how your week has been.")
show = [0.0, safe, 2 * safe, 1.0] if not FAST else [0.0, safe]
named = [("desperate", vectors["desperate"]), ("calm", vectors["calm"]), ("random", random_direction(model.d_model, 0))]
conditions = [(name, direction, s) for name, direction in named for s in show]
# every condition is one row of a single batched generation; strength 0 (the unsteered reply) runs once
replies = generate_each(model, prompt, [d for _, d, _ in conditions], [s for *_, s in conditions], layer=LAYER,
                        max_new_tokens=12 if FAST else 30)
for (name, _, s), reply in zip(conditions, replies):
    print(f"{name:>9} {s:+.2f}: {reply}" + ("\n" if s == show[-1] else ""))

# %% [markdown]
# **Sampled replies, the same seed in every condition.** Three samples to one neutral request, drawn together as
# three rows of one generation with seed 0: unsteered, and at +s with the core vectors of the highest and the lowest
# valence. The seed gives sample k the same random numbers in every condition, so what differs comes from the push. Beside each: the mean lexicon valence
# of its words (emotion words removed, as above) and its perplexity under the *unsteered* model (how ordinary the
# text looks to the model without the push).

# %%
hi, lo = nrc[core_v].idxmax(), nrc[core_v].idxmin()
sampled = [(name, k, reply or ".") for name, direction in [("unsteered", None), (hi, vectors[hi]), (lo, vectors[lo])]
           for k, reply in enumerate(generate(model, [val_prompts[0]] * 3, direction, layer=LAYER, strength=safe if direction
                                              is not None else 0.0, max_new_tokens=12 if FAST else 30, do_sample=True, seed=0))]
# each reply's perplexity under the unsteered model: one scoring call for all nine
ppls = torch.exp(-continuation_logprobs(model, [val_prompts[0]] * len(sampled), [r for *_, r in sampled]))
for (name, k, reply), ppl in zip(sampled, ppls.tolist()):
    print(f"{name:>10} sample {k}: valence {text_valence(reply):+.2f}, perplexity {ppl:6.1f} | {reply}")

# %% [markdown]
# ### Exercise 6b · Steer every step of a generation
# > **Difficulty:** 🔴🔴🔴🔴⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 25 minutes
#
# Write `steered_generate(model, prompts, direction, layer, strength, max_new_tokens=8)`: greedy replies to a
# batch of prompts with `direction` added after decoder layer `layer`, at every position, **at every step of the
# generation** (the pass over the prompt, then one pass per new token), at a strength relative to the layer's
# median token norm: the added vector is strength x median norm x the unit direction, as in `steering_vector`.
# Return each prompt's new text (a list of strings, special tokens skipped, stripped): what the library's
# `generate(..., cache=False)` returns, which the check compares with on two prompts of different lengths.
#
# What you need to know:
# - `with model.generate(...) as tracer:` runs the model once on the prompts and then once per new token.
#   Inside an invoke, `for _ in tracer.iter[:]:` runs its body at every one of those steps; an edit written
#   without the loop reaches the first step only.
# - `median_token_norm(model, layer)` (from `course_utils.steering`) leaves each text's first token out: its norm
#   is about 100 times the others', so an average that includes it mostly measures that one token.
# - A batch is padded on the left (`models.tokenize(model, prompts)` does it), so every prompt ends in the same
#   column and the new tokens start right after it.
# - When the generation ends, nnsight warns that the open loop asked for a step that never came: that is expected.
#
# <details><summary>Hint 1 (a nudge)</summary>Build the added vector once, before the trace, and take the layer's
# envoy there too. Then open a generation, one invoke holding the padded prompts, and in it a loop over every
# generation step; in the loop, assign into the layer's output in place, as in exercise 6.</details>
# <details><summary>Hint 2 (stuck on reading the result?)</summary>Code after an open <code>tracer.iter[:]</code>
# loop, in the same invoke, never runs: the loop waits for a step that never comes. Read the ids in a second,
# empty invoke, <code>with tracer.invoke(): out = tracer.result.save()</code>. Each row holds the padded prompt
# first, so keep the columns from <code>enc["input_ids"].shape[1]</code> on.</details>

# %%
from course_utils.models import tokenize
from course_utils.steering import median_token_norm  # noqa: F811  (the answer's own import, for solutions.py)


def steered_generate(model, prompts: list[str], direction: torch.Tensor, layer: int, strength: float,
                     max_new_tokens: int = 8) -> list[str]:
    """Greedy new text per prompt, with strength x median norm x unit direction added after `layer` at every step."""
    # BEGIN SOLUTION
    # Why: tracer.iter[:] repeats the edit at every forward pass of the generation, so the push is there whenever
    # the model picks a token; a relative strength means the same push at any layer or model; left padding puts
    # every prompt's end in one column, so one slice keeps the new tokens of every row.
    delta = strength * median_token_norm(model, layer) * direction / direction.norm()
    enc, envoy = tokenize(model, list(prompts)), model.layer(layer)
    with torch.no_grad(), model.generate(max_new_tokens=max_new_tokens, do_sample=False, remote=model.remote,
                                         pad_token_id=model.tokenizer.pad_token_id) as tracer:
        with tracer.invoke(enc):
            for _ in tracer.iter[:]:  # nnsight then warns that the loop outran the model: expected
                out = envoy.output
                envoy.output[:] = out + delta.to(out.device, out.dtype)
        with tracer.invoke():
            ids = tracer.result.save()
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids[:, enc["input_ids"].shape[1]:]]
    # END SOLUTION


# %%
steered_generate = checks.check_steered_generate(steered_generate, model, layer=LAYER)  # the layer whose norm is known
print(steered_generate(model, [prompt], vectors["calm"], LAYER, safe, 12))

# %% [markdown]
# ## 6. Try it yourself
# Pick an emotion, a strength, a layer and a prompt; the reply is regenerated on every change.
# (The vectors were built at one layer; applying them at another layer is an experiment in itself.)

# %%
steering_panel(model, vectors)

# %% [markdown]
# ## Recap
# What this run found, printed from its numbers:

# %%
print(f"- fluency-safe strength {safe} (perplexity of ordinary text at most {worst[safe] / base_ppl:.2f}x unsteered)")
print(f"- 'He feels': {feels_verdict} (rank p = {feels.p:.3g}); exact at {safe}: top-1 {exact_top1:.2f}")
print(f"- valence of neutral replies: Spearman {rho_val:+.2f} with NRC valence over {len(val_names)} vectors, "
      f"rank p = {valence_test.p:.3g} -> {valence_verdict}")

# %% [markdown]
# - Steering = adding `strength x median norm x unit vector` to one layer, everywhere, at every step.
# - The "He feels ..." test asks whether each vector raises its own word more than the others do; its
#   null is the same vectors rebuilt from shuffled labels, and the direct path says how much of the
#   effect needs the layers above the edit.
# - A derivative at strength 0 turns one backward pass into the effect of any number of directions;
#   exact runs at a chosen strength say whether the straight line still holds there.
# - Past a certain strength, any direction (emotion or random) destroys fluency. Each notebook picks its
#   strength before its outcome is seen: here perplexity of ordinary text within 25%; 07 and 08 state their
#   own limit on the text they measure.
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
#    promotes the word itself (the direct-path control of section 2 measures that part), or a representation of
#    the concept that the model uses; this test alone cannot tell which. Nothing here speaks to experience. On this
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
record("06_steering", valence_n_prompts=len(val_prompts), valence_n_vectors=len(val_names), valence_spearman=rho_val,
       valence_p=valence_test.p, valence_null_n=valence_test.k, valence_z=valence_test.z, valence_unsteered=base_val,
       valence_core_exact_spearman=rho_core, valence_exact_vs_first_order_r=fit["r"],
       valence_perplexity_ratio=float(worst[safe] / base_ppl))
