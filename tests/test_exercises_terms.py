"""Term-level diagnosis: a one-term mistake, written as a student writes it, is named with its term and line.

Each wrong answer below is a whole function a student could hand in (not a transformation of the
reference's result). It is installed in place of the function in a student copy (the repository
loaded under a name of its own) and checked; the diagnosis of the first failing output must name
the mistake.
"""
import math

import numpy as np
import pytest
from scipy.special import erf

from minideberta.apps.exercises import catalog
from minideberta.apps.exercises.check import check_exercise
from minideberta.apps.exercises.terms import Term, Variant, term_diagnoses


# ---------------------------------------------------------------- LayerNorm, as students write it
def _ln(dy, p, cache, sign=1.0, mean=np.mean, mean_g=True, rstd=True, axis=-1):
    xhat = cache.xhat
    g = dy * p["weight"]
    dx = g - (mean(g, axis=axis, keepdims=True) if mean_g else 0)
    dx = dx - sign * xhat * mean(g * xhat, axis=axis, keepdims=True)
    if rstd:
        dx = dx * cache.rstd
    axes = tuple(range(dy.ndim - 1))
    return dx, {"weight": (dy * xhat).sum(axis=axes), "bias": dy.sum(axis=axes)}


def ln_sign(p, dy, cache):
    return _ln(dy, p, cache, sign=-1.0)


def ln_sums(p, dy, cache):
    return _ln(dy, p, cache, mean=np.sum)


def ln_no_mean_g(p, dy, cache):
    return _ln(dy, p, cache, mean_g=False)


def ln_no_rstd(p, dy, cache):
    return _ln(dy, p, cache, rstd=False)


def ln_wrong_axis(p, dy, cache):
    return _ln(dy, p, cache, axis=0)


def ln_one_sum(p, dy, cache):
    xhat, g = cache.xhat, dy * p["weight"]
    dx = cache.rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True))
    return dx, {"weight": (dy * xhat).sum(axis=tuple(range(dy.ndim - 1))), "bias": dy.sum(axis=tuple(range(dy.ndim - 1)))}


# ---------------------------------------------------------------- GELU
def gelu_only_cdf(dy, cache):
    x = cache.x
    return dy * 0.5 * (1 + erf(x / math.sqrt(2)))


def gelu_tanh(dy, cache):
    x = cache.x
    t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2))


def gelu_pdf_unnormalised(dy, cache):
    x = cache.x
    return dy * (0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-x ** 2 / 2))


# ---------------------------------------------------------------- masked softmax
def softmax_forgot_projection(dprobs, cache):
    return cache.probs * dprobs


def softmax_wrong_axis(dprobs, cache):
    p = cache.probs
    return p * (dprobs - (dprobs * p).sum(axis=-2, keepdims=True))


def softmax_sign(dprobs, cache):
    p = cache.probs
    return p * (dprobs + (dprobs * p).sum(axis=-1, keepdims=True))


def softmax_mean(dprobs, cache):
    p = cache.probs
    return p * (dprobs - (dprobs * p).mean(axis=-1, keepdims=True))


# ---------------------------------------------------------------- cross-entropy
def ce_every_row(dloss, cache):
    p = np.exp(cache.logp)
    p[np.arange(len(p)), cache.safe] -= 1
    return p * cache.counted[:, None] * dloss / len(p)


def ce_no_onehot(dloss, cache):
    return np.exp(cache.logp) * cache.counted[:, None] * dloss / max(cache.count, 1)


