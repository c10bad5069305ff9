"""Stages of the first-course exercises: LayerNorm, GELU, masked softmax, cross-entropy."""
import numpy as np

from .cases import gradient_stage, padding_mask


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

        return gradient_stage(name, adds, forward, backward, arrays, seed=seed)

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
            return {"x": pkg.get("ops.gelu_backward")(dy, cache)}

        return gradient_stage(name, adds, forward, backward, {"x": x})

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
            return {"x": pkg.get("ops.masked_softmax_backward")(dy, cache)}

        return gradient_stage(name, adds, forward, backward, {"x": 2 * rng.normal(size=shape)}, regions=regions)

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
            return {"logits": pkg.get("losses.cross_entropy_backward")(dy * dloss, cache)}

        return gradient_stage(name, adds, forward, backward, {"logits": 3 * rng.normal(size=(rows, classes))},
                              seed=seed, regions=regions)

    return [
        case("4 rows, 5 classes, every label counted", "softmax - onehot, divided by the count", 4, 5,
             np.array([0, 3, 4, 1])),
        case("ignored rows (label -100)", "ignored rows: no gradient, and not counted in the mean", 5, 4,
             np.array([2, -100, 0, -100, 3])),
        case("upstream gradient 0.7", "the upstream dloss multiplies everything", 3, 6, np.array([5, 0, 2]), 0.7),
    ]
