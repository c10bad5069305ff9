"""The input embeddings of DeBERTa: token ids -> (B, N, hidden_size) vectors.

    e = word[ids] (+ position[pos] if position_biased_input) (+ token_type[types] if type_vocab_size)
    e = embed_proj(e)                     only when embedding_size != hidden_size
    e = dropout(mask * LayerNorm(e))

v3 models add no absolute positions here (``position_biased_input`` false): position enters
through relative attention, and absolute positions only in the Enhanced Mask Decoder. The
``[PAD]`` row of the word table (``pad_token_id``) receives no gradient, as torch's padding_idx.
"""
from .ops import (dropout_backward, dropout_forward, embedding_backward, embedding_forward, layer_norm_backward,
                  layer_norm_forward, linear_backward, linear_forward, prefixed, subtree)


def forward(p, input_ids, token_type_ids, position_ids, token_mask, config, inputs_embeds=None, rng=None):
    """p: ``embeddings.*``. input_ids, token_type_ids, position_ids, token_mask: (B, N) arrays
    (token_type_ids/position_ids are unused when the config has no such embeddings).
    inputs_embeds (B, N, embedding_size) replaces the word lookup when given."""
    caches = {}
    if inputs_embeds is None:
        e, caches["word"] = embedding_forward(subtree(p, "word_embeddings"), input_ids)  # (B, N, E)
    else:
        e = inputs_embeds.copy()
    if config.position_biased_input:
        pos, caches["position"] = embedding_forward(subtree(p, "position_embeddings"), position_ids)
        e += pos
    if config.type_vocab_size > 0:
        types, caches["token_type"] = embedding_forward(subtree(p, "token_type_embeddings"), token_type_ids)
        e += types
    if config.embedding_size != config.hidden_size:
        e, caches["proj"] = linear_forward(subtree(p, "embed_proj"), e)  # (B, N, E) -> (B, N, D)
    e, caches["ln"] = layer_norm_forward(subtree(p, "LayerNorm"), e, config.layer_norm_eps)
    mask = token_mask[..., None].astype(e.dtype)
    e *= mask
    e, caches["dropout"] = dropout_forward(e, config.hidden_dropout_prob, rng)
    return e, (config, mask, caches)


def backward(p, dy, cache):
    """Returns ``dinputs_embeds, grads``; dinputs_embeds is the gradient of the summed embedding
    (before embed_proj), which is the gradient of ``inputs_embeds`` when those were given."""
    config, mask, caches = cache
    d = dropout_backward(dy, caches["dropout"]) * mask
    d, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), d, caches["ln"])
    grads = prefixed(g_ln, "LayerNorm")
    if "proj" in caches:
        d, g_proj = linear_backward(subtree(p, "embed_proj"), d, caches["proj"])
        grads["embed_proj.weight"] = g_proj["weight"]
    for name, table, padding_idx in (("word", "word_embeddings", config.pad_token_id),
                                     ("position", "position_embeddings", None),
                                     ("token_type", "token_type_embeddings", None)):
        if name in caches:
            g = embedding_backward(subtree(p, table), d, caches[name], padding_idx)
            grads[f"{table}.weight"] = g["weight"]
    return d, grads
