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
# # 10. Pre-training with replaced-token detection
#
# DeBERTaV3 is not pre-trained as BERT was, by guessing masked words, but as ELECTRA was: a small
# **generator** $G$ fills the masked positions with plausible words, and the model we keep, the
# **discriminator** $D$, learns to tell for *every* token whether it is the original or a replacement.
# Every token gives the discriminator a training signal, not only the 15% that were masked.
#
# One step, in the notation of `minideberta/apps/pretrain/rtd.py` (read its docstring beside this chapter):
#
# 1. **masking**: choose a set $S$ of 15% of the real tokens; of those, 80% become `[MASK]`, 10% a random
#    token, 10% stay as they are. The result is $\tilde x$.
# 2. **generator**: $L_{MLM} = -\frac{1}{|S|}\sum_{i\in S}\log p_G(x_i \mid \tilde x)$.
# 3. **sampling**: $\hat x_i \sim p_G(\cdot \mid \tilde x)$ for $i \in S$; elsewhere $\hat x_i = x_i$. No
#    gradient flows through a sample.
# 4. **discriminator**: label $y_i = [\hat x_i \ne x_i]$ (a sample that happens to equal the original counts as
#    *original*), $L_{RTD} = -\frac{1}{|\text{real}|}\sum_i y_i \log\sigma(z_i) + (1-y_i)\log(1-\sigma(z_i))$.
# 5. **one update** of both models on $L = L_{MLM} + \lambda L_{RTD}$ with $\lambda = 50$.
#
# Then section 4, the part that is DeBERTaV3's own: which token-embedding table receives which gradient.
#
# Files: `minideberta/apps/pretrain/rtd.py` (the step), `minideberta/apps/pretrain/loop.py` (the loop),
# `minideberta/apps/pretrain/evaluate.py` (the held-out numbers). The models are the shipped pair
# (`weights/minideberta-v3-tiny-generator` and `weights/minideberta-v3-tiny`) unless `MINIDEBERTA_MODEL` says
# otherwise.

# %%
import json
import math

import matplotlib.pyplot as plt
import numpy as np

from minideberta.apps import course
from minideberta.apps.pretrain import cli as pretrain_cli
from minideberta.apps.pretrain import evaluate as pretrain_eval
from minideberta.apps.pretrain import rtd
from minideberta.apps.pretrain.rtd import DELTA, WORD, Pretrainer, discriminator_labels, mask_tokens
from minideberta.model import no_grad

np.set_printoptions(linewidth=120, precision=3, suppress=True)
print(course.describe())
generator, tokenizer = course.course_model("masked-lm")
discriminator, _ = course.course_model("replaced-token-detection")
special = rtd.special_ids(tokenizer)
pretrainer = Pretrainer(generator, discriminator, "gdes", special_ids=special, mask_id=tokenizer.mask_token_id)
sentences = ["The children played in the garden until it was dark.",
             "She made a cup of tea and sat down by the window.",
             "The train to the city leaves every morning at seven.",
             "He forgot his umbrella and came home wet from the rain."]
batch = tokenizer(sentences, padding=True, return_tensors="np")
ids, mask = batch["input_ids"], batch["attention_mask"]
print(ids.shape, "token ids, padded; vocabulary of", len(tokenizer), "ids")

# %% [markdown]
# ## 1. Dynamic masking
#
# The positions are drawn afresh at every step ("dynamic": the same sentence is masked differently each epoch).
# Only real, non-special tokens are candidates: never `[CLS]`, `[SEP]`, padding. Each row gets
# $\mathrm{round}(0.15 \cdot \text{candidates})$ positions, at least one.

# %%
rng = np.random.default_rng(0)
candidates = pretrainer.candidates(ids, mask)
masked, selected = mask_tokens(ids, candidates, rng, tokenizer.mask_token_id, pretrainer.random_ids)
for row in range(len(ids)):
    shown = [f"[{tokenizer.convert_ids_to_tokens([m])[0]}]" if s else tokenizer.convert_ids_to_tokens([t])[0]
             for t, m, s in zip(ids[row], masked[row], selected[row]) if mask[row][list(ids[row]).index(t)]]
    print(" ".join(shown))
