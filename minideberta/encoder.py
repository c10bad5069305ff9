"""The transformer layer and the encoder stack of DeBERTa (post-LayerNorm, as BERT).

One layer:
    a = LayerNorm(x + dropout(dense(attention(x))))        attention.self, attention.output
    y = LayerNorm(a + dropout(dense(act(dense(a)))))       intermediate, output

The stack runs the layers in turn, all sharing one relative-embedding table (optionally passed
through the encoder's LayerNorm first), with the nGiE convolution beside layer 0 when the config
has one. Its backward accumulates the table's gradient over every layer before going back
through that LayerNorm once.
"""
from . import attention, ngie
from .backend import get_xp
from .ops import (activation_backward, activation_forward, add_grads, dropout_backward, dropout_forward,
                  layer_norm_backward, layer_norm_forward, linear_backward, linear_forward, prefixed, subtree)
from .relative_position import relative_index_tables


def attention_masks(attention_mask):
    """From a (B, N) padding mask or a (B, N, N) attention mask, the two masks the model uses.

    Returns ``(pair_mask, token_mask)``: pair_mask (B, 1, N, N) bool, True where query i may
    attend to key j (a (B, N) mask allows pairs of real tokens only); token_mask (B, N) 0/1,
    which tokens are real (for a 3-D mask: those some query attends to, as transformers does).
    """
    if attention_mask.ndim == 2:
        real = attention_mask != 0
        return (real[:, None, :, None] & real[:, None, None, :]), real
    allowed = attention_mask != 0
    return allowed[:, None], allowed.any(axis=-2)


def output_forward(p, x, residual, config, rng=None):
    """dense -> dropout -> LayerNorm(. + residual): the sub-layer closing attention and the FFN."""
    h, dense_cache = linear_forward(subtree(p, "dense"), x)
    h, drop_cache = dropout_forward(h, config.hidden_dropout_prob, rng)
    h += residual
    y, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), h, config.layer_norm_eps)
    return y, (dense_cache, drop_cache, ln_cache)


def output_backward(p, dy, cache):
    """Returns ``(dx, dresidual), grads``."""
    dense_cache, drop_cache, ln_cache = cache
    dsum, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dy, ln_cache)
    dx, g_dense = linear_backward(subtree(p, "dense"), dropout_backward(dsum, drop_cache), dense_cache)
    return (dx, dsum), {**prefixed(g_dense, "dense"), **prefixed(g_ln, "LayerNorm")}


def layer_forward(p, x, mask, config, rel_embeddings=None, rel_rows=None, query_states=None, rng=None):
    """One ``encoder.layer.{i}``: (B, N, D) -> (B, N, D). With query_states (EMD), the queries
    and the residual come from query_states while keys and values come from x."""
    ctx, att_cache = attention.forward(subtree(p, "attention.self"), x, mask, config,
                                       rel_embeddings, rel_rows, query_states, rng)
    residual = x if query_states is None else query_states
    a, att_out_cache = output_forward(subtree(p, "attention.output"), ctx, residual, config, rng)
    f, inter_cache = linear_forward(subtree(p, "intermediate.dense"), a)  # (B, N, intermediate_size)
    f, act_cache = activation_forward(config.hidden_act, f)
    y, out_cache = output_forward(subtree(p, "output"), f, a, config, rng)
    return y, (config.hidden_act, att_cache, att_out_cache, inter_cache, act_cache, out_cache)


def layer_attention_probabilities(cache):
    return attention.probabilities(cache[1])


def layer_backward(p, dy, cache):
    """Returns ``(dx, dquery_states, drel_embeddings), grads``; dquery_states only with EMD queries."""
    act, att_cache, att_out_cache, inter_cache, act_cache, out_cache = cache
    (df, da), g_out = output_backward(subtree(p, "output"), dy, out_cache)
    df = activation_backward(act, df, act_cache)
    da_ffn, g_inter = linear_backward(subtree(p, "intermediate.dense"), df, inter_cache)
    da += da_ffn
    (dctx, dresidual), g_att_out = output_backward(subtree(p, "attention.output"), da, att_out_cache)
    (dx, dquery, drel), g_att = attention.backward(subtree(p, "attention.self"), dctx, att_cache)
    if dquery is None:
        dx += dresidual
    else:
        dquery += dresidual
    grads = {**prefixed(g_out, "output"), **prefixed(g_inter, "intermediate.dense"),
             **prefixed(g_att_out, "attention.output"), **prefixed(g_att, "attention.self")}
    return (dx, dquery, drel), grads


