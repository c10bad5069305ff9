"""Stages of the first-course exercises: LayerNorm, GELU, masked softmax, cross-entropy; their term tables."""
import math

import numpy as np

from .cases import dx_of, gradient_stage, padding_mask
from .terms import Term, Variant

LN_LINE = "dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight, means over the D features"
GELU_LINE = "dx = dy * (Phi(x) + x * phi(x))"
SOFTMAX_LINE = "dS = P * dP - P * sum(dP * P), the sum over the keys (the last axis)"
CE_LINE = "dlogits = (softmax(logits) - onehot(label)) / count * dloss, on the counted rows"


def layer_norm_terms(ref, dy, cache, a, want):
    """The three terms of dx, and the whole-answer mistakes the issue's students made."""
    xhat, rstd, w = cache.xhat, cache.rstd, a["weight"]
    d = xhat.shape[-1]
    g = dy * w
    mean_g, mean_gx = g.mean(-1, keepdims=True), (g * xhat).mean(-1, keepdims=True)
    by_d = {float(d): f"summed over the D = {d} features where the formula takes the mean: a factor of D",
            1 / d: f"divided by D = {d} once too often"}
    terms = [Term("g = dy * weight", LN_LINE, rstd * g),
             Term("-mean(g)", LN_LINE, -rstd * mean_g, by_d),
             Term("-xhat * mean(g * xhat)", LN_LINE, -rstd * xhat * mean_gx, by_d)]
    axis = xhat.ndim - 2  # the rows: an axis that is not the features'
    wrong_g, wrong_gx = g.mean(axis, keepdims=True), (g * xhat).mean(axis, keepdims=True)
    variants = [
        Variant(f"the means are sums over the D = {d} features (a factor of D on both mean terms)",
                rstd * (g - d * mean_g - d * xhat * mean_gx)),
        Variant(f"the means are taken over axis {axis} (the rows) instead of the last axis (the D features)",
                rstd * (g - wrong_g - xhat * wrong_gx)),
        Variant("the final rstd is left out: dx = g - mean(g) - xhat * mean(g * xhat)", want["x"] / rstd),
        Variant("the weight is left out: g = dy instead of dy * weight",
                rstd * (dy - dy.mean(-1, keepdims=True) - xhat * (dy * xhat).mean(-1, keepdims=True))),
        Variant("x - mean(x) used where xhat (normalised, times rstd) is wanted", rstd * (
            g - mean_g - (xhat / rstd) * (g * xhat / rstd).mean(-1, keepdims=True))),
    ]
    axes = tuple(range(dy.ndim - 1))
    return {"x": (terms, variants),  # dweight and dbias are one term each: the whole-answer diagnoses name those
            "weight": ([], [Variant("dy * x summed instead of dy * xhat", (dy * a["x"]).sum(axis=axes))])}


def gelu_terms(ref, dy, cache, a, want):
    from scipy.special import erf

    x = a["x"]
    cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    tanh_form = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x))
    root = math.sqrt(2 * math.pi)
    return {"x": ([Term("Phi(x)", GELU_LINE, dy * cdf),
                   Term("x * phi(x)", GELU_LINE, dy * x * pdf,
                        {root: "phi without its 1/sqrt(2 pi)", 1 / root: "phi divided by sqrt(2 pi) twice"})],
                  [Variant("the tanh approximation (gelu_new) differentiated instead of the exact erf form",
                           tanh_form),
                   Variant("phi(x) without the factor x: dx = dy * (Phi(x) + phi(x))", dy * (cdf + pdf)),
                   Variant("dy is left out: dx = Phi(x) + x phi(x)", cdf + x * pdf)])}


def softmax_terms(ref, dy, cache, a, want):
    p = cache.probs
    n = p.shape[-1]
    sums = (dy * p).sum(-1, keepdims=True)
    return {"x": ([Term("P * dP", SOFTMAX_LINE, p * dy),
                   Term("-P * sum(dP * P)", SOFTMAX_LINE, -p * sums,
                        {1 / n: f"a mean over the N = {n} keys where the formula sums"})],
                  [Variant("the sum is taken over axis -2 (the queries) instead of the last axis (the keys)",
                           p * dy - p * (dy * p).sum(-2, keepdims=True)),
                   Variant("sum(dP) instead of sum(dP * P)", p * dy - p * dy.sum(-1, keepdims=True))])}


def layer_norm_backward():
    def case(name, adds, shape, eps, plain=False, seed=0):
        rng = np.random.default_rng(seed)
        d = shape[-1]
        arrays = {"x": 2 * rng.normal(size=shape) + 1,
                  "weight": np.ones(d) if plain else 1 + 0.5 * rng.normal(size=d),
                  "bias": np.zeros(d) if plain else rng.normal(size=d)}

        def forward(pkg, a):
            return pkg.get("ops.layer_norm_forward")({"weight": a["weight"], "bias": a["bias"]}, a["x"], eps)

        def backward(pkg, dy, cache, a):
            dx, grads = pkg.get("ops.layer_norm_backward")({"weight": a["weight"], "bias": a["bias"]}, dy, cache)
            return {"x": dx, "weight": grads.get("weight"), "bias": grads.get("bias")}

        return gradient_stage(name, adds, forward, backward, arrays, seed=seed, terms=layer_norm_terms)

    return [
        case("one row of 6, weight 1, bias 0", "the normalisation alone: mean, variance, 1/sqrt", (1, 6), 1e-7, True),
        case("4 rows of 6, random weight and bias", "the affine part and its gradients (sums over rows)",
             (4, 6), 1e-7),
        case("a (2, 3, 5) batch", "weight and bias gradients summed over every leading axis", (2, 3, 5), 1e-7),
        case("eps = 0.5", "eps inside the square root (it is not added to the std)", (3, 4), 0.5),
    ]


