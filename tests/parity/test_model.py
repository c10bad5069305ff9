"""The model classes (model.py, tasks.py, masked_lm.py): parameters, initialisation, checkpoints, cache.

Proves:
- every class has exactly transformers' parameter names and shapes (tied copies aside) for every
  official config at full size, and ``num_parameters()`` equals transformers' count;
- a fresh model is initialised as transformers initialises: N(0, initializer_range) weights,
  zero biases, LayerNorm 1/0, a zero [PAD] row, reproducible from its seed, in the asked dtype;
- checkpoints round-trip both ways with transformers (our save_pretrained -> transformers'
  from_pretrained, and theirs -> ours) with identical outputs, including a full-size v3-xsmall
  saved as a float16 ``pytorch_model.bin``;
- loading keeps and warns about unexpected arrays, and refuses missing arrays, wrong shapes and
  folders without a checkpoint with errors that name them;
- ``backward()`` needs the cache of one forward outside ``no_grad()``.
"""
import json

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import save_file

import minideberta

from reference import (
    HEADS,
    OFFICIAL,
    assert_head_outputs,
    head_inputs,
    hf_config,
    hf_forward,
    hf_model,
    md_config,
    md_model_from_hf,
    official_path,
    ragged_batch,
    scaled_config,
    to_numpy_state,
    with_overrides,
)

# The official architectures, and a fine-tuned file whose labels come from id2label.
FULL_SIZE = [*OFFICIAL, "MoritzLaurer__DeBERTa-v3-base-mnli.json"]


def hf_shapes(model):
    """Name -> shape of a transformers model's state dict, without the tied copies minideberta omits."""
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in tied}


@pytest.mark.parametrize("name", FULL_SIZE)
def test_parameter_names_and_shapes_at_full_size(name):
    """Checked on torch's meta device: no memory is allocated, so even v2-xxlarge is cheap."""
    d = json.loads(official_path(name).read_text())
    for class_name, overrides in [(c, o) for c, o, *_ in HEADS.values()]:
        with torch.device("meta"):
            hf = getattr(transformers, class_name)(hf_config(with_overrides(d, overrides)))
        shapes = getattr(minideberta, class_name).param_shapes(md_config(with_overrides(d, overrides)))
        assert {k: tuple(v) for k, v in shapes.items()} == hf_shapes(hf), class_name
        assert sum(int(np.prod(s)) for s in shapes.values()) == hf.num_parameters(), class_name


NUM_PARAMETER_CONFIGS = {
    "v3-xsmall": ("v3-xsmall", {}),
    "v2-xlarge": ("v2-xlarge", {}),
    "embedding_size,types,positions": ("v3-xsmall", {"embedding_size": 24, "type_vocab_size": 2,
                                                     "position_biased_input": True}),
    "share_att_key=False,no-rel-norm": ("v3-xsmall", {"share_att_key": False, "norm_rel_ebd": "none"}),
    "relative_attention=False": ("v3-xsmall", {"relative_attention": False}),
}


# legacy=False needs embedding_size == hidden_size (test_heads checks the error).
NUM_PARAMETER_CASES = [(case, head) for case in NUM_PARAMETER_CONFIGS for head in HEADS
                       if not (head == "MaskedLM-legacy=False" and "embedding_size" in NUM_PARAMETER_CONFIGS[case][1])]


@pytest.mark.parametrize("case, head", NUM_PARAMETER_CASES, ids=[f"{c}-{h}" for c, h in NUM_PARAMETER_CASES])
def test_num_parameters(case, head):
    base, overrides = NUM_PARAMETER_CONFIGS[case]
    class_name, head_overrides = HEADS[head][:2]
    d = scaled_config(official_path(base), **{**head_overrides, **overrides})
    with torch.device("meta"):
        theirs = getattr(transformers, class_name)(hf_config(d)).num_parameters()
    assert getattr(minideberta, class_name)(md_config(d), seed=0).num_parameters() == theirs


def init_category(array):
    if np.all(array == 0):
        return "zeros"
    if np.all(array == 1):
        return "ones"
    return "random"


