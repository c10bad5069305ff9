# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Disentangled attention
#
# BERT adds a position vector to each token before attention. DeBERTa keeps *content* and
# *position* apart: the score of query token $i$ for key token $j$ is the sum of three dot products,
#
# $$
# A_{ij} = \frac{1}{\sqrt{3d}}\Big(\underbrace{Q_i \cdot K_j}_{\text{c2c}}
#       + \underbrace{Q_i \cdot K^r_{\delta(i,j)}}_{\text{c2p}}
#       + \underbrace{K_j \cdot Q^r_{\delta(i,j)}}_{\text{p2c}}\Big)
# $$
#
# where $Q, K$ are the projected token vectors, $K^r, Q^r$ the rows of the table of relative position
# embeddings projected the same way, $\delta(i,j)$ the row for the distance $i - j$ (notebook 04), and $d$
# the head size. (On the row of the p2c term, see the note in section 1.)
#
# Keep `minideberta/attention.py` (`forward` and its hand-written `backward`) and `minideberta/gradcheck.py`
# open beside this notebook.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2Config, DebertaV2Model, attention, encoder, gradcheck
from minideberta.ops import subtree
from minideberta.relative_position import build_relative_position, rel_to_abs, relative_index_tables

np.set_printoptions(linewidth=120, precision=3, suppress=True)
config = DebertaV2Config(
    vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=64, relative_attention=True, position_buckets=8, pos_att_type="p2c|c2p",
    share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False,
    initializer_range=0.3)   # larger than the usual 0.02, so that the random attention is not flat
N, k = 12, config.position_span

# %% [markdown]
# ## 1. The three score terms
#
# A small random model with the v3 choices: relative attention with log buckets, `share_att_key=True`
# (positions are projected by the layer's own `query_proj` / `key_proj`), a LayerNorm on the
# relative-embedding table, no absolute positions in the input. float64, so that two ways of computing
# the same thing agree to round-off. A freshly built model is in evaluation mode (no dropout).
#
# `hidden_states[0]` is the output of the embeddings: the input of the attention of layer 0.

# %%
model = DebertaV2Model(config, seed=0, dtype=np.float64)
ids = np.random.default_rng(0).integers(1, config.vocab_size, size=(1, N))
out = model(ids, output_hidden_states=True, output_attentions=True)
x = out.hidden_states[0]                      # (1, N, hidden_size)
print("ids:", ids[0])
print("x:", x.shape, " attentions of layer 0:", out.attentions[0].shape, "(B, H, N, N)")

# %% [markdown]
# Now by hand, from `model.params` (the names are Hugging Face's), for head $h = 0$. A Linear weight is
# stored `(out, in)`, so a projection is `x @ W.T + b`, and head $h$ is columns $hd$ to $(h+1)d$.
# The relative-embedding table goes through the encoder's LayerNorm before use; `encoder.relative_embeddings_forward`
# returns it together with the row tables of section 2.

# %%
P = model.params
att = "encoder.layer.0.attention.self."
d, h = config.attention_head_size, 0
head = slice(h * d, (h + 1) * d)

def project(name, inputs):                    # a Linear of this layer, one head's columns
    return (inputs @ P[att + name + ".weight"].T + P[att + name + ".bias"])[:, head]

rel_table, rel_rows, _ = encoder.relative_embeddings_forward(subtree(P, "encoder"), config, N)   # (2k, D), after LayerNorm
Q, K, V = project("query_proj", x[0]), project("key_proj", x[0]), project("value_proj", x[0])    # (N, d) each
Qr, Kr = project("query_proj", rel_table), project("key_proj", rel_table)                        # (2k, d): share_att_key
scale = 1 / np.sqrt(3 * d)                    # 3 = content + the two position terms
print("Q, K, V:", Q.shape, " Qr, Kr:", Qr.shape, " scale = 1/sqrt(3 * %d)" % d)

# %% [markdown]
# The plainest way: build the $(N, N)$ matrix of table rows and gather one position vector per (query, key)
# pair. Easy to read, but it makes an $(N, N, d)$ array, which is what the library avoids.
#
# **A trap.** The paper (eq. 4) writes the p2c term as $K_j \cdot Q^r_{\delta(j,i)}$, the row of $j - i$.
# The reference code lands on the row of $i - j$ instead: the *same row as c2p*. (transformers gathers
# with `-relative_pos` from the key's side and then transposes, which flips the sign back; Microsoft's
# code reuses c2p's index along the other axis; see the discussion in microsoft/DeBERTa issue 162.)
# The checkpoints were trained with the code, so the code is what counts; the two checks below
# show that this is what minideberta computes.

