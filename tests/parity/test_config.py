"""DebertaV2Config reads, defaults, writes and validates configs as transformers does.

Proves: every official config.json of tests/fixtures/configs/ loads; pos_att_type as "a|b" string or list; keys a file
omits take transformers' defaults, both DebertaV2Config's and the getattr(config, key, default)
fallbacks of transformers' modelling code; id2label string keys become ints; num_labels; a
save/load round trip is lossless and transformers reads what we write; bad values raise a
ValueError that names the field.
"""
import re

import pytest
import transformers
from transformers.models.deberta_v2 import modeling_deberta_v2

from minideberta import DebertaV2Config

from reference import CONFIGS, official_path

OFFICIAL_FILES = sorted(CONFIGS.glob("*.json"))
assert len(OFFICIAL_FILES) == 11, f"expected the 11 official config.json files in {CONFIGS}"

# What transformers' modelling code uses when the config lacks a key: getattr(config, key, default).
# (ConvLayer's own conv_kernel_size default 3 only applies once the encoder, with default 0, built it.)
GETATTR_DEFAULTS = {
    "attention_head_size": lambda c: c.hidden_size // c.num_attention_heads,
    "share_att_key": lambda c: False,
    "relative_attention": lambda c: False,
    "position_buckets": lambda c: -1,
    "max_relative_positions": lambda c: -1,
    "conv_kernel_size": lambda c: 0,
    "conv_groups": lambda c: 1,
    "conv_act": lambda c: "tanh",
    "pad_token_id": lambda c: 0,
    "embedding_size": lambda c: c.hidden_size,
    "position_biased_input": lambda c: True,
    "norm_rel_ebd": lambda c: "none",
    "num_labels": lambda c: 2,
    "cls_dropout": lambda c: None,
}


def transformers_value(hf, key):
    """The value transformers' model code uses for ``key`` of the transformers config ``hf``."""
    return getattr(hf, key, GETATTR_DEFAULTS[key](hf)) if key in GETATTR_DEFAULTS else getattr(hf, key)


def assert_same_as_transformers(ours, hf):
    keys = (set(hf.to_dict()) & set(ours.to_dict())) | set(GETATTR_DEFAULTS)
    assert {"hidden_size", "pos_att_type", "id2label", "layer_norm_eps", "pooler_hidden_size"} <= keys
    for key in sorted(keys):
        theirs = transformers_value(hf, key)
        if key == "pos_att_type":
            theirs = theirs or []  # None and [] mean the same: no position terms
        assert getattr(ours, key) == theirs, key


def test_getattr_defaults_cover_transformers_modeling_code():
    """The table above lists every key transformers' modelling code reads with a default."""
    source = open(modeling_deberta_v2.__file__, encoding="utf-8").read()
    read = set(re.findall(r'getattr\(config, "(\w+)"', source))
    assert read and read <= set(GETATTR_DEFAULTS), read - set(GETATTR_DEFAULTS)


@pytest.mark.parametrize("path", OFFICIAL_FILES, ids=lambda p: p.stem if p else "none")
def test_official_config_loads_as_transformers_reads_it(path):
    ours = DebertaV2Config.from_pretrained(path)
    assert_same_as_transformers(ours, transformers.DebertaV2Config.from_pretrained(path))
    assert set(ours.pos_att_type) == {"c2p", "p2c"}


@pytest.mark.parametrize("path", OFFICIAL_FILES, ids=lambda p: p.stem if p else "none")
def test_round_trip(path, tmp_path):
    ours = DebertaV2Config.from_pretrained(path)
    ours.save_pretrained(tmp_path)
    again = DebertaV2Config.from_pretrained(tmp_path)
    assert again == ours and again.to_dict() == ours.to_dict()
    assert_same_as_transformers(ours, transformers.DebertaV2Config.from_pretrained(tmp_path))


def test_defaults_equal_transformers():
    assert_same_as_transformers(DebertaV2Config(), transformers.DebertaV2Config())


@pytest.mark.parametrize("kwargs", [
    {"hidden_size": 64, "num_attention_heads": 4, "relative_attention": True},
    {"vocab_size": 1000, "hidden_size": 48, "num_attention_heads": 3, "embedding_size": 16, "num_labels": 7},
    {"hidden_size": 32, "num_attention_heads": 2, "attention_head_size": 16, "conv_kernel_size": 3},
], ids=["relative", "embedding_size+labels", "v2-style"])
def test_keyword_configs_equal_transformers(kwargs):
    assert_same_as_transformers(DebertaV2Config(**kwargs), transformers.DebertaV2Config(**kwargs))


