"""Damaged and hostile weight files: safetensors, its shard index, PyTorch .bin (zip and legacy), tf_model.h5.

Proves the contract of DESIGN.md "Reading files" on generated corruptions of a small valid checkpoint
(truncations, flipped, inserted and deleted bytes, edited safetensors headers and shard indices): every
load gives a model that runs, or a ValueError / FileNotFoundError naming the file; and the worst cases
seen by users, as plain tests, including a header declaring terabytes refused before any allocation.
"""
import json
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minideberta.checkpoints.weights import load_state_dict

from corruption import (
    CONFIG,
    EXAMPLES,
    assert_contract,
    byte_edits,
    damaged,
    json_values,
    load_and_run,
    safetensors_bytes,
    safetensors_parts,
    tiny_model,
    write_config,
)

TF_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tf" / "v3tiny-seqcls"


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """The bytes of each format of one small model, and a scratch folder for the damaged copies."""
    model = tiny_model()
    root = tmp_path_factory.mktemp("valid")
    model.save_pretrained(root / "st")
    tensors = {k: torch.from_numpy(v) for k, v in model.params.items()}
    torch.save(tensors, root / "zip.bin")
    torch.save(tensors, root / "legacy.bin", _use_new_zipfile_serialization=False)
    files = Files({"model.safetensors": (root / "st" / "model.safetensors").read_bytes(),
                   "zip": (root / "zip.bin").read_bytes(), "legacy": (root / "legacy.bin").read_bytes(),
                   "tf_model.h5": (TF_FIXTURE / "tf_model.h5").read_bytes()})
    return files, tmp_path_factory.mktemp("case")


class Files(dict):
    """The valid files by format; a short repr, for hypothesis' reports."""

    def __repr__(self):
        return f"Files({', '.join(f'{k}: {len(v)} bytes' for k, v in self.items())})"


def folder_with(case, name, data, config=None):
    """A fresh model folder holding config.json and ``data`` as the file ``name``."""
    folder = case / "model"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    if config is None:
        write_config(folder)
    else:
        (folder / "config.json").write_bytes(config)
    (folder / name).write_bytes(data)
    return folder


def test_the_valid_files_load(valid):
    files, case = valid
    expected = load_and_run(folder_with(case, "model.safetensors", files["model.safetensors"]))
    for kind in ("zip", "legacy"):
        np.testing.assert_array_equal(load_and_run(folder_with(case, "pytorch_model.bin", files[kind])), expected)
    config = (TF_FIXTURE / "config.json").read_bytes()
    assert load_and_run(folder_with(case, "tf_model.h5", files["tf_model.h5"], config)).shape == (2, 3)


# ---- generated corruptions ----
@EXAMPLES
@given(edits=byte_edits(4000))
def test_damaged_safetensors_bytes(valid, edits):
    files, case = valid
    folder = folder_with(case, "model.safetensors", damaged(files["model.safetensors"], edits))
    assert_contract(lambda: load_and_run(folder), folder)


FIELDS = ("dtype", "shape", "data_offsets")


@EXAMPLES
@given(data=st.data())
def test_edited_safetensors_header(valid, data):
    files, case = valid
    header, body = safetensors_parts(files["model.safetensors"])
    name = data.draw(st.sampled_from(sorted(set(header) - {"__metadata__"})))
    edit = data.draw(st.sampled_from(["field", "field", "shape", "offsets", "drop", "entry", "length", "metadata"]))
    if edit == "field":
        header[name][data.draw(st.sampled_from(FIELDS))] = data.draw(json_values())
    elif edit == "shape":  # plausible shapes: lists of ints, small to terabytes
        header[name]["shape"] = data.draw(st.lists(st.integers(-2, 2**41), max_size=4))
    elif edit == "offsets":
        header[name]["data_offsets"] = data.draw(st.lists(st.integers(-2, 2**41), min_size=2, max_size=2))
    elif edit == "drop":
        header[name].pop(data.draw(st.sampled_from(FIELDS)))
    elif edit == "entry":
        header[name] = data.draw(json_values())
    elif edit == "metadata":
        header["__metadata__"] = data.draw(json_values())
    length_error = data.draw(st.integers(-16, 16)) if edit == "length" else 0
    folder = folder_with(case, "model.safetensors", safetensors_bytes(header, body, length_error))
    assert_contract(lambda: load_and_run(folder), folder)


@EXAMPLES
@given(edits=byte_edits(3000), legacy=st.booleans())
def test_damaged_torch_bin(valid, edits, legacy):
    files, case = valid
    folder = folder_with(case, "pytorch_model.bin", damaged(files["legacy" if legacy else "zip"], edits))
    assert_contract(lambda: load_and_run(folder), folder)


@EXAMPLES
@given(edits=byte_edits(200_000))
def test_damaged_tf_h5(valid, edits):
    files, case = valid
    config = (TF_FIXTURE / "config.json").read_bytes()
    folder = folder_with(case, "tf_model.h5", damaged(files["tf_model.h5"], edits), config)
    assert_contract(lambda: load_and_run(folder), folder)


