"""Disentangled self-attention (attention.py) against transformers' DisentangledSelfAttention.

Proves, in float64 on random hidden states, random weights and a ragged padding mask, that the
context vectors (real tokens) and the attention probabilities (real query rows) equal
transformers' for every way position enters the scores: c2c + c2p + p2c with shared or separate
position projections, c2p or p2c alone, no position term, relative attention off, log buckets
(16 and the official 256 at N=300), plain clipping without buckets, v2's explicit
attention_head_size, and separate query states (the Enhanced Mask Decoder's call).
Padded query rows are all-zero probabilities (XSoftmax), unlike transformers' uniform rows.
"""
import functools

import numpy as np
import pytest
import torch

from minideberta import attention
from minideberta.encoder import attention_masks
from minideberta.params import subtree
from minideberta.relative_position import relative_index_tables

from reference import (
    assert_close,
    hf_model,
    md_config,
    numpy,
    official_path,
    ragged_batch,
    real_query_rows,
    real_rows,
    scaled_config,
    to_numpy_state,
)

TOL = 1e-10
CASES = {  # id -> (official base, overrides, lengths)
    "v3": ("v3-xsmall", {}, (53, 40, 9)),
    "share_att_key=False": ("v3-xsmall", {"share_att_key": False}, (53, 40, 9)),
    "share_att_key=False,c2p": ("v3-xsmall", {"share_att_key": False, "pos_att_type": "c2p"}, (53, 40, 9)),
    "share_att_key=False,p2c": ("v3-xsmall", {"share_att_key": False, "pos_att_type": "p2c"}, (53, 40, 9)),
    "c2p": ("v3-xsmall", {"pos_att_type": "c2p"}, (53, 40, 9)),
    "p2c": ("v3-xsmall", {"pos_att_type": "p2c"}, (53, 40, 9)),
    "no-position-terms": ("v3-xsmall", {"pos_att_type": []}, (53, 40, 9)),
    "relative_attention=False": ("v3-xsmall", {"relative_attention": False}, (53, 40, 9)),
    "no-buckets,max_relative=8": ("v3-xsmall", {"position_buckets": -1, "max_relative_positions": 8}, (53, 40, 9)),
    "v2,attention_head_size": ("v2-xlarge", {}, (53, 40, 9)),
    "buckets=256,N=300": ("v3-xsmall", {"position_buckets": 256}, (300, 170)),
}


@functools.lru_cache(maxsize=None)
def setup(case):
    """(md config, transformers model, NumPy state, inputs) for one case, built once."""
    base, overrides, lengths = CASES[case]
    d = scaled_config(official_path(base), num_hidden_layers=1, **overrides)
    hf = hf_model("DebertaV2Model", d, seed=3)
    ids, mask, _ = ragged_batch(lengths, d["vocab_size"], seed=4)
    hidden = np.random.default_rng(5).normal(size=(*ids.shape, d["hidden_size"]))
    return md_config(d), hf, to_numpy_state(hf), mask, hidden


def run_both(case, query_states=None):
    config, hf, state, mask, hidden = setup(case)
    n = hidden.shape[1]
    encoder = hf.encoder
    hf_mask = encoder.get_attention_mask(torch.from_numpy(mask))
    table = encoder.get_rel_embedding() if config.relative_attention else None
    with torch.no_grad():
        context, probs = encoder.layer[0].attention.self(
            torch.from_numpy(hidden), hf_mask, output_attentions=True,
            query_states=None if query_states is None else torch.from_numpy(query_states),
            relative_pos=encoder.get_rel_pos(torch.from_numpy(hidden)), rel_embeddings=table)
    rows = relative_index_tables(n, config) if config.relative_attention else None
    ours, cache = attention.forward(subtree(state, "encoder.layer.0.attention.self"), hidden,
                                    attention_masks(mask)[0], config, None if table is None else numpy(table),
                                    rows, query_states)
    return (ours, attention.probabilities(cache)), (numpy(context), numpy(probs)), mask


