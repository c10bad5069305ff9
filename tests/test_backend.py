"""backend.py: the array module, the float32 erf and the row blocks spread over the cores."""
import threading

import numpy as np
import pytest
import scipy.special

from minideberta import backend
from minideberta.backend import erf, for_row_blocks, get_xp, to_numpy


def test_numpy_arrays_get_numpy():
    assert get_xp(np.zeros(3), 1.0) is np
    a = np.arange(3)
    assert to_numpy(a) is a


def test_erf_float64_is_scipy_exactly():
    x = np.linspace(-7, 7, 10001)
    assert np.array_equal(erf(x), scipy.special.erf(x))


def test_erf_float32_error_is_below_its_stated_bound():
    """The rational approximation stays within 7e-7 of the exact erf (float32 spacing at 1: 6e-8)."""
    x = np.linspace(-8, 8, 2_000_001, dtype=np.float32)
    y = erf(x)
    assert y.dtype == np.float32
    exact = scipy.special.erf(x.astype(np.float64))
    assert np.abs(y - exact).max() < 7e-7
    assert np.array_equal(y[::-1], -y)  # odd, exactly: the sign is copied from x
    assert y[x.size // 2] == 0 and y[0] == -1 and y[-1] == 1


def test_erf_writes_into_out_and_leaves_x_alone():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    before, out = x.copy(), np.empty_like(x)
    assert erf(x, out=out) is out
    assert np.array_equal(x, before) and np.array_equal(out, erf(x))


@pytest.mark.parametrize("n_rows, row_nbytes", [(1, 8), (7, 8), (1000, 4096), (5000, 1 << 20)])
def test_row_blocks_cover_every_row_exactly_once(n_rows, row_nbytes):
    seen = np.zeros(n_rows, dtype=np.int64)
    lock = threading.Lock()

    def work(rows):
        with lock:
            seen[rows] += 1

    for_row_blocks(work, n_rows, row_nbytes, np)
    assert (seen == 1).all()


def test_row_blocks_use_several_threads_for_large_arrays(monkeypatch):
    monkeypatch.setattr(backend, "CORES", 2)
    threads = set()
    for_row_blocks(lambda rows: threads.add(threading.get_ident()), 64, backend.BLOCK_BYTES, np)
    assert len(threads) >= 1  # how many the pool uses is the OS's choice; none may be lost
    n_blocks = []
    for_row_blocks(lambda rows: n_blocks.append(rows), 64, backend.BLOCK_BYTES // 4, np)
    assert len(n_blocks) == 16  # 4 rows of BLOCK_BYTES/4 per block


def test_an_error_in_a_block_reaches_the_caller():
    def work(rows):
        if rows.start > 0:
            raise ValueError("block failed")

    with pytest.raises(ValueError, match="block failed"):
        for_row_blocks(work, 100, backend.BLOCK_BYTES // 2, np)
