"""Stages of the pre-training exercises: the RTD loss and its backward, the labels of a corrupted
batch, and which embedding table gets which gradient (GDES, ES, NES).

The functions are those ``apps/pretrain/rtd.py`` runs (and the discriminator's loss in
``losses.py``); the numbers are the pre-training's own.
"""

import numpy as np

from .cases import gradient_stage, padding_mask, value_stage
from .terms import Term, Variant

RTD_FORWARD, RTD_BACKWARD = "losses.rtd_loss_forward", "losses.rtd_loss_backward"
RTD_LINE = "dlogits = (sigmoid(logits) - labels) / |real| * dloss on real tokens, 0 on padding"


# ---------------------------------------------------------------- the RTD loss
def _rtd_case(batch, n, lengths, seed):
    rng = np.random.default_rng(seed)
    real = padding_mask(batch, n, lengths).astype(bool)
    labels = (rng.random((batch, n)) < 0.4).astype(np.int64) * real
    return 2 * rng.normal(size=(batch, n)), labels, real


def rtd_loss_backward():
    def case(name, adds, batch, n, lengths, seed=0):
        logits, labels, real = _rtd_case(batch, n, lengths, seed)
        regions = {"logits": {"padded tokens": (~real, "padding is no token: it is neither in the mean nor in the "
                                                       "gradient")}}

        def forward(pkg, a):
            return pkg.get(RTD_FORWARD)(a["logits"], labels, real)

        def backward(pkg, dy, cache, a):
            return {"logits": pkg.get(RTD_BACKWARD)(dy, cache)}

        def terms(ref, dy, cache, a, want):
            count = int(real.sum())
            sig = 1 / (1 + np.exp(-a["logits"]))
            up = float(dy)
            return {"logits": ([Term("sigmoid(logits) / |real|", RTD_LINE, sig * real / count * up),
                                Term("-labels / |real|", RTD_LINE, -labels * real / count * up)],
                               [Variant(f"divided by every token (B N = {batch * n}) instead of the {count} real "
                                        "ones", want["logits"] * count / (batch * n)),
                                Variant("the padded tokens get sigmoid - label too", (sig - labels) / count * up),
                                Variant("the upstream dloss is left out", (sig - labels) * real / count)])}

        return gradient_stage(name, adds, forward, backward, {"logits": logits}, seed=seed, regions=regions,
                              terms=terms)

    def loss_value(name, adds, batch, n, lengths, seed=0):
        logits, labels, real = _rtd_case(batch, n, lengths, seed)
        return value_stage(name, adds, lambda pkg: {"loss": np.asarray(pkg.get(RTD_FORWARD)(
            logits.copy(), labels, real)[0], dtype=np.float64).reshape(1)})

    return [
        loss_value("the loss of one sequence, no padding", "mean binary cross-entropy of the logits", 1, 6, [6]),
        loss_value("the loss with padding", "only real tokens count, in the sum and in the mean", 2, 6, [6, 3]),
        case("the gradient, no padding", "d/dlogits = (sigmoid - label) / count", 1, 6, [6]),
        case("the gradient with padding", "padding gets no gradient and is not counted", 2, 6, [6, 3]),
        case("large logits", "no overflow: sigmoid of +-20", 2, 5, [5, 4], seed=3),
    ]


# ---------------------------------------------------------------- the labels of a corrupted batch
def discriminator_labels():
    fn = "apps.pretrain.rtd.discriminator_labels"

    def case(name, adds, original, replaced, mask):
        def call(pkg):
            return {"labels": np.asarray(pkg.get(fn)(original.copy(), replaced.copy(), mask.copy()))}

        return value_stage(name, adds, call, labels={"labels": np.arange(original.size).reshape(original.shape)})

    rng = np.random.default_rng(0)
    original = rng.integers(5, 30, size=(2, 6))
    changed = original.copy()
    changed[0, [1, 4]] = [31, 32]
    changed[1, 2] = 33
    same = changed.copy()
    same[1, 5] = original[1, 5]  # the generator sampled the original token back
    mask = padding_mask(2, 6, [6, 4])
    padded = changed.copy()
    padded[1, 5] = 34  # a padded position whose id differs
    return [
        case("nothing replaced", "all zeros: every token is original", original, original.copy(), np.ones((2, 6), int)),
        case("three tokens replaced", "1 where the input differs from the original", original, changed,
             np.ones((2, 6), int)),
        case("a sample equal to the original", "a sampled token equal to the original counts as original",
             original, same, np.ones((2, 6), int)),
        case("padding", "padded positions are 0, whatever their ids", original, padded, mask),
    ]


# ---------------------------------------------------------------- embedding sharing
def share_embedding_gradients():
    fn = "apps.pretrain.rtd.share_embedding_gradients"
    word = "deberta.embeddings.word_embeddings.weight"

    def case(name, adds, sharing):
        def call(pkg):
            rng = np.random.default_rng(0)
            grads = {f"generator.{word}": rng.normal(size=(5, 3)), "generator.lm_predictions.bias": rng.normal(size=5),
                     f"discriminator.{word}": rng.normal(size=(5, 3)),
                     "discriminator.mask_predictions.dense.bias": rng.normal(size=3)}
            out = pkg.get(fn)({k: v.copy() for k, v in grads.items()}, sharing)
            names = sorted(out) if isinstance(out, dict) else []
            return {"the names of the gradients": names, **{f"d {k}": np.asarray(out[k]) for k in names}}

        return value_stage(name, adds, call)

    return [
        case("nes: no sharing", "each model's table gets its own model's gradient", "nes"),
        case("es: one shared table", "the shared table (the generator's) gets both gradients, summed", "es"),
        case("gdes: gradient-disentangled", "E_G gets the MLM gradient only; E_Delta gets the RTD gradient "
             "(stop-gradient on E_G in E_D = sg(E_G) + E_Delta)", "gdes"),
    ]
