"""Disentangled self-attention (He et al. 2021, DeBERTa, section 3.1; DeBERTa-v2 changes).

Each token has a content vector and each distance delta = i - j a position vector (a row of the
shared relative-embedding table, after its LayerNorm). The score of query i for key j sums
three dot products, all scaled by 1/sqrt(d * (1 + number of position terms)):

    c2c  content of i . content of j          Q_i . K_j
    c2p  content of i . position i - j         Q_i . Kr[row(i - j)]     ("c2p" in pos_att_type)
    p2c  position . content of j               K_j . Qr[row(i - j)]     ("p2c" in pos_att_type)

Note the p2c row: the paper writes delta(j, i), the distance seen from the key, but Microsoft's
code (and transformers) index the key-against-key buckets with their sign flipped, which
lands on row(i - j), the same row as c2p; that is what the checkpoints were trained with.

Kr and Qr are the relative embeddings projected by the layer's key and query projections
(``share_att_key``, v3) or by their own ``pos_key_proj`` / ``pos_query_proj`` (v2 without sharing).
Rows come from ``relative_position.relative_index_tables``; each projected row is computed once
for the whole batch, and the position terms are read off (N, 2N-1) tables with ``rel_to_abs``.
"""
import math

from .backend import get_xp
from .ops import (add_grads, dropout_backward, dropout_forward, linear_backward, linear_forward,
                  masked_softmax_backward, masked_softmax_forward, prefixed, subtree)
from .relative_position import rel_to_abs


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


def position_scores(x, pos, batch):
    """Every token against every relative distance: (B, N, H*d) x (H, 2N-1, d) -> (B, H, N, 2N-1).

    The position vectors are the same for the whole batch, so one matrix product per head over
    all B*N tokens does the work of B*H small ones.
    """
    heads = pos.shape[0]
    table = by_head(x, heads) @ pos.swapaxes(-1, -2)  # (H, B*N, 2N-1)
    return table.reshape(heads, batch, -1, table.shape[-1]).transpose(1, 0, 2, 3)


def position_projection_forward(p, table, rows, heads):
    """Project the relative-embedding rows one score table needs: (2k, D) -> (H, 2N-1, d).

    ``rows`` is monotone in the distance, so distances that share a row (beyond the bucket
    range, or clipped at the table's edge) are neighbours: each distinct row is projected once
    and repeated over its run. The projection depends on the weights only, never on the batch.
    """
    xp = get_xp(table)
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), rows[1:] != rows[:-1]]))  # each run's first
    lengths = xp.diff(xp.concatenate([starts, xp.asarray([len(rows)])]))
    projected, linear_cache = linear_forward(p, table[rows[starts]])  # (runs, H*d)
    per_distance = xp.repeat(projected, lengths, axis=0)  # (2N-1, H*d)
    pos = per_distance.reshape(len(rows), heads, -1).transpose(1, 0, 2)  # (H, 2N-1, d)
    return pos, (linear_cache, rows[starts], starts, table.shape)


def position_projection_backward(p, dpos, cache):
    xp = get_xp(dpos)
    linear_cache, run_rows, starts, table_shape = cache
    heads, m, d = dpos.shape
    dper_distance = dpos.transpose(1, 0, 2).reshape(m, heads * d)  # (2N-1, H*d)
    dprojected = xp.add.reduceat(dper_distance, starts, axis=0)  # a repeat's gradient: the sum of each run
    drows, grads = linear_backward(p, dprojected, linear_cache)
    dtable = xp.zeros(table_shape, dtype=dpos.dtype)
    dtable[run_rows] = drows  # monotone rows: each appears in one run only
    return dtable, grads


def position_weights(config, term):
    """Name of the projection that makes the position vectors for ``term`` ('c2p' or 'p2c')."""
    if config.share_att_key:
        return "key_proj" if term == "c2p" else "query_proj"
    return "pos_key_proj" if term == "c2p" else "pos_query_proj"