@pytest.mark.parametrize("head", HEADS)
def test_initialisation_as_transformers(head):
    class_name, overrides = HEADS[head][:2]
    d = scaled_config(official_path("v2-xlarge"), initializer_range=0.05, **overrides)
    ours = getattr(minideberta, class_name)(md_config(d), seed=1).params
    torch.manual_seed(0)
    theirs = to_numpy_state(getattr(transformers, class_name)(hf_config(d)))
    for name, array in ours.items():
        assert array.dtype == np.float32, name
        assert init_category(array) == init_category(theirs[name]), name
        if init_category(array) == "random":
            values = array.reshape(-1)
            if name.endswith("word_embeddings.weight"):
                assert np.all(array[0] == 0) and np.all(theirs[name][0] == 0)  # [PAD] row
                values = array[1:].reshape(-1)
            # Sample std and mean within 5 standard errors of N(0, 0.05^2).
            assert abs(values.std() - 0.05) < 5 * 0.05 / np.sqrt(2 * values.size), name
            assert abs(values.mean()) < 5 * 0.05 / np.sqrt(values.size), name


def test_initialisation_seed_dtype_and_pad_row():
    config = md_config(scaled_config(official_path("v3-xsmall"), pad_token_id=3))
    a = minideberta.DebertaV2Model(config, seed=4, dtype=np.float64)
    b = minideberta.DebertaV2Model(config, seed=4, dtype=np.float64)
    c = minideberta.DebertaV2Model(config, seed=5, dtype=np.float64)
    table = a.params["embeddings.word_embeddings.weight"]
    assert table.dtype == np.float64
    assert np.all(table[3] == 0) and np.all(table[[0, 1, 2, 4]] != 0)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(table, c.params["embeddings.word_embeddings.weight"])


ROUND_TRIPS = [("v3-xsmall", head) for head in HEADS] + [("v2-xlarge", "Model")]


@pytest.mark.parametrize("arch, head", ROUND_TRIPS, ids=[f"{a}-{h}" for a, h in ROUND_TRIPS])
def test_our_checkpoint_loads_in_transformers(arch, head, tmp_path):
    class_name, overrides = HEADS[head][:2]
    d = scaled_config(official_path(arch), **overrides)
    md = md_model_from_hf(hf_model(class_name, d, seed=8), d)
    md.save_pretrained(tmp_path)
    hf, info = getattr(transformers, class_name).from_pretrained(tmp_path, dtype=torch.float64,
                                                                 output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ids, mask = head_inputs(head, d["vocab_size"], seed=3)
    theirs = hf_forward(hf.eval(), input_ids=ids, attention_mask=mask)
    assert_head_outputs(head, md(ids, attention_mask=mask), theirs, mask, 1e-10)


@pytest.mark.parametrize("arch, head", ROUND_TRIPS, ids=[f"{a}-{h}" for a, h in ROUND_TRIPS])
def test_transformers_checkpoint_loads_in_minideberta(arch, head, tmp_path):
    class_name, overrides = HEADS[head][:2]
    d = scaled_config(official_path(arch), **overrides)
    hf = hf_model(class_name, d, seed=9)
    hf.save_pretrained(tmp_path)
    ours = getattr(minideberta, class_name).from_pretrained(tmp_path, dtype=np.float64)
    assert ours.unexpected == {} and ours.config.legacy == d.get("legacy", True)
    assert all(a.dtype == np.float64 for a in ours.params.values())
    ids, mask = head_inputs(head, d["vocab_size"], seed=4)
    theirs = hf_forward(hf, input_ids=ids, attention_mask=mask)
    assert_head_outputs(head, ours(ids, attention_mask=mask), theirs, mask, 1e-10)


def test_full_size_float16_bin(tmp_path):
    """A full-size v3-xsmall (vocab 128100, hidden 384, 12 layers) saved as Microsoft ships v3: a
    float16 pytorch_model.bin. Loaded as float32 by both, the outputs agree."""
    path = official_path("v3-xsmall")
    torch.manual_seed(0)  # transformers' own random initialisation: randomising 70M values would be slow
    hf = transformers.DebertaV2Model(transformers.DebertaV2Config.from_pretrained(path))
    torch.save({k: v.half() for k, v in hf.state_dict().items()}, tmp_path / "pytorch_model.bin")
    del hf
    (tmp_path / "config.json").write_text(path.read_text())
    ours = minideberta.DebertaV2Model.from_pretrained(tmp_path, dtype=np.float32)
    assert ours.params["embeddings.word_embeddings.weight"].shape == (128100, 384)
    assert all(a.dtype == np.float32 for a in ours.params.values())
    theirs = transformers.DebertaV2Model.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids, mask, _ = ragged_batch((24, 15), 128100, seed=5)
    assert_head_outputs("Model", ours(ids, attention_mask=mask),
                        hf_forward(theirs, input_ids=ids, attention_mask=mask), mask, 1e-5)


# ---- loading errors ----
@pytest.fixture(scope="module")
def checkpoint():
    """(config, state) of a small v3 sequence classifier, as arrays a checkpoint would hold."""
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1)
    model = minideberta.DebertaV2ForSequenceClassification(md_config(d), seed=0)
    return model.config, dict(model.params)


