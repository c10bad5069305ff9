"""Relative positions against transformers: log buckets, distance matrices and index tables.

Proves, with exact integer equality:
- ``make_log_bucket_position`` and ``build_relative_position`` equal transformers' functions on
  many (bucket_size, max_position) pairs and distances up to 20000 (fixed pairs and hypothesis);
  that ours is exact where transformers' float32 is not (the exactness itself, and used_rows and
  rel_to_abs: tests/unit/test_relative_position.py);
- ``relative_index_tables`` gives, for every (query, key) pair, the table row transformers
  gathers for c2p and p2c (its (N, N) ``c2p_pos``/``p2c_pos``), clipping included.
"""
import contextlib

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers.models.deberta_v2 import modeling_deberta_v2 as hf

from exact_buckets import exact_bucket
from minideberta import DebertaV2Config
from minideberta.relative_position import build_relative_position, make_log_bucket_position, relative_index_tables

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
