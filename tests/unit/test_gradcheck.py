"""Every hand-written backward against central differences, component by component, in float64.

Proves that each ``backward`` of the package returns the gradient of its ``forward`` for EVERY
parameter and EVERY floating-point input, on shapes and configuration flags drawn by
hypothesis (deterministic: ``derandomize=True``):
- ops: linear with and without bias, layer norm, every activation of ``ACTIVATION_FUNCTIONS``,
  the masked softmax (padding masks with fully masked rows, and no mask), dropout with a fixed
  mask, the embedding lookup (repeated ids, the padding_idx row);
- losses: cross-entropy with ignored labels, soft cross-entropy, MSE, BCE with logits;
- embeddings (word, absolute positions, token types, embed_proj, mask, inputs_embeds);
- disentangled attention (c2c + c2p + p2c, c2p only, p2c only, share_att_key on and off, log
  buckets at lengths past position_buckets // 2, plain clipping at max_relative_positions,
  padded masks and no mask, separate query states as the EMD uses, dropout);
- nGiE (kernel 3/5, groups 1/2, gelu/tanh, padding); one encoder layer; the encoder stack
  (the relative-table LayerNorm whose gradient sums over layers, the nGiE conv, gradients into
  any hidden state); the heads (pooler, classifier, MLM head with tied word embeddings, RTD
  head); the Enhanced Mask Decoder on the states of a small encoder.

The error of ``gradcheck.check_backward`` is relative to the scale of each array's gradient: in
float64 with h = 1e-5 a correct backward is around 1e-10 to 1e-8 (O(h^2) truncation plus
round-off eps |f| / h), a wrong one 1e-3 or more, so every check asserts < EXPECTED_ERROR (1e-7).
Weights have std 0.4 (not transformers' 0.02) so every path, the position terms included,
carries a gradient well above round-off. Dropout is checked with a fixed mask: each forward
draws it from a fresh ``np.random.default_rng(seed)``.

Arrays whose true gradient is exactly zero (a bias added to every key shifts each query's scores
by a constant, which the softmax ignores) have no scale of their own: for them both the analytic
and the numerical gradient must be below EXPECTED_ERROR times the component's largest gradient.
"""
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from minideberta import attention, embeddings, emd, encoder, heads, losses, ngie, ops
from minideberta.config import DebertaV2Config
from minideberta.gradcheck import EXPECTED_ERROR, check_backward, numerical_gradient
from minideberta.ops import ACTIVATION_FUNCTIONS
from minideberta.params import backbone_shapes, subtree
from minideberta.relative_position import relative_index_tables

STD = 0.4  # weight scale: gradients well above round-off (see minideberta/demo.py)
# Inside composite components: relu's kink at 0 could fall within the +-1e-5 of a difference
# (relu itself is checked in test_activation, away from its kink).
SMOOTH_ACTIVATIONS = sorted(set(ACTIVATION_FUNCTIONS) - {"relu"})
SEEDS = st.integers(0, 2 ** 16)


