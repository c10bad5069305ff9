"""Shared helpers for the tests that compare minideberta with Hugging Face transformers.

- ``scaled_config``: an official ``config.json`` from ``tests/fixtures/configs/`` shrunk to test size.
- ``hf_model``: a transformers model with EVERY parameter randomised (LayerNorm weights around 1,
  biases and position tables included), so that no parameter can be read wrongly unnoticed.
- ``md_model_from_hf``: the minideberta model of the same class holding the same arrays.
- ``ragged_batch``: padded batches of unequal lengths; ``real_rows``/``rel_error`` compare
  outputs on real tokens only (padded query rows differ by design: minideberta follows DeBERTa's
  XSoftmax, transformers 5 gives padded queries a uniform attention row).

Importing this module patches transformers' attention scale; see ``exact_scaled_size_sqrt``.
"""
import contextlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers.models.deberta_v2 import modeling_deberta_v2

import minideberta
from minideberta.apps.bench.verify import exact_scaled_size_sqrt

# The test models are tiny: torch's worker threads only add overhead, and spinning beside NumPy's
# BLAS threads on a small shared machine they made the parity tests ~10x slower.
torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parent / "fixtures" / "configs"  # the official config.json files

# The official architectures (pre-trained checkpoints) the parity tests cover.
OFFICIAL = {
    "v3-xsmall": "microsoft__deberta-v3-xsmall.json",
    "v3-small": "microsoft__deberta-v3-small.json",
    "v3-base": "microsoft__deberta-v3-base.json",
    "v3-large": "microsoft__deberta-v3-large.json",
    "v2-xlarge": "microsoft__deberta-v2-xlarge.json",
    "v2-xxlarge": "microsoft__deberta-v2-xxlarge.json",
    "mdeberta": "microsoft__mdeberta-v3-base.json",
}
# Every head: id -> (class, config overrides, per-token output fields, per-sequence output fields).
HEADS = {
    "Model": ("DebertaV2Model", {}, ("last_hidden_state",), ()),
    "MaskedLM": ("DebertaV2ForMaskedLM", {}, ("logits",), ()),
    "MaskedLM-legacy=False": ("DebertaV2ForMaskedLM", {"legacy": False}, ("logits",), ()),
    "SequenceClassification": ("DebertaV2ForSequenceClassification", {"num_labels": 3}, (), ("logits",)),
    "TokenClassification": ("DebertaV2ForTokenClassification", {"num_labels": 5}, ("logits",), ()),
    "QuestionAnswering": ("DebertaV2ForQuestionAnswering", {"num_labels": 2}, ("start_logits", "end_logits"), ()),
    "MultipleChoice": ("DebertaV2ForMultipleChoice", {}, (), ("logits",)),
}
LENGTHS = (53, 40, 9)  # past position_buckets // 2 = 8 of the scaled configs
CHOICE_LENGTHS = (31, 24, 12, 30, 9, 17)  # multiple choice: 2 questions x 3 choices


# ---- transformers' float32 attention scale ----
ORIGINAL_SCALED_SIZE_SQRT = modeling_deberta_v2.scaled_size_sqrt


# With transformers' float32 scale no float64 comparison could be tighter than 1e-8, hiding real
# 1e-9-sized bugs: the tests use the exact one (verify.exact_scaled_size_sqrt; ``test_parity_hf``
# shows the quirk itself).
modeling_deberta_v2.scaled_size_sqrt = exact_scaled_size_sqrt


@contextlib.contextmanager
def transformers_float32_scale():
    """Within this block transformers uses its own (float32) attention scale again."""
    modeling_deberta_v2.scaled_size_sqrt = ORIGINAL_SCALED_SIZE_SQRT
    try:
        yield
    finally:
        modeling_deberta_v2.scaled_size_sqrt = exact_scaled_size_sqrt


# ---- configs ----
def official_path(name):
    """Path of ``tests/fixtures/configs/<file>``, an official config.json."""
    return CONFIGS / OFFICIAL.get(name, name)