def write_checkpoint(folder, config, state):
    config.save_pretrained(folder)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    return folder


def test_unexpected_arrays_are_kept_and_warned_about(checkpoint, tmp_path):
    config, state = checkpoint
    extra = {"deberta.embeddings.position_embeddings.weight": np.ones((512, 32), np.float32),  # EMD's, in v3 files
             "mask_predictions.dense.weight": np.full((32, 32), 2, np.float32)}  # the pre-training RTD head
    write_checkpoint(tmp_path, config, {**state, **extra})
    with pytest.warns(UserWarning, match=r"does not use 2 arrays .*deberta\.embeddings\.position_embeddings"
                                         r"\.weight, mask_predictions\.dense\.weight"):
        model = minideberta.DebertaV2ForSequenceClassification.from_pretrained(tmp_path)
    assert set(model.unexpected) == set(extra)
    for name, array in extra.items():
        np.testing.assert_array_equal(model.unexpected[name], array)


def test_missing_arrays_are_listed(checkpoint, tmp_path):
    config, state = checkpoint
    gone = ["classifier.bias", "deberta.encoder.layer.0.attention.self.query_proj.bias"]
    write_checkpoint(tmp_path, config, {k: v for k, v in state.items() if k not in gone})
    with pytest.raises(ValueError, match="2 parameters missing") as error:
        minideberta.DebertaV2ForSequenceClassification.from_pretrained(tmp_path)
    assert all(name in str(error.value) for name in gone)


def test_wrong_shape_names_key_and_shapes(checkpoint, tmp_path):
    config, state = checkpoint
    wrong = {"deberta.encoder.rel_embeddings.weight": np.zeros((30, 32), np.float32)}
    write_checkpoint(tmp_path, config, {**state, **wrong})
    with pytest.raises(ValueError, match=r"deberta\.encoder\.rel_embeddings\.weight: the model expects shape "
                                         r"\(32, 32\), the checkpoint has \(30, 32\)"):
        minideberta.DebertaV2ForSequenceClassification.from_pretrained(tmp_path)


def test_folder_without_checkpoint(checkpoint, tmp_path):
    checkpoint[0].save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        minideberta.DebertaV2ForSequenceClassification.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        minideberta.DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "absent")


# ---- the forward cache ----
@pytest.fixture(scope="module")
def small_models():
    config = md_config(scaled_config(official_path("v3-xsmall"), num_hidden_layers=1, num_labels=3))
    ids, mask, _ = ragged_batch((12, 7), config.vocab_size, seed=6)
    return (minideberta.DebertaV2Model(config, dtype=np.float64),
            minideberta.DebertaV2ForSequenceClassification(config, dtype=np.float64), ids, mask)


def test_backward_after_no_grad_forward_raises(small_models):
    model, classifier, ids, mask = small_models
    with minideberta.no_grad():
        out = model(ids, attention_mask=mask)
        classifier(ids, attention_mask=mask, labels=np.array([0, 2]))
    with pytest.raises(RuntimeError, match="backward"):
        model.backward(np.ones_like(out.last_hidden_state))
    with pytest.raises(RuntimeError, match="backward"):
        classifier.backward()
    model(ids, attention_mask=mask)  # no_grad() is over: backward works again
    grads = model.backward(np.ones_like(out.last_hidden_state))
    assert set(grads) == set(model.params)


def test_backward_twice_raises(small_models):
    model, classifier, ids, mask = small_models
    out = model(ids, attention_mask=mask)
    model.backward(np.ones_like(out.last_hidden_state))
    with pytest.raises(RuntimeError, match="one backward"):
        model.backward(np.ones_like(out.last_hidden_state))
    classifier(ids, attention_mask=mask, labels=np.array([0, 2]))
    classifier.backward()
    with pytest.raises(RuntimeError, match="one backward"):
        classifier.backward()