def gradcheck_settings(examples):
    """Deterministic examples (derandomize) and no shrinking: every shrinking step would rerun a
    whole gradient check, minutes for the encoder; the failing example is reported as drawn."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    phases=(Phase.explicit, Phase.generate))


def assert_backward_correct(forward, backward, p, inputs, zero_grad=(), seed=0, max_entries=24):
    """Check every parameter of ``p`` and every floating-point input with ``check_backward``.

    ``zero_grad``: names of parameters whose true gradient is exactly zero; they are checked
    against the largest gradient of the component instead (an absolute floor). Asserts that
    every array was checked, so a backward that returns None for an input cannot pass.
    """
    zero_grad = sorted(set(zero_grad))
    rest = {k: v for k, v in p.items() if k not in zero_grad}
    frozen = {k: p[k] for k in zero_grad}

    def fwd(q, *xs):
        return forward({**q, **frozen}, *xs)

    def bwd(q, dy, cache):
        return backward({**q, **frozen}, dy, cache)

    errors = check_backward(fwd, bwd, rest, inputs, seed=seed, max_entries=max_entries)
    float_inputs = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    assert set(errors) == {f"param:{k}" for k in rest} | {f"input:{i}" for i in float_inputs}
    # float64, h = 1e-5: a correct backward is below 1e-7 (typically 1e-10), a wrong one 1e-3 or more.
    bad = {k: f"{e:.1e}" for k, e in errors.items() if not e < EXPECTED_ERROR}
    assert not bad, f"backward differs from central differences: {bad}"

    if zero_grad:
        y, cache = forward(p, *inputs)
        dy = np.random.default_rng(seed).normal(size=np.shape(y))
        _, grads = backward(p, dy, cache)
        largest = max(float(np.abs(g).max()) for g in grads.values())
        for name in zero_grad:
            sample = np.random.default_rng(seed).permutation(p[name].size)[:max_entries]
            numeric = numerical_gradient(lambda: np.sum(forward(p, *inputs)[0] * dy), p[name], indices=sample)
            worst = max(float(np.abs(grads[name]).max()), float(np.abs(numeric.reshape(-1)[sample]).max()))
            assert worst < EXPECTED_ERROR * largest, f"{name}: gradient {worst:.1e} should be 0"


def random_params(shapes, rng):
    """Arrays of std STD; LayerNorm weights around 1."""
    return {k: (1.0 if k.endswith("LayerNorm.weight") else 0.0) + STD * rng.normal(size=s) for k, s in shapes.items()}


def padding_mask(rng, batch, n):
    """(B, N) int64 0/1, right-padded: row 0 is full, the last row (if another) is padded, and any
    row may be all padding (its queries then attend to nothing)."""
    lengths = rng.integers(0, n + 1, size=batch)
    lengths[-1] = rng.integers(0, n)
    lengths[0] = n
    return (np.arange(n)[None] < lengths[:, None]).astype(np.int64)


def with_fixed_dropout(forward, seed):
    """forward(p, *xs, rng=...) with the same dropout masks at every call."""
    return lambda p, *xs: forward(p, *xs, rng=np.random.default_rng(seed))


def shift_invariant(config, prefix=""):
    """Attention parameters with an exactly zero gradient: a bias added to every key, or to every
    c2p position vector, adds the same q_i . b to all scores of query i, which the softmax ignores.
    key_proj.bias is such a bias unless p2c scores its keys against position queries
    (k_j . Qr[i - j], which varies with j); pos_key_proj.bias always is."""
    names = [] if "p2c" in config.pos_att_type else ["key_proj.bias"]
    if not config.share_att_key and "c2p" in config.pos_att_type:
        names.append("pos_key_proj.bias")
    return [prefix + n for n in names]


def rel_norm_shift_invariant(config, prefix):
    """The relative table's LayerNorm bias moves every c2p position vector alike (a constant per
    query) unless a p2c term reads the table or dropout masks each entry differently."""
    if config.rel_layer_norm and "p2c" not in config.pos_att_type and config.hidden_dropout_prob == 0:
        return [prefix + "LayerNorm.bias"]
    return []


# ---------------------------------------------------------------- ops
@gradcheck_settings(12)
@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=3), n_in=st.integers(1, 6), n_out=st.integers(1, 6),
       bias=st.booleans(), seed=SEEDS)
def test_linear(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    p = {"weight": rng.normal(size=(n_out, n_in))}
    if bias:
        p["bias"] = rng.normal(size=n_out)
    assert_backward_correct(ops.linear_forward, ops.linear_backward, p, [rng.normal(size=(*lead, n_in))], seed=seed)


@gradcheck_settings(10)
@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=2), width=st.integers(3, 12),
       eps=st.sampled_from([1e-7, 1e-5, 1e-12]), offset=st.floats(-3, 3), seed=SEEDS)
def test_layer_norm(lead, width, eps, offset, seed):
    rng = np.random.default_rng(seed)
    p = {"weight": 1 + STD * rng.normal(size=width), "bias": STD * rng.normal(size=width)}
    x = offset + rng.normal(size=(*lead, width))
    assert_backward_correct(lambda p, x: ops.layer_norm_forward(p, x, eps), ops.layer_norm_backward, p, [x], seed=seed)


@pytest.mark.parametrize("name", sorted(ACTIVATION_FUNCTIONS))
@gradcheck_settings(5)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=SEEDS)
def test_activation(name, shape, seed):
    forward, backward = ACTIVATION_FUNCTIONS[name]
    x = 2 * np.random.default_rng(seed).normal(size=shape)
    x[np.abs(x) < 1e-3] = 0.5  # keep relu's kink (at 0) out of reach of the +-1e-5 differences
    assert_backward_correct(lambda p, x: forward(x), lambda p, dy, cache: (backward(dy, cache), {}), {}, [x],
                            seed=seed)


@gradcheck_settings(12)
@given(batch=st.integers(2, 3), heads_=st.integers(1, 2), n=st.integers(2, 8), masked=st.booleans(), seed=SEEDS)
def test_masked_softmax(batch, heads_, n, masked, seed):
    """Padding masks give padded queries fully masked rows (all-zero probabilities, no gradient)."""
    rng = np.random.default_rng(seed)
    mask = encoder.attention_masks(padding_mask(rng, batch, n))[0] if masked else None  # (B, 1, N, N)
    scores = 2 * rng.normal(size=(batch, heads_, n, n))
    # masked_softmax_forward overwrites its input: give it a copy.
    assert_backward_correct(lambda p, s: ops.masked_softmax_forward(s.copy(), mask),
                            lambda p, dy, cache: (ops.masked_softmax_backward(dy, cache), {}), {}, [scores], seed=seed)


@gradcheck_settings(8)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), rate=st.sampled_from([0.1, 0.5]), seed=SEEDS)
def test_dropout_with_fixed_mask(shape, rate, seed):
    rng = np.random.default_rng(seed)
    forward = with_fixed_dropout(lambda p, x, rng: ops.dropout_forward(x, rate, rng), seed)
    assert_backward_correct(forward, lambda p, dy, cache: (ops.dropout_backward(dy, cache), {}), {},
                            [rng.normal(size=shape)], seed=seed)


def frozen_row(table, row, value):
    """``table`` with ``row`` replaced by the constant ``value``: torch's padding_idx row is not trained."""
    table = table.copy()
    table[row] = value
    return table


