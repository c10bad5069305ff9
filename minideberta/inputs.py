"""Checking and completing the inputs of a forward pass.

A model call takes ids (or embeddings) and optional masks, types and positions, as transformers
does. This file turns them into arrays of the right shape and fills in the defaults, or says
exactly what is wrong. Nothing is clipped, truncated or cast to fit.
"""
from typing import NamedTuple

import numpy as np

from .backend import get_xp
from .encoder import Masks, attention_masks


class Inputs(NamedTuple):
    input_ids: object  # (B, N) int, or None when inputs_embeds were given
    inputs_embeds: object  # (B, N, embedding_size), or None
    attention_mask: object  # (B, N) 1 = real token, or (B, N, N) query x key
    token_type_ids: object  # (B, N) int
    position_ids: object  # (B, N) int
    masks: Masks  # attention_masks(attention_mask): the pair and token masks, computed once


def integer_array(name, value, xp):
    a = xp.asarray(value)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}; convert with .astype(np.int64) "
                         "if the values really are whole numbers")
    return a


def check_range(name, a, upper, what):
    """Raise unless every value of ``a`` is in [0, upper)."""
    if a.size and int(a.min()) < 0:
        raise ValueError(f"{name} has a negative id {int(a.min())}; ids start at 0")
    if a.size and int(a.max()) >= upper:
        raise ValueError(f"{name} has id {int(a.max())} >= {what} {upper}")


def check_shape(name, a, shape, hint=""):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}{hint}")


def prepare_inputs(config, dtype, input_ids=None, attention_mask=None, token_type_ids=None,
                   position_ids=None, inputs_embeds=None):
    """Validated (B, N) arrays for the embeddings and the encoder, with transformers' defaults:
    attention_mask all ones, token_type_ids zeros, position_ids 0..N-1."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids and inputs_embeds")
    if input_ids is not None:
        xp = get_xp(input_ids)
        input_ids = integer_array("input_ids", input_ids, xp)
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be 2-D (batch, length), got shape {tuple(input_ids.shape)}; "
                             "wrap a single sequence as ids[None]")
        check_range("input_ids", input_ids, config.vocab_size, "vocab_size")
        batch, n = input_ids.shape
    else:
        xp = get_xp(inputs_embeds)
        inputs_embeds = xp.asarray(inputs_embeds)
        if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != config.embedding_size:
            raise ValueError(f"inputs_embeds must have shape (batch, length, {config.embedding_size}), "
                             f"got {tuple(inputs_embeds.shape)}")
        if inputs_embeds.dtype != dtype:
            raise ValueError(f"inputs_embeds has dtype {inputs_embeds.dtype} but the model computes in {np.dtype(dtype)}; "
                             "convert explicitly or load the model with that dtype")
        batch, n = inputs_embeds.shape[:2]
    if batch == 0 or n == 0:
        raise ValueError(f"empty input of shape ({batch}, {n}): give at least one sequence of at least one token")

    if attention_mask is None:
        attention_mask = xp.ones((batch, n), dtype=xp.int64)
    attention_mask = xp.asarray(attention_mask)
    if attention_mask.dtype.kind not in "biuf":
        raise ValueError(f"attention_mask must be numeric or boolean, got dtype {attention_mask.dtype}")
    if tuple(attention_mask.shape) not in ((batch, n), (batch, n, n)):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected ({batch}, {n}) "
                         f"(1 = real token, 0 = padding) or ({batch}, {n}, {n}) (query x key)")

    if token_type_ids is None:
        token_type_ids = xp.zeros((batch, n), dtype=xp.int64)
    token_type_ids = integer_array("token_type_ids", token_type_ids, xp)
    check_shape("token_type_ids", token_type_ids, (batch, n))
    if config.type_vocab_size > 0:
        check_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")

    if position_ids is None:
        if config.position_biased_input and n > config.max_position_embeddings:
            raise ValueError(f"sequence length {n} is longer than max_position_embeddings="
                             f"{config.max_position_embeddings}, which this model's absolute positions cannot "
                             f"encode; truncate to {config.max_position_embeddings} tokens")
        position_ids = xp.arange(n)[None]
    position_ids = integer_array("position_ids", position_ids, xp)
    if position_ids.shape not in ((n,), (1, n), (batch, n)):
        raise ValueError(f"position_ids has shape {tuple(position_ids.shape)}; expected ({batch}, {n}), (1, {n}) or ({n},)")
    position_ids = xp.broadcast_to(position_ids, (batch, n))
    if config.position_biased_input:
        check_range("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")

    return Inputs(input_ids, inputs_embeds, attention_mask, token_type_ids, position_ids, attention_masks(attention_mask))
