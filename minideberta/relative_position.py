"""Relative positions: which row of the relative-embedding table each (query, key) pair uses.

DeBERTa encodes where token j sits relative to token i by the distance delta = i - j. From v2 on,
far distances share rows through log buckets, as T5 does (the DeBERTa-v2 notes in the README of
Microsoft's DeBERTa repository: "apply bucket to encode relative positions"; the function is
``make_log_bucket_position`` there and in transformers): distances within +-bucket_size/2 keep
their own row, longer ones are compressed logarithmically up to ``max_position``.

Because the row depends on i - j only, the attention code never builds an (N, N) index. It
scores each query against the 2N-1 distances N-1, ..., -(N-1) and reads the (N, N) scores off
that table with a strided view (``rel_to_abs``), the relative-shift trick of Transformer-XL.
Everything here is integer arithmetic: there is no backward.
"""
import numpy as np

from .backend import get_xp


def make_log_bucket_position(relative_pos, bucket_size, max_position):
    """Map signed distances to signed buckets: identity for |d| <= bucket_size//2, log-spaced beyond.

    Computed in float64, as Microsoft's original code does with NumPy.
    """
    xp = get_xp(relative_pos)
    mid = bucket_size // 2
    sign = xp.sign(relative_pos)
    # Distances inside the linear zone are replaced by mid-1 only to keep the log finite; they are
    # overwritten by the identity below.
    abs_pos = xp.where((relative_pos < mid) & (relative_pos > -mid), mid - 1, abs(relative_pos))
    log_pos = xp.ceil(xp.log(abs_pos / mid) / np.log((max_position - 1) / mid) * (mid - 1)) + mid
    return xp.where(abs_pos <= mid, relative_pos, log_pos * sign).astype(xp.int64)


def build_relative_position(query_size, key_size, bucket_size=-1, max_position=-1, xp=np):
    """The (query_size, key_size) matrix of (bucketed) distances i - j, as transformers builds it."""
    relative = xp.arange(query_size)[:, None] - xp.arange(key_size)[None, :]
    if bucket_size > 0 and max_position > 0:
        relative = make_log_bucket_position(relative, bucket_size, max_position)
    return relative.astype(xp.int64)


def relative_index_tables(n, config, xp=np):
    """Rows of the relative-embedding table for the 2n-1 distances n-1, n-2, ..., -(n-1).

    Returns ``(c2p_rows, p2c_rows)``, each of shape (2n-1,). Column m of the score tables stands
    for the distance delta = n-1-m. content->position looks up row clip(bucket(delta) + k);
    position->content, which measures the distance from the key's side, row clip(-bucket(delta) + k).
    k is ``config.position_span``; the table has 2k rows, so the clip keeps far distances on its edges.
    Both are monotone in m (buckets grow with the distance), which the attention relies on.
    """
    delta = xp.arange(n - 1, -n, -1)  # (2n-1,)
    if config.position_buckets > 0:
        delta = make_log_bucket_position(delta, config.position_buckets, config.max_relative)
    k = config.position_span
    return xp.clip(delta + k, 0, 2 * k - 1), xp.clip(-delta + k, 0, 2 * k - 1)


def rel_to_abs(table):
    """View a (..., N, 2N-1) table of scores by relative distance as (..., N, N) scores by key.

    ``out[..., i, j] = table[..., i, j - i + N - 1]``: row i read along a diagonal band. No copy
    is made, and writing into the view writes into ``table`` (the backward uses that). A speed
    device: ``rel_to_abs_gather`` below is the same read written as the gather it is.
    """
    *lead, n, width = table.shape
    if width != 2 * n - 1:
        raise ValueError(f"expected a (..., {n}, {2 * n - 1}) table of relative scores, got shape {table.shape}")
    xp = get_xp(table)
    *lead_strides, row, col = table.strides
    return xp.lib.stride_tricks.as_strided(table[..., n - 1:], shape=(*lead, n, n),
                                           strides=(*lead_strides, row - col, col))


def rel_to_abs_gather(table):
    """The definition of ``rel_to_abs`` as a plain gather (a copy): ``out[..., i, j] = table[..., i, j - i + N - 1]``.

    ``rel_to_abs`` reads the same entries through a strided view, without copying; the tests compare the two.
    """
    *lead, n, width = table.shape
    if width != 2 * n - 1:
        raise ValueError(f"expected a (..., {n}, {2 * n - 1}) table of relative scores, got shape {table.shape}")
    xp = get_xp(table)
    i, j = xp.arange(n)[:, None], xp.arange(n)[None, :]
    column = xp.broadcast_to(j - i + n - 1, (*lead, n, n))  # (..., N, N): the distance column of each pair
    return xp.take_along_axis(table, column, axis=-1)


def query_rows_index(positions, heads):
    """Index of the rows of K chosen queries in a (B, H, N, ...) array: ``a[query_rows_index(P, H)]`` is
    (B, H, K, ...), row k of batch b being row ``P[b, k]``. positions (B, K) int."""
    xp = get_xp(positions)
    batch = xp.arange(len(positions))[:, None, None]  # (B, 1, 1)
    head = xp.arange(heads)[None, :, None]  # (1, H, 1)
    return batch, head, positions[:, None, :]  # broadcast to (B, H, K)


def rel_to_abs_rows_index(positions, heads, n):
    """Index that reads scores of K queries at ``positions`` (B, K) by key out of their (B, H, K, 2N-1)
    table by distance: ``table[index][b, h, k, j] = table[b, h, k, j - P[b, k] + N - 1]`` (B, H, K, N).

    ``rel_to_abs`` for queries that are not the N tokens in order (the Enhanced Mask Decoder's rows);
    with P = 0..N-1 it reads the same entries. Writing ``d[index] = ...`` is its backward: a query's
    keys sit at distinct distances, so no entry is written twice.
    """
    xp = get_xp(positions)
    batch, k = positions.shape
    column = xp.arange(n)[None, None, :] - positions[:, :, None] + n - 1  # (B, K, N): the distance column of each pair
    return (xp.arange(batch)[:, None, None, None], xp.arange(heads)[None, :, None, None],
            xp.arange(k)[None, None, :, None], column[:, None])  # broadcast to (B, H, K, N)


def used_rows(n, config):
    """``(lo, hi)``, host ints: the 2n-1 distances read rows lo..hi-1 of the relative table and no others.

    The rows are monotone in the distance, so they lie in one run (log buckets can leave a row
    inside it unread, where buckets grow faster than distances); c2p and p2c read the same run,
    as their rows mirror each other around k. v3 (k = 256) at n = 128: rows 129..383, 255 of 512.
    """
    c2p, p2c = relative_index_tables(n, config)  # NumPy: two (2n-1,) arrays of small ints
    return int(min(c2p.min(), p2c.min())), int(max(c2p.max(), p2c.max())) + 1