@gradcheck_settings(10)
@given(vocab=st.integers(2, 6), dim=st.integers(1, 5), shape=st.lists(st.integers(1, 5), min_size=1, max_size=2),
       padding=st.booleans(), seed=SEEDS)
def test_embedding_lookup(vocab, dim, shape, padding, seed):
    """Rows used several times sum their gradients; with padding_idx, that row gets none."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(3, *shape))
    ids[0] = 0  # the padding row is used...
    ids[1] = ids[2] = 1  # ...and another row more than once
    p = {"weight": rng.normal(size=(vocab, dim))}
    pad = 0 if padding else None
    constant = p["weight"][0].copy()

    def forward(p):
        table = p["weight"] if pad is None else frozen_row(p["weight"], pad, constant)
        return embeddings.embedding_forward({"weight": table}, ids, pad)

    assert_backward_correct(forward, embeddings.embedding_backward, p, [],
                            seed=seed, max_entries=vocab * dim)


# ---------------------------------------------------------------- losses
def scalar_loss(forward):
    """A loss forward as a component without parameters (its upstream gradient is a scalar)."""
    return lambda p, x: forward(x)


def loss_backward(backward):
    return lambda p, dloss, cache: (backward(dloss, cache), {})


@gradcheck_settings(10)
@given(rows=st.integers(1, 6), classes=st.integers(2, 6), seed=SEEDS)
def test_cross_entropy_with_ignored_labels(rows, classes, seed):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(rows) < 0.3, -100, rng.integers(0, classes, rows))
    labels[0] = rng.integers(0, classes)  # at least one counted row
    assert_backward_correct(scalar_loss(lambda x: losses.cross_entropy_forward(x, labels)),
                            loss_backward(losses.cross_entropy_backward), {}, [2 * rng.normal(size=(rows, classes))],
                            seed=seed)


@gradcheck_settings(8)
@given(rows=st.integers(1, 6), classes=st.integers(2, 6), normalised=st.booleans(), seed=SEEDS)
def test_soft_cross_entropy(rows, classes, normalised, seed):
    """Targets that are probabilities, and (the general formula) targets that do not sum to 1."""
    rng = np.random.default_rng(seed)
    targets = rng.random((rows, classes))
    if normalised:
        targets /= targets.sum(axis=-1, keepdims=True)
    assert_backward_correct(scalar_loss(lambda x: losses.soft_cross_entropy_forward(x, targets)),
                            loss_backward(losses.soft_cross_entropy_backward), {}, [rng.normal(size=(rows, classes))],
                            seed=seed)


@gradcheck_settings(8)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=2), seed=SEEDS)
def test_mse(shape, seed):
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=shape)
    assert_backward_correct(scalar_loss(lambda x: losses.mse_forward(x, targets)), loss_backward(losses.mse_backward),
                            {}, [rng.normal(size=shape)], seed=seed)


@gradcheck_settings(8)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=2), seed=SEEDS)
def test_bce_with_logits(shape, seed):
    rng = np.random.default_rng(seed)
    targets = rng.random(shape)  # soft targets in [0, 1]
    assert_backward_correct(scalar_loss(lambda x: losses.bce_with_logits_forward(x, targets)),
                            loss_backward(losses.bce_with_logits_backward), {}, [3 * rng.normal(size=shape)],
                            seed=seed)


# ---------------------------------------------------------------- configs
def make_config(**overrides):
    """A tiny DeBERTa config, dropout off unless asked."""
    values = dict(vocab_size=7, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=12,
                  max_position_embeddings=24, relative_attention=True, position_buckets=8, share_att_key=True,
                  pos_att_type="c2p|p2c", norm_rel_ebd="layer_norm", position_biased_input=False,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-7)
    values.update(overrides)
    return DebertaV2Config(**values)


TERMS = {"c2c+c2p+p2c": "c2p|p2c", "c2p-only": "c2p", "p2c-only": "p2c"}


@st.composite
def attention_configs(draw, **fixed):
    """Position terms, shared or separate position projections, log buckets or plain clipping,
    dropout; and a length: past position_buckets // 2 with buckets, past the span without."""
    # hidden 8 or 12: a LayerNorm over very few features (3) squeezes some gradients down to
    # 1e-4 of the function, where the round-off of the differences reaches 1e-7.
    heads_, head_size = draw(st.sampled_from([(1, 8), (2, 4), (2, 6)]))
    buckets = draw(st.booleans())
    positions = dict(position_buckets=8) if buckets else dict(position_buckets=-1,
                                                              max_relative_positions=draw(st.integers(2, 4)))
    dropout = draw(st.sampled_from([0.0, 0.2]))
    terms = fixed.pop("pos_att_type") if "pos_att_type" in fixed else draw(st.sampled_from(list(TERMS.values())))
    share = fixed.pop("share_att_key") if "share_att_key" in fixed else draw(st.booleans())
    config = make_config(hidden_size=heads_ * head_size, num_attention_heads=heads_, pos_att_type=terms,
                         share_att_key=share, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                         **positions, **fixed)
    # At least 2 keys: over a single key the softmax is constant and q, k get no gradient.
    n = draw(st.integers(6, 12) if buckets else st.integers(2, 8))
    return config, n


