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

The pickle itself is read by :mod:`.restricted_unpickler`, which runs nothing from the file.
"""
import io
import os
import zipfile

import numpy as np

from .restricted_unpickler import BadPickle, _RefusedGlobal, _TensorRef, unpickle
from .safetensors_file import bfloat16_to_float32

__all__ = ["BadPickle", "bfloat16_to_float32", "load_torch_bin"]
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _cut(ref, flat):
    """Copy the tensor ``ref`` out of its storage's elements ``flat``, bounds checked."""
    shape, stride, offset = ref.shape, ref.stride, ref.offset
    if not all(type(v) is int and v >= 0 for v in (offset, *shape, *stride)) \
            or len(shape) != len(stride):
        raise ValueError(f"bad tensor layout: offset {offset}, shape {shape}, stride {stride}")
    last = offset + sum((n - 1) * s for n, s in zip(shape, stride))
    count = int(np.prod(shape, dtype=object))  # Python ints: no overflow
    if count > flat.size:  # a view larger than its storage (zero strides) could be copied out to any size
        raise ValueError(f"tensor of shape {shape} needs {count} elements, its storage holds {flat.size}: damaged")
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
        obj = unpickle(io.BytesIO(_read_member(archive, pickles[0], path)), storages)
        flats = {}
        for key, storage in storages.items():
            try:
                flats[key] = _elements(_read_member(archive, f"{top}data/{key}", path), storage)
            except KeyError:
                raise ValueError(f"{path} has no record {top}data/{key} for a storage its "
                                 "data.pkl uses: the file is truncated or damaged") from None
    return _state_dict(obj, flats, path)


def _load_legacy(path, f):
    f = io.BytesIO(f.read())  # from memory: a damaged length in the pickle reads short, allocating nothing
    size = f.getbuffer().nbytes
    storages = {}
    magic = None
    if f.read(1) == b"\x80":  # torch pickles with protocol >= 2, which opens with PROTO
        f.seek(0)
        try:
            magic = unpickle(f, storages)
        except _RefusedGlobal:
            raise
        except ValueError:  # not a torch.save stream (BadPickle included)
            magic = None
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"{path} is not a PyTorch checkpoint: expected a zip archive holding "
                         "<folder>/data.pkl (torch.save since 1.6) or a legacy torch.save "
                         f"stream starting with the magic number {_LEGACY_MAGIC:#x}")
    protocol = unpickle(f, storages)
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"{path}: legacy torch.save protocol {protocol!r}, expected 1001")
    sys_info = unpickle(f, storages)
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ValueError(f"{path} was saved big-endian; re-save it on a little-endian machine")
    obj = unpickle(f, storages)
    keys = unpickle(f, storages)
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
