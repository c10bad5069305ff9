"""nGiE (ngie.py), the convolution beside the first layer of DeBERTa-v2 xlarge/xxlarge.

Proves: the im2col convolution equals torch's Conv1d (kernel 1/3/5/7, groups 1/2/4, length-keeping
padding); the whole block equals transformers' ConvLayer on every row (padded rows exactly 0)
for conv_act gelu (the official checkpoints) and tanh (the default), groups 2 with kernel 5, in
float64, and keeps float32.
"""
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minideberta import ngie
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


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_conv1d_equals_torch(kernel, groups):
    rng = np.random.default_rng(kernel * 10 + groups)
    x = rng.normal(size=(2, 9, 8))
    p = {"weight": rng.normal(size=(12, 8 // groups, kernel)), "bias": rng.normal(size=12)}
    ours, _ = ngie.conv1d_forward(p, x, groups)
    theirs = F.conv1d(torch.from_numpy(x).transpose(1, 2), torch.from_numpy(p["weight"]), torch.from_numpy(p["bias"]),
                      padding=(kernel - 1) // 2, groups=groups).transpose(1, 2)
    assert ours.shape == (2, 9, 12)
    assert_close(ours, numpy(theirs), 1e-13, "conv1d")


CASES = {
    "gelu": {},
    "tanh": {"conv_act": "tanh"},
    "groups=2,kernel=5": {"conv_groups": 2, "conv_kernel_size": 5},
    "kernel=1,relu": {"conv_kernel_size": 1, "conv_act": "relu"},
}


@functools.lru_cache(maxsize=None)
def setup(case):
    d = scaled_config(official_path("v2-xlarge"), num_hidden_layers=1, **CASES[case])
    hf = hf_model("DebertaV2Model", d, seed=4)
    return md_config(d), hf.encoder.conv, subtree(to_numpy_state(hf), "encoder.conv")


@pytest.mark.parametrize("case", CASES)
def test_ngie_equals_transformers_conv_layer(case):
    config, module, params = setup(case)
    _, mask, _ = ragged_batch((30, 17, 4), config.vocab_size, seed=1)
    rng = np.random.default_rng(2)
    # The block convolves the (masked) embedding output and adds it to layer 0's output.
    embedded = rng.normal(size=(*mask.shape, config.hidden_size)) * mask[..., None]
    layer0 = rng.normal(size=embedded.shape)
    ours, _ = ngie.forward(params, embedded, layer0, mask, config)
    with torch.no_grad():
        theirs = module(torch.from_numpy(embedded), torch.from_numpy(layer0), torch.from_numpy(mask))
    assert_close(ours, numpy(theirs), 1e-12, "nGiE")
    assert np.all(ours[mask == 0] == 0)
    ours32, _ = ngie.forward({k: v.astype(np.float32) for k, v in params.items()}, embedded.astype(np.float32),
                             layer0.astype(np.float32), mask, config)
    assert ours32.dtype == np.float32
    assert_close(ours32, numpy(theirs), 1e-5, "nGiE float32")
