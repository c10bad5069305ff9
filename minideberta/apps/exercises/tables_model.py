"""The term tables of the model-level backward exercises (terms.py says how they are used).

Each ``*_terms(ref, dy, cache, arrays, want)`` computes the terms of the formula apart, with the
reference's functions and the reference forward's cache, and whole answers of named mistakes.
A table that no longer adds up to the reference's answer fails the stage on the reference itself
(``terms.check_terms``), so these stay in step with the code.
"""
import numpy as np

from .cases import dx_of
from .terms import Term, Variant

RTD_HEAD_LINE = "in the forward: LayerNorm(hidden + hidden[:, :1]); position 0 also gets the sum over positions"
CONV_LINE = "dx = col2im(dcols): tap t read padded[:, t:t + N], so dcols[..., t] is added back there"
PROJECTION_LINE = "dtable = scatter_add(rows, dper_distance) @ W: distances that share a row add their gradients"
ATTENTION_LINE = ("dhidden = dV W_v + dK W_k + dQ W_q, with dK = dterm^T Q + p2c's share, dQ = dterm K + c2p's share, "
                  "dterm = dscores * scale")
EMD_LINE = "hidden fed both passes as keys and values, and the first query: dhidden = dkeys_2 + dkeys_1 + dquery_0"


def rtd_head_terms(ref, dy, cache, a, want):
    """dhidden = dsum + (dsum summed over the sequence, at position 0); dsum is read off the answer."""
    d = want["hidden"]
    dsum = d.copy()
    dsum[:, 0] = (d[:, 0] - d[:, 1:].sum(axis=1)) / 2  # d[:, 0] = dsum[:, 0] + sum_j dsum[:, j]
    cls = np.zeros_like(d)
    cls[:, 0] = dsum.sum(axis=1)
    return {"hidden": ([Term("each position's own gradient (through hidden + hidden[:, :1])", RTD_HEAD_LINE, dsum),
                        Term("[CLS] sum (every position's gradient, added at position 0)", RTD_HEAD_LINE, cls)],
                       [Variant("the sum over the sequence is added at every position, not only at [CLS]",
                                dsum + dsum.sum(axis=1, keepdims=True))])}


