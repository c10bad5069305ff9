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
# # Appendix A1. nGiE: a convolution beside the first layer
#
# DeBERTa-v2's xlarge and xxlarge models add an *n-gram induced input encoding* (nGiE): a 1-D convolution
# over the token axis of the embedding output $E$, so that each position also sees its $K-1$ neighbours,
# added to the output of the first transformer layer:
#
# $$
# \mathrm{conv}(E)_{n,o} = b_o + \sum_{c}\sum_{t=0}^{K-1} W_{o,c,t}\, E_{n+t-p,\,c}, \qquad p = \tfrac{K-1}{2}
# $$
#
# $$
# \mathrm{out} = \mathrm{act}\big(m \odot \mathrm{conv}(E)\big), \qquad
# h_1 = m \odot \mathrm{LN}\big(\mathrm{layer}_0(E) + \mathrm{out}\big)
# $$
#
# with $m$ the padding mask, zeros outside the sequence ($p$ on each side, so the length is kept), $W$ of
# shape $(C_\text{out}, C_\text{in}/\text{groups}, K)$ as in `torch.nn.Conv1d`, and `conv_act` gelu in the
# official checkpoints. (As in every deep-learning library the "convolution" is a cross-correlation: the
# kernel is not flipped.) v3 models have no nGiE.
#
# `minideberta/ngie.py` computes the convolution by **im2col**: copy the $K$ shifted windows of the input side
# by side into a matrix, then the whole convolution is one matrix product.
#
# Sections: 1. im2col drawn; 2. the convolution against `np.convolve` and a direct loop; 3. groups; 4. the
# backward, against the flipped kernel and central differences; 5. the block inside the model.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2Config, DebertaV2Model, encoder, gradcheck, ngie
from minideberta.params import subtree

np.set_printoptions(linewidth=120, precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. im2col, drawn
#
# For an input $x$ of shape $(B, N, C)$ and a kernel of width $K$, im2col builds the $(B \cdot N,\; C \cdot K)$
# matrix whose row $n$ holds, for every channel, the window $x_{n-p}, \dots, x_{n+p}$ (zeros where the window
# leaves the sequence). Then $y = \mathrm{cols}\, W^\top + b$ with $W$ reshaped to $(C_\text{out}, C K)$.
#
# We can make `ngie.conv1d_forward` *show* us its im2col matrix without reading its cache: with one input
# channel and the kernel $W_{o,0,t} = [o = t]$ (output channel $o$ copies tap $t$), output $o$ at position $n$
# is $x_{n+o-p}$: exactly column $o$ of the im2col matrix.

# %%
N, K = 8, 5
x = np.arange(1.0, N + 1)[None, :, None]  # (B=1, N, C=1): the values 1..8, so that each cell names its source
one_hot = {"weight": np.eye(K)[:, None, :], "bias": np.zeros(K)}  # (C_out=K, C_in=1, K)
cols, _ = ngie.conv1d_forward(one_hot, x, groups=1)  # (1, N, K): the im2col matrix
cols = cols[0]

pad = (K - 1) // 2
expected = np.array([[x[0, n + t - pad, 0] if 0 <= n + t - pad < N else 0.0 for t in range(K)] for n in range(N)])
assert np.array_equal(cols, expected)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [N + 2 * pad, K]})
padded = np.concatenate([np.zeros(pad), x[0, :, 0], np.zeros(pad)])
axes[0].imshow(padded[None], cmap="Blues", vmin=0, vmax=N + 2)
for j, v in enumerate(padded):
    axes[0].text(j, 0, f"{v:g}", ha="center", va="center")
axes[0].add_patch(plt.Rectangle((2 - 0.5, -0.5), K, 1, fill=False, ec="red", lw=2))
axes[0].set_title(f"input, padded with {pad} zeros each side; red: the window of position n = 2")
axes[0].set_yticks([])
axes[0].set_xticks(range(len(padded)), [f"{j - pad}" for j in range(len(padded))])
axes[0].set_xlabel("position")
axes[1].imshow(cols, cmap="Blues", vmin=0, vmax=N + 2)
for (n, t), v in np.ndenumerate(cols):
    axes[1].text(t, n, f"{v:g}", ha="center", va="center", color="red" if n == 2 else "k")
axes[1].set_title("im2col: row n = window at n")
axes[1].set_xlabel("tap t")
axes[1].set_ylabel("position n")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The convolution, checked two ways
#
# With one channel in and out, the formula is NumPy's correlation; `np.convolve` flips its kernel, so
# `conv1d` with kernel $w$ is `np.convolve(x, w[::-1], mode="same")`. With several channels we compare with a
# direct loop over positions, output channels, input channels and taps, the formula exactly as written.

