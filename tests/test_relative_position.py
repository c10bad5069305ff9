"""Relative positions: log buckets, distance matrices, index tables and the rel_to_abs view.

Proves, with exact integer equality:
- ``make_log_bucket_position`` and ``build_relative_position`` equal transformers' functions on
  many (bucket_size, max_position) pairs and distances up to 20000 (fixed pairs and hypothesis);
  that it is exact (equal to a 50-digit Decimal computation) where transformers' float32 is not;
- ``relative_index_tables`` gives, for every (query, key) pair, the table row transformers
  gathers for c2p and p2c (its (N, N) ``c2p_pos``/``p2c_pos``), clipping included;
- ``used_rows`` is the run of table rows the distances read: every row read lies in it and both
  its ends are read (v3 at N = 128: rows 129..383);
- ``rel_to_abs`` is the view out[..., i, j] = table[..., i, j - i + N - 1]: no copy, writes go
  through, any strides, and a clear error for a table of the wrong width.
"""
import contextlib
import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers.models.deberta_v2 import modeling_deberta_v2 as hf

from minideberta import DebertaV2Config
from minideberta.relative_position import (
    build_relative_position,
    make_log_bucket_position,
    rel_to_abs,
    rel_to_abs_gather,
    relative_index_tables,
    used_rows,
)

DISTANCES = np.arange(-20000, 20001)
PAIRS = [(256, 512), (256, 1024), (16, 512), (8, 64), (8, 32), (32, 128), (6, 20), (7, 31), (15, 100),
         (64, 1000), (4, 8), (512, 4096), (200, 150)]


@contextlib.contextmanager
def torch_float64_default():
    """transformers computes the bucket logarithms in torch's default dtype (float32), which
    rounds some ceil() the wrong way (see test_transformers_float32_quirk); in float64 its
    arithmetic is Microsoft's (NumPy float64) and minideberta's."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def hf_buckets(distances, bucket_size, max_position):
    with torch_float64_default():
        return hf.make_log_bucket_position(torch.from_numpy(distances), bucket_size, max_position).long().numpy()


def exact_bucket(d, bucket_size, max_position):
    """The bucket of distance d computed with 50 significant digits."""
    getcontext().prec = 50
    mid = bucket_size // 2
    if abs(d) <= mid:
        return d
    log = (Decimal(abs(d)) / mid).ln() / (Decimal(max_position - 1) / mid).ln() * (mid - 1)
    return int(math.copysign(math.ceil(log) + mid, d))


@pytest.mark.parametrize("bucket_size, max_position", PAIRS, ids=[f"{b}-{m}" for b, m in PAIRS])
def test_log_buckets_equal_transformers(bucket_size, max_position):
    ours = make_log_bucket_position(DISTANCES, bucket_size, max_position)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, hf_buckets(DISTANCES, bucket_size, max_position))
    mid = bucket_size // 2
    inside = np.abs(DISTANCES) <= mid
    np.testing.assert_array_equal(ours[inside], DISTANCES[inside])  # identity near the diagonal
    np.testing.assert_array_equal(ours, -ours[::-1])  # odd: bucket(-d) = -bucket(d)
    assert np.all(np.diff(ours) >= 0)  # monotone
    if max_position > mid + 1:
        reachable = np.abs(DISTANCES) < max_position
        assert np.abs(ours[reachable]).max() <= 2 * mid - 1  # 2*mid - 1 rows cover up to max_position


@settings(max_examples=40, deadline=None)
@given(bucket_size=st.integers(4, 600), max_position=st.integers(2, 6000))
def test_log_buckets_equal_transformers_random_pairs(bucket_size, max_position):
    assume(max_position - 1 != bucket_size // 2)  # log(1) = 0 divides by zero in both
    np.testing.assert_array_equal(make_log_bucket_position(DISTANCES, bucket_size, max_position),
                                  hf_buckets(DISTANCES, bucket_size, max_position))


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


def test_official_buckets_equal_transformers_in_its_own_float32():
    """For the released checkpoints' (256, 512) transformers' float32 arithmetic gives the same buckets."""
    theirs = hf.make_log_bucket_position(torch.from_numpy(DISTANCES), 256, 512).long().numpy()
    np.testing.assert_array_equal(make_log_bucket_position(DISTANCES, 256, 512), theirs)


def test_transformers_float32_quirk():
    """Where log(d/mid) / log((max-1)/mid) * (mid-1) lies just above an integer, float32 rounds it
    down onto the integer and transformers' ceil() gives one bucket less; minideberta is exact."""
    d = np.array([1643, 6395, -1643])
    theirs = hf.make_log_bucket_position(torch.from_numpy(d), 512, 4096).long().numpy()
    exact = [exact_bucket(int(x), 512, 4096) for x in d]
    np.testing.assert_array_equal(make_log_bucket_position(d, 512, 4096), exact)
    np.testing.assert_array_equal(theirs, np.array(exact) - np.sign(d))


@pytest.mark.parametrize("query_size, key_size, bucket_size, max_position", [
    (5, 5, -1, -1), (7, 3, -1, -1), (3, 9, -1, -1), (40, 40, 16, 512), (300, 300, 256, 512), (30, 50, 8, 32)])
def test_build_relative_position_equals_transformers(query_size, key_size, bucket_size, max_position):
    ours = build_relative_position(query_size, key_size, bucket_size, max_position)
    with torch_float64_default():
        theirs = hf.build_relative_position(torch.zeros(query_size, 1), torch.zeros(key_size, 1),
                                            bucket_size, max_position)
    assert ours.dtype == np.int64 and ours.shape == (query_size, key_size)
    np.testing.assert_array_equal(ours, theirs[0].numpy())


TABLE_CASES = {  # id -> (config keywords, N)
    "buckets=256,N=300": ({"position_buckets": 256}, 300),
    "buckets=16,N=60": ({"position_buckets": 16}, 60),
    "buckets=8,max_relative=32,N=53": ({"position_buckets": 8, "max_relative_positions": 32}, 53),
    "max_relative=8,N=30": ({"max_relative_positions": 8}, 30),
    "span=max_position_embeddings=32,N=50": ({"max_position_embeddings": 32, "position_biased_input": False}, 50),
    "N=1": ({"position_buckets": 256}, 1),
}


@pytest.mark.parametrize("case", TABLE_CASES)
def test_relative_index_tables_match_transformers_gather_indices(case):
    keywords, n = TABLE_CASES[case]
    config = DebertaV2Config(relative_attention=True, hidden_size=32, num_attention_heads=2, **keywords)
    k = config.position_span
    with torch_float64_default():
        rel = hf.build_relative_position(torch.zeros(n, 1), torch.zeros(n, 1), config.position_buckets,
                                         config.max_relative)[0].numpy()
    c2p_pos = np.clip(rel + k, 0, 2 * k - 1)  # transformers: the row for score (i, j)
    p2c_pos = np.clip(-rel + k, 0, 2 * k - 1).T  # gathered from the key's side, then transposed
    c2p_rows, p2c_rows = relative_index_tables(n, config)
    assert c2p_rows.shape == p2c_rows.shape == (2 * n - 1,)
    i, j = np.indices((n, n))
    # Column m of minideberta's tables stands for the distance n-1-m: score (i, j) of c2p reads
    # column j - i + n - 1 of query row i, p2c column i - j + n - 1 of key row j.
    np.testing.assert_array_equal(c2p_rows[j - i + n - 1], c2p_pos)
    np.testing.assert_array_equal(p2c_rows[i - j + n - 1], p2c_pos)
    if n > 1:
        assert c2p_rows.min() >= 0 and c2p_rows.max() <= 2 * k - 1


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
