"""Forward parity with Hugging Face transformers, model by model.

Proves that every minideberta class (the bare model and every head, both MLM heads) gives the
numbers of transformers' class of the same name, with every parameter random, on:
- each official architecture of tests/fixtures/configs/ scaled down (v3 xsmall/small/base/large,
  v2 xlarge/xxlarge with nGiE, mdeberta), in float64 (relative error <= 1e-10) and float32 (<= 1e-5);
- the variants the official files do not cover (share_att_key, pos_att_type, absolute positions,
  token types, embed_proj, buckets or plain clipping, nGiE options, LayerNorm eps, activations,
  relative attention off);
- the official 256 buckets at a length of 300 (past position_buckets // 2 = 128);
- inputs_embeds instead of ids, and sequences of one or two tokens without a mask;
- the losses of every head, and every problem_type of sequence classification.
Ragged padded batches; only real tokens (and real query rows of attentions) are compared.
Every entry of hidden_states (L+1) and attentions (L) is compared, not only the last output.
"""
import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import (
    HEADS,
    LENGTHS,
    OFFICIAL,
    assert_close,
    assert_head_outputs,
    head_inputs,
    hf_forward,
    hf_model,
    labels_for,
    md_model_from_hf,
    numpy,
    official_path,
    ragged_batch,
    real_query_rows,
    real_rows,
    rel_error,
    scaled_config,
    transformers_float32_scale,
)

TOL = {np.float64: 1e-10, np.float32: 1e-5}


@functools.lru_cache(maxsize=None)
def pair(arch, head):
    """(config dict, transformers model, minideberta model), float64, built once per module run."""
    class_name, overrides = HEADS[head][:2]
    d = scaled_config(official_path(arch), **overrides)
    hf = hf_model(class_name, d, seed=list(OFFICIAL).index(arch))
    return d, hf, md_model_from_hf(hf, d)


def assert_states_match(ours, theirs, mask, num_layers, tol):
    """Every hidden state (real tokens) and every attention map (real query rows)."""
    assert len(ours.hidden_states) == len(theirs.hidden_states) == num_layers + 1
    for i, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states)):
        assert_close(real_rows(a, mask), real_rows(numpy(b), mask), tol, f"hidden_states[{i}]")
    assert len(ours.attentions) == len(theirs.attentions) == num_layers
    for i, (a, b) in enumerate(zip(ours.attentions, theirs.attentions)):
        assert_close(real_query_rows(a, mask), real_query_rows(numpy(b), mask), tol, f"attentions[{i}]")


def assert_parity(head, d, hf, md, ids, mask, tol, **extra):
    ours = md(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True, **extra)
    theirs = hf_forward(hf, input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True,
                        **extra)
    assert all(ours[field].dtype == md.dtype for field in HEADS[head][2] + HEADS[head][3])
    assert_head_outputs(head, ours, theirs, mask, tol)
    flat_mask = mask.reshape(-1, mask.shape[-1])  # multiple choice encodes (B*C, N)
    assert_states_match(ours, theirs, flat_mask, d["num_hidden_layers"], tol)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("arch", OFFICIAL)
def test_official_architecture_float64(arch, head):
    d, hf, md = pair(arch, head)
    ids, mask = head_inputs(head, d["vocab_size"])
    assert_parity(head, d, hf, md, ids, mask, TOL[np.float64])


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("arch", OFFICIAL)
def test_official_architecture_float32(arch, head):
    d, hf64, _ = pair(arch, head)
    hf = copy.deepcopy(hf64).float()
    md = md_model_from_hf(hf, d, np.float32)
    ids, mask = head_inputs(head, d["vocab_size"], seed=1)
    assert_parity(head, d, hf, md, ids, mask, TOL[np.float32])


