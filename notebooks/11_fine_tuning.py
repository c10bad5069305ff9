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
# # 11. Fine-tuning
#
# `model.backward()` gives $\partial\ell/\partial\theta$ for every parameter; fine-tuning turns gradients into
# steps. minideberta uses what DeBERTa's papers and transformers use: **AdamW** (Loshchilov & Hutter), a
# **linear warm-up and decay** of the learning rate, and **clipping** of the global gradient norm. With
# $g_t$ the gradient at step $t = 1, 2, \dots$ and $\eta_t$ the scheduled learning rate,
#
# $$
# \theta \leftarrow \theta\,(1 - \eta_t \lambda), \quad
# m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
# v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
# \theta \leftarrow \theta - \frac{\eta_t}{1-\beta_1^t}\,\frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
# $$
#
# (weight decay $\lambda$ *decoupled* from the gradient, and not applied to biases and LayerNorm parameters),
#
# $$
# \eta_s = \eta \cdot \begin{cases} s / w & s < w \\ \max\big(0, (T - s)/(T - w)\big) & s \ge w \end{cases}
# \qquad\qquad
# g \leftarrow g \cdot \min\Big(1, \frac{c}{\lVert g \rVert + 10^{-6}}\Big)
# $$
#
# for the step after $s$ completed steps out of $T$, with $w$ warm-up steps, and $\lVert g\rVert$ the norm of all
# gradients as one vector.
#
# Files: `minideberta/optim.py` (`AdamW`, `LinearWarmupSchedule`, `clip_grad_norm`, `global_norm`),
# `minideberta/apps/train/loop.py` (`train`, `evaluate`, checkpoints, `History`).
#
# Sections: 1. three AdamW steps against the formula; 2. the schedule and clipping;
# 3. a tiny task, with loss and learning-rate curves; 4. stopping and resuming, bitwise.

# %%
import shutil
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2ForSequenceClassification
from minideberta.apps import course
from minideberta.apps.train.loop import evaluate, train
from minideberta.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, global_norm

np.set_printoptions(linewidth=120, precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. AdamW, three steps
#
# On a toy parameter dict: a weight (decayed) and a bias (not decayed), three steps of `AdamW.step` against the
# formula above written out in NumPy.

# %%
params = {"dense.weight": rng.normal(size=(3, 4)), "dense.bias": rng.normal(size=3)}
start = {k: v.copy() for k, v in params.items()}
gradients = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(3)]
lr, betas, eps, wd = 1e-2, (0.9, 0.999), 1e-8, 0.1

opt = AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
for g in gradients:
    opt.step(g)

by_hand = {k: v.copy() for k, v in start.items()}
m = {k: np.zeros_like(v) for k, v in start.items()}
v2 = {k: np.zeros_like(v) for k, v in start.items()}
for t, g in enumerate(gradients, start=1):
    for k in by_hand:
        if not k.endswith("bias"):
            by_hand[k] *= 1 - lr * wd
        m[k] = betas[0] * m[k] + (1 - betas[0]) * g[k]
        v2[k] = betas[1] * v2[k] + (1 - betas[1]) * g[k] ** 2
        by_hand[k] -= lr / (1 - betas[0] ** t) * m[k] / (np.sqrt(v2[k]) / np.sqrt(1 - betas[1] ** t) + eps)
gap = max(np.abs(params[k] - by_hand[k]).max() for k in params)
print(f"AdamW.step x3 vs the formula: {gap:.1e}; decays: {opt.decays}")
assert gap < 1e-14 and opt.decays == {"dense.weight": True, "dense.bias": False}

# (tests/parity/test_optim.py checks the same steps against torch.optim.AdamW, to the last few bits.)

# %% [markdown]
# The first step of Adam moves every coordinate by about $\eta$, whatever the size of its gradient: with
# $m_1 = (1-\beta_1) g$ and $v_1 = (1-\beta_2) g^2$, the bias-corrected ratio is $g / |g| = \pm 1$. That is why a
# warm-up helps: at first $v$ is estimated from a handful of gradients.

