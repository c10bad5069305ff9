"""fakecupy: CuPy's rules about host and device, simulated on the CPU, so every CI run can prove the
code is device-true without a GPU.

This is not CuPy. It is a NumPy array in a wrapper that keeps the rules that break code written
for NumPy when it meets CuPy:

- an array lives in its own module (``type(a).__module__`` is ``fakecupy``), so ``backend.get_xp``
  finds this module as it finds ``cupy``;
- it refuses to become a NumPy array implicitly: ``np.asarray(a)`` raises, as CuPy's arrays do;
  the explicit moves are ``fakecupy.asarray(numpy_array)`` and ``fakecupy.asnumpy(a)``;
- it refuses to meet a NumPy array in any operation (``a + np_array``, ``a[np_index]``,
  ``fakecupy.where(np_mask, ...)``) and refuses NumPy functions (``np.stack([a, b])``), where CuPy
  would raise or, worse, silently copy to the host;
- Python and NumPy scalars mix freely, as in CuPy;
- every read back to the host (``bool``, ``int``, ``float``, ``.item()``, ``asnumpy``) is counted in
  ``SYNCS``, so a test can bound the host-device synchronisations of a forward or an optimizer step.

What it does not simulate: speed, memory, CuPy's own missing functions (``ufunc.reduceat``,
``repeat`` with counts) beyond refusing ``reduceat``, and kernels. The numbers are NumPy's.
"""
import numpy as _np
import numpy.lib.mixins as _mixins

SYNCS = {"count": 0}
_SCALARS = (int, float, bool, complex, _np.generic)


class DeviceError(TypeError):
    """A NumPy array met a device array, or device data was converted to NumPy implicitly."""


class ndarray(_mixins.NDArrayOperatorsMixin):
    __module__ = "fakecupy"

    def __init__(self, data):
        if not isinstance(data, _np.ndarray):
            data = _np.asarray(data)
        self._a = data

    # ---- the rules ----
    def __array__(self, *args, **kwargs):
        raise DeviceError("implicit conversion of a device array to NumPy (np.asarray, np.array, a NumPy function); "
                          "move it explicitly with backend.to_numpy")

    def __array_function__(self, func, types, args, kwargs):
        raise DeviceError(f"NumPy function np.{func.__name__} called on a device array; use the array's own module (get_xp)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "reduceat":
            raise DeviceError("ufunc.reduceat is missing or restricted in some CuPy versions")
        args = [_unwrap(x) for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o) for o in kwargs["out"])
        if "where" in kwargs:
            kwargs["where"] = _unwrap(kwargs["where"])
        result = getattr(ufunc, method)(*args, **kwargs)
        if method == "at":
            return None
        return _wrap(result)

    # ---- reads back to the host (each one a synchronisation on a GPU) ----
    def _sync(self):
        SYNCS["count"] += 1
        return self._a

    def __bool__(self):
        return bool(self._sync())

    def __int__(self):
        return int(self._sync())

    def __float__(self):
        return float(self._sync())

    def __index__(self):
        return int(self._sync())

    def item(self):
        return self._sync().item()

    def get(self):
        return asnumpy(self)

    # ---- the array interface the code uses ----
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: ndarray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"fakecupy.ndarray(shape={self.shape}, dtype={self.dtype})"

    def __iter__(self):
        raise DeviceError("iterating over a device array reads every element back to the host")

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_key(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap_key(key)] = _unwrap(value)

    def __getattr__(self, name):  # methods: reshape, transpose, sum, astype, copy, ...
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._a, name)
        if name in ("tolist", "tobytes", "view"):
            raise DeviceError(f"ndarray.{name} reads the device array back to the host")
        return lambda *args, **kwargs: _wrap(method(*[_unwrap(a) for a in args],
                                                    **{k: _unwrap(v) for k, v in kwargs.items()}))