assert (selected.sum(axis=1) == np.maximum(1, np.round(0.15 * candidates.sum(axis=1)))).all()
assert not selected[~candidates].any()                        # never a special token or padding
assert (masked[~selected] == ids[~selected]).all()            # outside S nothing changes

# %% [markdown]
# Of the selected positions, 80% become `[MASK]`, 10% a uniformly drawn token and 10% keep their token. The
# last two make the generator predict at positions that look ordinary, as the discriminator's input will.
# Over many rows the three shares come out as drawn (each within four binomial standard deviations):

# %%
many = np.tile(ids, (500, 1))
m2, s2 = mask_tokens(many, pretrainer.candidates(many, np.tile(mask, (500, 1))), np.random.default_rng(1),
                     tokenizer.mask_token_id, pretrainer.random_ids)
n = s2.sum()
shares = {"[MASK]": (m2[s2] == tokenizer.mask_token_id).sum() / n, "kept": (m2[s2] == many[s2]).sum() / n}
shares["random"] = 1 - shares["[MASK]"] - shares["kept"]
print({k: round(float(v), 4) for k, v in shares.items()}, "of", n, "selected tokens")
for share, expected in ((shares["[MASK]"], 0.8), (shares["kept"], 0.1), (shares["random"], 0.1)):
    # a random draw can equal the original token (1 chance in |V|): "kept" is 0.1 + 0.1 / |V|
    assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1 / len(tokenizer)

# %% [markdown]
# ## 2. The generator's samples and the discriminator's labels
#
# The generator (a masked LM with the Enhanced Mask Decoder) scores the selected positions only, and we draw one
# token per position from its softmax. The discriminator then sees the sentence with the samples in place.

# %%
with no_grad():
    (mlm_loss, logits), _ = rtd.generator_forward(generator, masked, mask, selected, ids)
samples = rtd.sample_tokens(logits, np.random.default_rng(2), pretrainer.special_ids)
replaced = ids.copy()
replaced[selected] = samples
labels = discriminator_labels(ids, replaced, mask)
for (row, col), sample in zip(np.argwhere(selected), samples):
    original = tokenizer.convert_ids_to_tokens([ids[row, col]])[0]
    print(f"row {row} position {col:2d}: {original:>12} -> {tokenizer.convert_ids_to_tokens([sample])[0]:<12}"
          f" label {labels[row, col]}")
print(f"L_MLM on this batch: {mlm_loss:.3f} (uniform guessing: log V = {math.log(len(tokenizer)):.3f})")
assert mlm_loss < math.log(len(tokenizer)) or not course.is_trained()
assert (labels[~selected] == 0).all()                                        # untouched tokens are originals

# %% [markdown]
# A sample equal to the original is labelled **original**: the discriminator is asked "was this token changed?",
# not "was this position masked?". We force the case on one position and check the label:

# %%
forced = samples.copy()
forced[0] = ids[selected][0]                                  # the generator "guessed right" at the first position
again = ids.copy()
again[selected] = forced
forced_labels = discriminator_labels(ids, again, mask)
first = tuple(np.argwhere(selected)[0])
assert forced_labels[first] == 0 and forced_labels.sum() == (forced != ids[selected]).sum()
print("position", first, "holds its original token after sampling: label", forced_labels[first])

# %% [markdown]
# ## 3. The joint loss and one step
#
# `Pretrainer.step` does all of the above and both backwards, and returns the gradients under the names of
# `pretrainer.params`: `generator.*` and `discriminator.*`. The loss is $L_{MLM} + 50\,L_{RTD}$: the RTD loss
# is a binary cross-entropy around $0.1$ to $0.4$ once trained while $L_{MLM}$ is a cross-entropy over the whole
# vocabulary, and $\lambda = 50$ is the paper's way of giving the discriminator the larger share.

