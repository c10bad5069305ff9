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
# # 8. The Enhanced Mask Decoder
#
# Relative attention only ever sees *distances*. The paper's example (section 3.2): in "a new **store** opened
# beside the new **mall**", both masked nouns sit next to "new", so their relative contexts are alike; what
# tells them apart is that one is the sentence's subject, near its start. DeBERTa therefore brings **absolute**
# positions in at one place only: just before the masked tokens are decoded. With $H = h_{L-1}$ the output of the
# second-to-last layer and $W_\text{pos}$ the absolute position table (EMD's own),
#
# $$
# q_0 = H + W_\text{pos}[\text{positions}], \qquad
# q_{k+1} = \mathrm{layer}_{L-1}\big(\text{keys, values} = H,\ \text{queries} = q_k\big), \quad k = 0, 1, \qquad
# \text{logits} = \mathrm{MLM}(q_2)
# $$
#
# The last layer is applied **twice more**, with its own weights, and its queries (and residual) come from
# $q_k$ while its keys and values come from $H$. So the last layer's weights are used three times: once in
# the encoder, twice in the decoder.
#
# Files: `minideberta/emd.py` (`forward`, `backward`), `minideberta/masked_lm.py` (`emd=None|True|False`),
# `minideberta/encoder.py` (`layer_forward(..., query_states=...)`).
#
# Sections: 1. a masked LM with the decoder; 2. the decoder rebuilt from `layer_forward`; 3. where absolute
# positions enter (and where they do not); 4. the last layer's gradient from its three uses; 5. decoding only the
# masked rows, as pre-training does.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import emd, encoder, gradcheck, losses
from minideberta.apps import course
from minideberta.masked_lm import POSITIONS
from minideberta.params import subtree

np.set_printoptions(linewidth=120, precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A masked LM that decodes through the EMD
#
# The course's masked LM (`minideberta/apps/course/__init__.py`: `MINIDEBERTA_MODEL`, else the embedded
# `weights/minideberta-v3-tiny-generator`, else a tiny seeded random v3-shaped model) holds what Microsoft's
# checkpoints hold: Microsoft's MLM head (`legacy=False`) and the absolute position table
# `deberta.embeddings.position_embeddings.weight`, which transformers drops for v3 models. With both, the model
# decodes through the EMD by default (`emd=None`). float64, for the gradient checks.
#
# The batch: the paper's sentence with "store" masked, and a second, shorter one (padded), a plain sentence that
# few words fit, with "water" masked.

# %%
print(course.describe())
model, tokenizer = course.course_model(dtype=np.float64)
config = model.config
L = config.num_hidden_layers

originals = ["A new store opened beside the new mall.", "He drank a glass of water."]
batch = tokenizer(originals, padding=True, return_tensors="np")
mask = batch["attention_mask"]
ids, labels = batch["input_ids"].copy(), np.full(mask.shape, -100)
for row, word in enumerate(["store", "water"]):
    at = course.position_of(tokenizer, ids[row], word)  # one real piece: one masked position, a real label
    labels[row, at], ids[row, at] = ids[row, at], tokenizer.mask_token_id  # predict the original piece there
B, N = ids.shape
print(tokenizer.convert_ids_to_tokens(ids[0].tolist()))
print("decodes through the EMD by default:", model.resolve_emd(None))
assert model.resolve_emd(None), "this notebook needs a masked LM holding the EMD's position table (Microsoft's layout)"

# %% [markdown]
# ## 2. The decoder, rebuilt from the layer
#
# `emd.forward` takes the second-to-last hidden state H and returns $q_2$. Below, the same computation written with
# `encoder.layer_forward` and its `query_states` argument, and both against the model's logits.

# %%
out = model(ids, attention_mask=mask, labels=labels, output_hidden_states=True)
states = out.hidden_states
position_ids = np.broadcast_to(np.arange(N), (B, N))
backbone = subtree(model.params, "deberta")
enc = subtree(backbone, "encoder")
last = subtree(enc, f"layer.{L - 1}")

masks = encoder.attention_masks(mask)
pair_mask = masks.pair
relative = encoder.relative_embeddings_forward(enc, config, N)
table, rel_rows = relative.table, relative.rows
H = states[-2]  # (B, N, D): the keys and values of both passes
q = H + model.params[POSITIONS][position_ids]  # q0: the only place absolute positions enter
passes = [q]
for _ in range(2):
    q, _ = encoder.layer_forward(last, H, pair_mask, config, table, rel_rows, query_states=q)
    passes.append(q)

decoded, emd_cache = emd.forward(backbone, states[-2], pair_mask, position_ids, config)
gap = np.abs(decoded - passes[-1]).max()
print(f"two passes of layer_forward vs emd.forward: {gap:.1e}")
assert gap < 1e-12

# The encoder's own pass through the last layer (queries = keys = H) is hidden_states[-1]:
own, _ = encoder.layer_forward(last, H, pair_mask, config, table, rel_rows)
assert np.abs(own - states[-1]).max() < 1e-12

plain = model(ids, attention_mask=mask, emd=False)
print("logits with and without the decoder differ by up to", f"{np.abs(plain.logits - out.logits).max():.2f}")
assert np.abs(plain.logits - out.logits).max() > 1e-3

# %% [markdown]
# What the two decoders predict at each masked position (with random weights: noise). The EMD is how the model was
# trained to decode, so `emd=False` reads the last layer's output with a head that never saw it. The first
# sentence leaves many words possible ("store", "shop", "school"...); the second few ("water", "milk", "wine"...), and
# the shipped generator gives the original "water" through the EMD far more than the uniform $1/V$ of a guess
# (asserted and printed below). The two decoders give different distributions: the difference the absolute positions make.

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 5))
for row in range(2):
    at = int(np.flatnonzero(labels[row] != -100)[0])
    for ax, (title, logits) in zip(axes[row], [("emd=True (the default)", out.logits), ("emd=False", plain.logits)]):
        z = logits[row, at] - logits[row, at].max()
        probs = np.exp(z) / np.exp(z).sum()
        best = np.argsort(probs)[::-1][:8]
        ax.barh(range(8)[::-1], probs[best])
        ax.set_yticks(range(8)[::-1], tokenizer.convert_ids_to_tokens(best.tolist()), fontsize=8)
        ax.set_title(f"{title}: sentence {row}, P(token at position {at})", fontsize=9)
