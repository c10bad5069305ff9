"""Bad inputs raise errors that say what is wrong; nothing is silently clipped or cast.

Proves that out-of-range, negative or non-integer ids, wrongly shaped ids and masks, empty
batches, sequences past max_position_embeddings (only where absolute positions exist: v3
models take longer ones), bad token types and positions, both or neither of input_ids and
inputs_embeds, inputs_embeds of the wrong dtype or width, and bad labels each raise a ValueError
whose message names the problem; that outputs keep the model's dtype; that the caller's arrays
are not modified; and that a float16 checkpoint loaded with dtype float64 gives float64 params.
"""
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

import minideberta

from reference import md_config, official_path, scaled_config


@pytest.fixture(scope="module")
def model():
    """A v3-style model (no absolute positions) with the real vocabulary size, float64."""
    d = scaled_config(official_path("v3-xsmall"), vocab_size=128100, num_hidden_layers=1)
    return minideberta.DebertaV2Model(md_config(d), dtype=np.float64)


@pytest.fixture(scope="module")
def positional():
    """A model with absolute positions (64) and two token types, float32."""
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1, position_biased_input=True,
                      max_position_embeddings=64, type_vocab_size=2)
    return minideberta.DebertaV2Model(md_config(d))


IDS = np.array([[1, 5, 7, 9], [2, 3, 4, 0]])
MASK = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])


@pytest.mark.parametrize("kwargs, message", [
    ({"input_ids": np.array([[1, 130000, 5]])}, "input_ids has id 130000 >= vocab_size 128100"),
    ({"input_ids": np.array([[1, -1, 5]])}, "input_ids has a negative id -1"),
    ({"input_ids": IDS.astype(np.float64)}, "input_ids must hold integers, got dtype float64"),
    ({"input_ids": np.array([1, 2, 3])}, "input_ids must be 2-D (batch, length), got shape (3,)"),
    ({"input_ids": IDS, "attention_mask": MASK[:, :3]}, "attention_mask has shape (2, 3); expected (2, 4)"),
    ({"input_ids": IDS, "attention_mask": MASK[0]}, "attention_mask has shape (4,); expected (2, 4)"),
    ({"input_ids": IDS, "attention_mask": np.ones((2, 4, 5))}, "attention_mask has shape (2, 4, 5)"),
    ({"input_ids": IDS, "attention_mask": np.array([["1"] * 4] * 2)}, "attention_mask must be numeric or boolean"),
    ({"input_ids": np.zeros((0, 4), np.int64)}, "empty input of shape (0, 4)"),
    ({"input_ids": np.zeros((2, 0), np.int64)}, "empty input of shape (2, 0)"),
    ({"input_ids": IDS, "token_type_ids": IDS[:, :2]}, "token_type_ids has shape (2, 2), expected (2, 4)"),
    ({"input_ids": IDS, "position_ids": np.arange(5)}, "position_ids has shape (5,)"),
    ({}, "give exactly one of input_ids and inputs_embeds"),
    ({"input_ids": IDS, "inputs_embeds": np.zeros((2, 4, 32))}, "give exactly one of input_ids and inputs_embeds"),
    ({"inputs_embeds": np.zeros((2, 4, 32), np.float32)},
     "inputs_embeds has dtype float32 but the model computes in float64"),
    ({"inputs_embeds": np.zeros((2, 4, 31))}, "inputs_embeds must have shape (batch, length, 32), got (2, 4, 31)"),
], ids=["id>=vocab", "negative-id", "float-ids", "1-D-ids", "short-mask", "1-D-mask", "3-D-mask-shape",
        "string-mask", "no-rows", "no-tokens", "token-type-shape", "position-shape", "neither", "both",
        "embeds-dtype", "embeds-width"])
