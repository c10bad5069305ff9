"""Argument checks shared by the library and the command line: integers, and the compute dtype.

    check_integer(max_length, "max_length", minimum=0)          # -> int, or an error naming max_length
    check_float_dtype(np.float32)                              # -> np.dtype("float32")

(A config's own fields are checked in config_checks.py.)

A value of the wrong type raises :class:`NotAnInteger` / :class:`UnsupportedDtype`, which are both
``TypeError`` and ``ValueError`` (as NumPy's ``AxisError`` is both ``ValueError`` and
``IndexError``): callers that catch either, as the command line catches ``ValueError``, see it.
"""
import numbers

import numpy as np

FLOAT_DTYPES = ("float16", "float32", "float64")


class NotAnInteger(TypeError, ValueError):
    """An integer argument got something else (a float, a string, a bool)."""


class UnsupportedDtype(TypeError, ValueError):
    """A dtype minideberta does not compute in."""


def check_integer(value, name, minimum=None, optional=False):
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool) at least ``minimum``.

    ``optional``: None is allowed and returned as None. ``name`` is the field the message names; None
    leaves it out (argparse puts the option's name in front itself).
    """
    if optional and value is None:
        return None
    subject = "" if name is None else f"{name} "
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NotAnInteger(f"{subject}must be an integer{' (or None)' if optional else ''}, got {value!r}"
                           + (f" ({type(value).__name__})" if not isinstance(value, str) else ""))
    if minimum is not None and value < minimum:
        said = f"{name}={value!r} must be >= {minimum}" if name else f"must be at least {minimum}, got {value!r}"
        raise ValueError(said + (" (or None)" if optional else ""))
    return int(value)


def check_float_dtype(dtype):
    """``np.dtype`` of float16, float32 or float64, given as a NumPy dtype, its name or the type (np.float32).

    Anything else (int64, "bfloat16", object, None...) is an error listing the accepted ones: a model
    in integers would hold zeros, and NumPy has no bfloat16 to compute in.
    """
    accepted = f"use one of {', '.join(FLOAT_DTYPES)} (np.float32, 'float32' or np.dtype('float32'))"
    if dtype is None:
        raise UnsupportedDtype(f"dtype=None is not a compute dtype; {accepted}")
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        raise UnsupportedDtype(f"dtype={dtype!r} is not a dtype NumPy knows; {accepted}") from None
    if resolved not in [np.dtype(name) for name in FLOAT_DTYPES]:  # native byte order only
        raise UnsupportedDtype(f"dtype={dtype!r} ({resolved.str}) is not a compute dtype of minideberta; {accepted}")
    return resolved
