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
# # 2. Elementary operations: GELU, erf, LayerNorm, XSoftmax
#
# Four small functions from `minideberta/ops.py` (and `backend.py`) that every layer uses, each with its
# forward next to its hand-written backward:
#
# - the activation of the feed-forward block, GELU, in its exact form and the tanh approximation;
# - the float32 error function the exact GELU needs;
# - layer normalization, after every sub-layer;
# - the masked softmax with DeBERTa's XSoftmax semantics, which decides what a padding token sees.
#
# Every backward here is checked by `gradcheck.check_backward` (central differences in float64; why
# $10^{-7}$ is the threshold is the subject of the next notebook, 03).

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.special

from minideberta import backend, blocks, encoder, gradcheck, ops
from minideberta.apps import course


def check(forward, backward, p, inputs):
    """The worst relative error of a backward against central differences."""
    return max(gradcheck.check_backward(forward, backward, p, inputs).values())


rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. GELU, exact and approximated
#
# $$\operatorname{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left(1 + \operatorname{erf}\frac{x}{\sqrt 2}\right),
# \qquad \operatorname{GELU}'(x) = \Phi(x) + x\,\varphi(x),$$
#
# with $\Phi$ and $\varphi$ the standard normal distribution and density. DeBERTa uses this exact form
# (`hidden_act="gelu"`); the tanh approximation of Hendrycks & Gimpel,
# $\tfrac{x}{2}\big(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715\,x^3))\big)$, is transformers' `gelu_new`.
# The two differ by at most $4.8 \times 10^{-4}$, near $|x| = 2.7$: small, but a checkpoint computed
# with the wrong one drifts far beyond round-off.

# %%
x = np.linspace(-4, 4, 8001)
exact, exact_cache = ops.gelu_forward(x)
approx, approx_cache = ops.gelu_new_forward(x)
d_exact = ops.gelu_backward(np.ones_like(x), exact_cache)
d_approx = ops.gelu_new_backward(np.ones_like(x), approx_cache)
phi = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)

fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
axes[0].plot(x, exact, label="GELU (erf)")
axes[0].plot(x, approx, "--", label="tanh approximation")
axes[0].plot(x, np.maximum(x, 0), color="0.8", lw=1, label="ReLU")
axes[0].legend()
axes[0].set_title("GELU(x)")
axes[1].plot(x, d_exact, label="exact")
axes[1].plot(x, d_approx, "--", label="tanh")
axes[1].set_title("GELU'(x), from the backward functions")
axes[1].legend()
axes[2].plot(x, exact - approx)
axes[2].set_title("exact - tanh approximation")
for ax in axes:
    ax.set_xlabel("x")
plt.show()

gap = np.abs(exact - approx)
print(f"max |exact - tanh| = {gap.max():.2e} at x = {x[gap.argmax()]:+.2f}")
assert gap.max() < 4.8e-4 and abs(abs(x[gap.argmax()]) - 2.7) < 0.05
assert np.allclose(exact, x / 2 * (1 + scipy.special.erf(x / math.sqrt(2))), rtol=0, atol=1e-15)
assert np.allclose(d_exact, scipy.special.ndtr(x) + x * phi, rtol=0, atol=1e-15)     # Phi(x) + x phi(x)

samples = rng.normal(scale=2, size=(3, 50))
for fwd, bwd in ((ops.gelu_forward, ops.gelu_backward), (ops.gelu_new_forward, ops.gelu_new_backward)):
    error = check(lambda p, x, fwd=fwd: fwd(x), lambda p, dy, cache, bwd=bwd: (bwd(dy, cache), {}), {}, [samples])
    print(f"{fwd.__name__:18s} backward vs central differences: {error:.1e}")
    assert error < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## 2. The float32 error function
#
# In float64, `backend.erf` is SciPy's erf, exact to the last bit. For float32 arrays it uses instead the
# rational approximation of Abramowitz & Stegun (7.1.26), a handful of vectorised array operations (SciPy's
# float32 erf computes in double, one element at a time):
#
# $$\operatorname{erf}(x) \approx 1 - t\,(a_1 + t(a_2 + t(a_3 + t(a_4 + t a_5))))\,e^{-x^2},
# \qquad t = \frac{1}{1 + p\,x}, \quad x \ge 0,$$
#
# odd-extended to $x < 0$. The formula's own error is at most $1.5 \times 10^{-7}$; evaluated in float32 the
# measured *absolute* error below stays under $6 \times 10^{-7}$. What that means depends on where you look
# (the grey band is one float32 spacing at $\operatorname{erf}(x)$):
#
# - for $|x| \ge 1$, where $|\operatorname{erf}(x)|$ is near 1, it is a few float32 spacings, as good as float32 gets;
# - near 0, where $\operatorname{erf}(x)$ is itself small and float32 values are dense, the same absolute error is
#   thousands of spacings: a *relative* error of up to about 0.5 % of $\operatorname{erf}(x)$ at $|x| \approx 0.01$.
#
# Why that is harmless here: GELU needs $1 + \operatorname{erf}(x/\sqrt2)$, and next to 1 an absolute error of
# $6 \times 10^{-7}$ is at most five float32 spacings of 1 ($1.19 \times 10^{-7}$), which drowns in the round-off of a
# float32 model's matrix products. (Code that needed $\operatorname{erf}$ of small arguments to float32 relative
# precision would need another formula there, e.g. the series $\frac{2}{\sqrt\pi}(x - x^3/3)$.) The error curve
# against the float64 reference, over every float32 value in a fine grid:

