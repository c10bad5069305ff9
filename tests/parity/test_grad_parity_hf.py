"""Whole-model gradients against torch autograd on Hugging Face transformers, in float64.

Proves that ``model.backward()`` returns, for every parameter by name, the gradient torch
autograd computes on transformers' model of the same class holding the same (random) arrays:
- for every head class (the bare ``DebertaV2Model`` with an upstream gradient of
  ``last_hidden_state``, both MLM heads, sequence and token classification, question answering,
  multiple choice), each with its own loss;
- on every architecture variant of the forward parity tests: the v3 shape (shared position
  projections, log buckets, LayerNorm on the relative table, no absolute positions), the v2
  xlarge shape (nGiE conv with gelu), share_att_key off, c2p only and p2c only (shared and not),
  absolute positions with two token types, embedding_size != hidden_size, and plain clipping at
  max_relative_positions without buckets;
- from ``input_ids`` and from ``inputs_embeds`` (then ``grads.inputs_embeds`` too);
- and, for what transformers does not implement, the Enhanced Mask Decoder and replaced-token
  detection against Microsoft's algorithms rebuilt from transformers' layers
  (``verify.rebuilt_emd_logits`` / ``verify.rebuilt_rtd_logits``), position table included.

Batches are ragged and padded (lengths 53, 40, 9: past position_buckets // 2 = 8), with labels
and upstream gradients on real tokens only (padded query rows differ by design, see
tests/reference.py). Question answering uses an unpadded batch: its loss is a softmax over every
position, padding included. Importing ``reference`` makes transformers' float64 attention scale
exact; sequence classification uses problem_type="single_label_classification" on both sides
(with None transformers casts the logits to float32 for the loss).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minideberta
from minideberta.apps.bench.verify import rebuilt_emd_logits, rebuilt_rtd_logits
from minideberta.masked_lm import POSITIONS

from reference import (
    HEADS,
    head_inputs,
    hf_model,
    labels_for,
    md_config,
    md_model_from_hf,
    numpy,
    official_path,
    scaled_config,
    to_numpy_state,
)

# Gradients: float64 on both sides, so they agree to round-off (measured: ~1e-13 relative).
GRAD_TOL = 1e-8
# Some arrays have an exactly zero true gradient, by the shift invariance of a softmax: a bias
# added to every key (key_proj.bias without p2c, pos_key_proj.bias) or to every c2p position
# vector (the relative LayerNorm's bias without p2c) shifts each query's scores by a constant;
# qa_outputs.bias (and, in QA, the last output LayerNorm.bias) shift all start/end logits alike,
# multiple choice's classifier.bias all choices alike; with inputs_embeds the word table is unread.
# Both sides then hold round-off only (1e-16 of the largest gradient), so an array's scale is at
# least ZERO_FLOOR times the largest gradient of the model: such an array must agree to
# GRAD_TOL * ZERO_FLOOR = 1e-14 of that largest gradient. (Every other array's own scale is far
# above the floor: the smallest measured is ~1e-4 of the largest.)
ZERO_FLOOR = 1e-6
# EMD and RTD against the rebuilt originals (the brief's bounds; measured ~1e-13 as well).
EMD_RTD_LOGIT_TOL, EMD_RTD_GRAD_TOL = 1e-9, 1e-7

# variant id -> (official base, config overrides)
VARIANTS = {
    "v3": ("v3-xsmall", {}),
    "v2-xlarge-nGiE": ("v2-xlarge", {}),
    "share_att_key=False": ("v3-xsmall", {"share_att_key": False}),
    "c2p-only": ("v3-xsmall", {"pos_att_type": "c2p"}),
    "p2c-only": ("v3-xsmall", {"pos_att_type": "p2c"}),
    "share_att_key=False,c2p-only": ("v3-xsmall", {"share_att_key": False, "pos_att_type": "c2p"}),
    "share_att_key=False,p2c-only": ("v3-xsmall", {"share_att_key": False, "pos_att_type": "p2c"}),
    "position_biased_input,type_vocab_size=2": ("v3-xsmall", {"position_biased_input": True, "type_vocab_size": 2,
                                                             "max_position_embeddings": 64}),
    "embedding_size=24": ("v3-xsmall", {"embedding_size": 24}),
    "max_relative_positions=8,no-buckets": ("v3-xsmall", {"position_buckets": -1, "max_relative_positions": 8,
                                                          "share_att_key": False, "norm_rel_ebd": "none"}),
}
# Microsoft's MLM head decodes hidden states with the word table: it needs embedding_size == hidden_size.
CASES = [(v, h) for v in VARIANTS for h in HEADS if not (h == "MaskedLM-legacy=False" and "embedding_size" in v)]
HEAD_OVERRIDES = {"SequenceClassification": {"problem_type": "single_label_classification"}}


@pytest.fixture(scope="module")
def pairs():
    """(config dict, transformers model, minideberta model) per (variant, head), built once per module."""
    built = {}

    def get(variant, head):
        if (variant, head) not in built:
            base, overrides = VARIANTS[variant]
            class_name, head_overrides = HEADS[head][:2]
            d = scaled_config(official_path(base), **{**head_overrides, **HEAD_OVERRIDES.get(head, {}), **overrides})
            hf = hf_model(class_name, d, seed=sorted(VARIANTS).index(variant))
            built[variant, head] = d, hf, md_model_from_hf(hf, d)
        return built[variant, head]

    return get


def inputs_for(head, d, rng):
    """Ids, mask and token types: ragged padded batches, unpadded (30 tokens) for question answering."""
    ids, mask = head_inputs(head, d["vocab_size"], seed=1)
    if head == "QuestionAnswering":
        ids, mask = ids[:, :30], np.ones_like(ids[:, :30])
    types = None
    if d.get("type_vocab_size", 0) > 1:
        types = rng.integers(0, d["type_vocab_size"], size=ids.shape) * mask
        assert types.any()
    return ids, mask, types


def torch_inputs(kwargs, embeds=None):
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in kwargs.items() if v is not None}
    if embeds is not None:
        t["inputs_embeds"] = torch.from_numpy(embeds.copy()).requires_grad_(True)
    return t


def torch_grads(model):
    """name -> gradient of every parameter (tied parameters appear once, under their first name)."""
    return {name: numpy(p.grad) if p.grad is not None else np.zeros(tuple(p.shape))
            for name, p in model.named_parameters()}


def grad_errors(ours, theirs, zero_floor=ZERO_FLOOR):
    """name -> max |ours - theirs| / scale, scale = max(|theirs|.max(), zero_floor * largest gradient)."""
    assert set(ours) == set(theirs), f"names differ: {set(ours) ^ set(theirs)}"
    largest = max(float(np.abs(g).max()) for g in theirs.values())
    assert largest > 0
    errors = {}
    for name, reference in theirs.items():
        assert ours[name].shape == reference.shape, name
        scale = max(float(np.abs(reference).max()), zero_floor * largest)
        errors[name] = float(np.abs(ours[name] - reference).max()) / scale
    return errors


def assert_small(errors, tol):
    bad = {k: f"{e:.2e}" for k, e in errors.items() if not e <= tol}
    assert not bad, f"gradients off by more than {tol:g} relative: {bad}"


@pytest.mark.parametrize("source", ["input_ids", "inputs_embeds"])
@pytest.mark.parametrize("variant, head", CASES, ids=[f"{v}-{h}" for v, h in CASES])
def test_gradients_match_torch(pairs, variant, head, source):
    d, hf, md = pairs(variant, head)
    rng = np.random.default_rng(2)
    ids, mask, types = inputs_for(head, d, rng)
    targets = {} if head == "Model" else labels_for(head, d, ids, mask, rng)
    kwargs = {"attention_mask": mask, "token_type_ids": types, **targets}
    embeds = None
    if source == "input_ids":
        kwargs["input_ids"] = ids
    else:
        embeds = rng.normal(size=(*ids.shape, md.config.embedding_size))

    hf.zero_grad(set_to_none=True)
    t_kwargs = torch_inputs(kwargs, embeds)
    theirs = hf(**t_kwargs)
    ours = md(**kwargs, inputs_embeds=embeds)
    if head == "Model":
        # Any function of the real rows: sum(last_hidden_state * upstream), upstream zero on padding.
        upstream = rng.normal(size=ours.last_hidden_state.shape) * mask[..., None]
        (theirs.last_hidden_state * torch.from_numpy(upstream)).sum().backward()
        grads = md.backward(upstream)
    else:
        # float64 throughout: the losses agree to round-off.
        assert abs(float(ours.loss) - theirs.loss.item()) <= 1e-12 * abs(theirs.loss.item())
        theirs.loss.backward()
        grads = md.backward()
    assert_small(grad_errors(dict(grads), torch_grads(hf)), GRAD_TOL)
    if embeds is None:
        assert grads.inputs_embeds is None
    else:
        # Values here; the shape (which multiple choice gets wrong) in test_inputs_embeds_gradient_shape.
        reference = numpy(t_kwargs["inputs_embeds"].grad)
        ours_embeds = np.reshape(grads.inputs_embeds, reference.shape)
        assert_small({"inputs_embeds": float(np.abs(ours_embeds - reference).max() / np.abs(reference).max())},
                     GRAD_TOL)


@pytest.mark.parametrize("head", HEADS)
def test_inputs_embeds_gradient_shape(pairs, head):
    """d/d(inputs_embeds) has the shape of inputs_embeds, as torch's .grad has."""
    d, _, md = pairs("v3", head)
    ids, mask, _ = inputs_for(head, d, np.random.default_rng(0))
    embeds = np.random.default_rng(1).normal(size=(*ids.shape, md.config.embedding_size))
    out = md(inputs_embeds=embeds, attention_mask=mask)
    if head == "QuestionAnswering":
        grads = md.backward((np.ones_like(out.start_logits), np.ones_like(out.end_logits)))
    else:
        grads = md.backward(np.ones_like(out.last_hidden_state if head == "Model" else out.logits))
    assert grads.inputs_embeds.shape == embeds.shape


