"""What a wrong answer probably means, read off the error's shape.

Each rule looks at the student's array ``got`` against the correct ``want`` and, when the pattern
is unmistakable, says what kind of mistake makes it. Patterns that are certain (the answer is
exactly -1 times the right one) are stated; what they mean about the code is a guess, said with
"probably".
"""
import math

import numpy as np

SIGN = (-1.0, "a sign is flipped")
SCALE = "the attention's scale 1/sqrt(d (1 + terms)), or a part of it,"


def ratio_meanings(r):
    """What a constant ratio got / want probably means; several readings where the number allows them."""
    found = []
    if abs(r - SIGN[0]) < 1e-6:
        return [SIGN[1]]
    if abs(r - 2) < 2e-6:
        found.append("a term counted twice")
    if abs(r - 0.5) < 1e-6:
        found.append("one of two equal terms missing, or a factor 1/2 too many")
    for k in range(2, 4097):
        if abs(r - math.sqrt(k)) < 1e-6 * r and math.isqrt(k) ** 2 != k:
            found.append(f"a factor 1/sqrt({k}) missing ({SCALE} forgotten)")
        if abs(r - 1 / math.sqrt(k)) < 1e-6 * r and math.isqrt(k) ** 2 != k:
            found.append(f"a factor 1/sqrt({k}) too many ({SCALE} applied twice)")
    for k in range(2, 65):
        if abs(r - k) < 1e-6 * k and k > 2:
            found.append(f"a missing division by {k} (a sum where the mean is wanted, or a scale forgotten)")
        if abs(r - 1 / k) < 1e-6 / k and k > 2:
            found.append(f"an extra division by {k} (a mean where the sum is wanted, or a scale applied twice)")
    return found or ["a wrong constant factor"]


def describe_ratio(r):
    return f"every entry is {r:.6g} times the right one: probably {' or '.join(ratio_meanings(r))}"


def _scale(want):
    return max(float(np.max(np.abs(want))) if want.size else 0.0, np.finfo(np.float64).tiny)


def array_diagnoses(got, want, tol, regions=None, scale=None):
    """Diagnoses (strings) of ``got`` against ``want`` (same shape), errors measured against ``scale``
    (default max |want|)."""
    scale = _scale(want) if scale is None else scale
    if not np.all(np.isfinite(got)):
        return [f"{int(np.sum(~np.isfinite(got)))} entries are NaN or inf"]
    err = np.abs(got - want) / scale
    wrong = err > tol
    if not wrong.any():
        return []
    if not np.any(got):
        return ["all zeros where the answer is not: probably a missing term, or a gradient computed "
                "but never added in"]
    found = []
    r = float(np.sum(got * want) / max(np.sum(want * want), np.finfo(np.float64).tiny))
    if np.max(np.abs(got - r * want)) / scale < tol:
        found.append(describe_ratio(r))
        return found
    for a in range(want.ndim):
        for b in range(a + 1, want.ndim):
            if want.shape[a] == want.shape[b] > 1 and np.max(np.abs(got - want.swapaxes(a, b))) / scale < tol:
                found.append(f"agrees with the right answer with axes {a} and {b} swapped: probably the "
                             "axes are exchanged (query and key, or c2p and p2c)")
                return found
    zero_where_not = (got == 0) & (np.abs(want) / scale > tol)
    if zero_where_not.any() and not (wrong & ~zero_where_not).any():
        found.append(f"zero at {int(zero_where_not.sum())} of {want.size} entries where the answer is not, "
                     "right elsewhere: probably a missing accumulation (an array used several times gets "
                     "the sum of all its gradients)")
    for name, (mask, meaning) in (regions or {}).items():
        mask = np.broadcast_to(mask, want.shape)
        if wrong[mask].any() and not wrong[~mask].any():
            found.append(f"wrong only on {name}, right elsewhere: probably {meaning}")
    if not found:
        found.append(f"wrong at {int(wrong.sum())} of {want.size} entries, no pattern recognised")
    return found


def shape_diagnosis(got_shape, want_shape):
    if sorted(got_shape) == sorted(want_shape):
        return "the same sizes in another order: probably axes transposed or swapped"
    if int(np.prod(got_shape)) == int(np.prod(want_shape)):
        return "the same number of entries: probably a reshape in the wrong order"
    return "probably a sum over the wrong axes, or a broadcast that should have been summed away"


def integer_diagnoses(got, want, labels=None, show=3):
    """The first wrong entries of an integer answer, named by ``labels`` (e.g. the distance) when given."""
    wrong = np.flatnonzero(np.asarray(got).reshape(-1) != np.asarray(want).reshape(-1))
    if not wrong.size:
        return []
    g, w = np.asarray(got).reshape(-1), np.asarray(want).reshape(-1)
    lab = None if labels is None else np.asarray(labels).reshape(-1)
    where = [f"{'entry ' + str(i) if lab is None else 'input ' + str(lab[i])}: got {g[i]}, expected {w[i]}"
             for i in wrong[:show]]
    return [f"{wrong.size} of {w.size} entries wrong; " + "; ".join(where)]
