"""deberta.py, the model on one screen: its backward against central differences of its forward,
for every task's head and loss, with and without the Enhanced Mask Decoder, v3- and v2-shaped.
NumPy only: the classes' agreement with transformers is tests/parity/test_parity_hf.py's and test_grad_parity_hf.py's."""
import numpy as np
import pytest

from minideberta import deberta
from minideberta.config import DebertaV2Config
from minideberta.gradcheck import EXPECTED_ERROR, numerical_gradient, rel_error
from minideberta.inputs import prepare_inputs
from minideberta.masked_lm import POSITIONS, DebertaV2ForMaskedLM
from minideberta.model import DebertaV2Model
from minideberta.tasks import (
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForReplacedTokenDetection,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)

V3 = dict(vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
          max_position_embeddings=16, relative_attention=True, position_buckets=4, share_att_key=True,
          pos_att_type="c2p|p2c", norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pooler_dropout=0.0, layer_norm_eps=1e-7)
V2 = dict(V3, share_att_key=False, position_biased_input=True, type_vocab_size=2, conv_kernel_size=3,
          conv_act="gelu", norm_rel_ebd="none", position_buckets=-1, max_relative_positions=6)
B, N, C = 2, 7, 3


def setup(cls, overrides, rows, seed=0):
    """Random float64 parameters of ``cls`` (biases and LayerNorms too, so every term is exercised),
    and the checked inputs of a padded batch of ``rows`` sequences."""
    config = DebertaV2Config(**overrides)
    rng = np.random.default_rng(seed)
    shapes = {**cls.param_shapes(config), **cls.optional_shapes(config)}
    p = {k: rng.normal(scale=0.5, size=s) for k, s in shapes.items()}
    prefix = "" if cls is DebertaV2Model else "deberta."
    p = {k if k.startswith(prefix) or not k.startswith(("embeddings.", "encoder.")) else prefix + k: v
         for k, v in p.items()}
    ids = rng.integers(4, config.vocab_size, size=(rows, N))
    mask = np.ones((rows, N), np.int64)
    mask[1, N - 2:] = 0  # the second sequence is padded
    types = rng.integers(0, 2, size=(rows, N)) if config.type_vocab_size else None
    x = prepare_inputs(config, np.float64, ids, mask, types)
    return config, p if prefix else {"deberta." + k: v for k, v in p.items()}, x, rng


CASES = {  # name: (class, config, task, emd, rows)
    "masked LM, Microsoft's head, EMD": (DebertaV2ForMaskedLM, dict(V3, legacy=False), "masked_lm", True, B),
    "masked LM, legacy head, no EMD": (DebertaV2ForMaskedLM, V3, "masked_lm", False, B),
    "replaced-token detection": (DebertaV2ForReplacedTokenDetection, V3, "replaced_token", False, B),
    "sequence classification, v2 with nGiE": (DebertaV2ForSequenceClassification, dict(V2, num_labels=3),
                                              "sequence", False, B),
    "multiple choice": (DebertaV2ForMultipleChoice, V3, "choice", False, B * C),
    "token classification": (DebertaV2ForTokenClassification, dict(V3, num_labels=3), "token", False, B),
    "question answering, v2": (DebertaV2ForQuestionAnswering, V2, "qa", False, B),
}


def labels_for(task, config, rng):
    if task == "masked_lm":
        labels = rng.integers(0, config.vocab_size, size=(B, N))
        labels[:, ::2] = -100  # ignored positions
        return labels
    if task == "replaced_token":
        return rng.integers(0, 2, size=(B, N))
    if task == "token":
        return rng.integers(0, config.num_labels, size=(B, N))
    if task == "qa":
        return rng.integers(0, N, size=B), rng.integers(0, N, size=B)
    return rng.integers(0, config.num_labels if task == "sequence" else C, size=B)