def gelu_backward():
    def case(name, adds, x):
        def forward(pkg, a):
            return pkg.get("ops.gelu_forward")(a["x"])

        def backward(pkg, dy, cache, a):
            return {"x": dx_of(pkg.get("ops.gelu_backward")(dy, cache))}

        return gradient_stage(name, adds, forward, backward, {"x": x}, terms=gelu_terms)

    rng = np.random.default_rng(1)
    return [
        case("x in [-3, 3]", "Phi(x) + x phi(x), the exact derivative", np.linspace(-3, 3, 13)),
        case("tails: |x| up to 8", "Phi -> 0 or 1 and x phi(x) -> 0 far out", np.linspace(-8, 8, 9)),
        case("a (2, 3, 4) array", "any shape, elementwise", 2 * rng.normal(size=(2, 3, 4))),
    ]


def masked_softmax_backward():
    def case(name, adds, shape, mask, seed=0):
        rng = np.random.default_rng(seed)
        regions = {}
        if mask is not None:
            regions = {"x": {"masked entries": (np.broadcast_to(~mask, shape),
                                                "masked scores must get exactly no gradient (P = 0 there)")}}

        def forward(pkg, a):
            return pkg.get("ops.masked_softmax_forward")(a["x"], mask)  # overwrites its input: a is a copy

        def backward(pkg, dy, cache, a):
            return {"x": dx_of(pkg.get("ops.masked_softmax_backward")(dy, cache))}

        return gradient_stage(name, adds, forward, backward, {"x": 2 * rng.normal(size=shape)}, regions=regions,
                              terms=softmax_terms)

    pair = padding_mask(2, 5, [5, 3]).astype(bool)
    keys = pair[:, None, None, :]  # (B, 1, 1, N): padded keys
    pairs = (pair[:, None, :, None] & pair[:, None, None, :])  # (B, 1, N, N): padded queries too
    return [
        case("no mask, (3, 5)", "the softmax Jacobian P (dP - sum(dP P))", (3, 5), None),
        case("padded keys, (2, 2, 5, 5)", "masked entries get no gradient", (2, 2, 5, 5), keys),
        case("padded queries: fully masked rows", "an all-zero row (XSoftmax) has zero gradient", (2, 2, 5, 5), pairs),
    ]


def cross_entropy_backward():
    def case(name, adds, rows, classes, labels, dloss=1.0, seed=0):
        rng = np.random.default_rng(seed)
        regions = {"logits": {"ignored rows": ((labels == -100)[:, None] * np.ones(classes, bool),
                                               "rows with label -100 get no gradient"),
                              "the label entries": (np.eye(classes, dtype=bool)[np.where(labels < 0, 0, labels)]
                                                    & (labels >= 0)[:, None], "the -1 of the one-hot target")}}

        def forward(pkg, a):
            loss, cache = pkg.get("losses.cross_entropy_forward")(a["logits"], labels)
            return loss * dloss, cache

        def backward(pkg, dy, cache, a):
            return {"logits": dx_of(pkg.get("losses.cross_entropy_backward")(dy * dloss, cache))}

        def terms(ref, dy, cache, a, want):
            counted = (labels != -100)[:, None]
            count = max(int(counted.sum()), 1)
            up = float(dy) * dloss
            logits = a["logits"]
            soft = np.exp(logits - logits.max(-1, keepdims=True))
            soft /= soft.sum(-1, keepdims=True)
            onehot = np.eye(classes)[np.where(labels < 0, 0, labels)]
            return {"logits": ([Term("softmax / count", CE_LINE, soft * counted / count * up),
                                Term("-onehot(label) / count", CE_LINE, -onehot * counted / count * up)],
                               [Variant(f"divided by every row (M = {rows}) instead of the {count} counted ones",
                                        want["logits"] * count / rows),
                                Variant("the ignored rows (label -100) get softmax - onehot too",
                                        (soft - onehot) / count * up),
                                Variant("the upstream dloss is left out", (soft - onehot) * counted / count)])}

        return gradient_stage(name, adds, forward, backward, {"logits": 3 * rng.normal(size=(rows, classes))},
                              seed=seed, regions=regions, terms=terms)

    return [
        case("4 rows, 5 classes, every label counted", "softmax - onehot, divided by the count", 4, 5,
             np.array([0, 3, 4, 1])),
        case("ignored rows (label -100)", "ignored rows: no gradient, and not counted in the mean", 5, 4,
             np.array([2, -100, 0, -100, 3])),
        case("upstream gradient 0.7", "the upstream dloss multiplies everything", 3, 6, np.array([5, 0, 2]), 0.7),
    ]
