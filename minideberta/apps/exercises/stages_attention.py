"""Stages of the attention exercises: the c2p and p2c score terms, the position projection, the backward.

The attention backward switches features on one at a time, in the order of the paper's equation,
so the first failing stage names the term that is wrong: c2c only -> padding -> c2p -> p2c ->
separate position projections -> lengths past the bucket range -> EMD's separate queries -> dropout.
Heads have d = 5, so a forgotten or doubled scale shows as a ratio that names its factor.
"""
import numpy as np

from ...encoder import attention_masks
from ...relative_position import relative_index_tables
from .cases import gradient_stage, padding_mask, random_params, value_stage
from .stages_model import shapes_under, tiny_config
from .tables_model import attention_terms, projection_terms

HIDDEN, HEADS = 10, 2  # d = 5

SHARED_ROWS = ("rows shared by several distances", "the gradients of the distances that share a row (beyond "
               "the bucket range, or clipped at the table's edge) are not summed: a gather's gradient is a "
               "scatter-add (np.add.at), not an assignment")
UNREAD_ROWS = ("rows no distance reads", "rows of the table that no distance reads must get zero gradient")


def _row_regions(table_rows, row_lists):
    """Masks over a (2k, D) table: rows read by several distances, rows read by none."""
    counts = sum(np.bincount(rows, minlength=table_rows) for rows in row_lists)
    return {SHARED_ROWS[0]: ((counts > 1)[:, None], SHARED_ROWS[1]),
            UNREAD_ROWS[0]: ((counts == 0)[:, None], UNREAD_ROWS[1])}


# ---------------------------------------------------------------- the score terms (forward)
def _score_stages(function):
    def case(name, adds, batch, n, heads, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(batch, n, heads * 3))
        pos = rng.normal(size=(heads, 2 * n - 1, 3))
        return value_stage(name, adds, lambda pkg: {"scores (B, H, N, N)": np.asarray(
            pkg.get(function)(x.copy(), pos.copy()))})

    return [
        case("one head, 3 tokens", "each token against the position vector of its distance i - j", 1, 3, 1),
        case("2 heads, a batch of 2, 5 tokens", "heads and batch: (B, N, H*d) split into heads", 2, 5, 2),
        case("one token", "N = 1: a single distance, 0", 1, 1, 2),
        case("3 heads, 7 tokens", "longer sequences: every diagonal of the (N, 2N-1) table", 1, 7, 3),
    ]


def c2p_scores():
    return _score_stages("attention.c2p_scores")


def p2c_scores():
    return _score_stages("attention.p2c_scores")


# ---------------------------------------------------------------- the position projection
def position_projection_backward():
    def case(name, adds, n, term, seed=0, **overrides):
        config = tiny_config(hidden_size=HIDDEN, num_attention_heads=HEADS, **overrides)
        rows = relative_index_tables(n, config)[term]
        k2 = 2 * config.position_span
        rng = np.random.default_rng(seed)
        arrays = {"table": rng.normal(size=(k2, HIDDEN)), "weight": 0.4 * rng.normal(size=(HIDDEN, HIDDEN)),
                  "bias": 0.4 * rng.normal(size=HIDDEN)}

        def forward(pkg, a):
            return pkg.get("attention.position_projection_forward")({"weight": a["weight"], "bias": a["bias"]},
                                                                    a["table"], rows, HEADS)

        def backward(pkg, dy, cache, a):
            dtable, grads = pkg.get("attention.position_projection_backward")(
                {"weight": a["weight"], "bias": a["bias"]}, dy, cache)
            return {"table": dtable, "weight": grads.get("weight"), "bias": grads.get("bias")}

        return gradient_stage(name, adds, forward, backward, arrays, seed=seed,
                              regions={"table": _row_regions(k2, [rows])}, terms=projection_terms)

    return [
        case("3 tokens: every distance its own row", "the projection, and the gather of one row per distance", 3, 0),
        case("6 tokens, span 3: clipped at the edges", "distances past the span all read the edge rows", 6, 0,
             position_buckets=-1, max_relative_positions=3),
        case("12 tokens, 8 log buckets", "far distances share a bucket's row", 12, 0),
        case("the p2c rows", "the position-to-content rows (the other direction)", 12, 1),
    ]