def conv1d_terms(ref, dy, cache, a, want):
    """dx as the sum of the K taps' contributions, each its shifted slice of dcols."""
    w = a["weight"]
    c_out, c_group, kernel = w.shape
    batch, n, c_in = cache.x_shape
    groups = cache.groups
    pad = (kernel - 1) // 2
    dy_g = dy.reshape(batch * n, groups, c_out // groups).transpose(1, 0, 2)
    dcols = (dy_g @ w.reshape(groups, c_out // groups, c_group * kernel)).transpose(1, 0, 2).reshape(
        batch, n, c_in, kernel)

    def placed(t, values):
        padded = np.zeros((batch, n + kernel - 1, c_in))
        padded[:, t:t + n] = values
        return padded[:, pad:pad + n]

    terms = [Term(f"tap {t}", CONV_LINE, placed(t, dcols[..., t])) for t in range(kernel)]
    flipped = sum(placed(kernel - 1 - t, dcols[..., t]) for t in range(kernel))
    assigned = np.zeros((batch, n + kernel - 1, c_in))
    for t in range(kernel):
        assigned[:, t:t + n] = dcols[..., t]
    variants = [Variant("the taps written back in reverse order (tap t at K-1-t's shift: the kernel flipped)",
                        flipped),
                Variant("the taps assigned (=) instead of added (+=): each input position keeps the last tap's",
                        assigned[:, pad:pad + n])]
    return {"x": (terms, variants)}


def projection_terms(ref, dy, cache, a, want):
    """dtable split into the rows one distance read and the rows several distances share."""
    rows = np.asarray(cache.rows)
    counts = np.bincount(rows, minlength=a["table"].shape[0])[:, None]
    dtable = want["table"]
    heads, m, d = dy.shape
    dper = dy.transpose(1, 0, 2).reshape(m, heads * d)
    assigned = np.zeros((a["table"].shape[0], heads * d))
    assigned[rows] = dper  # the last distance of a shared row wins
    return {"table": ([Term("rows read by one distance", PROJECTION_LINE, dtable * (counts == 1)),
                       Term("rows shared by several distances", PROJECTION_LINE, dtable * (counts > 1))],
                      [Variant("the gather's gradient assigned (dtable[rows] = ...) instead of added: a shared row "
                               "keeps one distance's gradient", assigned @ a["weight"])])}


def _split(x, heads):
    batch, n, _ = x.shape
    return x.reshape(batch, n, heads, -1).transpose(0, 2, 1, 3)  # (B, N, H*d) -> (B, H, N, d)


def _merge(x):
    batch, heads, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, n, heads * d)  # (B, H, N, d) -> (B, N, H*d)


def attention_terms(ref, dy, cache, a, want):
    """dhidden (and dquery_states, drel_embeddings) term by term: the value path, c2c through the keys
    and through the queries, c2p through the queries, p2c through the keys."""
    c = cache
    heads = c.config.num_attention_heads
    dctx = _split(dy, heads)
    dv = _merge(c.dropped.swapaxes(-1, -2) @ dctx)
    dprobs = dx_of(ref.get("ops.dropout_backward")(dctx @ _split(c.v, heads).swapaxes(-1, -2), c.probs_dropout))
    dscores = dx_of(ref.get("ops.masked_softmax_backward")(dprobs, c.softmax))
    dterm = dscores * c.scale
    w = {name: a[f"{name}.weight"] for name in ("query_proj", "key_proj", "value_proj")}
    by_query = {"c2c": _merge(dterm @ _split(c.k, heads)) @ w["query_proj"]}
    by_key = {"c2c": _merge(dterm.swapaxes(-1, -2) @ _split(c.q, heads)) @ w["key_proj"]}
    rel = {}
    for term in c.terms:
        if term == "c2p":
            dq_term, dpos = ref.get("attention.c2p_scores_backward")(dterm, c.q, c.pos["c2p"])
            by_query["c2p"] = dq_term @ w["query_proj"]
        else:
            dk_term, dpos = ref.get("attention.p2c_scores_backward")(dterm, c.k, c.pos["p2c"])
            by_key["p2c"] = dk_term @ w["key_proj"]
        name = ref.get("attention.position_weights")(c.config, term)
        sub = {k[len(name) + 1:]: v for k, v in a.items() if k.startswith(name + ".")}
        drel_term, _ = ref.get("attention.position_projection_backward")(sub, dpos, c.projections[term])  # (2k, D)
        rel[term] = dx_of(ref.get("ops.dropout_backward")(drel_term, c.table_dropout))
    value = dv @ w["value_proj"]
    keys = [Term("value path (context = P V)", ATTENTION_LINE, value)]
    keys += [Term(f"{t} through the keys", ATTENTION_LINE, v) for t, v in by_key.items()]
    queries = [Term(f"{t} through the queries", ATTENTION_LINE, v) for t, v in by_query.items()]
    scaled = list(by_key.values()) + list(by_query.values())

    def with_scale(f, where):
        total = sum(v * f for v in scaled) + value
        return total if not c.separate_queries else (sum(v * f for v in by_key.values()) + value
                                                     if where == "hidden" else sum(v * f for v in by_query.values()))

    out = {}
    for key, terms in (("hidden", keys if c.separate_queries else keys + queries),
                       ("query_states", queries if c.separate_queries else None)):
        if terms is None:
            continue
        out[key] = (terms, [Variant("the scale is left out: dterm = dscores", with_scale(1 / c.scale, key)),
                            Variant("the scale is applied twice", with_scale(c.scale, key))])
    if rel:
        out["rel_embeddings"] = ([Term(f"{t}'s table gradient", ATTENTION_LINE, v) for t, v in rel.items()], [])
    return out


def emd_terms(ref, dy, cache, a, want):
    """dhidden of the Enhanced Mask Decoder: the last layer's two passes, taken back apart."""
    layer = f"encoder.layer.{cache.config.num_hidden_layers - 1}."
    last = {k[len(layer):]: v for k, v in a.items() if k.startswith(layer)}
    backward = ref.get("encoder.layer_backward")
    (dkeys_2, dquery_1, _), _ = backward(last, dy, cache.passes[1])
    (dkeys_1, dquery_0, _), _ = backward(last, dquery_1, cache.passes[0])
    return {"hidden": ([Term("keys and values of the second pass", EMD_LINE, dkeys_2),
                        Term("keys and values of the first pass", EMD_LINE, dkeys_1),
                        Term("first query (hidden + positions)", EMD_LINE, dquery_0)],
                       [Variant("the decoder's layer differentiated once, as if it ran one pass",
                                dkeys_2 + dquery_1)])}