# %%
metrics, grads, drawn = pretrainer.step(ids, mask, np.random.default_rng(3))
print({k: round(v, 4) for k, v in metrics.items()})
assert math.isclose(metrics["loss"], metrics["mlm_loss"] + 50 * metrics["rtd_loss"], rel_tol=1e-12)
assert set(grads) == set(pretrainer.params)
probs = 1 / (1 + np.exp(-drawn[4].astype(np.float64)))       # the discriminator's P(replaced) per token
real = (mask > 0) & ~np.isin(drawn[0], pretrainer.special_ids)
auc = pretrain_eval.roc_auc(probs[real], drawn[3][real])
print(f"replaced tokens in this batch: {int(drawn[3].sum())}; the discriminator's ROC AUC on them: {auc:.3f}")

# %% [markdown]
# ## 4. Embedding sharing: which table receives which gradient
#
# Generator and discriminator read tokens through word-embedding tables. DeBERTaV3 compares three ways to
# connect them (its section 3):
#
# - **NES**, no sharing: $E_G$ and $E_D$ are separate; $L_{MLM}$ trains $E_G$, $L_{RTD}$ trains $E_D$.
# - **ES**, ELECTRA's sharing: one table $E = E_G = E_D$ receives $\partial L_{MLM}/\partial E + \lambda\,
#   \partial L_{RTD}/\partial E$: the two losses pull the same rows in different directions ("tug-of-war").
# - **GDES**, gradient-disentangled sharing: $E_D = \mathrm{sg}(E_G) + E_\Delta$, with $E_\Delta$ starting at 0.
#   The discriminator reads the generator's table, but its loss reaches only $E_\Delta$.
#
# We check every arrow of that picture on a small random pair (so this runs in a second): the same weights,
# the same masks and samples, each sharing in turn.

# %%
def pair(sharing, rtd_weight=50.0):
    g_config, d_config = pretrain_cli.model_configs(len(tokenizer), hidden_size=32, layers=2, heads=2,
                                                    position_buckets=16)
    g, d = pretrain_cli.build_models(g_config, d_config, seed=0, dtype=np.float64)
    if sharing == "nes":
        d.params[WORD] = g.params[WORD].copy()                # same start as E_G + 0, a table of its own
    return Pretrainer(g, d, sharing, rtd_weight, special_ids=special, mask_id=tokenizer.mask_token_id)


fixed = dict(masks=(masked, selected), samples=samples)
step = {name: pair(name).step(ids, mask, None, **fixed)[1] for name in ("nes", "es", "gdes")}
mlm_only = pair("gdes", rtd_weight=0.0).step(ids, mask, None, **fixed)[1]
d_mlm, d_rtd = mlm_only[f"generator.{WORD}"], step["nes"][f"discriminator.{WORD}"]   # dL_MLM/dE, 50 dL_RTD/dE

arrows = {  # (sharing, table): the gradient it receives, from which loss
    ("nes", "E_G"): (step["nes"][f"generator.{WORD}"], d_mlm),
    ("nes", "E_D"): (step["nes"][f"discriminator.{WORD}"], d_rtd),
    ("es", "E"): (step["es"][f"generator.{WORD}"], d_mlm + d_rtd),
    ("gdes", "E_G"): (step["gdes"][f"generator.{WORD}"], d_mlm),
    ("gdes", "E_Delta"): (step["gdes"][f"discriminator.{DELTA}"], d_rtd),
}
for (sharing, table), (got, want) in arrows.items():
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    print(f"{sharing:>4}: {table:<7} receives", "dL_MLM" if want is d_mlm else "50 dL_RTD" if want is d_rtd
          else "dL_MLM + 50 dL_RTD")
assert f"discriminator.{WORD}" not in step["gdes"] and f"discriminator.{WORD}" not in step["es"]
assert np.abs(d_mlm).sum() > 0 and np.abs(d_rtd).sum() > 0   # both losses do reach a table

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 2.8))
layout = {"nes": [("L_MLM", "E_G"), ("L_RTD", "E_D")], "es": [("L_MLM", "E"), ("L_RTD", "E")],
          "gdes": [("L_MLM", "E_G"), ("L_RTD", "E_Delta")]}