# %%
row = np.clip(build_relative_position(N, N, config.position_buckets, config.max_relative) + k, 0, 2 * k - 1)  # (N, N)

c2c = Q @ K.T * scale                                         # Q_i . K_j
c2p = np.einsum("id,ijd->ij", Q, Kr[row]) * scale             # Q_i . Kr[row(i - j)]
p2c = np.einsum("jd,ijd->ij", K, Qr[row]) * scale             # K_j . Qr[row(i - j)], the same row (see above)
scores = c2c + c2p + p2c                                      # (N, N)

# %% [markdown]
# The library's way, with section 2: score each query (c2p) or each key (p2c) against the $2N-1$
# distances and read the result with `rel_to_abs`. The p2c table has keys as rows, so its view is
# (key, query) and is transposed.

# %%
c2p_by_distance = Q @ Kr[rel_rows[0]].T * scale               # (N, 2N-1): query i x distance
p2c_by_distance = K @ Qr[rel_rows[1]].T * scale               # (N, 2N-1): key j   x distance
print(f"c2p: max |difference| = {np.abs(rel_to_abs(c2p_by_distance) - c2p).max():.1e}")
print(f"p2c: max |difference| = {np.abs(rel_to_abs(p2c_by_distance).T - p2c).max():.1e}")
assert np.abs(rel_to_abs(c2p_by_distance) - c2p).max() < 1e-12
assert np.abs(rel_to_abs(p2c_by_distance).T - p2c).max() < 1e-12

# %% [markdown]
# Does the sum of the three terms give what `attention.forward` computes? The forward does not keep the
# scores (the softmax overwrites them in place to save memory), so compare what comes out of the
# softmax: the probabilities, and the context vectors of this head ($P V$). The model's own `attentions`
# output are the same numbers.

# %%
context, cache = attention.forward(subtree(P, att[:-1]), x, None, config, rel_table, rel_rows)   # mask None: no padding
probs = attention.probabilities(cache)                        # (1, H, N, N)

ours = np.exp(scores - scores.max(axis=-1, keepdims=True))
ours /= ours.sum(axis=-1, keepdims=True)
errors = {"probabilities": np.abs(ours - probs[0, h]).max(),
          "context": np.abs(ours @ V - context[0][:, head]).max(),
          "model(...).attentions": np.abs(out.attentions[0][0, h] - probs[0, h]).max()}
for name, e in errors.items():
    print(f"{name:22s} max |difference| = {e:.1e}")
assert max(errors.values()) < 1e-12

# %% [markdown]
# The three maps side by side. In c2p each row is $Q_i$ against the position vectors, so along a row
# the value changes with the distance only; far from the diagonal, where distances share a bucket
# (or hit the table's edge), it goes flat. p2c is the same along columns, with $K_j$ fixed. c2c has
# no notion of order at all.

# %%
maps = {"c2c": c2c, "c2p": c2p, "p2c": p2c, "sum = scores": scores}
lim = max(np.abs(m).max() for m in maps.values())
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
for ax, (name, m) in zip(axes, maps.items()):
    im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(name)
    ax.set_xlabel("key j")
axes[0].set_ylabel("query i")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# After the softmax, each row is a probability distribution over the keys. Both heads of the layer,
# as the model returns them with `output_attentions=True`:

# %%
fig, axes = plt.subplots(1, config.num_attention_heads, figsize=(9, 4))
for hh, ax in enumerate(axes):
    im = ax.imshow(out.attentions[0][0, hh], cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"head {hh}: softmax over keys")
    ax.set_xlabel("key j")
axes[0].set_ylabel("query i")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()
print("row sums:", out.attentions[0][0, 0].sum(axis=-1))

# %% [markdown]
# **Padding.** In a batch, short texts are padded, and `attention_mask` says which tokens are real.
# DeBERTa's XSoftmax gives a padded key zero probability *and* gives a padded query an all-zero row
# (a plain masked softmax would give it a uniform row; transformers 5 does). Here the second text is
# the first one cut to 8 tokens and padded with 4 `[PAD]` (id 0).

# %%
real = 8
batch_ids = np.concatenate([ids, ids])
attention_mask = np.ones((2, N), dtype=np.int64)
batch_ids[1, real:], attention_mask[1, real:] = 0, 0
padded = model(batch_ids, attention_mask=attention_mask, output_attentions=True).attentions[0]   # (2, H, N, N)

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for b, ax in enumerate(axes):
    im = ax.imshow(padded[b, 0], cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"text {b} ({int(attention_mask[b].sum())} real tokens), head 0")
    ax.set_xlabel("key j")
