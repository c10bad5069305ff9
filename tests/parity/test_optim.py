"""minideberta.optim against torch and transformers, on plain arrays, in float64.

- AdamW: the same parameters and moments as ``torch.optim.AdamW`` after every step, with a
  decayed and an undecayed group and a learning rate changed between steps;
- the no-decay rule: the same split of a DeBERTa model's parameters as transformers' Trainer;
- the schedule: the same learning rate as ``get_linear_schedule_with_warmup`` at every step;
- clipping: the same norm and gradients as ``torch.nn.utils.clip_grad_norm_``;
- a saved and reloaded optimizer continues exactly; senseless settings and NaNs raise clearly.
"""
import math

import numpy as np
import pytest
import torch
import transformers

from minideberta.optim import AdamW, LinearWarmupSchedule, check_finite, clip_grad_norm, global_norm, no_decay_default

SHAPES = {"layer.dense.weight": (5, 4), "layer.dense.bias": (5,), "layer.LayerNorm.weight": (5,),
          "layer.LayerNorm.bias": (5,), "embeddings.weight": (7, 5)}


def random_arrays(rng, scale=1.0):
    return {name: scale * rng.standard_normal(shape) for name, shape in SHAPES.items()}


def rel_error(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("betas, no_decay", [((0.9, 0.999), no_decay_default), ((0.3, 0.6), None)],
                         ids=["default-betas-groups", "small-betas-all-decay"])
def test_adamw_matches_torch_step_by_step(betas, no_decay):
    rng = np.random.default_rng(0)
    params = random_arrays(rng)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    decayed = [k for k in SHAPES if no_decay is None or not no_decay(k)]
    groups = [{"params": [tensors[k] for k in decayed], "weight_decay": 0.1},
              {"params": [tensors[k] for k in SHAPES if k not in decayed], "weight_decay": 0.0}]
    reference = torch.optim.AdamW(groups, lr=0.05, betas=betas, eps=1e-6)
    ours = AdamW(params, lr=0.05, betas=betas, eps=1e-6, weight_decay=0.1, no_decay=no_decay)
    for step in range(6):
        lr = 0.05 if step < 3 else 0.02  # a schedule changes lr between steps
        ours.lr = lr
        for group in reference.param_groups:
            group["lr"] = lr
        grads = random_arrays(rng, scale=10.0 ** (step % 3 - 1))  # gradients of changing size
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        reference.step()
        ours.step(grads)
        for k, t in tensors.items():
            state = reference.state[t]
            assert rel_error(params[k], t.detach().numpy()) < 1e-13, (step, k)
            assert rel_error(ours.exp_avg[k], state["exp_avg"].numpy()) < 1e-13, (step, k)
            assert rel_error(ours.exp_avg_sq[k], state["exp_avg_sq"].numpy()) < 1e-13, (step, k)
    assert ours.t == 6


def test_no_decay_rule_is_transformers_trainers():
    config = transformers.DebertaV2Config(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=32, relative_attention=True, position_buckets=8,
                                          norm_rel_ebd="layer_norm", pos_att_type=["p2c", "c2p"])
    model = transformers.DebertaV2ForSequenceClassification(config)
    # get_decay_parameter_names does not use the Trainer instance, only the model.
    decayed = set(transformers.Trainer.get_decay_parameter_names(None, model))
    names = [name for name, _ in model.named_parameters()]
    assert any("LayerNorm" in n for n in names) and any(n.endswith("bias") for n in names)
    assert {n for n in names if not no_decay_default(n)} == decayed


@pytest.mark.parametrize("total, warmup", [(10, 3), (7, 0), (5, 5), (1, 0), (4, 1)])
def test_schedule_matches_transformers(total, warmup):
    base_lr = 3e-4
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    reference = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)
    schedule = LinearWarmupSchedule(total, warmup)
    for step in range(total + 3):  # past the end the multiplier stays 0
        assert base_lr * schedule(step) == reference.get_last_lr()[0], step
        optimizer.step()
        reference.step()


@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clips", "leaves"])
def test_clip_grad_norm_matches_torch(max_norm):
    grads = random_arrays(np.random.default_rng(1))
    tensors = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    reference_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    norm = clip_grad_norm(grads, max_norm)
    assert abs(norm - reference_norm.item()) <= 1e-14 * norm
    for t, g in zip(tensors, grads.values()):
        assert rel_error(g, t.grad.numpy()) < 1e-14
    assert global_norm(grads) == pytest.approx(min(norm, max_norm), rel=1e-5)