@pytest.mark.parametrize("value, expected", [
    ("p2c|c2p", ["p2c", "c2p"]),
    (" C2P | p2c ", ["c2p", "p2c"]),
    ("c2p", ["c2p"]),
    (["p2c"], ["p2c"]),
    (["c2p", "p2c"], ["c2p", "p2c"]),
    (None, []),
    ([], []),
], ids=["official-string", "spaces-and-case", "one-string", "list-one", "list-two", "None", "empty-list"])
def test_pos_att_type_forms(value, expected):
    assert DebertaV2Config(pos_att_type=value).pos_att_type == expected
    assert (transformers.DebertaV2Config(pos_att_type=value).pos_att_type or []) == expected


def test_id2label_string_keys_become_ints():
    path = official_path("MoritzLaurer__DeBERTa-v3-base-mnli.json")
    config = DebertaV2Config.from_pretrained(path)
    assert config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert config.label2id == {"entailment": 0, "neutral": 1, "contradiction": 2}
    assert config.num_labels == 3
    assert config.to_dict()["id2label"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}


@pytest.mark.parametrize("num_labels", [1, 2, 5])
def test_num_labels(num_labels):
    ours, theirs = DebertaV2Config(num_labels=num_labels), transformers.DebertaV2Config(num_labels=num_labels)
    assert ours.num_labels == theirs.num_labels == num_labels
    assert ours.id2label == theirs.id2label


def test_unknown_keys_survive_a_round_trip(tmp_path):
    config = DebertaV2Config(architectures=["DebertaV2ForSequenceClassification"], transformers_version="4.39.3")
    config.save_pretrained(tmp_path)
    again = DebertaV2Config.from_pretrained(tmp_path)
    assert again.architectures == ["DebertaV2ForSequenceClassification"]
    assert again.transformers_version == "4.39.3"


INVALID = [
    ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
    ({"hidden_size": 64, "num_attention_heads": 4, "attention_head_size": 8}, "attention_head_size"),
    ({"hidden_act": "swish2"}, "hidden_act"),
    ({"conv_act": "sigmoid"}, "conv_act"),
    ({"pooler_hidden_act": "softmax"}, "pooler_hidden_act"),
    ({"hidden_size": 32, "num_attention_heads": 2, "pooler_hidden_size": 16}, "pooler_hidden_size"),
    ({"pos_att_type": "c2p|p2p"}, "pos_att_type"),
    ({"pos_att_type": ["c2c"]}, "pos_att_type"),
    ({"conv_kernel_size": 4}, "conv_kernel_size"),
    ({"conv_kernel_size": -1}, "conv_kernel_size"),
    ({"hidden_size": 32, "num_attention_heads": 2, "conv_kernel_size": 3, "conv_groups": 3}, "conv_groups"),
    ({"norm_rel_ebd": "batch_norm"}, "norm_rel_ebd"),
    ({"problem_type": "ranking"}, "problem_type"),
    ({"num_labels": 3, "id2label": {"0": "a", "1": "b"}}, "num_labels"),
    ({"layer_norm_eps": 0}, "layer_norm_eps"),
    ({"layer_norm_eps": float("nan")}, "layer_norm_eps"),
    ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob"),
    ({"attention_probs_dropout_prob": -0.1}, "attention_probs_dropout_prob"),
    ({"type_vocab_size": -1}, "type_vocab_size"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"num_hidden_layers": 2.5}, "num_hidden_layers"),
    ({"intermediate_size": True}, "intermediate_size"),
    ({"max_position_embeddings": 0}, "max_position_embeddings"),
    # log buckets need a maximum distance above position_buckets/2 + 1 (else they run backwards or divide by 0)
    ({"relative_attention": True, "position_buckets": 16, "max_relative_positions": 6}, "position_buckets"),
    ({"relative_attention": True, "position_buckets": 256, "max_position_embeddings": 129}, "position_buckets"),
]


INVALID_IDS = [",".join(f"{k}={v}" for k, v in kwargs.items()) for kwargs, _ in INVALID]


@pytest.mark.parametrize("kwargs, field", INVALID, ids=INVALID_IDS)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        DebertaV2Config(**kwargs)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        DebertaV2Config.from_pretrained(tmp_path)