fig.tight_layout()
plt.show()
if course.is_shipped():
    at = int(np.flatnonzero(labels[1] != -100)[0])
    p_water = losses.softmax(out.logits[1, at])[labels[1, at]]
    print(f"P('water') through the EMD: {p_water:.3f}, {p_water * len(tokenizer):.0f} times the uniform 1/V; rank "
          f"{int((out.logits[1, at, :len(tokenizer)] > out.logits[1, at, labels[1, at]]).sum()) + 1} of {len(tokenizer)}")
    assert p_water > 10 / len(tokenizer), "the shipped generator ranks the original word far above chance"

# %% [markdown]
# How far each of the decoder's queries is from the encoder's own last-layer output $h_L$ (mean over real tokens).
# What to expect: $q_0 = H + W_\text{pos}$ is $H = h_{L-1}$, one layer *before* $h_L$, so it is far from it.
# $q_1$ is the last layer applied to $q_0$ with keys and values $H$: exactly the encoder's own pass, which gave
# $h_L$, except that the queries carry the position vectors. Those rows are small next to $H$ (whose rows, after
# a LayerNorm, have norm near $\sqrt{D}$ times the gain), so $q_1$ lands close to $h_L$: the first pass mostly
# repeats the encoder's work, nudged by the positions. $q_2$ applies the layer once more, to an input that has
# already been through it, and moves away again. Both distances are compared with the size of the position
# vectors, which is what makes $q_1$ differ from $h_L$ at all.

# %%
real = mask.astype(bool)
dist = [np.linalg.norm(qk - states[-1], axis=-1)[real].mean() for qk in passes]
position_size = np.linalg.norm(model.params[POSITIONS][position_ids], axis=-1)[real].mean()
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(["q0 = H + W_pos", "q1", "q2 (decoded)"], dist, color=["C1", "C0", "C0"])
ax.axhline(position_size, color="0.4", ls="--", lw=1, label="mean |W_pos[i]|")
ax.set_ylabel("mean |q_k - h_L| per token")
ax.set_title("the decoder's queries, against the encoder's last layer")
ax.legend(fontsize=8)
plt.show()
print(f"mean |q_k - h_L|: {', '.join(f'{d:.3f}' for d in dist)}; mean |H| {np.linalg.norm(H, axis=-1)[real].mean():.2f}, "
      f"mean |W_pos[i]| {position_size:.3f}")