axes[0].set_ylabel("query i")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()
print("row sums of the padded text:", padded[1, 0].sum(axis=-1))

# The real tokens see exactly what they see without any padding.
alone = model(ids[:, :real], output_attentions=True).attentions[0]
assert np.abs(padded[1][:, :real, :real] - alone[0]).max() < 1e-12
assert (padded[1][:, real:, :] == 0).all() and (padded[1][:, :, real:] == 0).all()

# %% [markdown]
# ## 2. The backward, checked by central differences
#
# `attention.backward(p, dcontext, cache)` returns the gradients of the hidden states, of separate query
# states (None here), of the relative table, and of every parameter. `gradcheck.check_backward` checks them
# without knowing any calculus: it draws a random upstream gradient `dy`, takes $f = \sum y \cdot dy$, and
# compares the backward with $(f(x + h) - f(x - h)) / 2h$ entry by entry ($h = 10^{-5}$, float64).
#
# Why the errors should be below $10^{-7}$: the central difference is off by about $h^2 |f'''| \approx 10^{-10}$,
# plus round-off of about $\varepsilon |f| / h \approx 10^{-16} / 10^{-5} = 10^{-11}$ (relative to the size of the
# gradient, which is of order 1 here). A correct backward therefore agrees to about $10^{-9}$ or better;
# a wrong one is off by a visible fraction of the gradient, $10^{-3}$ to 1. Nothing in between happens
# by accident.
#
# A tiny case: 2 texts (one padded) of 7 tokens, past the 4 exact distances of 8 buckets; weights
# and inputs drawn from a standard normal so that no gradient is tiny. The model is only used
# for the parameter names and shapes.

# %%
tiny = DebertaV2Config(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16, max_position_embeddings=24, relative_attention=True,
                       position_buckets=8, pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm")
n = 7
rng = np.random.default_rng(0)
shapes = subtree(DebertaV2Model(tiny, seed=0, dtype=np.float64).params, "encoder.layer.0.attention.self")
p = {name: rng.normal(size=a.shape) for name, a in shapes.items()}
hidden = rng.normal(size=(2, n, tiny.hidden_size))                     # (B, N, D)
table = rng.normal(size=(2 * tiny.position_span, tiny.hidden_size))    # (2k, D)
mask = encoder.attention_masks(np.array([[1] * n, [1] * (n - 2) + [0] * 2]))[0]   # (B, 1, N, N) bool
rows = relative_index_tables(n, tiny)

def forward(p, hidden, table):
    return attention.forward(p, hidden, mask, tiny, table, rows)

def backward(p, dcontext, cache):
    (dhidden, _, dtable), grads = attention.backward(p, dcontext, cache)
    return (dhidden, dtable), grads                                    # one gradient per float input, in order

errors = gradcheck.check_backward(forward, backward, p, [hidden, table])
for name, e in errors.items():
    print(f"{name:26s} {e:.1e}")
assert max(errors.values()) < gradcheck.EXPECTED_ERROR


# %% [markdown]
# `input:0` is the hidden states, `input:1` the relative-embedding table. For contrast, a backward that
# is wrong by only 0.1% in the table's gradient:

# %%
def slightly_wrong_backward(p, dcontext, cache):
    (dhidden, dtable), grads = backward(p, dcontext, cache)
    return (dhidden, dtable * 1.001), grads

wrong = gradcheck.check_backward(forward, slightly_wrong_backward, p, [hidden, table])
print(f"input:1 with a 0.1% error: {wrong['input:1']:.1e}   (correct: {errors['input:1']:.1e})")
assert wrong["input:1"] > 1e-4 > 100 * gradcheck.EXPECTED_ERROR       # caught, by a wide margin
assert all(wrong[name] == errors[name] for name in errors if name != "input:1")   # and only there

# %% [markdown]
# ## Questions and exercises
#
# 1. Change `pos_att_type` to `"c2p"`, or `share_att_key` to `False`, and make the by-hand cells of
#    section 1 pass their checks again: with one position term the scale is $1/\sqrt{2d}$, and without
#    sharing the positions are projected by `pos_key_proj` / `pos_query_proj`. Section 2 needs no change.
# 2. Write the backward of the attention yourself: `python -m minideberta exercises check attention.backward`
#    (and `attention.c2p_scores` for the forward's content-to-position term).
