"""The transformer layer and the encoder stack of DeBERTa (post-LayerNorm, as BERT).

One layer:
    a = LayerNorm(x + dropout(dense(attention(x))))        attention.self, attention.output
    y = LayerNorm(a + dropout(dense(act(dense(a)))))       intermediate, output

The stack runs the layers in turn, all sharing one relative-embedding table (optionally passed
through the encoder's LayerNorm first), with the nGiE convolution beside layer 0 when the config
has one. Its backward accumulates the table's gradient over every layer before going back
through that LayerNorm once.
"""
from typing import NamedTuple

from . import attention, ngie
from .backend import get_xp
from .ops import (
    LayerNormCache,
    LinearCache,
    activation_backward,
    activation_forward,
    dropout_backward,
    dropout_forward,
    layer_norm_backward,
    layer_norm_forward,
    linear_backward,
    linear_forward,
)
from .params import add_grads, prefixed, subtree
from .relative_position import relative_index_tables


class Masks(NamedTuple):
    pair: object  # (B, 1, N, N) bool, True where query i may attend to key j; None when every pair may
    token: object  # (B, N) bool, the real tokens


def attention_masks(attention_mask):
    """From a (B, N) padding mask or a (B, N, N) attention mask, the two masks the model uses.

    pair (B, 1, N, N): a (B, N) mask allows pairs of real tokens only; None when nothing is
    masked, so the softmax skips its masking passes. token (B, N): which tokens are real (for a
    3-D mask: those some query attends to, as transformers does). Computed once per forward.
    """
    if attention_mask.ndim == 2:
        real = attention_mask != 0
        pair = real[:, None, :, None] & real[:, None, None, :]
    else:
        pair = (attention_mask != 0)[:, None]
        real = pair[:, 0].any(axis=-2)
    return Masks(None if bool(pair.all()) else pair, real)


# ---- the sub-layer that closes attention and the FFN ----
class OutputCache(NamedTuple):
    dense: LinearCache
    dropout: object  # DropoutCache
    layer_norm: LayerNormCache  # of dropout(dense(x)) + residual


def output_forward(p, x, residual, config, rng=None):
    """dense -> dropout -> LayerNorm(. + residual): the sub-layer closing attention and the FFN."""
    h, dense_cache = linear_forward(subtree(p, "dense"), x)
    h, drop_cache = dropout_forward(h, config.hidden_dropout_prob, rng)
    h += residual
    y, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), h, config.layer_norm_eps)
    return y, OutputCache(dense=dense_cache, dropout=drop_cache, layer_norm=ln_cache)


def output_backward(p, dy, cache):
    """In the forward: ``y = LayerNorm(dropout(dense(x)) + residual)``. Returns ``(dx, dresidual), grads``."""
    dsum, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dy, cache.layer_norm)
    dx, g_dense = linear_backward(subtree(p, "dense"), dropout_backward(dsum, cache.dropout), cache.dense)
    return (dx, dsum), {**prefixed(g_dense, "dense"), **prefixed(g_ln, "LayerNorm")}


# ---- one layer ----
class LayerCache(NamedTuple):
    act: str  # config.hidden_act
    attention: attention.AttentionCache
    attention_output: OutputCache  # a = LN(x + dropout(dense(attention)))
    intermediate: LinearCache  # its input: a (B, N, D)
    activation: object  # the activation's cache, (B, N, intermediate_size)
    output: OutputCache  # y = LN(a + dropout(dense(act(...))))


def layer_forward(p, x, mask, config, rel_embeddings=None, rel_rows=None, query_states=None, rng=None,
                  query_positions=None):
    """One ``encoder.layer.{i}``: (B, N, D) -> (B, N, D). With query_states (EMD), the queries
    and the residual come from query_states while keys and values come from x; with query_positions
    (B, K) too, query_states are K rows at those positions, and so is the output (``attention.forward``)."""
    ctx, att_cache = attention.forward(subtree(p, "attention.self"), x, mask, config,
                                       rel_embeddings, rel_rows, query_states, rng, query_positions)
    residual = x if query_states is None else query_states
    a, att_out_cache = output_forward(subtree(p, "attention.output"), ctx, residual, config, rng)
    f, inter_cache = linear_forward(subtree(p, "intermediate.dense"), a)  # (B, N, D) -> (B, N, intermediate_size)
    f, act_cache = activation_forward(config.hidden_act, f)
    y, out_cache = output_forward(subtree(p, "output"), f, a, config, rng)
    return y, LayerCache(act=config.hidden_act, attention=att_cache, attention_output=att_out_cache,
                         intermediate=inter_cache, activation=act_cache, output=out_cache)


def layer_backward(p, dy, cache):
    """Returns ``(dx, dquery_states, drel_embeddings), grads``; dquery_states only with EMD queries.
    Undoes the forward's lines from the last: output, FFN, attention output, attention."""
    (df, da), g_out = output_backward(subtree(p, "output"), dy, cache.output)
    df = activation_backward(cache.act, df, cache.activation)
    da_ffn, g_inter = linear_backward(subtree(p, "intermediate.dense"), df, cache.intermediate)
    da += da_ffn  # a fed the FFN and its residual
    (dctx, dresidual), g_att_out = output_backward(subtree(p, "attention.output"), da, cache.attention_output)
    (dx, dquery, drel), g_att = attention.backward(subtree(p, "attention.self"), dctx, cache.attention)
    if dquery is None:
        dx += dresidual
    else:
        dquery += dresidual
    grads = {**prefixed(g_out, "output"), **prefixed(g_inter, "intermediate.dense"),
             **prefixed(g_att_out, "attention.output"), **prefixed(g_att, "attention.self")}
    return (dx, dquery, drel), grads


