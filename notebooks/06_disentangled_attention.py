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
# # 6. Disentangled attention
#
# BERT adds a position vector to each token before attention. DeBERTa keeps *content* and
# *position* apart: the score of query token $i$ for key token $j$ is the sum of three dot products,
#
# $$
# A_{ij} = \frac{1}{\sqrt{3d}}\Big(\underbrace{Q_i \cdot K_j}_{\text{c2c}}
#       + \underbrace{Q_i \cdot K^r_{\delta(i,j)}}_{\text{c2p}}
#       + \underbrace{K_j \cdot Q^r_{\delta(i,j)}}_{\text{p2c}}\Big),
# \qquad \text{out} = \operatorname{softmax}(A)\, V,
# $$
#
# where $Q = H W_q$, $K = H W_k$, $V = H W_v$ are the projected token vectors, $K^r = R W_{k,r}$ and
# $Q^r = R W_{q,r}$ the rows of the relative-position table $R$ projected for keys and for queries,
# $\delta(i,j)$ the row of the distance $i - j$ (notebook 05), and $d$ the head size. (On the row of the
# p2c term, see the note in section 2.)
#
# Keep `minideberta/attention.py` open beside this notebook: `forward` computes this equation in one
# visible line, `c2p_scores` and `p2c_scores` the two position terms, `backward` undoes it line by line.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2Config, DebertaV2Model, attention, encoder, gradcheck
from minideberta.params import subtree
from minideberta.relative_position import build_relative_position, relative_index_tables

np.set_printoptions(linewidth=120, precision=3, suppress=True)
config = DebertaV2Config(
    vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=64, relative_attention=True, position_buckets=8, pos_att_type="p2c|c2p",
    share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False,
    initializer_range=0.3)   # larger than the usual 0.02, so that the random attention is not flat
N, k = 12, config.position_span
H, d = config.num_attention_heads, config.attention_head_size

# %% [markdown]
# ## 1. Content and position vectors
#
# A small random model with the v3 choices (relative attention with log buckets, `share_att_key=True`:
# positions are projected by the layer's own `query_proj` / `key_proj`, a LayerNorm on the relative
# table, no absolute positions in the input), in float64 so that two ways of computing the same thing
# agree to round-off. `hidden_states[0]` is the output of the embeddings: the input of layer 0's attention.
#
# The position vectors do not depend on the text, only on the weights and the length:
# `position_projection_forward` projects the $(2k, D)$ table once and gathers the row of each of
# the $2N-1$ distances, one $(2N-1, d)$ matrix per head. (Inside the model the attention hands it only
# the run of rows the distances read, `relative_position.used_rows`: the same vectors, less work.)

# %%
model = DebertaV2Model(config, seed=0, dtype=np.float64)
ids = np.random.default_rng(0).integers(1, config.vocab_size, size=(1, N))
out = model(ids, output_hidden_states=True, output_attentions=True)
x = out.hidden_states[0]                                                     # (1, N, D)
params = model.params
att = subtree(params, "encoder.layer.0.attention.self")                           # this layer's arrays
relative = encoder.relative_embeddings_forward(subtree(params, "encoder"), config, N)
table, rows = relative.table, relative.rows   # (2k, D), after LayerNorm

pos_key, _ = attention.position_projection_forward(subtree(att, "key_proj"), table, rows[0], H)      # Kr (H, 2N-1, d)
pos_query, _ = attention.position_projection_forward(subtree(att, "query_proj"), table, rows[1], H)  # Qr (H, 2N-1, d)


def project(name, inputs):                   # a Linear of this layer: x W^T + b, W stored (out, in)
    return inputs @ att[name + ".weight"].T + att[name + ".bias"]


q, kk, v = project("query_proj", x), project("key_proj", x), project("value_proj", x)   # (1, N, H*d) each
by_hand = project("key_proj", table)[rows[0]].reshape(2 * N - 1, H, d).transpose(1, 0, 2)
print("q, k, v:", q.shape, " table:", table.shape, " Kr, Qr:", pos_key.shape, pos_query.shape)
assert pos_key.shape == pos_query.shape == (H, 2 * N - 1, d) and np.abs(pos_key - by_hand).max() < 1e-14

