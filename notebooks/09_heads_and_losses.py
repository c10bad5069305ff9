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
# # 9. Heads and losses
#
# The encoder turns $N$ tokens into $N$ vectors $h_i \in \mathbb{R}^D$. A *head* turns those into what a task
# needs, and a *loss* scores it. Every head of minideberta is small, and every one is checked here against the
# formula written out in NumPy:
#
# | head | reads | output | loss |
# | --- | --- | --- | --- |
# | masked LM | every token (after the EMD) | $(B, N, V)$ | cross-entropy on the masked tokens |
# | sequence classification | $h_{[\mathrm{CLS}]}$ through the pooler | $(B, \text{labels})$ | cross-entropy (MSE for one label) |
# | token classification | every token | $(B, N, \text{labels})$ | cross-entropy, $-100$ ignored |
# | question answering | every token | start, end: $(B, N)$ | mean of two cross-entropies |
# | multiple choice | $h_{[\mathrm{CLS}]}$ of each (prompt, choice) pair | $(B, C)$ | cross-entropy over choices |
# | replaced-token detection | every token, plus $h_{[\mathrm{CLS}]}$ | $(B, N)$ | binary cross-entropy on real tokens |
#
# Files: `minideberta/heads.py`, `minideberta/losses.py`, `minideberta/tasks.py`, `minideberta/masked_lm.py`.
#
# The backbone is the course's model (`minideberta/apps/course/__init__.py`); the new heads are initialised from a seed
# as transformers does when fine-tuning starts (`new_head=True`). float64 throughout.

# %%
import math
import warnings

import matplotlib.pyplot as plt
import numpy as np

from minideberta import emd, encoder, gradcheck, heads, losses, tasks
from minideberta.apps import course
from minideberta.params import subtree

np.set_printoptions(linewidth=120, precision=4, suppress=True)
rng = np.random.default_rng(0)
print(course.describe())
mlm, tokenizer = course.course_model(dtype=np.float64)
rtd, _ = course.course_model("replaced-token-detection", dtype=np.float64)
config = mlm.config
eps = config.layer_norm_eps


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def layer_norm(x, g, b):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * g + b


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def new_head(cls, **config_changes):
    """A task model on the course's backbone, its head drawn from seed 0 (as fine-tuning starts)."""
    task_config = type(config).from_dict({**config.to_dict(), **config_changes})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "initialised a new head": that is the point
        backbone = {k: v for k, v in rtd.params.items() if k.startswith("deberta.")}
        return cls.from_state_dict(task_config, backbone, dtype=np.float64, new_head=True, seed=0)


# %% [markdown]
# ## 1. Masked LM: the decoder *is* the word embedding
#
# $$
# \text{logits}_i = \mathrm{LN}\big(\mathrm{GELU}(W h_i + b)\big)\, E^\top + c, \qquad
# \ell = -\frac{1}{|M|}\sum_{i \in M} \log \operatorname{softmax}(\text{logits}_i)_{y_i}
# $$
#
# $E$ is the $(V, D)$ input embedding table: the head has no decoder matrix of its own (*tied weights*), and
# $M$ the positions with a label (all others are $-100$). The course's masked LM decodes the EMD's output
# (notebook 08).

# %%
assert "cls.predictions.decoder.weight" not in mlm.params and "lm_predictions.lm_head.decoder.weight" not in mlm.params
E = mlm.params["deberta.embeddings.word_embeddings.weight"]

batch = tokenizer(["A new store opened beside the new mall.", "The cat sat on the mat."], padding=True,
                  return_tensors="np")
mask = batch["attention_mask"]
ids, labels = batch["input_ids"].copy(), np.full(mask.shape, -100)
for row, word in enumerate(["store", "cat"]):
    at = course.position_of(tokenizer, ids[row], word)  # one real piece: one masked position, a real label
    labels[row, at], ids[row, at] = ids[row, at], tokenizer.mask_token_id
B, N = ids.shape