# %%
x32 = np.linspace(-5, 5, 200001, dtype=np.float32)
ours32 = backend.erf(x32)
truth = scipy.special.erf(x32.astype(np.float64))
error = ours32.astype(np.float64) - truth
spacing = np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)

fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(x32, error, lw=0.6, label="backend.erf(float32) - erf (float64)")
ax.plot(x32, spacing, color="0.6", lw=1, label="float32 spacing at erf(x)")
ax.plot(x32, -spacing, color="0.6", lw=1)
ax.axhline(6e-7, color="red", ls="--", lw=1, label="6e-7")
ax.axhline(-6e-7, color="red", ls="--", lw=1)
ax.set_xlabel("x")
ax.legend(fontsize=8, loc="lower right")
ax.set_title("the error of the float32 erf")
plt.show()

worst = np.abs(error).argmax()
far, near = np.abs(x32) >= 1, (np.abs(x32) > 0) & (np.abs(x32) < 0.1)
in_spacings = np.abs(error) / spacing
relative_near = (np.abs(error[near]) / np.abs(truth[near])).max()
print(f"max |error| = {np.abs(error).max():.2e} at x = {x32[worst]:+.4f}; for |x| >= 1 at most "
      f"{in_spacings[far].max():.1f} float32 spacings; for 0 < |x| < 0.1 up to {in_spacings[near].max():.0f} spacings, "
      f"a relative error of {relative_near:.1e}")
assert ours32.dtype == np.float32 and np.abs(error).max() < 6e-7
assert in_spacings[far].max() <= 4                        # near |erf| = 1: a few spacings
assert in_spacings[near].max() > 1000 and 1e-3 < relative_near < 1e-2   # near 0: many spacings, ~0.5 % relative
assert np.abs(error).max() <= 5 * np.spacing(np.float32(1))  # what GELU sees, 1 + erf: at most 5 spacings of 1
assert (backend.erf(x32.astype(np.float64)) == truth).all()                  # float64: SciPy's erf itself
assert (np.sign(ours32) == np.sign(x32)).all() and np.abs(ours32).max() <= 1   # odd, within [-1, 1]

# %% [markdown]
# **Why `gelu_forward` has a function inside it.** The erf above is about twenty NumPy operations, and
# NumPy runs each one as a full pass over its arrays. On an FFN activation of v3-base at batch 8 x 128,
# a (1024, 3072) float32 array of 12 MiB, every pass streams the whole array through main memory.
# `blocks.by_row_blocks(f, out, x)` computes `f(x, out=out)` on 21 rows at a time (256 KiB), so that every
# pass finds its data in the core's cache; `gelu_forward` and `gelu_backward` hand it their plain formula
# as an inner function. Each element meets the same operations in the same order, so the bits are the same.
# (In the model this made the v3-base forward 6% faster at 8 x 128 and forward+backward 12%: README,
# "Speed and memory". The times printed below are this machine's, today.)

# %%
big = np.random.default_rng(1).normal(size=(1024, 3072)).astype(np.float32)  # its own stream: rng stays as the rest expects
whole = ops.normal_cdf(big, out=np.empty_like(big))      # the plain formula on the whole array at once
whole *= big
blocked, _ = ops.gelu_forward(big)                       # the same formula, block by block
assert blocked.dtype == np.float32 and np.array_equal(blocked, whole)  # bit for bit


def best_of(f, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_gelu():
    y = ops.normal_cdf(big, out=np.empty_like(big))
    y *= big


print(f"GELU of (1024, 3072) float32: whole array {1e3 * best_of(plain_gelu):.1f} ms, "
      f"in blocks of {blocks.rows_per_block(3072 * 4)} rows {1e3 * best_of(lambda: ops.gelu_forward(big)):.1f} ms")

# %% [markdown]
# ## 3. Layer normalization
#
# Over the last axis (the hidden size $D$), with the biased variance, as torch computes it:
#
# $$\mu = \frac{1}{D}\sum_k x_k, \quad \sigma^2 = \frac{1}{D}\sum_k (x_k - \mu)^2, \quad
# y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta.$$
#
# With $\gamma = 1$ and $\beta = 0$ every output row has mean 0 and variance $\sigma^2 / (\sigma^2 + \varepsilon)$,
# just below 1. DeBERTa-v3 uses $\varepsilon = 10^{-7}$ (its official `config.json`, kept in `tests/fixtures/configs`).

# %%
D, eps = 64, 1e-7
assert course.official_config("microsoft/deberta-v3-base").layer_norm_eps == eps
rows = rng.normal(loc=3, scale=[[0.5], [2.0], [5.0]], size=(3, D))     # three rows, different scales
unit = {"weight": np.ones(D), "bias": np.zeros(D)}
y, ln_cache = ops.layer_norm_forward(unit, rows, eps)
naive = (rows - rows.mean(-1, keepdims=True)) / np.sqrt(rows.var(-1, keepdims=True) + eps)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), sharex=True)
for row, normed in zip(rows, y):
    axes[0].plot(row, lw=1)
    axes[1].plot(normed, lw=1)
