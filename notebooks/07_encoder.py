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
# # 7. The encoder layer and the stack
#
# One DeBERTa layer is BERT's *post-LayerNorm* block: attention, then a feed-forward network (FFN),
# each followed by a residual sum and a LayerNorm (the LayerNorm comes *after* the sum):
#
# $$
# a = \mathrm{LN}\big(x + W_O\,\mathrm{Attn}(x)\big), \qquad
# y = \mathrm{LN}\big(a + W_2\,\mathrm{GELU}(W_1 a)\big)
# $$
#
# and the encoder applies $L$ such layers in turn, $h_0 = $ embeddings, $h_{l+1} = \mathrm{layer}_l(h_l)$.
# What is DeBERTa's own: every layer reads the **same** table of relative-position embeddings
# $R$ ($2k$ rows, one per relative-distance bucket), passed once through the encoder's own LayerNorm
# (v3: `norm_rel_ebd="layer_norm"`), and the attention of layer $l$ uses $R$ with layer $l$'s own
# projections.
#
# Files to keep open: `minideberta/encoder.py` (`layer_forward`, `layer_backward`, `forward`, `backward`,
# `relative_embeddings_forward`), `minideberta/attention.py`, `minideberta/ops.py`.
#
# Sections: 1. a model; 2. one layer taken apart and checked against `layer_forward`; 3. what the post-LN
# does to every row; 4. the shared relative table and its gradient, summed over layers; 5. `hidden_states`
# and `attentions`, and the attention maps of every layer and head.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import attention, encoder
from minideberta.apps import course
from minideberta.ops import activation_forward, layer_norm_backward, layer_norm_forward, linear_forward
from minideberta.params import subtree
from minideberta.relative_position import build_relative_position

np.set_printoptions(linewidth=120, precision=4, suppress=True)

# %% [markdown]
# ## 1. A model
#
# The course's model (`minideberta/apps/course/__init__.py`): the checkpoint named by `MINIDEBERTA_MODEL` if set, else
# the embedded pre-trained `weights/minideberta-v3-tiny-generator`, else a tiny seeded random model of
# DeBERTa-v3's shape (relative attention with c2p and p2c, shared attention keys, LayerNorm on the relative
# table, no absolute positions in the input). We load it in float64, so that "equal" can mean "equal to
# 1e-12", and read two sentences of different lengths: the second is padded.

# %%
print(course.describe())
model, tokenizer = course.course_model(dtype=np.float64)
config = model.config
p = subtree(model.params, "deberta")  # the backbone's arrays: embeddings.*, encoder.*

texts = ["The encoder reads every token in the light of all the others.", "A short one."]
batch = tokenizer(texts, padding=True, return_tensors="np")
input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
tokens = tokenizer.convert_ids_to_tokens(input_ids[1].tolist())
B, N = input_ids.shape
L, H = config.num_hidden_layers, config.num_attention_heads
print(f"{L} layers, {H} heads of size {config.attention_head_size}, hidden {config.hidden_size}, "
      f"relative table {p['encoder.rel_embeddings.weight'].shape}; batch {B} x {N} tokens")

# %% [markdown]
# `output_hidden_states=True` returns the embedding output and every layer's output ($L+1$ arrays);
# `output_attentions=True` every layer's attention probabilities, one $(B, H, N, N)$ array per layer.

# %%
out = model(input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True)
print("hidden_states:", len(out.hidden_states), "x", out.hidden_states[0].shape, "(B, N, D)")
print("attentions:   ", len(out.attentions), "x", out.attentions[0].shape, "(B, H, N, N)")
assert len(out.hidden_states) == L + 1 and len(out.attentions) == L
assert all(a.shape == (B, H, N, N) for a in out.attentions)
assert out.hidden_states[0].shape == (B, N, config.hidden_size)

