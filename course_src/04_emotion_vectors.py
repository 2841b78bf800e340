# %% [markdown]
# # 04 · Emotion vectors and their geometry
#
# **Time:** about 30 minutes · **Before this:** `03_probing`
#
# A probe is a classifier; the paper works with something simpler: **one direction per emotion**.
# The recipe: average the activations of each emotion's stories, subtract the average over all
# emotions (what every story shares), and project out the main directions of *neutral* text (what
# has nothing to do with emotion). Then we ask whether these directions are organised like human
# emotions: do they cluster into families, and do their main axes track valence and arousal?
#
# **Learning goals**
# 1. Build emotion vectors with the paper's recipe, step by step.
# 2. Test them: do they pick the right emotion for unseen stories (with chance and a control)?
# 3. Read their geometry: similarity, clusters, PCA against human valence/arousal ratings.
# 4. See what they "mean" to the model with the logit lens, and how stable they are across layers.

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
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from scipy.stats import pearsonr
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from course_utils.plots import save_figure, setup_style

setup_style()

# %%
from course_utils import build_emotion_vectors, checks, load_model
from course_utils.data import forbidden_hits, load_emotions, load_stories
from course_utils.geometry import rsa, similarity_matrix, tfidf_centroids
from course_utils.lens import top_tokens_of_each
from course_utils.paths import build_dir
from course_utils.report import record
from course_utils.stats import accuracy_ci, corr_ci, mean_diff_ci, pca, permutation_null
from course_utils.steering import random_direction
from course_utils.transfer import (
    READERS,
    STORY_READER,
    VECTOR_READERS,
    leave_one_form_out,
    reader_predictions,
    transfer_table,
)
from course_utils.vectors import (
    EmotionVectors,
    default_layer,
    layer_activations,
    neutral_components,
    neutral_texts,
    story_activations,
)
from course_utils.widgets import emotion_explorer

model = load_model(MODEL_NAME, remote=REMOTE)
LAYER = default_layer(model.n_layers)
CHECK_LAYERS = list(range(2, model.n_layers, 9 if FAST else 4))  # section 5 compares the geometry across these
LAYERS = sorted({LAYER, 0, *CHECK_LAYERS})  # every layer this notebook reads (on NDIF only these travel back)
SUBSET = dict(per_emotion=4, emotions="core") if FAST else {}
NEUTRAL_LIMIT = 20 if FAST else None
emotions = load_emotions().set_index("emotion")
print(f"layer {LAYER} (two-thirds deep, fixed in advance)")

# %%
stories = load_stories(**SUBSET)
# [n, len(LAYERS), d_model]: locally cut from notebook 02's cache of every layer; on NDIF one request for LAYERS
acts = story_activations(model, stories, layers=LAYERS)[:, LAYERS.index(LAYER)]
# This notebook's held-out stories are the in-style test split; the style-shifted split (held-out forms) is set aside.
in_style = (stories.split != "style_test").values
all_stories, all_acts = stories, acts  # section 1b reads the style-shifted split too
stories, acts = stories[in_style].reset_index(drop=True), acts[torch.tensor(in_style)]
train = (stories.split == "train").values
names = [n for n in emotions.index if n in set(stories.emotion)]
print(f"story activations at layer {LAYER} [n, d_model]:", tuple(acts.shape), f"· {len(names)} emotions")

# %% [markdown]
# ### Exercise 4a · Mean per emotion, minus the mean over emotions
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵🔵 · **Time:** 10 minutes
#
# Write `emotion_vectors(acts, labels, names)`: `acts` is `[n_stories, d_model]` (one layer),
# `labels` the emotion of each story. Return `[len(names), d_model]`: for each name in order, the mean
# of its stories' activations, minus the mean of those per-emotion means (so that every emotion counts
# once, whether it has 50 stories or 12).
#
# <details><summary>Hint 1 (a nudge)</summary>Two averages, one after the other: first one mean vector per
# emotion, over that emotion's stories; then the mean of those means. Subtracting the second from each of
# the first is what makes every emotion count once, however many stories it has.</details>
# <details><summary>Hint 2 (the approach)</summary>1. Turn <code>labels</code> into a NumPy array, so that
# <code>labels == n</code> is a boolean mask; <code>torch.tensor(...)</code> of it selects rows of
# <code>acts</code>. 2. <code>torch.stack</code> the per-name <code>.mean(0)</code>, in the order of
# <code>names</code>: <code>[len(names), d_model]</code>. 3. Subtract their <code>.mean(0, keepdim=True)</code>
# (<code>[1, d_model]</code>, which broadcasts over the rows).</details>