for ax, (sharing, edges) in zip(axes, layout.items()):
    tables = list(dict.fromkeys(t for _, t in edges))
    xs = {t: (0.5 if len(tables) == 1 else 0.25 + 0.5 * k) for k, t in enumerate(tables)}
    for loss, x in (("L_MLM", 0.25), ("L_RTD", 0.75)):
        ax.text(x, 0.85, loss, ha="center", bbox=dict(fc="#fde2c8"))
    for t, x in xs.items():
        ax.text(x, 0.15, t, ha="center", bbox=dict(fc="#cfe3f7"))
    for loss, t in edges:
        ax.annotate("", xy=(xs[t], 0.25), xytext=(0.25 if loss == "L_MLM" else 0.75, 0.78),
                    arrowprops=dict(arrowstyle="->", lw=1.5))
    if sharing == "gdes":
        ax.text(0.5, 0.02, "E_D = sg(E_G) + E_Delta", ha="center", fontsize=8)
    ax.set_title(sharing.upper())
    ax.axis("off")
fig.suptitle("which table each loss's gradient reaches (every arrow asserted above)")
plt.show()

# %% [markdown]
# What GDES buys: the generator's table is trained by the masked-LM loss alone, so it stays a good table for
# guessing words, while the discriminator still starts from it and adds only the correction $E_\Delta$ its
# own loss asks for. After training, $E_G + E_\Delta$ is saved as the discriminator's table (`pretrain-export`).

# %% [markdown]
# ## 5. The shipped run
#
# The shipped pair was pre-trained by `python -m minideberta pretrain` (the command and corpus are in the model
# card, `weights/minideberta-v3-tiny/README.md`). Its history travels with it as `history.json`: the two
# training losses at every step and the held-out evaluations.

