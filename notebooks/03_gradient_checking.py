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
# # 3. Backward passes and gradient checking
#
# Every forward in minideberta has a backward written by hand. How do we know one is right? By comparing it
# with the one gradient that needs no derivation at all, the **central difference**:
#
# $$
# \frac{f(x + h e_i) - f(x - h e_i)}{2h} = \frac{\partial f}{\partial x_i} + \frac{h^2}{6} f'''(\xi)
# \quad\text{(truncation)}\qquad \pm\ \frac{\epsilon\,|f|}{h} \quad\text{(round-off)}
# $$
#
# Shrinking $h$ lowers the truncation error and raises the round-off, so the total is smallest near
# $h^\ast \approx \epsilon^{1/3}$: about $10^{-5}$ in float64 ($\epsilon \approx 2 \cdot 10^{-16}$), with an error near
# $\epsilon^{2/3} \approx 10^{-11}$, relative; about $5 \cdot 10^{-3}$ in float32 ($\epsilon \approx 10^{-7}$), where
# the best error is only about $10^{-5}$.
#
# A component's backward takes the gradient of a *scalar*. `gradcheck.check_backward` makes one: with a random
# $dy$ of the output's shape, $f(p, x) = \sum y(p, x) \odot dy$, whose gradient with respect to every
# parameter and input is exactly what `backward(p, dy, cache)` returns.
#
# File: `minideberta/gradcheck.py` (`numerical_gradient`, `rel_error`, `check_backward`, `EXPECTED_ERROR`).
#
# Sections: 1. one check by hand; 2. error against step size, float64 and float32; 3. a wrong backward caught,
# and where; 4. a 0.1 % error in one weight of an encoder layer.

# %%
import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2Config, encoder, gradcheck
from minideberta.model import DebertaV2Model
from minideberta.ops import layer_norm_backward, layer_norm_forward
from minideberta.params import subtree

np.set_printoptions(linewidth=120, precision=4, suppress=True)
rng = np.random.default_rng(0)
EPS = 1e-7  # DeBERTa-v3's layer_norm_eps

# %% [markdown]
# ## 1. One check, by hand
#
# LayerNorm over the last axis, $y = \gamma \odot \hat{x} + \beta$ with $\hat{x} = (x - \mu)/\sigma$. Its backward,
# with $g = \gamma \odot dy$ and means over the feature axis,
#
# $$
# dx = \frac{1}{\sigma}\Big(g - \overline{g} - \hat{x}\,\overline{g \odot \hat{x}}\Big), \qquad
# d\gamma = \sum_{\text{rows}} dy \odot \hat{x}, \qquad d\beta = \sum_{\text{rows}} dy .
# $$
#
# `ops.layer_norm_backward` computes it; `gradcheck.numerical_gradient` perturbs each entry of $x$ in place by
# $\pm h$ and calls $f$ twice.

# %%
p = {"weight": 1 + 0.3 * rng.normal(size=6), "bias": 0.3 * rng.normal(size=6)}
x = rng.normal(size=(4, 6))
dy = rng.normal(size=(4, 6))
y, cache = layer_norm_forward(p, x, EPS)
dx, grads = layer_norm_backward(p, dy, cache)


def f():
    return np.sum(layer_norm_forward(p, x, EPS)[0] * dy)


numeric = gradcheck.numerical_gradient(f, x)  # h = 1e-5
err = gradcheck.rel_error(dx, numeric, scale=np.abs(dx).max())
print(f"dx: worst |analytic - numeric| / max|dx| = {err:.1e}  (EXPECTED_ERROR = {gradcheck.EXPECTED_ERROR:g})")
assert err < 1e-9

# check_backward does this for every parameter and every floating-point input at once:
errors = gradcheck.check_backward(lambda p, x: layer_norm_forward(p, x, EPS), layer_norm_backward, p, (x,))
print({k: f"{v:.1e}" for k, v in errors.items()})
assert set(errors) == {"param:weight", "param:bias", "input:0"} and max(errors.values()) < 1e-9

# %% [markdown]
# Why the error is measured against the size of the *whole* gradient (`scale`), not entry by entry: an entry
# whose true gradient is 0 (or nearly) has a numerical estimate of pure round-off, about $10^{-11}$, and an
# entry-wise relative error of 1. The LayerNorm's $dx$ sums to 0 over each row, so small entries are common.
#
# ## 2. The error against the step size
#
# The same check, $h$ from $10^{-12}$ to $10^{-1}$, in float64 and in float32 (the float32 forward is the
# library's own: LayerNorm keeps its input's dtype). The truth is the float64 backward. `numerical_gradient`
# refuses float32 arrays for exactly the reason this picture shows, so the float32 differences are taken here
# by hand.

# %%
try:
    gradcheck.numerical_gradient(f, x.astype(np.float32))
except ValueError as e:
    print("numerical_gradient on float32:", e)
else:
    raise AssertionError("numerical_gradient accepted float32")

steps = np.logspace(-12, -1, 45)


