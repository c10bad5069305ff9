"""Argument checks shared by the library and the command line: integers, and the compute dtype.

    check_integer(max_length, "max_length", minimum=0)          # -> int, or an error naming max_length
    check_float_dtype(np.float32)                              # -> np.dtype("float32")
    check_config_types(values)                                 # a config's fields: types and ranges

A value of the wrong type raises :class:`NotAnInteger` / :class:`UnsupportedDtype`, which are both
``TypeError`` and ``ValueError`` (as NumPy's ``AxisError`` is both ``ValueError`` and
``IndexError``): callers that catch either, as the command line catches ``ValueError``, see it.
"""
import math
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


# ---- a config's fields (config.json is read from disk: anything may be in it) ----
# The largest size a field may hold: far above any real model, low enough that a damaged file
# (num_hidden_layers = 2**40) is refused here rather than building for ever.
MAX_SIZE = 2**31 - 1
MAX_LABELS = 2**20  # labels are named one by one (LABEL_0, LABEL_1...): a million is plenty
SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings", "embedding_size", "pooler_hidden_size", "attention_head_size",
         "type_vocab_size", "conv_kernel_size", "conv_groups")
SIGNED = ("max_relative_positions", "position_buckets")  # below 1: "use the default" (see max_relative)
FLAGS = ("relative_attention", "position_biased_input", "share_att_key", "legacy", "tie_word_embeddings")
STRINGS = ("hidden_act", "pooler_hidden_act", "conv_act", "norm_rel_ebd", "model_type")


def _is_int(value):
    """A whole number as Python or NumPy holds it (stored as int by _validate); not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config_types(values):
    """Refuse, naming the field, every value of the wrong type or out of range, before anything is
    derived from it (config.json is read from disk: anything may be in it)."""
    for name in SIZES:
        value = values[name]
        if value is None and name in ("embedding_size", "pooler_hidden_size", "attention_head_size"):
            continue
        low = 0 if name in ("type_vocab_size", "conv_kernel_size") else 1
        values[name] = check_integer(value, name)  # the type (one validator for the package) ...
        if not low <= values[name] <= MAX_SIZE:  # ... and the range
            kind = "positive" if low else "non-negative"
            raise ValueError(f"{name} must be a {kind} integer (at most {MAX_SIZE}), got {value!r}")
    for name in SIGNED:
        values[name] = check_integer(values[name], name)
        if abs(values[name]) > MAX_SIZE:
            raise ValueError(f"{name} must be an integer of at most {MAX_SIZE} in size (below 1 for the default), "
                             f"got {values[name]!r}")
    for name in FLAGS:
        if not isinstance(values[name], bool):
            raise ValueError(f"{name} must be true or false, got {values[name]!r}")
    for name in STRINGS:
        if not isinstance(values[name], str):
            raise ValueError(f"{name} must be a string, got {values[name]!r}")
    pad = values["pad_token_id"]
    if pad is not None and (not _is_int(pad) or pad < 0):
        raise ValueError(f"pad_token_id must be null or a non-negative integer, got {pad!r}")
    types = values["pos_att_type"]
    if not (types is None or isinstance(types, str)
            or (isinstance(types, (list, tuple)) and all(isinstance(t, str) for t in types))):
        raise ValueError(f"pos_att_type must be null, a string such as 'p2c|c2p' or a list of strings, got {types!r}")
    if not is_number(values["initializer_range"]) or values["initializer_range"] < 0:
        raise ValueError(f"initializer_range must be a number >= 0, got {values['initializer_range']!r}")
    if values["problem_type"] is not None and not isinstance(values["problem_type"], str):
        raise ValueError(f"problem_type must be null or a string, got {values['problem_type']!r}")


def config_labels(id2label, num_labels):
    """``{int id: str label}`` from config.json's ``id2label`` (keys may be strings) or ``num_labels``."""
    if num_labels is not None and (not _is_int(num_labels) or not 0 <= num_labels <= MAX_LABELS):
        raise ValueError(f"num_labels must be an integer from 0 to {MAX_LABELS}, got {num_labels!r}")
    if id2label is None:
        return {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
    if not isinstance(id2label, dict):
        raise ValueError(f"id2label must map label ids to names, got {type(id2label).__name__}")
    labels = {}
    for key, label in id2label.items():
        if _is_int(key):
            index = key
        elif isinstance(key, str) and key.strip().lstrip("-").isdigit():
            index = int(key)
        else:
            raise ValueError(f"id2label keys must be integers (or their strings), got {key!r}")
        if not isinstance(label, str):
            raise ValueError(f"id2label[{key!r}] must be a string, got {label!r}")
        labels[index] = label
    if sorted(labels) != list(range(len(labels))):
        raise ValueError(f"id2label must number its labels 0 to {len(labels) - 1}, got ids {sorted(labels)[:10]}")
    if num_labels is not None and num_labels != len(labels):
        raise ValueError(f"num_labels={num_labels} but id2label has {len(labels)} entries; give one or make them agree")
    return labels
