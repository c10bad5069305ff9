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
# # 5. Relative positions and log buckets
#
# BERT adds a position vector to each token before attention. DeBERTa never asks *where* a token is,
# only *how far* the key is from the query:
#
# $$\delta(i, j) = i - j \qquad (\text{query } i,\ \text{key } j;\ \delta > 0: \text{the key is to the left}).$$
#
# Each distance picks a row of a learned table of relative embeddings, which notebook 06 projects
# into the attention. Far distances share rows through *log buckets*. With $m$ = `bucket_size // 2`
# and $\delta_{\max}$ = `max_position` (the largest distance the buckets are laid out for):
#
# $$
# \operatorname{bucket}(\delta) = \begin{cases} \delta & |\delta| \le m \\
#   \operatorname{sign}(\delta)\left(m + \left\lceil \dfrac{\log(|\delta| / m)}{\log((\delta_{\max} - 1) / m)}\,(m - 1)\right\rceil\right)
#   & |\delta| > m \end{cases}
# $$
#
# Keep `minideberta/relative_position.py` open beside this notebook: everything here is integer
# arithmetic, so there is no backward, only index bookkeeping that is easy to get subtly wrong.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

from minideberta import DebertaV2Config
from minideberta.apps import course
from minideberta.relative_position import (
    build_relative_position,
    make_log_bucket_position,
    rel_to_abs,
    relative_index_tables,
)

np.set_printoptions(linewidth=120)

# %% [markdown]
# ## 1. The bucket curve
#
# The official v3 models use `position_buckets=256` and relative distances up to 512 (so $m = 128$,
# $\delta_{\max} = 512$): linear up to 128, logarithmic after, and $\delta_{\max} - 1 = 511$ lands on bucket
# `bucket_size - 1` = 255. First the formula above written out naively, one distance at a time with
# Python's `math`, against the library's vectorised `make_log_bucket_position`:

# %%
def naive_bucket(delta, bucket_size, max_position):
    m = bucket_size // 2
    if abs(delta) <= m:
        return delta
    steps = math.ceil(math.log(abs(delta) / m) / math.log((max_position - 1) / m) * (m - 1))
    return int(math.copysign(m + steps, delta))


distances = np.arange(-2000, 2001)
buckets = make_log_bucket_position(distances, bucket_size=256, max_position=512)
assert all(buckets[k] == naive_bucket(int(d), 256, 512) for k, d in enumerate(distances))

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(distances, distances, color="0.8", lw=1, label="no buckets (identity)")
ax.plot(distances, buckets, lw=2, label="make_log_bucket_position(d, 256, 512)")
for x in (-128, 128):
    ax.axvline(x, color="0.5", ls="--", lw=1)
for x in (-511, 511):
    ax.axvline(x, color="0.5", ls=":", lw=1)
ax.set_ylim(-400, 400)
ax.set_xlabel("distance i - j")
ax.set_ylabel("bucket")
ax.set_title("linear for |d| <= 128 (dashed), logarithmic after; d = 511 (dotted) -> 255")
ax.legend(loc="upper left")
plt.show()

for d in (1, 127, 128, 129, 200, 300, 511, 1000, 2000):
    print(f"distance {d:5d} -> bucket {make_log_bucket_position(np.array(d), 256, 512):4d}")

# %% [markdown]
# What the curve shows, checked: the identity up to $|\delta| = 128$, bucket 255 at $\delta = 511$,
# odd symmetry, never decreasing, and past $\delta_{\max}$ the buckets keep growing, slowly: 1000 lands on 317.
# The official v3 table has only 2 × 256 = 512 rows, so the attention clips the row index (section 4).

# %%
v3 = course.official_config("microsoft/deberta-v3-base")
assert (v3.position_buckets, v3.max_relative, 2 * v3.position_span) == (256, 512, 512)
linear = np.abs(distances) <= 128
assert (buckets[linear] == distances[linear]).all()
assert make_log_bucket_position(np.array(511), 256, 512) == 255 == naive_bucket(511, 256, 512)
assert make_log_bucket_position(np.array(1000), 256, 512) == 317 == naive_bucket(1000, 256, 512)
assert (make_log_bucket_position(-distances, 256, 512) == -buckets).all()
assert (np.diff(buckets) >= 0).all()

# %% [markdown]
# ## 2. The (N, N) distance and bucket matrices
#
# `build_relative_position(N, N)` is the matrix $\delta(i, j) = i - j$. On a short text with 256
# buckets every distance is in the linear zone and the compression is invisible. With small buckets
# it shows at once: `bucket_size=8`, `max_position=32`, $N = 16$ (so $m = 4$).

# %%
N = 16
raw = build_relative_position(N, N)
bucketed = build_relative_position(N, N, bucket_size=8, max_position=32)

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, m, name in zip(axes, (raw, bucketed), ("i - j", "buckets (bucket_size=8, max_position=32)")):
    im = ax.imshow(m, cmap="RdBu_r", vmin=-N, vmax=N)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, v, ha="center", va="center", fontsize=6)
    ax.set_title(name)
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# Both matrices are constant along every diagonal (Toeplitz): the entry depends on $i - j$ only.
# Beyond $|i - j| = 4$ neighbouring diagonals merge (distances 4 to 9 get 4, 5, 5, 5, 6, 6), and 31 = $\delta_{\max} - 1$ would land on
# bucket 7. Bucket bugs only show there, past `position_buckets // 2`.

# %%
for m in (raw, bucketed):
    for offset in range(-N + 1, N):
        assert len(set(np.diagonal(m, offset))) == 1        # one value per diagonal
