"""Read PyTorch ``.bin`` checkpoints into NumPy arrays, without importing torch.

What ``torch.save(state_dict)`` writes
--------------------------------------
A state dict maps names to tensors. A tensor is a *view* of a *storage*: the storage is a
flat run of elements of one dtype; the tensor adds an offset, a shape and strides (counted
in elements). Tensors can share a storage (a tied weight, a transposed view), so torch
writes each storage once and lets the tensors point at it.

torch >= 1.6 writes a zip archive::

    pytorch_model/data.pkl      the dict, pickled, each storage replaced by a persistent id
    pytorch_model/data/0, 1...  the raw little-endian bytes of each storage, one per key
    pytorch_model/byteorder     "little"; plus version and bookkeeping records

The top folder is the file's name without its extension (``archive`` when torch.save was
given a file object rather than a path), so a reader has to look it up.

Older torch (and ``_use_new_zipfile_serialization=False`` today) writes one stream of
consecutive pickles: a magic number, the protocol version 1001, a ``sys_info`` dict
(endianness, type sizes), the dict itself, and the list of storage keys; then, for each key
in that order, an 8-byte little-endian element count followed by the storage's bytes.

A *persistent id* is pickle's hook for objects kept outside the pickle: the stream holds a
tuple instead of the object and the unpickler passes it to ``persistent_load``. Torch's is
``('storage', <storage type>, key, device, numel)``, with a sixth item, ``view_metadata``,
in the legacy format.

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
import io
import os
import pickle
import zipfile
from typing import NamedTuple

import numpy as np

from .safetensors_file import bfloat16_to_float32

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


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


def _unpickle(file, storages):
    """Read one pickle from ``file``; whatever goes wrong inside becomes a BadPickle."""
    try:
        return _RestrictedUnpickler(file, storages).load()
    except ValueError:  # BadPickle, and the checks' own messages
        raise
    except Exception as error:  # a damaged or hostile pickle can feed the stand-ins anything
        raise BadPickle(f"damaged or hostile pickle: {type(error).__name__}: {error}") from error


def _cut(ref, flat):
    """Copy the tensor ``ref`` out of its storage's elements ``flat``, bounds checked."""
    shape, stride, offset = ref.shape, ref.stride, ref.offset
    if not all(type(v) is int and v >= 0 for v in (offset, *shape, *stride)) \
            or len(shape) != len(stride):
        raise ValueError(f"bad tensor layout: offset {offset}, shape {shape}, stride {stride}")
    last = offset + sum((n - 1) * s for n, s in zip(shape, stride))
    count = int(np.prod(shape, dtype=object))  # Python ints: no overflow
    if count > flat.size:  # a view larger than its storage (zero strides) could be copied out to any size
        raise ValueError(f"tensor of shape {shape} has {count} elements, more than its storage's {flat.size}: "
                         "the file is damaged")
    if 0 not in shape and last >= flat.size:
        raise ValueError(f"tensor (offset {offset}, shape {shape}, stride {stride}) reaches "
                         f"element {last} of a storage of {flat.size}: the file is damaged")
    view = np.lib.stride_tricks.as_strided(flat[offset:] if 0 not in shape else flat[:0],
                                           shape, tuple(s * flat.itemsize for s in stride))
    array = np.array(view, order="C")  # owned, C-contiguous, writeable, whatever the layout
    return bfloat16_to_float32(array) if ref.storage.kind.bfloat16 else array