assert dist[1] < dist[0] and dist[1] < 2 * position_size   # q1: the encoder's pass, nudged by the positions

# %% [markdown]
# ## 3. Where absolute positions enter
#
# With `position_biased_input` false the embeddings add no position vector, so the table $W_\text{pos}$ is read only by
# the decoder: with `emd=False` the logits do not change when $W_\text{pos}$ is overwritten. With the decoder, $W_\text{pos}$ gets
# gradient, but in fewer rows than one might
# guess: not every position of the batch, only the **positions of the predicted tokens**. The queries never mix
# across positions (keys and values are $H$, which holds no $W_\text{pos}$), so $q_2$ at position $i$ depends on $W_\text{pos}[i]$ and
# on no other row; a loss that reads only the masked positions reaches only their rows.

# %%
saved = model.params[POSITIONS].copy()
model.params[POSITIONS][...] = rng.normal(size=saved.shape)  # overwrite W_pos ...
unchanged = np.array_equal(model(ids, attention_mask=mask, emd=False).logits, plain.logits)
model.params[POSITIONS][...] = saved  # ... and put it back
assert unchanged
print("emd=False: logits identical with W_pos overwritten")

model(ids, attention_mask=mask, labels=labels)
grads = model.backward()
rows_emd = np.linalg.norm(grads[POSITIONS], axis=-1)
predicted = np.flatnonzero((labels != -100).any(axis=0))  # positions with a label in some sequence
assert np.array_equal(np.flatnonzero(rows_emd), predicted)
print(f"rows of W_pos with gradient: {np.flatnonzero(rows_emd).tolist()}")

# The model's gradient of W_pos, against central differences on a few entries:
def loss_of_model():
    return model(ids, attention_mask=mask, labels=labels).loss


sample = predicted * config.hidden_size + rng.choice(config.hidden_size, len(predicted))  # one entry per row
numeric = gradcheck.numerical_gradient(loss_of_model, model.params[POSITIONS], indices=sample)
error_p = gradcheck.rel_error(grads[POSITIONS].reshape(-1)[sample], numeric.reshape(-1)[sample],
                              scale=np.abs(grads[POSITIONS]).max())
print(f"d loss / d W_pos vs central differences: {error_p:.1e}")
assert error_p < gradcheck.EXPECTED_ERROR

fig, ax = plt.subplots(figsize=(7, 2.8))
shown = np.arange(2 * N)  # the rows past these get none either (asserted above)
ax.bar(shown, rows_emd[shown])
ax.axvspan(-0.5, N - 0.5, color="0.9", zorder=0, label=f"the batch's positions 0..{N - 1}")
ax.set(xlabel="row of the absolute position table W_pos", ylabel="|d loss / d row|",
       title=f"only the rows of the predicted positions {predicted.tolist()} get gradient")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4. The last layer's gradient, from its three uses
#
# Call the last layer's weights $\theta$. It runs three times: in the encoder ($h_L = f_\theta(H, H)$) and in the
# two decoder passes ($q_1 = f_\theta(H, q_0)$, $q_2 = f_\theta(H, q_1)$). The gradient of a loss reading both
# $h_L$ and $q_2$ is the sum of the three uses' gradients, each taken with the other two held fixed:
#
# $$
# \frac{d\ell}{d\theta} = \frac{\partial \ell}{\partial \theta}\Big|_{\text{encoder}}
# + \frac{\partial \ell}{\partial \theta}\Big|_{\text{pass 1}} + \frac{\partial \ell}{\partial \theta}\Big|_{\text{pass 2}}
# $$
#
# (The checks below use weights whose gradient is well above the round-off of central differences, about
# $\epsilon |\ell| / h \approx 10^{-10}$: with fresh std-0.02 weights attention is nearly uniform and the query and
# key projections' gradients are tiny; notebook 03 is about exactly this.)
#
# To see all three we take $\ell = \langle g_q, q_2 \rangle + \langle g_h, h_L \rangle$ with random $g_q, g_h$ (a
# masked LM's loss reads $q_2$ only; we come back to that below). `emd.backward` returns the two passes' sum
# and the gradient of $H$; `encoder.backward` takes the gradients of $H$ and $h_L$ and returns the encoder's
# share. The three parts come from `encoder.layer_backward` on each use, and the total goes against central
# differences.

