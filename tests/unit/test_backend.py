"""backend.py: the array module and the float32 erf."""
import numpy as np
import scipy.special

from minideberta.backend import erf, get_xp, to_numpy


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


def test_zeros_for_rows_is_a_writable_zero_array_and_scatters_as_zeros_do():
    """Above 4 MiB the table comes from an anonymous mmap (no huge pages, backend.py); below it is np.zeros."""
    import mmap

    from minideberta.backend import SMALL_PAGES_FROM, zeros_for_rows
    from minideberta.embeddings import embedding_backward, embedding_forward

    def mapped(a):  # the array, its base, the memoryview over the mmap, the mmap
        while a is not None and not isinstance(a, mmap.mmap):
            a = getattr(a, "base", None) if isinstance(a, np.ndarray) else getattr(a, "obj", None)
        return a is not None

    big = zeros_for_rows(np, (4096, 300), np.float32)  # 4.7 MiB
    assert big.nbytes >= SMALL_PAGES_FROM and mapped(big)
    small = zeros_for_rows(np, (10, 3), np.float64)
    assert small.base is None and not mapped(small)
    for a, shape, dtype in ((big, (4096, 300), np.float32), (small, (10, 3), np.float64)):
        assert a.shape == shape and a.dtype == dtype and a.flags.writeable and a.flags.c_contiguous
        assert not a.any()
    rng = np.random.default_rng(0)
    table = {"weight": rng.normal(size=(4096, 300)).astype(np.float32)}
    ids = rng.integers(0, 4096, (6, 50))
    ids[0, :3] = 7  # a row read several times adds up
    dy = rng.normal(size=(6, 50, 300)).astype(np.float32)
    grad = embedding_backward(table, dy, embedding_forward(table, ids, padding_idx=0)[1])[1]["weight"]
    expected = np.zeros((4096, 300), np.float32)
    np.add.at(expected, ids.reshape(-1), dy.reshape(-1, 300))
    expected[0] = 0
    assert mapped(grad) and np.array_equal(grad, expected)