# ---- what transformers does not implement: EMD and replaced-token detection ----
REBUILT_VARIANTS = ["v3", "v2-xlarge-nGiE", "share_att_key=False,c2p-only", "max_relative_positions=8,no-buckets"]


def masked_lm_labels(d, ids, mask, rng):
    chosen = (rng.random(ids.shape) < 0.3) & (mask == 1)
    return np.where(chosen, rng.integers(0, d["vocab_size"], ids.shape), -100)


@pytest.mark.parametrize("variant", REBUILT_VARIANTS)
def test_enhanced_mask_decoder_matches_rebuilt_original(variant):
    """minideberta's EMD (last layer twice, queries H[-2] + absolute positions) against Microsoft's
    EnhancedMaskDecoder on transformers' layers: logits, loss, and every gradient, the absolute
    position table (used by the decoder only) included."""
    base, overrides = VARIANTS[variant]
    d = scaled_config(official_path(base), **{**overrides, "legacy": False})
    hf = hf_model("DebertaV2ForMaskedLM", d, seed=3)
    rng = np.random.default_rng(4)
    table = 0.1 * rng.normal(size=(d["max_position_embeddings"], d["hidden_size"]))
    md = minideberta.DebertaV2ForMaskedLM.from_state_dict(md_config(d), {**to_numpy_state(hf), POSITIONS: table},
                                                          dtype=np.float64)
    assert md.resolve_emd(None)  # Microsoft's head with its position table: EMD by default
    ids, mask = head_inputs("MaskedLM", d["vocab_size"], seed=5)
    labels = masked_lm_labels(d, ids, mask, rng)

    ours = md(ids, attention_mask=mask, labels=labels)
    grads = md.backward()
    t_table = torch.from_numpy(table.copy()).requires_grad_(True)
    logits = rebuilt_emd_logits(hf, t_table, torch.from_numpy(ids), torch.from_numpy(mask))
    loss = F.cross_entropy(logits.reshape(-1, d["vocab_size"]), torch.from_numpy(labels).reshape(-1))
    loss.backward()

    real = mask.astype(bool)
    reference = numpy(logits)[real]
    assert np.abs(ours.logits[real] - reference).max() / np.abs(reference).max() <= EMD_RTD_LOGIT_TOL
    # Not a no-op: the decoder changes the logits (compared with the plain last layer).
    assert np.abs(md(ids, attention_mask=mask, emd=False).logits[real] - ours.logits[real]).max() > 1e-3
    assert abs(float(ours.loss) - loss.item()) <= EMD_RTD_GRAD_TOL * abs(loss.item())
    theirs = {**torch_grads(hf), POSITIONS: numpy(t_table.grad)}
    assert np.abs(theirs[POSITIONS]).max() > 0
    assert_small(grad_errors(dict(grads), theirs), EMD_RTD_GRAD_TOL)