# %% [markdown]
# ## 2. The three terms, side by side
#
# c2c is an ordinary matrix product per head. The position terms, written plainly, need one position
# vector per (query, key) pair: the $(N, N)$ matrix of rows, and an $(N, N, d)$ gather. The library
# never builds that: `c2p_scores` scores each query against the $2N-1$ distances and reads the
# $(N, N)$ scores off the band with `rel_to_abs` (notebook 05); `p2c_scores` does the same from the keys'
# side. Both against the plain gather, for head 0:
#
# **A trap.** The paper (eq. 4) writes the p2c term with $\delta(j, i)$, the row of $j - i$. The
# reference code lands on the row of $i - j$ instead: the *same row as c2p* (transformers gathers with
# `-relative_pos` from the key's side and then transposes, which flips the sign back; Microsoft's code
# reuses c2p's index along the other axis; see microsoft/DeBERTa issue 162). The checkpoints were
# trained with the code, so the code is what counts, and it is what the check below confirms.

# %%
def heads_of(a):                             # (B, N, H*d) -> (B, H, N, d)
    return a.reshape(a.shape[0], a.shape[1], H, d).transpose(0, 2, 1, 3)


c2c = heads_of(q) @ heads_of(kk).swapaxes(-1, -2)       # (B, H, N, N): Q_i . K_j
c2p = attention.c2p_scores(q, pos_key)                  # (B, H, N, N): Q_i . Kr[row(i - j)]
p2c = attention.p2c_scores(kk, pos_query)               # (B, H, N, N): K_j . Qr[row(i - j)]

h = 0
row = np.clip(build_relative_position(N, N, config.position_buckets, config.max_relative) + k, 0, 2 * k - 1)  # (N, N)
Kr = project("key_proj", table)[:, h * d:(h + 1) * d]                                     # (2k, d), head h
Qr = project("query_proj", table)[:, h * d:(h + 1) * d]
Qh, Kh = heads_of(q)[0, h], heads_of(kk)[0, h]                                           # (N, d)
naive_c2p = np.einsum("id,ijd->ij", Qh, Kr[row])
naive_p2c = np.einsum("jd,ijd->ij", Kh, Qr[row])                                         # the same row as c2p
for name, ours, naive in (("c2p", c2p[0, h], naive_c2p), ("p2c", p2c[0, h], naive_p2c)):
    print(f"{name}: max |library - plain gather| = {np.abs(ours - naive).max():.1e}")
    assert np.abs(ours - naive).max() < 1e-12

scale = 1 / np.sqrt(3 * d)
maps = {"c2c": c2c[0, h], "c2p": c2p[0, h], "p2c": p2c[0, h], "A (scaled sum)": (c2c + c2p + p2c)[0, h] * scale}
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
# In c2p each row is $Q_i$ against the position vectors, so along a row the value changes with the
# distance only: far from the diagonal, where distances share a bucket, it is flat. p2c is the same along
# columns, with $K_j$ fixed. c2c has no notion of order at all. Checked: here distances 5 to 10 all read
# row $k + 5 = 13$ of the table (bucket 5) and distance 11 row 14, and entries of c2p whose pairs read the
# same row are equal.

# %%
distance = build_relative_position(N, N)
assert {int(r) for r in row[(distance >= 5) & (distance <= 10)]} == {k + 5} and set(row[distance == 11]) == {k + 6}
same_row = row[:, :, None] == row[:, None, :]              # (N, N, N): keys j, j' read the same row for query i
i, j, j2 = np.nonzero(same_row)
assert np.abs(c2p[0, h][i, j] - c2p[0, h][i, j2]).max() < 1e-12

# %% [markdown]
# ## 3. The scale
#
# If the entries of $Q$, $K$ and the position vectors were independent with unit variance, each dot
# product of length $d$ would have variance $d$, and the sum of the three terms $3d$. Dividing by
# $\sqrt{3d}$ brings the scores back to unit variance before the softmax, as $1/\sqrt{d}$ does in a
# plain transformer; with one position term (`pos_att_type="c2p"`) the factor is $1/\sqrt{2d}$.
# Empirically, with unit-normal vectors of $d = 64$:

