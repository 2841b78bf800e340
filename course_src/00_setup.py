# %% [markdown]
# # 00 · Setup: meet the model and look inside it
#
# **Time:** about 25 minutes · **You need:** Python, a little NumPy/PyTorch; no interpretability background.
#
# In this course you will do "AI neuroscience" on a small chat model: have it read short stories,
# record what happens inside it, find directions that track emotions, and then push on those
# directions to see whether they change what the model does. This first notebook makes sure
# everything works on your machine and introduces the one tool we use to look inside: **nnsight**.
#
# **Learning goals**
# 1. Load the course model (offline) and chat with it once.
# 2. See the model as a stack of decoder layers that each update a *residual stream*.
# 3. Use nnsight to read a layer's output, and know its shape: `[batch, tokens, d_model]`.
# 4. Edit a layer's output inside a trace and measure what changes in the prediction.
# 5. Get your first activations of a story with `extract_activations`.
#
# > **What this course can and cannot show.** The paper's claim is about *functional* emotions:
# > internal representations of emotion concepts that become active in situations where a person
# > would feel the emotion, and that change the model's behaviour when they are changed. It makes no
# > claim that the model feels anything, and neither do we. A 135M-parameter model is small: expect
# > clear emotion *representations* (probes, vectors, a similarity structure), weaker links to human
# > ratings, and behavioural effects that may not appear at all. Every notebook measures, shows an
# > interval and a control, and prints what this run found.

# %% [markdown]
# **Words the course uses** (each is explained again where it first matters):
# - **residual stream**: the vector of `d_model` numbers per token that each decoder layer reads and adds its update to.
# - **log-probability, nats**: the natural log of a token's probability (0 = certain, -2.3 = 10%); differences of them are in *nats*.
# - **probe**: a simple classifier (logistic regression) fitted on activations, to ask whether a property can be read out linearly.
# - **TF-IDF**: word counts, down-weighted for words that occur in every text: the bag-of-words baseline's input (01).
# - **Wilson interval**: a 95% interval for a proportion such as an accuracy, sound for small samples and near 0 or 1.
# - **bootstrap**: redo a statistic on many resamples (with replacement) of the items, to see how much it could vary.
# - **cosine similarity**: the dot product of two vectors over the product of their lengths; direction only, -1 to 1.
# - **Spearman correlation**: the correlation of ranks: do two quantities rise together, straight line or not?
# - **random-direction null**: the same measurement for 100 or more random directions; the effect's rank among them is an exact p-value.
# - **logit lens, perplexity**: a vector times the unembedding shows which tokens it favours; exp of the mean negative log-probability per token measures how expected (fluent) a text is.

# %% [markdown]
# ## Parameters
# The next cell holds the settings. The test suite and `make course` override them (papermill
# "parameters" cell). On Colab with a GPU you can set `MODEL_NAME` to a larger Hugging Face model,
# e.g. `"HuggingFaceTB/SmolLM2-1.7B-Instruct"`; `None` means the bundled SmolLM2-135M-Instruct,
# which runs offline on any laptop.
#
# **Which model, and how much memory?** Pick an *instruct* (chat) model: the course talks to the model
# in conversations, and `load_model` stops with a clear message for a base model without a chat
# template. On a GPU the course keeps float32 (the same numbers as on a CPU) up to about 2.5 billion
# parameters, 4 bytes each: a 1B model needs about 4 GB of GPU memory, a 2B model about 8 GB, which
# fits Colab's 15 GB T4. Bigger models load in bfloat16 (2 bytes per parameter; float16 on GPUs older
# than the A100 generation). Pass `dtype=...` to `load_model` to choose yourself.

# %% tags=["parameters"]
# None means the bundled SmolLM2-135M-Instruct, offline. Or any Hugging Face model id.
MODEL_NAME = None
# True runs MODEL_NAME on NDIF (needs NDIF_API_KEY), for models no laptop can hold.
REMOTE = False
# True gives the smallest run, used by the tests and by weak laptops.
# None (the default) follows the COURSE_FAST environment variable: `make lab FAST=1` sets it for a whole room.
FAST = None

# %%
from course_utils.paths import fast_mode

FAST = fast_mode(FAST)

# %%
import torch

from course_utils import chat, extract_activations, load_model
from course_utils.data import load_stories

torch.manual_seed(0)
print("torch", torch.__version__)

# %% [markdown]
# ## 1. Load the model
# `load_model()` returns an nnsight `LanguageModel`: the ordinary Hugging Face model, wrapped so that
# we can read and edit its internals. The first call converts the bundled GGUF file to a cached
# float32 copy (the slow part of the first load); later calls load that copy.
#
# **The bundled model is quantised.** Its file is a Q4_1 GGUF: every weight was stored in 4 bits (blocks of 32
# weights sharing one scale and one offset), and `load_model` turns them back into float32 once, so the arithmetic
# is float32 but the weights carry the rounding of the 4-bit storage. Every number this course prints belongs to
# this quantised model; the full-precision SmolLM2-135M-Instruct, or any bigger model, gives numbers of its own.

