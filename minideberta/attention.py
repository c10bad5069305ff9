"""Disentangled self-attention (He et al. 2021, DeBERTa, section 3.1; DeBERTa-v2 changes).

Each token has a content vector and each distance delta = i - j a position vector (a row of the
shared relative-embedding table, after its LayerNorm). The score of query i for key j sums
three dot products, scaled once by 1/sqrt(d * (1 + number of position terms)):

    A_ij = ( Q_i . K_j  +  Q_i . Kr[row(i - j)]  +  K_j . Qr[row(i - j)] ) / sqrt(3 d)
              c2c           c2p                      p2c

    Q = H Wq, K = H Wk, V = H Wv        the content projections of the hidden states H
    Kr = P Wk_r, Qr = P Wq_r            the relative table P projected for keys and for queries
    out = softmax(A) V                  with DeBERTa's XSoftmax masking (ops.masked_softmax_forward)

Note the p2c row: the paper writes delta(j, i), the distance seen from the key, but Microsoft's
code (and transformers) index the key-against-key buckets with their sign flipped, which
lands on row(i - j), the same row as c2p; that is what the checkpoints were trained with.

Kr and Qr use the layer's own key and query projections (``share_att_key``, v3) or separate
``pos_key_proj`` / ``pos_query_proj`` (v2 without sharing): ``(table W^T + b)[rows]``, the table
projected and the row of every distance gathered (``relative_index_tables`` gives the rows). The
position terms are scored against the 2N-1 distances, (N, 2N-1), and read as (N, N) scores by key
with ``rel_to_abs``.

A speed device sits inside ``position_projection_forward``: the rows the 2N-1 distances read form
one run, lo..hi-1 (``relative_position.used_rows``), and only that run is projected; the result is
the same, and the backward still returns the whole table's gradient (0 on the rows nobody read).
Microsoft and transformers project all 2k rows; what the run saves: README, "Speed and memory".

The queries need not be the N tokens in order. The Enhanced Mask Decoder (``emd.py``) may ask for
K chosen rows only (the masked positions, in pre-training): ``query_positions`` (B, K) says where
each query sits, the scores are (B, H, K, N), and c2p reads each query's distances at its own
position (``rel_to_abs_rows_index``). p2c is scored from the keys' side, so it is computed for all
N positions as usual and the K rows are picked from it.
"""
import math
from typing import NamedTuple

from .backend import get_xp
from .embeddings import scatter_add_rows
from .ops import (
    DropoutCache,
    LinearCache,
    SoftmaxCache,
    dropout_backward,
    dropout_forward,
    linear_backward,
    linear_forward,
    masked_softmax_backward,
    masked_softmax_forward,
)
from .params import add_grads, prefixed, subtree
from .relative_position import query_rows_index, rel_to_abs, rel_to_abs_rows_index, used_rows


def split_heads(x, heads):
    batch, n, _ = x.shape
    return x.reshape(batch, n, heads, -1).transpose(0, 2, 1, 3)  # (B, N, H*d) -> (B, H, N, d)


def merge_heads(x):
    batch, heads, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, n, heads * d)  # (B, H, N, d) -> (B, N, H*d)


def by_head(x, heads):
    """(B, N, H*d) -> (H, B*N, d) view: one matrix per head holding every token of the batch."""
    batch, n, _ = x.shape
    return x.reshape(batch * n, heads, -1).transpose(1, 0, 2)


# ---- the position vectors: the relative table through a projection, one row per distance ----
class ProjectionCache(NamedTuple):
    linear: LinearCache  # its input: rows lo..hi-1 of the (2k, D) relative table (all of it without a span)
    rows: object  # (2N-1,) int, the row of each distance N-1, ..., -(N-1), counted from lo
    lo: int  # the first table row projected
    table_rows: int  # 2k, the table's length (its gradient's)


def position_projection_forward(p, table, rows, heads, span=None):
    """Kr (or Qr): ``(table W^T + b)[rows]``, the relative table projected, then the row of each distance.

    p: the projection's ``weight``/``bias``; table (2k, D); rows (2N-1,). Returns (H, 2N-1, d).
    The projection depends on the weights only, never on the batch. span: ``(lo, hi)`` when every
    row read lies in lo..hi-1 (``used_rows``): only those are projected, for speed, with the same result.
    """
    lo, hi = (0, len(table)) if span is None else span
    projected, linear_cache = linear_forward(p, table[lo:hi])  # (hi - lo, D) -> (hi - lo, H*d)
    per_distance = projected[rows - lo]  # (2N-1, H*d)
    pos = per_distance.reshape(len(rows), heads, -1).transpose(1, 0, 2)  # (H, 2N-1, d)
    return pos, ProjectionCache(linear=linear_cache, rows=rows - lo, lo=lo, table_rows=len(table))


