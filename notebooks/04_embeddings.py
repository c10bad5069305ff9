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
# # 4. Embeddings: from ids to vectors
#
# The first block of the model turns the $(B, N)$ token ids into $(B, N, D)$ vectors
# (`minideberta/embeddings.py`):
#
# $$e = W_\text{word}[\text{ids}] \;\big(+\, W_\text{pos}[\text{positions}]\big) \;\big(+\, W_\text{type}[\text{types}]\big),
# \qquad e \leftarrow e\, W_\text{proj}^\top \ \text{(if } E \ne D\text{)}, \qquad
# h_0 = m \odot \operatorname{LayerNorm}(e),$$
#
# where $m$ is 1 for a real token and 0 for padding. DeBERTa-v3 keeps only the first term: no absolute
# positions in the input (`position_biased_input=False`; position enters through relative attention,
# notebooks 05 and 06, and the Enhanced Mask Decoder), no token types (`type_vocab_size=0`), and
# embedding width $E$ = hidden width $D$. Other configurations switch the other terms on; this notebook
# uses one with all of them, in float64.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2Config, DebertaV2Model, embeddings, encoder, gradcheck
from minideberta.apps import course
from minideberta.params import subtree

config = DebertaV2Config(vocab_size=40, hidden_size=16, embedding_size=8, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=12,
                         position_biased_input=True, type_vocab_size=2, initializer_range=0.5)
p = subtree(DebertaV2Model(config, seed=0, dtype=np.float64).params, "embeddings")
for name, array in p.items():
    print(f"{name:28s} {array.shape}")
v3 = course.official_config("microsoft/deberta-v3-base")
assert not v3.position_biased_input and v3.type_vocab_size == 0 and v3.embedding_size == v3.hidden_size
assert p["word_embeddings.weight"].shape == (40, 8) and p["embed_proj.weight"].shape == (16, 8)   # (out, in)

# %% [markdown]
# ## 1. The sum, the projection, the LayerNorm, the mask
#
# Two texts as a batch: a pair, `[CLS] a a [SEP] b b [SEP]` with token types 0 then 1, and a single text
# of 5 tokens padded with two `[PAD]` (id 0) to the batch length 7. The library's forward against the
# equation written out with NumPy indexing:

# %%
ids = np.array([[1, 17, 5, 2, 9, 23, 2],
                [1, 30, 30, 12, 2, 0, 0]])
types = np.array([[0, 0, 0, 0, 1, 1, 1],
                  [0, 0, 0, 0, 0, 0, 0]])
attention_mask = (ids != 0).astype(np.int64)
assert ids.shape == (2, 7) and attention_mask.sum(1).tolist() == [7, 5]
positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
token_mask = encoder.attention_masks(attention_mask)[1]                        # (B, N) 0/1: real tokens

h0, cache = embeddings.forward(p, ids, types, positions, token_mask, config)   # (B, N) ids -> (B, N, D)

summed = p["word_embeddings.weight"][ids] + p["position_embeddings.weight"][positions] \
    + p["token_type_embeddings.weight"][types]                                 # (B, N, E)
projected = summed @ p["embed_proj.weight"].T                                  # (B, N, E) -> (B, N, D)
centred = projected - projected.mean(-1, keepdims=True)
normed = centred / np.sqrt(centred.var(-1, keepdims=True) + config.layer_norm_eps)
by_hand = (normed * p["LayerNorm.weight"] + p["LayerNorm.bias"]) * token_mask[..., None]
print("ids", ids.shape, "-> embeddings", h0.shape, f"; max |library - by hand| = {np.abs(h0 - by_hand).max():.1e}")
assert h0.shape == (2, 7, 16) and np.abs(h0 - by_hand).max() < 1e-13
assert (h0[1, 5:] == 0).all()                                                  # padding rows are exactly zero

stages = {"word": p["word_embeddings.weight"][ids][1], "+ position": (summed - p["token_type_embeddings.weight"][types])[1],
          "+ type = e": summed[1], "embed_proj(e)": projected[1], "LayerNorm, mask": h0[1]}
fig, axes = plt.subplots(1, len(stages), figsize=(15, 3.2))
for ax, (name, m) in zip(axes, stages.items()):
    lim = np.abs(m).max()
    ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_title(f"{name}\n{m.shape}", fontsize=9)
    ax.set_xlabel("feature")
axes[0].set_ylabel("token (text 2; rows 5-6: [PAD])")
plt.show()

# %% [markdown]
# Tokens 1 and 2 of the second text are the same word (id 30) at different positions: with absolute
# positions in the input their vectors differ. In v3, without them, two equal words have equal
# embedding rows, and only the attention tells them apart.

# %%
assert not np.allclose(h0[1, 1], h0[1, 2])
v3_like = DebertaV2Config(**{**config.to_dict(), "position_biased_input": False, "type_vocab_size": 0})
p3 = subtree(DebertaV2Model(v3_like, seed=0, dtype=np.float64).params, "embeddings")
h3, _ = embeddings.forward(p3, ids, None, None, token_mask, v3_like)
assert (h3[1, 1] == h3[1, 2]).all()