out = mlm(ids, attention_mask=mask, labels=labels, output_hidden_states=True)
decoded = out.hidden_states[-1]  # what the head reads: the last layer's output, or the EMD's when it decodes
if mlm.resolve_emd(None):
    decoded, _ = emd.forward(subtree(mlm.params, "deberta"), out.hidden_states[-2], encoder.attention_masks(mask).pair,
                             np.broadcast_to(np.arange(N), (B, N)), config)
head = mlm.head_params()  # dense.*, LayerNorm.*, bias: under Microsoft's or transformers' names in the checkpoint
t = layer_norm(gelu(decoded @ head["dense.weight"].T + head["dense.bias"]), head["LayerNorm.weight"],
               head["LayerNorm.bias"])
logits = t @ E.T + head["bias"]
picked = labels != -100
loss = -log_softmax(logits[picked])[np.arange(picked.sum()), labels[picked]].mean()
print(f"logits by hand vs the model: {np.abs(logits - out.logits).max():.1e}; loss {float(out.loss):.6f} "
      f"(by hand {loss:.6f}; log V = {math.log(config.vocab_size):.3f})")
assert np.abs(logits - out.logits).max() < 1e-10 and abs(loss - out.loss) < 1e-12
log_v = math.log(config.vocab_size)
print(f"loss {float(out.loss):.3f} against log V = {log_v:.3f}, the loss of a uniform guess: "
      + ("better than uniform" if out.loss < log_v else "WORSE than uniform: the model is confidently wrong here"))

# %% [markdown]
# Read the loss against $\log V$: a model that knows nothing (uniform probabilities, or the random stand-in's
# near-zero logits) scores exactly $\log V$. A trained model is below it on words it has learnt; a loss *above*
# $\log V$ means the model put most of its probability elsewhere, confidently, and is worse than a uniform
# guess on these labels. (It is also what a label that is not what was meant gives, such as `[UNK]`: that is why
# the masked words here go through `course.position_of`, which insists on one real piece.)

# %% [markdown]
# Tied weights mean $E$ is trained from both ends: as a lookup table (only the rows of the input ids) and as
# the decoder (every row: the softmax pushes every wrong token's logit down). `heads.mlm_head_backward` returns
# the decoder's share, $\partial\ell/\partial E = (\partial\ell/\partial\,\text{logits})^\top\, t$; the rest of the
# model's gradient of $E$ is the lookup's, and it sits only on the rows of the input ids.

# %%
grads = mlm.backward()
_, ce_cache = losses.cross_entropy_forward(out.logits.reshape(-1, config.vocab_size), labels.reshape(-1))
dlogits = losses.cross_entropy_backward(1.0, ce_cache).reshape(out.logits.shape)
_, head_cache = heads.mlm_head_forward(head, decoded, E, config)
(_, d_decoder), _ = heads.mlm_head_backward(head, dlogits, head_cache)
d_lookup = grads["deberta.embeddings.word_embeddings.weight"] - d_decoder
rows_decoder = np.flatnonzero(np.abs(d_decoder).max(-1) > 0)
rows_lookup = np.flatnonzero(np.abs(d_lookup).max(-1) > 1e-12 * np.abs(d_decoder).max())
input_rows = np.setdiff1d(np.unique(ids[mask == 1]), [config.pad_token_id])
print(f"rows of E with gradient: decoder {len(rows_decoder)} of {config.vocab_size}, "
      f"lookup {len(rows_lookup)} (the {len(input_rows)} distinct input ids)")
assert len(rows_decoder) == config.vocab_size
assert set(rows_lookup) <= set(input_rows)

fig, ax = plt.subplots(figsize=(9, 3.2))
every = np.arange(config.vocab_size)
ax.semilogy(every, np.linalg.norm(d_decoder, axis=-1), ".", ms=1, color="C0", label="decoder share (every row)")
ax.semilogy(input_rows, np.linalg.norm(d_lookup[input_rows], axis=-1), "o", color="C1",
            label="lookup share (input ids)")
