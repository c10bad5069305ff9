"""Numerical gradient checks, cs231n-style: is a hand-written backward right, and by how much is it off?

For a scalar function f of an array x, the central difference

    (f(x + h e_i) - f(x - h e_i)) / 2h  =  df/dx_i + O(h^2)

needs nothing but the forward. In float64 with h = 1e-5 its error is about h^2 |f'''| plus
round-off eps |f| / h, around 1e-10 in absolute terms. Measured against the size of the gradient
(``rel_error`` with ``scale``: the largest entry of the array's gradient), a correct backward
agrees to about 1e-8 or better and a wrong one is off by far more (typically 1e-2 to 1). So
below 1e-7 passes, and anything near 1e-3 or above is a bug. (Entries whose true gradient is 0,
like the rows of distances that never occur, are why the scale is the array's, not each entry's.)

A component ``y, cache = forward(p, *inputs)`` / ``dx, grads = backward(p, dy, cache)`` is
checked by projecting its output on a random ``dy``: f = sum(forward(...) * dy), whose
gradient is exactly what ``backward(p, dy, cache)`` must return.
"""
import numpy as np

EXPECTED_ERROR = 1e-7  # float64, h = 1e-5: a correct backward stays below this


def rel_error(a, b, scale=None):
    """The worst relative difference between ``a`` and ``b``.

    Without ``scale``: max |a - b| / max(|a| + |b|, 1e-8) elementwise (cs231n's measure). With
    ``scale`` (the size of the whole gradient): max |a - b| / scale.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not a.size:
        return 0.0
    if scale is not None:
        return float(np.max(np.abs(a - b)) / max(scale, np.finfo(np.float64).tiny))
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Central-difference gradient of the scalar ``f()`` with respect to the array ``x``.

    ``x`` is perturbed in place and restored. ``indices`` (flat positions) limits the check to
    a sample of a large array; the other entries of the result are NaN.
    """
    if x.dtype != np.float64:
        raise ValueError(f"numerical gradients need float64 arrays, got {x.dtype}: in float32 the "
                         "differences drown in round-off")
    grad = np.full(x.shape, np.nan)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + h
        plus = float(f())
        flat[i] = old - h
        minus = float(f())
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def check_backward(forward, backward, p, inputs, seed=0, max_entries=40, h=1e-5):
    """Relative error of ``backward`` against central differences, for every parameter and every
    floating-point input of one component.

    ``forward(p, *inputs) -> (y, cache)`` with y an array; ``backward(p, dy, cache) -> (dx, grads)``
    with dx the gradient of the first input, or a tuple with one entry per floating-point input
    (None for those it does not return). Large arrays are checked on ``max_entries`` random entries.
    Returns ``{name: rel_error}`` with names ``param:<key>`` and ``input:<position>``.
    """
    rng = np.random.default_rng(seed)
    y, cache = forward(p, *inputs)
    dy = rng.normal(size=np.shape(y))
    dx, grads = backward(p, dy, cache)
    float_inputs = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    dxs = dx if isinstance(dx, tuple) else (dx,)
    analytic = {f"param:{k}": grads[k] for k in p}
    analytic.update({f"input:{i}": d for i, d in zip(float_inputs, dxs) if d is not None})

    def f():
        return np.sum(forward(p, *inputs)[0] * dy)

    errors = {}
    for name, grad in analytic.items():
        kind, key = name.split(":")
        x = p[key] if kind == "param" else inputs[int(key)]
        sample = None if x.size <= max_entries else rng.choice(x.size, max_entries, replace=False)
        numeric = numerical_gradient(f, x, h, sample)
        picked = slice(None) if sample is None else sample
        errors[name] = rel_error(np.reshape(grad, -1)[picked], numeric.reshape(-1)[picked],
                                 scale=float(np.abs(grad).max()))
    return errors
