"""Read and write checkpoints, and match their names and shapes to a model's.

The files
---------
``model.safetensors`` is the plainest format there is: 8 bytes giving the length N of a
JSON header (little-endian), N bytes of JSON, then the raw bytes of every tensor::

    {"deberta.embeddings.word_embeddings.weight":
         {"dtype": "F32", "shape": [128100, 768], "data_offsets": [0, 393523200]},
     ...,
     "__metadata__": {"format": "pt"}}

``data_offsets`` count from the end of the header. There is no code in it, so reading
one is safe. It is read here rather than by ``safetensors.numpy``, which cannot hold the
BF16 dtype (NumPy has none); BF16 is widened to float32 exactly.

``pytorch_model.bin`` is a pickle, read by :mod:`minideberta.torch_pickle` without torch.

A big model is *sharded*: ``model.safetensors.index.json`` (or ``pytorch_model.bin.index.json``)
holds ``{"weight_map": {name: shard file}}`` and each shard is an ordinary checkpoint.

Which file of a folder is read
------------------------------
:data:`CHECKPOINT_FILES`, the one list every reader uses (``load_state_dict``, ``hub.py``'s
download and head detection): the first present of ``model.safetensors``, its shard index,
``pytorch_model.bin``, its shard index, and Microsoft's names: ``pytorch.model.bin`` (its
releases), then ``pytorch.model-<step>.bin``, what Microsoft's trainer (``DeBERTa/training/
trainer.py``) writes at every evaluation, step zero-padded to six digits: of several, the highest
step (the latest checkpoint of the run), compared as numbers.

The names
---------
minideberta uses Hugging Face's names, ``deberta.encoder.layer.0.attention.self.query_proj.weight``.
Microsoft's original code (github.com/microsoft/DeBERTa) builds the same modules under the
same attribute names (``query_proj``, ``pos_key_proj``, ``encoder.rel_embeddings``,
``encoder.LayerNorm``, ``encoder.conv``, ``pooler.dense``, ``classifier``...), so most names
agree. :func:`to_hf_names` handles the rest with two rules:

1. The backbone (``embeddings.*``, ``encoder.*``) comes bare, under ``deberta.`` or under
   ``bert.``: Microsoft's ``DeBERTa.apply_state`` takes whatever precedes ``embeddings.`` as
   the prefix, and its task models rename ``bert.`` to ``deberta.`` on load. The model
   decides which it wants: HF's ``DebertaV2Model`` has no prefix, every HF head class has
   ``deberta.``.
2. Heads with two names are listed in ``_HEAD_ALIASES``. Microsoft's pre-training heads are
   ``lm_predictions.lm_head.*`` (masked LM) and ``mask_predictions.*`` (replaced-token
   detection), which transformers does not have, or has under another name.

DeBERTa v1 files (one fused ``in_proj``) are another architecture and are not mapped.
"""
import json
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from ..backend import to_numpy
from .torch_pickle import bfloat16_to_float32, load_torch_bin

_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
                       "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
# The checkpoint files of a folder, most preferred first (safetensors: smaller and safe to read).
CHECKPOINT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json", "pytorch.model.bin")
# ... and after them Microsoft's trainer's files, the highest step first.
TRAINER_CHECKPOINT = re.compile(r"pytorch\.model-(\d+)\.bin")
CHECKPOINT_NAMES = ", ".join(CHECKPOINT_FILES) + ", pytorch.model-<step>.bin (the highest step)"
_BACKBONE = ("embeddings.", "encoder.")
_BACKBONE_PREFIXES = ("deberta.", "bert.")
# Each pair names one parameter two ways; whichever the model expects is used.
_HEAD_ALIASES = (
    # MLM head: Microsoft's EnhancedMaskDecoder (DeBERTa/apps/models/masked_language_model.py)
    # holds lm_head = BertLMPredictionHead (DeBERTa/deberta/bert.py); HF keeps that name
    # with legacy=False, and with legacy=True (its default) uses BERT's cls.predictions.
    ("lm_predictions.lm_head.dense.", "cls.predictions.transform.dense."),
    ("lm_predictions.lm_head.LayerNorm.", "cls.predictions.transform.LayerNorm."),
    ("lm_predictions.lm_head.bias", "cls.predictions.bias"),
    # RTD head: the first version of replaced_token_detection_model.py misspelt it.
    ("mask_predictions.classifer.", "mask_predictions.classifier."),
)


