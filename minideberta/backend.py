"""The array module: NumPy by default, CuPy when the arrays live on a GPU.

Every component asks its inputs which module they belong to (``xp = get_xp(x)``)
instead of importing NumPy directly, so the same forward and backward code runs on
either. Nothing here converts an array behind the caller's back: moving data between
host and device is always an explicit call.

``erf`` is here too: it picks SciPy's erf (NumPy, float64), CuPy's, or, for NumPy float32, a
rational approximation several times faster than SciPy's float32 erf.
"""
import math

import numpy as np


def get_xp(*arrays):
    """Return the array module (``numpy`` or ``cupy``) that ``arrays`` belong to."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np


def to_numpy(a):
    """A NumPy copy of ``a`` if it lives on a GPU, ``a`` itself if it is already NumPy."""
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    return np.asarray(a)


def special(xp):
    """The ``scipy.special`` of ``xp``: SciPy's for NumPy, ``cupyx.scipy.special`` for CuPy."""
    if xp is np:
        import scipy.special

        return scipy.special
    import cupyx.scipy.special

    return cupyx.scipy.special


# Abramowitz & Stegun 7.1.26: erf(x) = 1 - t (a1 + t (a2 + ... + t a5)) exp(-x^2), t = 1 / (1 + p x), x >= 0.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x, out=None):
    """The error function of ``x`` (into ``out`` if given, which must not be ``x``).

    float64 (and CuPy): SciPy's erf, exact to double precision. NumPy float32: the rational
    approximation of Abramowitz & Stegun 7.1.26, whose absolute error evaluated in float32 is
    below 7e-7 (torch's float32 erf: 6e-8; float32 spacing near 1: 6e-8), several times faster
    than SciPy's float32 erf, which computes in double one element at a time.
    """
    xp = get_xp(x)
    if xp is not np or x.dtype != np.float32:
        return special(xp).erf(x, out=out) if out is not None else special(xp).erf(x)
    f = np.float32
    a = np.abs(x, out=out)
    t = a * f(_AS_P)
    t += f(1)
    np.reciprocal(t, out=t)
    poly = t * f(_AS_A[-1])
    for coefficient in _AS_A[-2::-1]:
        poly += f(coefficient)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    a *= poly
    np.subtract(f(1), a, out=a)
    return np.copysign(a, x, out=a)


SQRT_HALF = 1 / math.sqrt(2)


def widened(x):
    """``x`` as float32 if it is float16, else ``x`` itself (no copy): where statistics are taken.

    float16 ends at 65504 and has 11 bits of mantissa: a LayerNorm's sum of squares or a softmax's
    sum of exponentials over a 128100-token vocabulary overflows it or loses the small terms. As
    torch does, those statistics are computed in float32 and the result is cast back to float16;
    float32 and float64 arrays pass through untouched, so their results do not change by a bit.
    """
    return x.astype(get_xp(x).float32) if x.dtype == np.float16 else x
