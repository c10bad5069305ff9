"""Read and write checkpoints, and match their names and shapes to a model's.

The files
---------
``model.safetensors`` is the plainest format there is: a JSON header of names, dtypes, shapes
and byte offsets, then the raw bytes (read and checked by :mod:`.safetensors_file`, rather than
by ``safetensors.numpy``, which cannot hold BF16: NumPy has none; BF16 is widened to float32
exactly). ``pytorch_model.bin`` is a pickle, read by :mod:`.torch_pickle` without torch;
``tf_model.h5`` a Keras HDF5 file, read by :mod:`.tf_h5` without TensorFlow.

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
import re
from pathlib import Path

import numpy as np

from ..backend import to_numpy
from ..json_file import read_json_object
from .safetensors_file import load_safetensors
from .tf_h5 import load_tf_h5
from .torch_pickle import load_torch_bin

# The checkpoint files of a folder, most preferred first (safetensors: smaller and safe to read) ...
CHECKPOINT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json", "pytorch.model.bin")
# ... then Microsoft's trainer's files, the highest step first, and last a TensorFlow file (read when it
# is the only checkpoint, or asked for with from_tf=True).
TRAINER_CHECKPOINT = re.compile(r"pytorch\.model-(\d+)\.bin")
TF_FILE = "tf_model.h5"
CHECKPOINT_NAMES = ", ".join(CHECKPOINT_FILES) + f", pytorch.model-<step>.bin (the highest step), {TF_FILE}"
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


def shard_files(index, weight_map=None):
    """The shard files a shard index names, each once and in order, checked to lie in its folder.

    ``weight_map`` is the index's parsed ``weight_map`` (read from ``index`` when None). A shard
    must be a bare file name (no folder, no ``..``) of a ``.safetensors`` or ``.bin`` file: an index
    never reaches outside its own folder, nor names another index.
    """
    index = Path(index)
    if weight_map is None:
        weight_map = read_weight_map(index)
    shards = []
    for shard in dict.fromkeys(weight_map.values()):
        if (Path(shard).name != shard or "\\" in shard or shard in (".", "..")
                or not shard.endswith((".safetensors", ".bin"))):
            raise ValueError(f"{index} names the shard {shard!r}: a shard is a .safetensors or .bin file "
                             "in the index's own folder, given by its bare name")
        shards.append(index.parent / shard)
    return shards


def read_weight_map(index):
    """The ``weight_map`` of a shard index, ``{parameter name: shard file name}``, checked."""
    weight_map = read_json_object(index).get("weight_map")
    if not (isinstance(weight_map, dict) and all(isinstance(v, str) for v in weight_map.values())):
        raise ValueError(f"{index} is not a shard index: expected JSON with a 'weight_map' "
                         "from parameter names to shard files")
    return weight_map


def _load_sharded(index):
    weight_map = read_weight_map(index)
    tensors = {}
    for shard in shard_files(index, weight_map):
        if not shard.is_file():
            raise FileNotFoundError(f"{index} names the shard {shard.name}, which is not in {index.parent}")
        tensors.update(_load_file(shard))
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise ValueError(f"{index} places {len(absent)} tensors in shards that lack them: "
                         f"{', '.join(absent)}")
    return tensors


def _load_file(path):
    if path.name.endswith(".index.json"):
        return _load_sharded(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    if path.suffix == ".h5":
        return load_tf_h5(path)
    return load_torch_bin(path)


def choose_checkpoint(names, from_tf=False):
    """The file name, of ``names`` (those in a folder or a hub repository), that holds the checkpoint:
    the first of CHECKPOINT_FILES present, else the ``pytorch.model-<step>.bin`` of the highest step,
    else ``tf_model.h5``; with ``from_tf`` only ``tf_model.h5``. None if there is none."""
    names = set(names)
    if from_tf:
        return TF_FILE if TF_FILE in names else None
    first = next((name for name in CHECKPOINT_FILES if name in names), None)
    if first is not None:
        return first
    steps = {int(m.group(1)): name for name in names if (m := TRAINER_CHECKPOINT.fullmatch(name))}
    if steps:
        return steps[max(steps)]
    return TF_FILE if TF_FILE in names else None


def checkpoint_file(folder, from_tf=False):
    """The checkpoint file of ``folder`` as :func:`choose_checkpoint` picks it; FileNotFoundError, saying
    what was looked for and what the folder holds, when there is none."""
    folder = Path(folder)
    name = choose_checkpoint((p.name for p in folder.iterdir() if p.is_file()), from_tf)
    if name is not None:
        return folder / name
    if from_tf:
        raise FileNotFoundError(f"from_tf=True, but {folder} has no {TF_FILE}")
    content = sorted(p.name for p in folder.iterdir())
    raise FileNotFoundError(
        f"no checkpoint in {folder}: looked for {CHECKPOINT_NAMES}; the folder holds "
        f"{content[:20] or 'nothing'}. Pass the checkpoint file itself if it has another name")


def load_state_dict(path, from_tf=False):
    """Read a checkpoint as ``{name: np.ndarray}``, names and dtypes as stored.

    ``path`` is a checkpoint file (``.safetensors``, a torch ``.bin`` such as Microsoft's
    ``pytorch.model.bin``, a Keras ``tf_model.h5``, or a shard index ``*.index.json``) or a folder,
    in which the file :func:`checkpoint_file` picks is read (the order: :data:`CHECKPOINT_FILES`, then
    Microsoft's ``pytorch.model-<step>.bin``, the highest step, then ``tf_model.h5``; ``from_tf=True``
    reads ``tf_model.h5`` whatever else the folder holds). A TF file comes back under Hugging Face's
    PyTorch names and layouts (``tf_h5.py``). float16 stays float16; bfloat16, which NumPy lacks,
    becomes float32 exactly. Arrays are owned and C-contiguous.

    A damaged or hostile file raises ``ValueError`` naming the file and what is wrong with it, a
    missing one ``FileNotFoundError``; sizes are checked against the file before anything is
    allocated.
    """
    path = Path(path)
    if path.is_dir():
        return _load_file(checkpoint_file(path, from_tf))
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass a checkpoint file or its folder")
    return _load_file(path)


def save_safetensors(state_dict, path, metadata=None):
    """Write ``{name: array}`` to a safetensors file that transformers can load.

    Each array is written as a C-contiguous copy (views, and arrays sharing memory, are
    fine) with its own dtype. ``metadata`` (str to str) defaults to ``{"format": "pt"}``,
    which transformers requires.
    """
    try:
        from safetensors.numpy import save_file  # here, not at the top: the model's math needs NumPy only
    except ImportError:
        raise ModuleNotFoundError(f"writing {path} needs safetensors, which is not installed: pip install safetensors "
                                  "(or pip install -e .)") from None
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


_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d{1,9})\.")


def check_layer_count(num_hidden_layers, state_dict):
    """Refuse a config that asks for more encoder layers than the checkpoint holds.

    Called before the model lists its parameters, so that a damaged config.json
    (``num_hidden_layers`` = 2**30) is refused at once instead of building names for ever.
    """
    held = {int(m.group(1)) for name in state_dict if (m := _LAYER.search(name))}
    if num_hidden_layers > len(held):
        raise ValueError(f"the config asks for num_hidden_layers={num_hidden_layers}, but the checkpoint holds "
                         f"{len(held)} encoder layers: do config.json and the weights belong together?")


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