def _load_safetensors(path):
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        n = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(n)) if 8 + n <= size else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise ValueError(f"{path} is not a safetensors file: expected an 8-byte header "
                             "length followed by a JSON header")
        tensors = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(info, dict) or {"dtype", "shape", "data_offsets"} - set(info):
                raise ValueError(f"{path}: the header entry of {name} lacks dtype, shape or "
                                 "data_offsets: the file is damaged")
            if info["dtype"] not in _SAFETENSORS_DTYPES:
                raise ValueError(f"{path}: {name} has dtype {info['dtype']}, which minideberta "
                                 f"does not read (it reads {', '.join(_SAFETENSORS_DTYPES)})")
            array = np.empty(info["shape"], _SAFETENSORS_DTYPES[info["dtype"]])
            begin, end = info["data_offsets"]
            f.seek(8 + n + begin)
            into = array.reshape(-1).view(np.uint8)  # read straight into the owned array
            if begin < 0 or end - begin != array.nbytes or f.readinto(into) != array.nbytes:
                raise ValueError(f"{path}: {name} should span {array.nbytes} bytes, the header or "
                                 "the file gives fewer: the file is damaged or truncated")
            tensors[name] = bfloat16_to_float32(array) if info["dtype"] == "BF16" else array
    return tensors


def _load_sharded(index):
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{index} is not a shard index: expected JSON with a 'weight_map' "
                         "from parameter names to shard files") from None
    tensors = {}
    for shard in dict.fromkeys(weight_map.values()):  # each shard once, in order
        tensors.update(_load_file(index.parent / shard))
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise ValueError(f"{index} places {len(absent)} tensors in shards that lack them: "
                         f"{', '.join(absent)}")
    return tensors