assert (raw == np.subtract.outer(np.arange(N), np.arange(N))).all()
assert (bucketed[np.abs(raw) <= 4] == raw[np.abs(raw) <= 4]).all()
assert [bucketed[d, 0] for d in range(4, 10)] == [4, 5, 5, 5, 6, 6]        # distances 4 to 9 (column 0: key 0)
assert make_log_bucket_position(np.array(31), 8, 32) == 7

# %% [markdown]
# ## 3. The $2N - 1$ band: scores by distance read as scores by key, `rel_to_abs`
#
# Because the row depends on $i - j$ only, there are just $2N - 1$ distinct distances
# ($N-1, \dots, -(N-1)$). minideberta scores every query against each distance once, an
# $(N, 2N-1)$ table whose column $m$ stands for the distance $N - 1 - m$, then reads the $(N, N)$
# scores by key off that table:
#
# $$\text{by_key}[i, j] = \text{table}[i,\ j - i + N - 1].$$
#
# A tiny example, $N = 4$, each entry of the table its own flat position:

# %%
N = 4
by_distance = np.arange(N * (2 * N - 1)).reshape(N, 2 * N - 1)   # (N, 2N-1): query i, distance column m
by_key = rel_to_abs(by_distance)                                  # (N, N):    query i, key j
print("table by distance (columns: distance", list(range(N - 1, -N, -1)), ")")
print(by_distance)
print("read by key:")
print(by_key)
for i in range(N):
    for j in range(N):
        assert by_key[i, j] == by_distance[i, j - i + N - 1]

# %% [markdown]
# The columns mean what they say: a table that holds each column's own distance, read by key,
# is exactly the distance matrix of section 2.
#
# `rel_to_abs` copies nothing: it is a strided *view* (`np.lib.stride_tricks.as_strided`) that starts
# at column $N - 1$ and steps one row *minus one column* per query. Writing through the view writes
# into the table, which is how `attention.backward` scatters the $(N, N)$ gradient of the scores back
# onto the $(N, 2N-1)$ table. The picture: which entries of a larger table the view touches, a
# diagonal band of width $N$ in an $(N, 2N-1)$ table.

# %%
column_distance = np.tile(np.arange(N - 1, -N, -1), (N, 1))   # (N, 2N-1): entry = the distance of its column
assert (rel_to_abs(column_distance) == build_relative_position(N, N)).all()
assert np.shares_memory(by_key, by_distance) and not by_key.flags.owndata
itemsize = by_distance.itemsize
assert by_key.strides == ((2 * N - 1) * itemsize - itemsize, itemsize)   # one row minus one column

N = 12
touched = np.zeros((N, 2 * N - 1), dtype=np.int64)
rel_to_abs(touched)[...] += 1            # what the backward does with the (N, N) gradient
fig, ax = plt.subplots(figsize=(8, 4))
ax.imshow(touched, cmap="Greys", vmin=0, vmax=1.5)
ax.set_xticks(range(0, 2 * N - 1, 2), [str(N - 1 - m) for m in range(0, 2 * N - 1, 2)])
ax.set_xlabel("column m (labelled with its distance N - 1 - m)")
ax.set_ylabel("query i")
ax.set_title(f"the entries rel_to_abs reads: N = {N}, every row N of the 2N-1 columns")
plt.show()
assert (touched.sum(axis=1) == N).all() and touched.max() == 1

# %% [markdown]
# ## 4. Which row of the relative-embedding table each column uses
#
# The table has $2k$ rows ($k$ = `config.position_span`, the number of buckets). For c2p, column $m$
# (distance $\delta = N-1-m$) uses row $\operatorname{clip}(\operatorname{bucket}(\delta) + k, 0, 2k-1)$.
# The p2c term is scored from the key's side (a row of its table is a key), so its columns are the
# distances $j - i$ and it uses $\operatorname{clip}(-\operatorname{bucket}(\delta) + k, 0, 2k - 1)$.
# `relative_index_tables(N, config)` returns both; with 8 buckets and $N = 12$ the far distances
# share rows. (The clip only bites for a table smaller than the buckets: exercise 1's last part.)

# %%
config = DebertaV2Config(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64, relative_attention=True,
                         position_buckets=8, pos_att_type="p2c|c2p", share_att_key=True)
N, k = 12, config.position_span
c2p_rows, p2c_rows = relative_index_tables(N, config)
print("distance of each column:", np.arange(N - 1, -N, -1))
print("c2p rows:               ", c2p_rows)
print("p2c rows:               ", p2c_rows)

delta = build_relative_position(N, N, config.position_buckets, config.max_relative)      # (N, N) buckets of i - j
assert (rel_to_abs(np.tile(c2p_rows, (N, 1))) == np.clip(delta + k, 0, 2 * k - 1)).all()
assert (c2p_rows + p2c_rows == 2 * k).all()        # no clip needed here: |bucket| < k, so the two are mirror images
assert (np.diff(c2p_rows) <= 0).all() and (np.diff(p2c_rows) >= 0).all()          # monotone in m
assert c2p_rows.min() >= 0 and p2c_rows.max() <= 2 * k - 1

# %% [markdown]
# ## Questions and exercises
#
# 1. With `bucket_size=256`, `max_position=512`, which is the smallest distance whose bucket is not
#    its own? Which distances share bucket 200? (Answer with `make_log_bucket_position`, then check the
#    formula by hand.) Then set `max_relative_positions=16` with `position_buckets=-1` in the config of
#    section 4 and $N = 30$: which columns hit the table's edges?
# 2. Write `make_log_bucket_position` and `rel_to_abs` yourself:
#    `python -m minideberta exercises check relative_position.make_log_bucket_position` and
#    `python -m minideberta exercises check relative_position.rel_to_abs` tell you whether they agree
#    with the library, and by how much they are off.