def attention_params(config, rng):
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("encoder.layer.0.attention.self.")}
    return subtree(random_params(shapes, rng), "encoder.layer.0.attention.self")


# ---------------------------------------------------------------- embeddings
@gradcheck_settings(10)
@given(position_biased_input=st.booleans(), type_vocab_size=st.sampled_from([0, 2]),
       embedding_size=st.sampled_from([8, 5]), use_embeds=st.booleans(), dropout=st.sampled_from([0.0, 0.2]),
       batch=st.integers(1, 3), n=st.integers(1, 6), seed=SEEDS)
def test_embeddings(position_biased_input, type_vocab_size, embedding_size, use_embeds, dropout, batch, n, seed):
    """Word (the [PAD] row, id 0, is not trained), absolute positions, token types, embed_proj,
    LayerNorm, mask, dropout; or inputs_embeds in place of the word lookup."""
    rng = np.random.default_rng(seed)
    config = make_config(position_biased_input=position_biased_input, type_vocab_size=type_vocab_size,
                         embedding_size=embedding_size, hidden_dropout_prob=dropout, max_position_embeddings=8)
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("embeddings.")}
    p = subtree(random_params(shapes, rng), "embeddings")
    if use_embeds:
        del p["word_embeddings.weight"]
    ids = rng.integers(0, config.vocab_size, size=(batch, n))  # pad id 0 included
    types = rng.integers(0, max(type_vocab_size, 1), size=(batch, n))
    positions = rng.integers(0, config.max_position_embeddings, size=(batch, n))  # repeats included
    mask = padding_mask(rng, batch, n)
    constant = None if use_embeds else p["word_embeddings.weight"][config.pad_token_id].copy()

    def forward(p, *embeds):
        if not use_embeds:
            p = {**p, "word_embeddings.weight": frozen_row(p["word_embeddings.weight"], config.pad_token_id, constant)}
        return embeddings.forward(p, None if use_embeds else ids, types, positions, mask, config,
                                  embeds[0] if use_embeds else None, rng=np.random.default_rng(seed))

    def backward(p, dy, cache):
        dembeds, grads = embeddings.backward(p, dy, cache)
        return (dembeds if use_embeds else None), grads

    inputs = [rng.normal(size=(batch, n, embedding_size))] if use_embeds else []
    assert_backward_correct(forward, backward, p, inputs, seed=seed)


