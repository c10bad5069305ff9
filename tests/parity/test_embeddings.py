"""The input embeddings (embeddings.py) against transformers' DebertaV2Embeddings, in float64.

Proves that word (+ absolute position) (+ token type) embeddings, embed_proj, LayerNorm and the
padding mask give transformers' output on every row (padded rows are exactly 0 in both), for
the v3 layout (words only), absolute positions (default and explicit position_ids), token types,
embedding_size != hidden_size, and inputs_embeds in place of ids; and that the dtype is kept.
"""
import functools

import numpy as np
import pytest
import torch

from minideberta import embeddings
from minideberta.params import subtree

from reference import (
    assert_close,
    hf_model,
    md_config,
    numpy,
    official_path,
    ragged_batch,
    scaled_config,
    to_numpy_state,
)

CASES = {
    "v3": {},
    "position_biased_input": {"position_biased_input": True, "max_position_embeddings": 64},
    "type_vocab_size=2": {"type_vocab_size": 2},
    "embedding_size=24": {"embedding_size": 24},
    "all": {"embedding_size": 24, "type_vocab_size": 3, "position_biased_input": True},
}


@functools.lru_cache(maxsize=None)
def setup(case):
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1, **CASES[case])
    hf = hf_model("DebertaV2Model", d, seed=2)
    return md_config(d), hf.embeddings, subtree(to_numpy_state(hf), "embeddings")


def inputs(config, seed=0):
    ids, mask, types = ragged_batch((40, 23, 5), config.vocab_size, seed, type_vocab_size=config.type_vocab_size)
    return ids, mask, np.zeros_like(ids) if types is None else types


def both(case, position_ids=None, inputs_embeds=None, dtype=np.float64):
    config, module, params = setup(case)
    ids, mask, types = inputs(config)
    position = np.broadcast_to(np.arange(ids.shape[1]), ids.shape) if position_ids is None else position_ids
    params = {k: v.astype(dtype) for k, v in params.items()}
    ours, _ = embeddings.forward(params, None if inputs_embeds is not None else ids, types, position, mask, config,
                                 inputs_embeds)
    tensor = lambda a: None if a is None else torch.from_numpy(a)  # noqa: E731
    with torch.no_grad():
        theirs = module(input_ids=None if inputs_embeds is not None else tensor(ids), token_type_ids=tensor(types),
                        mask=tensor(mask), position_ids=tensor(position_ids),
                        inputs_embeds=None if inputs_embeds is None else tensor(inputs_embeds.astype(np.float64)))
    return ours, numpy(theirs), mask


@pytest.mark.parametrize("case", CASES)
def test_embeddings_equal_transformers(case):
    ours, theirs, mask = both(case)
    assert ours.dtype == np.float64
    assert_close(ours, theirs, 1e-12, "embeddings")
    assert np.all(ours[mask == 0] == 0)  # padded rows masked to exactly 0
    assert np.all(np.abs(ours[mask == 1]).sum(-1) > 0)


@pytest.mark.parametrize("case", ["position_biased_input", "all"])
def test_explicit_position_ids(case):
    config = setup(case)[0]
    position_ids = np.random.default_rng(1).integers(0, config.max_position_embeddings, size=(3, 40))
    ours, theirs, _ = both(case, position_ids=position_ids)
    assert_close(ours, theirs, 1e-12, "embeddings")
    default, _, _ = both(case)
    assert np.abs(ours - default).max() > 1e-3  # the positions were really used


@pytest.mark.parametrize("case", ["v3", "all"])
def test_inputs_embeds(case):
    config = setup(case)[0]
    inputs_embeds = np.random.default_rng(2).normal(size=(3, 40, config.embedding_size))
    ours, theirs, _ = both(case, inputs_embeds=inputs_embeds)
    assert_close(ours, theirs, 1e-12, "embeddings")


def test_float32_kept():
    ours, theirs, _ = both("all", dtype=np.float32)
    assert ours.dtype == np.float32
    assert_close(ours, theirs, 1e-5, "embeddings")