def position_projection_backward(p, dpos, cache):
    """In the forward: ``per_distance = (table W^T + b)[rows]``. Returns ``dtable, grads``, dtable (2k, D).

    A gather's gradient is a scatter-add: distances that share a row (beyond the bucket range, or
    clipped at the table's edge) add their gradients into it; rows no distance read get zero.
    """
    heads, m, d = dpos.shape
    dper_distance = dpos.transpose(1, 0, 2).reshape(m, heads * d)  # (H, 2N-1, d) -> (2N-1, H*d)
    dprojected = scatter_add_rows(cache.linear.x.shape[0], cache.rows, dper_distance)  # (hi - lo, H*d)
    drun, grads = linear_backward(p, dprojected, cache.linear)  # (hi - lo, D)
    if len(drun) == cache.table_rows:
        return drun, grads
    dtable = get_xp(drun).zeros((cache.table_rows, drun.shape[1]), dtype=drun.dtype)
    dtable[cache.lo:cache.lo + len(drun)] = drun  # the rows outside the span were not read: 0
    return dtable, grads


def position_weights(config, term):
    """Name of the projection that makes the position vectors for ``term`` ('c2p' or 'p2c')."""
    if config.share_att_key:
        return "key_proj" if term == "c2p" else "query_proj"
    return "pos_key_proj" if term == "c2p" else "pos_query_proj"


# ---- the two position terms ----
def position_scores(x, pos):
    """Every token against every relative distance: (B, N, H*d) x (H, 2N-1, d) -> (B, H, N, 2N-1).

    The position vectors are the same for the whole batch, so one matrix product per head over
    all B*N tokens does the work of B*H small ones.
    """
    batch, heads = x.shape[0], pos.shape[0]
    by_distance = by_head(x, heads) @ pos.swapaxes(-1, -2)  # (H, B*N, 2N-1)
    return by_distance.reshape(heads, batch, -1, by_distance.shape[-1]).transpose(1, 0, 2, 3)


def c2p_scores(q, pos_key, query_positions=None):
    """content-to-position: ``out[b, h, i, j] = Q_i . Kr[row(i - j)]``. q (B, N, H*d), pos_key (H, 2N-1, d).

    With query_positions (B, K), q holds K queries (B, K, H*d), query k at position ``P[b, k]``:
    ``out[b, h, k, j] = Q_k . Kr[row(P[b, k] - j)]``, (B, H, K, N).
    """
    by_distance = position_scores(q, pos_key)  # (B, H, N or K, 2N-1)
    if query_positions is None:
        return rel_to_abs(by_distance)  # (B, H, N, 2N-1) -> (B, H, N, N)
    n = (pos_key.shape[1] + 1) // 2
    return by_distance[rel_to_abs_rows_index(query_positions, pos_key.shape[0], n)]  # -> (B, H, K, N)


def p2c_scores(k, pos_query, query_positions=None):
    """position-to-content: ``out[b, h, i, j] = K_j . Qr[row(i - j)]``. k (B, N, H*d), pos_query (H, 2N-1, d).

    Scored from the key's side: row j of the (N, 2N-1) table holds key j against every distance,
    so the (N, N) view is indexed [j, i] and transposed. With query_positions (B, K): the rows
    i = P[b, k] of that, (B, H, K, N).
    """
    scores = rel_to_abs(position_scores(k, pos_query)).swapaxes(-1, -2)  # (B, H, N, N), [i, j]
    if query_positions is None:
        return scores
    return scores[query_rows_index(query_positions, pos_query.shape[0])]  # (B, H, N, N) -> (B, H, K, N)