ax.set(xlabel="row of E (token id)", ylabel="|d loss / d row|", title="the tied table's gradient")
ax.legend(fontsize=8, loc="lower left")
plt.show()

# %% [markdown]
# ## 2. Sequence classification: the pooler and a linear layer
#
# $$
# \text{logits} = W_c\, \mathrm{GELU}\big(W_p\, h_{[\mathrm{CLS}]} + b_p\big) + b_c
# $$
#
# (transformers' ContextPooler; the dropouts are off in evaluation.) Only position 0 is read.

# %%
cls_model = new_head(tasks.DebertaV2ForSequenceClassification, id2label={0: "neg", 1: "neutral", 2: "pos"})
sentences = tokenizer(["I loved it.", "It was fine, I suppose.", "Never again."], padding=True, return_tensors="np")
y = np.array([2, 1, 0])
out = cls_model(sentences["input_ids"], attention_mask=sentences["attention_mask"], labels=y,
                output_hidden_states=True)
pc = cls_model.params
h_cls = out.hidden_states[-1][:, 0]
logits = gelu(h_cls @ pc["pooler.dense.weight"].T + pc["pooler.dense.bias"]) @ pc["classifier.weight"].T \
    + pc["classifier.bias"]
loss = -log_softmax(logits)[np.arange(3), y].mean()
assert out.logits.shape == (3, 3)
assert np.abs(logits - out.logits).max() < 1e-12 and abs(loss - out.loss) < 1e-12
print(f"3 classes: logits and loss by hand agree; loss {float(out.loss):.4f} (log 3 = {math.log(3):.4f})")

# One label means regression, with the mean squared error:
reg = new_head(tasks.DebertaV2ForSequenceClassification, id2label={0: "score"})
scores = np.array([0.9, 0.5, 0.1])
out_r = reg(sentences["input_ids"], attention_mask=sentences["attention_mask"], labels=scores)
assert abs(float(out_r.loss) - np.mean((out_r.logits[:, 0] - scores) ** 2)) < 1e-14

# %% [markdown]
# ## 3. Token classification and question answering: a linear layer on every token
#
# Token classification: $\text{logits}_i = W h_i + b$, cross-entropy over the tokens whose label is not $-100$
# (special tokens, padding, the second piece of a split word). Question answering: two outputs per token,
# $s_i$ and $e_i$, and
#
# $$
# \ell = \tfrac12\big(-\log\operatorname{softmax}(s)_{\text{start}} - \log\operatorname{softmax}(e)_{\text{end}}\big),
# \qquad \text{answer} = \arg\max_{i \le j} s_i + e_j .
# $$

# %%
tok_model = new_head(tasks.DebertaV2ForTokenClassification, id2label={0: "O", 1: "PER", 2: "LOC"})
# Word by word, as a tagging data set comes: the word's label on its first piece, -100 on the others and on
# [CLS] and [SEP].
words, classes = ["Ada", "Lovelace", "lived", "in", "London", "."], [1, 1, 0, 0, 2, 0]
ner_ids, tag_row = [tokenizer.cls_token_id], [-100]
for word, c in zip(words, classes):
    word_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))
    assert tokenizer.unk_token_id not in word_ids, word  # a word may take several pieces, never [UNK]
    ner_ids, tag_row = ner_ids + word_ids, tag_row + [c] + [-100] * (len(word_ids) - 1)
ner_ids, tags = np.array([ner_ids + [tokenizer.sep_token_id]]), np.array([tag_row + [-100]])
pieces = tokenizer.convert_ids_to_tokens(ner_ids[0].tolist())
assert (tags == 1).sum() == 2 and (tags == 2).sum() == 1 and (tags != -100).sum() == len(words)
out = tok_model(ner_ids, labels=tags, output_hidden_states=True)
logits = out.hidden_states[-1] @ tok_model.params["classifier.weight"].T + tok_model.params["classifier.bias"]
counted = tags[0] != -100
loss = -log_softmax(logits[0, counted])[np.arange(counted.sum()), tags[0, counted]].mean()
assert np.abs(logits - out.logits).max() < 1e-12 and abs(loss - out.loss) < 1e-12
print(list(zip(pieces, tags[0].tolist())))

