"""The compute dtype is checked, not guessed; float16 runs a v3-shaped model without inf or NaN.

Proves:
- ``dtype=`` of the constructors, ``from_pretrained`` and ``from_state_dict`` takes float16, float32
  and float64 as NumPy types, names or dtypes, and refuses everything else (int64, which gave a
  model of zeros; "bfloat16"; object; None; a byte-swapped float32) with an error naming the
  accepted ones, before any file is read;
- float16 against float64 on a v3-shaped random model, on a padded batch: close within what
  float16 can hold. Its mantissa has 11 bits, so one rounding is ~5e-4 relative (eps 9.8e-4);
  through embeddings, two layers and a head the errors add up to a few 1e-3 of the outputs'
  scale, so 2e-2 of the largest reference value is a bound that catches a wrong computation
  (a LayerNorm or softmax that overflowed is off by order 1) without flagging round-off;
- a residual stream with outliers of several hundred (as real v3 checkpoints have) stays finite
  and right in float16, which needs LayerNorm's statistics in float32 (400^2 > 65504, float16's
  largest value); and a softmax over the 128100-token vocabulary, whose sum of exponentials
  passes 65504, gives the right cross-entropy.
"""
import numpy as np
import pytest

from minideberta import (
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DebertaV2ForSequenceClassification,
    DebertaV2Model,
    losses,
)
from minideberta.model import no_grad

# microsoft/deberta-v3-xsmall's layout, scaled down: shared keys, log buckets (8: distances past 4
# are bucketed), LayerNorm on the relative table, no absolute positions, eps 1e-7.
V3 = dict(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
          max_position_embeddings=512, relative_attention=True, position_buckets=8, max_relative_positions=-1,
          norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p", position_biased_input=False,
          layer_norm_eps=1e-7, type_vocab_size=0, hidden_act="gelu", num_labels=3)
FLOAT16_TOLERANCE = 2e-2  # of the largest |reference| value: see the module docstring


def padded_batch(vocab_size, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, vocab_size, (3, 24))
    mask = (np.arange(24)[None] < np.array([[24], [15], [7]])).astype(np.int64)
    return np.where(mask == 1, ids, 0), mask


@pytest.mark.parametrize("dtype, expected", [
    (np.float16, "float16"), ("float16", "float16"), (np.dtype("float16"), "float16"),
    (np.float32, "float32"), ("float32", "float32"), ("f4", "float32"),
    (np.float64, "float64"), ("float64", "float64"), (float, "float64"),
])
def test_the_float_dtypes_are_accepted(dtype, expected):
    model = DebertaV2Model(DebertaV2Config(**V3), dtype=dtype)
    assert model.dtype == np.dtype(expected)
    assert {a.dtype for a in model.params.values()} == {np.dtype(expected)}


REFUSED = [np.int64, "int64", np.int8, "bfloat16", object, None, np.complex128, ">f4", "float128", "not a dtype"]


@pytest.mark.parametrize("dtype", REFUSED, ids=[str(d) for d in REFUSED])
def test_everything_else_is_refused(dtype, tmp_path):
    config = DebertaV2Config(**V3)
    with pytest.raises(ValueError, match=r"use one of float16, float32, float64"):
        DebertaV2Model(config, dtype=dtype)
    with pytest.raises(ValueError, match=r"use one of float16, float32, float64"):
        DebertaV2ForMaskedLM.from_state_dict(config, DebertaV2ForMaskedLM(config).params, dtype=dtype)
    # from_pretrained checks the dtype before reading anything: the folder need not exist.
    with pytest.raises(ValueError, match=r"use one of float16, float32, float64"):
        DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "not-there", dtype=dtype)


def test_int64_no_longer_gives_a_model_of_zeros():
    """It used to: the normal(0, 0.02) weights, cast to integers, were all 0."""
    with pytest.raises(ValueError, match=r"dtype=<class 'numpy.int64'> \(<i8\) is not a compute dtype"):
        DebertaV2Model(DebertaV2Config(**V3), dtype=np.int64)


