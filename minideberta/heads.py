"""The task heads that sit on the encoder's last hidden state, each a forward/backward pair.

- ``pooler``: transformers' ContextPooler, the ``[CLS]`` state -> dropout -> dense -> activation.
- ``classifier``: dropout -> linear; used on the pooled vector (sequence classification,
  multiple choice) or on every token (token classification, the QA span logits).
- ``mlm_head``: dense -> activation -> LayerNorm -> the word-embedding matrix transposed + bias.
  The decoder is *tied*: it is the input embedding table, so its gradient adds to the table's.
  transformers' "legacy" head calls these ``cls.predictions.{transform.dense, transform.LayerNorm,
  bias}``; Microsoft's (and transformers' ``legacy=False``) ``lm_predictions.lm_head.{dense,
  LayerNorm, bias}``. ``mlm_head_params`` reads the head's arrays from a model's dict under either
  layout (``config.legacy`` says which), ``mlm_head_grads`` puts their gradients back there.
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
    return y, PoolerCache(hidden_shape=hidden.shape, act=config.pooler_hidden_act, dropout=drop_cache,
                        dense=dense_cache, activation=act_cache)


def pooler_backward(p, dy, cache):
    """In the forward: ``y = act(dense(dropout(hidden[:, 0])))``."""
    c = cache
    d, g = linear_backward(subtree(p, "dense"), activation_backward(c.act, dy, c.activation), c.dense)
    dhidden = get_xp(dy).zeros(c.hidden_shape, dtype=dy.dtype)
    dhidden[:, 0] = dropout_backward(d, c.dropout)  # only the [CLS] position was read
    return dhidden, prefixed(g, "dense")


class ClassifierCache(NamedTuple):
    dropout: object  # DropoutCache of the input
    linear: object  # LinearCache


def classifier_forward(p, x, rate, rng=None):
    """dropout(rate) -> linear: (..., D) -> (..., num_outputs)."""
    x, drop_cache = dropout_forward(x, rate, rng)
    y, linear_cache = linear_forward(p, x)
    return y, ClassifierCache(dropout=drop_cache, linear=linear_cache)


def classifier_backward(p, dy, cache):
    """In the forward: ``y = linear(dropout(x))``."""
    dx, grads = linear_backward(p, dy, cache.linear)
    return dropout_backward(dx, cache.dropout), grads


def mlm_head_names(config):
    """Where the MLM head's arrays live in a model: transformers' legacy names or Microsoft's."""
    if config.legacy:
        return {"dense": "cls.predictions.transform.dense", "LayerNorm": "cls.predictions.transform.LayerNorm",
                "bias": "cls.predictions.bias"}
    return {"dense": "lm_predictions.lm_head.dense", "LayerNorm": "lm_predictions.lm_head.LayerNorm",
            "bias": "lm_predictions.lm_head.bias"}


def mlm_head_params(p, config):
    """The MLM head's arrays out of a model's parameter dict ``p``, as ``dense.*``, ``LayerNorm.*``, ``bias``."""
    names = mlm_head_names(config)
    return {**prefixed(subtree(p, names["dense"]), "dense"), **prefixed(subtree(p, names["LayerNorm"]), "LayerNorm"),
            "bias": p[names["bias"]]}


def mlm_head_grads(grads, config):
    """The head's gradients (``mlm_head_backward``) under the model's names: the inverse of ``mlm_head_params``."""
    names = mlm_head_names(config)
    return {**prefixed(subtree(grads, "dense"), names["dense"]),
            **prefixed(subtree(grads, "LayerNorm"), names["LayerNorm"]), names["bias"]: grads["bias"]}


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
    return logits, MLMHeadCache(act=config.hidden_act, h=h, word_embeddings=word_embeddings, dense=dense_cache,
                                activation=act_cache, layer_norm=ln_cache)


def mlm_head_backward(p, dlogits, cache):
    """In the forward: ``logits = LN(act(dense(hidden))) @ word_embeddings^T + bias``. Returns ``(dhidden, dword_embeddings), grads``: the tied decoder's share of the table's gradient."""
    c = cache
    rows = dlogits.reshape(-1, dlogits.shape[-1])  # (B*N, V)
    dword = rows.T @ c.h.reshape(-1, c.h.shape[-1])  # (V, E)
    grads = {"bias": rows.sum(axis=0)}
    dh = (rows @ c.word_embeddings).reshape(*dlogits.shape[:-1], -1)  # one 2-D product: a 3-D one is several times slower
    dh, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dh, c.layer_norm)
    dh = activation_backward(c.act, dh, c.activation)
    dhidden, g_dense = linear_backward(subtree(p, "dense"), dh, c.dense)
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
    return logits[..., 0], RTDHeadCache(act=config.hidden_act, layer_norm=ln_cache, dense=dense_cache,
                                      activation=act_cache, classifier=cls_cache)


def rtd_head_backward(p, dlogits, cache):
    """In the forward: ``logits = classifier(act(dense(LN(hidden + hidden[:, :1]))))``."""
    c = cache
    dh, g_cls = linear_backward(subtree(p, "classifier"), dlogits[..., None], c.classifier)
    dh, g_dense = linear_backward(subtree(p, "dense"), activation_backward(c.act, dh, c.activation), c.dense)
    dsum, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dh, c.layer_norm)
    dhidden = dsum.copy()
    dhidden[:, 0] += dsum.sum(axis=1)  # the [CLS] state was added to every position
    return dhidden, {**prefixed(g_cls, "classifier"), **prefixed(g_dense, "dense"), **prefixed(g_ln, "LayerNorm")}
