"""The elementary operations of DeBERTa, each a forward/backward pair.

    y, cache = op_forward(p, x, ...)        dx, grads = op_backward(p, dy, cache)   (with parameters)
    y, cache = op_forward(x, ...)           dx = op_backward(dy, cache)             (without)

This is the contract of every file of the model: a backward takes ``(p, dy, cache)``, or ``(dy,
cache)`` where there are no parameters, and returns ``dx, grads``. The single departure is the
second line: a function without parameters (an activation, the softmax, dropout, a loss, whose
``dy`` is ``dloss``) has no grads to return and returns ``dx`` alone. Where the input is integer
ids (a lookup, ``embeddings.embedding_backward``) there is no dx: ``dx`` is None. Where a forward has several inputs, ``dx`` is a
tuple of their gradients in the forward's order. Helpers that differentiate one line from its
inputs instead of a cache (``attention.position_scores_backward(dscores, x, pos)``) put dy first too.

``p`` holds the operation's own arrays under the names torch gives them (``weight``, ``bias``),
and ``cache`` (a NamedTuple, built and read by field name) holds exactly what the backward needs. Every function takes its array module from
its inputs, so the code runs unchanged on CuPy. Nothing here changes a dtype: float16 inputs give
float16 outputs, with LayerNorm's statistics and the softmax computed in float32 (``backend.widened``).
"""
import math
from typing import NamedTuple

from .backend import SQRT_HALF, erf, get_xp, widened
from .blocks import by_row_blocks

INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def sum_to_shape(a, ndim):
    """Sum the leading axes of ``a`` away until ``ndim`` axes remain (the gradient of a broadcast)."""
    return a.sum(axis=tuple(range(a.ndim - ndim))) if a.ndim > ndim else a


# ---- linear: y = x W^T + b, W stored (out, in) as in torch.nn.Linear ----
class LinearCache(NamedTuple):
    x: object  # (..., in) the input


def linear_forward(p, x):
    # One 2-D matrix product for all rows: faster than a batch of (N, in) products.
    y = (x.reshape(-1, x.shape[-1]) @ p["weight"].T).reshape(*x.shape[:-1], -1)  # (..., in) -> (..., out)
    if "bias" in p:
        y += p["bias"]
    return y, LinearCache(x=x)


def linear_backward(p, dy, cache):
    """In the forward: ``y = x W^T + b``. dx = dy W, dW = dy^T x, db = sum of dy over the rows."""
    x = cache.x
    dy2 = dy.reshape(-1, dy.shape[-1])  # (rows, out)
    grads = {"weight": dy2.T @ x.reshape(-1, x.shape[-1])}  # (out, in)
    if "bias" in p:
        grads["bias"] = dy2.sum(axis=0)
    return (dy2 @ p["weight"]).reshape(*dy.shape[:-1], -1), grads


# ---- layer normalisation over the last axis (Ba et al. 2016), biased variance as torch ----
class LayerNormCache(NamedTuple):
    xhat: object  # (..., D) the normalised input (x - mean) * rstd
    rstd: object  # (..., 1) 1 / sqrt(var + eps)


def layer_norm_forward(p, x, eps):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis (float16: statistics in float32)."""
    xp = get_xp(x)
    wide = widened(x)
    xhat = wide - wide.mean(axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt((xhat * xhat).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat *= rstd
    if wide is not x:  # back to float16 for the affine part and the cache
        xhat, rstd = xhat.astype(x.dtype), rstd.astype(x.dtype)
    y = xhat * p["weight"]
    y += p["bias"]
    return y, LayerNormCache(xhat=xhat, rstd=rstd)


def layer_norm_backward(p, dy, cache):
    """In the forward: ``y = xhat * weight + bias``, ``xhat = (x - mean(x)) * rstd`` over the last axis.

    With g = dy * weight:

        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))        (means over the last axis, D terms)
        dweight = sum of dy * xhat,   dbias = sum of dy          (over every axis but the last)

    The two means remove the parts of g along the constant vector (the mean that was subtracted)
    and along xhat itself (the variance that was divided by).
    """
    xhat, rstd = cache.xhat, cache.rstd
    grads = {"weight": sum_to_shape(dy * xhat, 1), "bias": sum_to_shape(dy, 1)}
    g = dy * p["weight"]
    dx = g - g.mean(axis=-1, keepdims=True)
    dx -= xhat * (g * xhat).mean(axis=-1, keepdims=True)
    dx *= rstd
    return dx, grads


# ---- activations: y = f(x); the cache is what f' needs ----
def normal_cdf(x, out=None):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal's distribution function (into ``out`` if given)."""
    out = erf(x * SQRT_HALF, out=out)
    out += 1
    out *= 0.5
    return out


def gelu(x, out=None):
    """GELU(x) = x Phi(x) = x/2 (1 + erf(x / sqrt 2)): the definition (exact form, Hendrycks & Gimpel 2016),
    into ``out`` if given."""
    out = normal_cdf(x, out=out)  # Phi(x)
    out *= x  # x Phi(x)
    return out


def gelu_grad(x, dy, out=None):
    """dy * d GELU / dx = dy (Phi(x) + x phi(x)), with phi(x) = exp(-x^2 / 2) / sqrt(2 pi) the standard
    normal density, into ``out`` if given."""
    out = normal_cdf(x, out=out)  # Phi(x)
    out += get_xp(x).exp(x * x * -0.5) * x * INV_SQRT_2PI  # + x phi(x)
    out *= dy
    return out


class GeluCache(NamedTuple):
    x: object  # the input (the backward recomputes Phi(x))


