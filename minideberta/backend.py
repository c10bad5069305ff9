"""The array module: NumPy by default, CuPy when the arrays live on a GPU.

Every component asks its inputs which module they belong to (``xp = get_xp(x)``)
instead of importing NumPy directly, so the same forward and backward code runs on
either. Nothing here converts an array behind the caller's back: moving data between
host and device is always an explicit call.

Two helpers exist for speed on the CPU, where NumPy runs each operation on one core as one
full pass over memory: ``for_row_blocks`` runs a row-wise computation block by block (blocks
that fit in a core's cache) on every core, and ``erf`` evaluates float32 erf with a rational
approximation instead of SciPy's much slower float32 erf.
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK_BYTES = 1 << 19  # rows per block: about 512 KiB of one array, so a block's arrays stay in L2
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_pool = []


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


def for_row_blocks(work, n_rows, row_nbytes, xp):
    """Call ``work(rows)`` for slices ``rows`` that together cover ``range(n_rows)``.

    With NumPy the slices are blocks of about ``BLOCK_BYTES`` handed to a thread per core
    (NumPy releases the GIL inside its loops, so they run in parallel); each block's
    operations then run in cache instead of streaming whole arrays through memory once per
    operation. ``work`` must write only its own rows. On a GPU there is one call for all rows.
    """
    if xp is not np:
        work(slice(0, n_rows))
        return
    size = max(1, BLOCK_BYTES // max(row_nbytes, 1))
    blocks = [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
    if len(blocks) == 1 or CORES == 1:
        for rows in blocks:
            work(rows)
        return
    if not _pool:
        _pool.append(ThreadPoolExecutor(CORES, thread_name_prefix="minideberta"))
    for _ in _pool[0].map(work, blocks):  # iterating re-raises a block's exception here
        pass


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
