"""The array module: NumPy on the CPU, CuPy on a GPU, and the only two moves between them.

Every component asks its inputs which module they belong to (``xp = get_xp(x)``) instead of
importing NumPy directly, so the same forward and backward code runs on either. Nothing here
converts an array behind the caller's back: ``to_device`` and ``to_numpy`` are the explicit moves,
and a model moves its inputs to its own device with ``to_device`` at the door (``inputs.py``).

``device="gpu"`` means CuPy. The tests switch it to ``fakecupy`` (tests/fakecupy), a CPU simulation
of CuPy's rules, with ``use_device_module``; nothing else should.

``erf`` is here too: it picks SciPy's erf (NumPy, float64), CuPy's (exact), or, for NumPy float32, a
rational approximation several times faster than SciPy's float32 erf.
"""
import importlib
import math

import numpy as np

DEVICES = ("cpu", "gpu")
_device_module = {"name": "cupy"}  # what device="gpu" imports; see use_device_module
CUPY_MISSING = ("--device gpu needs CuPy, which is not installed: pip install cupy-cuda12x (CUDA 12) or "
                "cupy-cuda13x (CUDA 13), or pip install -e .[gpu]")


def use_device_module(name):
    """Make ``device="gpu"`` use the array module ``name`` (default ``"cupy"``; the tests use ``"fakecupy"``)."""
    _device_module["name"] = name


def device_module():
    """The GPU's array module (CuPy), with a ValueError saying how to get it when it is missing or has no GPU."""
    name = _device_module["name"]
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise ValueError(CUPY_MISSING) from None
    if name == "cupy":
        try:
            count = module.cuda.runtime.getDeviceCount()
        except Exception as error:  # CuPy raises its own CUDARuntimeError without a driver
            raise ValueError(f"--device gpu: CuPy is installed but finds no usable GPU ({error}); use --device cpu") \
                from None
        if count == 0:
            raise ValueError("--device gpu: CuPy is installed but this machine has no GPU; use --device cpu")
    return module


def check_device(device):
    """``device`` itself if it is "cpu" or "gpu", else a ValueError naming the two."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    return device


def _module_name(a):
    return type(a).__module__.split(".")[0]


def get_xp(*arrays):
    """Return the array module (``numpy``, or the GPU's) that ``arrays`` belong to."""
    for a in arrays:
        name = _module_name(a)
        if name in ("cupy", _device_module["name"]):
            return importlib.import_module(name)
    return np


def device_of(a):
    """ "gpu" for an array of the GPU's module, "cpu" for anything else."""
    return "cpu" if get_xp(a) is np else "gpu"


def to_numpy(a):
    """A NumPy copy of ``a`` if it lives on a GPU (one explicit device-to-host copy), ``a`` as a NumPy
    array otherwise."""
    xp = get_xp(a)
    if xp is not np:
        return xp.asnumpy(a)
    return np.asarray(a)


def to_device(a, device):
    """``a`` on ``device`` ("cpu" or "gpu"): the array itself when it is there already, else one
    explicit copy. Lists and scalars become arrays."""
    if check_device(device) == "cpu":
        return to_numpy(a)
    xp = device_module()
    return a if get_xp(a) is xp else xp.asarray(a)


SMALL_PAGES_FROM = 4 << 20  # bytes: NumPy asks for huge pages from this size on (its madvise threshold)


def zeros_for_rows(xp, shape, dtype):
    """A zero array of which only a few rows will be written: the gradient of a gathered table.

    On Linux NumPy asks the kernel for 2 MiB transparent huge pages for any array of 4 MiB or
    more (``madvise``), and the kernel zeroes a whole page at the first write into it. A gather's
    gradient writes the rows that were read and no others: at v3-base (8, 128), 1024 rows of
    3 KiB scattered over the (128100, 768) word-embedding table's 375 MiB, which meet nearly
    every 2 MiB page, so the kernel zeroes all 375 MiB. An anonymous ``mmap`` is zero-filled too
    but is not marked for huge pages: its 4 KiB pages are zeroed only where rows land, about
    4 MiB here. (What that saves: README, "Speed and memory".) On CuPy, and below 4 MiB, this is ``xp.zeros``.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if xp is not np or nbytes < SMALL_PAGES_FROM:
        return xp.zeros(shape, dtype=dtype)
    import mmap

    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)  # writable, freed with the array


def scatter_add(out, rows, values):
    """``out[rows[i]] += values[i]`` with repeated rows adding up (``np.add.at``; CuPy: ``cupyx.scatter_add``,
    as ``ufunc.at`` is missing from some CuPy versions)."""
    xp = get_xp(out)
    if xp.__name__ == "cupy":
        import cupyx

        cupyx.scatter_add(out, rows, values)
    else:
        xp.add.at(out, rows, values)
    return out


def special(xp):
    """The ``scipy.special`` of ``xp``: SciPy's for NumPy, ``cupyx.scipy.special`` for CuPy."""
    if xp is np:
        import scipy.special

        return scipy.special
    if xp.__name__ == "cupy":
        import cupyx.scipy.special

        return cupyx.scipy.special
    return xp.special  # the test simulation carries its own


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