@pytest.mark.parametrize("case", CASES)
def test_attention_equals_transformers(case):
    (context, probs), (hf_context, hf_probs), mask = run_both(case)
    assert context.dtype == np.float64 and probs.shape == hf_probs.shape
    assert_close(real_rows(context, mask), real_rows(hf_context, mask), TOL, "context")
    assert_close(real_query_rows(probs, mask), real_query_rows(hf_probs, mask), TOL, "probabilities")
    padded = np.asarray(mask) == 0
    assert padded.any()
    for b in range(len(mask)):  # XSoftmax: padded queries attend nowhere, and nobody attends to padding
        assert np.all(probs[b][:, padded[b]] == 0) and np.all(probs[b][..., padded[b]] == 0)


@pytest.mark.parametrize("case", ["v3", "share_att_key=False", "no-buckets,max_relative=8"])
def test_separate_query_states(case):
    """Queries from other states than keys and values (the Enhanced Mask Decoder's layer call)."""
    hidden = setup(case)[4]
    queries = np.random.default_rng(6).normal(size=hidden.shape)
    (context, probs), (hf_context, hf_probs), mask = run_both(case, queries)
    assert_close(real_rows(context, mask), real_rows(hf_context, mask), TOL, "context")
    assert_close(real_query_rows(probs, mask), real_query_rows(hf_probs, mask), TOL, "probabilities")


def test_repeated_pos_att_type_entry():
    """"c2p|c2p" means c2p once in transformers and in Microsoft's code (scale sqrt(2d)); a
    config that accepts it must give their numbers (or reject it, naming pos_att_type)."""
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1, pos_att_type="c2p|c2p")
    try:
        config = md_config(d)
    except ValueError as error:
        assert "pos_att_type" in str(error)
        return
    hf = hf_model("DebertaV2Model", d, seed=3)
    state = to_numpy_state(hf)
    _, mask, _ = ragged_batch((20, 11), d["vocab_size"])
    hidden = np.random.default_rng(5).normal(size=(*mask.shape, d["hidden_size"]))
    with torch.no_grad():
        hf_context, _ = hf.encoder.layer[0].attention.self(
            torch.from_numpy(hidden), hf.encoder.get_attention_mask(torch.from_numpy(mask)),
            relative_pos=hf.encoder.get_rel_pos(torch.from_numpy(hidden)),
            rel_embeddings=hf.encoder.get_rel_embedding())
    context, _ = attention.forward(subtree(state, "encoder.layer.0.attention.self"), hidden,
                                   attention_masks(mask)[0], config, numpy(hf.encoder.get_rel_embedding()),
                                   relative_index_tables(mask.shape[1], config))
    assert_close(real_rows(context, mask), real_rows(numpy(hf_context), mask), TOL, "context")


@pytest.mark.parametrize("case", ["v3", "buckets=256,N=300", "no-buckets,max_relative=8"])
def test_projecting_the_read_run_equals_projecting_the_whole_table(case, monkeypatch):
    """attention projects rows lo..hi-1 of the table only (used_rows); the context, the gradients of
    every input and weight are those of the whole table's projection, and unread rows get zero."""
    config, _, state, mask, hidden = setup(case)
    p = subtree(state, "encoder.layer.0.attention.self")
    table = np.random.default_rng(7).normal(size=(2 * config.position_span, config.hidden_size))
    rows = relative_index_tables(hidden.shape[1], config)
    dcontext = np.random.default_rng(8).normal(size=hidden.shape)

    def run():
        context, cache = attention.forward(p, hidden, attention_masks(mask)[0], config, table, rows)
        return context, attention.backward(p, dcontext, cache), (*attention.used_rows(hidden.shape[1], config),
                                                                 cache.projections["c2p"].table_rows)

    context, ((dhidden, _, dtable), grads), (lo, hi, n_rows) = run()
    monkeypatch.setattr(attention, "used_rows", lambda n, config: (0, 2 * config.position_span))
    whole_context, ((whole_dhidden, _, whole_dtable), whole_grads), whole_span = run()
    assert whole_span == (0, n_rows, n_rows) and n_rows == len(table)
    assert_close(context, whole_context, 1e-13, "context")
    assert_close(dhidden, whole_dhidden, 1e-13, "dhidden")
    assert_close(dtable, whole_dtable, 1e-13, "dtable")
    for name in grads:
        assert_close(grads[name], whole_grads[name], 1e-13, name)
    assert np.all(dtable[:lo] == 0) and np.all(dtable[hi:] == 0) and np.all(dtable[[lo, hi - 1]] != 0)
    if case == "v3":
        assert hi - lo < n_rows  # the case reads part of the table only
