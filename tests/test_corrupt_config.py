"""Damaged and hand-edited config.json: every value checked, nothing built before the checkpoint is matched.

Proves, on generated edits of a small valid folder (a key set to any JSON value or removed, the file's
bytes damaged): the load gives a model that runs, or a ValueError / FileNotFoundError naming config.json
(or the checkpoint it no longer fits); and the worst cases users met, as plain tests: num_hidden_layers
= 2**40 (and 2**30, within the range) refused at once, max_relative_positions null or a string,
pos_att_type an integer.
"""
import json
import shutil
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minideberta import DebertaV2Config

from corruption import CONFIG, EXAMPLES, assert_contract, byte_edits, damaged, json_values, load_and_run, tiny_model

KEYS = sorted(set(CONFIG) | {"num_labels", "cls_dropout", "embedding_size", "attention_head_size", "conv_kernel_size",
                             "conv_groups", "conv_act", "pooler_hidden_size", "pooler_dropout", "pooler_hidden_act",
                             "max_relative_positions", "layer_norm_eps", "hidden_act", "pad_token_id", "legacy",
                             "initializer_range", "problem_type", "label2id", "tie_word_embeddings"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tiny_model().save_pretrained(folder)
    return folder


def with_config(folder, config_bytes):
    (folder / "config.json").write_bytes(config_bytes)
    return folder


def test_the_valid_config_loads(folder):
    assert load_and_run(folder).shape == (2, 3)


@EXAMPLES
@given(key=st.sampled_from(KEYS), value=json_values(), remove=st.booleans())
def test_edited_config_value(folder, key, value, remove):
    config = json.loads((folder / "config.json").read_text())
    if remove:
        config.pop(key, None)
    else:
        config[key] = value
    original = (folder / "config.json").read_bytes()
    try:
        with_config(folder, json.dumps(config).encode())
        assert_contract(lambda: load_and_run(folder), folder)
    finally:
        with_config(folder, original)


@EXAMPLES
@given(edits=byte_edits(2000))
def test_damaged_config_bytes(folder, edits):
    original = (folder / "config.json").read_bytes()
    try:
        with_config(folder, damaged(original, edits))
        assert_contract(lambda: load_and_run(folder), folder)
    finally:
        with_config(folder, original)


def refused(folder, key, value, match):
    original = (folder / "config.json").read_bytes()
    config = json.loads(original)
    config[key] = value
    try:
        with_config(folder, json.dumps(config).encode())
        start = time.perf_counter()
        with pytest.raises(ValueError, match=match) as error:
            load_and_run(folder)
        assert time.perf_counter() - start < 1, "refused, but slowly"
    finally:
        with_config(folder, original)
    assert str(folder / "config.json") in str(error.value) or "does not fit" in str(error.value)
    return str(error.value)


def test_a_trillion_layers_is_refused_at_once(folder):
    refused(folder, "num_hidden_layers", 1099511627776, "num_hidden_layers must be a positive integer")


def test_a_billion_layers_within_the_range_is_refused_before_building_them(folder):
    message = refused(folder, "num_hidden_layers", 2**30, "num_hidden_layers=1073741824, but the checkpoint holds 2")
    assert "model.safetensors" in message


@pytest.mark.parametrize("key, value, match", [
    ("max_relative_positions", None, "max_relative_positions must be an integer"),
    ("max_relative_positions", "512", "max_relative_positions must be an integer"),
    ("pos_att_type", 3, "pos_att_type must be null, a string"),
    ("pos_att_type", ["p2c", 1], "pos_att_type must be null, a string"),
    ("position_buckets", 2.5, "position_buckets must be an integer"),
    ("hidden_act", None, "hidden_act must be a string"),
    ("hidden_dropout_prob", "0.1", "hidden_dropout_prob must be a number"),
    ("relative_attention", "true", "relative_attention must be true or false"),
    ("num_attention_heads", 0, "num_attention_heads must be a positive integer"),
    ("id2label", ["a", "b"], "id2label must map label ids to names"),
    ("id2label", {"zero": "a"}, "id2label keys must be integers"),
    ("num_labels", 2**40, "num_labels must be an integer from 0"),
    ("pad_token_id", 40, "pad_token_id .* below vocab_size"),
    ("vocab_size", 2**40, "vocab_size must be a positive integer"),
    ("norm_rel_ebd", 1, "norm_rel_ebd must be a string"),
    ("layer_norm_eps", True, "layer_norm_eps must be a positive number"),
])
def test_bad_values_name_the_field_and_the_file(folder, key, value, match):
    refused(folder, key, value, match)


@pytest.mark.parametrize("text, match", [
    (b"", "is not valid JSON"), (b"[1, 2]", "should hold a JSON object"), (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nests JSON too deeply|not valid JSON"),
])
def test_config_that_is_not_a_json_object(folder, text, match):
    original = (folder / "config.json").read_bytes()
    try:
        with_config(folder, text)
        with pytest.raises(ValueError, match=match) as error:
            DebertaV2Config.from_pretrained(folder)
    finally:
        with_config(folder, original)
    assert str(folder / "config.json") in str(error.value)


def test_missing_config(folder, tmp_path):
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_and_run(tmp_path)


def test_hub_load_model_names_the_folder(folder, tmp_path, vocab_file):
    """The command line's loader (loading.load_model) keeps the contract too."""
    from minideberta.loading import load_model

    shutil.copytree(folder, tmp_path / "m")
    shutil.copy(vocab_file, tmp_path / "m" / "spm.model")
    model, _ = load_model(tmp_path / "m", "sequence-classification")
    assert model.config.num_labels == 3
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for key, value in (("hidden_size", 16), ("max_relative_positions", None), ("num_hidden_layers", 2**30)):
        (tmp_path / "m" / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(ValueError, match=key) as error:
            load_model(tmp_path / "m", "sequence-classification")
        assert str(tmp_path / "m") in str(error.value)