def relative_error(ours, reference, real):
    ours, reference = np.asarray(ours, dtype=np.float64)[real], np.asarray(reference)[real]
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("cls, field", [(DebertaV2ForMaskedLM, "logits"),
                                        (DebertaV2ForSequenceClassification, "logits"),
                                        (DebertaV2Model, "last_hidden_state")])
def test_float16_against_float64(cls, field):
    config = DebertaV2Config(**V3)
    reference = cls(config, seed=1, dtype=np.float64)
    half = cls.from_state_dict(config, reference.params, np.float16)
    ids, mask = padded_batch(config.vocab_size)
    with no_grad():
        want = getattr(reference(ids, attention_mask=mask), field)
        got = getattr(half(ids, attention_mask=mask), field)
    assert got.dtype == np.float16 and np.isfinite(got).all()
    real = slice(None) if cls is DebertaV2ForSequenceClassification else mask.astype(bool)
    assert relative_error(got, want, real) < FLOAT16_TOLERANCE


def test_float16_with_outliers_of_several_hundred():
    """One dimension of the residual stream at about +-400 after every layer, as the outlier dimensions of
    real v3 checkpoints: an embedding column of +-400, and a LayerNorm gain of 50 on it in every layer."""
    config = DebertaV2Config(**V3)
    reference = DebertaV2ForMaskedLM(config, seed=2, dtype=np.float64)
    table = reference.params["deberta.embeddings.word_embeddings.weight"]
    table[:, 5] = np.where(np.arange(len(table)) % 2, 400.0, -400.0)
    for name, weight in reference.params.items():  # the backbone's LayerNorms, not the MLM head's
        if name.startswith("deberta.") and name.endswith("LayerNorm.weight") and "rel" not in name:
            weight[5] = 50.0
    half = DebertaV2ForMaskedLM.from_state_dict(config, reference.params, np.float16)
    ids, mask = padded_batch(config.vocab_size, seed=3)
    with no_grad():
        want = reference(ids, attention_mask=mask, output_hidden_states=True)
        got = half(ids, attention_mask=mask, output_hidden_states=True)
    real = mask.astype(bool)
    for state in want.hidden_states:  # the outlier is there, past sqrt(65504) = 256, after every layer
        assert np.abs(state[real]).max() > 300
    for ours, theirs in zip(got.hidden_states, want.hidden_states):
        assert np.isfinite(ours).all() and relative_error(ours, theirs, real) < FLOAT16_TOLERANCE
    assert np.isfinite(got.logits).all() and relative_error(got.logits, want.logits, real) < FLOAT16_TOLERANCE


def test_float16_cross_entropy_over_the_full_vocabulary():
    """Equal logits over 128100 tokens: the loss is log(128100) = 11.76; the sum of exponentials is 128100."""
    logits = np.zeros((2, 128100), dtype=np.float16)
    logits[1, 7] = 3.0
    loss, cache = losses.cross_entropy_forward(logits, np.array([7, 7]))
    expected = np.mean([np.log(128100.0), np.log(128099.0 + np.exp(3.0)) - 3.0])
    assert loss.dtype == np.float16 and abs(float(loss) - expected) < 1e-3 * expected
    dlogits = losses.cross_entropy_backward(1.0, cache)
    assert dlogits.dtype == np.float16 and np.isfinite(dlogits).all()


def test_float16_trains_a_step_without_inf():
    """A forward with labels and the backward in float16: every gradient finite and float16."""
    config = DebertaV2Config(**V3)
    model = DebertaV2ForSequenceClassification(config, seed=4, dtype=np.float16)
    ids, mask = padded_batch(config.vocab_size, seed=5)
    out = model(ids, attention_mask=mask, labels=np.array([0, 1, 2]))
    grads = model.backward()
    assert np.isfinite(float(out.loss))
    assert all(g.dtype == np.float16 and np.isfinite(g).all() for g in grads.values())