# %% [markdown]
# ## 2. One layer, taken apart
#
# The layer's two halves, written with the library's pieces: `attention.forward` for the disentangled
# self-attention (notebook 06), `linear_forward`, `activation_forward` and `layer_norm_forward` from
# `ops.py`. The masks come from `encoder.attention_masks` (a pair may attend when both tokens are real),
# and the table and its row indices from `encoder.relative_embeddings_forward`.

# %%
enc = subtree(p, "encoder")
masks = encoder.attention_masks(attention_mask)  # .pair (B, 1, N, N) or None, .token (B, N)
pair_mask, token_mask = masks.pair, masks.token
relative = encoder.relative_embeddings_forward(enc, config, N)  # .table (2k, D), .rows: index rows for length N
table, rel_rows = relative.table, relative.rows
eps = config.layer_norm_eps


def layer_by_hand(lp, x):
    """a = LN(x + W_O Attn(x));  y = LN(a + W_2 GELU(W_1 a))."""
    ctx, _ = attention.forward(subtree(lp, "attention.self"), x, pair_mask, config, table, rel_rows)
    attn_out, _ = linear_forward(subtree(lp, "attention.output.dense"), ctx)
    a, _ = layer_norm_forward(subtree(lp, "attention.output.LayerNorm"), x + attn_out, eps)
    f, _ = linear_forward(subtree(lp, "intermediate.dense"), a)  # (B, N, D) -> (B, N, intermediate_size)
    f, _ = activation_forward(config.hidden_act, f)
    f, _ = linear_forward(subtree(lp, "output.dense"), f)  # (B, N, intermediate_size) -> (B, N, D)
    y, _ = layer_norm_forward(subtree(lp, "output.LayerNorm"), a + f, eps)
    return a, y


x0 = out.hidden_states[0]
a0, y0 = layer_by_hand(subtree(enc, "layer.0"), x0)
y_lib, _ = encoder.layer_forward(subtree(enc, "layer.0"), x0, pair_mask, config, table, rel_rows)
gap_layer = np.abs(y0 - y_lib).max()
gap_model = max(np.abs(layer_by_hand(subtree(enc, f"layer.{i}"), out.hidden_states[i])[1]
                       - out.hidden_states[i + 1]).max() for i in range(L))
print(f"by hand vs encoder.layer_forward: {gap_layer:.1e};  every layer vs model.hidden_states: {gap_model:.1e}")
assert gap_layer < 1e-12 and gap_model < 1e-12

# %% [markdown]
# ## 3. What post-LayerNorm does to the residual stream
#
# Because the LayerNorm comes after each sum, every hidden state is a LayerNorm output: undo its gain
# and bias, $(y - \beta)/\gamma$, and each token's vector has mean 0 and variance $v/(v+\epsilon) \approx 1$,
# whatever the weights. The sums before the LayerNorms, $x + \mathrm{attn}$ and $a + \mathrm{FFN}$, are free
# to grow; the picture shows the size of the two summands and of their sum per layer (mean over real tokens).

# %%
real = token_mask  # (B, N) True for real tokens
for i in range(L):
    ln = subtree(enc, f"layer.{i}.output.LayerNorm")
    z = (out.hidden_states[i + 1] - ln["bias"]) / ln["weight"]
    assert np.abs(z[real].mean(axis=-1)).max() < 1e-10
    assert np.abs(z[real].var(axis=-1) - 1).max() < 1e-5  # v / (v + eps) with eps = 1e-7
print("every real row of every layer's output, gain and bias undone: mean 0, variance 1")

rows = []
for i in range(L):
    lp, x = subtree(enc, f"layer.{i}"), out.hidden_states[i]
    a, _ = layer_by_hand(lp, x)
    ctx, _ = attention.forward(subtree(lp, "attention.self"), x, pair_mask, config, table, rel_rows)
    attn_out, _ = linear_forward(subtree(lp, "attention.output.dense"), ctx)
    rows.append(tuple(np.linalg.norm(t[real], axis=-1).mean() for t in (x, attn_out, x + attn_out, a)))