# %%
def emotion_vectors(acts: torch.Tensor, labels, names: list[str]) -> torch.Tensor:
    """Per-emotion mean activation minus the mean over emotions: [len(names), d_model]."""
    # BEGIN SOLUTION
    labels = np.asarray(labels)
    means = torch.stack([acts[torch.tensor(labels == n)].mean(0) for n in names])
    return means - means.mean(0, keepdim=True)
    # END SOLUTION


# %%
emotion_vectors = checks.check_emotion_vectors(emotion_vectors)
raw = emotion_vectors(acts[train], stories.emotion[train].values, names)
print("raw emotion vectors [n_emotions, d_model]:", tuple(raw.shape))

# %% [markdown]
# ### Exercise 4b · Remove the neutral directions
# > **Difficulty:** 🔴🔴🔴⚪⚪ · **Importance:** 🔵🔵🔵⚪⚪ · **Time:** 10 minutes
#
# Neutral dialogues (code, facts, how-to) vary a lot, but not in emotion. Their top principal
# components, the ones that together explain 50% of their variance, are directions we do not want
# in an emotion vector. `neutral_components` finds them (rows are orthonormal). Write
# `project_out(vectors, components)` that removes from each vector its part in their span.
#
# <details><summary>Hint 1 (a nudge)</summary>The part of a vector along one unit direction is its dot
# product with that direction, times the direction. For several orthonormal directions these parts simply
# add up, and their sum is the part in the span. Subtract it, and what remains has nothing along any of
# them.</details>
# <details><summary>Hint 2 (the approach)</summary>1. <code>vectors @ components.T</code> gives every vector's
# coefficient on every component: <code>[n_vectors, n_components]</code>. 2. Multiplying those coefficients
# by <code>components</code> (<code>[n_components, d_model]</code>) rebuilds the part in the span,
# <code>[n_vectors, d_model]</code>. 3. Return <code>vectors</code> minus it: one line, no loop (this shortcut
# is correct only because the rows are orthonormal).</details>

