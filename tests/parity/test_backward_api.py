"""The contract of ``model.backward()``, for every model class.

Proves:
- ``backward()`` needs exactly one forward outside ``no_grad()`` before it: without a forward,
  a second time for one forward, or after a forward under ``no_grad()``, it raises RuntimeError;
  without labels in the forward (and no upstream gradient) it raises ValueError;
- the gradients have exactly the names, order, shapes and dtypes of ``model.params``;
- the tied word embeddings of the legacy MLM head (input lookup and decoder) get ONE gradient,
  the sum of both uses, equal to torch's on transformers' tied parameter;
- training mode: dropout is drawn from ``model.train(seed)``, so the same seed gives the same
  output, and with the masks fixed that way the gradient equals central differences;
  evaluation mode has no dropout at all;
- labels out of range (other than the ignore index -100) or of the wrong shape raise ValueError
  with a message naming them.
"""
import numpy as np
import pytest
import torch

import minideberta
from minideberta import DebertaV2Config, no_grad
from minideberta.gradcheck import EXPECTED_ERROR, numerical_gradient, rel_error

from reference import hf_model, md_model_from_hf, numpy, official_path, ragged_batch, scaled_config

VOCAB, B, N, CHOICES = 40, 2, 10, 3
CONFIG = dict(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
              max_position_embeddings=64, relative_attention=True, position_buckets=8, norm_rel_ebd="layer_norm",
              share_att_key=True, pos_att_type="p2c|c2p", position_biased_input=False, hidden_dropout_prob=0.1,
              attention_probs_dropout_prob=0.1, pooler_dropout=0.1, num_labels=3)
rng = np.random.default_rng(0)
IDS = rng.integers(1, VOCAB, size=(B, N))
MASK = (np.arange(N)[None] < np.array([[N], [6]])).astype(np.int64)
IDS = IDS * MASK  # padded with the pad id 0

# class id -> (class, config overrides, targets of its loss)
CLASSES = {
    "Model": (minideberta.DebertaV2Model, {}, {}),
    "MaskedLM": (minideberta.DebertaV2ForMaskedLM, {}, {"labels": np.where(MASK == 1, IDS, -100)}),
    "MaskedLM-legacy=False": (minideberta.DebertaV2ForMaskedLM, {"legacy": False},
                              {"labels": np.where(MASK == 1, IDS, -100)}),
    "SequenceClassification": (minideberta.DebertaV2ForSequenceClassification, {}, {"labels": np.array([2, 0])}),
    "TokenClassification": (minideberta.DebertaV2ForTokenClassification, {},
                            {"labels": np.where(MASK == 1, IDS % 3, -100)}),
    "QuestionAnswering": (minideberta.DebertaV2ForQuestionAnswering, {"num_labels": 2},
                          {"start_positions": np.array([1, 2]), "end_positions": np.array([4, 5])}),
    "MultipleChoice": (minideberta.DebertaV2ForMultipleChoice, {}, {"labels": np.array([1, 2])}),
    "ReplacedTokenDetection": (minideberta.DebertaV2ForReplacedTokenDetection, {},
                               {"labels": (IDS % 2) * MASK}),
}
TASKS = [name for name in CLASSES if name != "Model"]


def build(name, dtype=np.float64, **overrides):
    cls, class_overrides, _ = CLASSES[name]
    return cls(DebertaV2Config(**{**CONFIG, **class_overrides, **overrides}), seed=0, dtype=dtype)


def inputs(name):
    if name == "MultipleChoice":  # (B, C, N): every choice of a question is the same padded text
        return {"input_ids": np.repeat(IDS[:, None], CHOICES, 1),
                "attention_mask": np.repeat(MASK[:, None], CHOICES, 1)}
    return {"input_ids": IDS, "attention_mask": MASK}


def run(model, name, with_targets=True):
    """A forward of ``model`` (with its loss when ``with_targets``)."""
    return model(**inputs(name), **(CLASSES[name][2] if with_targets else {}))


def run_backward(model, name, out):
    """Backward of the loss, or for the bare model of sum(last_hidden_state)."""
    return model.backward(np.ones_like(out.last_hidden_state)) if name == "Model" else model.backward()


# ---- when backward() may be called ----
@pytest.mark.parametrize("name", CLASSES)
def test_backward_without_forward_raises(name):
    model = build(name)
    with pytest.raises(RuntimeError, match="needs the cache of a forward"):
        model.backward(np.ones((B, N, 16))) if name == "Model" else model.backward()


@pytest.mark.parametrize("name", CLASSES)
def test_backward_twice_for_one_forward_raises(name):
    model = build(name)
    out = run(model, name)
    run_backward(model, name, out)
    with pytest.raises(RuntimeError, match="one backward"):
        run_backward(model, name, out)
    run_backward(model, name, run(model, name))  # a new forward allows a new backward