def gelu_forward(x):
    """y = gelu(x). The cache is x alone (as torch keeps): the backward recomputes Phi rather than
    holding a second (B, N, intermediate_size) array per layer. float32 takes ``backend.erf``'s
    rational approximation.

    ``by_row_blocks`` is a speed device wrapped around the plain formula: it runs ``gelu`` on
    cache-sized blocks of rows and gives the same bits as ``gelu(x)`` (blocks.py; README, "Speed and memory").
    """
    return by_row_blocks(gelu, get_xp(x).empty(x.shape, x.dtype), x), GeluCache(x=x)  # = gelu(x)


def gelu_backward(dy, cache):
    """In the forward: ``y = gelu(x)``; dx = gelu_grad(x, dy) = dy * gelu'(x), in blocks of rows as the forward."""
    return by_row_blocks(gelu_grad, get_xp(dy).empty(dy.shape, cache.x.dtype), cache.x, dy)  # = gelu_grad(x, dy)


class GeluTanhCache(NamedTuple):
    x: object  # the input
    t: object  # tanh(sqrt(2/pi) (x + 0.044715 x^3)), same shape


def gelu_new_forward(x):
    """The tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (transformers' gelu_new)."""
    xp = get_xp(x)
    t = xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    return 0.5 * x * (1 + t), GeluTanhCache(x=x, t=t)


def gelu_new_backward(dy, cache):
    """In the forward: ``y = x (1 + t) / 2`` with t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3)."""
    x, t = cache.x, cache.t
    dinner = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)


class TanhCache(NamedTuple):
    y: object  # the output tanh(x)


def tanh_forward(x):
    y = get_xp(x).tanh(x)
    return y, TanhCache(y=y)


def tanh_backward(dy, cache):
    """In the forward: ``y = tanh(x)``; dy/dx = 1 - y^2."""
    return dy * (1 - cache.y * cache.y)


class ReluCache(NamedTuple):
    positive: object  # bool, x > 0


def relu_forward(x):
    positive = x > 0
    return x * positive, ReluCache(positive=positive)


def relu_backward(dy, cache):
    """In the forward: ``y = x * (x > 0)``; the gradient passes where x was positive."""
    return dy * cache.positive


class SiluCache(NamedTuple):
    x: object  # the input
    sig: object  # sigmoid(x)


def silu_forward(x):
    """SiLU / swish: x * sigmoid(x)."""
    sig = 1 / (1 + get_xp(x).exp(-x))
    return x * sig, SiluCache(x=x, sig=sig)


def silu_backward(dy, cache):
    """In the forward: ``y = x s``, s = sigmoid(x); dy/dx = s + x s (1 - s)."""
    x, sig = cache.x, cache.sig
    return dy * sig * (1 + x * (1 - sig))


ACTIVATION_FUNCTIONS = {
    "gelu": (gelu_forward, gelu_backward),
    "gelu_new": (gelu_new_forward, gelu_new_backward),
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "silu": (silu_forward, silu_backward),
}


def activation_forward(name, x):
    """Apply the activation a config names (``hidden_act``, ``pooler_hidden_act``, ``conv_act``)."""
    return ACTIVATION_FUNCTIONS[name][0](x)


def activation_backward(name, dy, cache):
    """The backward of ``activation_forward(name, x)``."""
    return ACTIVATION_FUNCTIONS[name][1](dy, cache)


# ---- masked softmax with XSoftmax semantics ----
class SoftmaxCache(NamedTuple):
    probs: object  # (..., N) the probabilities, 0 at masked entries


def masked_softmax_forward(scores, mask):
    """Softmax over the last axis where ``mask`` is True; masked entries are exactly 0.

    DeBERTa's XSoftmax: masked scores are set to the dtype's lowest value before the softmax
    and the masked probabilities to 0 after it, so a fully masked row (a padding query) is all
    zeros instead of the uniform row a plain masked softmax gives. ``mask`` (broadcastable to
    ``scores``) None means nothing is masked. Overwrites ``scores``. float16 scores are taken to
    float32 for the softmax and the probabilities brought back to float16 (into ``scores``).
    """
    xp = get_xp(scores)
    wide = widened(scores)
    if mask is not None:
        xp.copyto(wide, xp.finfo(wide.dtype).min, where=~mask)
    wide -= wide.max(axis=-1, keepdims=True)
    probs = xp.exp(wide, out=wide)
    probs /= probs.sum(axis=-1, keepdims=True)
    if mask is not None:
        probs *= mask
    if wide is not scores:
        scores[...] = probs
        probs = scores
    return probs, SoftmaxCache(probs=probs)


def masked_softmax_backward(dprobs, cache):
    """In the forward: ``P = softmax(S)`` row by row, 0 where masked.

    dS = P * (dP - sum(dP * P)); masked entries have P = 0 and so get no gradient.
    """
    probs = cache.probs
    ds = dprobs * probs
    ds -= probs * ds.sum(axis=-1, keepdims=True)
    return ds


# ---- dropout (inverted: kept units are scaled by 1/(1-rate) at training time) ----
class DropoutCache(NamedTuple):
    keep: object  # same shape as x: 0 or 1/(1-rate) per entry; None when dropout was the identity


def dropout_forward(x, rate, rng):
    """Zero each entry with probability ``rate``; ``rng`` None (evaluation) or rate 0 is the identity."""
    if rng is None or rate == 0:
        return x, DropoutCache(keep=None)
    keep = (rng.random(x.shape) >= rate).astype(x.dtype) * (1 / (1 - rate))
    return x * keep, DropoutCache(keep=keep)


def dropout_backward(dy, cache):
    """In the forward: ``y = x * keep``."""
    return dy if cache.keep is None else dy * cache.keep