# %%
p1 = {"w": np.array([1e-4, 1.0, 1e4])}
AdamW(p1, lr=1e-3, weight_decay=0.0).step({"w": np.array([1e-4, 1.0, 1e4])})
moved = np.array([1e-4, 1.0, 1e4]) - p1["w"]
print("first-step moves for gradients 1e-4, 1, 1e4:", moved)
assert np.allclose(moved, 1e-3, rtol=1e-3)

# %% [markdown]
# ## 2. The schedule and clipping

# %%
T, W = 40, 8
schedule = LinearWarmupSchedule(T, W)
f = np.array([schedule(s) for s in range(T)])
formula = np.array([s / W if s < W else max(0.0, (T - s) / (T - W)) for s in range(T)])
assert np.array_equal(f, formula) and f[0] == 0 and f[W] == 1 and f.max() == 1

grads = {"a": rng.normal(size=(5, 5)), "b": rng.normal(size=7)}
norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
direction = {k: g / norm for k, g in grads.items()}
before = clip_grad_norm(grads, max_norm=1.0)
after = global_norm(grads)
print(f"global norm {before:.4f} -> {after:.6f} after clip_grad_norm(max_norm=1)")
assert abs(before - norm) < 1e-12 and abs(after - 1.0) < 1e-5
assert all(np.allclose(grads[k] / after, direction[k], atol=1e-12) for k in grads)  # the direction is kept
small = {"a": np.full(3, 0.1)}
assert clip_grad_norm(small, 1.0) < 1 and np.array_equal(small["a"], np.full(3, 0.1))  # below max: untouched

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.plot(range(T), f, "o-", ms=3)
ax.axvline(W, color="0.5", ls="--", lw=1)
ax.set_xlabel("completed steps s")
ax.set_ylabel("lr multiplier f(s)")
ax.set_title(f"LinearWarmupSchedule(total_steps={T}, warmup_steps={W})")
plt.show()

# %% [markdown]
# ## 3. A tiny task
#
# Sentences built from templates, positive or negative by their adjective; the backbone is the course's
# discriminator (`minideberta/apps/course/__init__.py`), with a new classification head drawn from a seed. 40 training
# sentences, 8 held out (other adjectives with the same templates). `train` takes a dict of arrays, as the
# tokenizer returns them, plus `labels`.

# %%
positive = ["good", "great", "lovely", "superb", "wonderful", "fine"]
negative = ["bad", "awful", "boring", "terrible", "dull", "poor"]
templates = ["The film was {}.", "What a {} day.", "The food tasted {}.", "Her talk was {}."]
held_out = {"fine", "poor"}
examples, split = [], []
for t in templates:
    for words, label in ((positive, 1), (negative, 0)):
        for w in words:
            examples.append((t.format(w), label))
            split.append(w in held_out)

folder = course.model_folder("replaced-token-detection")
print(course.describe())
_, tokenizer = course.course_model("replaced-token-detection")


def dataset(rows):
    enc = tokenizer([s for s, _ in rows], padding=True, return_tensors="np")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "labels": np.array([label for _, label in rows])}


train_set = dataset([e for e, held in zip(examples, split) if not held])
eval_set = dataset([e for e, held in zip(examples, split) if held])
print(f"{len(train_set['labels'])} training sentences, {len(eval_set['labels'])} held out")
assert len(train_set["labels"]) == 40 and len(eval_set["labels"]) == 8


def fresh_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "initialised a new head": intended
        return DebertaV2ForSequenceClassification.from_pretrained(folder, dtype=np.float32, new_head=True, seed=0)


# The random stand-in (width 32, nothing learnt) needs a large learning rate to move in 30 steps; the
# pre-trained encoder fits the task at 1e-3 and is shaken loose at 1e-2 (measured: 0.95 training accuracy
# and a loss that hardly falls).
settings = {"steps": 30, "batch_size": 8, "lr": 1e-3 if course.is_trained() else 1e-2, "warmup_steps": 6,
            "weight_decay": 0.01, "max_grad_norm": 1.0, "eval_every": 10, "seed": 0, "progress": False}