@pytest.mark.parametrize("name", CLASSES)
def test_backward_after_no_grad_forward_raises(name):
    model = build(name)
    with no_grad():
        out = run(model, name)
    with pytest.raises(RuntimeError, match="outside no_grad"):
        run_backward(model, name, out)


@pytest.mark.parametrize("name", TASKS)
def test_backward_without_labels_raises(name):
    model = build(name)
    run(model, name, with_targets=False)
    with pytest.raises(ValueError, match="pass labels to the forward"):
        model.backward()


# ---- what backward() returns ----
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CLASSES)
def test_gradients_have_the_names_shapes_and_dtypes_of_params(name, dtype):
    model = build(name, dtype)
    grads = run_backward(model, name, run(model, name))
    assert list(grads) == list(model.params)
    for key, param in model.params.items():
        assert grads[key].shape == param.shape, key
        assert grads[key].dtype == np.dtype(dtype), key
    assert grads.inputs_embeds is None  # the forward got input_ids


@pytest.fixture(scope="module")
def tied_mlm():
    """transformers' legacy MaskedLM (decoder tied to the word table) and minideberta's, float64."""
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1)
    hf = hf_model("DebertaV2ForMaskedLM", d, seed=3)
    assert hf.cls.predictions.decoder.weight is hf.deberta.embeddings.word_embeddings.weight  # tied in torch
    return d, hf, md_model_from_hf(hf, d)


def test_tied_word_embeddings_get_one_gradient_summing_both_uses(tied_mlm):
    d, hf, md = tied_mlm
    ids, mask, _ = ragged_batch((20, 13), d["vocab_size"], seed=4)
    labels = np.where(mask == 1, np.roll(ids, 1, axis=1), -100)
    name = "deberta.embeddings.word_embeddings.weight"
    assert "cls.predictions.decoder.weight" not in md.params
    md(ids, attention_mask=mask, labels=labels)
    total = md.backward()[name]

    hf.zero_grad(set_to_none=True)
    hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
       labels=torch.from_numpy(labels)).loss.backward()
    reference = numpy(hf.deberta.embeddings.word_embeddings.weight.grad)
    # float64 on both sides: round-off only (~1e-14).
    assert rel_error(total, reference, scale=float(np.abs(reference).max())) < 1e-10

    # The two uses, separately: fed the same vectors as inputs_embeds, the table is read only
    # by the decoder, and d/d(inputs_embeds) scattered back onto the ids is the lookup's share
    # ([PAD], id 0, gets none, as torch's padding_idx).
    md(inputs_embeds=md.params[name][ids], attention_mask=mask, labels=labels)
    grads = md.backward()
    decoder_share = grads[name]
    lookup_share = np.zeros_like(total)
    np.add.at(lookup_share, ids.reshape(-1), grads.inputs_embeds.reshape(-1, total.shape[1]))
    lookup_share[0] = 0
    scale = float(np.abs(total).max())
    assert np.abs(decoder_share).max() > 0.01 * scale and np.abs(lookup_share).max() > 0.01 * scale
    assert rel_error(total, decoder_share + lookup_share, scale=scale) < 1e-12


# ---- training and evaluation mode ----
def test_dropout_masks_follow_the_seed():
    model = build("SequenceClassification")
    logits = {}
    for seed in (7, 7, 8):
        model.train(seed)
        logits.setdefault(seed, []).append(run(model, "SequenceClassification").logits)
    np.testing.assert_array_equal(logits[7][0], logits[7][1])  # same seed, same masks: identical
    assert np.abs(logits[7][0] - logits[8][0]).max() > 1e-4  # another seed: other masks
    assert np.abs(logits[7][0] - model.eval()(**inputs("SequenceClassification")).logits).max() > 1e-4


def test_evaluation_has_no_dropout():
    """eval() gives exactly the output of the same weights with every dropout rate 0."""
    model = build("SequenceClassification").eval()
    no_dropout = build("SequenceClassification", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       pooler_dropout=0.0)
    no_dropout.params = model.params
    first = run(model, "SequenceClassification")
    np.testing.assert_array_equal(first.logits, run(model, "SequenceClassification").logits)
    np.testing.assert_array_equal(first.logits, run(no_dropout.train(0), "SequenceClassification").logits)


@pytest.mark.parametrize("name", ["SequenceClassification", "MaskedLM"])
def test_training_gradient_matches_central_differences(name):
    """With dropout on and the masks fixed (model.train(seed) before every forward), backward()
    is the gradient of that loss: a few entries of every parameter against central differences."""
    model = build(name, initializer_range=0.4)  # weights large enough for gradients well above round-off

    def loss():
        model.train(5)
        return run(model, name).loss

    loss()
    grads = model.backward()
    pick = np.random.default_rng(1)
    errors = {}
    for key, param in model.params.items():
        sample = pick.choice(param.size, min(3, param.size), replace=False)
        numeric = numerical_gradient(loss, param, indices=sample)
        errors[key] = rel_error(grads[key].reshape(-1)[sample], numeric.reshape(-1)[sample],
                                scale=float(np.abs(grads[key]).max()))
    # float64, h=1e-5: a correct backward is below 1e-7 (typically 1e-9); a wrong one 1e-3 or more.
    bad = {k: f"{e:.1e}" for k, e in errors.items() if not e < EXPECTED_ERROR}
    assert not bad