def write_sharded(case, model):
    """model.safetensors.index.json and two shards, as transformers writes them."""
    folder = case / "model"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    write_config(folder)
    names = sorted(model.params)
    weight_map = {}
    for i, part in enumerate((names[::2], names[1::2])):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        from minideberta.checkpoints.weights import save_safetensors

        save_safetensors({k: model.params[k] for k in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    return folder, {"metadata": {"total_size": 0}, "weight_map": weight_map}


SHARD_NAMES = ["../model-00001-of-00002.safetensors", "/etc/passwd", "model.safetensors.index.json",
               "sub/model-00001-of-00002.safetensors", "missing.safetensors", "", ".", "..", "config.json",
               "model-00001-of-00002.safetensors", "..\\x.safetensors", "C:\\x.safetensors"]


@EXAMPLES
@given(data=st.data())
def test_edited_shard_index(valid, data):
    _, case = valid
    folder, index = write_sharded(case, tiny_model())
    edit = data.draw(st.sampled_from(["shard", "shard", "map", "index", "bytes"]))
    if edit == "shard":
        name = data.draw(st.sampled_from(sorted(index["weight_map"])))
        index["weight_map"][name] = data.draw(st.one_of(st.sampled_from(SHARD_NAMES), json_values()))
    elif edit == "map":
        index["weight_map"] = data.draw(json_values())
    elif edit == "index":
        index = data.draw(json_values())
    text = json.dumps(index).encode()
    if edit == "bytes":
        text = damaged(text, data.draw(byte_edits(len(text))))
    (folder / "model.safetensors.index.json").write_bytes(text)
    assert_contract(lambda: load_and_run(folder), folder)


# ---- the worst cases, as plain tests ----
def header_with(files, edit):
    header, body = safetensors_parts(files["model.safetensors"])
    edit(header["classifier.weight"])
    return safetensors_bytes(header, body)


def refused(folder, match):
    with pytest.raises(ValueError, match=match) as error:
        load_and_run(folder)
    assert str(folder) in str(error.value)
    return str(error.value)


def test_shape_that_is_a_string(valid):
    files, case = valid
    folder = folder_with(case, "model.safetensors", header_with(files, lambda e: e.update(shape="32")))
    refused(folder, r"has shape '32': a shape is a list of at most 32 non-negative integers")
    folder = folder_with(case, "model.safetensors", header_with(files, lambda e: e.update(shape=["2", 32])))
    refused(folder, "has shape")


@pytest.mark.parametrize("shape, offsets", [([2147483648, 32], None), ([2**20, 2**20], [0, 2**42])])
def test_header_declaring_terabytes_is_refused_before_any_allocation(valid, shape, offsets):
    files, case = valid

    def edit(entry):
        entry["shape"] = shape
        entry["data_offsets"] = offsets or entry["data_offsets"]  # None: offsets unchanged (256 GiB claimed)

    folder = folder_with(case, "model.safetensors", header_with(files, edit))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="needs .* bytes|ends at byte"):
            load_state_dict(folder)
        peak = tracemalloc.get_traced_memory()[1]
        np.ones(2**20)  # the measure sees NumPy's allocations: 8 MiB shows
        seen = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20 and seen >= 2**23, (peak, seen)


@pytest.mark.parametrize("shard", ["../elsewhere.safetensors", "/etc/passwd", "sub/model.safetensors",
                                   "model.safetensors.index.json", "config.json"])
def test_shard_index_only_names_bare_shard_files_of_its_folder(valid, shard):
    _, case = valid
    folder, index = write_sharded(case, tiny_model())
    (folder.parent / "elsewhere.safetensors").write_bytes(valid[0]["model.safetensors"])  # a real file outside
    index["weight_map"][sorted(index["weight_map"])[0]] = shard
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    refused(folder, "a shard is a .safetensors or .bin file in the index's own folder")


def test_overlapping_tensors(valid):
    files, case = valid
    header, body = safetensors_parts(files["model.safetensors"])
    a, b = "classifier.weight", "pooler.dense.weight"
    header[b] = dict(header[a])  # same dtype, shape and bytes as a
    folder = folder_with(case, "model.safetensors", safetensors_bytes(header, body))
    refused(folder, "claim the same bytes")


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_truncated_and_corrupted_bin(valid, kind):
    files, case = valid
    data = files[kind]
    for cut in (10, len(data) // 2, len(data) - 30):
        refused(folder_with(case, "pytorch_model.bin", data[:cut]), "PyTorch checkpoint|truncated|damaged")
    middle = bytearray(data)
    middle[len(data) // 3:len(data) // 3 + 64] = bytes(64)
    assert_contract(lambda: load_and_run(folder_with(case, "pytorch_model.bin", bytes(middle))), case / "model")


def test_truncated_h5(valid):
    files, case = valid
    config = (TF_FIXTURE / "config.json").read_bytes()
    for cut in (0, 100, len(files["tf_model.h5"]) // 2):
        refused(folder_with(case, "tf_model.h5", files["tf_model.h5"][:cut], config), "HDF5|Keras|damaged")


def test_loads_are_quick(valid):
    """A damaged file is refused at once, not after a long allocation or loop."""
    files, case = valid
    folder = folder_with(case, "model.safetensors", header_with(files, lambda e: e.update(shape=[2**40, 2**40])))
    start = time.perf_counter()
    refused(folder, "needs")
    assert time.perf_counter() - start < 1
    assert CONFIG["num_hidden_layers"] == 2