# (exercise, function replaced, the student's function, words the diagnosis must hold)
NAMED = {
    "LayerNorm: x̂·mean(g x̂) with its sign flipped": (
        "ops.layer_norm_backward", None, ln_sign, "the -xhat * mean(g * xhat) term has the wrong sign"),
    "LayerNorm: sums where means are wanted": (
        "ops.layer_norm_backward", None, ln_sums, "the means are sums over the D = 6 features"),
    "LayerNorm: one sum where a mean is wanted": (
        "ops.layer_norm_backward", None, ln_one_sum, "the -xhat * mean(g * xhat) term is 6 times what it should be: "
                                                     "summed over the D = 6 features where the formula takes the mean"),
    "LayerNorm: -mean(g) forgotten": ("ops.layer_norm_backward", None, ln_no_mean_g, "the -mean(g) term is missing"),
    "LayerNorm: the final rstd forgotten": ("ops.layer_norm_backward", None, ln_no_rstd, "the final rstd is left out"),
    "LayerNorm: means over the wrong axis": ("ops.layer_norm_backward", None, ln_wrong_axis,
                                             "the means are taken over axis 0 (the rows)"),
    "GELU: only Phi(x)": ("ops.gelu_backward", None, gelu_only_cdf, "the x * phi(x) term is missing"),
    "GELU: the tanh approximation": ("ops.gelu_backward", None, gelu_tanh, "the tanh approximation (gelu_new)"),
    "GELU: phi without 1/sqrt(2 pi)": ("ops.gelu_backward", None, gelu_pdf_unnormalised,
                                       "phi without its 1/sqrt(2 pi)"),
    "softmax: -P sum(dP P) forgotten": ("ops.masked_softmax_backward", None, softmax_forgot_projection,
                                        "the -P * sum(dP * P) term is missing"),
    "softmax: summed over the wrong axis": ("ops.masked_softmax_backward", None, softmax_wrong_axis,
                                            "the sum is taken over axis -2 (the queries)"),
    "softmax: sign flipped": ("ops.masked_softmax_backward", None, softmax_sign,
                              "the -P * sum(dP * P) term has the wrong sign"),
    "softmax: a mean where the sum is wanted": ("ops.masked_softmax_backward", None, softmax_mean,
                                                "a mean over the N = 5 keys where the formula sums"),
    "cross-entropy: divided by every row": ("losses.cross_entropy_backward", None, ce_every_row,
                                            "divided by every row (M = 5) instead of the 3 counted ones"),
    "cross-entropy: the one-hot forgotten": ("losses.cross_entropy_backward", None, ce_no_onehot,
                                             "the -onehot(label) / count term is missing"),
}


def diagnoses(report):
    return [d for s in report["stages"] for r in s["outputs"] for d in r["diagnosis"]]


@pytest.mark.parametrize("name", NAMED)
def test_a_one_term_mistake_is_named(name, student, ref, monkeypatch):
    exercise_id, patched, wrong, words = NAMED[name]
    owner, _, attr = (patched or exercise_id).rpartition(".")
    monkeypatch.setattr(student.get(owner), attr, wrong)
    report = check_exercise(catalog.get(exercise_id), student, ref)
    assert report["status"] == "fail"
    found = diagnoses(report)
    assert any(words in d for d in found), found
    assert not any("no pattern recognised" in d for d in found)