# ---- bad labels ----
# id -> (class id, config overrides, targets, words the message must hold)
BAD_LABELS = {
    "MaskedLM-label=vocab_size": ("MaskedLM", {}, {"labels": np.full((B, N), VOCAB)}, "labels has 40"),
    "MaskedLM-label=-1": ("MaskedLM", {}, {"labels": np.full((B, N), -1)}, "labels has -1"),
    "MaskedLM-shape": ("MaskedLM", {}, {"labels": np.zeros((B, N + 1), np.int64)}, "labels have shape"),
    "MaskedLM-float": ("MaskedLM", {}, {"labels": np.zeros((B, N))}, "labels must be integer"),
    "TokenClassification-label=num_labels": ("TokenClassification", {}, {"labels": np.full((B, N), 3)},
                                             "labels has 3"),
    "TokenClassification-shape": ("TokenClassification", {}, {"labels": np.zeros(B, np.int64)}, "labels have shape"),
    "SequenceClassification-label=num_labels": ("SequenceClassification", {}, {"labels": np.array([0, 3])},
                                                "labels has 3"),
    "SequenceClassification-single_label-label=-1": ("SequenceClassification",
                                                     {"problem_type": "single_label_classification"},
                                                     {"labels": np.array([0, -1])}, "labels has -1"),
    "SequenceClassification-shape": ("SequenceClassification", {}, {"labels": np.array([0, 1, 2])},
                                     "labels have shape"),
    "SequenceClassification-multi_label-shape": ("SequenceClassification",
                                                 {"problem_type": "multi_label_classification"},
                                                 {"labels": np.ones((B, 4))}, "labels of shape"),
    "SequenceClassification-regression-shape": ("SequenceClassification", {"problem_type": "regression"},
                                                {"labels": np.ones((B, 2))}, "labels of shape"),
    "SequenceClassification-soft-labels-shape": ("SequenceClassification", {},
                                                 {"labels": np.full((B + 1, 3), 1 / 3)}, "labels have shape"),
    "SequenceClassification-soft-labels-broadcast": ("SequenceClassification", {},
                                                     {"labels": np.full((1, 3), 1 / 3)}, "labels have shape"),
    "SequenceClassification-num_labels=1-shape": ("SequenceClassification", {"num_labels": 1},
                                                  {"labels": np.ones(B + 1)}, "labels have shape"),
    "MultipleChoice-label=num_choices": ("MultipleChoice", {}, {"labels": np.array([0, CHOICES])},
                                         f"labels has {CHOICES}"),
    "MultipleChoice-shape": ("MultipleChoice", {}, {"labels": np.array([0, 1, 2])}, "labels have shape"),
    "QuestionAnswering-negative": ("QuestionAnswering", {}, {"start_positions": np.array([0, -1]),
                                                             "end_positions": np.array([1, 1])}, "start_positions"),
    "QuestionAnswering-shape": ("QuestionAnswering", {}, {"start_positions": np.array([0, 1]),
                                                          "end_positions": np.array([1, 1, 1])}, "end_positions has 3"),
    "QuestionAnswering-start-only": ("QuestionAnswering", {}, {"start_positions": np.array([0, 1])},
                                     "give both start_positions and end_positions"),
    "ReplacedTokenDetection-label=2": ("ReplacedTokenDetection", {}, {"labels": np.full((B, N), 2)},
                                       "must be 0 .original. or 1"),
    "ReplacedTokenDetection-shape": ("ReplacedTokenDetection", {}, {"labels": np.zeros((B, N - 1), np.int64)},
                                     "labels have shape"),
}

@pytest.mark.parametrize("case", BAD_LABELS.values(), ids=BAD_LABELS)
def test_bad_labels_raise_value_error(case):
    name, overrides, targets, message = case
    model = build(name, **overrides)
    with pytest.raises(ValueError, match=message):
        model(**inputs(name), **targets)


def test_ignore_index_is_not_a_bad_label():
    """-100 is skipped: the loss is the mean cross-entropy over the other labels."""
    model = build("TokenClassification")
    labels = np.where(np.arange(N) % 2 == 0, CLASSES["TokenClassification"][2]["labels"], -100)
    out = model(**inputs("TokenClassification"), labels=labels)
    counted = labels != -100
    logits = out.logits[counted]
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    expected = -log_probs[np.arange(len(logits)), labels[counted]].mean()
    assert abs(float(out.loss) - expected) <= 1e-12 * expected
