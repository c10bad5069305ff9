"""Helpers for the corrupted-file tests: a small valid model folder, ways to damage a file, and the contract.

The contract (DESIGN.md, "Reading files"): a load either gives a model (or tokenizer) that runs, or raises
ValueError / FileNotFoundError whose message names the file; nothing else escapes.
"""
import json
import struct
import warnings

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from minideberta import DebertaV2Config, DebertaV2ForSequenceClassification

# Deterministic, so CI sees the same examples every run; a deadline per load.
EXAMPLES = settings(max_examples=150, deadline=3000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# v3-like and tiny: relative attention with log buckets, shared keys, LayerNorm on the relative table.
CONFIG = {"model_type": "deberta-v2", "vocab_size": 40, "hidden_size": 8, "num_hidden_layers": 2,
          "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16,
          "relative_attention": True, "position_buckets": 4, "norm_rel_ebd": "layer_norm", "share_att_key": True,
          "pos_att_type": "p2c|c2p", "position_biased_input": False, "type_vocab_size": 0,
          "id2label": {"0": "a", "1": "b", "2": "c"}, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
IDS = np.array([[1, 5, 9, 13, 2], [1, 7, 2, 0, 0]])
MASK = (IDS != 0).astype(np.int64)
ACCEPTED = (ValueError, FileNotFoundError)


def tiny_model(seed=0):
    return DebertaV2ForSequenceClassification(DebertaV2Config(**CONFIG), seed=seed)


def write_config(folder, config=CONFIG):
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def load_and_run(folder):
    """What a user does: load the folder, run the model once (a warning about unused arrays is fine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = DebertaV2ForSequenceClassification.from_pretrained(folder)
    return model(IDS, attention_mask=MASK).logits


def assert_contract(action, folder):
    """``action()`` succeeds, or raises ValueError / FileNotFoundError naming a file of ``folder``.

    Anything else (TypeError, KeyError, MemoryError, h5py's OSError...) escapes and fails the test.
    """
    try:
        action()
    except ACCEPTED as error:
        message = str(error)
        assert str(folder) in message, f"the message does not name the file: {message}"
        return error
    return None


# ---- damaging bytes ----
def byte_edits(max_position):
    """A list of edits: cut the file at a position, flip a bit, insert bytes, or delete a run."""
    position = st.integers(0, max_position)
    edit = st.one_of(
        st.tuples(st.just("cut"), position),
        st.tuples(st.just("flip"), position, st.integers(0, 7)),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), position, st.integers(1, 16)),
    )
    return st.lists(edit, min_size=1, max_size=4)


def damaged(data, edits):
    """``data`` with ``edits`` applied in order (positions taken modulo the current length)."""
    data = bytearray(data)
    for kind, at, *rest in edits:
        at = at % max(len(data), 1)
        if kind == "cut":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= 1 << rest[0]
        elif kind == "insert":
            data[at:at] = rest[0]
        elif kind == "delete":
            del data[at:at + rest[0]]
    return bytes(data)


# ---- damaging JSON values ----
def json_values():
    """Values a damaged or hand-edited JSON file may hold where a number, string or list belongs."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-2**45, 2**45), st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, 1, -1, 2, 3, 7, 8, 16, 2**31, 2**40, 1099511627776, 0.5, 1e-7]),
        st.text(max_size=6), st.sampled_from(["gelu", "relu", "p2c|c2p", "c2p", "layer_norm", "none", "LABEL_0"]))
    return st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2))


def safetensors_parts(data):
    """``(header dict, tensor bytes)`` of a safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def safetensors_bytes(header, body, length_error=0):
    """A safetensors file of ``header`` and ``body``; ``length_error`` makes the declared header length wrong."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", max(len(text) + length_error, 0)) + text + body