def _state_dict(obj, flats, path):
    """Turn the unpickled dict's tensor entries into arrays; other entries are left out."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a state dict (a dict of tensors)")
    return {name: _cut(v, flats[v.storage.key]) for name, v in obj.items()
            if isinstance(v, _TensorRef)}


def _elements(data, storage):
    if len(data) % storage.kind.dtype.itemsize:
        raise ValueError(f"storage {storage.key} has {len(data)} bytes, not a whole number of {storage.kind.dtype}s")
    return np.frombuffer(data, dtype=storage.kind.dtype)


def _read_member(archive, name, path):
    """One record of the zip; torch stores them uncompressed, so one larger than the file is damage."""
    declared = archive.getinfo(name).file_size
    if declared > os.path.getsize(path):
        raise ValueError(f"{path}: the record {name} declares {declared} bytes, more than the whole file")
    return archive.read(name)


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"{path} is a zip archive but not a torch.save checkpoint: expected "
                             "exactly one <folder>/data.pkl")
        top = pickles[0][:-len("data.pkl")]
        if top + "byteorder" in archive.namelist() and _read_member(archive, top + "byteorder", path) != b"little":
            raise ValueError(f"{path} was saved big-endian; re-save it on a little-endian machine")
        storages = {}
        obj = _unpickle(io.BytesIO(_read_member(archive, pickles[0], path)), storages)
        flats = {}
        for key, storage in storages.items():
            try:
                flats[key] = _elements(_read_member(archive, f"{top}data/{key}", path), storage)
            except KeyError:
                raise ValueError(f"{path} has no record {top}data/{key} for a storage its "
                                 "data.pkl uses: the file is truncated or damaged") from None
    return _state_dict(obj, flats, path)


def _load_legacy(path, f):
    size = os.fstat(f.fileno()).st_size
    storages = {}
    magic = None
    if f.read(1) == b"\x80":  # torch pickles with protocol >= 2, which opens with PROTO
        f.seek(0)
        try:
            magic = _unpickle(f, storages)
        except _RefusedGlobal:
            raise
        except (pickle.UnpicklingError, ValueError):  # not a torch.save stream
            magic = None
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"{path} is not a PyTorch checkpoint: expected a zip archive holding "
                         "<folder>/data.pkl (torch.save since 1.6) or a legacy torch.save "
                         f"stream starting with the magic number {_LEGACY_MAGIC:#x}")
    protocol = _unpickle(f, storages)
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"{path}: legacy torch.save protocol {protocol!r}, expected 1001")
    sys_info = _unpickle(f, storages)
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ValueError(f"{path} was saved big-endian; re-save it on a little-endian machine")
    obj = _unpickle(f, storages)
    keys = _unpickle(f, storages)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and set(keys) == set(storages)):
        raise ValueError(f"{path}: the storage list {keys!r} does not match the storages the "
                         f"state dict uses {sorted(storages)}: the file is damaged")
    flats = {}
    for key in keys:
        count = int.from_bytes(f.read(8), "little")
        nbytes = count * storages[key].kind.dtype.itemsize
        data = f.read(nbytes) if nbytes <= size - f.tell() else b""  # no huge allocation
        if len(data) != nbytes:
            raise ValueError(f"{path} ends inside storage {key}: the file is truncated")
        flats[key] = _elements(data, storages[key])
    return _state_dict(obj, flats, path)


def load_torch_bin(path):
    """Read a ``torch.save``-d state dict (zip or legacy format) as ``{name: np.ndarray}``.

    Only tensors come back, in file order; other entries (a step counter, a config) are
    left out. Each array is an owned, C-contiguous, writeable copy with the saved shape,
    even when the tensor was a non-contiguous view or shared its storage with another.
    Dtypes are kept (float16 stays float16: the caller chooses the compute dtype), except
    bfloat16, which NumPy lacks: it is widened exactly to float32 by shifting its 16 bits
    into the top half of a float32.

    Raises ``BadPickle`` (an ``UnpicklingError`` and a ``ValueError``) if the pickle names any global
    but the few a state dict needs (named in the message; nothing in the file is ever executed) or
    is damaged, and ``ValueError`` if ``path`` is not a PyTorch checkpoint or is damaged.
    Every message names the file; nothing is allocated beyond what the file holds."""
    path = str(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            return _load_legacy(path, f)
    except FileNotFoundError:
        raise
    except ValueError as error:  # BadPickle included: keep its type, make sure it names the file
        if str(error).startswith(path):
            raise
        raise (BadPickle if isinstance(error, BadPickle) else ValueError)(f"{path}: {error}") from None
    except Exception as error:  # zipfile.BadZipFile, zlib.error, EOFError... from a damaged archive
        raise ValueError(f"{path} is a damaged PyTorch checkpoint ({type(error).__name__}: {error})") from None