def check_every_parameter(p, f, grads, rng, entries=3):
    """Central differences of ``f`` against ``grads`` on a few entries of every parameter. A gradient
    that vanishes by symmetry (pos_key_proj's bias adds the same Q_i . b to every key of query i, which
    the softmax cancels) is compared in absolute terms: the scale never goes below 1e-3."""
    errors = {}
    for name, value in p.items():
        sample = rng.choice(value.size, min(entries, value.size), replace=False)
        numeric = numerical_gradient(f, value, indices=sample).reshape(-1)[sample]
        analytic = grads[name].reshape(-1)[sample]
        errors[name] = rel_error(analytic, numeric, scale=max(float(np.abs(grads[name]).max()), 1e-3))
    return errors


@pytest.mark.parametrize("case", CASES)
def test_the_loss_gradient_of_every_parameter(case):
    cls, overrides, task, emd, rows = CASES[case]
    config, p, x, rng = setup(cls, overrides, rows)
    labels = labels_for(task, config, rng)
    choices = C if task == "choice" else None
    out, cache = deberta.forward(p, config, x, task, labels, use_emd=emd, choices=choices)
    assert np.isfinite(out["loss"]) and len(out["hidden_states"]) == config.num_hidden_layers + 1
    dembeds, grads = deberta.backward(p, None, cache)
    assert dembeds is None  # the forward took ids
    used = set(grads)
    unused = set(p) - used
    # Parameters the forward never read get no entry: EMD's position table without EMD, the pooler in
    # token heads... but never a layer's or the embeddings' own.
    assert not any(".layer." in k or "word_embeddings" in k for k in unused), unused
    if emd:
        assert POSITIONS in used
    errors = check_every_parameter({k: p[k] for k in used}, lambda: deberta.forward(
        p, config, x, task, labels, use_emd=emd, choices=choices, keep_cache=False)[0]["loss"], grads, rng)
    assert max(errors.values()) < EXPECTED_ERROR, {k: e for k, e in errors.items() if e >= EXPECTED_ERROR}


def test_the_bare_model_and_the_inputs_embeds_gradient():
    """task "model": backward takes d(last hidden state); with inputs_embeds, their gradient comes back."""
    config, p, x, rng = setup(DebertaV2Model, V3, B)
    embeds = rng.normal(size=(B, N, config.embedding_size))
    x = x._replace(input_ids=None, inputs_embeds=embeds)
    dy = rng.normal(size=(B, N, config.hidden_size))

    def f():
        return np.sum(deberta.forward(p, config, x, keep_cache=False)[0]["hidden_states"][-1] * dy)

    out, cache = deberta.forward(p, config, x)
    assert out["logits"] is None and out["loss"] is None
    dembeds, grads = deberta.backward(p, dy, cache)
    errors = check_every_parameter({k: p[k] for k in grads}, f, grads, rng)
    errors["inputs_embeds"] = rel_error(dembeds, numerical_gradient(f, embeds), scale=float(np.abs(dembeds).max()))
    assert max(errors.values()) < EXPECTED_ERROR, errors


def test_decode_predicts_the_chosen_positions_only():
    """``decode`` (the pre-training generator's selected positions) gives the rows of the full logits,
    and the gradient of a loss over those rows, as decoding everything and picking them would."""
    config, p, x, rng = setup(DebertaV2ForMaskedLM, dict(V3, legacy=False), B)
    labels = rng.integers(0, config.vocab_size, size=(B, N))
    selected = np.zeros((B, N), bool)
    selected[0, [1, 4]] = selected[1, 2] = True
    full, _ = deberta.forward(p, config, x, "masked_lm", use_emd=True)
    picked, cache = deberta.forward(p, config, x, "masked_lm", labels, use_emd=True, decode=selected)
    assert picked["logits"].shape == (3, config.vocab_size)
    assert rel_error(picked["logits"], full["logits"][selected]) < 1e-12  # a smaller matrix product: round-off
    _, grads = deberta.backward(p, None, cache)
    masked = np.where(selected, labels, -100)
    _, whole_cache = deberta.forward(p, config, x, "masked_lm", masked, use_emd=True)
    _, whole = deberta.backward(p, None, whole_cache)
    assert set(grads) == set(whole)
    assert max(rel_error(grads[k], whole[k], scale=float(np.abs(whole[k]).max()) or 1.0) for k in grads) < 1e-12