# %%
def project_out(vectors: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Remove each vector's component in the span of the orthonormal rows of `components`."""
    # BEGIN SOLUTION
    return vectors - (vectors @ components.T) @ components
    # END SOLUTION


# %%
project_out = checks.check_project_out(project_out)
neutral = layer_activations(model, neutral_texts(model, NEUTRAL_LIMIT), LAYERS)[:, LAYERS.index(LAYER)]
pcs = neutral_components(neutral)
denoised = project_out(raw, pcs)
print(f"neutral activations {tuple(neutral.shape)} -> {pcs.shape[0]} components explain 50% of their variance")
print(f"share of the raw vectors' squared norm removed: {1 - denoised.norm() ** 2 / raw.norm() ** 2:.1%}")

# %% [markdown]
# The library does the same in one call, and the result saves and loads (safetensors + JSON):

# %%
vectors = build_emotion_vectors(model, layer=LAYER, neutral_limit=NEUTRAL_LIMIT, **SUBSET)
print(vectors.names[:6], "...", tuple(vectors.vectors.shape), vectors.meta)
print("same as your steps:", torch.allclose(vectors.vectors, denoised, atol=1e-4))
if checks.is_reference(emotion_vectors) or checks.is_reference(project_out):
    print("(your steps used the reference solution: fill in exercises 4a and 4b to compare yours)")
path = vectors.save(build_dir() / "vectors" / f"emotion_vectors_layer{LAYER}")
print("saved to", path, "· reloads equal:", torch.equal(EmotionVectors.load(path).vectors, vectors.vectors))

# %% [markdown]
# ## 1. Do the vectors recognise unseen stories?
# For each *test* story, the emotion whose vector has the highest cosine similarity with the story's
# activation, measured from the average story activation (`vectors.origin`). Measuring from the
# origin matters: every story shares a large common component, and raw cosines are dominated by it
# (on this model they pick the right emotion for only 2-4% of test stories; we saw this while
# developing the course, and the fix is the standard centring, not a tuned setting). Controls:
# chance, and the same vectors with **shuffled names** (a permutation of the labels over the same
# geometry: 200 shuffles give a null distribution).

# %%
test_acts = acts[~train]
truth = stories.emotion[~train].values
nearest = vectors.cosine(test_acts).argmax(1).numpy()
pred = np.array(vectors.names)[nearest]
top1, lo, hi = accuracy_ci(pred == truth)
null = permutation_null(lambda shuffled: np.mean(shuffled[..., nearest] == np.asarray(truth), axis=-1), vectors.names,
                        n_resamples=200, seed=0, vectorized=True).null  # top-1 with the names shuffled over the vectors
print(f"cosine top-1 on {len(truth)} test stories: {top1:.3f} (95% CI {lo:.3f}-{hi:.3f}); "
      f"shuffled names: {np.mean(null):.3f} (95% of shuffles below {np.quantile(null, 0.95):.3f}); chance {1 / len(names):.3f}")
core_mask = np.isin(truth, emotions.query("core").index)
core_top1 = accuracy_ci(pred[core_mask] == truth[core_mask])
print(f"   of which core-emotion stories: {core_top1[0]:.3f} (choosing among all {len(names)} vectors)")

# %% [markdown]
# ## 1b. A different voice
# The same test on the **style-shifted** split: dialogues and text messages, forms (and writers) no
# training story uses (notebook 03 showed the probe there). For the 12 core emotions, four readers
# fitted on the same training stories: the vectors above (cosine top-1 among the 12), the same vectors
# with **our stories' own variation removed**, the probe at this layer, and bag-of-words.
#
# Why a second vector readout? A difference of means picks up everything else that differs between
# one emotion's training stories and the others': a few more letters here, longer stories there, a
# favourite kind of scene. The neutral dialogues cannot remove that, because it lives in our stories.
# The directions along which stories of *one and the same* emotion differ most (form, length, topic,
# voice) are not emotion by construction; projecting them out of the vectors, with the 50% variance
# rule of the neutral step, keeps what separates emotions and drops what separates stories. It uses
# the training stories and their labels only, as the vectors do. This step is ours, not the paper's.
#
# **Choice rule, fixed before the style-shifted numbers.** Each training form is held out in turn:
# every reader is fitted on the other training forms and scored on the held-out one (no style-shifted
# story is touched). The vector readout with the higher mean top-1 over the held-out forms is carried
# forward; the other stays in the table for comparison.

# %%
core = emotions.query("core").index.tolist()
cv = leave_one_form_out(all_acts, all_stories, core, pcs, LAYER)
display(cv.round(3))
chosen = cv[list(VECTOR_READERS)].mean().idxmax()
print("leave-one-form-out top-1, mean over the held-out forms: " + ", ".join(f"{r} {cv[r].mean():.2f}" for r in READERS)
      + f"\nchosen vector readout: {chosen}")

# %% [markdown]
# Now the style-shifted test. Each reader on both tests with 95% intervals, the drop between them with a
# bootstrap interval, and McNemar's exact p against bag-of-words on the same stories. A reader of
# emotion should keep more of its accuracy out of style than a reader of our words.

# %%
style = transfer_table(all_stories, reader_predictions(all_acts, all_stories, vectors, core), core)
display(style.map(lambda v: f"[{v[0]:.2f}, {v[1]:.2f}]" if isinstance(v, tuple) else v).round(3))
for r in VECTOR_READERS:
    print(f"{r}{' (chosen)' if r == chosen else ''}: {style.loc[r, 'test']:.2f} in style, {style.loc[r, 'style_test']:.2f} "
          f"[{style.loc[r, 'style_test ci'][0]:.2f}, {style.loc[r, 'style_test ci'][1]:.2f}] out of style")
print(f"bag-of-words out of style {style.loc['bag of words', 'style_test']:.2f}, probe {style.loc['probe', 'style_test']:.2f}, "
      f"chance {1 / len(core):.2f}; chosen readout vs bag-of-words: McNemar p = {style.loc[chosen, 'style_test p vs words']:.3g}")
record("04_emotion_vectors", style_chosen_readout=chosen, style_story_vectors_test=style.loc[STORY_READER, "test"],
       style_story_vectors_style_test=style.loc[STORY_READER, "style_test"],
       style_story_vectors_ci=list(style.loc[STORY_READER, "style_test ci"]),
       style_cv=cv[list(READERS)].mean().round(4).to_dict())

# %% [markdown]
# ## 2. Similarity between emotions
# Cosine similarity of every pair of vectors, clustered. The colour strip on the left marks our
# families (`data/emotions.csv`), which the clustering never sees.

# %%
cos = pd.DataFrame((vectors.unit() @ vectors.unit().T).numpy(), index=names, columns=names)
families = emotions.loc[names, "family"]
palette = dict(zip(families.unique(), sns.color_palette("colorblind", families.nunique())))
grid = sns.clustermap(cos, cmap="vlag", center=0, row_colors=families.map(palette), figsize=(11, 11),
                      xticklabels=True, yticklabels=True, dendrogram_ratio=0.1)
grid.figure.suptitle(f"Cosine similarity of emotion vectors (layer {LAYER})", y=1.01)
for family, colour in palette.items():
    grid.ax_heatmap.bar(0, 0, color=colour, label=family, linewidth=0)
grid.ax_heatmap.legend(title="our family", bbox_to_anchor=(1.25, 1.0), loc="upper left", fontsize="small")
save_figure(grid.figure, "04_clustermap")
plt.show()

# %% [markdown]
# **k-means families vs ours.** k-means with as many clusters as we have families, compared with
# our families by the adjusted Rand index (0 = chance agreement, 1 = identical). Control: the same
# score against 200 random reshufflings of the family labels.

# %%
k = families.nunique()
clusters = KMeans(n_clusters=k, n_init=20, random_state=0).fit_predict(vectors.unit().numpy())
ari = adjusted_rand_score(families.values, clusters)
shuffled_ari = permutation_null(lambda fam: adjusted_rand_score(fam, clusters), families.values, n_resamples=200, seed=1)
null_ari = shuffled_ari.null
print(f"adjusted Rand index, k-means ({k} clusters) vs our families: {ari:.3f}; shuffled families: "
      f"{np.mean(null_ari):.3f} +/- {np.std(null_ari):.3f} (p = {shuffled_ari.pvalue:.3f})")
for c in range(k):
    print(f"cluster {c}: {', '.join(np.array(names)[clusters == c])}")

# %% [markdown]
# ## 3. The main axes: valence and arousal?
# PCA of the emotion vectors. The paper found PC1 explains 26% of the variance and tracks valence
# (r = 0.81 with human ratings), PC2 15% and tracks arousal (r = 0.66) (Sofroniew et al., 2026).
# Here the human ratings are the NRC VAD lexicon (Mohammad, 2018), not the 45-word set the paper
# used, so the comparison is side by side rather than like for like. Intervals: bootstrap over
# emotions. The sign of a principal component is arbitrary, so only |r| matters.

# %%
proj, explained, _ = pca(vectors.vectors, n_components=5)  # scores of each emotion on PC1-5, share of variance
val, aro = emotions.loc[names, "valence"].values, emotions.loc[names, "arousal"].values
rated = ~np.isnan(val) & ~np.isnan(aro)  # the NRC lexicon lacks some words (e.g. "at ease"): they are left out
print(f"human valence/arousal ratings: {rated.sum()} of the {len(names)} emotions (correlations use these)")


def oriented_corr_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Pearson r with the PC oriented to make it positive, and a 95% bootstrap interval over the rated emotions."""
    a, b = np.asarray(a)[~np.isnan(b)], np.asarray(b)[~np.isnan(b)]  # skip the emotions without a rating
    sign = np.sign(pearsonr(a, b)[0]) or 1.0
    return corr_ci(sign * a, b, n_resamples=2000, seed=1)


pcs_table = pd.DataFrame({"variance explained": explained[:5],
                          "r with valence": [pearsonr(proj[rated, i], val[rated])[0] for i in range(5)],
                          "r with arousal": [pearsonr(proj[rated, i], aro[rated])[0] for i in range(5)]},
                         index=[f"PC{i + 1}" for i in range(5)]).round(3)
display(pcs_table)
r_val, r_aro = oriented_corr_ci(proj[:, 0], val), oriented_corr_ci(proj[:, 1], aro)
table = pd.DataFrame({
    "paper (frontier model)": ["26%", "0.81", "15%", "0.66"],
    f"this course ({len(names)} emotions, {rated.sum()} rated, layer {LAYER})": [
        f"{explained[0]:.0%}", f"{r_val[0]:.2f} [{r_val[1]:.2f}, {r_val[2]:.2f}]",
        f"{explained[1]:.0%}", f"{r_aro[0]:.2f} [{r_aro[1]:.2f}, {r_aro[2]:.2f}]"]},
    index=["PC1 variance explained", "|r(PC1, valence)|", "PC2 variance explained", "|r(PC2, arousal)|"])
display(table)
best_val = int(np.argmax(np.abs(pcs_table["r with valence"].values)))
best_aro = int(np.argmax(np.abs(pcs_table["r with arousal"].values)))
for axis, r, best in (("valence", r_val, best_val), ("arousal", r_aro, best_aro)):
    pc = "PC1" if axis == "valence" else "PC2"
    verdict = "tracks" if abs(r[0]) >= 0.5 and min(abs(r[1]), abs(r[2])) > 0 and np.sign(r[1]) == np.sign(r[2]) else "does NOT track"
    print(f"{pc} {verdict} {axis} here (|r| = {abs(r[0]):.2f}); among the first five PCs, {axis} is closest to "
          f"PC{best + 1} (|r| = {abs(pcs_table.iloc[best][f'r with {axis}']):.2f}; picked after looking, so exploratory).")

# %% [markdown]
# **How much variance does each component carry?** A scree plot: if the first few components stand
# far above the rest, the geometry is low-dimensional.

# %%
_, explained_all, _ = pca(vectors.vectors)
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(range(1, min(15, len(explained_all)) + 1), explained_all[:15])
ax.set(title="Scree plot of the emotion vectors", xlabel="principal component", ylabel="share of variance")
save_figure(fig, "04_scree")
plt.show()

# %% [markdown]
# **Which emotions enter a PCA changes its axes.** The same PCA over the 12 core emotions only, beside
# all of them (both decided before looking at either). The paper used 171 emotion words.

# %%
core_idx = [i for i, n in enumerate(names) if emotions.loc[n, "core"]]
proj_core, explained_core, _ = pca(vectors.vectors[core_idx], n_components=2)
r_val_core = oriented_corr_ci(proj_core[:, 0], val[core_idx])
r_aro_core = oriented_corr_ci(proj_core[:, 1], aro[core_idx])
subsets = pd.DataFrame({"|r(PC1, valence)|": [r_val[0], r_val_core[0]], "|r(PC2, arousal)|": [r_aro[0], r_aro_core[0]],
                        "PC1 variance": [explained[0], explained_core[0]]},
                       index=[f"all {len(names)} emotions", f"{len(core_idx)} core emotions"]).round(2)
display(subsets)
if len(core_idx) == len(names):
    print("(this run has only the core emotions, so the two rows are the same PCA)")

# %% [markdown]
# ## 3b. Is the geometry the model's or the words'?
# Stories about fear use different words from stories about joy, so any text representation will
# put the two apart. Two controls, decided before looking: (1) a **words-only** twin of the vectors,
# the TF-IDF centroids of the same training stories (notebook 01's bag-of-words features), minus
# their mean over emotions; (2) the same recipe at **layer 0**, the stream after the first decoder
# layer: the token embeddings plus one attention and MLP block, about as close to "just the words" as
# the model's own activations get. For each we compare its similarity matrix with the model's (representational similarity
# analysis: the correlation of the off-diagonal entries; the interval resamples emotions, the p-value
# relabels them).

# %%
words = tfidf_centroids(stories.text[train], stories.emotion[train].values, names)
layer0 = build_emotion_vectors(model, layer=0, neutral_limit=NEUTRAL_LIMIT, **SUBSET)
sim_model, sim_words, sim_layer0 = (similarity_matrix(v) for v in (vectors.vectors, words, layer0.vectors))
print(f"words-only vectors {words.shape} (one column per word of the vocabulary); layer-0 vectors {tuple(layer0.vectors.shape)}")

# %%
rsa_rows = {"model vs words": rsa(sim_model, sim_words), "model vs layer 0": rsa(sim_model, sim_layer0),
            "layer 0 vs words": rsa(sim_layer0, sim_words)}
rsa_table = pd.DataFrame(rsa_rows, index=["r", "low", "high", "p"]).T.round(3)
display(rsa_table)

# %% [markdown]
# And the words' own PCA: do valence and arousal already appear in the word counts?

# %%
proj_w, explained_w, _ = pca(words, n_components=2)
r_val_w, r_aro_w = oriented_corr_ci(proj_w[:, 0], val), oriented_corr_ci(proj_w[:, 1], aro)
r_aro_w1 = oriented_corr_ci(proj_w[:, 0], aro)
print(f"words-only PC1 ({explained_w[0]:.0%} of variance): |r| with valence {r_val_w[0]:.2f} "
      f"[{r_val_w[1]:.2f}, {r_val_w[2]:.2f}], with arousal {r_aro_w1[0]:.2f}; PC2 with arousal {r_aro_w[0]:.2f}")

# %% [markdown]
# What *is* PC1, if it is not valence? Look at the emotions at its two ends. In our runs on
# SmolLM2-135M with an earlier, single-voice corpus, they split emotions told mostly through thoughts
# and social situations (regret, resentment, guilt, jealousy) from emotions told through the body and
# immediate danger (panic, terror, exhaustion), which is as much about *how the stories were written*
# as about the emotions.
# Check whether that holds in your run:

# %%
order = np.argsort(proj[:, 0])
print("PC1 low end: ", ", ".join(np.array(names)[order[:8]]))
print("PC1 high end:", ", ".join(np.array(names)[order[-8:]]))
order = np.argsort(proj[:, best_val])
print(f"PC{best_val + 1} (closest to valence) low end: ", ", ".join(np.array(names)[order[:8]]))
print(f"PC{best_val + 1} (closest to valence) high end:", ", ".join(np.array(names)[order[-8:]]))

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 6))
coords = pd.DataFrame({"pc1": proj[:, 0], "pc2": proj[:, 1], f"pc{best_val + 1}": proj[:, best_val], "valence": val,
                       "arousal": aro, "family": families.values}, index=names)
sns.scatterplot(data=coords, x="pc1", y="pc2", hue="family", s=60, ax=axes[0], legend=False)
for n, row in coords.iterrows():
    axes[0].annotate(n, (row.pc1, row.pc2), fontsize=7, xytext=(2, 2), textcoords="offset points")
axes[0].set(title=f"Emotion vectors on PC1/PC2 (layer {LAYER})", xlabel=f"PC1 ({explained[0]:.0%} of variance)",
            ylabel=f"PC2 ({explained[1]:.0%})")
sns.scatterplot(data=coords[rated], x="valence", y=f"pc{best_val + 1}", hue="family", s=60, ax=axes[1])
for n, row in coords[rated].iterrows():
    axes[1].annotate(n, (row.valence, row[f"pc{best_val + 1}"]), fontsize=7, xytext=(2, 2), textcoords="offset points")
axes[1].set(title=f"PC{best_val + 1} against human valence ({rated.sum()} rated emotions): "
                  f"r = {pcs_table.iloc[best_val]['r with valence']:.2f}",
            xlabel="valence (NRC VAD)", ylabel=f"PC{best_val + 1} score")
axes[1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="x-small")
save_figure(fig, "04_pca_valence")
plt.show()

# %% [markdown]
# ## 4. Logit lens: which tokens does each vector promote?
# Multiply a vector by the model's output head (after the final norm's gain) and list the tokens
# whose logits it raises most. The paper saw emotion words at the top (desperate → "desperate",
# "urgent"; calm → "relax"). A small model's lens is noisier; look for words in the right spirit.
# `top_tokens_of_each` reads many directions in one call (on NDIF one request, and only token ids come
# back), so the 60 random directions of the control below go in the same call.

# %%
norm_v = float(vectors.vectors.norm(dim=-1).mean())
random_dirs = torch.stack([norm_v * random_direction(model.d_model, 500 + s) for s in range(60)])
tops = top_tokens_of_each(model, torch.cat([vectors.vectors, random_dirs]), k=20)  # each direction's top 20
lens = {n: tops[vectors.names.index(n)][:8] for n in names}
for n in [n for n in names if emotions.loc[n, "core"]]:
    print(f"{n:>10}: {lens[n]}")

# %% [markdown]
# **Control.** Random directions of the same norm also have top tokens, and many look meaningful by
# chance. So we count, among each direction's top 20 tokens, the ones that are emotion words (any
# word or inflection of `data/emotions.csv`), for the emotion vectors and for 60 random directions.

# %%
def emotion_word_count(tokens: list[str]) -> int:
    """How many of a direction's top lens tokens are emotion words of the course's list."""
    return sum(bool(forbidden_hits(t)) for t in tokens)


counts = np.array([emotion_word_count(tops[vectors.names.index(n)]) for n in names])
rand_counts = np.array([emotion_word_count(t) for t in tops[len(vectors.names):]])  # the 60 random directions
lens_diff = mean_diff_ci(counts, rand_counts)
print(f"emotion words among the top 20: emotion vectors {counts.mean():.2f} per vector, random directions "
      f"{rand_counts.mean():.2f}; difference {lens_diff[0]:+.2f} [{lens_diff[1]:+.2f}, {lens_diff[2]:+.2f}]")

# %% [markdown]
# ## 5. Stability across layers
# Build the vectors at several layers (cheap: everything is cached) and compare the *similarity
# structures*: the correlation between two layers' cosine-similarity matrices. High values mean the
# same geometry is present at both layers.

# %%
check_layers = CHECK_LAYERS  # chosen in the first cell, so that their activations came in the same request
sims = {}
for layer in check_layers:
    u = build_emotion_vectors(model, layer=layer, neutral_limit=NEUTRAL_LIMIT, **SUBSET).unit()
    sims[layer] = (u @ u.T)[np.triu_indices(len(names), 1)].numpy()
stab = pd.DataFrame([[np.corrcoef(sims[a], sims[b])[0, 1] for b in check_layers] for a in check_layers],
                    index=check_layers, columns=check_layers)
fig, ax = plt.subplots(figsize=(6.5, 5))
sns.heatmap(stab, annot=True, fmt=".2f", cmap="mako", vmin=0, vmax=1, ax=ax)
ax.set(title="Same geometry across layers? (corr. of similarity matrices)", xlabel="layer", ylabel="layer")
save_figure(fig, "04_layer_stability")
plt.show()

# %% [markdown]
# ## 6. Explore
# Pick an emotion: its nearest and farthest emotions, the tokens it promotes, and where it sits on
# the PC1/PC2 plane next to its human ratings.

# %%
emotion_explorer(vectors, lens, coords)

# %% [markdown]
# ## What we found, and what it means
# The verdicts below are printed from this run's numbers by rules written before looking (so on
# another model they describe that model): recognition beats the shuffled names if its interval's low
# end is above 95% of the shuffles; k-means recovers families if p < 0.05; an axis "tracks" a rating as
# printed in section 3; the geometry is shared with the words "mostly" (RSA r >= 0.7), "partly"
# (0.4-0.7) or "little" (< 0.4); the lens finds emotion words beyond chance if the difference's interval
# excludes 0.

# %%
def share(r: float) -> str:
    """The pre-registered words for an RSA correlation."""
    return "mostly" if r >= 0.7 else "partly" if r >= 0.4 else "little"


print(f"- The vectors {'recognise' if lo > np.quantile(null, 0.95) else 'do NOT recognise'} unseen stories beyond "
      f"shuffled names (top-1 {top1:.2f} [{lo:.2f}, {hi:.2f}], chance {1 / len(names):.2f}).")
print(f"- k-means {'recovers' if shuffled_ari.pvalue < 0.05 else 'does NOT recover'} our families better than chance "
      f"(ARI {ari:.2f}, p = {shuffled_ari.pvalue:.3f}).")
print(f"- |r(PC1, valence)| = {r_val[0]:.2f} over all emotions, {r_val_core[0]:.2f} over the core 12; "
      f"|r(PC2, arousal)| = {r_aro[0]:.2f} (paper: 0.81 and 0.66).")
for pair, (r, low, high, p) in rsa_rows.items():
    print(f"- {pair}: the similarity structure is {share(r)} shared (RSA r = {r:.2f} [{low:.2f}, {high:.2f}], p = {p:.3f}).")
print(f"- The logit lens {'promotes' if lens_diff[1] > 0 else 'does NOT promote'} emotion words more than random "
      f"directions do ({lens_diff[0]:+.2f} words in the top 20).")

# %% [markdown]
# A geometry that the word counts share is not thereby "only words": the model has to compute it from
# the words somehow. But a claim that the model *organises* emotions like people do needs more than a
# geometry that TF-IDF centroids already have; compare the model-vs-words RSA with how well each
# tracks the human ratings above.
#
# **Questions**
# 1. Why subtract the mean over emotions instead of the mean over stories?
#    <details><summary>Our answer</summary>The emotions do not have the same number of stories: the 12 core
#    ones have many more than the others. A mean over stories would lean towards the core emotions, so the
#    "centre" would sit near them: their vectors would come out short and the rest would all share one extra
#    component pointing away from the core group. The mean of the per-emotion means gives every emotion one
#    vote, so each vector says how that emotion differs from a balanced average, whatever its number of
#    stories.</details>
# 2. What would the neutral projection remove if the neutral dialogues were all about code?
#    <details><summary>Our answer</summary>The directions along which code varies most: programming language,
#    syntax and formatting, code against prose. Those hardly occur in stories, so removing them would change
#    the emotion vectors little, and it would leave in what we wanted out: the general, emotion-free variation
#    of ordinary text and conversation (topic, register, length, the chat format). The projection is only as
#    good as the neutral set is varied; a projection that removes almost nothing is a sign that its set does
#    not resemble the stories.</details>
# 3. If PC1 tracks valence, is that because of the model or because positive and negative stories
#    use different words? How could you test it? (Hint: notebook 01's baseline.)
#    <details><summary>Our answer</summary>Build the same geometry from words alone and compare, as section 3b
#    does: the TF-IDF centroids of notebook 01's features, centred the same way, their PCA against human
#    valence, and the RSA between their similarity matrix and the model's. If the words give a valence axis as
#    strong as the model's and share most of its similarity structure, vocabulary is enough to explain the axis;
#    only a model axis clearly stronger than the words' points to something the model adds. On this small model
#    PC1 may not track valence at all (see the ends of PC1 above); then ask which PC does, and whether the words
#    give that one too.</details>
#
# **Next:** `05_emotions_in_conversation`: the same vectors, read inside conversations.

# %% [markdown]
# ### For the report
# The numbers of this run that `make course` collects into `build/report.html`.

# %%
record("04_emotion_vectors", layer=LAYER, n_emotions=len(names), cosine_top1=top1, cosine_top1_ci=[lo, hi],
       cosine_top1_shuffled_mean=float(np.mean(null)), cosine_top1_chance=1 / len(names),
       neutral_components=int(pcs.shape[0]))
record("04_emotion_vectors", kmeans_ari=ari, kmeans_ari_null_mean=float(np.mean(null_ari)),
       kmeans_ari_p=shuffled_ari.pvalue)
record("04_emotion_vectors", **{f"style_{k}_{split}": style.loc[name, split] for k, name in
                                 (("vectors", "emotion vectors"), ("probe", "probe"), ("bow", "bag of words"))
                                 for split in ("test", "style_test")},
       style_vectors_p_vs_words=style.loc["emotion vectors", "style_test p vs words"],
       style_vectors_ci=list(style.loc["emotion vectors", "style_test ci"]))
record("04_emotion_vectors", pc1_variance=explained[0], pc2_variance=explained[1], r_pc1_valence=r_val[0],
       r_pc1_valence_ci=list(r_val[1:]), r_pc2_arousal=r_aro[0], r_pc2_arousal_ci=list(r_aro[1:]),
       valence_best_pc=best_val + 1,
       valence_best_pc_r=abs(pcs_table.iloc[best_val]["r with valence"]), arousal_best_pc=best_aro + 1,
       arousal_best_pc_r=abs(pcs_table.iloc[best_aro]["r with arousal"]))
record("04_emotion_vectors", rsa_words=rsa_rows["model vs words"][0], rsa_words_ci=list(rsa_rows["model vs words"][1:3]),
       rsa_words_p=rsa_rows["model vs words"][3], rsa_layer0=rsa_rows["model vs layer 0"][0],
       rsa_layer0_ci=list(rsa_rows["model vs layer 0"][1:3]), words_pc1_valence=r_val_w[0], words_pc1_arousal=r_aro_w1[0],
       core_r_pc1_valence=r_val_core[0], core_r_pc2_arousal=r_aro_core[0], lens_emotion_words=float(counts.mean()),
       lens_random_emotion_words=float(rand_counts.mean()))