# %%
model = load_model(MODEL_NAME, remote=REMOTE)
print(f"model: {model.course_id}")
print(f"decoder layers: {model.n_layers}, residual stream width d_model: {model.d_model}")

# %%
if REMOTE:  # before the first NDIF request: is the model served, and do torch/transformers/nnsight match the server?
    from course_utils.models import check_remote

    print(check_remote(model))  # stops with what to do on a critical mismatch or a model that is not running

# %% [markdown]
# ## 2. Chat with it once
# Chat models read a conversation written in a special *chat template*. `chat()` builds that
# string and stops exactly where the assistant's reply begins. Look at the special tokens.

# %%
prompt = chat(model, "In one sentence, what is a lighthouse for?")
print(prompt)

# %% [markdown]
# Generation with nnsight looks like ordinary generation wrapped in a `with` block. Inside the
# block we could read or change anything; here we only collect the result.

# %%
with torch.no_grad(), model.generate(prompt, max_new_tokens=30, do_sample=False, remote=REMOTE) as tracer:
    tokens = tracer.result.save()
reply = model.tokenizer.decode(tokens[0][len(model.tokenizer(prompt)["input_ids"]):], skip_special_tokens=True)
print("tokens shape:", tuple(tokens.shape))
print("reply:", reply)

# %% [markdown]
# A 135-million-parameter model is tiny by today's standards (the paper studied a frontier model).
# Judge its reply above for yourself; clumsy or not, we are going to study what it *represents*, and
# later we will measure behaviour with log-probabilities over many prompts rather than trusting
# one sampled answer.

# %% [markdown]
# ## 3. Look inside: the module tree
# Printing the model shows its parts. The ones we care about are the decoder layers
# (`model.layers[0]` ... `model.layers[29]`): each reads the residual stream, adds its update, and
# passes it on. `model.layer(i)` is the course's shortcut that also works for Qwen, Gemma and GPT-2 style models.

# %%
print(model)

# %% [markdown]
# ## 4. Read a layer's output with nnsight
# Take the layer first, `layer = model.layer(i)`; inside `model.trace(...)`, `layer.output` is the residual
# stream *after* decoder layer `i`. `nnsight.save(...)` keeps it after the block ends. (Why before the block:
# `model.layer` is the course's shortcut and runs on your machine; with `REMOTE = True` the block itself runs on
# NDIF's server, which has nnsight and torch but no course code. Inside a block, use only envoys and torch.) Note the shape: **`[batch, tokens, d_model]`**.
# (In transformers 5 this is a plain tensor; older code wrote `output[0]` to unpack a tuple, which
# now silently takes batch row 0 instead.)

# %%
import nnsight

from course_utils.vectors import default_layer

LAYER = default_layer(model.n_layers)  # two-thirds deep: layer 20 of SmolLM2-135M's 30
layer = model.layer(LAYER)  # the layer's envoy, taken before the trace
with torch.no_grad(), model.trace("The lighthouse keeper climbed the stairs.", remote=REMOTE):
    out = nnsight.save(layer.output)
print(f"layer {LAYER} output shape [batch, tokens, d_model]:", tuple(out.shape))
token_norms = out[0].norm(dim=-1)
print("norm of each token's residual vector:", token_norms.round().tolist())
sink = float(token_norms[0] / token_norms[1:].median())
print(f"the first token's norm is {sink:.0f} times the median of the others")

# %% [markdown]
# Look at the first norm and the ratio printed under it: at this layer the **first token's** vector is far
# longer than the others (notebook 02 shows at which layer this starts). Many models park a huge "attention sink"
# activation on the first token. It carries no meaning about the text, so from now on we never let the first
# token into an average.

# %% [markdown]
# **How nnsight works, in one cell.** Code inside `model.trace(...)` does not run line by line: nnsight
# records it, then runs the model once when the block ends. So `layer.output` is a *proxy*
# for a value that does not exist yet; assigning into `.output[:]` *edits* the model's computation at
# that point; and only values wrapped in `nnsight.save(...)` are kept after the block (everything
# else is deleted). Read, edit, read what the edited model predicts, and compare with the unedited model:

# %%
prompt = "The capital of France is"
with torch.no_grad(), model.trace(prompt, remote=REMOTE):  # `layer` is still model.layer(LAYER), from above
    before = nnsight.save(layer.output[0, -1].norm())  # read: a proxy until the block ends
    layer.output[:] = layer.output * 0.5  # edit: halve the stream after LAYER
    edited = nnsight.save(model.output.logits[0, -1])  # read what the edited model predicts