def test_term_diagnoses_on_plain_arrays():
    """Missing, sign, a named factor, a number, a variant; two terms wrong at once is not a one-term mistake."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    terms = [Term("A", "y = A + B", a), Term("B", "y = A + B", b, {4.0: "a factor of four"})]
    want = a + b
    assert term_diagnoses(a, want, terms) == ["the B term is missing (in the formula y = A + B)"]
    assert term_diagnoses(a - b, want, terms) == ["the B term has the wrong sign (in the formula y = A + B)"]
    assert term_diagnoses(a + 4 * b, want, terms) == [
        "the B term is 4 times what it should be: a factor of four (in the formula y = A + B)"]
    assert term_diagnoses(a + 3 * b, want, terms) == ["the B term is 3 times what it should be (in the formula "
                                                      "y = A + B)"]
    assert term_diagnoses(2 * a - b, want, terms) == []
    assert term_diagnoses(want + 1e-13, want, terms) == []
    assert term_diagnoses(a * b, want, terms, [Variant("a product", a * b)]) == [
        "matches the answer with this mistake: a product"]


# ---------------------------------------------------------------- the model-level backwards: one-line slips
def edited(old, new):
    """The reference function with one line edited, as a student's slip: compiled in the student's module."""
    import inspect
    import textwrap

    def make(reference_function, namespace):
        source = textwrap.dedent(inspect.getsource(reference_function))
        assert source.count(old) == 1, f"the reference no longer has {old!r}: update this test"
        scope = {}
        exec(compile(source.replace(old, new), "<student>", "exec"), namespace, scope)
        return scope[reference_function.__name__]
    return make


def rtd_every_token(dloss, cache):
    d = np.zeros(cache.real.shape)
    z, y = cache.bce.logits, cache.bce.targets
    d[cache.real] = (1 / (1 + np.exp(-z)) - y) / cache.real.size * dloss
    return d


def rtd_no_labels(dloss, cache):
    d = np.zeros(cache.real.shape)
    d[cache.real] = 1 / (1 + np.exp(-cache.bce.logits)) / cache.real.sum() * dloss
    return d


SLIPS = {
    "RTD head: the [CLS] sum forgotten": ("heads.rtd_head_backward", edited(
        "dhidden[:, 0] += dsum.sum(axis=1)", "pass"),
        "the [CLS] sum (every position's gradient, added at position 0) term is missing"),
    "RTD head: the [CLS] sum at every position": ("heads.rtd_head_backward", edited(
        "dhidden[:, 0] += dsum.sum(axis=1)", "dhidden += dsum.sum(axis=1, keepdims=True)"),
        "the sum over the sequence is added at every position"),
    "conv: a tap forgotten": ("ngie.conv1d_backward", edited("for t in range(kernel):", "for t in range(kernel - 1):"),
                              "the tap 2 term is missing"),
    "conv: the kernel flipped": ("ngie.conv1d_backward", edited(
        "dpadded[:, t:t + n] += dcols[..., t]", "dpadded[:, t:t + n] += dcols[..., kernel - 1 - t]"),
        "the taps written back in reverse order"),
    "conv: taps assigned": ("ngie.conv1d_backward", edited(
        "dpadded[:, t:t + n] += dcols[..., t]", "dpadded[:, t:t + n] = dcols[..., t]"), "the taps assigned (=)"),
    "attention: the p2c term forgotten": ("attention.backward", edited("dk += dk_term", "pass"),
                                          "the p2c through the keys term is missing"),
    "attention: c2p with its sign flipped": ("attention.backward", edited("dq += dq_term", "dq -= dq_term"),
                                             "the c2p through the queries term has the wrong sign"),
    "attention: the scale forgotten": ("attention.backward", edited("dterm = dscores * c.scale", "dterm = dscores"),
                                       "the scale is left out"),
    "attention: the value path forgotten": ("attention.backward", edited("dhidden += dvalues_in", "pass"),
                                            "the value path (context = P V) term is missing"),
    "EMD: the first query forgotten": ("emd.backward", edited("dhidden = dhidden + dquery", "dhidden = dhidden"),
                                       "the first query (hidden + positions) term is missing"),
    "EMD: one pass's keys forgotten": ("emd.backward", edited("dhidden = dhidden + dkeys", "dhidden = dkeys"),
                                       "the keys and values of the second pass term is missing"),
    "RTD loss: divided by every token": ("losses.rtd_loss_backward", rtd_every_token,
                                         "divided by every token (B N = 12) instead of the 9 real ones"),
    "RTD loss: the labels forgotten": ("losses.rtd_loss_backward", rtd_no_labels,
                                       "the -labels / |real| term is missing"),
}


@pytest.mark.parametrize("name", SLIPS)
def test_a_slip_in_a_model_backward_is_named(name, student, ref, monkeypatch):
    import sys

    exercise_id, wrong, words = SLIPS[name]
    owner_name, _, attr = exercise_id.rpartition(".")
    owner = student.get(owner_name)
    if isinstance(wrong, type(edited)) and wrong.__name__ == "make":
        namespace = vars(sys.modules[owner.__module__]) if isinstance(owner, type) else vars(owner)
        wrong = wrong(ref.get(exercise_id), namespace)
    monkeypatch.setattr(owner, attr, wrong)
    report = check_exercise(catalog.get(exercise_id), student, ref)
    assert report["status"] == "fail"
    found = diagnoses(report)
    assert any(words in d for d in found), found


def test_a_term_table_that_does_not_add_up_is_an_error():
    from minideberta.apps.exercises.terms import check_terms

    want = np.arange(6.0).reshape(2, 3)
    check_terms("t", want, [Term("a", "", want / 2), Term("b", "", want / 2)])
    with pytest.raises(AssertionError, match="does not add up"):
        check_terms("t", want, [Term("a", "", want / 2)])