def scaled_config(path, **overrides):
    """The dict of an official config.json shrunk to test size, then ``overrides`` applied.

    Heads are divided by 4 (at least 2) with 16 dimensions each, so the official architectures
    keep distinct widths (xsmall 32, base 48, large 64, v2 96); layers 6/12/24/48 become 1/2/3/4
    (so small and base, or xlarge and xxlarge, stay distinct); FFN 4x hidden; vocab divided by
    400 (mdeberta keeps its larger vocabulary); position_buckets 16 (so lengths of 40-60 reach
    the log buckets). ``attention_head_size``, which the v2 configs state, is kept
    consistent with hidden_size / num_attention_heads unless overridden.
    """
    d = json.loads(Path(path).read_text())
    heads = max(2, d["num_attention_heads"] // 4)
    layers = int(math.log2(max(1, d["num_hidden_layers"] // 6))) + 1
    d.update(num_attention_heads=heads, hidden_size=16 * heads, intermediate_size=64 * heads, num_hidden_layers=layers,
             vocab_size=max(300, d["vocab_size"] // 400))
    if d.get("position_buckets", -1) > 0:
        d["position_buckets"] = 16
    d = with_overrides(d, overrides)
    if "attention_head_size" in d and "attention_head_size" not in overrides:
        d["attention_head_size"] = d["hidden_size"] // d["num_attention_heads"]
    return d


def with_overrides(config_dict, overrides):
    """``config_dict`` updated by ``overrides``; a new num_labels replaces a file's label maps."""
    d = dict(config_dict)
    if "num_labels" in overrides:
        d.pop("id2label", None)
        d.pop("label2id", None)
    d.update(overrides)
    return d


def hf_config(config_dict):
    return transformers.DebertaV2Config.from_dict(dict(config_dict))


def md_config(config_dict):
    return minideberta.DebertaV2Config.from_dict(dict(config_dict))


# ---- models ----
def randomize_(model, seed):
    """Give every parameter of a torch model random values, in place: LayerNorm weights
    1 + N(0, 0.1^2), every other array (biases, embeddings, projections, the conv) N(0, 0.1^2).

    0.1 keeps the attention far from uniform; with 0.2 the softmaxes get so sharp that float32
    rounding alone reaches 1e-5 in the widest scaled configs.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied parameters appear once
            noise = 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            p.copy_(1 + noise if name.endswith("LayerNorm.weight") else noise)
    return model


def hf_model(hf_class_name, config_dict, dtype=torch.float64, seed=0):
    """A transformers model of class ``hf_class_name`` in eval mode, every parameter randomised."""
    torch.manual_seed(seed)
    model = getattr(transformers, hf_class_name)(hf_config(config_dict)).to(dtype).eval()
    return randomize_(model, seed)


def to_numpy_state(model):
    """The torch state dict as {name: NumPy array} (copies, same dtype)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def md_model_from_hf(model, config_dict, dtype=np.float64):
    """The minideberta model of the same class as the transformers ``model``, holding its arrays."""
    cls = getattr(minideberta, type(model).__name__)
    config = md_config(config_dict)
    state = to_numpy_state(model)
    return cls(config, dtype=dtype, params={name: state[name].astype(dtype) for name in cls.param_shapes(config)})


# ---- inputs ----
def ragged_batch(lengths, vocab_size, seed=0, type_vocab_size=0):
    """A right-padded batch: ``(input_ids, attention_mask, token_type_ids)`` as int64 (B, N) arrays.

    Row b has ``lengths[b]`` real tokens (ids in [1, vocab_size), never the pad id 0) followed by
    pad ids; N is max(lengths). token_type_ids are random in [0, type_vocab_size) on real tokens
    when type_vocab_size > 1, else None.
    """
    rng = np.random.default_rng(seed)
    mask = (np.arange(max(lengths))[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    ids = rng.integers(1, vocab_size, size=mask.shape) * mask
    types = None
    if type_vocab_size > 1:
        types = rng.integers(0, type_vocab_size, size=mask.shape) * mask
    return ids, mask, types


def head_inputs(head, vocab_size, seed=0):
    """Ragged ids and mask for a head of ``HEADS``: (B, N), or (B, C, N) for multiple choice."""
    if head == "MultipleChoice":
        ids, mask, _ = ragged_batch(CHOICE_LENGTHS, vocab_size, seed)
        return ids.reshape(2, 3, -1), mask.reshape(2, 3, -1)
    ids, mask, _ = ragged_batch(LENGTHS, vocab_size, seed)
    return ids, mask


def hf_forward(model, **kwargs):
    """Run a transformers model without autograd; array arguments may be NumPy."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
               for k, v in kwargs.items()}
    with torch.no_grad():
        return model(**tensors)


def numpy(t):
    return t.detach().cpu().numpy()


# ---- comparing ----
def rel_error(a, b):
    """max |a - b| / max |b|: the error relative to the scale of the reference ``b``.

    Elementwise relative errors blow up on entries near 0, which say nothing about correctness.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    scale = np.max(np.abs(b))
    assert scale > 0, "the reference is all zeros: nothing to compare"
    return float(np.max(np.abs(a - b)) / scale)


def real_rows(x, mask):
    """The entries of x (B, N, ...) at real tokens (mask 1): (real tokens, ...)."""
    return np.asarray(x)[np.asarray(mask) != 0]


def real_query_rows(attention, mask):
    """Attention probabilities (B, H, N, N) at real query rows: (real tokens, H, N)."""
    return np.asarray(attention).transpose(0, 2, 1, 3)[np.asarray(mask) != 0]


def assert_close(ours, reference, tol, what=""):
    err = rel_error(ours, reference)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.0e}"


def assert_head_outputs(head, ours, theirs, mask, tol):
    """A head's outputs (see ``HEADS``): per-token fields at real tokens, per-sequence fields whole."""
    per_token, per_sequence = HEADS[head][2:]
    for field in per_token:
        assert_close(real_rows(ours[field], mask), real_rows(numpy(theirs[field]), mask), tol, field)
    for field in per_sequence:
        assert_close(ours[field], numpy(theirs[field]), tol, field)


def labels_for(head, d, ids, mask, rng):
    """Keyword arguments giving each head its loss as transformers takes them: -100 on padding and
    on unlabelled tokens; for QA one start and one end position past the sequence, which both
    implementations ignore (transformers clamps them to an ignore index)."""
    if head.startswith("MaskedLM"):
        chosen = (rng.random(ids.shape) < 0.3) & (mask == 1)
        return {"labels": np.where(chosen, rng.integers(0, d["vocab_size"], ids.shape), -100)}
    if head == "TokenClassification":
        return {"labels": np.where(mask == 1, rng.integers(0, d["num_labels"], ids.shape), -100)}
    if head in ("SequenceClassification", "MultipleChoice"):
        return {"labels": rng.integers(0, 3, ids.shape[0])}
    n = ids.shape[1]
    return {"start_positions": np.array([0, 5, n + 3]), "end_positions": np.array([n - 1, 7, n + 3])}
