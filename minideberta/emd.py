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

A speed device: the loss reads the decoded states at the masked positions only, and every
position's query is decoded independently of the others' (they all attend to the same keys H).
So ``forward_rows(..., decode=selected)`` runs the two passes on those rows alone: K queries a
sequence (K the most masked positions in a row, about 15% of N in pre-training, the shorter rows
filled with unmasked positions whose outputs are dropped) against all N keys. Keys and values
are projected as before; the query projection, the attention output, the FFN and their
LayerNorms run on K rows instead of N. The decoded rows are the same (``tests/unit/test_emd.py``);
what it saves in a pre-training step: ``bench pretrain`` (README, "Pre-training throughput").
Microsoft's code decodes all N positions and picks the masked ones afterwards.
"""
from typing import NamedTuple

import numpy as np

from .backend import device_of, get_xp, to_device, to_numpy
from .embeddings import embedding_backward, embedding_forward
from .encoder import layer_backward, layer_forward, relative_embeddings_backward, relative_embeddings_forward
from .params import add_grads, prefixed, subtree

PASSES = 2


class EMDCache(NamedTuple):
    config: object  # DebertaV2Config
    positions: object  # EmbeddingCache of the absolute position lookup (B, N)
    relative: object  # encoder.RelativeTable the decoder's layer read (its LayerNorm's cache)
    passes: list  # PASSES LayerCaches of the last layer, in order
    rows: object  # (B, K) positions of the decoded rows (forward_rows), None: all N positions (forward)


def decode_rows(decode):
    """(B, N) bool -> ``rows, chosen``, both (B, K): in each sequence the positions ``decode`` chose, in
    order, then unchosen ones to make K = the most chosen in a sequence (at least 1). ``chosen`` marks
    the first kind: ``decoded[chosen]`` lists the chosen rows in the order of ``states[decode]``.
    The positions of a sequence are distinct (the attention relies on it). Host arithmetic (NumPy)."""
    decode = to_numpy(decode).astype(bool)
    order = np.argsort(~decode, axis=1, kind="stable")  # (B, N): the chosen first, each group in order
    k = max(1, int(decode.sum(axis=1).max()))
    rows = order[:, :k]
    return rows, np.take_along_axis(decode, rows, axis=1)


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
    return query, EMDCache(config=config, positions=pos_cache, relative=relative, passes=passes, rows=None)


def forward_rows(p, hidden, pair_mask, position_ids, config, decode, rng=None):
    """``forward`` at the positions ``decode`` (B, N) bool chose only (the module docstring's speed device).

    Returns ``(decoded, chosen), cache``: decoded (B, K, D) holds the rows of ``decode_rows(decode)``,
    and ``decoded[chosen]`` is ``forward(...)[0][decode]``, the same states. ``backward`` takes the cache."""
    rows, chosen = decode_rows(decode)
    rows, chosen = to_device(rows, device_of(hidden)), to_device(chosen, device_of(hidden))  # (B, K)
    at = get_xp(hidden).arange(len(rows))[:, None], rows  # the (B, K) rows of a (B, N, ...) array
    positions, pos_cache = embedding_forward(subtree(p, "embeddings.position_embeddings"), position_ids[at])
    enc = subtree(p, "encoder")
    last = subtree(enc, f"layer.{config.num_hidden_layers - 1}")
    relative = relative_embeddings_forward(enc, config, hidden.shape[1])
    pair_rows = None if pair_mask is None else pair_mask[:, 0][at][:, None]  # (B, 1, N, N) -> (B, 1, K, N)
    query, passes = positions + hidden[at], []  # (B, K, D): the queries at the chosen rows only
    for _ in range(PASSES):
        query, cache = layer_forward(last, hidden, pair_rows, config, relative.table, relative.rows,
                                     query_states=query, rng=rng, query_positions=rows)
        passes.append(cache)
    return (query, chosen), EMDCache(config=config, positions=pos_cache, relative=relative, passes=passes, rows=rows)


def backward(p, dquery, cache):
    """Returns ``dhidden, grads``: the gradient of the second-to-last hidden state, and of the last
    layer, the relative embeddings and the position table (names relative to the backbone).

    In the forward: ``query = last(hidden, queries=query)`` twice, from ``query = positions + hidden``.
    hidden fed both passes as keys and values, and the first query: its gradient sums all three.
    dquery is (B, N, D), or (B, K, D) after ``forward_rows``.
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
    if cache.rows is None:
        dhidden = dhidden + dquery  # the first query was H + positions
    else:  # the first query was H[rows] + positions: distinct rows of each sequence, so += adds nothing twice
        dhidden[get_xp(dhidden).arange(len(cache.rows))[:, None], cache.rows] += dquery
    _, g_pos = embedding_backward(subtree(p, "embeddings.position_embeddings"), dquery, cache.positions)
    grads["embeddings.position_embeddings.weight"] = g_pos["weight"]
    _, g_rel = relative_embeddings_backward(enc, dtables, cache.relative)
    add_grads(grads, prefixed(g_rel, "encoder"))
    return dhidden, grads
