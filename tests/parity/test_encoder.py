"""The transformer layer and the encoder stack (encoder.py) against transformers, in float64.

Proves: the masks the model derives from a (B, N) padding mask or a (B, N, N) attention mask are
transformers'; the relative-embedding table (with or without its LayerNorm) is
``get_rel_embedding()``; one layer equals DebertaV2Layer; the stack equals DebertaV2Encoder on
every hidden state and attention map, for v3 and for v2 with nGiE, with a 2-D padding mask and
with a 3-D (B, N, N) mask (called on the encoder directly: transformers' full model cannot take
a 3-D mask, its embeddings multiply by it); without a cache the outputs are the same.
"""
import functools

import numpy as np
import pytest
import torch

from minideberta import encoder
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
CASES = {
    "v3": ("v3-xsmall", {}),
    "v3,norm_rel_ebd=none": ("v3-xsmall", {"norm_rel_ebd": "none"}),
    "v2-nGiE": ("v2-xlarge", {}),
    "relative_attention=False": ("v3-xsmall", {"relative_attention": False, "position_biased_input": True}),
}


@functools.lru_cache(maxsize=None)
def setup(case):
    base, overrides = CASES[case]
    d = scaled_config(official_path(base), num_hidden_layers=2, **overrides)
    hf = hf_model("DebertaV2Model", d, seed=6)
    _, mask, _ = ragged_batch((47, 30, 6), d["vocab_size"], seed=2)
    x = np.random.default_rng(3).normal(size=(*mask.shape, d["hidden_size"])) * mask[..., None]
    return md_config(d), hf.encoder, subtree(to_numpy_state(hf), "encoder"), mask, x


def mask_3d(mask, seed=0):
    """A random (B, N, N) query x key mask over real tokens; each real token may see itself, so
    no real query row is fully masked (those differ by design, as padded rows do)."""
    rng = np.random.default_rng(seed)
    real = mask.astype(bool)
    allowed = (rng.random((*mask.shape, mask.shape[1])) < 0.5) | np.eye(mask.shape[1], dtype=bool)
    return (allowed & real[:, :, None] & real[:, None, :]).astype(np.int64)


def test_attention_masks_2d():
    mask = setup("v3")[3]
    pair, token = encoder.attention_masks(mask)
    theirs = setup("v3")[1].get_attention_mask(torch.from_numpy(mask)).bool().numpy()
    np.testing.assert_array_equal(pair, theirs)
    np.testing.assert_array_equal(token, mask.astype(bool))


def test_attention_masks_3d():
    mask3 = mask_3d(setup("v3")[3])
    mask3[0, :, 2] = 0  # key 2 of sequence 0 is seen by no query: transformers counts it as padding
    pair, token = encoder.attention_masks(mask3)
    np.testing.assert_array_equal(pair, setup("v3")[1].get_attention_mask(torch.from_numpy(mask3)).bool().numpy())
    np.testing.assert_array_equal(token, mask3.sum(-2) > 0)
    assert not token[0, 2]


@pytest.mark.parametrize("case", ["v3", "v3,norm_rel_ebd=none", "relative_attention=False"])
def test_relative_embedding_table(case):
    config, module, params, mask, _ = setup(case)
    relative = encoder.relative_embeddings_forward(params, config, mask.shape[1])
    table, rows = relative.table, relative.rows
    theirs = module.get_rel_embedding()
    if not config.relative_attention:
        assert table is None and rows is None and theirs is None
        return
    assert table.shape == (2 * config.position_span, config.hidden_size)
    assert_close(table, numpy(theirs), 1e-13, "relative embeddings")


@pytest.mark.parametrize("case", ["v3", "v2-nGiE", "relative_attention=False"])
def test_layer_equals_transformers(case):
    config, module, params, mask, x = setup(case)
    n = mask.shape[1]
    table = None if not config.relative_attention else numpy(module.get_rel_embedding())
    rows = relative_index_tables(n, config) if config.relative_attention else None
    pair_mask = encoder.attention_masks(mask)[0]
    ours, _ = encoder.layer_forward(subtree(params, "layer.1"), x, pair_mask, config, table, rows)
    with torch.no_grad():
        theirs, _ = module.layer[1](torch.from_numpy(x), module.get_attention_mask(torch.from_numpy(mask)),
                                    relative_pos=module.get_rel_pos(torch.from_numpy(x)),
                                    rel_embeddings=module.get_rel_embedding())
    assert_close(real_rows(ours, mask), real_rows(numpy(theirs), mask), TOL, "layer")


def compare_stack(case, attention_mask, real):
    config, module, params, _, x = setup(case)
    (states, attentions), cache = encoder.forward(params, x, encoder.attention_masks(attention_mask), config, output_attentions=True)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x), torch.from_numpy(attention_mask), output_hidden_states=True,
                        output_attentions=True)
    assert len(states) == len(theirs.hidden_states) == config.num_hidden_layers + 1
    for i, (a, b) in enumerate(zip(states, theirs.hidden_states)):
        assert_close(real_rows(a, real), real_rows(numpy(b), real), TOL, f"hidden_states[{i}]")
    assert len(attentions) == len(theirs.attentions) == config.num_hidden_layers
    for i, (a, b) in enumerate(zip(attentions, theirs.attentions)):
        assert_close(real_query_rows(a, real), real_query_rows(numpy(b), real), TOL, f"attentions[{i}]")
    return states, cache


@pytest.mark.parametrize("case", CASES)
def test_encoder_equals_transformers(case):
    mask = setup(case)[3]
    compare_stack(case, mask, mask)


@pytest.mark.parametrize("case", ["v3", "v3,norm_rel_ebd=none"])
def test_encoder_3d_mask_equals_transformers(case):
    mask = setup(case)[3]
    mask3 = mask_3d(mask, seed=1)
    states, _ = compare_stack(case, mask3, mask)
    # The 3-D mask really restricted attention: the result differs from the padding-only mask.
    config, _, params, _, x = setup(case)
    (plain, _), _ = encoder.forward(params, x, encoder.attention_masks(mask), config)
    assert np.abs(real_rows(plain[-1] - states[-1], mask)).max() > 1e-3


def test_no_cache_same_outputs():
    config, _, params, mask, x = setup("v2-nGiE")
    (states, attentions), cache = encoder.forward(params, x, encoder.attention_masks(mask), config, output_attentions=True)
    (states2, attentions2), cache2 = encoder.forward(params, x, encoder.attention_masks(mask), config, output_attentions=True,
                                                     keep_cache=False)
    assert cache is not None and cache2 is None
    for a, b in zip(states + attentions, states2 + attentions2):
        np.testing.assert_array_equal(a, b)