# %%
history_file = course.model_folder("replaced-token-detection") / "history.json"
if history_file.is_file():
    history = json.loads(history_file.read_text())
    train, ev = history["train"], history["eval"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for ax, key in zip(axes[:2], ("mlm_loss", "rtd_loss")):
        ax.plot(train["step"], train[key], lw=0.4, alpha=0.6, label="training batch")
        ax.plot(ev["step"], ev[key], "o-", ms=3, label="held-out")
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.legend()
    for key in ("mlm_top1", "unigram_top1", "rtd_auc", "rtd_auc_random"):
        if key in ev:
            axes[2].plot(ev["step"], ev[key], "o-" if "unigram" not in key else "--", ms=3, label=key)
    axes[2].set_xlabel("step")
    axes[2].legend(fontsize=7)
    plt.tight_layout()
    plt.show()
    last = {k: v[-1] for k, v in ev.items()}
    print("last held-out evaluation:", {k: round(v, 4) for k, v in last.items()})
    assert last["mlm_top1"] > 3 * last["unigram_top1"]          # far above always guessing the commonest token
    assert last["rtd_auc_random"] > last["rtd_auc"] > 0.5      # random swaps are easier to spot than samples
    assert ev["mlm_loss"][-1] < ev["mlm_loss"][0] and ev["rtd_loss"][-1] < ev["rtd_loss"][0]
elif (history_file.parent / "loss_curves.png").is_file():  # a run from before history.json was shipped
    fig, ax = plt.subplots(figsize=(13, 3.4))
    ax.imshow(plt.imread(history_file.parent / "loss_curves.png"))
    ax.axis("off")
    ax.set_title("the shipped run's curves, as its model card draws them (loss_curves.png)")
    plt.show()
else:
    print(f"{history_file} not found: the course runs on a model without a pre-training history")

# %% [markdown]
# And measured live, on text the models never saw: the 212 plain everyday sentences of
# `minideberta/data/everyday/` (written for this measurement, never trained or tuned on), 15% of the tokens of
# each masked (`pretrain_eval.evaluate_everyday`, what `pretrain-eval` reports). The baseline is the best
# constant guess: the one token (or five) that would be right most often at these very positions.

# %%
everyday = pretrain_eval.evaluate_everyday(generator, discriminator, tokenizer)
plain = everyday["sentences"]
print({k: round(plain[k], 3) for k in ("mlm_top1", "best_constant_top1", "mlm_top5", "best_constant_top5",
                                       "rtd_auc", "rtd_auc_random")}, "on", plain["masked_tokens"], "masked tokens")
# How far top-1 could move by chance alone: the standard error of a proportion over this many masked tokens.
standard_error = math.sqrt(plain["mlm_top1"] * (1 - plain["mlm_top1"]) / plain["masked_tokens"])
print(f"top-1 {plain['mlm_top1']:.3f} against the best constant guess {plain['best_constant_top1']:.3f}: "
      f"{(plain['mlm_top1'] - plain['best_constant_top1']) / standard_error:+.1f} standard errors ({standard_error:.3f})")
if course.is_trained():
    assert plain["mlm_top1"] > plain["best_constant_top1"] + 3 * standard_error   # the generator reads the context
    assert plain["rtd_auc_random"] > plain["rtd_auc"] > 0.5        # random swaps are the easier ones to spot

# %% [markdown]
# How to read these numbers:
#
# - **Top-1 against a constant guess.** On the held-out curves, always predicting the commonest token of the
#   corpus (`unigram_top1`) gets a few percent right. On the everyday sentences the baseline is the best constant
#   guess at those very positions, higher because short words such as "the" fill many of them. The generator
#   has to beat it by more than chance could (three standard errors, asserted above); by how much is printed.
#   Top-1 is the masked-LM loss made readable.
# - **ROC AUC** is the probability that a replaced token gets a higher "replaced" score than an original one
#   (0.5: chance, 1: perfect), whatever threshold one would choose. It does **not** say how many tokens the
#   discriminator labels right (most tokens are originals: labelling everything original is about 88% accurate),
#   and it depends on the replacements: uniform random tokens rarely fit their context, so `rtd_auc_random` is
#   high; the generator's samples often fit, and as the generator improves its samples get harder to spot, so
#   `rtd_auc` can stall while both models learn.

# %% [markdown]
# ## 6. A few steps, live
#
# Three steps of AdamW on our four sentences, starting from the shipped weights. The loss on this batch goes down
# (it is the batch being trained on, so this shows the machinery works, not that the model generalises).

# %%
from minideberta.optim import AdamW, clip_grad_norm  # noqa: E402

live = Pretrainer(*pretrain_cli.load_pair(course.model_folder("replaced-token-detection"),
                                          course.model_folder("masked-lm")),
                  "gdes", special_ids=special, mask_id=tokenizer.mask_token_id)
optimizer = AdamW(live.params, lr=1e-4, weight_decay=0.01)
losses = []
for k in range(4):
    metrics, grads, _ = live.step(ids, mask, np.random.default_rng(10))   # the same masks and samples each time
    losses.append(metrics["loss"])
    if k < 3:
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)
print("L_MLM + 50 L_RTD on the batch:", [round(v, 3) for v in losses])
assert losses[-1] < losses[0]

# %% [markdown]
# ## Questions
#
# 1. Why would the discriminator learn little if every selected position became `[MASK]` and nothing else?
#    (Hint: what would the discriminator see at those positions?)
# 2. With $\lambda = 1$ instead of 50, which of the two losses would dominate the shared table under ES, and why?
# 3. Under GDES, what happens to $E_\Delta$'s rows for tokens that never occur in the data? (`optim.py`'s
#    weight decay is part of the answer.)
# 4. The generator's top-1 on held-out text rises during training while `rtd_auc` stays nearly flat. Give two
#    explanations, and an experiment (with `pretrain-eval`) that tells them apart.
#
# Exercises (each removes the function from a copy of the package for you to write, then checks it):
#
# - `python -m minideberta exercises check apps.pretrain.rtd.discriminator_labels`: the labels of a corrupted batch.
# - `python -m minideberta exercises check apps.pretrain.rtd.share_embedding_gradients`: which table gets which
#   gradient under GDES, ES and NES (section 4).
# - `python -m minideberta exercises check losses.rtd_loss_backward`: the RTD loss
#   (binary cross-entropy over real tokens) and its backward.
#
# Or in a cell: `from minideberta.exercises import check; check("apps.pretrain.rtd.discriminator_labels", my_fn)`.
