"""A restricted unpickler for PyTorch state dicts: it builds stand-ins, never runs code from the file.

Why a restricted unpickler
--------------------------
A pickle is a small program: its GLOBAL opcode imports any attribute of any module and
REDUCE calls it with arguments from the file, so ``pickle.load`` on a downloaded file can
run ``os.system``. A state dict needs only the handful of globals listed in ``_ALLOWED``.
Each is mapped to a small stand-in defined here, never to the real torch object, and any
other global raises ``pickle.UnpicklingError`` before anything runs. The stand-ins only
record offsets and shapes; arrays are cut from the storages after the pickle is read,
with every index checked against the storage's size.
"""
import pickle
import pickletools
from typing import NamedTuple

import numpy as np


class BadPickle(pickle.UnpicklingError, ValueError):
    """A pickle that is refused or cannot be read: an ``UnpicklingError``, as pickle's users expect,
    and a ``ValueError``, as minideberta raises for every bad file."""


class _RefusedGlobal(BadPickle):
    """A global outside ``_ALLOWED``; kept apart so it is never reworded as 'not a checkpoint'."""


class _StorageType(NamedTuple):
    """Stands in for ``torch.FloatStorage`` and its siblings: it only names the element dtype.

    An immutable instance, not a class: a pickle can neither call it nor edit it.
    """

    name: str
    dtype: np.dtype
    bfloat16: bool = False  # numpy has no bfloat16: read the bits as uint16, then widen

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage(NamedTuple):
    """A storage named by a persistent id; its bytes are read once the pickle is done."""

    key: str
    kind: _StorageType


class _TensorRef(NamedTuple):
    """Where a tensor lies inside its storage, as ``_rebuild_tensor_v2`` describes it."""

    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """``torch._utils._rebuild_tensor(_v2)``; requires_grad, hooks and metadata are dropped."""
    if not isinstance(storage, _Storage):
        raise BadPickle(f"a tensor must be built on a storage, got {storage!r}")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_):
    """``torch._utils._rebuild_parameter(_with_state)``: a Parameter is just its tensor here."""
    return data


_STORAGE_TYPES = [
    _StorageType("FloatStorage", np.dtype("<f4")),
    _StorageType("HalfStorage", np.dtype("<f2")),
    _StorageType("BFloat16Storage", np.dtype("<u2"), bfloat16=True),
    _StorageType("DoubleStorage", np.dtype("<f8")),
    _StorageType("LongStorage", np.dtype("<i8")),
    _StorageType("IntStorage", np.dtype("<i4")),
    _StorageType("BoolStorage", np.dtype("?")),
    _StorageType("ByteStorage", np.dtype("u1")),
]
# The functions can be shared between loads: a pickle can set their __dict__ or __defaults__,
# and neither changes a call from a genuine file, which passes every argument.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", np.dtype("u1")),
    **{("torch", t.name): t for t in _STORAGE_TYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows only ``_ALLOWED`` and collects storages by key."""

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages
        # OrderedDict's stand-in: a dict that takes the _metadata attribute torch sets. A fresh
        # class per load, because a pickle can set attributes (methods too) on any class it
        # names, and a shared one would carry that into the next file's load.
        ordered_dict = type("OrderedDict", (dict,), {})
        self.allowed = {**_ALLOWED, ("collections", "OrderedDict"): ordered_dict}

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"refused global {module}.{name}: a PyTorch state dict needs only tensors and "
                "storages, so this file may be trying to run code. It was not loaded; convert "
                "it to safetensors in a sandbox if you trust its source") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise BadPickle(f"unexpected persistent id {pid!r}: expected "
                                         "('storage', <torch storage type>, key, device, numel)")
        if len(pid) == 6 and pid[5] is not None:
            raise ValueError("this checkpoint uses storage views (torch < 1.0); load and "
                             "re-save it with a recent torch first")
        kind, key = pid[1], pid[2]
        storage = self.storages.setdefault(key, _Storage(key, kind))
        if storage.kind is not kind:
            raise ValueError(f"storage {key} is read as both {storage.kind} and {kind}")
        return storage


def _check_memo(file):
    """Refuse a pickle whose memo indices run ahead of its length, before pickle sees them.

    pickle's C unpickler grows its memo to the largest index a PUT names, so four damaged bytes
    (``LONG_BINPUT 2**32 - 1``) would make it allocate 32 GB. A genuine pickle numbers its memo
    entries in order, so no index exceeds the number of opcodes read so far.
    """
    start = file.tell()
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(file)):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg <= count:
                raise BadPickle(f"memo index {arg} at opcode {count}: a damaged pickle")
            if opcode.name == "STOP":
                break
    except BadPickle:
        raise
    except Exception as error:  # pickletools' own complaints about a damaged stream
        raise BadPickle(f"damaged pickle: {error}") from None
    file.seek(start)


def unpickle(file, storages):
    """Read one pickle from ``file`` (seekable); whatever goes wrong inside becomes a BadPickle.

    ``storages`` collects the storages the pickle names, by key.
    """
    try:
        _check_memo(file)
        return _RestrictedUnpickler(file, storages).load()
    except ValueError:  # BadPickle, and the checks' own messages
        raise
    except Exception as error:  # a damaged or hostile pickle can feed the stand-ins anything
        raise BadPickle(f"damaged or hostile pickle: {type(error).__name__}: {error}") from error