def worst_error(dtype, h):
    pd = {k: v.astype(dtype) for k, v in p.items()}
    xd, dyd = x.astype(dtype), dy.astype(dtype)
    num = np.zeros_like(dx)
    for i in np.ndindex(x.shape):
        old = xd[i]
        xd[i] = old + dtype(h)
        plus = np.sum(layer_norm_forward(pd, xd, dtype(EPS))[0] * dyd, dtype=np.float64)
        xd[i] = old - dtype(h)
        minus = np.sum(layer_norm_forward(pd, xd, dtype(EPS))[0] * dyd, dtype=np.float64)
        xd[i] = old
        step = (np.float64(old + dtype(h)) - np.float64(old - dtype(h)))  # the step actually taken
        num[i] = (plus - minus) / step if step else np.nan
    if np.isnan(num).all():  # h below float32's spacing near x: x + h == x - h for every entry
        return np.nan
    return np.nanmax(np.abs(num - dx)) / np.abs(dx).max()


curves = {dtype.__name__: np.array([worst_error(dtype, h) for h in steps]) for dtype in (np.float64, np.float32)}
best = {name: (steps[np.nanargmin(c)], np.nanmin(c)) for name, c in curves.items()}
for name, (h_best, e_best) in best.items():
    print(f"{name}: best h = {h_best:.1e}, error {e_best:.1e}")
at_default = {name: c[np.argmin(np.abs(steps - 1e-5))] for name, c in curves.items()}
print(f"at h = 1e-5: float64 {at_default['float64']:.1e}, float32 {at_default['float32']:.1e}")

assert 1e-7 < best["float64"][0] < 1e-3 and best["float64"][1] < 1e-9
assert 1e-4 < best["float32"][0] < 1e-1 and best["float32"][1] > 1e-6  # float32 cannot do better
assert 1e-11 < at_default["float64"] < 1e-9 and at_default["float32"] > 1e-2

fig, ax = plt.subplots(figsize=(7, 4))
for name, c in curves.items():
    ax.loglog(steps, c, "o-", ms=3, label=name)
ax.loglog(steps, steps ** 2, "k:", lw=1, label="h^2 (truncation)")
ax.loglog(steps, 2.2e-16 / steps, "C0--", lw=1, label="eps64 / h (round-off)")
ax.loglog(steps, 1.2e-7 / steps, "C1--", lw=1, label="eps32 / h (round-off)")
ax.axvline(1e-5, color="0.5", lw=1)
ax.axhline(gradcheck.EXPECTED_ERROR, color="r", lw=1, ls="--", label="EXPECTED_ERROR")
ax.set_ylim(1e-13, 1e3)
ax.set_xlabel("step h")
ax.set_ylabel("worst error / max |dx|")
ax.set_title("central differences on LayerNorm: a V, bottom at h ~ eps^(1/3)")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# In float64 at the default $h = 10^{-5}$ a correct backward sits 2 to 4 orders below `EXPECTED_ERROR`
# ($10^{-7}$); in float32 no step gets below about $10^{-5}$, which is why every gradient check of the library
# runs in float64.
#
# ## 3. A wrong backward, caught, and where
#
# The classic LayerNorm mistake: forget that $\mu$ depends on every $x_j$, i.e. drop the $-\overline{g}$ term.
# Below, the correct formula and the broken one are written out; the correct one must equal the library's.

# %%
def layer_norm_backward_by_hand(p, dy, x, drop_mean_term=False):
    mu, sigma = x.mean(-1, keepdims=True), np.sqrt(x.var(-1, keepdims=True) + EPS)
    xhat, g = (x - mu) / sigma, p["weight"] * dy
    mean_g = 0 if drop_mean_term else g.mean(-1, keepdims=True)
    dx = (g - mean_g - xhat * (g * xhat).mean(-1, keepdims=True)) / sigma
    return dx, {"weight": (dy * xhat).sum(0), "bias": dy.sum(0)}


def forward_keeping_x(p, x):
    return layer_norm_forward(p, x, EPS)[0], x


good = gradcheck.check_backward(forward_keeping_x, lambda p, dy, x: layer_norm_backward_by_hand(p, dy, x), p, (x,))
bad = gradcheck.check_backward(forward_keeping_x, lambda p, dy, x: layer_norm_backward_by_hand(p, dy, x, True),
                               p, (x,))
assert np.abs(layer_norm_backward_by_hand(p, dy, x)[0] - dx).max() < 1e-14  # = ops.layer_norm_backward
print("correct:", {k: f"{v:.1e}" for k, v in good.items()})
print("broken: ", {k: f"{v:.1e}" for k, v in bad.items()})
assert max(good.values()) < gradcheck.EXPECTED_ERROR
assert bad["input:0"] > 1e-2 and max(bad["param:weight"], bad["param:bias"]) < gradcheck.EXPECTED_ERROR

# %% [markdown]
# The report names the array: only `input:0` fails; the parameters' gradients do not go through the missing
# term. Inside the array, the difference between the broken $dx$ and central differences is $\overline{g}/\sigma$:
# **one constant per row**. The picture shows it.

