"""The input embeddings of DeBERTa: token ids -> (B, N, hidden_size) vectors.

    e = word[ids] (+ position[pos] if position_biased_input) (+ token_type[types] if type_vocab_size)
    e = embed_proj(e)                     only when embedding_size != hidden_size
    e = dropout(mask * LayerNorm(e))

v3 models add no absolute positions here (``position_biased_input`` false): position enters
through relative attention, and absolute positions only in the Enhanced Mask Decoder. The
``[PAD]`` row of the word table (``pad_token_id``) receives no gradient, as torch's padding_idx.

Each table is read by the lookup ``embedding_forward`` (a gather, ``weight[ids]``), whose backward is a
scatter-add into the table (``scatter_add_rows``, which attention's projected row span uses too).
"""
from typing import NamedTuple

from .backend import get_xp, scatter_add, zeros_for_rows
from .ops import (
    dropout_backward,
    dropout_forward,
    layer_norm_backward,
    layer_norm_forward,
    linear_backward,
    linear_forward,
)
from .params import prefixed, subtree


# ---- embedding lookup; its backward is a scatter-add into the table ----
class EmbeddingCache(NamedTuple):
    ids: object  # (...,) int, the rows that were read
    padding_idx: object  # the row that gets no gradient (torch's padding_idx), or None


def embedding_forward(p, ids, padding_idx=None):
    """``y = weight[ids]``; ``padding_idx`` (as in torch.nn.Embedding) names a row that gets no gradient."""
    return p["weight"][ids], EmbeddingCache(ids=ids, padding_idx=padding_idx)  # (...,) -> (..., dim)


def scatter_add_rows(n_rows, rows, values):
    """The gradient of a gather ``table[rows]``: a (n_rows, dim) array where each row of ``values``
    (m, dim) is added into row ``rows[m]``; rows read several times add up, rows never read are 0."""
    out = zeros_for_rows(get_xp(values), (n_rows, values.shape[-1]), values.dtype)  # no huge pages: backend.py
    return scatter_add(out, rows, values)


def embedding_backward(p, dy, cache):
    """In the forward: ``y = weight[ids]``. Returns ``None, grads``: integer ids have no gradient.
    Rows used several times add up their gradients; ``padding_idx`` gets none (as in torch)."""
    dweight = scatter_add_rows(p["weight"].shape[0], cache.ids.reshape(-1), dy.reshape(-1, dy.shape[-1]))
    if cache.padding_idx is not None:
        dweight[cache.padding_idx] = 0
    return None, {"weight": dweight}


class EmbeddingsCache(NamedTuple):
    word: object  # EmbeddingCache of the word lookup, None when inputs_embeds were given
    position: object  # EmbeddingCache of the position lookup, None without position_biased_input
    token_type: object  # EmbeddingCache of the token-type lookup, None without token types
    proj: object  # LinearCache of embed_proj (B, N, E) -> (B, N, D), None when E == D
    layer_norm: object  # LayerNormCache
    mask: object  # (B, N, 1) 0/1, the real tokens
    dropout: object  # DropoutCache


def forward(p, input_ids, token_type_ids, position_ids, token_mask, config, inputs_embeds=None, rng=None):
    """p: ``embeddings.*``. input_ids, token_type_ids, position_ids, token_mask: (B, N) arrays
    (token_type_ids/position_ids are unused when the config has no such embeddings).
    inputs_embeds (B, N, embedding_size) replaces the word lookup when given."""
    word = position = token_type = proj = None
    if inputs_embeds is None:
        e, word = embedding_forward(subtree(p, "word_embeddings"), input_ids, config.pad_token_id)  # (B, N) -> (B, N, E)
    else:
        e = inputs_embeds.copy()
    if config.position_biased_input:
        pos, position = embedding_forward(subtree(p, "position_embeddings"), position_ids)
        e += pos
    if config.type_vocab_size > 0:
        types, token_type = embedding_forward(subtree(p, "token_type_embeddings"), token_type_ids)
        e += types
    if config.embedding_size != config.hidden_size:
        e, proj = linear_forward(subtree(p, "embed_proj"), e)  # (B, N, E) -> (B, N, D)
    e, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), e, config.layer_norm_eps)
    mask = token_mask[..., None].astype(e.dtype)  # (B, N) -> (B, N, 1)
    e *= mask
    e, drop_cache = dropout_forward(e, config.hidden_dropout_prob, rng)
    return e, EmbeddingsCache(word=word, position=position, token_type=token_type, proj=proj, layer_norm=ln_cache,
                              mask=mask, dropout=drop_cache)


def backward(p, dy, cache):
    """Returns ``dinputs_embeds, grads``; dinputs_embeds is the gradient of the summed embedding
    (before embed_proj), which is the gradient of ``inputs_embeds`` when those were given.
    Undoes the forward's lines from the last: dropout, mask, LayerNorm, embed_proj, the lookups."""
    c = cache
    d = dropout_backward(dy, c.dropout) * c.mask
    d, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), d, c.layer_norm)
    grads = prefixed(g_ln, "LayerNorm")
    if c.proj is not None:
        d, g_proj = linear_backward(subtree(p, "embed_proj"), d, c.proj)
        grads["embed_proj.weight"] = g_proj["weight"]
    for lookup, table in ((c.word, "word_embeddings"), (c.position, "position_embeddings"),
                          (c.token_type, "token_type_embeddings")):
        if lookup is not None:
            _, g = embedding_backward(subtree(p, table), d, lookup)  # ids have no gradient
            grads[f"{table}.weight"] = g["weight"]
    return d, grads