# ---------------------------------------------------------------- attention
def relative_case(component_forward, component_backward, config, n, batch, masked, separate_queries, rng, seed):
    """``(forward, backward, inputs)`` for a component called like attention.forward: inputs are
    x, the relative table and, as the EMD passes them, separate query states; the mask (or None),
    the relative rows and the dropout generator are fixed, so every call computes the same function."""
    mask = encoder.attention_masks(padding_mask(rng, batch, n))[0] if masked else None
    rows = relative_index_tables(n, config)
    d = config.hidden_size
    inputs = [rng.normal(size=(batch, n, d)), rng.normal(size=(2 * config.position_span, d))]
    if separate_queries:
        inputs.append(rng.normal(size=(batch, n, d)))

    def forward(p, x, table, *queries):
        return component_forward(p, x, mask, config, table, rows, queries[0] if queries else None,
                                 rng=np.random.default_rng(seed))

    def backward(p, dy, cache):
        (dx, dqueries, dtable), grads = component_backward(p, dy, cache)
        return ((dx, dtable, dqueries) if separate_queries else (dx, dtable)), grads

    return forward, backward, inputs


@pytest.mark.parametrize("share_att_key", [True, False], ids=["share_att_key", "pos_proj"])
@pytest.mark.parametrize("terms", TERMS)
@gradcheck_settings(5)
@given(data=st.data(), batch=st.integers(1, 2), masked=st.booleans(), separate_queries=st.booleans(), seed=SEEDS)
def test_attention(terms, share_att_key, data, batch, masked, separate_queries, seed):
    """Inputs: hidden, the relative table (after its LayerNorm) and, as the EMD passes them,
    separate query states. Buckets or clipping, mask or none, dropout or none: drawn."""
    config, n = data.draw(attention_configs(pos_att_type=TERMS[terms], share_att_key=share_att_key))
    rng = np.random.default_rng(seed)
    p = attention_params(config, rng)
    forward, backward, inputs = relative_case(attention.forward, attention.backward, config, n, batch, masked,
                                              separate_queries, rng, seed)
    assert_backward_correct(forward, backward, p, inputs, shift_invariant(config), seed=seed)


# ---------------------------------------------------------------- nGiE
@gradcheck_settings(10)
@given(kernel=st.sampled_from([3, 5]), groups=st.sampled_from([1, 2]), act=st.sampled_from(["gelu", "tanh"]),
       dropout=st.sampled_from([0.0, 0.2]), batch=st.integers(1, 2), n=st.integers(1, 7), seed=SEEDS)
def test_ngie(kernel, groups, act, dropout, batch, n, seed):
    rng = np.random.default_rng(seed)
    config = make_config(conv_kernel_size=kernel, conv_groups=groups, conv_act=act, hidden_dropout_prob=dropout)
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("encoder.conv.")}
    p = subtree(random_params(shapes, rng), "encoder.conv")
    mask = padding_mask(rng, batch, n)
    forward = with_fixed_dropout(lambda p, e, h, rng: ngie.forward(p, e, h, mask, config, rng), seed)
    inputs = [rng.normal(size=(batch, n, 8)), rng.normal(size=(batch, n, 8))]
    assert_backward_correct(forward, ngie.backward, p, inputs, seed=seed)


# ---------------------------------------------------------------- encoder
@gradcheck_settings(10)
@given(setup=attention_configs(), hidden_act=st.sampled_from(SMOOTH_ACTIVATIONS),
       batch=st.integers(1, 2), masked=st.booleans(), separate_queries=st.booleans(), seed=SEEDS)