# %%
rng = np.random.default_rng(1)
n, dd = 128, 64
Qn, Kn = rng.normal(size=(n, dd)), rng.normal(size=(n, dd))
Krn, Qrn = rng.normal(size=(2 * n - 1, dd)), rng.normal(size=(2 * n - 1, dd))
rel = np.arange(n)[:, None] - np.arange(n)[None, :] + n - 1                 # one row per distance, no buckets
terms = [Qn @ Kn.T, np.einsum("id,ijd->ij", Qn, Krn[rel]), np.einsum("jd,ijd->ij", Kn, Qrn[rel])]
for count in (1, 2, 3):
    summed = sum(terms[:count])
    print(f"{count} term(s): variance of the sum {summed.var():6.1f} (expected {count * dd}); "
          f"after 1/sqrt({count}d): {(summed / np.sqrt(count * dd)).var():.3f}")
    assert abs(summed.var() / (count * dd) - 1) < 0.1

fig, ax = plt.subplots(figsize=(7, 3))
ax.hist((terms[0] + terms[1] + terms[2]).ravel() / np.sqrt(dd), bins=80, alpha=0.6, density=True, label="/ sqrt(d)")
ax.hist((terms[0] + terms[1] + terms[2]).ravel() / np.sqrt(3 * dd), bins=80, alpha=0.6, density=True,
        label="/ sqrt(3d)")
ax.set_title("the three-term scores, scaled two ways")
ax.legend()
plt.show()

# %% [markdown]
# The library's forward uses exactly this scale: the softmax of $(c2c + c2p + p2c)/\sqrt{3d}$ is what
# `attention.forward` returns as probabilities, and its context is those probabilities times $V$. The
# model's own `attentions` output is the same array.

# %%
context, cache = attention.forward(att, x, None, config, table, rows)           # mask None: no padding
probs = attention.probabilities(cache)                                           # (1, H, N, N)
scores = (c2c + c2p + p2c) * scale
ours = np.exp(scores - scores.max(-1, keepdims=True))
ours /= ours.sum(-1, keepdims=True)
errors = {"probabilities": np.abs(ours - probs).max(),
          "context": np.abs(heads_of(context) - ours @ heads_of(v)).max(),
          "model(...).attentions": np.abs(out.attentions[0] - probs).max()}
for name, e in errors.items():
    print(f"{name:22s} max |difference| = {e:.1e}")
assert max(errors.values()) < 1e-12

one_term = DebertaV2Config(**{**config.to_dict(), "pos_att_type": "c2p"})
_, cache1 = attention.forward(att, x, None, one_term, table, rows)
scores1 = (c2c + c2p) / np.sqrt(2 * d)
probs1 = np.exp(scores1 - scores1.max(-1, keepdims=True))
assert np.abs(probs1 / probs1.sum(-1, keepdims=True) - attention.probabilities(cache1)).max() < 1e-12

# %% [markdown]
# ## 4. Padding
#
# In a batch, short texts are padded, and `attention_mask` says which tokens are real. XSoftmax
# (notebook 02) gives a padded key zero probability *and* a padded query an all-zero row. The second
# text here is the first one cut to 8 tokens and padded with 4 `[PAD]` (id 0): its real tokens see
# exactly what they see without padding, because relative positions do not move when tokens are added
# on the right.

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

alone = model(ids[:, :real], output_attentions=True).attentions[0]
assert np.abs(padded[1][:, :real, :real] - alone[0]).max() < 1e-12
assert (padded[1][:, real:, :] == 0).all() and (padded[1][:, :, real:] == 0).all()
assert np.allclose(padded[1][:, :real].sum(-1), 1, rtol=0, atol=1e-12)

