"""nGiE, the n-gram induced input encoding of DeBERTa-v2 (xlarge/xxlarge; v3 has none).

A 1-D convolution over the token axis of the embedding output, so each position also sees its
neighbours, added to the output of the first transformer layer:

    out = act(dropout(mask * conv1d(embeddings)))
    y   = mask * LayerNorm(layer0_output + out)

It runs beside layer 0 when ``conv_kernel_size`` > 0, with ``conv_act`` (gelu for the official
v2 checkpoints, tanh by default) and ``conv_groups``. The weight is ``(C_out, C_in/groups, K)``
as in torch.nn.Conv1d, with ``(K-1)/2`` zeros of padding on each side so the length is kept.
"""
from typing import NamedTuple

from .backend import get_xp
from .ops import (
    activation_backward,
    activation_forward,
    dropout_backward,
    dropout_forward,
    layer_norm_backward,
    layer_norm_forward,
)
from .params import prefixed, subtree


class Conv1dCache(NamedTuple):
    cols: object  # (G, B*N, C_in/G * K) the im2col matrix: each token's K neighbours, per group
    x_shape: tuple  # (B, N, C_in)
    groups: int


def conv1d_forward(p, x, groups):
    """Convolve (B, N, C_in) along N: im2col, then one matmul per group."""
    xp = get_xp(x)
    batch, n, c_in = x.shape
    c_out, c_group, kernel = p["weight"].shape
    pad = (kernel - 1) // 2
    padded = xp.pad(x, ((0, 0), (pad, pad), (0, 0)))  # (B, N+K-1, C_in)
    cols = xp.stack([padded[:, t:t + n] for t in range(kernel)], axis=-1)  # (B, N, C_in, K)
    cols = cols.reshape(batch * n, groups, c_group * kernel).transpose(1, 0, 2)  # (G, B*N, C_in/G*K)
    w = p["weight"].reshape(groups, c_out // groups, c_group * kernel)  # (G, C_out/G, C_in/G*K)
    y = (cols @ w.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(batch, n, c_out)
    y += p["bias"]
    return y, Conv1dCache(cols=cols, x_shape=x.shape, groups=groups)


def conv1d_backward(p, dy, cache):
    """In the forward: ``y = cols @ w^T + b`` per group, ``cols`` the K shifted copies of the input."""
    xp = get_xp(dy)
    cols, groups = cache.cols, cache.groups
    batch, n, c_in = cache.x_shape
    c_out, c_group, kernel = p["weight"].shape
    pad = (kernel - 1) // 2
    dy_g = dy.reshape(batch * n, groups, c_out // groups).transpose(1, 0, 2)  # (G, B*N, C_out/G)
    w = p["weight"].reshape(groups, c_out // groups, c_group * kernel)
    grads = {"weight": (dy_g.transpose(0, 2, 1) @ cols).reshape(p["weight"].shape),
             "bias": dy.sum(axis=(0, 1))}
    dcols = (dy_g @ w).transpose(1, 0, 2).reshape(batch, n, c_in, kernel)
    # BEGIN EXERCISE ngie.conv1d_backward.col2im
    dpadded = xp.zeros((batch, n + kernel - 1, c_in), dtype=dy.dtype)
    for t in range(kernel):  # each tap read a shifted copy of the input
        dpadded[:, t:t + n] += dcols[..., t]
    # END EXERCISE ngie.conv1d_backward.col2im
    return dpadded[:, pad:pad + n], grads


class NgieCache(NamedTuple):
    act: str  # config.conv_act
    mask: object  # (B, N, 1) 0/1, the real tokens
    conv: Conv1dCache
    dropout: object  # DropoutCache of the convolution's output
    activation: object  # the activation's cache
    layer_norm: object  # LayerNormCache of layer0_output + out


def forward(p, embeddings, layer0_output, input_mask, config, rng=None):
    """p: ``encoder.conv.*``; embeddings, layer0_output: (B, N, D); input_mask: (B, N) 0/1."""
    mask = input_mask[..., None].astype(embeddings.dtype)  # (B, N, 1)
    out, conv_cache = conv1d_forward(subtree(p, "conv"), embeddings, config.conv_groups)
    out *= mask
    out, drop_cache = dropout_forward(out, config.hidden_dropout_prob, rng)
    out, act_cache = activation_forward(config.conv_act, out)
    # Not in place: some activations (tanh) keep their output as their cache.
    y, ln_cache = layer_norm_forward(subtree(p, "LayerNorm"), out + layer0_output, config.layer_norm_eps)
    y *= mask
    return y, NgieCache(act=config.conv_act, mask=mask, conv=conv_cache, dropout=drop_cache,
                     activation=act_cache, layer_norm=ln_cache)


def backward(p, dy, cache):
    """Returns ``(dembeddings, dlayer0_output), grads``, undoing the forward's lines from the last."""
    c = cache
    dsum, g_ln = layer_norm_backward(subtree(p, "LayerNorm"), dy * c.mask, c.layer_norm)
    dout = dropout_backward(activation_backward(c.act, dsum, c.activation), c.dropout) * c.mask
    dembeddings, g_conv = conv1d_backward(subtree(p, "conv"), dout, c.conv)
    return (dembeddings, dsum), {**prefixed(g_conv, "conv"), **prefixed(g_ln, "LayerNorm")}
