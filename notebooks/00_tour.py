# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 0. A tour: from text to predictions
#
# One sentence through the whole of DeBERTa-v3, with the shape of every array on the way:
#
# $$\text{text} \xrightarrow{\text{tokenizer}} \text{ids}\ (B, N) \xrightarrow{\text{embeddings}} h_0\ (B, N, D)
# \xrightarrow{\text{layer } 0} h_1 \cdots \xrightarrow{\text{layer } L-1} h_L
# \xrightarrow{\text{head}} \text{logits}.$$
#
# Each layer is $h_{\ell+1} = \operatorname{layer}_\ell(h_\ell)$, for $\ell = 0 \dots L-1$: disentangled self-attention (notebook 06)
# and a feed-forward block, each followed by a residual sum and a LayerNorm (notebook 07). Two heads
# sit on top: the masked-language-model head decodes through the **Enhanced Mask Decoder**
# (notebook 08), and the replaced-token-detection head (the v3 discriminator) says, for each token,
# how likely it is to have been swapped (notebook 09).
#
# The whole model is two functions on one screen, `deberta.forward` and `deberta.backward`
# (`minideberta/deberta.py`): embeddings, the relative table, each layer, the Enhanced Mask Decoder,
# a head, the loss, and back. The model class is a thin wrapper around them. Every step below calls
# the component functions those two call, one after another, and checks that together they give
# exactly what the public model class returns.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import deberta, embeddings, emd, encoder, heads
from minideberta.apps import course
from minideberta.apps.inference import pipelines
from minideberta.inputs import prepare_inputs
from minideberta.params import subtree

print(course.describe())
model, tokenizer = course.course_model("masked-lm", dtype=np.float64)                # the generator
discriminator, _ = course.course_model("replaced-token-detection", dtype=np.float64)
config = model.config
print(f"L = {config.num_hidden_layers} layers, D = {config.hidden_size}, H = {config.num_attention_heads} heads, "
      f"vocabulary {config.vocab_size}, {model.num_parameters():,} parameters")

# %% [markdown]
# ## 1. Text to tokens
#
# The tokenizer (notebook 01) cuts the text into sentencepiece pieces, writes `[MASK]` as its own
# token, and frames the text as `[CLS] ... [SEP]`. After a special token it starts a new word, so the
# full stop of "[MASK]." would be the piece `▁.`; in pre-training the masked token was a word and the
# full stop after it `.`. `pipelines.encode_masked` (what `fill-mask` uses) tokenizes the text with a
# word in the mask's place, then puts the mask back: the model reads the pieces it was trained on.

# %%
text = "He drank a glass of [MASK]."   # a plain sentence few words fit: written with "water" (milk, wine...)
# The shipped pair learnt from dictionaries, quotations and the Python documentation (its model card has the
# corpus): a tiny model, so expect the original word among its guesses, not always first (its rank is printed below).
enc = {k: v for k, v in pipelines.encode_masked(tokenizer, text).items() if k in ("input_ids", "attention_mask")}
ids = enc["input_ids"]                                             # (B, N)
tokens = tokenizer.convert_ids_to_tokens(ids[0])
print(list(zip(tokens, ids[0].tolist())))
B, N = ids.shape
at = tokens.index("[MASK]")
assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and ids[0, at] == tokenizer.mask_token_id

out = model(**enc, output_hidden_states=True, output_attentions=True)
shapes = {"input_ids": ids.shape, "hidden_states[0] (embeddings)": out.hidden_states[0].shape,
          **{f"hidden_states[{i}] (layer {i})": h.shape for i, h in enumerate(out.hidden_states) if i},
          "attentions[l]": out.attentions[0].shape, "logits": out.logits.shape}
for name, shape in shapes.items():
    print(f"{name:32s} {shape}")
D, H, V, L = config.hidden_size, config.num_attention_heads, config.vocab_size, config.num_hidden_layers
assert len(out.hidden_states) == L + 1 and all(h.shape == (B, N, D) for h in out.hidden_states)
assert all(a.shape == (B, H, N, N) for a in out.attentions) and out.logits.shape == (B, N, V)

# %% [markdown]
# The class called `deberta.forward` (the model on one screen) with its task's head: the same
# call, made directly on the parameter dict, gives the same logits bit for bit.

# %%
x = prepare_inputs(config, np.float64, ids, enc["attention_mask"])         # checked arrays, masks, positions
whole, _ = deberta.forward(model.params, config, x, "masked_lm", use_emd=True)  # steps 2 and 3 below, in one call
assert np.array_equal(whole["logits"], out.logits)