# %% [markdown]
# ## 5. The backward, checked by central differences
#
# `attention.backward(p, dcontext, cache)` returns the gradients of the hidden states, of separate query
# states (None here), of the relative table, and of every parameter. `gradcheck.check_backward` checks
# them without knowing any calculus: it draws a random upstream gradient `dy`, takes $f = \sum y \cdot dy$,
# and compares the backward with $(f(x + h) - f(x - h)) / 2h$ entry by entry ($h = 10^{-5}$, float64). A
# correct backward agrees to about $10^{-9}$; a wrong one is off by a visible fraction (notebook 03 has
# the error analysis).
#
# A tiny case: 2 texts (one padded) of 7 tokens, past the 4 exact distances of 8 buckets; weights and
# inputs drawn from a standard normal so that no gradient is tiny.

# %%
tiny = DebertaV2Config(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16, max_position_embeddings=24, relative_attention=True,
                       position_buckets=8, pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm")
n = 7
rng = np.random.default_rng(0)
shapes = subtree(DebertaV2Model(tiny, seed=0, dtype=np.float64).params, "encoder.layer.0.attention.self")
p = {name: rng.normal(size=a.shape) for name, a in shapes.items()}
hidden = rng.normal(size=(2, n, tiny.hidden_size))                     # (B, N, D)
rel_table = rng.normal(size=(2 * tiny.position_span, tiny.hidden_size))    # (2k, D)
mask = encoder.attention_masks(np.array([[1] * n, [1] * (n - 2) + [0] * 2]))[0]   # (B, 1, N, N) bool
rel_rows = relative_index_tables(n, tiny)


def forward(p, hidden, rel_table):
    return attention.forward(p, hidden, mask, tiny, rel_table, rel_rows)


def backward(p, dcontext, cache):
    (dhidden, _, dtable), grads = attention.backward(p, dcontext, cache)
    return (dhidden, dtable), grads                                    # one gradient per float input, in order


errors = gradcheck.check_backward(forward, backward, p, [hidden, rel_table])
for name, e in errors.items():
    print(f"{name:26s} {e:.1e}")
assert max(errors.values()) < gradcheck.EXPECTED_ERROR

# %% [markdown]
# Where does the table's gradient go? Only rows that some distance of the text reads (the union of the
# c2p and p2c rows) get one; with 7 tokens and 8 buckets the rows of the table's two far ends are
# never read.

# %%
context, cache = forward(p, hidden, rel_table)
(_, _, dtable), _ = attention.backward(p, rng.normal(size=context.shape), cache)
read = np.union1d(*rel_rows)
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.bar(np.arange(len(dtable)), np.linalg.norm(dtable, axis=1))
ax.set_xlabel("row of the relative table")
ax.set_ylabel("|gradient|")
ax.set_title(f"rows read by a text of {n} tokens: {read.min()} to {read.max()}")
plt.show()
assert (np.linalg.norm(dtable, axis=1) > 0).tolist() == np.isin(np.arange(len(dtable)), read).tolist()
assert 0 not in read and len(dtable) - 1 not in read

# %% [markdown]
# For contrast, a backward that is wrong by only 0.1% in the table's gradient. The check catches it, at
# about $10^{-3}$, four orders of magnitude above the threshold, and only there: every other gradient is
# untouched.

# %%
def slightly_wrong_backward(p, dcontext, cache):
    (dhidden, dtable), grads = backward(p, dcontext, cache)
    return (dhidden, dtable * 1.001), grads


wrong = gradcheck.check_backward(forward, slightly_wrong_backward, p, [hidden, rel_table])
print(f"input:1 with a 0.1% error: {wrong['input:1']:.1e}   (correct: {errors['input:1']:.1e})")
assert 1e3 < wrong["input:1"] / gradcheck.EXPECTED_ERROR < 1e5                  # caught: about 1e4 times the threshold
assert all(wrong[name] == errors[name] for name in errors if name != "input:1")   # and only there

# %% [markdown]
# ## Questions and exercises
#
# 1. Change `pos_att_type` to `"c2p"`, or `share_att_key` to `False`, and make sections 1-3 pass again:
#    without sharing, the positions are projected by `pos_key_proj` / `pos_query_proj`. Section 5 needs no change.
# 2. Write the two position terms and the backward yourself:
#    `python -m minideberta exercises check attention.c2p_scores`, `... check attention.p2c_scores` and
#    `... check attention.backward` say whether yours agree with the library, and by how much they are off.
