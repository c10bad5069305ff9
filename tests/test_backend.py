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
