"""One DeBERTaV3 pre-training step (``rtd_pretraining.Pretrainer.step``) against torch autograd, float64.

The reference is the same computation built from transformers' layers: the generator is
transformers' ``DebertaV2ForMaskedLM`` (legacy=False) decoding through Microsoft's Enhanced Mask
Decoder (``verify.rebuilt_emd_logits``), the discriminator transformers' ``DebertaV2Model`` with
Microsoft's RTD head (``verify.rebuilt_rtd_logits``); the loss is L_MLM + lambda L_RTD. The
embedding sharing is built into the reference by hand: GDES gives the discriminator the table
``E_G.detach() + E_Delta``, ES the generator's parameter itself, NES its own. Both sides get the
same masks and the same sampled tokens (sampling is not differentiable). Every parameter is
randomised (E_Delta included) so that no gradient can be zero by accident.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers

from minideberta.apps.bench.verify import rebuilt_emd_logits, rebuilt_rtd_logits
from minideberta.apps.pretrain.cli import build_models, model_configs
from minideberta.apps.pretrain.rtd import DELTA, WORD, Pretrainer, mask_tokens, sample_tokens
from minideberta.masked_lm import POSITIONS

from reference import ragged_batch, rel_error

TOL = 1e-8  # float64 on both sides (measured ~1e-13)
LAMBDA = 50.0
VOCAB = 40


def random_pretrainer(sharing, seed=0):
    g, d = model_configs(VOCAB, hidden_size=16, layers=2, heads=2, intermediate_size=24, position_buckets=4,
                         max_position_embeddings=32)
    generator, discriminator = build_models(g, d, seed=seed, dtype=np.float64)
    pt = Pretrainer(generator, discriminator, sharing, LAMBDA, mask_id=VOCAB - 1)
    rng = np.random.default_rng(seed + 10)
    for name, p in pt.params.items():
        p[...] = (1 if name.endswith("LayerNorm.weight") else 0) + 0.1 * rng.normal(size=p.shape)
    pt.compose()
    return pt


def batch():
    ids, mask, _ = ragged_batch((21, 14), VOCAB - 1, seed=3)  # past position_buckets // 2 = 2
    ids[:, 0] = 1
    ids[0, 20], ids[1, 13] = 2, 2
    return ids, mask


def torch_models(pt):
    """transformers' generator and discriminator backbone holding the pretrainer's arrays."""
    g = transformers.DebertaV2ForMaskedLM(transformers.DebertaV2Config.from_dict(pt.generator.config.to_dict()))
    d = transformers.DebertaV2Model(transformers.DebertaV2Config.from_dict(pt.discriminator.config.to_dict()))
    g, d = g.double().eval(), d.double().eval()
    g_state = {k: torch.from_numpy(v.copy()) for k, v in pt.generator.params.items() if k != POSITIONS}
    d_state = {k[len("deberta."):]: torch.from_numpy(v.copy()) for k, v in pt.discriminator.params.items()
               if k.startswith("deberta.")}
    assert not g.load_state_dict(g_state, strict=False).missing_keys
    assert not d.load_state_dict(d_state, strict=True).missing_keys
    return g, d


def reference_step(pt, ids, mask, masked_ids, selected, replaced, labels):
    """Loss and gradients (named as ``pt.params``) of L_MLM + lambda L_RTD by torch autograd."""
    g, d = torch_models(pt)
    table = torch.from_numpy(pt.generator.params[POSITIONS].copy()).requires_grad_(True)
    head = {k[len("mask_predictions."):]: torch.from_numpy(v.copy()).requires_grad_(True)
            for k, v in pt.discriminator.params.items() if k.startswith("mask_predictions.")}
    e_g = g.deberta.embeddings.word_embeddings.weight
    emb = d.embeddings.word_embeddings
    del emb.weight
    delta = None
    if pt.sharing == "gdes":
        delta = torch.from_numpy(pt.params[f"discriminator.{DELTA}"].copy()).requires_grad_(True)
        emb.weight = e_g.detach() + delta  # E_D = sg(E_G) + E_Delta
    elif pt.sharing == "es":
        emb.weight = e_g  # one table
    else:
        own = torch.from_numpy(pt.params[f"discriminator.{WORD}"].copy()).requires_grad_(True)
        emb.weight = own
    t_mask, sel = torch.from_numpy(mask), torch.from_numpy(selected)
    logits = rebuilt_emd_logits(g, table, torch.from_numpy(masked_ids), t_mask)
    mlm = F.cross_entropy(logits[sel], torch.from_numpy(ids)[sel])
    z = rebuilt_rtd_logits(d, head, torch.from_numpy(replaced), t_mask, d.config)
    real = t_mask.bool()
    rtd = F.binary_cross_entropy_with_logits(z[real], torch.from_numpy(labels)[real].double())
    (mlm + LAMBDA * rtd).backward()
    grads = {f"generator.{k}": p.grad.numpy() for k, p in g.named_parameters()}
    grads[f"generator.{POSITIONS}"] = table.grad.numpy()
    grads.update({f"discriminator.deberta.{k}": p.grad.numpy() for k, p in d.named_parameters()
                  if p is not e_g})  # under ES the generator's table is registered in d too
    grads.update({f"discriminator.mask_predictions.{k}": t.grad.numpy() for k, t in head.items()})
    if pt.sharing == "gdes":
        grads[f"discriminator.{DELTA}"] = delta.grad.numpy()
    elif pt.sharing == "nes":
        grads[f"discriminator.{WORD}"] = own.grad.numpy()
    return mlm.item(), rtd.item(), grads


@pytest.mark.parametrize("sharing", ["gdes", "es", "nes"])
def test_pretraining_step_matches_torch_autograd(sharing):
    """Both losses and every gradient (E_G, E_Delta, both models, both heads) equal torch's."""
    pt = random_pretrainer(sharing)
    ids, mask = batch()
    rng = np.random.default_rng(1)
    masked_ids, selected = mask_tokens(ids, pt.candidates(ids, mask), rng, pt.mask_id, pt.random_ids)
    samples = rng.integers(4, VOCAB - 1, size=int(selected.sum()))
    samples[0] = ids[selected][0]  # a sample equal to the original: labelled original
    metrics, grads, (_, _, _, labels, _) = pt.step(ids, mask, None, masks=(masked_ids, selected), samples=samples)
    replaced = ids.copy()
    replaced[selected] = samples
    assert selected.sum() >= 4 and 1 <= labels.sum() < selected.sum() and labels[selected][0] == 0
    mlm, rtd, theirs = reference_step(pt, ids, mask, masked_ids, selected, replaced, labels)
    assert abs(metrics["mlm_loss"] - mlm) <= TOL * mlm
    assert abs(metrics["rtd_loss"] - rtd) <= TOL * rtd
    assert set(theirs) == set(grads)
    errors = {name: rel_error(grads[name], theirs[name]) for name in grads if np.abs(theirs[name]).max() > 0}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: relative error {errors[worst]:.2e}"
    for name in (f"generator.{WORD}", f"generator.{POSITIONS}", "discriminator.mask_predictions.dense.weight"):
        assert np.abs(grads[name]).max() > 0, name