rows = np.array(rows)

fig, ax = plt.subplots(figsize=(7, 3.2))
for k, label in enumerate(["x (layer input)", "W_O Attn(x)", "x + W_O Attn(x)", "a = LN(...)"]):
    ax.plot(range(L), rows[:, k], "o-", label=label)
ax.axhline(np.sqrt(config.hidden_size), color="0.6", ls="--", lw=1, label="sqrt(D): a LayerNorm output")
ax.set_xlabel("layer")
ax.set_ylabel("mean L2 norm per token")
ax.set_xticks(range(L))
ax.legend(fontsize=8)
ax.set_title("the residual sum, before and after the LayerNorm")
plt.show()
# With gain 1 and bias 0 (a fresh model) a LayerNorm output has norm sqrt(D) exactly (up to eps).
ln_is_identity = all(np.allclose(enc[f"layer.{i}.attention.output.LayerNorm.weight"], 1)
                     and np.allclose(enc[f"layer.{i}.attention.output.LayerNorm.bias"], 0) for i in range(L))
if ln_is_identity:
    assert np.allclose(rows[:, 3], np.sqrt(config.hidden_size), rtol=1e-6)

# %% [markdown]
# ## 4. One relative table for all layers
#
# `encoder.rel_embeddings.weight` has $2k$ rows ($k$ = `position_buckets`). The stack passes it
# through `encoder.LayerNorm` **once** and hands the same normalised table to every layer:

# %%
ln_table, _ = layer_norm_forward(subtree(enc, "LayerNorm"), enc["rel_embeddings.weight"], eps)
assert np.abs(ln_table - table).max() < 1e-15
print("table", table.shape, "= LayerNorm(encoder.rel_embeddings.weight)")

fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
axes[0].imshow(enc["rel_embeddings.weight"].T, aspect="auto", cmap="RdBu_r")
axes[0].set_title("encoder.rel_embeddings.weight (transposed)")
axes[1].imshow(table.T, aspect="auto", cmap="RdBu_r")
axes[1].set_title("after encoder.LayerNorm: what every layer reads")
for ax in axes:
    ax.set_xlabel("bucket row")
    ax.set_ylabel("feature")
plt.show()

# %% [markdown]
# What the picture shows on a trained model: the rows in the middle (short distances, each its own bucket)
# carry structure, and the rows at both ends look like noise. Those are the buckets of the largest distances,
# which a model trained on short sequences never meets: a row gets gradient only when some pair of tokens is that
# far apart (the gradient figure below shows it), so the rows beyond the training length keep their random initial values
# (std `initializer_range`), shrunk at most by weight decay. Which rows those are follows from the training
# length; the course's pre-trained pair was trained on sequences of 128 tokens (`weights/*/README.md`).
# On a trained model this is checked: the rows no 128-token sequence reaches have a much smaller norm than
# the rows it does.

# %%
TRAINED_LENGTH = 128  # the pre-training sequence length of the shipped pair (weights/minideberta-v3-tiny/README.md)
k = config.position_span
buckets = build_relative_position(TRAINED_LENGTH, TRAINED_LENGTH, config.position_buckets, config.max_relative)
reached = np.zeros(2 * k, bool)
reached[np.clip(np.unique(buckets) + k, 0, 2 * k - 1)] = True  # the rows the buckets of all its distances read
norms = np.linalg.norm(enc["rel_embeddings.weight"], axis=-1)
print(f"{(~reached).sum()} of {2 * k} rows are beyond every distance of a {TRAINED_LENGTH}-token sequence; mean row norm "
      f"{norms[reached].mean():.3f} reached, {norms[~reached].mean() if (~reached).any() else float('nan'):.3f} not; "
      f"std of the unreached rows {enc['rel_embeddings.weight'][~reached].std() if (~reached).any() else float('nan'):.4f} "
      f"(initializer_range {config.initializer_range})")