# %%
x1 = rng.normal(size=(1, 12, 1))
w1 = {"weight": rng.normal(size=(1, 1, K)), "bias": np.array([0.3])}
y1, _ = ngie.conv1d_forward(w1, x1, groups=1)
reference = np.convolve(x1[0, :, 0], w1["weight"][0, 0, ::-1], mode="same") + 0.3
gap_convolve = np.abs(y1[0, :, 0] - reference).max()


def conv1d_loop(w, b, x):
    """The formula, one multiply-add at a time: x (B, N, C_in), w (C_out, C_in, K)."""
    batch, n, c_in = x.shape
    c_out, _, k = w.shape
    p = (k - 1) // 2
    y = np.zeros((batch, n, c_out))
    for bi in range(batch):
        for i in range(n):
            for o in range(c_out):
                y[bi, i, o] = b[o] + sum(w[o, c, t] * x[bi, i + t - p, c]
                                         for c in range(c_in) for t in range(k) if 0 <= i + t - p < n)
    return y


x3 = rng.normal(size=(2, 9, 4))
w3 = {"weight": rng.normal(size=(6, 4, 3)), "bias": rng.normal(size=6)}
y3, _ = ngie.conv1d_forward(w3, x3, groups=1)
gap_loop = np.abs(y3 - conv1d_loop(w3["weight"], w3["bias"], x3)).max()
print(f"vs np.convolve: {gap_convolve:.1e};  vs the direct loop: {gap_loop:.1e}")
assert gap_convolve < 1e-13 and gap_loop < 1e-13

fig, ax = plt.subplots(figsize=(7, 2.8))
ax.plot(x1[0, :, 0], "o-", label="x")
ax.plot(y1[0, :, 0], "s-", label="ngie.conv1d_forward")
ax.plot(reference, "k+", ms=12, label="np.convolve(x, w[::-1], 'same') + b")
ax.set_xlabel("position")
ax.legend(fontsize=8)
ax.set_title(f"one channel, K = {K}")
plt.show()

# %% [markdown]
# ## 3. Groups
#
# With `groups` $= G$ the channels split into $G$ independent blocks: output block $g$ reads only input block
# $g$, and $W$ has $C_\text{in}/G$ input channels. The library does one matrix product per group; we check it
# against $G$ separate ungrouped convolutions.