def test_gdes_gradients_flow_where_the_paper_says():
    """GDES: L_RTD reaches E_Delta only (E_G's gradient is the one of L_MLM alone, whatever lambda);
    ES: the one table gets both; NES: the generator's table gets L_MLM only, the discriminator's its own."""
    ids, mask = batch()
    steps = {}
    for sharing, weight in (("gdes", LAMBDA), ("gdes", 2 * LAMBDA), ("es", LAMBDA), ("nes", LAMBDA)):
        pt = random_pretrainer(sharing)
        pt.rtd_weight = weight
        if sharing != "gdes":  # the same starting table as the gdes discriminator: E_G + E_Delta
            reference = random_pretrainer("gdes")
            pt.generator.params[WORD][...] = reference.discriminator_embeddings()
            if sharing == "nes":
                pt.params[f"discriminator.{WORD}"][...] = reference.discriminator_embeddings()
        steps[sharing, weight] = pt.step(ids, mask, np.random.default_rng(1))[1]
    gdes, gdes_2, es, nes = (steps["gdes", LAMBDA], steps["gdes", 2 * LAMBDA], steps["es", LAMBDA],
                             steps["nes", LAMBDA])
    np.testing.assert_array_equal(gdes[f"generator.{WORD}"], gdes_2[f"generator.{WORD}"])
    np.testing.assert_allclose(gdes_2[f"discriminator.{DELTA}"], 2 * gdes[f"discriminator.{DELTA}"], rtol=1e-12,
                               atol=0)
    assert np.abs(gdes[f"discriminator.{DELTA}"]).max() > 0
    assert f"discriminator.{WORD}" not in es and f"discriminator.{DELTA}" not in es
    assert set(nes) - set(es) == {f"discriminator.{WORD}"}
    np.testing.assert_allclose(nes[f"generator.{WORD}"] + nes[f"discriminator.{WORD}"], es[f"generator.{WORD}"],
                               rtol=0, atol=1e-12 * np.abs(es[f"generator.{WORD}"]).max())


def test_masking_rates_and_special_tokens():
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 1000, size=(64, 200))
    ids[:, 0], ids[:, -1] = 1, 2
    candidates = (ids > 3)
    masked, selected = mask_tokens(ids, candidates, rng, mask_id=1000, random_ids=np.arange(4, 1000))
    assert (selected.sum(axis=1) == round(0.15 * 198)).all()
    assert not selected[:, [0, -1]].any() and (masked[~selected] == ids[~selected]).all()
    share_mask = (masked[selected] == 1000).mean()
    changed = (masked[selected] != ids[selected]) & (masked[selected] != 1000)
    assert abs(share_mask - 0.8) < 0.03 and abs(changed.mean() - 0.1) < 0.02  # 10% random (a few hit the original)


def test_sampling_is_seeded_follows_the_softmax_and_skips_special_tokens():
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]] * 20000))
    a = sample_tokens(logits, np.random.default_rng(7), forbidden=[0])
    b = sample_tokens(logits, np.random.default_rng(7), forbidden=[0])
    np.testing.assert_array_equal(a, b)
    assert not np.any(a == 0)
    np.testing.assert_allclose(np.bincount(a, minlength=4)[1:] / len(a), [2 / 9, 3 / 9, 4 / 9], atol=0.015)
