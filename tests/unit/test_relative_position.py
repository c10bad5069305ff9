"""Relative positions without a reference library: exact log buckets, the index rows, used_rows, rel_to_abs.

Proves, with exact integer equality:
- ``make_log_bucket_position`` is exact (equal to a 50-digit Decimal computation);
- the index rows are monotone in the distance, and ``used_rows`` is the run of table rows the
  distances read: every row read lies in it and both its ends are read (v3 at N = 128: rows 129..383);
- ``rel_to_abs`` is the view out[..., i, j] = table[..., i, j - i + N - 1]: no copy, writes go
  through, any strides, the same entries as the plain gather ``rel_to_abs_gather``, and a clear
  error for a table of the wrong width.
Agreement with transformers' own functions: tests/parity/test_relative_position_hf.py.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exact_buckets import exact_bucket
from minideberta import DebertaV2Config
from minideberta.relative_position import (
    make_log_bucket_position,
    rel_to_abs,
    rel_to_abs_gather,
    relative_index_tables,
    used_rows,
)


@settings(max_examples=200, deadline=None)
@given(bucket_size=st.integers(4, 600), max_position=st.integers(4, 6000), d=st.integers(-20000, 20000))
def test_log_buckets_are_exact(bucket_size, max_position, d):
    mid = bucket_size // 2
    assume(max_position - 1 > mid)
    if abs(d) > mid:  # a value within float64 rounding of an integer could go either way
        log = math.log(abs(d) / mid) / math.log((max_position - 1) / mid) * (mid - 1)
        assume(abs(log - round(log)) > 1e-9)
    assert make_log_bucket_position(np.array([d]), bucket_size, max_position)[0] == exact_bucket(d, bucket_size,
                                                                                                 max_position)


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_rel_to_abs_reads_the_diagonal_band(n):
    table = np.random.default_rng(n).normal(size=(2, 3, n, 2 * n - 1))
    out = rel_to_abs(table)
    assert out.shape == (2, 3, n, n)
    assert np.shares_memory(out, table)  # a view, not a copy
    for i in range(n):
        for j in range(n):
            np.testing.assert_array_equal(out[..., i, j], table[..., i, j - i + n - 1])


def test_rel_to_abs_writes_go_through():
    n = 6
    table = np.zeros((2, n, 2 * n - 1))
    values = np.random.default_rng(0).normal(size=(2, n, n))
    rel_to_abs(table)[...] = values
    used = np.zeros(table.shape, dtype=bool)
    for i in range(n):
        for j in range(n):
            np.testing.assert_array_equal(table[:, i, j - i + n - 1], values[:, i, j])
            used[:, i, j - i + n - 1] = True
    assert np.all(table[~used] == 0)  # entries outside the band untouched


def test_rel_to_abs_any_strides():
    n = 5
    base = np.random.default_rng(1).normal(size=(3, 4 * n - 2, n)).transpose(0, 2, 1)
    table = base[..., ::2]  # (3, n, 2n-1), neither contiguous nor unit-stride
    out = rel_to_abs(table)
    for i in range(n):
        for j in range(n):
            np.testing.assert_array_equal(out[:, i, j], table[:, i, j - i + n - 1])


@pytest.mark.parametrize("shape", [(4, 8), (2, 4, 6), (3, 3, 3)], ids=str)
def test_rel_to_abs_rejects_wrong_width(shape):
    with pytest.raises(ValueError, match=r"2N-1|expected a \(\.\.\., \d+, \d+\) table"):
        rel_to_abs(np.zeros(shape))
    with pytest.raises(ValueError, match=r"expected a \(\.\.\., \d+, \d+\) table"):
        rel_to_abs_gather(np.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 5, 9), (2, 2, 7, 13)], ids=str)
def test_the_strided_view_equals_the_plain_gather(shape):
    """rel_to_abs (the speed device: a view) reads exactly what its definition, the gather, reads."""
    table = np.random.default_rng(len(shape)).normal(size=shape)
    view, gathered = rel_to_abs(table), rel_to_abs_gather(table)
    assert view.shape == gathered.shape == (*shape[:-1], shape[-2])
    assert np.array_equal(view, gathered) and not np.shares_memory(gathered, table)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(1, 700), buckets=st.sampled_from([-1, 4, 8, 16, 256]), max_relative=st.sampled_from([-1, 6, 64, 512]))
def test_index_rows_are_monotone_in_the_distance(n, buckets, max_relative):
    """attention.position_projection_* project each run of equal rows once: runs must be contiguous."""
    effective = max_relative if max_relative >= 1 else 512  # max_position_embeddings
    assume(buckets < 0 or effective > buckets // 2 + 1)  # otherwise the config is refused (test_config.py)
    config = DebertaV2Config(hidden_size=8, num_attention_heads=2, relative_attention=True,
                             position_buckets=buckets, max_relative_positions=max_relative)
    c2p, p2c = relative_index_tables(n, config)
    assert (np.diff(c2p) <= 0).all() and (np.diff(p2c) >= 0).all()


@pytest.mark.parametrize("buckets,max_relative,n", [(256, -1, 128), (256, -1, 300), (256, -1, 1), (-1, 8, 53),
                                                    (-1, -1, 40), (16, 512, 100), (200, 150, 180), (8, 32, 7)])
def test_used_rows_is_the_run_the_distances_read(buckets, max_relative, n):
    config = DebertaV2Config(vocab_size=10, hidden_size=8, num_attention_heads=2, max_position_embeddings=512,
                             relative_attention=True, position_buckets=buckets, max_relative_positions=max_relative)
    lo, hi = used_rows(n, config)
    read = np.concatenate(relative_index_tables(n, config))
    assert isinstance(lo, int) and isinstance(hi, int)
    assert read.min() == lo and read.max() == hi - 1
    if buckets == 256 and n == 128:
        assert (lo, hi) == (129, 384) and 2 * config.position_span == 512


def test_rel_to_abs_rows_index_reads_each_query_at_its_own_position():
    """All N positions in order: rel_to_abs's entries; a few rows out of order: the same rows of it."""
    from minideberta.relative_position import rel_to_abs_rows_index

    b, h, n = 2, 3, 5
    table = np.random.default_rng(0).normal(size=(b, h, n, 2 * n - 1))
    everyone = np.broadcast_to(np.arange(n), (b, n))
    np.testing.assert_array_equal(table[rel_to_abs_rows_index(everyone, h, n)], rel_to_abs(table))
    rows = np.array([[4, 0], [2, 3]])  # (B, K): two queries a sequence, anywhere
    picked = table[np.arange(b)[:, None], :, rows].transpose(0, 2, 1, 3)  # (B, H, K, 2N-1): their rows of the table
    expected = rel_to_abs(table)[np.arange(b)[:, None], :, rows].transpose(0, 2, 1, 3)  # (B, H, K, N)
    np.testing.assert_array_equal(picked[rel_to_abs_rows_index(rows, h, n)], expected)