# ---------------------------------------------------------------- the attention backward
ATTENTION_STAGES = [  # (name, what it adds, config overrides, batch, n, lengths, separate queries)
    ("c2c only", "content-to-content: softmax(Q K^T / sqrt(d)) V", {"relative_attention": False,
                                                                     "pos_att_type": None}, 1, 4, None, False),
    ("padding", "padded keys get no attention, padded queries attend to nothing (XSoftmax)",
     {"relative_attention": False, "pos_att_type": None}, 2, 5, [5, 3], False),
    ("c2p", "content-to-position, and the scale 1/sqrt(2 d)", {"pos_att_type": "c2p"}, 2, 4, [4, 3], False),
    ("p2c", "position-to-content, and the scale 1/sqrt(3 d)", {}, 2, 4, [4, 3], False),
    ("separate position projections", "pos_key_proj / pos_query_proj (v2) instead of the content ones",
     {"share_att_key": False}, 2, 4, [4, 2], False),
    ("lengths past the bucket range", "distances beyond position_buckets // 2 share rows of the table", {}, 1, 10,
     None, False),
    ("separate query states", "EMD's queries: their gradient returned apart from hidden's", {}, 2, 5, [5, 4], True),
    ("dropout", "dropout on the relative table and on the probabilities (a fixed mask)",
     {"hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.2}, 2, 5, [5, 3], False),
]


def _attention_case(setup, seed=0):
    name, adds, overrides, batch, n, lengths, separate = setup
    config = tiny_config(hidden_size=HIDDEN, num_attention_heads=HEADS, **overrides)
    rng = np.random.default_rng(seed)
    p = random_params(shapes_under(config, "encoder.layer.0.attention.self."), rng)
    arrays = {"hidden": rng.normal(size=(batch, n, HIDDEN)), **p}
    rows, regions = None, {}
    if config.relative_attention:
        rows = relative_index_tables(n, config)
        arrays["rel_embeddings"] = rng.normal(size=(2 * config.position_span, HIDDEN))
        regions["rel_embeddings"] = _row_regions(2 * config.position_span, [r for r, t in zip(rows, ("c2p", "p2c"))
                                                                              if t in config.pos_att_type])
    if separate:
        arrays["query_states"] = rng.normal(size=(batch, n, HIDDEN))
    mask = None
    if lengths is not None:
        real = padding_mask(batch, n, lengths)
        mask = attention_masks(real).pair
        padded = np.broadcast_to((real == 0)[..., None], (batch, n, HIDDEN))
        regions.update({k: {"padded positions": (padded, "padded tokens leak gradient: their attention "
                                                 "probabilities are exactly 0, as keys and as queries")}
                        for k in ("hidden", "query_states")})
    dropout = config.hidden_dropout_prob > 0
    names = list(p)

    def forward(pkg, a):
        return pkg.get("attention.forward")({k: a[k] for k in names}, a["hidden"], mask, config,
                                            a.get("rel_embeddings"), rows, a.get("query_states"),
                                            rng=np.random.default_rng(seed) if dropout else None)

    def backward(pkg, dy, cache, a):
        (dhidden, dqueries, drel), grads = pkg.get("attention.backward")({k: a[k] for k in names}, dy, cache)
        out = {"hidden": dhidden, **{k: grads.get(k) for k in names}}
        if "rel_embeddings" in a:
            out["rel_embeddings"] = drel
        if separate:
            out["query_states"] = dqueries
        return out

    return gradient_stage(name, adds, forward, backward, arrays, seed=seed, regions=regions, max_entries=8,
                          terms=attention_terms)


def attention_backward():
    return [_attention_case(setup) for setup in ATTENTION_STAGES]