def relative_embeddings_forward(p, config, n):
    """The shared (2k, D) relative table (after LayerNorm if configured) and its index rows for length n."""
    if not config.relative_attention:
        return None, None, None
    table, ln_cache = p["rel_embeddings.weight"], None
    if config.rel_layer_norm:
        table, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), table, config.layer_norm_eps)
    return table, relative_index_tables(n, config, get_xp(table)), ln_cache


def relative_embeddings_backward(p, config, dtable, ln_cache):
    """Gradient of the table after its LayerNorm -> gradients of rel_embeddings and the LayerNorm."""
    if not config.rel_layer_norm:
        return {"rel_embeddings.weight": dtable}
    dweight, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dtable, ln_cache)
    return {"rel_embeddings.weight": dweight, **prefixed(g_ln, "LayerNorm")}


def forward(p, x, attention_mask, config, output_attentions=False, keep_cache=True, rng=None,
            keep_states=True):
    """The stack: x (B, N, D) embeddings -> hidden states.

    Returns ``(hidden_states, attentions), cache``: hidden_states is the list [x, layer 1, ...,
    layer L] (L+1 arrays), attentions one (B, H, N, N) array per layer (empty unless asked).
    With keep_cache False the layers' caches are dropped as soon as each layer is done, which
    is what inference needs; the returned cache is then None and there is no backward. With
    keep_states False only the last two hidden states are kept (the heads read no others).
    """
    mask, token_mask = attention_masks(attention_mask)
    if mask.all():
        mask = None  # nothing to mask: the softmax skips its two masking passes
    table, rel_rows, rel_ln_cache = relative_embeddings_forward(p, config, x.shape[1])
    hidden_states, attentions, layer_caches, conv_cache = [x], [], [], None
    for i in range(config.num_hidden_layers):
        y, layer_cache = layer_forward(subtree(p, f"layer.{i}"), hidden_states[-1], mask, config,
                                       table, rel_rows, rng=rng)
        if i == 0 and config.conv_kernel_size > 0:
            y, conv_cache = ngie.forward(subtree(p, "conv"), x, y, token_mask, config, rng)
        if output_attentions:
            attentions.append(layer_attention_probabilities(layer_cache))
        if keep_cache:
            layer_caches.append(layer_cache)
        del layer_cache  # without a backward to come, free it before the next layer runs
        hidden_states.append(y)
        if not keep_states:
            del hidden_states[:-2]
    cache = (config, layer_caches, conv_cache, rel_ln_cache) if keep_cache else None
    return (hidden_states, attentions), cache


def backward(p, dhidden_states, cache):
    """dhidden_states: the gradient of each returned hidden state (list of L+1, None for none).

    Returns ``dx, grads``: the gradient of the embeddings x and of every encoder parameter.
    """
    config, layer_caches, conv_cache, rel_ln_cache = cache
    grads, dtable = {}, None
    d = dhidden_states[-1]
    if d is None:  # the loss used an earlier layer only (the Enhanced Mask Decoder reads layer L-1)
        d = get_xp(dhidden_states[-2]).zeros_like(dhidden_states[-2])
    for i in reversed(range(config.num_hidden_layers)):
        d_conv_in = None
        if i == 0 and conv_cache is not None:
            (d_conv_in, d), g_conv = ngie.backward(subtree(p, "conv"), d, conv_cache)
            add_grads(grads, prefixed(g_conv, "conv"))
        (d, _, drel), g_layer = layer_backward(subtree(p, f"layer.{i}"), d, layer_caches[i])
        add_grads(grads, prefixed(g_layer, f"layer.{i}"))
        if drel is not None:
            dtable = drel if dtable is None else dtable + drel
        for extra in (d_conv_in, dhidden_states[i]):
            if extra is not None:
                d = d + extra
    if dtable is not None:
        add_grads(grads, relative_embeddings_backward(p, config, dtable, rel_ln_cache))
    return d, grads