# %% [markdown]
# ## 2. Which rows of the table get a gradient
#
# The lookup $W[\text{ids}]$ copies rows, so its backward adds the gradient of each token's vector into
# the row it was copied from: a scatter-add (`embeddings.embedding_backward`, `np.add.at`). A row used twice
# collects both gradients; a row not used gets none; the `[PAD]` row gets none even where it is used
# (torch's `padding_idx`, and the mask has zeroed those vectors anyway).
#
# $$\frac{\partial L}{\partial W_\text{word}[v]} = \sum_{(b, n):\ \text{ids}_{bn} = v,\ v \ne \text{pad}}
#   \frac{\partial L}{\partial e_{bn}}$$

# %%
rng = np.random.default_rng(0)
dh = rng.normal(size=h0.shape)                                        # an upstream gradient
_, grads = embeddings.backward(p, dh, cache)
row_norm = np.linalg.norm(grads["word_embeddings.weight"], axis=1)

fig, ax = plt.subplots(figsize=(10, 2.8))
ax.bar(np.arange(config.vocab_size), row_norm)
ax.set_xlabel("row of the word table (token id)")
ax.set_ylabel("|gradient of the row|")
ax.set_title("only the rows of the ids in the batch get a gradient; [PAD] (0) none")
plt.show()

used = set(ids.ravel()) - {config.pad_token_id}
assert set(np.flatnonzero(row_norm)) == used
assert (grads["word_embeddings.weight"][0] == 0).all()

# Row 30 appears twice (text 2, tokens 1 and 2): its gradient is the sum of the two tokens' gradients.
_, grads_one = embeddings.backward(p, dh * (np.arange(7) != 2)[None, :, None], cache)   # token 2's gradient off
_, grads_two = embeddings.backward(p, dh * (np.arange(7) == 2)[None, :, None], cache)   # only token 2's
assert np.allclose(grads["word_embeddings.weight"][30],
                   grads_one["word_embeddings.weight"][30] + grads_two["word_embeddings.weight"][30], rtol=0, atol=1e-14)

# %% [markdown]
# The whole backward (the LayerNorm, the projection, the three tables) against central differences:

# %%
def forward(p, ids):
    return embeddings.forward(p, ids, types, positions, token_mask, config)


errors = gradcheck.check_backward(forward, lambda p, dy, cache: embeddings.backward(p, dy, cache), p, [ids])
for name, error in errors.items():
    print(f"{name:36s} {error:.1e}")
assert max(errors.values()) < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## 3. Tied weights: in a masked LM every row gets a gradient
#
# The masked-LM head decodes with the *same* word table, $\text{logits} = h\, W_\text{word}^\top + b$, so
# the table gets a second gradient, from the decoder, and that one reaches every row: the softmax gives
# every token of the vocabulary some probability. The course's model (`course.course_model()`: its word
# table has a row for every piece of its own vocabulary), one sentence with one masked token. The label is
# a word that this vocabulary writes as one real piece (`course.first_one_piece` checks it: a word the
# vocabulary splits, or a piece it lacks, would make the label `[UNK]`, and the loss that of predicting `[UNK]`):

# %%
print(course.describe())
model, tokenizer = course.course_model()
target, target_id = course.first_one_piece(tokenizer, ["mat", "floor", "table", "chair"])
enc = tokenizer(["The cat sat on the [MASK]."], return_tensors="np")
labels = np.full_like(enc["input_ids"], -100)
at = list(enc["input_ids"][0]).index(tokenizer.mask_token_id)
labels[0, at] = target_id
out = model(**enc, labels=labels)
table_grad = model.backward()["deberta.embeddings.word_embeddings.weight"]
rows_with_gradient = np.count_nonzero(np.abs(table_grad).sum(axis=1))
print(f"label {target!r} (id {target_id}, one piece of {len(tokenizer)}); loss {float(out.loss):.3f}; "
      f"rows of the word table with a gradient: {rows_with_gradient} of {len(table_grad)}")
assert target_id != tokenizer.unk_token_id and tokenizer.convert_ids_to_tokens([target_id]) == tokenizer.tokenize(target)
assert table_grad.shape == (model.config.vocab_size, model.config.hidden_size) and len(table_grad) >= len(tokenizer)
assert rows_with_gradient == len(table_grad)

# %% [markdown]
# ## Questions and exercises
#
# 1. Where would the gradient of the `[PAD]` row come from in section 3, even though the lookup gives it
#    none? Check: is `table_grad[0]` zero?
# 2. Write the scatter-add yourself, without `np.add.at`, and compare it with `embeddings.embedding_backward`: why
#    does `dW[ids] += dy` give the wrong answer when an id repeats? The same gather-then-scatter-add is the
#    heart of the relative positions' backward: `python -m minideberta exercises check
#    attention.position_projection_backward`.