def _unwrap(x):
    """The NumPy array inside a device array; scalars and Python values pass; NumPy arrays are refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        raise DeviceError(f"a NumPy array of shape {x.shape} met a device array; move it with backend.to_device")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _unwrap_key(key):
    if isinstance(key, tuple):
        return tuple(_unwrap(k) for k in key)
    return _unwrap(key)


def _wrap(x):
    if isinstance(x, (_np.ndarray, _np.generic)):  # a reduction gives a 0-d device array, as in CuPy
        return ndarray(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


# ---- the module: NumPy's functions on unwrapped arguments, results wrapped ----
def asarray(a, dtype=None):
    """Host -> device (explicit), or a device array as it is."""
    if isinstance(a, ndarray):
        return a if dtype is None else ndarray(a._a.astype(dtype, copy=False))
    return ndarray(_np.array(a, dtype=dtype))


def asnumpy(a):
    """Device -> host (explicit)."""
    SYNCS["count"] += 1
    return a._a.copy() if isinstance(a, ndarray) else _np.asarray(a)


class _Ufunc:
    def __init__(self, ufunc):
        self._u = ufunc

    def __call__(self, *args, **kwargs):
        if "out" in kwargs and isinstance(kwargs["out"], ndarray):
            kwargs["out"] = (kwargs["out"],)
        return self._u(*[_as_device(a) for a in args], **kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise DeviceError("ufunc.at on a host array inside device code")
        self._u.at(a._a, _unwrap_key(indices), *(() if b is None else (_unwrap(b),)))

    def reduceat(self, *args, **kwargs):
        raise DeviceError("ufunc.reduceat is missing or restricted in some CuPy versions")

    def reduce(self, a, *args, **kwargs):
        return _wrap(self._u.reduce(_unwrap(a), *args, **kwargs))


def _as_device(x):
    """Ufunc arguments: device arrays, or scalars wrapped as 0-d device arrays so NumPy dispatches to us."""
    if isinstance(x, ndarray):
        return x
    if isinstance(x, _np.ndarray):
        raise DeviceError(f"a NumPy array of shape {x.shape} met a device array; move it with backend.to_device")
    return x


def _function(name):
    func = getattr(_np, name)

    def wrapped(*args, **kwargs):
        if kwargs.get("out") is not None:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(func(*[_unwrap(a) for a in args], **{k: _unwrap(v) for k, v in kwargs.items()}))

    wrapped.__name__ = name
    return wrapped


class _Namespace:
    def __init__(self, **members):
        self.__dict__.update(members)


def _as_strided(x, shape=None, strides=None):
    return ndarray(_np.lib.stride_tricks.as_strided(_unwrap(x), shape=shape, strides=strides))


lib = _Namespace(stride_tricks=_Namespace(as_strided=_as_strided))


def _linalg_norm(x, *args, **kwargs):
    return _wrap(_np.linalg.norm(_unwrap(x), *args, **kwargs))


linalg = _Namespace(norm=_linalg_norm)


class _Generator:
    """``fakecupy.random.default_rng(seed)``: device random numbers from a seeded generator."""

    def __init__(self, seed):
        self._g = _np.random.default_rng(seed)

    def random(self, size=None, dtype=_np.float64):
        return ndarray(_np.asarray(self._g.random(size, dtype=dtype)))

    def integers(self, low, high=None, size=None, dtype=_np.int64):
        return ndarray(_np.asarray(self._g.integers(low, high, size=size, dtype=dtype)))


random = _Namespace(default_rng=_Generator, Generator=_Generator)


def _erf(x, out=None):
    import scipy.special

    result = scipy.special.erf(_unwrap(x))
    if out is not None:
        out[...] = ndarray(result)
        return out
    return ndarray(result)


special = _Namespace(erf=_erf)  # stands in for cupyx.scipy.special

_UFUNCS = ("add", "subtract", "multiply", "divide", "true_divide", "negative", "exp", "log", "log1p", "sqrt",
           "square", "abs", "absolute", "tanh", "maximum", "minimum", "reciprocal", "copysign", "sign", "ceil",
           "isfinite", "isnan", "isinf", "logical_and", "logical_or", "logical_not", "greater", "less", "equal")
for _name in _UFUNCS:
    globals()[_name] = _Ufunc(getattr(_np, _name))
_FUNCTIONS = ("zeros", "ones", "empty", "full", "arange", "zeros_like", "ones_like", "empty_like", "full_like",
              "where", "concatenate", "stack", "clip", "take_along_axis", "put_along_axis", "pad", "copyto",
              "broadcast_to", "flatnonzero", "diff", "eye", "isin", "argsort", "argmax", "cumsum", "einsum",
              "matmul", "reshape", "transpose", "swapaxes", "any", "all", "unique", "bincount", "searchsorted")
for _name in _FUNCTIONS:
    globals()[_name] = _function(_name)

for _name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool_", "dtype", "finfo", "iinfo",
              "newaxis", "pi", "inf", "nan", "e"):
    globals()[_name] = getattr(_np, _name)