def forward(p, hidden, mask, config, rel_embeddings=None, rel_rows=None, query_states=None, rng=None):
    """Attention of ``query_states`` (default: ``hidden``) over ``hidden``.

    p: this layer's ``attention.self.*`` arrays. hidden, query_states: (B, N, D).
    mask: (B, 1, N, N) bool, True where query i may attend to key j, or None when every pair
    may attend. rel_embeddings: the (2k, D) relative table after its LayerNorm; rel_rows:
    ``relative_index_tables(N, config)``. rng: a NumPy Generator for dropout in training, None
    in evaluation. Returns (B, N, H*d).
    """
    heads, batch = config.num_attention_heads, hidden.shape[0]
    terms = [t for t in ("c2p", "p2c") if t in config.pos_att_type] if config.relative_attention else []
    queries_in = hidden if query_states is None else query_states
    q, q_cache = linear_forward(subtree(p, "query_proj"), queries_in)  # (B, N, H*d)
    k, k_cache = linear_forward(subtree(p, "key_proj"), hidden)
    v, v_cache = linear_forward(subtree(p, "value_proj"), hidden)
    # One factor per kind of position term: a repeated entry ("c2p|c2p") still means c2p once.
    scale = 1 / math.sqrt(config.attention_head_size * (1 + len(set(config.pos_att_type))))
    q *= scale  # every score holds one query (p2c: one position query), so scale those, not the scores

    scores = split_heads(q, heads) @ split_heads(k, heads).swapaxes(-1, -2)  # (B, H, N, N)
    pos, pos_caches, table_cache = {}, {}, None
    if terms:
        table, table_cache = dropout_forward(rel_embeddings, config.hidden_dropout_prob, rng)
        for term, rows in zip(("c2p", "p2c"), rel_rows):
            if term in terms:
                pos[term], pos_caches[term] = position_projection_forward(
                    subtree(p, position_weights(config, term)), table, rows, heads)
        if "c2p" in terms:
            scores += rel_to_abs(position_scores(q, pos["c2p"], batch))  # (B, H, N, 2N-1) -> (B, H, N, N)
        if "p2c" in terms:
            # Scored from the key's side: row j of the table holds key j against every distance.
            pos["p2c"] = pos["p2c"] * scale
            scores += rel_to_abs(position_scores(k, pos["p2c"], batch)).swapaxes(-1, -2)
    probs, softmax_cache = masked_softmax_forward(scores, mask)
    dropped, drop_cache = dropout_forward(probs, config.attention_probs_dropout_prob, rng)
    context = merge_heads(dropped @ split_heads(v, heads))  # (B, N, H*d)
    cache = dict(config=config, terms=terms, separate_queries=query_states is not None, scale=scale,
                 q=q, k=k, v=v, q_cache=q_cache, k_cache=k_cache, v_cache=v_cache, pos=pos,
                 pos_caches=pos_caches, table_cache=table_cache, softmax_cache=softmax_cache,
                 dropped=dropped, drop_cache=drop_cache)
    return context, cache


def probabilities(cache):
    """The attention probabilities (B, H, N, N) of a forward, as ``output_attentions`` returns them."""
    return cache["dropped"]


def backward(p, dcontext, cache):
    """Returns ``(dhidden, dquery_states, drel_embeddings), grads``.

    dquery_states is None unless the forward had separate query states; drel_embeddings is
    None without relative attention.
    """
    c = cache
    config, q, k, pos, scale = c["config"], c["q"], c["k"], c["pos"], c["scale"]
    heads = config.num_attention_heads
    xp = get_xp(dcontext)
    dctx = split_heads(dcontext, heads)  # (B, H, N, d)
    dv = merge_heads(c["dropped"].swapaxes(-1, -2) @ dctx)
    dprobs = dropout_backward(dctx @ split_heads(c["v"], heads).swapaxes(-1, -2), c["drop_cache"])  # (B, H, N, N)
    dscores = masked_softmax_backward(dprobs, c["softmax_cache"])
    dq = merge_heads(dscores @ split_heads(k, heads))  # (B, N, H*d), gradient of the scaled queries
    dk = merge_heads(dscores.swapaxes(-1, -2) @ split_heads(q, heads))

    grads, drel = {}, None
    if c["terms"]:
        batch, n, _ = q.shape
        dtable = 0
        for term in c["terms"]:
            # Scatter the (N, N) gradient back onto the (N, 2N-1) table it was read from.
            dtab = xp.zeros((heads, batch, n, 2 * n - 1), dtype=dscores.dtype)
            x, dx = (q, dq) if term == "c2p" else (k, dk)
            rel_to_abs(dtab.transpose(1, 0, 2, 3))[...] = dscores if term == "c2p" else dscores.swapaxes(-1, -2)
            dtab = dtab.reshape(heads, batch * n, 2 * n - 1)
            dx_heads = by_head(dx, heads)
            dx_heads += dtab @ pos[term]
            dpos = dtab.swapaxes(-1, -2) @ by_head(x, heads)  # (H, 2N-1, d)
            if term == "p2c":
                dpos *= scale
            name = position_weights(config, term)
            dtab_rows, g = position_projection_backward(subtree(p, name), dpos, c["pos_caches"][term])
            dtable = dtable + dtab_rows
            add_grads(grads, prefixed(g, name))
        drel = dropout_backward(dtable, c["table_cache"])

    dq *= scale
    dqueries_in, g = linear_backward(subtree(p, "query_proj"), dq, c["q_cache"])
    add_grads(grads, prefixed(g, "query_proj"))
    dhidden, g = linear_backward(subtree(p, "key_proj"), dk, c["k_cache"])
    add_grads(grads, prefixed(g, "key_proj"))
    dvalues_in, g = linear_backward(subtree(p, "value_proj"), dv, c["v_cache"])
    add_grads(grads, prefixed(g, "value_proj"))
    dhidden += dvalues_in
    if c["separate_queries"]:
        return (dhidden, dqueries_in, drel), grads
    dhidden += dqueries_in
    return (dhidden, None, drel), grads