def test_encoder_layer(setup, hidden_act, batch, masked, separate_queries, seed):
    """Attention, its output sub-layer and the FFN; with separate query states (EMD) the queries
    and the residual come from them, keys and values from x."""
    config, n = setup
    config = make_config(**{**config.to_dict(), "hidden_act": hidden_act})
    rng = np.random.default_rng(seed)
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("encoder.layer.0.")}
    p = subtree(random_params(shapes, rng), "encoder.layer.0")
    forward, backward, inputs = relative_case(encoder.layer_forward, encoder.layer_backward, config, n, batch,
                                              masked, separate_queries, rng, seed)
    assert_backward_correct(forward, backward, p, inputs, shift_invariant(config, "attention.self."), seed=seed)


# which hidden states carry a gradient: all L+1, the last, or only the second-to-last (as EMD)
STATE_GRADIENTS = ("all", "last", "second-to-last")


# encoder id -> (LayerNorm on the relative table, nGiE conv)
ENCODERS = {"v3-rel-LayerNorm": (True, False), "v2-rel-LayerNorm+nGiE": (True, True), "plain": (False, False)}


@pytest.mark.parametrize("states", STATE_GRADIENTS)
@pytest.mark.parametrize("kind", ENCODERS)
@gradcheck_settings(2)
@given(setup=attention_configs(), batch=st.integers(1, 2), seed=SEEDS)
def test_encoder_stack(kind, states, setup, batch, seed):
    """Two layers sharing the relative table (and its LayerNorm): its gradient sums over them."""
    config, n = setup
    layers, (rel_layer_norm, conv) = 2, ENCODERS[kind]
    config = make_config(**{**config.to_dict(), "num_hidden_layers": layers,
                            "norm_rel_ebd": "layer_norm" if rel_layer_norm else "none",
                            "conv_kernel_size": 3 if conv else 0, "conv_act": "gelu"})
    rng = np.random.default_rng(seed)
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("encoder.")}
    p = subtree(random_params(shapes, rng), "encoder")
    attention_mask = padding_mask(rng, batch, n)
    picked = {"all": slice(None), "last": slice(-1, None), "second-to-last": slice(-2, -1)}[states]

    def forward(p, x):
        (hidden_states, _), cache = encoder.forward(p, x, encoder.attention_masks(attention_mask), config, rng=np.random.default_rng(seed))
        return np.stack(hidden_states[picked]), cache

    def backward(p, dy, cache):
        dstates = [None] * (layers + 1)
        dstates[picked] = list(dy)
        return encoder.backward(p, dstates, cache)

    zero = [f"layer.{i}.attention.self.{name}" for i in range(layers) for name in shift_invariant(config)]
    zero += rel_norm_shift_invariant(config, "")
    if states == "second-to-last":
        # Layer L is not used at all: its gradient is zero, which is what backward must return.
        zero += [k for k in p if k.startswith(f"layer.{layers - 1}.")]
    assert_backward_correct(forward, backward, p, [rng.normal(size=(batch, n, config.hidden_size))], zero, seed=seed,
                            max_entries=6)


# ---------------------------------------------------------------- heads
@gradcheck_settings(8)
@given(act=st.sampled_from(SMOOTH_ACTIVATIONS), dropout=st.sampled_from([0.0, 0.2]),
       batch=st.integers(1, 3), n=st.integers(1, 4), seed=SEEDS)
def test_pooler(act, dropout, batch, n, seed):
    rng = np.random.default_rng(seed)
    config = make_config(pooler_hidden_act=act, pooler_dropout=dropout)
    p = {"dense.weight": STD * rng.normal(size=(8, 8)), "dense.bias": STD * rng.normal(size=8)}
    forward = with_fixed_dropout(lambda p, h, rng: heads.pooler_forward(p, h, config, rng), seed)
    assert_backward_correct(forward, heads.pooler_backward, p, [rng.normal(size=(batch, n, 8))], seed=seed)


@gradcheck_settings(8)
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=2), outputs=st.integers(1, 4),
       rate=st.sampled_from([0.0, 0.2]), seed=SEEDS)