def position_scores_backward(dscores, x, pos, query_positions=None):
    """Of ``rel_to_abs(position_scores(x, pos))`` with upstream (B, H, N, N): returns ``dx, dpos``.
    With query_positions (B, K): of c2p's read at those positions, upstream (B, H, K, N).

    The (N, N) gradient is scattered back onto the (N, 2N-1) table it was read from (entries of
    the table no pair read get zero), then both matrix products are differentiated.
    """
    xp = get_xp(dscores)
    batch, heads, rows, n = dscores.shape  # rows: N, or the K queries
    dby_distance = xp.zeros((heads, batch, rows, 2 * n - 1), dtype=dscores.dtype)
    if query_positions is None:
        rel_to_abs(dby_distance.transpose(1, 0, 2, 3))[...] = dscores  # write through the view
    else:
        dby_distance.transpose(1, 0, 2, 3)[rel_to_abs_rows_index(query_positions, heads, n)] = dscores
    dby_distance = dby_distance.reshape(heads, batch * rows, 2 * n - 1)
    dx = merge_heads((dby_distance @ pos).reshape(heads, batch, rows, -1).transpose(1, 0, 2, 3))  # (B, N, H*d)
    dpos = dby_distance.swapaxes(-1, -2) @ by_head(x, heads)  # (H, 2N-1, d), summed over the batch
    return dx, dpos


def c2p_scores_backward(dc2p, q, pos_key, query_positions=None):
    """In the forward: ``c2p = c2p_scores(q, pos_key, query_positions)``. Returns ``dq, dpos_key``."""
    return position_scores_backward(dc2p, q, pos_key, query_positions)


def p2c_scores_backward(dp2c, k, pos_query, query_positions=None):
    """In the forward: ``p2c = p2c_scores(k, pos_query, query_positions)`` (a transposed read, and with
    query_positions its rows P[b, k]). Returns ``dk, dpos_query``."""
    if query_positions is not None:  # the rows picked: every other row of the (N, N) scores gets 0
        rows, dp2c = dp2c, get_xp(dp2c).zeros((*dp2c.shape[:2], k.shape[1], k.shape[1]), dtype=dp2c.dtype)
        dp2c[query_rows_index(query_positions, dp2c.shape[1])] = rows
    return position_scores_backward(dp2c.swapaxes(-1, -2), k, pos_query)


# ---- the layer's attention ----
class AttentionCache(NamedTuple):
    config: object  # DebertaV2Config
    terms: tuple  # the position terms used, a subset of ("c2p", "p2c")
    scale: float  # 1 / sqrt(d * (1 + number of position terms))
    query_proj: LinearCache  # its input (B, N, D): hidden, or EMD's query states
    key_proj: LinearCache  # its input (B, N, D): hidden
    value_proj: LinearCache  # its input (B, N, D): hidden
    separate_queries: bool  # the queries came from EMD's query states: their gradient is returned apart
    query_positions: object  # (B, K) where EMD's K queries sit; None: the queries are the N tokens
    q: object  # (B, N, H*d) queries, unscaled ((B, K, H*d) with query_positions)
    k: object  # (B, N, H*d) keys
    v: object  # (B, N, H*d) values
    pos: dict  # term -> (H, 2N-1, d): Kr for "c2p", Qr for "p2c"
    projections: dict  # term -> ProjectionCache of the projection that made pos[term] from the table
    table_dropout: object  # DropoutCache of the relative table, or None without position terms
    softmax: SoftmaxCache  # of the probabilities (B, H, N, N) ((B, H, K, N) with query_positions)
    probs_dropout: DropoutCache  # of the attention dropout
    dropped: object  # (B, H, N, N) the probabilities after dropout, what met V