qa_model = new_head(tasks.DebertaV2ForQuestionAnswering)
qa = tokenizer(["Where did Ada Lovelace live?"], ["Ada Lovelace lived in London, where she wrote the first program."],
               return_tensors="np")
qa_pieces = tokenizer.convert_ids_to_tokens(qa["input_ids"][0].tolist())
answer = course.pieces_of(tokenizer, qa["input_ids"][0], "London")
start, end = int(answer[0]), int(answer[-1])
out = qa_model(qa["input_ids"], start_positions=np.array([start]), end_positions=np.array([end]),
               output_hidden_states=True)
se = out.hidden_states[-1] @ qa_model.params["qa_outputs.weight"].T + qa_model.params["qa_outputs.bias"]
loss = -(log_softmax(se[0, :, 0])[start] + log_softmax(se[0, :, 1])[end]) / 2
assert np.abs(se[..., 0] - out.start_logits).max() < 1e-12 and np.abs(se[..., 1] - out.end_logits).max() < 1e-12
assert abs(loss - out.loss) < 1e-12
s, e = out.start_logits[0], out.end_logits[0]
span_scores = np.where(np.triu(np.ones((len(s), len(s)), dtype=bool)), s[:, None] + e[None, :], -np.inf)
i, j = np.unravel_index(np.argmax(span_scores), span_scores.shape)
print(f"QA loss {float(out.loss):.4f}; best span {i}..{j}: {' '.join(qa_pieces[i:j + 1])!r}")

# A position >= N (an answer cut off by truncation) is ignored, as in transformers: with the same question twice,
# the second one's end cut off, the end loss is the mean over the first alone.
twice = np.repeat(qa["input_ids"], 2, axis=0)
cut = qa_model(twice, start_positions=np.array([start, start]), end_positions=np.array([end, len(qa_pieces) + 5]))
expected = (-log_softmax(se[0, :, 0])[start] - log_softmax(se[0, :, 1])[end]) / 2
assert abs(float(cut.loss) - expected) < 1e-12

fig, ax = plt.subplots(figsize=(11, 3))
x = np.arange(len(qa_pieces))
ax.bar(x - 0.2, s, 0.4, label="start logits")
ax.bar(x + 0.2, e, 0.4, label="end logits")
ax.axvspan(start - 0.5, end + 0.5, color="C2", alpha=0.15, label="the answer")
ax.set_xticks(x, qa_pieces, rotation=90, fontsize=7)
ax.set_title("question answering: a start and an end score per token")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Multiple choice: one pass per (prompt, choice) pair
#
# Inputs $(B, C, N)$ are flattened to $(B C, N)$, each pair is encoded and pooled as in section 2, a
# one-output classifier scores it, and the $C$ scores of a question go through a softmax:
# $\ell = -\log \operatorname{softmax}(\text{scores})_{\text{answer}}$.

# %%
mc_model = new_head(tasks.DebertaV2ForMultipleChoice)
choices = ["in London.", "on the Moon.", "under the sea."]
pairs = tokenizer(["Ada Lovelace lived"] * 3, choices, padding=True, return_tensors="np")
grouped = {k: v[None] for k, v in pairs.items() if k in ("input_ids", "attention_mask")}  # (1, C, N)
out = mc_model(**grouped, labels=np.array([0]), output_hidden_states=True)
pm = mc_model.params
pooled = gelu(out.hidden_states[-1][:, 0] @ pm["pooler.dense.weight"].T + pm["pooler.dense.bias"])
scores = (pooled @ pm["classifier.weight"].T + pm["classifier.bias"]).reshape(1, 3)
assert out.logits.shape == (1, 3) and np.abs(scores - out.logits).max() < 1e-12
assert abs(-log_softmax(scores)[0, 0] - out.loss) < 1e-12
print(f"choice scores {out.logits[0]}, loss {float(out.loss):.4f}")