if course.is_trained() and (~reached).any():
    assert norms[~reached].mean() < 0.75 * norms[reached].mean()  # the unreached rows stayed small: untrained

# %% [markdown]
# Used by $L$ layers, the table gets the **sum** of their gradients, and only that sum goes back through
# the LayerNorm:
#
# $$
# \frac{\partial \ell}{\partial R} = \sum_{l=0}^{L-1} \frac{\partial \ell}{\partial R}\Big|_{\text{layer } l},
# \qquad
# \frac{\partial \ell}{\partial W_{\text{rel}}} = \mathrm{LN}'^{\top}\frac{\partial \ell}{\partial R}.
# $$
#
# Below, the stack is run layer by layer with `encoder.layer_forward`, each layer's backward
# (`encoder.layer_backward`) returns its own share `drel`, and `encoder.relative_embeddings_backward` sums the
# shares and takes the sum back through the LayerNorm; that must equal what `encoder.backward` (the whole stack
# at once) returns, and the sum taken through `ops.layer_norm_backward` by hand.

# %%
rng = np.random.default_rng(0)
dy = rng.normal(size=(B, N, config.hidden_size)) * attention_mask[..., None]  # a random upstream gradient, 0 on padding

(states, _), stack_cache = encoder.forward(enc, x0, masks, config)
_, stack_grads = encoder.backward(enc, [None] * L + [dy], stack_cache)

h, caches = x0, []
for i in range(L):
    h, c = encoder.layer_forward(subtree(enc, f"layer.{i}"), h, pair_mask, config, table, rel_rows)
    caches.append(c)
d, shares = dy, []
for i in reversed(range(L)):
    (d, _, drel), _ = encoder.layer_backward(subtree(enc, f"layer.{i}"), d, caches[i])
    shares.insert(0, drel)
_, summed = encoder.relative_embeddings_backward(enc, shares, relative)
by_hand, _ = layer_norm_backward(subtree(enc, "LayerNorm"), sum(shares), relative.layer_norm)

gap = np.abs(summed["rel_embeddings.weight"] - stack_grads["rel_embeddings.weight"]).max()
gap_hand = np.abs(by_hand - stack_grads["rel_embeddings.weight"]).max()
print(f"layer by layer, then relative_embeddings_backward, vs encoder.backward: {gap:.1e}; "
      f"the sum through ops.layer_norm_backward by hand: {gap_hand:.1e}")
assert gap < 1e-12 and gap_hand < 1e-12

# Distances between N tokens are -(N-1)..N-1: with N below position_buckets // 2 they are their own buckets,
# rows k-(N-1)..k+(N-1) of the table. No other row can get gradient.
k = config.position_span
window = np.arange(k - (N - 1), k + N)
row_norms = np.linalg.norm(sum(shares), axis=-1)
outside = np.setdiff1d(np.arange(len(row_norms)), window)
assert np.all(row_norms[outside] == 0) and np.all(row_norms[window] > 0)

fig, ax = plt.subplots(figsize=(7, 3))
for i, share in enumerate(shares):
    ax.plot(window - k, np.linalg.norm(share[window], axis=-1), "o-", ms=3, label=f"layer {i}")