axes[0].set_title("three rows x (different means and scales)")
axes[1].set_title("LayerNorm(x): each row mean 0, variance 1")
for ax in axes:
    ax.set_xlabel("feature k")
plt.show()

var = rows.var(-1)
assert np.abs(y - naive).max() < 1e-14
assert np.abs(y.mean(-1)).max() < 1e-15 and np.abs(y.var(-1) - var / (var + eps)).max() < 1e-14

p = {"weight": rng.normal(size=D), "bias": rng.normal(size=D)}
error = check(lambda p, x: ops.layer_norm_forward(p, x, eps), ops.layer_norm_backward, p, [rows])
print(f"layer_norm backward vs central differences: {error:.1e}")
assert error < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## 4. XSoftmax: what a padding token sees
#
# The attention softmax runs over the keys $j$ a query $i$ may see (mask $M_{ij}$):
#
# $$P_{ij} = \frac{M_{ij}\, e^{S_{ij}}}{\sum_{k} M_{ik}\, e^{S_{ik}}}.$$
#
# For a padding *query* every $M_{ij}$ is 0 and the fraction is $0/0$. A plain masked softmax (scores set
# to $-\infty$ ... or to the lowest float, as transformers 5 does) then gives that row a uniform
# distribution over all keys. DeBERTa's XSoftmax multiplies by the mask again *after* the softmax: a
# padding query gets an all-zero row, a padding key zero probability. `ops.masked_softmax_forward`
# does that; the mask comes from `encoder.attention_masks`, which pairs a (B, N) padding mask into a
# (B, 1, N, N) one. A text of 5 real tokens padded to 8:

# %%
N, real = 8, 5
attention_mask = np.array([[1] * real + [0] * (N - real)])
pair_mask, token_mask = encoder.attention_masks(attention_mask)           # (1, 1, N, N) bool, (1, N)
scores = rng.normal(size=(1, 1, N, N))

xsoftmax, _ = ops.masked_softmax_forward(scores.copy(), pair_mask)         # the library (overwrites its input)
lowest = np.where(pair_mask, scores, np.finfo(scores.dtype).min)           # a plain masked softmax, for contrast
plain = np.exp(lowest - lowest.max(-1, keepdims=True))
plain /= plain.sum(-1, keepdims=True)

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, probs, name in zip(axes, (plain, xsoftmax), ("plain masked softmax", "XSoftmax (minideberta, DeBERTa)")):
    im = ax.imshow(probs[0, 0], cmap="viridis", vmin=0, vmax=0.6)
    ax.axhline(real - 0.5, color="white", lw=1)
    ax.axvline(real - 0.5, color="white", lw=1)
    ax.set_title(name)
    ax.set_xlabel("key j")
axes[0].set_ylabel("query i  (rows 5-7: padding)")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

probs = xsoftmax[0, 0]
assert np.allclose(probs[:real].sum(-1), 1, rtol=0, atol=1e-15)           # real queries: distributions over keys
assert (probs[real:] == 0).all() and (probs[:, real:] == 0).all()         # padding: no probability in or out
assert np.allclose(plain[0, 0, real:], 1 / N, rtol=0, atol=1e-15)         # the plain softmax: uniform rows
assert np.abs(probs[:real] - plain[0, 0, :real]).max() < 1e-15            # real rows agree exactly

error = check(lambda p, s: ops.masked_softmax_forward(s.copy(), pair_mask),
              lambda p, dy, cache: (ops.masked_softmax_backward(dy, cache), {}), {}, [scores])
print(f"masked_softmax backward vs central differences: {error:.1e}")
assert error < gradcheck.EXPECTED_ERROR

# %% [markdown]
# ## Questions and exercises
#
# 1. Derive $\frac{\partial y}{\partial x}$ of LayerNorm: why does the backward subtract the mean of
#    $g = \gamma \odot dy$ and the component along $\hat{x}$? Then write it:
#    `python -m minideberta exercises check ops.layer_norm_backward`.
# 2. Why does the masked softmax's backward need no mask, only the probabilities
#    (`ops.masked_softmax_backward`)? Check your reasoning with `python -m minideberta exercises check
#    ops.masked_softmax_backward`, and `ops.gelu_backward` for the activation.