# variant id -> (official base, overrides, head)
VARIANTS = {
    "share_att_key=False": ("v3-xsmall", {"share_att_key": False}, "Model"),
    "share_att_key=False,c2p": ("v3-xsmall", {"share_att_key": False, "pos_att_type": "c2p"}, "Model"),
    "share_att_key=False,p2c": ("v3-xsmall", {"share_att_key": False, "pos_att_type": ["p2c"]}, "Model"),
    "c2p-only": ("v3-xsmall", {"pos_att_type": ["c2p"]}, "Model"),
    "p2c-only": ("v3-xsmall", {"pos_att_type": "p2c"}, "Model"),
    "pos_att_type=none": ("v3-xsmall", {"pos_att_type": []}, "Model"),
    "position_biased_input": ("v3-xsmall", {"position_biased_input": True, "max_position_embeddings": 64}, "Model"),
    "absolute-only": ("v3-xsmall", {"relative_attention": False, "position_biased_input": True}, "Model"),
    "relative_attention=False": ("v3-xsmall", {"relative_attention": False}, "Model"),
    "type_vocab_size=1": ("v3-xsmall", {"type_vocab_size": 1}, "Model"),
    "type_vocab_size=2": ("v3-xsmall", {"type_vocab_size": 2}, "Model"),
    "embedding_size=24": ("v3-xsmall", {"embedding_size": 24}, "MaskedLM"),
    "embedding_size=48": ("v3-xsmall", {"embedding_size": 48, "position_biased_input": True}, "Model"),
    "max_relative_positions=8,no-buckets": ("v3-xsmall", {"position_buckets": -1, "max_relative_positions": 8,
                                                          "share_att_key": False, "norm_rel_ebd": "none"}, "Model"),
    "span=max_position_embeddings": ("v3-xsmall", {"position_buckets": -1, "max_position_embeddings": 32}, "Model"),
    "buckets=8,max_relative=32": ("v3-xsmall", {"position_buckets": 8, "max_relative_positions": 32}, "Model"),
    "norm_rel_ebd=none": ("v3-xsmall", {"norm_rel_ebd": "none"}, "Model"),
    "nGiE-gelu": ("v2-xlarge", {}, "Model"),
    "nGiE-tanh": ("v2-xlarge", {"conv_act": "tanh"}, "Model"),
    "nGiE-groups=2,kernel=5": ("v2-xlarge", {"conv_groups": 2, "conv_kernel_size": 5}, "Model"),
    "nGiE-on-v3": ("v3-xsmall", {"conv_kernel_size": 3}, "Model"),
    "layer_norm_eps=1e-7": ("v3-xsmall", {"layer_norm_eps": 1e-7}, "Model"),
    "layer_norm_eps=1e-5": ("v3-xsmall", {"layer_norm_eps": 1e-5}, "Model"),
    "layer_norm_eps=1e-12": ("v3-xsmall", {"layer_norm_eps": 1e-12}, "Model"),
    "hidden_act=gelu_new": ("v3-xsmall", {"hidden_act": "gelu_new"}, "MaskedLM"),
    "hidden_act=relu": ("v3-xsmall", {"hidden_act": "relu"}, "MaskedLM"),
    "hidden_act=silu": ("v3-xsmall", {"hidden_act": "silu"}, "MaskedLM"),
    "hidden_act=tanh": ("v3-xsmall", {"hidden_act": "tanh"}, "MaskedLM"),
    "pooler_hidden_act=tanh": ("v3-xsmall", {"pooler_hidden_act": "tanh", "num_labels": 4}, "SequenceClassification"),
    "type_vocab_size=2,multiple-choice": ("v3-xsmall", {"type_vocab_size": 2}, "MultipleChoice"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant(variant):
    base, overrides, head = VARIANTS[variant]
    class_name, head_overrides = HEADS[head][:2]
    d = scaled_config(official_path(base), **{**head_overrides, **overrides})
    hf = hf_model(class_name, d, seed=7)
    md = md_model_from_hf(hf, d)
    ids, mask = head_inputs(head, d["vocab_size"], seed=2)
    extra = {}
    if d.get("type_vocab_size", 0) > 1:
        extra["token_type_ids"] = np.random.default_rng(3).integers(0, 2, size=ids.shape) * mask
        assert extra["token_type_ids"].any()
    assert_parity(head, d, hf, md, ids, mask, TOL[np.float64], **extra)


def test_official_buckets_at_length_300():
    """256 buckets (mid 128) with distances up to 299: the log buckets of the real checkpoints."""
    d = scaled_config(official_path("v3-xsmall"), position_buckets=256, hidden_size=16, num_attention_heads=2,
                      intermediate_size=32, num_hidden_layers=1)
    assert d["max_position_embeddings"] == 512 and d["max_relative_positions"] == -1
    hf = hf_model("DebertaV2Model", d, seed=11)
    md = md_model_from_hf(hf, d)
    ids, mask, _ = ragged_batch((300, 217), d["vocab_size"], seed=4)
    assert_parity("Model", d, hf, md, ids, mask, TOL[np.float64])


@pytest.mark.parametrize("head", ["Model", "MultipleChoice"])
def test_inputs_embeds(head):
    """inputs_embeds in place of ids, through absolute positions, token types and embed_proj."""
    d = scaled_config(official_path("v2-xlarge"), type_vocab_size=2, position_biased_input=True, embedding_size=48,
                      **HEADS[head][1])
    hf = hf_model(HEADS[head][0], d, seed=12)
    md = md_model_from_hf(hf, d)
    _, mask = head_inputs(head, d["vocab_size"], seed=6)
    embeds = np.random.default_rng(7).normal(size=(*mask.shape, 48))
    types = np.random.default_rng(8).integers(0, 2, size=mask.shape) * mask
    ours = md(inputs_embeds=embeds, attention_mask=mask, token_type_ids=types)
    theirs = hf_forward(hf, inputs_embeds=embeds, attention_mask=mask, token_type_ids=types)
    assert_head_outputs(head, ours, theirs, mask, TOL[np.float64])


@pytest.mark.parametrize("ids", [np.array([[5]]), np.array([[5, 6], [7, 8]])], ids=["N=1", "N=2"])
def test_shortest_sequences_without_mask(ids):
    d, hf, md = pair("v2-xlarge", "Model")
    ours = md(ids, output_attentions=True)
    theirs = hf_forward(hf, input_ids=ids, output_attentions=True)
    assert_close(ours.last_hidden_state, numpy(theirs.last_hidden_state), TOL[np.float64], "last_hidden_state")
    assert_close(ours.attentions[-1], numpy(theirs.attentions[-1]), TOL[np.float64], "attentions")


def test_transformers_float32_attention_scale_quirk():
    """Without reference.py's patch, transformers' float32 sqrt(d * factor) alone puts ~1e-8 into
    float64 outputs; with it, the two implementations agree to rounding."""
    d, hf, md = pair("v3-xsmall", "Model")
    ids, mask = head_inputs("Model", d["vocab_size"])
    ours = real_rows(md(ids, attention_mask=mask).last_hidden_state, mask)
    patched = real_rows(numpy(hf_forward(hf, input_ids=ids, attention_mask=mask).last_hidden_state), mask)
    with transformers_float32_scale():
        quirky = real_rows(numpy(hf_forward(hf, input_ids=ids, attention_mask=mask).last_hidden_state), mask)
    assert rel_error(ours, patched) < 1e-13
    assert 1e-10 < rel_error(ours, quirky) < 1e-6


# ---- losses ----
LOSS_ARCHS = ("v3-xsmall", "v2-xlarge")


@pytest.mark.parametrize("head", [h for h in HEADS if h != "Model"])
@pytest.mark.parametrize("arch", LOSS_ARCHS)
def test_loss(arch, head):
    d, hf, md = pair(arch, head)
    ids, mask = head_inputs(head, d["vocab_size"], seed=5)
    if head == "QuestionAnswering":
        # The QA loss is a softmax over every position, padding included, where the two differ
        # by design: compare it on an unpadded batch.
        ids, mask = ids[:, :30], np.ones_like(ids[:, :30])
    labels = labels_for(head, d, ids, mask, np.random.default_rng(6))
    ours = md(ids, attention_mask=mask, **labels)
    theirs = hf_forward(hf, input_ids=ids, attention_mask=mask, **labels)
    assert ours.loss.shape == () and ours.loss.dtype == np.float64
    if head == "SequenceClassification":
        # transformers computes this loss (problem_type None) on logits cast to float32; compare
        # with a float64 cross-entropy of transformers' logits instead, and with its own loss at float32 precision.
        reference = F.cross_entropy(theirs.logits, torch.from_numpy(labels["labels"])).item()
        assert abs(float(ours.loss) - reference) <= 1e-12 * abs(reference)
        assert abs(float(ours.loss) - theirs.loss.item()) <= 1e-6 * abs(reference)
    else:
        assert abs(float(ours.loss) - theirs.loss.item()) <= 1e-12 * abs(theirs.loss.item())


@pytest.fixture(scope="module")
def classifiers():
    """Sequence classifiers with 3 labels and with 1, float64, problem_type set per test."""
    models = {}
    for num_labels in (1, 3):
        d = scaled_config(official_path("v3-xsmall"), num_labels=num_labels, num_hidden_layers=1)
        hf = hf_model("DebertaV2ForSequenceClassification", d, seed=num_labels)
        models[num_labels] = (hf, md_model_from_hf(hf, d))
    return models


# id -> (num_labels, problem_type, labels)
PROBLEMS = {
    "single_label": (3, "single_label_classification", np.array([2, 0, 1])),
    "single_label-ignored": (3, "single_label_classification", np.array([2, -100, 1])),
    "multi_label": (3, "multi_label_classification", np.array([[1.0, 0, 1], [0, 0, 0], [0.3, 1, 0]])),
    "regression-1": (1, "regression", np.array([0.5, -1.25, 2.0])),
    "regression-3": (3, "regression", np.array([[0.5, -1, 2], [0, 1, 0], [3, 2, 1.0]])),
    "default-regression": (1, None, np.array([0.5, -1.25, 2.0])),
    "default-soft-labels": (3, None, np.array([[0.2, 0.3, 0.5], [1.0, 0, 0], [0, 0.5, 0.5]])),
}


@pytest.mark.parametrize("problem", PROBLEMS)
def test_sequence_classification_loss(classifiers, problem):
    num_labels, problem_type, labels = PROBLEMS[problem]
    hf, md = classifiers[num_labels]
    ids, mask, _ = ragged_batch(LENGTHS, md.config.vocab_size, seed=8)
    hf.config.problem_type = md.config.problem_type = problem_type
    try:
        ours = md(ids, attention_mask=mask, labels=labels)
        theirs = hf_forward(hf, input_ids=ids, attention_mask=mask, labels=labels)
    finally:
        hf.config.problem_type = md.config.problem_type = None
    # With problem_type None and one label, transformers returns its logits flattened to (B,).
    assert_close(ours.logits.reshape(theirs.logits.shape), numpy(theirs.logits), 1e-10, "logits")
    assert ours.logits.shape == (3, num_labels)
    assert abs(float(ours.loss) - theirs.loss.item()) <= 1e-12 * abs(theirs.loss.item())


def test_sequence_classification_default_ignores_negative_labels(classifiers):
    """problem_type None: transformers counts only labels >= 0 (any negative value is ignored)."""
    hf, md = classifiers[3]
    ids, mask, _ = ragged_batch(LENGTHS, md.config.vocab_size, seed=9)
    labels = np.array([2, -1, 0])
    ours = md(ids, attention_mask=mask, labels=labels)
    logits = hf_forward(hf, input_ids=ids, attention_mask=mask).logits
    reference = F.cross_entropy(logits[[0, 2]], torch.tensor([2, 0])).item()
    assert abs(float(ours.loss) - reference) <= 1e-12 * reference


def test_sequence_classification_default_all_labels_negative(classifiers):
    hf, md = classifiers[3]
    ids, mask, _ = ragged_batch(LENGTHS, md.config.vocab_size, seed=9)
    labels = np.array([-1, -1, -1])
    theirs = hf_forward(hf, input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    assert theirs == 0.0
    assert float(md(ids, attention_mask=mask, labels=labels).loss) == theirs