# %% [markdown]
# ## 5. Replaced-token detection: the DeBERTa-v3 discriminator
#
# ELECTRA-style pre-training: a small generator fills the masked positions, the discriminator says for every
# token whether it was replaced. Microsoft's head (`mask_predictions.*`) adds the $[\mathrm{CLS}]$ state to
# every token first:
#
# $$
# z_i = w^\top\, \mathrm{GELU}\big(W\, \mathrm{LN}(h_i + h_0) + b\big) + c, \qquad
# \ell = \frac{1}{|R|}\sum_{i \in R} \Big(\max(z_i, 0) - z_i y_i + \log\big(1 + e^{-|z_i|}\big)\Big)
# $$
#
# over the real tokens $R$, with $y_i = 1$ for a replaced token: binary cross-entropy on logits, in the form
# that never overflows.

# %%
# The original word and the one swapped in must each be ONE piece of this vocabulary: a word of two pieces
# replaced at one position leaves its second piece behind (`course.one_piece` says so when it happens).
# A plain sentence, its verb replaced by a word that does not fit there.
verb, _ = course.first_one_piece(tokenizer, ["opened", "closed", "shut"])
swap_word, swap = course.first_one_piece(tokenizer, ["purple", "banana", "green"])  # a word that does not fit
text = tokenizer([f"She {verb} the door and walked into the room.", "A short one."], padding=True, return_tensors="np")
rtd_ids, rtd_mask = text["input_ids"].copy(), text["attention_mask"]
replaced = np.zeros_like(rtd_ids)
at = course.position_of(tokenizer, rtd_ids[0], verb)
assert swap != rtd_ids[0, at]
rtd_ids[0, at] = swap
replaced[0, at] = 1
out = rtd(rtd_ids, attention_mask=rtd_mask, labels=replaced, output_hidden_states=True)
mp = subtree(rtd.params, "mask_predictions")
h = out.hidden_states[-1]
z = (gelu(layer_norm(h + h[:, :1], mp["LayerNorm.weight"], mp["LayerNorm.bias"]) @ mp["dense.weight"].T
          + mp["dense.bias"]) @ mp["classifier.weight"].T + mp["classifier.bias"])[..., 0]
real = rtd_mask == 1
zr, yr = z[real], replaced[real]
loss = np.mean(np.maximum(zr, 0) - zr * yr + np.log1p(np.exp(-np.abs(zr))))
assert np.abs(z - out.logits).max() < 1e-10 and abs(loss - out.loss) < 1e-12
p_replaced = 1 / (1 + np.exp(-out.logits[0]))
written = rtd(text["input_ids"], attention_mask=rtd_mask).logits[0]                    # the sentence as written
p_original = 1 / (1 + np.exp(-written))
odds_ratio = np.exp(out.logits[0, at] - written[at])  # the logit is the log-odds of "replaced"
print(f"{tokenizer.decode(rtd_ids[0][rtd_mask[0] == 1])!r}: {verb!r} replaced by {swap_word!r}")
print(f"RTD loss {float(out.loss):.4f}; P(replaced) at position {at}: {p_original[at]:.3f} for {verb!r} as written, "
      f"{p_replaced[at]:.3f} for {swap_word!r} (odds x {odds_ratio:.2f}); "
      f"largest elsewhere: {np.delete(p_replaced[rtd_mask[0] == 1], at).max():.3f}")
if course.is_shipped():  # against the same position in the sentence as written (random weights move it by a few %)
    assert odds_ratio > 2, "the shipped discriminator finds the swapped word far more suspect than the original"

