"""blocks.py: by_row_blocks computes f on blocks of rows and gives the whole-array call's bits.

Proves: for elementwise functions and for functions that reduce along the last axis, with inputs
of the output's shape and (D,) vectors passed whole, the blocked result is bit-identical to one
call on the whole arrays, for any shape and any block budget; f is called once per block of
``rows_per_block`` rows (once in all on a small array and on the device); a non-contiguous
``out`` and an input of another shape are refused with a message. GELU's forward and backward,
the two uses (ops.py), give the bits of their plain whole-array formulas on arrays of many blocks.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minideberta import backend, ops
from minideberta.blocks import BLOCK_BYTES, by_row_blocks, rows_per_block

import fakecupy


def layer_norm_like(x, w, out):  # reduces along the last axis, then scales by a (D,) vector
    np.subtract(x, x.mean(axis=-1, keepdims=True), out=out)
    out /= np.sqrt((out * out).mean(axis=-1, keepdims=True) + 1e-7)
    out *= w
    return out


def softmax_like(x, dy, out):  # two row inputs
    np.exp(x - x.max(axis=-1, keepdims=True), out=out)
    out /= out.sum(axis=-1, keepdims=True)
    out *= dy
    return out


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple),
       budget=st.integers(1, 2000), dtype=st.sampled_from([np.float32, np.float64]))
def test_blocked_equals_whole_bit_for_bit(shape, budget, dtype):
    rng = np.random.default_rng(sum(shape) + budget)
    x, dy = rng.normal(size=shape).astype(dtype), rng.normal(size=shape).astype(dtype)
    w = rng.normal(size=shape[-1]).astype(dtype)
    for f, args in ((layer_norm_like, (x, w)), (softmax_like, (x, dy)), (lambda x, out: np.tanh(x, out=out), (x,))):
        whole = f(*args, out=np.empty_like(x))
        out = np.empty_like(x)
        assert by_row_blocks(f, out, *args, budget=budget) is out
        assert np.array_equal(out, whole)


def test_one_call_per_block_of_rows():
    x = np.ones((3, 10, 64), dtype=np.float32)  # 30 rows of 256 bytes
    calls = []

    def f(x, out):
        calls.append(x.shape)
        np.copyto(out, x)
        return out

    by_row_blocks(f, np.empty_like(x), x, budget=7 * 256)
    assert rows_per_block(256, 7 * 256) == 7
    assert calls == [(7, 64)] * 4 + [(2, 64)]  # 30 rows = 4 blocks of 7 and one of 2, each (rows, D)
    calls.clear()
    by_row_blocks(f, np.empty_like(x), x)  # 7.5 KiB: one block under the default budget
    assert calls == [(3, 10, 64)]


def test_a_block_of_a_v3_base_ffn_activation_fits_the_stated_budget():
    rows = rows_per_block(3072 * 4)  # float32 (..., 3072)
    assert rows == 21 and rows * 3072 * 4 <= BLOCK_BYTES < (rows + 1) * 3072 * 4


def test_bad_out_and_bad_inputs_are_refused():
    x = np.ones((40, 4096), dtype=np.float32)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        by_row_blocks(lambda x, out: out, np.empty((4096, 40), dtype=np.float32).T, x)
    with pytest.raises(ValueError, match=r"an input of shape \(2, 4096\) is neither"):
        by_row_blocks(lambda x, y, out: out, np.empty_like(x), x, np.ones((2, 4096), dtype=np.float32))


def test_on_the_device_f_runs_once_on_the_whole_arrays():
    backend.use_device_module("fakecupy")  # CuPy's rules, simulated on the CPU (tests/fakecupy)
    try:
        x = fakecupy.asarray(np.ones((64, 4096), dtype=np.float32))
        calls = []
        by_row_blocks(lambda x, out: calls.append(x.shape) or out, fakecupy.empty_like(x), x, budget=4096)
        assert calls == [(64, 4096)]
    finally:
        backend.use_device_module("cupy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_forward_and_backward_are_their_plain_formulas_bit_for_bit(dtype):
    """(300, 3072): 15 blocks in float32, 29 in float64, the last one short."""
    rng = np.random.default_rng(3)
    x, dy = (rng.normal(size=(300, 3072)) * 3).astype(dtype), rng.normal(size=(300, 3072)).astype(dtype)
    y, cache = ops.gelu_forward(x)
    plain = ops.normal_cdf(x, out=np.empty_like(x))
    plain *= x
    assert y.dtype == dtype and np.array_equal(y, plain)
    dx = ops.gelu_backward(dy, cache)
    pdf = np.exp(x * x * dtype(-0.5)) * x * dtype(1 / math.sqrt(2 * math.pi))
    plain = (ops.normal_cdf(x, out=np.empty_like(x)) + pdf) * dy
    assert dx.dtype == dtype and np.array_equal(dx, plain)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (2, 0, 4)], ids=str)
def test_empty_arrays_go_through_as_whole(shape):
    x = np.full(shape, 0.5)
    y, cache = ops.gelu_forward(x)
    assert y.shape == shape and np.array_equal(y, x * ops.normal_cdf(x, out=np.empty_like(x)))
    assert ops.gelu_backward(np.ones(shape), cache).shape == shape
