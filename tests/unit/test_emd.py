"""emd.py, the Enhanced Mask Decoder: what it computes (the last layer twice, queries from
H[-2] + absolute positions), its shapes, and its backward against central differences.
(Against Microsoft's algorithm rebuilt in torch: tests/parity/test_grad_parity_hf.py.)"""
import numpy as np
import pytest

from minideberta import emd, encoder
from minideberta.config import DebertaV2Config
from minideberta.gradcheck import EXPECTED_ERROR, numerical_gradient, rel_error
from minideberta.params import backbone_shapes, subtree

B, N, D = 2, 9, 8


def setup(seed=0, dropout=0.0, **overrides):
    """A 2-layer v3-shaped backbone (random LayerNorms and biases too), a padded batch, H[-2]."""
    values = dict(vocab_size=7, hidden_size=D, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                  max_position_embeddings=16, relative_attention=True, position_buckets=4, share_att_key=True,
                  pos_att_type="c2p|p2c", norm_rel_ebd="layer_norm", position_biased_input=False,
                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, layer_norm_eps=1e-7)
    config = DebertaV2Config(**{**values, **overrides})
    rng = np.random.default_rng(seed)
    shapes = {k: v for k, v in backbone_shapes(config).items() if k.startswith("encoder.")}
    shapes["embeddings.position_embeddings.weight"] = (config.max_position_embeddings, D)
    p = {k: rng.normal(scale=0.5, size=s) + (1.0 if k.endswith("LayerNorm.weight") else 0.0) for k, s in shapes.items()}
    mask = np.ones((B, N), np.int64)
    mask[1, 6:] = 0  # the second sequence is padded
    pair = encoder.attention_masks(mask).pair
    positions = np.broadcast_to(np.arange(N), (B, N)).copy()
    hidden = rng.normal(size=(B, N, D))
    return config, p, pair, positions, hidden


def test_the_decoder_is_the_last_layer_twice_from_positions():
    config, p, pair, positions, hidden = setup()
    decoded, cache = emd.forward(p, hidden, pair, positions, config)
    assert decoded.shape == (B, N, D) and decoded.dtype == hidden.dtype
    assert len(cache.passes) == emd.PASSES == 2
    relative = encoder.relative_embeddings_forward(subtree(p, "encoder"), config, N)
    last = subtree(p, "encoder.layer.1")
    query = hidden + p["embeddings.position_embeddings.weight"][positions]  # q0 = H + P[positions]
    for _ in range(2):
        query, _ = encoder.layer_forward(last, hidden, pair, config, relative.table, relative.rows, query_states=query)
    assert np.array_equal(decoded, query)
    plain, _ = encoder.layer_forward(last, hidden, pair, config, relative.table, relative.rows)
    assert np.abs(decoded - plain).max() > 1e-3  # not the encoder's own pass through the last layer


@pytest.mark.parametrize("case", ["v3", "dropout", "repeated positions, no table LayerNorm"])
def test_backward_matches_central_differences(case):
    """Gradients of H[-2] (keys, values and the first query), of the last layer (both passes
    summed), the relative table and its LayerNorm, and the absolute position table."""
    overrides = {"norm_rel_ebd": "none"} if case.startswith("repeated") else {}
    config, p, pair, positions, hidden = setup(seed=1, dropout=0.1 if case == "dropout" else 0.0, **overrides)
    if case.startswith("repeated"):
        positions[:, 3:6] = 2  # one position table row read several times: its gradients add
    p = {k: v for k, v in p.items() if not k.startswith("encoder.layer.0.")}  # what EMD reads

    def forward(p, hidden):
        rng = np.random.default_rng(5) if case == "dropout" else None  # the same masks every call
        return emd.forward(p, hidden, pair, positions, config, rng=rng)

    dy = np.random.default_rng(3).normal(size=(B, N, D))
    dhidden, grads = emd.backward(p, dy, forward(p, hidden)[1])
    assert dhidden.shape == hidden.shape and set(grads) <= set(p)
    assert "embeddings.position_embeddings.weight" in grads and "encoder.rel_embeddings.weight" in grads

    def f():
        return np.sum(forward(p, hidden)[0] * dy)

    rng, errors = np.random.default_rng(4), {}
    for name, x, grad in [("hidden", hidden, dhidden)] + [(k, p[k], grads[k]) for k in grads]:
        sample = rng.choice(x.size, min(8, x.size), replace=False)
        numeric = numerical_gradient(f, x, indices=sample).reshape(-1)[sample]
        # A gradient that vanishes by symmetry (a bias adding the same Q_i . b to every key of query i,
        # which the softmax cancels) is compared in absolute terms: the scale never goes below 1e-3.
        errors[name] = rel_error(grad.reshape(-1)[sample], numeric, scale=max(float(np.abs(grad).max()), 1e-3))
    bad = {k: e for k, e in errors.items() if e >= EXPECTED_ERROR}
    assert not bad, bad


@pytest.mark.parametrize("case", ["v3", "c2p only", "p2c only", "no relative attention", "no padding"])
def test_forward_rows_decodes_the_same_rows_with_the_same_gradients(case):
    """forward_rows (the chosen positions only, as pre-training calls it) against forward's rows picked
    afterwards: the same states, and given the same upstream gradient on those rows (0 elsewhere), the
    same gradients of H[-2], the last layer, the relative table and the position table (float64)."""
    overrides = {"c2p only": {"pos_att_type": "c2p"}, "p2c only": {"pos_att_type": "p2c"},
                 "no relative attention": {"relative_attention": False, "position_biased_input": False}}.get(case, {})
    config, p, pair, positions, hidden = setup(seed=2, **overrides)
    if case == "no padding":
        pair = None
    p = {k: v for k, v in p.items() if not k.startswith("encoder.layer.0.")}
    decode = np.zeros((B, N), bool)
    decode[0, [1, 4, 5, 8]] = True  # four rows in the first sequence, two in the second: K = 4
    decode[1, [0, 3]] = True
    full, full_cache = emd.forward(p, hidden, pair, positions, config)
    (rows, chosen), cache = emd.forward_rows(p, hidden, pair, positions, config, decode)
    assert rows.shape == (B, 4, D) and chosen.sum() == decode.sum()
    np.testing.assert_allclose(rows[chosen], full[decode], rtol=0, atol=1e-12)

    dpicked = np.random.default_rng(6).normal(size=(int(decode.sum()), D))
    dfull = np.zeros_like(full)
    dfull[decode] = dpicked
    drows = np.zeros_like(rows)
    drows[chosen] = dpicked
    dhidden_full, grads_full = emd.backward(p, dfull, full_cache)
    dhidden_rows, grads_rows = emd.backward(p, drows, cache)
    np.testing.assert_allclose(dhidden_rows, dhidden_full, rtol=0, atol=1e-11)
    assert set(grads_rows) == set(grads_full)
    for name in grads_full:
        np.testing.assert_allclose(grads_rows[name], grads_full[name], rtol=0, atol=1e-11, err_msg=name)


def test_decode_rows_lists_the_chosen_positions_first_and_in_order():
    decode = np.array([[0, 1, 0, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    rows, chosen = emd.decode_rows(decode)
    assert rows.tolist() == [[1, 3, 4], [0, 1, 2], [0, 1, 2]]  # the shorter rows filled with unchosen positions
    assert chosen.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert all(len(set(r)) == len(r) for r in rows.tolist())  # distinct in every sequence
