"""tf_model.h5: minideberta reproduces the logits TensorFlow computed on two genuine TF checkpoints.

Proves: the Keras names map onto Hugging Face's (class scope stripped, kernels transposed, the nGiE
Conv1D kernel reordered, the MLM head's tied word embeddings read once); the logits of
tests/fixtures/tf/*/io.npz, computed by transformers' TF classes, come back to 1e-5 in float32 on
real tokens, and in float64 too; from_pretrained picks tf_model.h5 when it is the only checkpoint
and with from_tf=True otherwise; the TF class names are the same NumPy models; verify handles a
TF-only folder.
"""
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import minideberta
from minideberta import DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification, DebertaV2Model
from minideberta.apps.bench import verify
from minideberta.checkpoints.tf_h5 import hf_name
from minideberta.checkpoints.weights import load_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tf"
CASES = {"v3tiny-seqcls": DebertaV2ForSequenceClassification, "v2conv-mlm": DebertaV2ForMaskedLM}


def tf_logits(name):
    """Inputs, TF's float32 logits, and which entries are real tokens (every row of a classifier's)."""
    io = np.load(FIXTURES / name / "io.npz")
    real = io["attention_mask"].astype(bool)
    return io["input_ids"], io["attention_mask"], io["logits"], (real if io["logits"].ndim == 3 else slice(None))


def logits_of(cls, folder, dtype, ids, mask):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every array of the file is used: no 'does not use' warning
        model = cls.from_pretrained(folder, dtype=dtype)
    assert {a.dtype for a in model.params.values()} == {np.dtype(dtype)}
    return model(ids, attention_mask=mask).logits


@pytest.mark.parametrize("name", CASES)
def test_tensorflow_logits_reproduced(name):
    ids, mask, theirs, real = tf_logits(name)
    ours32 = logits_of(CASES[name], FIXTURES / name, np.float32, ids, mask)
    ours64 = logits_of(CASES[name], FIXTURES / name, np.float64, ids, mask)
    assert ours32.dtype == np.float32 and ours64.dtype == np.float64
    scale = np.abs(theirs[real]).max()
    assert scale > 1  # the logits are not trivially small, so 1e-5 means something
    assert np.abs(ours32[real] - theirs[real]).max() < 1e-5
    # float64 against TF's float32 numbers: the difference is TF's own float32 rounding
    assert np.abs(ours64[real] - theirs[real]).max() < 1e-5
    assert np.abs(ours64[real] - ours32[real]).max() < 1e-5
    assert np.abs(ours64[real] - theirs[real]).max() > 0  # not a copy of the stored logits


def test_every_dataset_of_the_file_is_read_under_a_model_name():
    state = load_state_dict(FIXTURES / "v2conv-mlm" / "tf_model.h5")
    with h5py.File(FIXTURES / "v2conv-mlm" / "tf_model.h5") as f:
        stored = []
        f.visititems(lambda name, obj: stored.append(name) if isinstance(obj, h5py.Dataset) else None)
    # the cls layer repeats the word embeddings and their LayerNorm (TF ties them): read once
    assert len(stored) == len(state) + 3
    expected = DebertaV2ForMaskedLM.param_shapes(minideberta.DebertaV2Config.from_pretrained(FIXTURES / "v2conv-mlm"))
    assert set(state) == set(expected) - {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    assert state["deberta.encoder.conv.conv.weight"].shape == (32, 32, 3)  # (out, in, kernel) from TF's (3, 32, 32)
    with h5py.File(FIXTURES / "v2conv-mlm" / "tf_model.h5") as f:
        kernel = f["deberta/tf_deberta_v2_for_masked_lm/deberta/encoder/conv/conv/kernel:0"][()]
        dense = f["cls/tf_deberta_v2_for_masked_lm/cls/predictions/transform/dense/kernel:0"][()]
    np.testing.assert_array_equal(state["deberta.encoder.conv.conv.weight"], kernel.transpose(2, 1, 0))
    np.testing.assert_array_equal(state["cls.predictions.transform.dense.weight"], dense.T)


@pytest.mark.parametrize("tf, hf, kernel", [
    ("tf_deberta_v2_model/deberta/embeddings/LayerNorm/gamma:0", "deberta.embeddings.LayerNorm.weight", False),
    ("tf_deberta_v2_model/deberta/embeddings/LayerNorm/beta:0", "deberta.embeddings.LayerNorm.bias", False),
    ("tf_x/deberta/encoder/layer_._11/attention/self/query_proj/kernel:0",
     "deberta.encoder.layer.11.attention.self.query_proj.weight", True),
    ("tf_x/deberta/encoder/rel_embeddings.weight:0", "deberta.encoder.rel_embeddings.weight", False),
    ("tf_x/cls/predictions/bias:0", "cls.predictions.bias", False),
])
def test_names(tf, hf, kernel):
    assert hf_name(tf) == (hf, kernel)


def test_folder_with_several_checkpoints_needs_from_tf(tmp_path):
    ids, mask, theirs, real = tf_logits("v3tiny-seqcls")
    shutil.copytree(FIXTURES / "v3tiny-seqcls", tmp_path / "m")
    other = DebertaV2ForSequenceClassification(minideberta.DebertaV2Config.from_pretrained(tmp_path / "m"), seed=1)
    other.save_pretrained(tmp_path / "m")  # a model.safetensors of other weights next to tf_model.h5
    preferred = DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(preferred.params["classifier.weight"], other.params["classifier.weight"])
    tf = DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "m", from_tf=True)
    assert np.abs(tf(ids, attention_mask=mask).logits - theirs).max() < 1e-5
    (tmp_path / "m" / "tf_model.h5").unlink()
    with pytest.raises(FileNotFoundError, match="from_tf=True, but .* has no tf_model.h5"):
        DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "m", from_tf=True)