# %% [markdown]
# ## 2. Embeddings, then each layer
#
# $h_0 = \operatorname{LayerNorm}(W_\text{word}[\text{ids}])$ masked (notebook 04): v3 adds no absolute
# position here. The layers share one table of relative-position embeddings (after its own LayerNorm)
# and the rows each distance uses (notebook 05). Calling the components one after another:

# %%
params = model.params
inputs = dict(token_type_ids=np.zeros_like(ids), position_ids=np.arange(N)[None], attention_mask=enc["attention_mask"])
pair_mask, token_mask = encoder.attention_masks(inputs["attention_mask"])              # None: nothing to mask
h, _ = embeddings.forward(subtree(params, "deberta.embeddings"), ids, inputs["token_type_ids"],
                          inputs["position_ids"], token_mask, config)                   # (B, N) -> (B, N, D)
states = [h]
enc_params = subtree(params, "deberta.encoder")
relative = encoder.relative_embeddings_forward(enc_params, config, N)
table, rows = relative.table, relative.rows                                              # (2k, D), 2 x (2N-1,)
for layer in range(L):
    h, _ = encoder.layer_forward(subtree(enc_params, f"layer.{layer}"), h, pair_mask, config, table, rows)  # (B, N, D)
    states.append(h)
print("relative table", table.shape, "; rows for the 2N-1 distances:", rows[0].shape)
for layer, (ours, theirs) in enumerate(zip(states, out.hidden_states)):
    print(f"H_{layer}: max |components - model| = {np.abs(ours - theirs).max():.1e}")
    assert np.abs(ours - theirs).max() < 1e-12