def test_classifier(lead, outputs, rate, seed):
    rng = np.random.default_rng(seed)
    p = {"weight": STD * rng.normal(size=(outputs, 8)), "bias": STD * rng.normal(size=outputs)}
    forward = with_fixed_dropout(lambda p, x, rng: heads.classifier_forward(p, x, rate, rng), seed)
    assert_backward_correct(forward, heads.classifier_backward, p, [rng.normal(size=(*lead, 8))], seed=seed)


@gradcheck_settings(8)
@given(embedding_size=st.sampled_from([8, 5]), act=st.sampled_from(["gelu", "tanh", "gelu_new"]),
       batch=st.integers(1, 2), n=st.integers(1, 4), seed=SEEDS)
def test_mlm_head(embedding_size, act, batch, n, seed):
    """Inputs: the hidden states and the tied word-embedding table (its decoder share of the gradient)."""
    rng = np.random.default_rng(seed)
    config = make_config(embedding_size=embedding_size, hidden_act=act)
    e = embedding_size
    p = {"dense.weight": STD * rng.normal(size=(e, 8)), "dense.bias": STD * rng.normal(size=e),
         "LayerNorm.weight": 1 + STD * rng.normal(size=e), "LayerNorm.bias": STD * rng.normal(size=e),
         "bias": STD * rng.normal(size=config.vocab_size)}
    inputs = [rng.normal(size=(batch, n, 8)), STD * rng.normal(size=(config.vocab_size, e))]
    assert_backward_correct(lambda p, h, w: heads.mlm_head_forward(p, h, w, config), heads.mlm_head_backward, p,
                            inputs, seed=seed)


@gradcheck_settings(8)
@given(act=st.sampled_from(["gelu", "tanh"]), batch=st.integers(1, 2), n=st.integers(1, 5), seed=SEEDS)
def test_rtd_head(act, batch, n, seed):
    """Each token's state plus the [CLS] state: the [CLS] row gets the gradient of every position."""
    rng = np.random.default_rng(seed)
    config = make_config(hidden_act=act)
    p = {"dense.weight": STD * rng.normal(size=(8, 8)), "dense.bias": STD * rng.normal(size=8),
         "LayerNorm.weight": 1 + STD * rng.normal(size=8), "LayerNorm.bias": STD * rng.normal(size=8),
         "classifier.weight": STD * rng.normal(size=(1, 8)), "classifier.bias": STD * rng.normal(size=1)}
    assert_backward_correct(lambda p, h: heads.rtd_head_forward(p, h, config), heads.rtd_head_backward, p,
                            [rng.normal(size=(batch, n, 8))], seed=seed)


# ---------------------------------------------------------------- Enhanced Mask Decoder
@gradcheck_settings(8)
@given(setup=attention_configs(), rel_layer_norm=st.booleans(), batch=st.integers(1, 2), seed=SEEDS)
def test_enhanced_mask_decoder(setup, rel_layer_norm, batch, seed):
    """The last layer twice, queries from H[-2] + absolute positions (repeated positions included):
    gradients of H[-2], the last layer (summed over both passes), the relative table and its
    LayerNorm, and the absolute position table."""
    config, n = setup
    config = make_config(**{**config.to_dict(), "num_hidden_layers": 2,
                            "norm_rel_ebd": "layer_norm" if rel_layer_norm else "none"})
    rng = np.random.default_rng(seed)
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("encoder.")}
    shapes["embeddings.position_embeddings.weight"] = (config.max_position_embeddings, config.hidden_size)
    backbone = random_params(shapes, rng)
    attention_mask = padding_mask(rng, batch, n)
    (states, _), _ = encoder.forward(subtree(backbone, "encoder"), rng.normal(size=(batch, n, config.hidden_size)),
                                     encoder.attention_masks(attention_mask), config)
    # What EMD reads: the last layer, the relative table (and LayerNorm), the position table.
    p = {k: v for k, v in backbone.items() if not k.startswith("encoder.layer.0.")}
    position_ids = rng.integers(0, config.max_position_embeddings, size=(batch, n))

    def forward(p, hidden):
        return emd.forward(p, hidden, encoder.attention_masks(attention_mask).pair, position_ids, config,
                           rng=np.random.default_rng(seed))

    zero = shift_invariant(config, "encoder.layer.1.attention.self.") + rel_norm_shift_invariant(config, "encoder.")
    assert_backward_correct(forward, emd.backward, p, [states[-2].copy()], zero, seed=seed, max_entries=12)
