"""The Enhanced Mask Decoder (DeBERTa paper, section 3.2).

Relative attention alone cannot tell "a new [store] opened beside the new mall" from the same
words at other absolute positions, so DeBERTa adds absolute positions just before decoding
masked tokens. With ``position_biased_input`` false (every official v2/v3 model):

    H = output of the second-to-last encoder layer         (keys and values)
    q = H + position_embeddings[position_ids]              (the raw table, no LayerNorm)
    q = last_layer(H, queries=q); q = last_layer(H, queries=q)

and the MLM head decodes q. The last layer is applied twice with its own weights, so those
weights get gradient from the encoder and from both passes. With ``position_biased_input``
true the positions are already in the input and the decoder is the plain last layer.
This is Microsoft's ``EnhancedMaskDecoder`` (DeBERTa/apps/models/masked_language_model.py);
transformers does not implement it.
"""
from typing import NamedTuple

from .embeddings import embedding_backward, embedding_forward
from .encoder import layer_backward, layer_forward, relative_embeddings_backward, relative_embeddings_forward
from .params import add_grads, prefixed, subtree

PASSES = 2


class EMDCache(NamedTuple):
    config: object  # DebertaV2Config
    positions: object  # EmbeddingCache of the absolute position lookup (B, N)
    relative: object  # encoder.RelativeTable the decoder's layer read (its LayerNorm's cache)
    passes: list  # PASSES LayerCaches of the last layer, in order


def forward(p, hidden, pair_mask, position_ids, config, rng=None):
    """p: the backbone's arrays (``embeddings.*``, ``encoder.*``); hidden (B, N, D): the output of the
    second-to-last layer (``hidden_states[-2]``); pair_mask (B, 1, N, N) or None (``encoder.attention_masks``);
    position_ids (B, N). Returns the decoded states (B, N, D) for the MLM head."""
    positions, pos_cache = embedding_forward(subtree(p, "embeddings.position_embeddings"), position_ids)
    enc = subtree(p, "encoder")
    last = subtree(enc, f"layer.{config.num_hidden_layers - 1}")
    relative = relative_embeddings_forward(enc, config, hidden.shape[1])
    query, passes = positions + hidden, []
    for _ in range(PASSES):
        query, cache = layer_forward(last, hidden, pair_mask, config, relative.table, relative.rows,
                                     query_states=query, rng=rng)
        passes.append(cache)
    return query, EMDCache(config=config, positions=pos_cache, relative=relative, passes=passes)


def backward(p, dquery, cache):
    """Returns ``dhidden, grads``: the gradient of the second-to-last hidden state, and of the last
    layer, the relative embeddings and the position table (names relative to the backbone).

    In the forward: ``query = last(hidden, queries=query)`` twice, from ``query = positions + hidden``.
    hidden fed both passes as keys and values, and the first query: its gradient sums all three.
    """
    config = cache.config
    enc = subtree(p, "encoder")
    last_name = f"layer.{config.num_hidden_layers - 1}"
    last = subtree(enc, last_name)
    grads, dhidden, dtables = {}, 0, []
    for layer_cache in reversed(cache.passes):
        (dkeys, dquery, drel), g = layer_backward(last, dquery, layer_cache)
        add_grads(grads, prefixed(g, f"encoder.{last_name}"))
        dhidden = dhidden + dkeys
        dtables.append(drel)
    dhidden = dhidden + dquery  # the first query was H + positions
    _, g_pos = embedding_backward(subtree(p, "embeddings.position_embeddings"), dquery, cache.positions)
    grads["embeddings.position_embeddings.weight"] = g_pos["weight"]
    _, g_rel = relative_embeddings_backward(enc, dtables, cache.relative)
    add_grads(grads, prefixed(g_rel, "encoder"))
    return dhidden, grads