def _load_file(path):
    if path.name.endswith(".index.json"):
        return _load_sharded(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return load_torch_bin(path)


def choose_checkpoint(names):
    """The file name, of ``names`` (those in a folder or a hub repository), that holds the checkpoint:
    the first of CHECKPOINT_FILES present, else the ``pytorch.model-<step>.bin`` of the highest step;
    None if there is none."""
    names = set(names)
    first = next((name for name in CHECKPOINT_FILES if name in names), None)
    if first is not None:
        return first
    steps = {int(m.group(1)): name for name in names if (m := TRAINER_CHECKPOINT.fullmatch(name))}
    return steps[max(steps)] if steps else None


def checkpoint_file(folder):
    """The checkpoint file of ``folder`` as :func:`choose_checkpoint` picks it, or None."""
    folder = Path(folder)
    name = choose_checkpoint(p.name for p in folder.iterdir() if p.is_file())
    return None if name is None else folder / name


def load_state_dict(path):
    """Read a checkpoint as ``{name: np.ndarray}``, names and dtypes as stored.

    ``path`` is a checkpoint file (``.safetensors``, a torch ``.bin``, or a shard index
    ``*.index.json``) or a folder, in which the file :func:`checkpoint_file` picks is read
    (the order: :data:`CHECKPOINT_FILES`, then Microsoft's ``pytorch.model-<step>.bin``, the
    highest step). float16 stays float16; bfloat16, which NumPy lacks, becomes float32 exactly.
    Arrays are owned and C-contiguous.
    """
    path = Path(path)
    if path.is_dir():
        found = checkpoint_file(path)
        if found is not None:
            return _load_file(found)
        content = sorted(p.name for p in path.iterdir())
        raise FileNotFoundError(
            f"no checkpoint in {path}: looked for {CHECKPOINT_NAMES}; the folder holds "
            f"{content[:20] or 'nothing'}. Pass the checkpoint file itself if it has another name")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass a checkpoint file or its folder")
    return _load_file(path)


def save_safetensors(state_dict, path, metadata=None):
    """Write ``{name: array}`` to a safetensors file that transformers can load.

    Each array is written as a C-contiguous copy (views, and arrays sharing memory, are
    fine) with its own dtype. ``metadata`` (str to str) defaults to ``{"format": "pt"}``,
    which transformers requires.
    """
    arrays = {name: np.asarray(to_numpy(a), order="C") for name, a in state_dict.items()}
    save_file(arrays, str(path), metadata={"format": "pt"} if metadata is None else metadata)


def _spellings(name):
    """Every name that ``name`` may stand for, its own first."""
    yield name
    for a, b in _HEAD_ALIASES:
        for old, new in ((a, b), (b, a)):
            if name.startswith(old):
                yield new + name[len(old):]
    core = next((name[len(p):] for p in _BACKBONE_PREFIXES if name.startswith(p)), name)
    if core.startswith(_BACKBONE):
        yield core
        yield "deberta." + core


def to_hf_names(state_dict, expected_names):
    """Rename a Microsoft-named (or otherwise prefixed) state dict to the model's names.

    ``expected_names`` is the set of names the model wants. Each stored name becomes the
    first of its spellings the model expects: itself, its head alias (``_HEAD_ALIASES``),
    or its backbone name bare or under ``deberta.``. A name with no expected spelling is
    kept, so :func:`match_state_dict` reports it as unexpected. Arrays are not copied.
    Two stored names landing on one name raise ``ValueError``.
    """
    expected = set(expected_names)
    renamed, source = {}, {}
    for name, array in state_dict.items():
        new = next((s for s in _spellings(name) if s in expected), name)
        if new in renamed:
            raise ValueError(f"{source[new]} and {name} both map to {new}: the checkpoint holds "
                             "one parameter twice; drop one before loading")
        renamed[new], source[new] = array, name
    return renamed


def match_state_dict(expected, state_dict, tied=None):
    """Check a (renamed) state dict against the model's names and shapes.

    ``expected`` maps each parameter name to its shape; ``tied`` maps a tied copy's name to
    its source's (``cls.predictions.decoder.weight`` ->
    ``deberta.embeddings.word_embeddings.weight``).
    A tied copy is never required nor unexpected, and stands in for a missing source.

    Returns ``(params, unexpected)``: ``params`` holds every expected name except tied copies,
    with the stored arrays unchanged (same objects, same dtype: casting is the caller's
    choice); ``unexpected`` is the sorted list of stored names the model does not use.
    Raises ``ValueError`` listing every missing name and every wrong shape.
    """
    tied = tied or {}
    copies = {}
    for copy, src in tied.items():
        if copy in state_dict:
            copies.setdefault(src, copy)
    params, missing, wrong = {}, [], []
    for name, shape in expected.items():
        if name in tied:
            continue
        stored = name if name in state_dict else copies.get(name)
        if stored is None:
            missing.append(name)
        elif tuple(state_dict[stored].shape) != tuple(shape):
            wrong.append(f"  {name}: the model expects shape {tuple(shape)}, "
                         f"the checkpoint has {tuple(state_dict[stored].shape)}")
        else:
            params[name] = state_dict[stored]
    lines = []
    if missing:
        lines += [f"{len(missing)} parameters missing from the checkpoint:"]
        lines += [f"  {n}" for n in sorted(missing)]
    if wrong:
        lines += [f"{len(wrong)} parameters with the wrong shape (does the config match?):"]
        lines += wrong
    if lines:
        raise ValueError("\n".join(lines))
    unexpected = sorted(n for n in state_dict if n not in expected and n not in tied)
    return params, unexpected