# %%
G = 2
wg = {"weight": rng.normal(size=(6, 4 // G, 3)), "bias": rng.normal(size=6)}
yg, _ = ngie.conv1d_forward(wg, x3, groups=G)
blocks = [ngie.conv1d_forward({"weight": wg["weight"][3 * g:3 * g + 3], "bias": wg["bias"][3 * g:3 * g + 3]},
                              x3[..., 2 * g:2 * g + 2], groups=1)[0] for g in range(G)]
gap_groups = np.abs(yg - np.concatenate(blocks, axis=-1)).max()
print(f"groups=2 vs two separate convolutions: {gap_groups:.1e}")
assert gap_groups < 1e-13

# %% [markdown]
# ## 4. The backward
#
# Each input value $x_j$ reaches output $n$ through tap $t = j - n + p$, so
#
# $$
# \frac{\partial \ell}{\partial x_{j,c}} = \sum_{o}\sum_{t} W_{o,c,t}\,\frac{\partial \ell}{\partial y_{j-t+p,\,o}},
# \qquad
# \frac{\partial \ell}{\partial W_{o,c,t}} = \sum_{n} \frac{\partial \ell}{\partial y_{n,o}}\, x_{n+t-p,\,c},
# \qquad
# \frac{\partial \ell}{\partial b_o} = \sum_n \frac{\partial \ell}{\partial y_{n,o}}.
# $$
#
# The gradient of the input is a convolution of $dy$ with the **flipped** kernel: for one channel,
# `np.convolve(dy, w, "same")` (no flip this time, since `np.convolve` flips). The weight's gradient is
# $dy^\top \mathrm{cols}$: im2col again. `ngie.conv1d_backward` scatters the gradient of each im2col column
# back to the shifted input it was copied from.

# %%
dy1 = rng.normal(size=y1.shape)
_, cache1 = ngie.conv1d_forward(w1, x1, groups=1)
dx1, g1 = ngie.conv1d_backward(w1, dy1, cache1)
gap_dx = np.abs(dx1[0, :, 0] - np.convolve(dy1[0, :, 0], w1["weight"][0, 0], mode="same")).max()
print(f"dx vs np.convolve(dy, w, 'same'): {gap_dx:.1e}")
assert gap_dx < 1e-13
assert np.isclose(g1["bias"][0], dy1.sum())

# %% [markdown]
# And against central differences (`minideberta/gradcheck.py`, notebook 03): every parameter and the input, for
# a grouped convolution with kernel 5. A correct backward agrees far below `gradcheck.EXPECTED_ERROR`
# ($10^{-7}$, relative to the size of the gradient): here below $10^{-8}$.

# %%
x5 = rng.normal(size=(2, 7, 4))
w5 = {"weight": rng.normal(size=(4, 2, 5)), "bias": rng.normal(size=4)}
errors_conv = gradcheck.check_backward(ngie.conv1d_forward, ngie.conv1d_backward, w5, (x5, 2))
print({k: f"{v:.1e}" for k, v in errors_conv.items()})
assert max(errors_conv.values()) < 1e-8 < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## 5. The nGiE block inside the model
#
# A tiny v2-xlarge-shaped model: `conv_kernel_size=3`, `conv_act="gelu"`, absolute positions in the input and
# relative attention. Its first hidden state after the embeddings must be the block's output on the embedding
# output and layer 0's output, and padded positions must be exactly 0.

# %%
config = DebertaV2Config(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32, relative_attention=True,
                         position_buckets=-1, max_relative_positions=16, pos_att_type="c2p|p2c",
                         conv_kernel_size=3, conv_act="gelu", norm_rel_ebd="layer_norm",
                         initializer_range=0.2)
model = DebertaV2Model(config, seed=0, dtype=np.float64)
enc = subtree(model.params, "encoder")
ids = rng.integers(5, 100, size=(2, 9))
mask = np.ones((2, 9), dtype=np.int64)
mask[1, 6:] = 0
out = model(ids, attention_mask=mask, output_hidden_states=True)
e = out.hidden_states[0]

masks = encoder.attention_masks(mask)
relative = encoder.relative_embeddings_forward(enc, config, 9)
token_mask = masks.token
layer0, _ = encoder.layer_forward(subtree(enc, "layer.0"), e, masks.pair, config, relative.table, relative.rows)
h1, block_cache = ngie.forward(subtree(enc, "conv"), e, layer0, token_mask, config)
gap_block = np.abs(h1 - out.hidden_states[1]).max()
print(f"ngie.forward(embeddings, layer 0) vs hidden_states[1]: {gap_block:.1e}")
assert gap_block < 1e-12
assert np.all(h1[1, 6:] == 0)

errors_block = gradcheck.check_backward(ngie.forward, ngie.backward, subtree(enc, "conv"),
                                        (e, layer0, token_mask, config))
print({k: f"{v:.1e}" for k, v in errors_block.items()})
assert max(errors_block.values()) < 1e-8

fig, axes = plt.subplots(1, 2, figsize=(11, 3))
names = list(errors_conv) + list(errors_block)
values = list(errors_conv.values()) + list(errors_block.values())
axes[0].barh(range(len(names)), values, color=["C0"] * len(errors_conv) + ["C1"] * len(errors_block))
axes[0].set_yticks(range(len(names)), [("conv1d " if i < len(errors_conv) else "block ") + n
                                       for i, n in enumerate(names)], fontsize=7)
axes[0].set_xscale("log")
axes[0].axvline(gradcheck.EXPECTED_ERROR, color="r", ls="--", label="EXPECTED_ERROR")
axes[0].set_xlabel("relative error vs central differences")
axes[0].legend(fontsize=8)
contribution = np.linalg.norm(h1 - layer0, axis=-1)
axes[1].imshow(contribution, cmap="magma", aspect="auto")
axes[1].set_xlabel("position")
axes[1].set_ylabel("sequence")
axes[1].set_yticks([0, 1])
axes[1].set_title("|h1 - layer0| per token (sequence 1: 3 padded)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Questions
#
# 1. im2col copies every input value $K$ times. For $N = 512$, $D = 1536$ (xlarge) and $K = 3$, how many bytes
#    does the im2col matrix take in float32 per sequence, and how does it compare with the $(H, N, N)$
#    attention probabilities of one layer?
# 2. Why is `dx` a convolution with the flipped kernel? Draw the matrix $M$ with $y = M x$ for one channel,
#    $K = 3$, $N = 5$: what is $M^\top$?
# 3. Exercises: `python -m minideberta exercises check ngie.conv1d_backward` (the whole backward), or only its
#    scatter of the taps' gradients back onto the input: `python -m minideberta exercises check
#    ngie.conv1d_backward.col2im`.