def test_bad_input_says_what_is_wrong(model, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"input_ids": np.ones((1, 65), np.int64)},
     "sequence length 65 is longer than max_position_embeddings=64"),
    ({"input_ids": IDS, "token_type_ids": np.array([[0, 1, 2, 0], [0, 0, 0, 0]])},
     "token_type_ids has id 2 >= type_vocab_size 2"),
    ({"input_ids": IDS, "position_ids": np.array([[0, 1, 2, 64]])},
     "position_ids has id 64 >= max_position_embeddings 64"),
    ({"input_ids": IDS, "position_ids": np.array([0, -1, 2, 3])}, "position_ids has a negative id -1"),
], ids=["too-long", "token-type>=type_vocab", "position>=max", "negative-position"])
def test_bad_positions_and_types(positional, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        positional(**kwargs)


def test_relative_only_model_takes_longer_sequences(model):
    n = model.config.max_position_embeddings + 88
    out = model(np.ones((1, n), np.int64))
    assert out.last_hidden_state.shape == (1, n, 32)
    assert np.all(np.isfinite(out.last_hidden_state))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_keep_the_model_dtype(dtype):
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1, num_labels=3)
    classifier = minideberta.DebertaV2ForSequenceClassification(md_config(d), dtype=dtype)
    out = classifier(IDS.astype(np.int32), attention_mask=MASK.astype(bool), labels=np.array([0, 2]),
                     output_hidden_states=True, output_attentions=True)
    arrays = [out.logits, out.loss, *out.hidden_states, *out.attentions]
    assert all(a.dtype == dtype for a in arrays)
    embeds = np.random.default_rng(0).normal(size=(2, 4, 32)).astype(dtype)
    assert classifier(inputs_embeds=embeds).logits.dtype == dtype


def test_caller_arrays_are_not_modified(model):
    embeds = np.random.default_rng(0).normal(size=(2, 4, 32))
    mask = MASK.copy()
    before = embeds.copy()
    model(inputs_embeds=embeds, attention_mask=mask)
    np.testing.assert_array_equal(embeds, before)
    np.testing.assert_array_equal(mask, MASK)


@pytest.mark.parametrize("class_name, kwargs, message", [
    ("DebertaV2ForMaskedLM", {"labels": np.zeros((2, 3), np.int64)}, "labels have shape (2, 3)"),
    ("DebertaV2ForMaskedLM", {"labels": np.full((2, 4), 400)}, "labels has 400, outside [0, 320)"),
    ("DebertaV2ForTokenClassification", {"labels": np.array([[0, 1, 1, -7], [0, 0, 0, -100]])},
     "labels has -7, outside [0, 2)"),
    ("DebertaV2ForSequenceClassification", {"labels": np.array([0.5, 1.0])}, "must be integer class indices"),
    ("DebertaV2ForQuestionAnswering", {"start_positions": np.array([1, 2])},
     "give both start_positions and end_positions"),
    ("DebertaV2ForQuestionAnswering", {"start_positions": np.array([1, -2]), "end_positions": np.array([1, 2])},
     "start_positions must be integer token positions >= 0"),
    ("DebertaV2ForQuestionAnswering", {"start_positions": np.array([1]), "end_positions": np.array([1])},
     "start_positions has 1 entries for a batch of 2"),
], ids=["mlm-label-shape", "mlm-label>=vocab", "token-label-negative", "float-class-labels", "qa-one-of-two",
        "qa-negative-position", "qa-batch-mismatch"])
def test_bad_labels(class_name, kwargs, message):
    config = md_config(scaled_config(official_path("v3-xsmall"), num_hidden_layers=1))
    task = getattr(minideberta, class_name)(config, dtype=np.float64)
    with pytest.raises(ValueError, match=re.escape(message)):
        task(IDS, attention_mask=MASK, **kwargs)


def test_multiple_choice_needs_three_axes():
    config = md_config(scaled_config(official_path("v3-xsmall"), num_hidden_layers=1))
    with pytest.raises(ValueError, match=re.escape("input_ids of shape (batch, num_choices, length)")):
        minideberta.DebertaV2ForMultipleChoice(config)(IDS)


def test_float16_checkpoint_loads_in_the_asked_dtype(tmp_path):
    config = md_config(scaled_config(official_path("v3-xsmall"), num_hidden_layers=1))
    half = {k: v.astype(np.float16) for k, v in minideberta.DebertaV2Model(config, seed=3).params.items()}
    config.save_pretrained(tmp_path)
    save_file(half, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded = minideberta.DebertaV2Model.from_pretrained(tmp_path, dtype=np.float64)
    assert loaded.dtype == np.float64
    for name, array in loaded.params.items():
        assert array.dtype == np.float64, name
        np.testing.assert_array_equal(array, half[name].astype(np.float64))  # widened exactly, not re-rounded
    assert loaded(IDS).last_hidden_state.dtype == np.float64