fig, ax = plt.subplots(figsize=(8, 2.8))
rtd_pieces = tokenizer.convert_ids_to_tokens(rtd_ids[0].tolist())
ax.bar(range(len(rtd_pieces)), p_replaced, color=["C3" if i == at else "C0" for i in range(len(rtd_pieces))])
ax.set_xticks(range(len(rtd_pieces)), rtd_pieces, rotation=60, fontsize=8)
ax.set(ylabel="P(replaced)", title="the discriminator's verdict per token (red: the replaced one)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The head's backward has one term that is easy to forget: $h_0$ was added to **every** position, so its
# gradient is its own plus the sum over all positions. Central differences on a small random head:

# %%
D = 8
shapes = {"LayerNorm.weight": (D,), "LayerNorm.bias": (D,), "dense.weight": (D, D), "dense.bias": (D,),
          "classifier.weight": (1, D), "classifier.bias": (1,)}
p_small = {k: rng.normal(size=shape) for k, shape in shapes.items()}
errors = gradcheck.check_backward(heads.rtd_head_forward, heads.rtd_head_backward, p_small,
                                  (rng.normal(size=(2, 5, D)), config))
print({k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## 6. Why the losses are written the way they are
#
# `losses.cross_entropy_forward` computes $\log\operatorname{softmax}$ as $z - \max z - \log\sum e^{z - \max z}$,
# and its backward is the famous $(\operatorname{softmax}(z) - \mathrm{onehot}(y)) / |M|$ on the counted rows, 0
# on ignored rows. `bce_with_logits_forward` uses $\max(z,0) - zy + \log(1+e^{-|z|})$ instead of
# $-y\log\sigma(z) - (1-y)\log(1-\sigma(z))$, which is the same number until $\sigma(z)$ rounds to 0 or 1.

# %%
zs = rng.normal(size=(6, 5)) * 3
ys = np.array([0, 4, -100, 2, 2, -100])
loss, cache = losses.cross_entropy_forward(zs, ys)
dz = losses.cross_entropy_backward(1.0, cache)
keep = ys != -100
softmax = np.exp(log_softmax(zs))
expected = np.where(keep[:, None], softmax - np.eye(5)[np.where(keep, ys, 0)], 0) / keep.sum()
assert abs(loss - (-log_softmax(zs[keep])[np.arange(keep.sum()), ys[keep]].mean())) < 1e-14
assert np.abs(dz - expected).max() < 1e-15

z_line = np.linspace(-120, 120, 241)
stable = [float(losses.bce_with_logits_forward(np.array([v]), np.array([1.0]))[0]) for v in z_line]
with np.errstate(divide="ignore", over="ignore"):
    naive = -np.log(1 / (1 + np.exp(-z_line)))
    naive32 = -np.log((1 / (1 + np.exp(-z_line.astype(np.float32)))).astype(np.float32))
assert np.allclose(stable[120:], naive[120:], rtol=1e-12)  # z >= 0: the same number
assert np.isclose(stable[0], 120.0, rtol=1e-12)            # -log sigma(-120) = 120 + log(1 + e^-120)
assert np.isfinite(stable).all() and np.isinf(naive32[0])   # float32: e^120 = inf, sigma(-120) = 0, -log 0 = inf

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(z_line, stable, lw=3, label="bce_with_logits_forward (stable form)")
ax.plot(z_line, naive32, "--", label="-log(sigmoid(z)) in float32")
ax.set(xlabel="logit z (label y = 1)", ylabel="loss", yscale="symlog",
       title="the naive form overflows where sigmoid rounds to 0 (gap at the left: inf)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Questions
#
# 1. With tied weights, how many parameters does the course's masked LM save compared with a separate
#    $(V, D)$ decoder? Compare `mlm.num_parameters()` with the size of $E$.
# 2. Why does the masked-LM loss of a random model sit near $\log V$?
# 3. Exercises: `python -m minideberta exercises check heads.rtd_head_backward` and
#    `python -m minideberta exercises check losses.cross_entropy_backward`.