# ---- the shared relative-embedding table ----
class RelativeTable(NamedTuple):
    table: object  # (2k, D) rel_embeddings after the LayerNorm (if configured), what every layer reads
    rows: tuple  # (c2p_rows, p2c_rows), each (2N-1,): relative_index_tables(N, config)
    layer_norm: object  # LayerNormCache of the table, None without norm_rel_ebd
    # (all three None without relative attention)


def relative_embeddings_forward(p, config, n):
    """The shared (2k, D) relative table (after LayerNorm if configured) and its index rows for length n."""
    if not config.relative_attention:
        return RelativeTable(table=None, rows=None, layer_norm=None)
    table, ln_cache = p["rel_embeddings.weight"], None
    if config.rel_layer_norm:
        table, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), table, config.layer_norm_eps)
    return RelativeTable(table=table, rows=relative_index_tables(n, config, get_xp(table)), layer_norm=ln_cache)


def relative_embeddings_backward(p, dtables, cache):
    """In the forward: ``table = LayerNorm(rel_embeddings)`` (or the table itself), read by every layer.

    dtables: the gradient each use of the table returned (one per layer, None where a use had
    none); cache: the forward's RelativeTable. Returns ``None, grads`` (the table is made of
    parameters only: there is no input to return a gradient for); grads is {} when no use had one.
    """
    dtables = [d for d in dtables if d is not None]
    if not dtables:
        return None, {}
    dtable = sum(dtables[1:], dtables[0])  # every layer read the same table
    if cache.layer_norm is None:  # no norm_rel_ebd
        return None, {"rel_embeddings.weight": dtable}
    dweight, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dtable, cache.layer_norm)
    return None, {"rel_embeddings.weight": dweight, **prefixed(g_ln, "LayerNorm")}


# ---- the stack ----
class EncoderCache(NamedTuple):
    config: object  # DebertaV2Config
    layers: list  # one LayerCache per layer, in order
    conv: object  # NgieCache of the nGiE convolution beside layer 0, None without one
    relative: RelativeTable  # the shared table (its LayerNorm's cache for the backward)


def forward(p, x, masks, config, output_attentions=False, keep_cache=True, rng=None, keep_states=True):
    """The stack: x (B, N, D) embeddings -> hidden states. masks: ``attention_masks(attention_mask)``.

    Returns ``(hidden_states, attentions), cache``: hidden_states is the list [x, layer 1, ...,
    layer L] (L+1 arrays), attentions one (B, H, N, N) array per layer (empty unless asked).
    With keep_cache False the layers' caches are dropped as soon as each layer is done, which
    is what inference needs; the returned cache is then None and there is no backward. With
    keep_states False only the last two hidden states are kept (the heads read no others).
    """
    relative = relative_embeddings_forward(p, config, x.shape[1])
    hidden_states, attentions, layer_caches, conv_cache = [x], [], [], None
    for i in range(config.num_hidden_layers):
        y, layer_cache = layer_forward(subtree(p, f"layer.{i}"), hidden_states[-1], masks.pair, config,
                                       relative.table, relative.rows, rng=rng)
        if i == 0 and config.conv_kernel_size > 0:
            y, conv_cache = ngie.forward(subtree(p, "conv"), x, y, masks.token, config, rng)
        if output_attentions:
            attentions.append(attention.probabilities(layer_cache.attention))
        if keep_cache:
            layer_caches.append(layer_cache)
        del layer_cache  # without a backward to come, free it before the next layer runs
        hidden_states.append(y)
        if not keep_states:
            del hidden_states[:-2]
    cache = EncoderCache(config=config, layers=layer_caches, conv=conv_cache, relative=relative) if keep_cache else None
    return (hidden_states, attentions), cache


def backward(p, dhidden_states, cache):
    """dhidden_states: the gradient of each returned hidden state (list of L+1, None for none).

    Returns ``dx, grads``: the gradient of the embeddings x and of every encoder parameter.
    """
    config = cache.config
    grads, dtables = {}, []
    d = dhidden_states[-1]
    if d is None:  # the loss used an earlier layer only (the Enhanced Mask Decoder reads layer L-1)
        d = get_xp(dhidden_states[-2]).zeros_like(dhidden_states[-2])
    for i in reversed(range(config.num_hidden_layers)):
        d_conv_in = None
        if i == 0 and cache.conv is not None:
            (d_conv_in, d), g_conv = ngie.backward(subtree(p, "conv"), d, cache.conv)
            add_grads(grads, prefixed(g_conv, "conv"))
        (d, _, drel), g_layer = layer_backward(subtree(p, f"layer.{i}"), d, cache.layers[i])
        add_grads(grads, prefixed(g_layer, f"layer.{i}"))
        dtables.append(drel)
        for extra in (d_conv_in, dhidden_states[i]):  # x also fed the convolution; state i was an output
            if extra is not None:
                d = d + extra
    add_grads(grads, relative_embeddings_backward(p, dtables, cache.relative)[1])
    return d, grads