with torch.no_grad(), model.trace(prompt, remote=REMOTE):  # the same prompt, no edit
    plain = nnsight.save(model.output.logits[0, -1])
p_plain, p_edit = torch.softmax(plain.float(), -1), torch.softmax(edited.float(), -1)
print(f"last token's norm at layer {LAYER} before the edit: {float(before):.1f} (halved: {float(before) / 2:.1f})")
print("top 5 next tokens   p unedited   p after halving")
for i in p_plain.topk(5).indices.tolist():
    print(f"{model.tokenizer.decode([i])!r:>18}   {p_plain[i]:10.3f}   {p_edit[i]:15.3f}")

# %%
top_plain, top_edit = int(p_plain.argmax()), int(p_edit.argmax())
word = model.tokenizer.decode([top_plain])
shift = 0.5 * float((p_plain - p_edit).abs().sum())  # total variation distance: share of probability that moved
print(f"Top word unedited {word!r} (p = {p_plain[top_plain]:.3f}); after halving "
      f"{model.tokenizer.decode([top_edit])!r} (p = {p_edit[top_edit]:.3f}); {shift:.1%} of the probability moved.")
print(f"Why the top word {'survives' if top_plain == top_edit else 'can change'}: every later layer, and the final "
      f"norm, first divides its input by its size (RMSNorm in this model). So layer {LAYER + 1} reads exactly what it "
      f"read before, and the halving only makes the additions of layers {LAYER + 1}-{model.n_layers - 1} weigh twice "
      "as much against the stream they are added to: the mix changes, and with it the probabilities above.")

# %% [markdown]
# ### Exercise 0 · Read the residual stream after a layer
# > **Difficulty:** 🔴⚪⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 5 minutes
#
# Write `residual_after(model, prompt, layer)` that returns the residual stream after decoder layer
# `layer` for one prompt, as a tensor of shape `[n_tokens, d_model]` on the CPU.
#
# <details><summary>Hint 1 (is your variable gone after the with block?)</summary>nnsight deletes every value
# from inside a trace that was not explicitly saved there; section 4 shows the pattern, with the layer's envoy
# taken before the block.</details>
# <details><summary>Hint 2 (stuck on the shape?)</summary>The trace ran a batch of one prompt, so the saved
# output is <code>[1, n_tokens, d_model]</code>. Drop the batch axis on the saved tensor, after the block. In
# transformers 5 the output is already a tensor, not a tuple: one <code>[0]</code> is the row, a second would be
# the first token.</details>

# %%
def residual_after(model, prompt: str, layer: int) -> torch.Tensor:
    """The residual stream after decoder layer `layer` for one prompt: [n_tokens, d_model]."""
    # BEGIN SOLUTION
    # Why: the envoy is taken outside the block because a remote trace runs where there is no course code;
    # nnsight.save is the only way a value outlives the trace; [0] on the saved [1, tokens, d] tensor drops the
    # batch axis, and .cpu() lets the NumPy code of later notebooks use it even when the model is on a GPU.
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        out = nnsight.save(envoy.output)
    return out[0].detach().cpu()
    # END SOLUTION


# %%
from course_utils import checks