TF_NAMES = ["TFDebertaV2Model", "TFDebertaV2PreTrainedModel", "TFDebertaV2ForMaskedLM",
            "TFDebertaV2ForSequenceClassification", "TFDebertaV2ForTokenClassification",
            "TFDebertaV2ForQuestionAnswering", "TFDebertaV2ForMultipleChoice"]


@pytest.mark.parametrize("name", TF_NAMES)
def test_tf_class_names_are_the_numpy_models(name):
    tf_class = getattr(minideberta, name)
    numpy_class = getattr(minideberta, name[2:])
    assert name in minideberta.__all__ and tf_class.__bases__ == (numpy_class,)
    assert tf_class.__dict__.keys() <= {"__module__", "__qualname__", "__doc__", "__firstlineno__",
                                        "__static_attributes__"}  # adds nothing but its name
    assert f"DebertaV2{name[len('TFDebertaV2'):]}" in tf_class.__doc__ and "same NumPy model" in tf_class.__doc__


def test_tf_class_loads_tf_file_as_its_numpy_twin():
    ids, mask, theirs, real = tf_logits("v2conv-mlm")
    model = minideberta.TFDebertaV2ForMaskedLM.from_pretrained(FIXTURES / "v2conv-mlm")
    assert isinstance(model, DebertaV2ForMaskedLM)
    assert np.abs(model(ids, attention_mask=mask).logits[real] - theirs[real]).max() < 1e-5
    with pytest.warns(UserWarning, match="TFDebertaV2Model does not use 5 arrays of the checkpoint"):
        bare = minideberta.TFDebertaV2Model.from_pretrained(FIXTURES / "v2conv-mlm")  # the MLM head is left out
    assert isinstance(bare, DebertaV2Model) and "embeddings.word_embeddings.weight" in bare.params


@pytest.mark.parametrize("name", CASES)
def test_verify_a_tf_only_folder(name, tmp_path):
    shutil.copytree(FIXTURES / name, tmp_path / name)
    lines = []
    assert verify.main(tmp_path / name, report=lines.append) == 0
    assert lines[-1] == "verify: OK"
    assert any("tf_model.h5" in line and "transformers 5 reads no TensorFlow file" in line for line in lines)
    assert any(("logits" in line) for line in lines)


def test_float16_files_load(tmp_path):
    """A tf_model.h5 stored in float16 loads (into float32 or float64), as float16 .bin and safetensors do."""
    ids, mask, theirs, real = tf_logits("v3tiny-seqcls")
    shutil.copytree(FIXTURES / "v3tiny-seqcls", tmp_path / "m")
    with h5py.File(tmp_path / "m" / "tf_model.h5", "r+") as f:
        datasets = []
        f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in datasets:
            half = f[name][()].astype(np.float16)
            del f[name]
            f.create_dataset(name, data=half)
    state = load_state_dict(tmp_path / "m")
    assert {a.dtype for a in state.values()} == {np.dtype(np.float16)}
    for dtype in (np.float32, np.float64):
        model = DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "m", dtype=dtype)
        assert {a.dtype for a in model.params.values()} == {np.dtype(dtype)}
        logits = model(ids, attention_mask=mask).logits
        assert np.isfinite(logits).all() and 0 < np.abs(logits - theirs).max() < 0.05  # float16 weights: ~1e-3
    model.save_pretrained(tmp_path / "again")  # and it saves as the NumPy model it is
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["config.json", "model.safetensors"]