@pytest.mark.parametrize("variant", REBUILT_VARIANTS)
def test_replaced_token_detection_matches_rebuilt_original(variant):
    """minideberta's RTD head and loss (mean BCE over real tokens) against Microsoft's
    LMMaskPredictionHead rebuilt on transformers' DebertaV2Model: logits, loss, every gradient."""
    base, overrides = VARIANTS[variant]
    d = scaled_config(official_path(base), **overrides)
    hf = hf_model("DebertaV2Model", d, seed=6)
    rng = np.random.default_rng(7)
    hidden = d["hidden_size"]
    head = {"dense.weight": 0.1 * rng.normal(size=(hidden, hidden)), "dense.bias": 0.1 * rng.normal(size=hidden),
            "LayerNorm.weight": 1 + 0.1 * rng.normal(size=hidden), "LayerNorm.bias": 0.1 * rng.normal(size=hidden),
            "classifier.weight": 0.1 * rng.normal(size=(1, hidden)), "classifier.bias": 0.1 * rng.normal(size=1)}
    state = {**to_numpy_state(hf), **{f"mask_predictions.{k}": v for k, v in head.items()}}
    md = minideberta.DebertaV2ForReplacedTokenDetection.from_state_dict(md_config(d), state, dtype=np.float64)
    ids, mask = head_inputs("Model", d["vocab_size"], seed=8)
    labels = (rng.random(ids.shape) < 0.3).astype(np.int64)

    ours = md(ids, attention_mask=mask, labels=labels)
    grads = md.backward()
    t_head = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in head.items()}
    logits = rebuilt_rtd_logits(hf, t_head, torch.from_numpy(ids), torch.from_numpy(mask), hf.config)
    real = torch.from_numpy(mask.astype(bool))
    loss = F.binary_cross_entropy_with_logits(logits[real], torch.from_numpy(labels)[real].double())
    loss.backward()

    reference = numpy(logits)[mask.astype(bool)]
    assert np.abs(ours.logits[mask.astype(bool)] - reference).max() / np.abs(reference).max() <= EMD_RTD_LOGIT_TOL
    assert abs(float(ours.loss) - loss.item()) <= EMD_RTD_GRAD_TOL * abs(loss.item())
    theirs = {**{f"deberta.{k}": g for k, g in torch_grads(hf).items()},
              **{f"mask_predictions.{k}": numpy(t.grad) for k, t in t_head.items()}}
    assert_small(grad_errors(dict(grads), theirs), EMD_RTD_GRAD_TOL)