residual_after = checks.check_residual_after(residual_after, model)
print("shape:", tuple(residual_after(model, "Hello there", model.n_layers // 3).shape))

# %% [markdown]
# ### Exercise 0b · Edit the stream, read the prediction
# > **Difficulty:** 🔴🔴⚪⚪⚪ · **Importance:** 🔵🔵🔵🔵⚪ · **Time:** 10 minutes
#
# Write `next_token_probs(model, prompt, layer, scale)`: multiply the residual stream after decoder layer `layer`
# by `scale` (every token), and return the model's next-token probabilities after the prompt, shape `[vocab]`, on
# the CPU. `scale=1.0` is the unedited model. The cell after the check uses it for an experiment the demo above
# did not do: shrink the stream after each layer in turn, and see where the prediction breaks.
#
# <details><summary>Hint 1 (does your edit change nothing?)</summary>Multiplying the layer's output by the scale
# computes a new value that the model never sees. The edit has to be written back into the layer's output, in
# place, as the demo above did.</details>
# <details><summary>Hint 2 (which logits?)</summary><code>model.output.logits</code> is
# <code>[1, tokens, vocab]</code>, one prediction per position; the *next* token is predicted at the last one.
# Logits are scores, not probabilities: the softmax over the vocabulary turns them into numbers that add up to
# one.</details>

# %%
def next_token_probs(model, prompt: str, layer: int, scale: float) -> torch.Tensor:
    """Next-token probabilities [vocab] after multiplying the residual stream after `layer` by `scale`."""
    # BEGIN SOLUTION
    # Why: only an assignment into .output[:] becomes part of the forward pass; the last position is the one
    # that predicts the next token; softmax turns logits (scores defined up to a constant) into probabilities,
    # computed in float32 so that a bfloat16 model gives the same numbers.
    envoy = model.layer(layer)
    with torch.no_grad(), model.trace(prompt, remote=model.remote):
        envoy.output[:] = envoy.output * scale
        logits = nnsight.save(model.output.logits[0, -1])
    return torch.softmax(logits.float(), -1).cpu()
    # END SOLUTION


# %%
next_token_probs = checks.check_next_token_probs(next_token_probs, model)

# %% [markdown]
# The experiment: the demo's prompt again, the stream after each layer in turn shrunk to a half, then to a
# tenth. After which layers does the model still predict its top word?

# %%
top = int(next_token_probs(model, prompt, LAYER, 1.0).argmax())  # the unedited top word
for scale in (0.5, 0.1):
    shrunk = torch.stack([next_token_probs(model, prompt, i, scale) for i in range(model.n_layers)])  # [layers, vocab]
    kept = (shrunk.argmax(-1) == top).nonzero().flatten().tolist()
    print(f"scale {scale}: p({word!r}) after shrinking each layer's output:", [round(float(p), 2) for p in shrunk[:, top]])
    print(f"   the top word survives after {len(kept)} of {model.n_layers} layers: {kept}")
last = float((shrunk[-1] - p_plain).abs().max())
print(f"After the last layer ({model.n_layers - 1}) a tenth changes no probability by more than {last:.1e}: the final "
      "norm divides the size back out, and no layer comes after it to weigh against.")

# %% [markdown]
# ## 5. Your first activations of a story
# `extract_activations` does the same for many texts at once, for every layer, in batches, and
# keeps the result in a cache on disk that all notebooks share. With `reduce="mean"` it averages
# each text's tokens (leaving out the first `skip_first` tokens and all padding) and returns
# `[n_texts, n_layers, d_model]`.

# %%
stories = load_stories(split="train")
story = stories.iloc[0]
print(f"emotion: {story.emotion}  ·  topic: {story.topic}\n")
print(story.text)

# %%
acts = extract_activations(model, [story.text], reduce="mean")
print("mean activations [n_texts, n_layers, d_model]:", tuple(acts.shape))
print("norm of the story's mean vector at each layer:", acts[0].norm(dim=-1).round().tolist())

# %% [markdown]
# ## Going further
# 1. **Which layers matter for this fact?** Exercise 0b shrank one layer at a time. Shrink to 0.0
#    instead (the stream erased after that layer, so the later layers start from nothing): from which layer on
#    does the top word survive? What does that say about where the model has the answer?
# 2. **Another prompt.** Try `"The opposite of hot is"` or a prompt of your own: is the pattern of breaking
#    layers the same? Print the top five words after a shrink that breaks the prediction: what replaces it?
# 3. **The sink under the edit.** Scale every token but the first (`layer.output[:, 1:] = ...`): does the
#    prediction break at different layers when the first-token vector is left alone?

# %% [markdown]
# ## Recap
# - The model is a stack of decoder layers updating a residual stream of width `d_model`.
# - nnsight reads any layer's output inside a `trace` (take `layer = model.layer(i)` before the block);
#   outputs are `[batch, tokens, d_model]`.
# - The first token is an outlier with a huge norm; averages leave it out.
# - `extract_activations` turns texts into `[n_texts, n_layers, d_model]`, cached for later notebooks.
#
# **Questions to think about**
# 1. Why might a model keep an enormous vector on the first token?
#    <details><summary>Our answer</summary>Attention weights must add up to one, so a head that has nothing
#    useful to read still has to put its weight somewhere. The first token is visible from every position, and
#    a huge, nearly constant vector there makes a harmless place to park that weight (an "attention sink"); the
#    huge norm also keeps it from being disturbed by what later layers add. That is the usual explanation from
#    work on larger models. This notebook only shows the outlier and the layer where it starts; to test the
#    explanation you would look at how much attention goes to position 0 in the layers from there on.</details>
# 2. If we average a story's tokens, what information do we lose? What do we keep?
#    <details><summary>Our answer</summary>We lose order and position: which token said what, how the state
#    changed as the story went on, and anything that lives in one token only (such as the last token, which
#    prepares the next prediction). We keep what many tokens share: directions present through most of the
#    story, such as its topic, its style and, we hope, the situation's emotion; averaging also smooths out the
#    noise of single tokens. Whether the emotion survives the average is not assumed: notebooks 03 and 04 test
#    it.</details>
#
# **Next:** `01_reading_stories`: the stories the model will read, and the baseline any probe must beat.
