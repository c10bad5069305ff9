"""The elementary forwards of ops.py against torch and transformers, in float64.

Proves: linear (with and without bias, any leading axes) and layer norm equal torch.nn.functional;
each activation equals the module transformers' ACT2FN builds for that config name (gelu is the
exact erf form, gelu_new the tanh approximation); masked_softmax has XSoftmax semantics (masked
entries exactly 0, fully masked rows all 0, other rows sum to 1, equal to a softmax over the
allowed entries); dropout is the identity in evaluation and keeps 1 - rate of the units, scaled
by 1 / (1 - rate), in training; the embedding lookup is torch's; no op changes the dtype.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN

from minideberta.embeddings import embedding_forward
from minideberta.ops import (
    activation_forward,
    dropout_forward,
    layer_norm_forward,
    linear_forward,
    masked_softmax_forward,
)

rng = np.random.default_rng(0)
t = torch.from_numpy


def assert_rel(a, b, tol=1e-13):
    b = np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 5), (2, 2, 3, 5)], ids=str)
def test_linear(shape, bias):
    x, w, b = rng.normal(size=shape), rng.normal(size=(4, 5)), rng.normal(size=4)
    p = {"weight": w, "bias": b} if bias else {"weight": w}
    y, _ = linear_forward(p, x)
    assert_rel(y, F.linear(t(x), t(w), t(b) if bias else None).numpy())


@pytest.mark.parametrize("eps", [1e-7, 1e-5, 1e-12])
@pytest.mark.parametrize("scale", [1.0, 1e-3], ids=["unit", "small-variance"])
def test_layer_norm(eps, scale):
    # A small input variance makes eps matter: a wrong eps would show at 1e-13.
    x = scale * rng.normal(size=(3, 4, 16)) + 2.0
    w, b = 1 + 0.1 * rng.normal(size=16), 0.1 * rng.normal(size=16)
    y, _ = layer_norm_forward({"weight": w, "bias": b}, x, eps)
    assert_rel(y, F.layer_norm(t(x), (16,), t(w), t(b), eps).numpy(), 1e-12)


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "tanh", "relu", "silu"])
def test_activation_equals_transformers(name):
    x = np.concatenate([np.linspace(-12, 12, 2001), rng.normal(size=500), [0.0]])
    y, _ = activation_forward(name, x.copy())
    assert y.dtype == np.float64
    assert_rel(y, ACT2FN[name](t(x)).numpy(), 1e-14)


def test_gelu_is_exact_not_tanh():
    x = np.linspace(-5, 5, 101)
    y, _ = activation_forward("gelu", x)
    assert_rel(y, F.gelu(t(x)).numpy(), 1e-15)
    assert np.max(np.abs(y - F.gelu(t(x), approximate="tanh").numpy())) > 1e-4  # tanh form is not it


def test_gelu_new_is_tanh_approximation():
    x = np.linspace(-5, 5, 101)
    y, _ = activation_forward("gelu_new", x)
    assert_rel(y, F.gelu(t(x), approximate="tanh").numpy(), 1e-14)


def softmax_inputs():
    scores = 3 * rng.normal(size=(2, 3, 5, 6))
    mask = rng.random((2, 1, 5, 6)) < 0.6
    mask[0, 0, 1] = False  # a fully masked row (a padding query)
    mask[1, 0, 2] = True
    return scores, mask


def test_masked_softmax_semantics():
    scores, mask = softmax_inputs()
    probs, _ = masked_softmax_forward(scores.copy(), mask)
    full = np.broadcast_to(mask, probs.shape)
    assert np.all(probs[~full] == 0.0)  # masked entries exactly 0
    assert np.all(probs[0, :, 1] == 0.0)  # fully masked row all 0
    live = full.any(axis=-1)
    np.testing.assert_allclose(probs.sum(axis=-1)[live], 1.0, rtol=0, atol=1e-15)
    reference = torch.softmax(t(scores).masked_fill(~t(full.copy()), float("-inf")), dim=-1).numpy()
    assert_rel(probs[live], reference[live], 1e-14)


def test_masked_softmax_extreme_scores():
    """No overflow: very large allowed scores, and masked scores larger than allowed ones."""
    scores = np.array([[1e4, -1e4, 5e4], [700.0, 1000.0, 710.0]])
    mask = np.array([[True, True, False], [True, False, True]])
    probs, _ = masked_softmax_forward(scores.copy(), mask)
    np.testing.assert_array_equal(probs[0], [1.0, 0.0, 0.0])
    assert probs[1, 1] == 0.0 and abs(probs[1, 2] - 1 / (1 + np.exp(-10))) < 1e-15


def test_masked_softmax_float32_keeps_dtype():
    scores, mask = softmax_inputs()
    probs, _ = masked_softmax_forward(scores.astype(np.float32), mask)
    assert probs.dtype == np.float32
    assert np.all(probs[0, :, 1] == 0.0)


def test_dropout_identity_in_evaluation():
    x = rng.normal(size=(4, 5))
    y, cache = dropout_forward(x, 0.1, None)
    assert y is x and cache.keep is None  # nothing drawn, nothing kept
    y, cache = dropout_forward(x, 0.0, np.random.default_rng(0))
    assert y is x and cache.keep is None  # nothing drawn, nothing kept


@pytest.mark.parametrize("rate", [0.1, 0.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_in_training(rate, dtype):
    x = np.ones((200, 500), dtype=dtype)
    y, _ = dropout_forward(x, rate, np.random.default_rng(1))
    assert y.dtype == dtype
    kept = y != 0
    sigma = np.sqrt(rate * (1 - rate) / x.size)
    assert abs(kept.mean() - (1 - rate)) < 5 * sigma  # binomial keep rate, 5 standard deviations
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)  # inverted dropout scaling
    y2, _ = dropout_forward(x, rate, np.random.default_rng(1))
    np.testing.assert_array_equal(y, y2)  # the generator alone decides


def test_embedding_lookup():
    table, ids = rng.normal(size=(11, 4)), rng.integers(0, 11, size=(3, 7))
    y, _ = embedding_forward({"weight": table}, ids)
    np.testing.assert_array_equal(y, F.embedding(t(ids), t(table)).numpy())