fig, axes = plt.subplots(1, L + 1, figsize=(3 * (L + 1), 3.2))
for layer, ax in enumerate(axes):
    ax.imshow(states[layer][0], cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
    ax.set_title(f"H_{layer} {states[layer].shape[1:]}" + (" embeddings" if layer == 0 else ""), fontsize=9)
    ax.set_yticks(range(N), tokens if layer == 0 else [""] * N, fontsize=7)
    ax.set_xlabel("feature")
plt.show()

# %% [markdown]
# ## 3. Fill-mask through the Enhanced Mask Decoder
#
# Relative attention knows how far apart two tokens are, never where they are. The Enhanced Mask
# Decoder adds the absolute positions just before decoding: with $h_{L-1}$ the second-to-last layer's
# output and $W_\text{pos}$ the absolute position table,
#
# $$q_0 = h_{L-1} + W_\text{pos}[\text{positions}], \qquad q_{t} = \operatorname{layer}_{L-1}(\text{keys, values} = h_{L-1},\ \text{queries} = q_{t-1}), \quad t = 1, 2,$$
#
# the last layer applied twice, and the MLM head decodes $q_2$ with the tied word table:
# $\text{logits} = \operatorname{LayerNorm}(\operatorname{GELU}(q_2 W^\top + b))\, W_\text{word}^\top + b_\text{out}$.

# %%
assert model.resolve_emd(None), "the course's masked LM decodes through the Enhanced Mask Decoder"
decoded, _ = emd.forward(subtree(params, "deberta"), states[-2], pair_mask, inputs["position_ids"], config)
logits, _ = heads.mlm_head_forward(model.head_params(), decoded, params["deberta.embeddings.word_embeddings.weight"],
                                   config)                                               # (B, N, D) -> (B, N, V)
print("decoded", decoded.shape, "-> logits", logits.shape)
assert np.abs(logits - out.logits).max() < 1e-12
plain = model(**enc, emd=False).logits                                                   # the last layer, decoded directly
assert np.abs(plain - out.logits).max() > 1e-6        # EMD changes the prediction

result = pipelines.fill_mask(model, tokenizer, text, top_k=8)
top = result["masks"][0]["predictions"]
probs = np.exp(out.logits[0, at] - out.logits[0, at].max())
probs /= probs.sum()
expected = np.argsort(-probs[:len(tokenizer)], kind="stable")[:8]
assert [p["token_id"] for p in top] == expected.tolist()
assert np.allclose([p["score"] for p in top], probs[expected], rtol=1e-6, atol=0)

fig, ax = plt.subplots(figsize=(7, 3))
ax.barh([p["token"] for p in top][::-1], [p["score"] for p in top][::-1])
ax.set_xlabel("probability")
ax.set_title(f"{text!r}: the 8 most likely tokens behind [MASK]")
plt.show()
if course.is_trained():
    assert top[0]["score"] > 100 / len(tokenizer), "a trained model is far more confident than uniform"
if course.is_shipped():  # the word the sentence was written with, against a uniform guess over the vocabulary
    water = course.one_piece(tokenizer, "water")
    print(f"P('water') = {probs[water]:.3f}, {probs[water] * len(tokenizer):.0f} times the uniform 1/V; "
          f"rank {int((probs[:len(tokenizer)] > probs[water]).sum()) + 1} of {len(tokenizer)}")
    assert probs[water] > 10 / len(tokenizer), "the shipped generator ranks the original word far above chance"

# %% [markdown]
# ## 4. Replaced-token detection
#
# DeBERTa-v3 is pre-trained as a discriminator (ELECTRA-style): a small generator fills masked tokens,
# and the discriminator sees the result and predicts, for every token, whether it is the original.
# Its head is one logit per token, $p(\text{replaced}) = \sigma(\text{logit})$ (`heads.rtd_head_forward`):
# the [CLS] state is added to every position, then LayerNorm, a dense layer with GELU, and a
# classifier to one number.

# %%
original, swapped = "She drank a cup of tea in the morning.", "She drank a cup of tea in the purple."
fig, axes = plt.subplots(1, 2, figsize=(11, 3), sharey=True)
for ax, sentence in zip(axes, (original, swapped)):
    rtd = pipelines.replaced_tokens(discriminator, tokenizer, sentence)
    e = tokenizer([sentence], return_tensors="np")
    logits = discriminator(**e).logits                                            # (B, N): one logit per token
    assert logits.shape == e["input_ids"].shape
    assert np.allclose([t["probability"] for t in rtd], 1 / (1 + np.exp(-logits[0, 1:-1])), rtol=1e-12, atol=0)
    ax.bar([t["token"] for t in rtd], [t["probability"] for t in rtd])
    ax.axhline(0.5, color="0.5", ls="--", lw=1)
    ax.set_title(sentence, fontsize=9)
    ax.tick_params(axis="x", rotation=45)
axes[0].set_ylabel("p(replaced)")
plt.show()
if course.is_trained():
    probabilities = [t["probability"] for t in pipelines.replaced_tokens(discriminator, tokenizer, original)]
    assert np.mean(probabilities) < 0.5, "a trained discriminator finds most tokens of a plain sentence original"
if course.is_shipped():
    # One sentence is one draw. Four copies of a few plain sentences, about 15% of their tokens swapped for random
    # pieces of the vocabulary (seeded): a discriminator that learnt its task scores the swapped tokens above the
    # untouched ones. ROC AUC: the share of (swapped, untouched) pairs ordered so; 0.5 is chance.
    everyday = ["She drank a cup of tea in the morning.", "The children played in the park after school.",
                "My brother lives in a small house near the river.", "She opened the door and walked into the room.",
                "The dog is sleeping on the floor.", "The train leaves at seven in the morning."]
    e = {k: np.tile(v, (4, 1)) for k, v in tokenizer(everyday, padding=True, return_tensors="np").items()}
    inside = e["attention_mask"] == 1
    inside[:, 0] = False                                                         # not [CLS]
    inside[np.arange(len(inside)), e["attention_mask"].sum(1) - 1] = False       # nor [SEP]
    rng = np.random.default_rng(0)
    hit = inside & (rng.random(inside.shape) < 0.15)
    corrupted = e["input_ids"].copy()
    corrupted[hit] = rng.integers(4, len(tokenizer) - 1, hit.sum())   # a piece: past [PAD] [CLS] [SEP] [UNK], before [MASK]
    hit &= corrupted != e["input_ids"]
    p_replaced = 1 / (1 + np.exp(-discriminator(corrupted, attention_mask=e["attention_mask"]).logits))
    auc = (p_replaced[hit][:, None] > p_replaced[inside & ~hit][None, :]).mean()
    print(f"{hit.sum()} tokens swapped at random in 4 x {len(everyday)} sentences: mean P(replaced) "
          f"{p_replaced[hit].mean():.2f} swapped, {p_replaced[inside & ~hit].mean():.2f} untouched; ROC AUC {auc:.2f}")
    assert auc > 0.65, "the shipped discriminator tells random swaps from the original tokens well above chance"

# %% [markdown]
# With the random default model these bars are noise around 0.5. With the shipped discriminator most tokens of
# the plain sentence stay well below 0.5 (checked above). Whether "purple" stands out in one sentence is one
# draw; what the cell checks is the measured share: over a few sentences with random swaps, how often a swapped
# token scores above an untouched one (printed above). A model this small misses many plausible-looking swaps:
# `python -m minideberta pretrain-eval` measures the swap and cloze sets of everyday sentences, and the
# model card gives the numbers.
#
# ## Questions and exercises
#
# 1. Which arrays in this notebook grow with the vocabulary, and which with the length $N$? Count the
#    floats of each for DeBERTa-v3-base ($D = 768$, $L = 12$, $V = 128100$) at $N = 512$.
# 2. Why does the Enhanced Mask Decoder read $h_{L-1}$ and not $h_L$? Read `minideberta/emd.py`, then
#    check your own decoder's backward: `python -m minideberta exercises check emd.backward`.