ax.plot(window - k, row_norms[window], "k--", label="sum")
ax.set_xlabel("row of the table - k (the relative distance)")
ax.set_ylabel("|d loss / d row|")
ax.set_title(f"every layer's share of the table's gradient (the other {len(outside)} rows get none)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 5. Attention maps of every layer and head
#
# `out.attentions[l][b, h]` is the $(N, N)$ matrix of attention probabilities of layer $l$, head $h$: row
# $i$ is the distribution of query $i$ over the keys. On a padded sequence, real queries give the padded
# keys probability 0 and sum to 1 over the real keys; padded queries attend to nothing (a zero row, the
# XSoftmax of notebook 02).

# %%
n_real = int(real[1].sum())
for probs in out.attentions:
    assert np.allclose(probs[0].sum(-1), 1, atol=1e-12)  # the first sequence has no padding
    assert np.allclose(probs[1, :, :n_real].sum(-1), 1, atol=1e-12)
    assert np.all(probs[1, :, :, n_real:] == 0) and np.all(probs[1, :, n_real:, :] == 0)
print(f"sequence 1: {n_real} real tokens; rows sum to 1 over real keys, padded keys and queries are 0")

shown = tokenizer.convert_ids_to_tokens(input_ids[0].tolist())  # sequence 0, no padding
top = max(float(a[0].max()) for a in out.attentions)
if not course.is_trained():  # std-0.02 random weights: every score near 0, every row near 1/N
    assert top < 1.5 / N
fig, axes = plt.subplots(L, H, figsize=(3.2 * H + 1, 3.2 * L), squeeze=False)
for layer in range(L):
    for head in range(H):
        ax = axes[layer, head]
        im = ax.imshow(out.attentions[layer][0, head], vmin=0, vmax=top, cmap="viridis")
        ax.set_xticks([])
        ax.set_yticks([])
        if layer == 0:
            ax.set_title(f"head {head}", fontsize=9)
        if head == 0:
            ax.set_yticks(range(N), shown, fontsize=6)
            ax.set_ylabel(f"layer {layer}", fontsize=9)
        if layer == L - 1:
            ax.set_xticks(range(N), shown, fontsize=6, rotation=90)
fig.suptitle("attention probabilities of every layer and head; rows: queries, columns: keys")
fig.tight_layout()
fig.colorbar(im, ax=axes, shrink=0.6)
plt.show()

# %% [markdown]
# With random weights (std 0.02, as transformers initialises) every score is near 0 and the maps are nearly
# uniform (asserted above). A trained model's maps are not: its heads specialise, and even a small model
# trained for a few hours has heads whose mass sits on one diagonal next to the main one: on the previous
# token or on the next (a bright line just below or above the diagonal in the grid), others that spread
# over the sentence or collect on `[CLS]` and `[SEP]`. Measured per head below: the mean probability a query
# gives its previous and its next token, against the $1/N$ of a uniform row; on a trained model some head must
# give a neighbour more than five times that share.

# %%
neighbour = {}
for layer in range(L):
    for head in range(H):
        a = out.attentions[layer][0, head]
        neighbour[(layer, head)] = (np.diagonal(a, -1).mean(), np.diagonal(a, 1).mean())  # (previous, next)
(best_layer, best_head), (prev_mass, next_mass) = max(neighbour.items(), key=lambda item: max(item[1]))
side = "previous" if prev_mass >= next_mass else "next"
print(f"uniform share 1/N = {1 / N:.3f}; the most neighbour-bound head: layer {best_layer}, head {best_head}, "
      f"{max(prev_mass, next_mass):.2f} of each query's mass on the {side} token")
if course.is_trained():
    assert max(prev_mass, next_mass) > 5 / N
else:
    assert max(prev_mass, next_mass) < 1.5 / N
#
# ## Questions
#
# 1. A pre-LayerNorm transformer (GPT-2) computes $y = x + \mathrm{Attn}(\mathrm{LN}(x))$ instead. Which of the
#    checks of section 3 would still hold, and which would fail?
# 2. `encoder.backward` adds the table's gradient over layers *before* the LayerNorm's backward. Why is that
#    the same as taking each layer's share through the LayerNorm and adding afterwards? (Hint: is the
#    LayerNorm's backward linear in its upstream gradient?) Check your answer with
#    `encoder.relative_embeddings_backward` on two shares.
# 3. Exercise: the biggest part of the layer's backward is the attention's:
#    `python -m minideberta exercises check attention.backward`. For the layer itself, check a backward of your
#    own with `gradcheck.check_backward`, as notebook 03 does.