def test_state_dict_continues_exactly():
    rng = np.random.default_rng(2)
    start = random_arrays(rng)
    grads = [random_arrays(rng) for _ in range(5)]
    straight = {k: v.copy() for k, v in start.items()}
    opt = AdamW(straight, lr=0.01)
    for g in grads:
        opt.step(g)

    resumed = {k: v.copy() for k, v in start.items()}
    first = AdamW(resumed, lr=0.01)
    for g in grads[:3]:
        first.step(g)
    state = first.state_dict()
    first.exp_avg["layer.dense.weight"] += 1  # the state holds copies, not the live moments
    second = AdamW(resumed, lr=0.5, weight_decay=0.3)  # hyper-parameters come from the state
    second.load_state_dict(state)
    for g in grads[3:]:
        second.step(g)
    assert second.t == 5 and second.lr == 0.01 and second.weight_decay == 0.01
    for k in start:
        np.testing.assert_array_equal(resumed[k], straight[k])


@pytest.mark.parametrize("kwargs, words", [
    ({"lr": 0}, "lr=0.0"), ({"lr": -1e-3}, "lr=-0.001"), ({"lr": math.nan}, "lr=nan"), ({"lr": math.inf}, "lr=inf"),
    ({"betas": (1.0, 0.999)}, "beta1=1.0"), ({"betas": (0.9, -0.1)}, "beta2=-0.1"), ({"betas": (0.9,)}, "pair"),
    ({"eps": 0.0}, "eps=0.0"), ({"weight_decay": -0.01}, "weight_decay=-0.01"),
])
def test_adamw_rejects_senseless_settings(kwargs, words):
    with pytest.raises(ValueError, match=words):
        AdamW(random_arrays(np.random.default_rng(0)), **kwargs)


def test_adamw_rejects_bad_lr_and_grads_later():
    params = random_arrays(np.random.default_rng(0))
    opt = AdamW(params)
    with pytest.raises(ValueError, match="lr=nan"):
        opt.lr = math.nan
    with pytest.raises(TypeError, match="lr must be a number"):
        opt.lr = "1e-3"
    grads = random_arrays(np.random.default_rng(1))
    del grads["layer.dense.bias"]
    with pytest.raises(ValueError, match="missing.*layer.dense.bias"):
        opt.step(grads)
    grads["layer.dense.bias"] = np.zeros(4)
    with pytest.raises(ValueError, match="layer.dense.bias has shape"):
        opt.step(grads)


@pytest.mark.parametrize("total, warmup, words", [
    (0, 0, "total_steps=0"), (-5, 0, "total_steps=-5"), (10, 11, "warmup_steps=11"), (10, -1, "warmup_steps=-1"),
])
def test_schedule_rejects_senseless_settings(total, warmup, words):
    with pytest.raises(ValueError, match=words):
        LinearWarmupSchedule(total, warmup)


def test_schedule_and_clip_reject_wrong_types_and_values():
    with pytest.raises(TypeError, match="integer"):
        LinearWarmupSchedule(10.5)
    with pytest.raises(ValueError, match="max_norm=0.0"):
        clip_grad_norm(random_arrays(np.random.default_rng(0)), 0)


def test_check_finite_names_the_first_bad_gradient_and_parameter():
    rng = np.random.default_rng(0)
    params, grads = random_arrays(rng), random_arrays(rng)
    check_finite(np.float64(0.5), grads, params)  # all finite: no error

    grads["layer.LayerNorm.bias"][:2] = np.nan  # third in params order
    grads["layer.LayerNorm.bias"][3] = np.inf
    grads["embeddings.weight"][0, 0] = np.nan  # fifth
    with pytest.raises(FloatingPointError) as error:
        check_finite(np.float64(0.5), grads, params, step=7)
    message = str(error.value)
    assert "at step 7: the loss is 0.5" in message
    assert "2 of 5 gradients" in message and "'layer.LayerNorm.bias' (2 NaN, 1 inf of 5 values)" in message

    params["layer.dense.bias"][1] = np.nan
    with pytest.raises(FloatingPointError, match=r"the loss is nan(.|\n)*parameter\(s\) hold NaN/inf; the first is "
                                                 r"'layer.dense.bias' \(1 NaN, 0 inf"):
        check_finite(np.float64(np.nan), grads, params)