# %%
emb = states[0]
# Zero on padded positions, as any real loss is: a padded row is a LayerNorm of (almost) nothing, whose
# gradient is scaled by 1/sqrt(eps) and would swamp the picture.
g_q = rng.normal(size=(B, N, config.hidden_size)) * mask[..., None]
g_h = rng.normal(size=(B, N, config.hidden_size)) * mask[..., None]


def loss_three_uses():
    (st, _), _ = encoder.forward(enc, emb, masks, config)
    q2, _ = emd.forward(backbone, st[-2], pair_mask, position_ids, config)
    return np.sum(g_q * q2) + np.sum(g_h * st[-1])


(st, _), enc_cache = encoder.forward(enc, emb, masks, config)
q2, emd_cache = emd.forward(backbone, st[-2], pair_mask, position_ids, config)
dH, emd_grads = emd.backward(backbone, g_q, emd_cache)
_, enc_grads = encoder.backward(enc, [None] * (L - 1) + [dH, g_h], enc_cache)
prefix = f"layer.{L - 1}."
names = sorted(k[len(prefix):] for k in enc if k.startswith(prefix))
total = {n: enc_grads[prefix + n] + emd_grads[f"encoder.{prefix}{n}"] for n in names}

# The three parts, one layer_backward per use (pass 2 first: backward runs in reverse).
q0 = H + model.params[POSITIONS][position_ids]
q1, c1 = encoder.layer_forward(last, H, pair_mask, config, table, rel_rows, query_states=q0)
_, c2 = encoder.layer_forward(last, H, pair_mask, config, table, rel_rows, query_states=q1)
(dH2, dq1, _), part2 = encoder.layer_backward(last, g_q, c2)
(dH1, dq0, _), part1 = encoder.layer_backward(last, dq1, c1)
_, c_enc = encoder.layer_forward(last, H, pair_mask, config, table, rel_rows)
_, part_enc = encoder.layer_backward(last, g_h, c_enc)
gap_parts = max(gradcheck.rel_error(part_enc[n] + part1[n] + part2[n], total[n], scale=np.abs(total[n]).max())
                for n in names)
gap_emd = max(gradcheck.rel_error(part1[n] + part2[n], emd_grads[f"encoder.{prefix}{n}"],
                                  scale=np.abs(total[n]).max()) for n in names)
print(f"relative gaps: encoder + pass 1 + pass 2 vs encoder.backward + emd.backward: {gap_parts:.1e}; "
      f"pass 1 + pass 2 vs emd.backward: {gap_emd:.1e}")
assert gap_parts < 1e-12 and gap_emd < 1e-12

errors = {}
for n in ("attention.self.value_proj.weight", "attention.output.dense.weight", "intermediate.dense.weight",
          "output.LayerNorm.weight"):
    x = enc[prefix + n]
    idx = rng.choice(x.size, 3, replace=False)
    numeric = gradcheck.numerical_gradient(loss_three_uses, x, indices=idx)
    errors[n] = gradcheck.rel_error(total[n].reshape(-1)[idx], numeric.reshape(-1)[idx],
                                    scale=np.abs(total[n]).max())