checkpoints = Path(tempfile.mkdtemp(prefix="minideberta-notebook-10-"))
model = fresh_model()
before = evaluate(model, eval_set)
history = train(model, train_set, eval_set, checkpoint_dir=checkpoints, save_every=15, **settings)
print(history)
fitted = evaluate(model, train_set)
print("held out, before:", before, " during and after:", history.eval)
print("training set after:", fitted)

# %% [markdown]
# `History.plot()` draws what the run recorded: the loss per step (and on the held-out set), the accuracy, the
# learning rate and the gradient norm *before* clipping. The recorded learning rate is the schedule's, the
# training loss falls, and the model fits its training sentences. The held-out adjectives were never seen in
# this task: with random weights nothing tells the model what "fine" and "poor" mean, and its held-out accuracy
# is luck; a pre-trained backbone may know.

# %%
fig = history.plot()
plt.show()

lrs = np.array(history.train["lr"])
expected_lrs = np.array([settings["lr"] * LinearWarmupSchedule(30, 6)(s) for s in range(30)])
assert np.allclose(lrs, expected_lrs, rtol=1e-12)
losses = np.array(history.train["loss"])
assert losses[-5:].mean() < 0.5 * losses[:5].mean()
assert fitted["accuracy"] >= 0.9
assert history.eval["step"] == [10, 20, 30]

# %% [markdown]
# The panels also show **overfitting**, in the small. 40 sentences and 30 steps are enough for a model with
# millions of parameters to fit its training sentences almost perfectly (training loss near 0, accuracy 1),
# while the held-out loss stays near $\log 2 \approx 0.69$, the loss of a coin toss, or falls only a little: the
# model has learnt its 40 sentences far better than the rule behind them. The gap between the two losses is the
# measure of it. (With 8 held-out sentences each one is 12.5 % of the held-out accuracy, so that curve moves in
# big steps and says little on its own; the held-out loss is the better signal.) Against it: more data, fewer
# steps or an earlier stop at the best held-out loss, more weight decay or dropout.

# %%
gap = history.eval["loss"][-1] - fitted["loss"]
print(f"after 30 steps: training-set loss {fitted['loss']:.3f}, held-out loss {history.eval['loss'][-1]:.3f} "
      f"(log 2 = {np.log(2):.3f}); gap {gap:.3f}")
assert fitted["loss"] < 0.5 * history.eval["loss"][-1]      # the training set is fitted far better than held-out text

# %% [markdown]
# ## 4. Stop, resume, and land on the same bits
#
# The run wrote `checkpoint-15` and `checkpoint-30`: the model, the AdamW moments, the step, the settings, the
# dropout generator's state and the history. The data order needs no state: step $s$ takes examples
# $8s \dots 8s+7$ of a stream of seeded permutations. So a fresh model resumed from `checkpoint-15` and trained
# to step 30 must end with **exactly** the parameters of the uninterrupted run: not close, equal.

# %%
resumed = fresh_model()
history2 = train(resumed, train_set, eval_set, checkpoint_dir=checkpoints / "resumed",
                 resume_from=checkpoints / "checkpoint-15", **settings)
different = [k for k in model.params if not np.array_equal(model.params[k], resumed.params[k])]
print(f"{len(model.params)} arrays compared, {len(different)} differ; losses equal: "
      f"{history2.train['loss'] == history.train['loss']}")
assert not different
assert history2.train == history.train and history2.eval == history.eval

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(history.train["step"], history.train["loss"], lw=4, alpha=0.4, label="uninterrupted run")
ax.plot(history2.train["step"][15:], history2.train["loss"][15:], "k.", label="resumed from checkpoint-15")
ax.axvline(15, color="0.5", ls="--", lw=1)
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.legend(fontsize=8)
ax.set_title("the resumed run retraces the original, step for step")
plt.show()
shutil.rmtree(checkpoints)  # the checkpoints lived in a temporary folder

# %% [markdown]
# ## Questions
#
# 1. Set `warmup_steps=0` and `lr=1e-2`: what does the gradient-norm panel do in the first steps, and why does
#    warm-up help Adam in particular (section 1's first step)?
# 2. Resuming restores the dropout generator. Which assertion of section 4 would fail without it, and which
#    would still hold with `hidden_dropout_prob=0`?
# 3. Exercise: `python -m minideberta exercises check optim.AdamW.step`.
