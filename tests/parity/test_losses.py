"""The losses of losses.py against torch.nn.functional, in float64.

Proves: cross-entropy (mean over counted rows, ignore_index skipped, every label ignored -> NaN as
torch), cross-entropy with probability targets, MSE and BCE-with-logits (stable for large
logits) equal torch; losses are 0-d arrays of the logits' dtype; bad labels raise a ValueError
that says what is wrong.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minideberta.losses import bce_with_logits_forward, cross_entropy_forward, mse_forward, soft_cross_entropy_forward

rng = np.random.default_rng(0)
t = torch.from_numpy


def assert_loss(ours, theirs, dtype=np.float64, tol=1e-14):
    assert ours.shape == () and ours.dtype == dtype
    theirs = theirs.item()
    assert abs(float(ours) - theirs) <= tol * abs(theirs)


@pytest.mark.parametrize("ignore_index", [-100, 3], ids=["ignore=-100", "ignore=3"])
def test_cross_entropy(ignore_index):
    logits = 4 * rng.normal(size=(12, 6))
    labels = rng.integers(0, 6, size=12)
    labels[[1, 4, 5]] = ignore_index
    ours, _ = cross_entropy_forward(logits, labels, ignore_index)
    assert_loss(ours, F.cross_entropy(t(logits), t(labels), ignore_index=ignore_index))


def test_cross_entropy_float32():
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 3, -100, 1, 2])
    ours, _ = cross_entropy_forward(logits, labels)
    assert_loss(ours, F.cross_entropy(t(logits), t(labels)), np.float32, 1e-6)


def test_cross_entropy_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 800.0, 805.0]])
    labels = np.array([2, 1])
    ours, _ = cross_entropy_forward(logits, labels)
    assert np.isfinite(ours)
    assert_loss(ours, F.cross_entropy(t(logits), t(labels)))


def test_cross_entropy_all_ignored_is_nan_like_torch():
    logits, labels = rng.normal(size=(3, 4)), np.full(3, -100)
    ours, _ = cross_entropy_forward(logits, labels)
    assert torch.isnan(F.cross_entropy(t(logits), t(labels)))
    assert ours.shape == () and ours.dtype == np.float64 and np.isnan(ours)


def test_soft_cross_entropy():
    logits = 3 * rng.normal(size=(5, 4))
    targets = rng.dirichlet(np.ones(4), size=5)
    ours, _ = soft_cross_entropy_forward(logits, targets)
    assert_loss(ours, F.cross_entropy(t(logits), t(targets)))


@pytest.mark.parametrize("shape", [(6,), (4, 3)], ids=str)
def test_mse(shape):
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    ours, _ = mse_forward(a, b)
    assert_loss(ours, F.mse_loss(t(a), t(b)))


def test_bce_with_logits():
    logits = np.concatenate([5 * rng.normal(size=(4, 3)), [[800.0, -800.0, 0.0]]])
    targets = np.concatenate([rng.random((4, 3)), [[0.0, 1.0, 0.5]]])  # soft targets too
    ours, _ = bce_with_logits_forward(logits, targets)
    assert np.isfinite(ours)
    assert_loss(ours, F.binary_cross_entropy_with_logits(t(logits), t(targets)))


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 4, 1]), r"labels has 4, outside \[0, 4\)"),
    (np.array([0, -5, 1]), r"labels has -5, outside \[0, 4\) and not the ignore index -100"),
    (np.array([0.0, 1.0, 2.0]), r"labels must be integer class indices, got dtype float64"),
    (np.array([[0, 1, 2]]), r"labels have shape \(1, 3\), expected \(3,\)"),
], ids=["too-large", "negative", "float", "wrong-shape"])
def test_cross_entropy_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        cross_entropy_forward(rng.normal(size=(3, 4)), labels)


@pytest.mark.parametrize("forward", [mse_forward, bce_with_logits_forward], ids=["mse", "bce"])
def test_shape_mismatch_is_not_broadcast(forward):
    with pytest.raises(ValueError, match=r"labels of shape \(3, 1\) do not match"):
        forward(rng.normal(size=(3,)), rng.normal(size=(3, 1)))
