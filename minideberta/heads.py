"""The task heads that sit on the encoder's last hidden state, each a forward/backward pair.

- ``pooler``: transformers' ContextPooler, the ``[CLS]`` state -> dropout -> dense -> activation.
- ``classifier``: dropout -> linear; used on the pooled vector (sequence classification,
  multiple choice) or on every token (token classification, the QA span logits).
- ``mlm_head``: dense -> activation -> LayerNorm -> the word-embedding matrix transposed + bias.
  The decoder is *tied*: it is the input embedding table, so its gradient adds to the table's.
  transformers' "legacy" head calls these ``cls.predictions.{transform.dense, transform.LayerNorm,
  bias}``; Microsoft's (and transformers' ``legacy=False``) ``lm_predictions.lm_head.{dense,
  LayerNorm, bias}``. The model renames one onto the other before calling this file.
- ``rtd_head``: DeBERTa-v3's replaced-token-detection discriminator (``mask_predictions.*``,
  Microsoft's LMMaskPredictionHead): each token's state plus the [CLS] state -> LayerNorm ->
  dense -> activation -> one logit, "was this token replaced by the generator?".
"""
from typing import NamedTuple

from .backend import get_xp
from .ops import (
    activation_backward,
    activation_forward,
    dropout_backward,
    dropout_forward,
    layer_norm_backward,
    layer_norm_forward,
    linear_backward,
    linear_forward,
)
from .params import prefixed, subtree


class PoolerCache(NamedTuple):
    hidden_shape: tuple  # (B, N, D): only position 0 was read
    act: str  # config.pooler_hidden_act
    dropout: object  # DropoutCache of the [CLS] state (B, D)
    dense: object  # LinearCache
    activation: object  # the activation's cache


def pooler_forward(p, hidden, config, rng=None):
    """p: ``pooler.*``; hidden (B, N, D) -> (B, pooler_hidden_size)."""
    x, drop_cache = dropout_forward(hidden[:, 0], config.pooler_dropout, rng)  # (B, D)
    x, dense_cache = linear_forward(subtree(p, "dense"), x)
    y, act_cache = activation_forward(config.pooler_hidden_act, x)
    return y, PoolerCache(hidden.shape, config.pooler_hidden_act, drop_cache, dense_cache, act_cache)


def pooler_backward(p, dy, cache):
    """In the forward: ``y = act(dense(dropout(hidden[:, 0])))``."""
    shape, act, drop_cache, dense_cache, act_cache = cache
    d, g = linear_backward(subtree(p, "dense"), activation_backward(act, dy, act_cache), dense_cache)
    dhidden = get_xp(dy).zeros(shape, dtype=dy.dtype)
    dhidden[:, 0] = dropout_backward(d, drop_cache)  # only the [CLS] position was read
    return dhidden, prefixed(g, "dense")


class ClassifierCache(NamedTuple):
    dropout: object  # DropoutCache of the input
    linear: object  # LinearCache


def classifier_forward(p, x, rate, rng=None):
    """dropout(rate) -> linear: (..., D) -> (..., num_outputs)."""
    x, drop_cache = dropout_forward(x, rate, rng)
    y, linear_cache = linear_forward(p, x)
    return y, ClassifierCache(drop_cache, linear_cache)


def classifier_backward(p, dy, cache):
    """In the forward: ``y = linear(dropout(x))``."""
    drop_cache, linear_cache = cache
    dx, grads = linear_backward(p, dy, linear_cache)
    return dropout_backward(dx, drop_cache), grads


class MLMHeadCache(NamedTuple):
    act: str  # config.hidden_act
    h: object  # (B, N, E) the transformed states that met the decoder
    word_embeddings: object  # (V, E) the tied decoder
    dense: object  # LinearCache
    activation: object  # the activation's cache
    layer_norm: object  # LayerNormCache


def mlm_head_forward(p, hidden, word_embeddings, config):
    """p: ``dense.*``, ``LayerNorm.*``, ``bias``; hidden (B, N, D) -> logits (B, N, vocab_size)."""
    h, dense_cache = linear_forward(subtree(p, "dense"), hidden)  # (B, N, E)
    h, act_cache = activation_forward(config.hidden_act, h)
    h, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), h, config.layer_norm_eps)
    logits = (h.reshape(-1, h.shape[-1]) @ word_embeddings.T).reshape(*h.shape[:-1], -1)  # (B*N, E) @ (E, V)
    logits += p["bias"]
    return logits, MLMHeadCache(config.hidden_act, h, word_embeddings, dense_cache, act_cache, ln_cache)


def mlm_head_backward(p, dlogits, cache):
    """In the forward: ``logits = LN(act(dense(hidden))) @ word_embeddings^T + bias``. Returns ``(dhidden, dword_embeddings), grads``: the tied decoder's share of the table's gradient."""
    act, h, word_embeddings, dense_cache, act_cache, ln_cache = cache
    rows = dlogits.reshape(-1, dlogits.shape[-1])  # (B*N, V)
    dword = rows.T @ h.reshape(-1, h.shape[-1])  # (V, E)
    grads = {"bias": rows.sum(axis=0)}
    dh = (rows @ word_embeddings).reshape(*dlogits.shape[:-1], -1)  # one 2-D product: a 3-D one is several times slower
    dh, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dh, ln_cache)
    dh = activation_backward(act, dh, act_cache)
    dhidden, g_dense = linear_backward(subtree(p, "dense"), dh, dense_cache)
    grads.update(prefixed(g_ln, "LayerNorm"))
    grads.update(prefixed(g_dense, "dense"))
    return (dhidden, dword), grads


class RTDHeadCache(NamedTuple):
    act: str  # config.hidden_act
    layer_norm: object  # LayerNormCache of hidden + hidden[:, :1]
    dense: object  # LinearCache
    activation: object  # the activation's cache
    classifier: object  # LinearCache of the (B, N, D) -> (B, N, 1) classifier


def rtd_head_forward(p, hidden, config):
    """p: ``mask_predictions.*``; hidden (B, N, D) -> logits (B, N)."""
    h, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), hidden + hidden[:, :1], config.layer_norm_eps)
    h, dense_cache = linear_forward(subtree(p, "dense"), h)
    h, act_cache = activation_forward(config.hidden_act, h)
    logits, cls_cache = linear_forward(subtree(p, "classifier"), h)  # (B, N, 1)
    return logits[..., 0], RTDHeadCache(config.hidden_act, ln_cache, dense_cache, act_cache, cls_cache)


def rtd_head_backward(p, dlogits, cache):
    """In the forward: ``logits = classifier(act(dense(LN(hidden + hidden[:, :1]))))``."""
    act, ln_cache, dense_cache, act_cache, cls_cache = cache
    dh, g_cls = linear_backward(subtree(p, "classifier"), dlogits[..., None], cls_cache)
    dh, g_dense = linear_backward(subtree(p, "dense"), activation_backward(act, dh, act_cache), dense_cache)
    dsum, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dh, ln_cache)
    dhidden = dsum.copy()
    dhidden[:, 0] += dsum.sum(axis=1)  # the [CLS] state was added to every position
    return dhidden, {**prefixed(g_cls, "classifier"), **prefixed(g_dense, "dense"), **prefixed(g_ln, "LayerNorm")}
