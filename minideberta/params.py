"""The parameter dict: every array of a model under its Hugging Face name, in one flat dict.

    p = model.params                                   # {"deberta.encoder.layer.0.attention.self.query_proj.weight": ...}
    layer = subtree(p, "deberta.encoder.layer.0")      # {"attention.self.query_proj.weight": ...}: one part's arrays
    grads = prefixed(layer_grads, "deberta.encoder.layer.0")   # names put back
    add_grads(total, grads)                            # a weight used twice gets both gradients

``backbone_shapes`` lists the names and shapes of embeddings + encoder as transformers' DebertaV2Model
has them; ``init_params`` draws them as transformers initialises them. A component's forward takes
its ``subtree`` and its backward returns gradients under the same local names.
"""
import numpy as np


def subtree(p, prefix):
    """The entries of ``p`` under ``prefix.``, with the prefix removed: the parameters of one part."""
    prefix = prefix + "."
    return {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}


def prefixed(grads, prefix):
    """``grads`` with ``prefix.`` put back in front of every name (the inverse of ``subtree``)."""
    return {f"{prefix}.{k}": v for k, v in grads.items()}


def add_grads(total, new):
    """Accumulate ``new`` into ``total`` name by name (a weight used twice gets both gradients)."""
    for name, g in new.items():
        total[name] = total[name] + g if name in total else g
    return total


def backbone_shapes(config):
    """Name -> shape of every parameter of embeddings + encoder, as in transformers' DebertaV2Model."""
    c, d, e = config, config.hidden_size, config.embedding_size
    shapes = {"embeddings.word_embeddings.weight": (c.vocab_size, e)}
    if c.position_biased_input:
        shapes["embeddings.position_embeddings.weight"] = (c.max_position_embeddings, e)
    if c.type_vocab_size > 0:
        shapes["embeddings.token_type_embeddings.weight"] = (c.type_vocab_size, e)
    if e != d:
        shapes["embeddings.embed_proj.weight"] = (d, e)
    shapes.update({"embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,)})
    linear = lambda name, n_out, n_in: {f"{name}.weight": (n_out, n_in), f"{name}.bias": (n_out,)}  # noqa: E731
    norm = lambda name: {f"{name}.weight": (d,), f"{name}.bias": (d,)}  # noqa: E731
    for i in range(c.num_hidden_layers):
        layer = f"encoder.layer.{i}"
        for proj in ("query_proj", "key_proj", "value_proj"):
            shapes.update(linear(f"{layer}.attention.self.{proj}", c.all_head_size, d))
        if c.relative_attention and not c.share_att_key:
            if "c2p" in c.pos_att_type:
                shapes.update(linear(f"{layer}.attention.self.pos_key_proj", c.all_head_size, d))
            if "p2c" in c.pos_att_type:
                shapes.update(linear(f"{layer}.attention.self.pos_query_proj", c.all_head_size, d))
        shapes.update(linear(f"{layer}.attention.output.dense", d, d))
        shapes.update(norm(f"{layer}.attention.output.LayerNorm"))
        shapes.update(linear(f"{layer}.intermediate.dense", c.intermediate_size, d))
        shapes.update(linear(f"{layer}.output.dense", d, c.intermediate_size))
        shapes.update(norm(f"{layer}.output.LayerNorm"))
    if c.relative_attention:
        shapes["encoder.rel_embeddings.weight"] = (2 * c.position_span, d)
    if c.rel_layer_norm:  # transformers creates it even without relative attention (then unused)
        shapes.update(norm("encoder.LayerNorm"))
    if c.conv_kernel_size > 0:
        shapes["encoder.conv.conv.weight"] = (d, d // c.conv_groups, c.conv_kernel_size)
        shapes["encoder.conv.conv.bias"] = (d,)
        shapes.update(norm("encoder.conv.LayerNorm"))
    return shapes


def init_params(shapes, config, seed, dtype):
    """transformers' initialisation: weights ~ N(0, initializer_range), biases 0, LayerNorm 1 and 0,
    and the [PAD] row of the word embeddings 0."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes.items():
        if name.endswith("LayerNorm.weight"):
            params[name] = np.ones(shape, dtype=dtype)
        elif name.endswith("bias"):
            params[name] = np.zeros(shape, dtype=dtype)
        else:
            params[name] = rng.normal(0.0, config.initializer_range, size=shape).astype(dtype)
        if name.endswith("word_embeddings.weight") and config.pad_token_id is not None:
            params[name][config.pad_token_id] = 0
    return params