# %%
wrong_dx = layer_norm_backward_by_hand(p, dy, x, drop_mean_term=True)[0]
difference = wrong_dx - numeric
row_constant = (p["weight"] * dy).mean(-1, keepdims=True) / np.sqrt(x.var(-1, keepdims=True) + EPS)
assert np.abs(difference - row_constant).max() < 1e-8

fig, axes = plt.subplots(1, 3, figsize=(11, 2.6))
for ax, m, title in zip(axes, (numeric, wrong_dx, difference),
                        ("central differences", "broken backward", "broken - numeric: constant per row")):
    im = ax.imshow(m, cmap="RdBu_r", vmin=-np.abs(m).max(), vmax=np.abs(m).max())
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("feature")
    ax.set_ylabel("row")
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. A 0.1 % error in one weight, inside an encoder layer
#
# A subtler bug: a backward that is right except that one weight's gradient is 0.1 % too large (a wrong
# scale, a missed $1/\sqrt{d}$ in one place). Its relative error is at most $10^{-3}$ (exactly that at the
# largest entry; the sampled entries are smaller): four orders above a correct backward, so `check_backward` catches it and names it. Here on one whole encoder layer (attention, output,
# FFN: 16 arrays plus the input and the relative table), each array sampled at 8 entries. The layer is
# taken apart in notebooks 06 and 07; here it is a black box with a forward and a backward, which is all a
# gradient check needs.

# %%
config = DebertaV2Config(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32, relative_attention=True,
                         position_buckets=8, max_relative_positions=32, pos_att_type="c2p|p2c",
                         share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False,
                         initializer_range=0.3)
enc = subtree(DebertaV2Model(config, seed=0, dtype=np.float64).params, "encoder")
layer = subtree(enc, "layer.0")
hidden = rng.normal(size=(2, 7, config.hidden_size))
pair_mask = encoder.attention_masks(np.ones((2, 7))).pair  # None: no padding, nothing to mask
relative = encoder.relative_embeddings_forward(enc, config, 7)
table, rel_rows = relative.table, relative.rows
BROKEN = "attention.output.dense.weight"


def layer_forward(p, x, table):
    return encoder.layer_forward(p, x, pair_mask, config, table, rel_rows)


def layer_backward(p, dy, cache):
    (dx, _, dtable), g = encoder.layer_backward(p, dy, cache)
    return (dx, dtable), g


def broken_backward(p, dy, cache):
    (dx, dtable), g = layer_backward(p, dy, cache)
    return (dx, dtable), {**g, BROKEN: g[BROKEN] * 1.001}


good = gradcheck.check_backward(layer_forward, layer_backward, layer, (hidden, table), max_entries=8)
bad = gradcheck.check_backward(layer_forward, broken_backward, layer, (hidden, table), max_entries=8)
failing = sorted(k for k, v in bad.items() if v > gradcheck.EXPECTED_ERROR)
print(f"correct: worst {max(good.values()):.1e};  broken: failing {failing}, error {bad['param:' + BROKEN]:.1e}")
assert max(good.values()) < gradcheck.EXPECTED_ERROR
assert failing == ["param:" + BROKEN] and 1e-4 < bad["param:" + BROKEN] <= 1e-3

fig, ax = plt.subplots(figsize=(9, 4.2))
names = list(good)
ax.barh(np.arange(len(names)) + 0.2, [good[n] for n in names], 0.4, label="layer_backward")
ax.barh(np.arange(len(names)) - 0.2, [bad[n] for n in names], 0.4, label=f"{BROKEN} x 1.001")
ax.axvline(gradcheck.EXPECTED_ERROR, color="r", ls="--", label="EXPECTED_ERROR")
ax.set_yticks(range(len(names)), [n.replace("param:", "") for n in names], fontsize=7)
ax.set_xscale("log")
ax.set_xlabel("relative error against central differences")
ax.legend(fontsize=8)
ax.set_title("one encoder layer: every array checked, the broken one stands out")
fig.tight_layout()
plt.show()

# %% [markdown]
# (`input:1` is the relative table: its gradient comes back from every position term of the attention.) The
# weights here have std 0.3, not 0.02: with fresh weights attention is nearly uniform and the position and
# query gradients are so small that round-off, not the backward, would decide the check (notebook 08, on the
# Enhanced Mask Decoder, runs into this).
#
# ## Questions
#
# 1. A backward that is off by a factor 1.0000001 on one array: would `check_backward` catch it? What would
#    you change to catch it (dtype? $h$? a one-sided or a higher-order difference)?
# 2. Why does section 2's float32 curve stop at the left instead of growing on like $\epsilon/h$? (What is
#    `x + h` in float32 when $h$ is below the spacing of floats near $x$? Look at `step`, the step actually taken.)
# 3. Exercises: `python -m minideberta exercises check ops.layer_norm_backward` runs this kind of check on your
#    own backward; so does every other id of `python -m minideberta exercises list`.
