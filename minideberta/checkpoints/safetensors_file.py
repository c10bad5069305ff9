"""Read a safetensors file: its header, checked entry by entry against the file, then its arrays.

The layout: 8 bytes giving the length N of a JSON header (little-endian), N bytes of JSON, then
the raw bytes of every tensor::

    {"deberta.embeddings.word_embeddings.weight":
         {"dtype": "F32", "shape": [128100, 768], "data_offsets": [0, 393523200]},
     ...,
     "__metadata__": {"format": "pt"}}

``data_offsets`` count from the end of the header. Nothing in it is code, but everything in it is
a claim: :func:`read_header` checks every claim (dtype names, shapes of non-negative integers,
offsets inside the file, spans that match the shape, no two tensors sharing bytes) before a
single array is allocated, so a damaged or hostile header is refused with a message and never
turns into a multi-gigabyte allocation. It is the one parser of the format in minideberta:
loading (``weights.py``) and looking at a checkpoint's shapes (``hub.py``) both use it.
"""
import json
from typing import NamedTuple

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
          "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
MAX_HEADER = 100_000_000  # bytes; the safetensors library's own limit
MAX_DIMS = 32


def bfloat16_to_float32(bits):
    """Widen bfloat16 values, given as their raw uint16 bit patterns, to float32, exactly.

    A bfloat16 is the top half of a float32 (same sign and exponent, 7 of 23 mantissa
    bits), so shifting its bits up by 16 gives the very same number, NaN and inf included.
    """
    wide = np.empty(bits.shape, np.float32)
    np.left_shift(bits, 16, out=wide.view(np.uint32), dtype=np.uint32)
    return wide


class Entry(NamedTuple):
    """One tensor of the header, checked against the file."""

    dtype: str    # a key of DTYPES
    shape: tuple  # of non-negative ints
    begin: int    # byte offset from the end of the header
    end: int      # begin + the tensor's size in bytes


def _is_count(value):
    return type(value) is int and value >= 0  # bool and float are not counts


def _entry(path, name, info, data_size):
    if not isinstance(info, dict) or {"dtype", "shape", "data_offsets"} - set(info):
        raise ValueError(f"{path}: the header entry of {name} lacks dtype, shape or data_offsets: "
                         "the file is damaged")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"{path}: {name} has dtype {dtype!r}, which minideberta does not read "
                         f"(it reads {', '.join(DTYPES)})")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(map(_is_count, shape)):
        raise ValueError(f"{path}: {name} has shape {shape!r}: a shape is a list of at most {MAX_DIMS} "
                         "non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise ValueError(f"{path}: {name} has data_offsets {offsets!r}: expected [begin, end] with "
                         "0 <= begin <= end")
    nbytes = int(np.dtype(DTYPES[dtype]).itemsize)
    for n in shape:
        nbytes *= n  # Python ints: no overflow, however large the claim
    begin, end = offsets
    if end - begin != nbytes:
        raise ValueError(f"{path}: {name} of shape {tuple(shape)} and dtype {dtype} needs {nbytes} bytes, "
                         f"its data_offsets span {end - begin}: the file is damaged")
    if end > data_size:
        raise ValueError(f"{path}: {name} ends at byte {end} of the data, which holds only {data_size} bytes: "
                         "the file is damaged or truncated")
    return Entry(dtype, tuple(shape), begin, end)


def read_header(f, path):
    """``({name: Entry}, data_start)`` of the open safetensors file ``f``, every entry checked.

    Raises ``ValueError`` naming ``path`` for a header that is not a JSON object, an entry with an
    unknown dtype, a shape that is not a list of non-negative ints, offsets outside the file or not
    matching the shape, and two tensors whose bytes overlap.
    """
    size = f.seek(0, 2)
    f.seek(0)
    n = int.from_bytes(f.read(8), "little")
    if size < 8 or n > MAX_HEADER or 8 + n > size:
        raise ValueError(f"{path} is not a safetensors file: expected an 8-byte header length followed by "
                         f"a JSON header, but the length reads {n} in a file of {size} bytes")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path} is not a safetensors file: its header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: its header is a JSON {type(header).__name__}, "
                         "not an object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: __metadata__ should be an object of strings, got {metadata!r}")
    data_start = 8 + n
    entries = {name: _entry(path, name, info, size - data_start) for name, info in header.items()}
    spans = sorted((e.begin, e.end, name) for name, e in entries.items() if e.end > e.begin)
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError(f"{path}: {first} and {second} claim the same bytes of the file: it is damaged")
    return entries, data_start


def read_shapes(path):
    """``{name: shape}`` of a safetensors file, from its header alone."""
    with open(path, "rb") as f:
        entries, _ = read_header(f, path)
    return {name: e.shape for name, e in entries.items()}


def load_safetensors(path):
    """``{name: np.ndarray}``: owned arrays in the stored dtype, BF16 widened to float32 exactly."""
    tensors = {}
    with open(path, "rb") as f:
        entries, data_start = read_header(f, path)
        for name, e in entries.items():
            array = np.empty(e.shape, DTYPES[e.dtype])  # e.end - e.begin bytes, checked inside the file
            f.seek(data_start + e.begin)
            if f.readinto(array.reshape(-1).view(np.uint8)) != array.nbytes:  # straight into the owned array
                raise ValueError(f"{path}: {name} should span {array.nbytes} bytes, the file gives fewer: "
                                 "the file is damaged or truncated")
            tensors[name] = bfloat16_to_float32(array) if e.dtype == "BF16" else array
    return tensors