def forward(p, hidden, mask, config, rel_embeddings=None, rel_rows=None, query_states=None, rng=None,
            query_positions=None):
    """Attention of ``query_states`` (default: ``hidden``) over ``hidden``.

    p: this layer's ``attention.self.*`` arrays. hidden, query_states: (B, N, D).
    mask: (B, 1, N, N) bool, True where query i may attend to key j, or None when every pair
    may attend. rel_embeddings: the (2k, D) relative table after its LayerNorm; rel_rows:
    ``relative_index_tables(N, config)``. rng: a NumPy Generator for dropout in training, None
    in evaluation. Returns (B, N, H*d).
    query_positions (B, K): query_states is (B, K, D), query k sitting at position P[b, k] (distinct in a
    row), and mask (B, 1, K, N); then (B, K, H*d) is returned (the module docstring).
    """
    heads = config.num_attention_heads
    terms = tuple(t for t in ("c2p", "p2c") if t in config.pos_att_type) if config.relative_attention else ()
    queries_in = hidden if query_states is None else query_states
    q, q_cache = linear_forward(subtree(p, "query_proj"), queries_in)  # (B, N, D) -> (B, N, H*d)
    k, k_cache = linear_forward(subtree(p, "key_proj"), hidden)
    v, v_cache = linear_forward(subtree(p, "value_proj"), hidden)

    pos, projections, table_dropout = {}, {}, None
    if terms:
        table, table_dropout = dropout_forward(rel_embeddings, config.hidden_dropout_prob, rng)
        span = used_rows(hidden.shape[1], config)  # speed: the distances read table rows lo..hi-1 only
        for term, rows in zip(("c2p", "p2c"), rel_rows):
            if term in terms:
                pos[term], projections[term] = position_projection_forward(
                    subtree(p, position_weights(config, term)), table, rows, heads, span)

    # One factor per kind of position term: a repeated entry ("c2p|c2p") still means c2p once.
    scale = 1 / math.sqrt(config.attention_head_size * (1 + len(set(config.pos_att_type))))
    c2c = split_heads(q, heads) @ split_heads(k, heads).swapaxes(-1, -2)  # (B, H, N, N)
    c2p = c2p_scores(q, pos["c2p"], query_positions) if "c2p" in terms else 0
    p2c = p2c_scores(k, pos["p2c"], query_positions) if "p2c" in terms else 0
    scores = (c2c + c2p + p2c) * scale  # the equation of the module docstring

    probs, softmax_cache = masked_softmax_forward(scores, mask)
    dropped, probs_dropout = dropout_forward(probs, config.attention_probs_dropout_prob, rng)
    context = merge_heads(dropped @ split_heads(v, heads))  # (B, H, N, d) -> (B, N, H*d)
    return context, AttentionCache(config=config, terms=terms, scale=scale, query_proj=q_cache, key_proj=k_cache,
                                   value_proj=v_cache, separate_queries=query_states is not None,
                                   query_positions=query_positions, q=q, k=k, v=v,
                                   pos=pos, projections=projections, table_dropout=table_dropout,
                                   softmax=softmax_cache, probs_dropout=probs_dropout, dropped=dropped)


def probabilities(cache):
    """The attention probabilities (B, H, N, N) of a forward, as ``output_attentions`` returns them."""
    return cache.dropped


def backward(p, dcontext, cache):
    """Returns ``(dhidden, dquery_states, drel_embeddings), grads``.

    dquery_states is None unless the forward had separate query states; drel_embeddings is
    None without relative attention. Each step undoes one line of the forward, last line first.
    """
    c = cache
    heads = c.config.num_attention_heads
    dctx = split_heads(dcontext, heads)  # (B, N, H*d) -> (B, H, N, d)
    # context = dropped @ V
    dv = merge_heads(c.dropped.swapaxes(-1, -2) @ dctx)
    dprobs = dropout_backward(dctx @ split_heads(c.v, heads).swapaxes(-1, -2), c.probs_dropout)  # (B, H, N, N)
    dscores = masked_softmax_backward(dprobs, c.softmax)
    # scores = (c2c + c2p + p2c) * scale: each term gets dscores * scale
    dterm = dscores * c.scale
    # c2c = Q K^T
    dq = merge_heads(dterm @ split_heads(c.k, heads))  # (B, N, H*d)
    dk = merge_heads(dterm.swapaxes(-1, -2) @ split_heads(c.q, heads))

    grads, drel = {}, None
    if c.terms:
        drel_table = None  # (2k, D)
        for term in c.terms:
            if term == "c2p":
                dq_term, dpos = c2p_scores_backward(dterm, c.q, c.pos["c2p"], c.query_positions)
                dq += dq_term
            else:
                # BEGIN EXERCISE attention.backward.p2c
                dk_term, dpos = p2c_scores_backward(dterm, c.k, c.pos["p2c"], c.query_positions)
                dk += dk_term
                # END EXERCISE attention.backward.p2c
            name = position_weights(c.config, term)
            drel_term, g = position_projection_backward(subtree(p, name), dpos, c.projections[term])  # (2k, D)
            drel_table = drel_term if drel_table is None else drel_table + drel_term  # both terms read the table
            add_grads(grads, prefixed(g, name))  # with share_att_key the content projection's too
        drel = dropout_backward(drel_table, c.table_dropout)

    # q, k, v = the three content projections
    dqueries_in, g = linear_backward(subtree(p, "query_proj"), dq, c.query_proj)
    add_grads(grads, prefixed(g, "query_proj"))
    dhidden, g = linear_backward(subtree(p, "key_proj"), dk, c.key_proj)
    add_grads(grads, prefixed(g, "key_proj"))
    dvalues_in, g = linear_backward(subtree(p, "value_proj"), dv, c.value_proj)
    add_grads(grads, prefixed(g, "value_proj"))
    dhidden += dvalues_in
    if c.separate_queries:
        return (dhidden, dqueries_in, drel), grads
    dhidden += dqueries_in
    return (dhidden, None, drel), grads