print({k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < gradcheck.EXPECTED_ERROR

# Each part alone is far from the total: every use matters.
for part in (part_enc, part1, part2):
    assert max(gradcheck.rel_error(part[n], total[n], scale=np.abs(total[n]).max()) for n in names) > 1e-2

fig, ax = plt.subplots(figsize=(10, 3.4))
shown = [n for n in names if n.endswith("weight")]
width = 0.2
for k, (label, part) in enumerate([("encoder", part_enc), ("pass 1", part1), ("pass 2", part2), ("total", total)]):
    ax.bar(np.arange(len(shown)) + (k - 1.5) * width, [np.linalg.norm(part[n]) for n in shown], width, label=label)
ax.set_xticks(range(len(shown)), [n.replace(".weight", "") for n in shown], rotation=20, fontsize=8, ha="right")
ax.set_ylabel("Frobenius norm of the gradient")
ax.set_title(f"gradient of layer {L - 1}'s weights, by use")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# In the masked LM itself the loss reads only $q_2$: the encoder's own pass ($h_L$, returned as
# `hidden_states[-1]`) is computed but feeds nothing, so its share is zero and the last layer learns from the
# decoder's two passes alone. That is what `DebertaV2ForMaskedLM.backward` returned in section 3 (checked
# here against central differences on the model's loss):

# %%
_, enc_only = encoder.backward(enc, [None] * (L - 1) + [dH, None], enc_cache)  # nothing reads h_L
assert all(np.all(enc_only[prefix + n] == 0) for n in names)

name = f"deberta.encoder.layer.{L - 1}.output.dense.weight"
idx = rng.choice(grads[name].size, 2, replace=False)
numeric = gradcheck.numerical_gradient(loss_of_model, model.params[name], indices=idx)
error_q = gradcheck.rel_error(grads[name].reshape(-1)[idx], numeric.reshape(-1)[idx], scale=np.abs(grads[name]).max())
print(f"model: d loss / d {name} vs central differences: {error_q:.1e}")
assert error_q < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## 5. Decoding only the masked rows (what pre-training does)
#
# Look at one decoder pass row by row. Query $i$ attends to the keys and values of $H$, which are the same for
# every query; the attention output, the FFN and both LayerNorms act on row $i$ alone. So row $i$ of $q_2$
# depends on row $i$ of $q_0$ and on $H$, never on another query row. A masked-LM loss reads $q_2$ at the masked
# positions only (about 15% of the tokens in pre-training), so the other rows of both passes are computed for
# nothing. `emd.forward_rows` runs the two passes on the masked rows alone: $K$ queries a sequence against all $N$
# keys, with the position term c2p read at each query's own position (`relative_position.rel_to_abs_rows_index`).
# The keys' side (the key and value projections, and p2c, scored from the keys) costs what it did. Pre-training
# calls it (`deberta.forward(..., decode=selected)`), and it makes a whole pre-training step of the shipped pair
# about 12% faster (README, "Pre-training throughput").
#
# It is a speed device, so the definition stays in `emd.forward`, and the check is that both give the same
# numbers. The gradient is the same too, given the same upstream gradient on the chosen rows and zero elsewhere.

# %%
decode = (labels != -100) | ((mask == 1) & (rng.random((B, N)) < 0.3))  # (B, N): the masked positions, and some more
(rows_out, chosen), rows_cache = emd.forward_rows(backbone, H, pair_mask, position_ids, config, decode)
full_out, full_cache = emd.forward(backbone, H, pair_mask, position_ids, config)
print(f"forward: {full_out.shape[0]} x {full_out.shape[1]} rows decoded; forward_rows: "
      f"{rows_out.shape[0]} x {rows_out.shape[1]}, of which {int(chosen.sum())} are read")
gap_rows = np.abs(rows_out[chosen] - full_out[decode]).max()

g_rows = rng.normal(size=(int(decode.sum()), config.hidden_size))  # an upstream gradient on the read rows
g_full, g_chosen = np.zeros_like(full_out), np.zeros_like(rows_out)
g_full[decode], g_chosen[chosen] = g_rows, g_rows
dH_full, grads_full = emd.backward(backbone, g_full, full_cache)
dH_rows, grads_rows = emd.backward(backbone, g_chosen, rows_cache)
gap_grads = max(np.abs(grads_rows[k] - grads_full[k]).max() / np.abs(grads_full[k]).max() for k in grads_full)
gap_dH = np.abs(dH_rows - dH_full).max() / np.abs(dH_full).max()
print(f"largest gap: states {gap_rows:.1e}; gradients (relative) {gap_grads:.1e}, of H {gap_dH:.1e}")
assert gap_rows < 1e-12 and gap_grads < 1e-10 and gap_dH < 1e-10

# %% [markdown]
# ## Questions
#
# 1. The decoder's keys and values are $H = h_{L-1}$, not $h_L$. What would change (in the gradients of
#    section 4) if they were $h_L$?
# 2. `emd.PASSES` is 2. Sketch the gradient of the position table with one pass and with three: which rows
#    get gradient, and through how many layer backwards does it travel?
# 3. Exercises: `python -m minideberta exercises check emd.forward` and
#    `python -m minideberta exercises check emd.backward`.
