"""The array module: NumPy by default, CuPy when the arrays live on a GPU.

Every component asks its inputs which module they belong to (``xp = get_xp(x)``)
instead of importing NumPy directly, so the same forward and backward code runs on
either. Nothing here converts an array behind the caller's back: moving data between
host and device is always an explicit call.
"""
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
