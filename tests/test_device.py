"""The GPU path is device-true, proven on the CPU with fakecupy (tests/fakecupy), CuPy's rules simulated.

Proves: every head (and EMD, nGiE, dropout) gives the NumPy path's numbers on the device, forward and
backward, with outputs and gradients on the device; AdamW steps, clipping and the training loop
match; the pipelines give the same answers; checkpoints move between devices; a forward and an
optimizer step read back only a few scalars; one np.asarray put back on device data fails; and the
device errors say what is missing. What this cannot prove (speed, CuPy's own kernels) needs a GPU:
``python -m minideberta bench --device gpu``.
"""
import numpy as np
import pytest

from minideberta import (
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForReplacedTokenDetection,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
    DebertaV2Model,
    backend,
    ops,
)
from minideberta.apps.train.loop import train
from minideberta.masked_lm import POSITIONS
from minideberta.optim import AdamW, check_finite, clip_grad_norm

import fakecupy

V3 = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
          max_position_embeddings=64, relative_attention=True, position_buckets=8, max_relative_positions=-1,
          share_att_key=True, pos_att_type="p2c|c2p", norm_rel_ebd="layer_norm", position_biased_input=False,
          type_vocab_size=0, layer_norm_eps=1e-7, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
NGIE = {**V3, "conv_kernel_size": 3, "conv_act": "gelu", "share_att_key": False, "type_vocab_size": 2}


@pytest.fixture(autouse=True)
def device_is_fakecupy():
    backend.use_device_module("fakecupy")
    yield
    backend.use_device_module("cupy")


def on_host(x):
    assert isinstance(x, fakecupy.ndarray), f"expected a device array, got {type(x)}"
    return backend.to_numpy(x)


def batch(rng, b=3, n=12, vocab=300):
    ids = rng.integers(5, vocab, size=(b, n))
    mask = np.ones((b, n), dtype=np.int64)
    mask[1, 9:] = 0
    mask[2, 5:] = 0
    return ids, mask


def pair(cls, config, **kwargs):
    cpu = cls(DebertaV2Config(**config), seed=0, dtype=np.float64, **kwargs)
    gpu = cls(DebertaV2Config(**config), seed=0, dtype=np.float64, device="gpu")
    return cpu, gpu


def test_fakecupy_keeps_cupys_rules():
    a = fakecupy.asarray(np.arange(3.0))
    with pytest.raises(fakecupy.DeviceError):
        np.asarray(a)
    with pytest.raises(fakecupy.DeviceError):
        a + np.ones(3)
    with pytest.raises(fakecupy.DeviceError):
        np.stack([a, a])
    with pytest.raises(fakecupy.DeviceError):
        a[np.array([0, 1])]
    assert isinstance(a * 2.0 + np.float64(1), fakecupy.ndarray)  # scalars mix, as in CuPy
    np.testing.assert_array_equal(backend.to_numpy(a), [0.0, 1.0, 2.0])


HEADS = [
    (DebertaV2Model, {}, None),
    (DebertaV2ForMaskedLM, {}, "mlm"),
    (DebertaV2ForSequenceClassification, {"num_labels": 3}, "seq"),
    (DebertaV2ForTokenClassification, {"num_labels": 5}, "tok"),
    (DebertaV2ForQuestionAnswering, {"num_labels": 2}, "qa"),
    (DebertaV2ForReplacedTokenDetection, {}, "rtd"),
]


def labels_for(kind, rng, ids, mask):
    if kind == "mlm":
        return {"labels": np.where((rng.random(ids.shape) < 0.4) & (mask == 1), ids, -100)}
    if kind == "seq":
        return {"labels": rng.integers(0, 3, ids.shape[0])}
    if kind == "tok":
        return {"labels": np.where(mask == 1, rng.integers(0, 5, ids.shape), -100)}
    if kind == "qa":
        return {"start_positions": np.array([1, 2, 3]), "end_positions": np.array([4, 8, 4])}
    return {"labels": rng.integers(0, 2, ids.shape)}


@pytest.mark.parametrize("arch", ["v3", "nGiE"])
@pytest.mark.parametrize("cls,extra,kind", HEADS, ids=[h[0].__name__ for h in HEADS])
def test_every_head_forward_and_backward_on_the_device(cls, extra, kind, arch):
    config = {**(V3 if arch == "v3" else NGIE), **extra}
    cpu, gpu = pair(cls, config)
    rng = np.random.default_rng(0)
    ids, mask = batch(rng)
    inputs = dict(input_ids=ids, attention_mask=mask)
    if arch == "nGiE":
        inputs["token_type_ids"] = rng.integers(0, 2, ids.shape) * mask
    out_cpu = cpu(**inputs, output_hidden_states=True)
    out_gpu = gpu(**inputs, output_hidden_states=True)  # NumPy inputs: the model moves them itself
    field = "last_hidden_state" if kind is None else ("start_logits" if kind == "qa" else "logits")
    np.testing.assert_allclose(on_host(out_gpu[field]), out_cpu[field], rtol=1e-12, atol=1e-12)
    assert all(isinstance(h, fakecupy.ndarray) for h in out_gpu.hidden_states)
    if kind is None:
        d = rng.normal(size=out_cpu.last_hidden_state.shape) * mask[..., None]
        g_cpu, g_gpu = cpu.backward(d), gpu.backward(backend.to_device(d, "gpu"))
    else:
        targets = labels_for(kind, rng, ids, mask)
        out_cpu, out_gpu = cpu(**inputs, **targets), gpu(**inputs, **targets)
        np.testing.assert_allclose(float(out_gpu.loss), float(out_cpu.loss), rtol=1e-12)
        g_cpu, g_gpu = cpu.backward(), gpu.backward()
    assert g_gpu.keys() == g_cpu.keys()
    for name in g_cpu:
        np.testing.assert_allclose(on_host(g_gpu[name]), g_cpu[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_multiple_choice_and_inputs_embeds_on_the_device():
    cpu, gpu = pair(DebertaV2ForMultipleChoice, V3)
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 300, size=(2, 3, 10))
    labels = np.array([0, 2])
    out_cpu, out_gpu = cpu(ids, labels=labels), gpu(backend.to_device(ids, "gpu"), labels=labels)
    np.testing.assert_allclose(on_host(out_gpu.logits), out_cpu.logits, rtol=1e-12)
    g_cpu, g_gpu = cpu.backward(), gpu.backward()
    name = "deberta.encoder.layer.0.attention.self.query_proj.weight"
    np.testing.assert_allclose(on_host(g_gpu[name]), g_cpu[name], rtol=1e-10)
    embeds = rng.normal(size=(2, 3, 10, 32))
    cpu(inputs_embeds=embeds, labels=labels)
    gpu(inputs_embeds=backend.to_device(embeds, "gpu"), labels=labels)
    np.testing.assert_allclose(on_host(gpu.backward().inputs_embeds), cpu.backward().inputs_embeds, rtol=1e-10)


EMD_GRADS = (POSITIONS, "deberta.encoder.layer.1.attention.self.key_proj.weight", "deberta.encoder.rel_embeddings.weight")


def emd_models(**overrides):
    """A masked LM holding the EMD's position table on the host, and the same weights on the device."""
    config = DebertaV2Config(**{**V3, **overrides}, legacy=False)
    cpu = DebertaV2ForMaskedLM(config, seed=0, dtype=np.float64)
    cpu.params[POSITIONS] = np.random.default_rng(2).normal(size=(64, 32)) * 0.02
    return cpu, DebertaV2ForMaskedLM(config, dtype=np.float64, params=dict(cpu.params), device="gpu")


def assert_emd_grads_match(g_gpu, g_cpu):
    for name in EMD_GRADS:
        np.testing.assert_allclose(on_host(g_gpu[name]), g_cpu[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_emd_on_the_device():
    cpu, gpu = emd_models()
    rng = np.random.default_rng(3)
    ids, mask = batch(rng)
    labels = np.where(mask == 1, ids, -100)
    out_cpu, out_gpu = cpu(ids, mask, labels=labels, emd=True), gpu(ids, mask, labels=labels, emd=True)
    np.testing.assert_allclose(on_host(out_gpu.logits), out_cpu.logits, rtol=1e-12, atol=1e-12)
    assert_emd_grads_match(gpu.backward(), cpu.backward())


def test_emd_on_the_chosen_rows_on_the_device():
    """Pre-training's generator decodes the masked positions only (emd.forward_rows): same loss and gradients."""
    from minideberta.apps.pretrain.rtd import generator_backward, generator_forward

    cpu, gpu = emd_models(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(4)
    ids, mask = batch(rng)
    selected = (rng.random(ids.shape) < 0.3) & (mask == 1)
    (loss_cpu, logits_cpu), cache_cpu = generator_forward(cpu, ids, mask, selected, ids)
    (loss_gpu, logits_gpu), cache_gpu = generator_forward(gpu, ids, mask, selected, ids)
    np.testing.assert_allclose(on_host(logits_gpu), logits_cpu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(float(loss_gpu), float(loss_cpu), rtol=1e-12)
    assert_emd_grads_match(generator_backward(gpu, 1.0, cache_gpu), generator_backward(cpu, 1.0, cache_cpu))


def test_dropout_draws_on_the_device_reproducibly():
    cpu, gpu = pair(DebertaV2ForSequenceClassification, {**V3, "num_labels": 3})
    ids, mask = batch(np.random.default_rng(4))
    first = on_host(gpu.train(seed=7)(ids, mask).logits)
    again = on_host(gpu.train(seed=7)(ids, mask).logits)
    np.testing.assert_array_equal(first, again)
    assert isinstance(gpu.rng.random(3), fakecupy.ndarray)  # the masks are drawn on the device
    assert not np.allclose(first, on_host(gpu.eval()(ids, mask).logits))  # dropout was on
    # fakecupy's generator is NumPy's: here (only) the two devices draw the same masks.
    np.testing.assert_allclose(first, cpu.train(seed=7)(ids, mask).logits, rtol=1e-12)


def test_adamw_clipping_and_checks_on_the_device_match_the_host():
    cpu, gpu = pair(DebertaV2ForSequenceClassification, {**V3, "num_labels": 3})
    opt_cpu, opt_gpu = AdamW(cpu.params, lr=1e-2), AdamW(gpu.params, lr=1e-2)
    rng = np.random.default_rng(5)
    ids, mask = batch(rng)
    labels = rng.integers(0, 3, 3)
    for _ in range(3):
        cpu(ids, mask, labels=labels)
        gpu(ids, mask, labels=labels)
        g_cpu, g_gpu = cpu.backward(), gpu.backward()
        assert clip_grad_norm(g_gpu, 0.5) == pytest.approx(clip_grad_norm(g_cpu, 0.5), rel=1e-12)
        check_finite(gpu(ids, mask, labels=labels).loss, g_gpu, gpu.params)
        opt_cpu.step(g_cpu)
        opt_gpu.step(g_gpu)
    for name in cpu.params:
        np.testing.assert_allclose(on_host(gpu.params[name]), cpu.params[name], rtol=1e-10, atol=1e-13, err_msg=name)
        assert isinstance(opt_gpu.exp_avg[name], fakecupy.ndarray)


def test_few_host_reads_per_forward_backward_and_step():
    _, gpu = pair(DebertaV2ForTokenClassification, {**V3, "num_labels": 5})
    ids, mask = batch(np.random.default_rng(6))
    ids, mask = backend.to_device(ids, "gpu"), backend.to_device(mask, "gpu")
    labels = backend.to_device(np.where(backend.to_numpy(mask) == 1, 1, -100), "gpu")
    opt = AdamW(gpu.params, lr=1e-3)
    fakecupy.SYNCS["count"] = 0
    gpu(ids, mask, labels=labels)
    forward = fakecupy.SYNCS["count"]
    grads = gpu.backward()
    backward = fakecupy.SYNCS["count"] - forward
    clip_grad_norm(grads, 1.0)
    opt.step(grads)
    step = fakecupy.SYNCS["count"] - forward - backward
    # The input checks read the smallest and largest id and a few mask/label facts; nothing per layer.
    assert forward <= 8, forward
    assert backward == 0, backward
    assert step <= 1, step  # the global norm, read once; AdamW itself reads nothing


def test_one_numpy_call_on_device_data_is_caught(monkeypatch):
    """If somebody puts back an np.asarray on device data (here in LayerNorm), the device test fails."""
    _, gpu = pair(DebertaV2Model, V3)
    original = ops.layer_norm_forward

    def leaking(p, x, eps):
        np.asarray(x)  # the bug: an implicit device-to-host copy
        return original(p, x, eps)

    monkeypatch.setattr("minideberta.embeddings.layer_norm_forward", leaking)
    with pytest.raises(fakecupy.DeviceError, match="implicit conversion"):
        gpu(np.array([[5, 6, 7]]))


def test_models_move_and_checkpoints_cross_devices(tmp_path):
    cpu = DebertaV2ForSequenceClassification(DebertaV2Config(**V3, num_labels=3), seed=0, dtype=np.float32)
    ids = np.array([[5, 6, 7, 8]])
    expected = cpu(ids).logits
    opt = AdamW(cpu.params)
    cpu.to("gpu", optimizer=opt)
    assert all(isinstance(v, fakecupy.ndarray) for v in cpu.params.values())
    assert all(isinstance(v, fakecupy.ndarray) for v in opt.exp_avg.values())
    assert opt.params is cpu.params
    # float32 GELU: the device uses the exact erf, NumPy float32 a rational approximation (|error| < 7e-7).
    np.testing.assert_allclose(on_host(cpu(ids).logits), expected, rtol=1e-5, atol=1e-8)
    cpu.save_pretrained(tmp_path / "from-gpu")  # written from the device
    back = DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "from-gpu")
    np.testing.assert_array_equal(back(ids).logits, expected)
    on_gpu = DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "from-gpu", device="gpu")
    np.testing.assert_allclose(on_host(on_gpu(ids).logits), expected, rtol=1e-5, atol=1e-8)
    cpu.to("cpu", optimizer=opt)
    assert all(type(v) is np.ndarray for v in list(cpu.params.values()) + list(opt.exp_avg_sq.values()))
    with pytest.raises(ValueError, match="not built on this model's params"):
        cpu.to("gpu", optimizer=AdamW(dict(cpu.params)))


def test_training_loop_on_the_device_matches_the_host(tmp_path):
    rng = np.random.default_rng(8)
    data = {"input_ids": rng.integers(5, 300, size=(8, 10)), "attention_mask": np.ones((8, 10), dtype=np.int64),
            "labels": rng.integers(0, 3, 8)}
    histories = []
    for device in ("cpu", "gpu"):
        model = DebertaV2ForSequenceClassification(DebertaV2Config(**V3, num_labels=3), seed=0, dtype=np.float64,
                                                   device=device)
        history = train(model, data, steps=3, batch_size=4, lr=1e-3, eval_set=data, seed=0, progress=False,
                        checkpoint_dir=tmp_path / device)
        histories.append(history)
        assert all(isinstance(v, fakecupy.ndarray) for v in model.params.values()) == (device == "gpu")
    cpu, gpu = histories
    np.testing.assert_allclose(gpu.train["loss"], cpu.train["loss"], rtol=1e-10)
    np.testing.assert_allclose(gpu.eval["loss"], cpu.eval["loss"], rtol=1e-10)
    assert gpu.train["loss"][-1] != gpu.train["loss"][0]  # it trained


def test_pipelines_on_the_device(checkpoints):
    from minideberta.apps.inference.pipelines import classify, fill_mask, replaced_tokens
    from minideberta.loading import load_model

    runs = {"mlm": ("masked-lm", lambda m, t: fill_mask(m, t, "Paris is the [MASK] of France.", 3)),
            "rtd": ("replaced-token-detection", lambda m, t: replaced_tokens(m, t, "The chef cooked the meal.")),
            "nli": ("sequence-classification", lambda m, t: classify(m, t, "A man plays.", "Someone plays."))}
    for folder, (head, run) in runs.items():
        cpu, tok = load_model(checkpoints[folder], head, np.dtype(np.float64))
        gpu = type(cpu)(cpu.config, dtype=np.float64, params=dict(cpu.params), device="gpu")
        assert _same(run(gpu, tok), run(cpu, tok))


def _same(a, b):
    """Pipeline results (nested dicts/lists of str and float) equal, floats to 1e-9."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
        return True
    assert a == b
    return True


def test_device_errors_say_what_is_missing():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        DebertaV2Model(DebertaV2Config(**V3), device="tpu")
    backend.use_device_module("cupy_that_is_not_installed")
    with pytest.raises(ValueError, match="pip install cupy-cuda12x"):
        DebertaV2Model(DebertaV2Config(**V3), device="gpu")


def test_gpu_bench_correctness_check_runs_and_passes():
    """The first half of ``bench --device gpu``, here on fakecupy: every head within its tolerance."""
    from minideberta.apps.bench import gpu as bench_gpu

    lines = []
    rows = bench_gpu.check(report=lines.append)
    assert len(rows) == 2 * 2 * len(bench_gpu.HEAD_CLASSES)
    assert all(r["max_rel_error"] <= r["tolerance"] for r in rows)
    float64 = [r["max_rel_error"] for r in rows if r["dtype"] == "float64"]
    assert max(float64) < 1e-12  # fakecupy computes with NumPy: float64 agrees to round-off
    assert all(line.endswith("OK") for line in lines)


def test_the_command_line_on_the_device(capsys, checkpoints):
    """``fill-mask --device gpu`` end to end (on fakecupy): the same answer as on the CPU. In float64: in
    float32 the device's GELU takes the exact erf and NumPy's a rational approximation (see above), so the
    scores differ by ~1e-7 by design."""
    import json

    from minideberta.apps.cli.main import main

    answers = []
    for device in ("cpu", "gpu"):
        assert main(["fill-mask", str(checkpoints["mlm"]), "Paris is the [MASK] of France.", "--json",
                     "--device", device, "--dtype", "float64"]) == 0
        answers.append(json.loads(capsys.readouterr().out))
    assert _same(answers[1], answers[0])


def test_cupy_without_a_gpu_says_so(monkeypatch):
    """CuPy installed on a machine without a GPU: the error says that, not that CuPy is missing."""
    import sys
    import types

    runtime = types.SimpleNamespace(getDeviceCount=lambda: 0)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime)))
    backend.use_device_module("cupy")
    with pytest.raises(ValueError, match="CuPy is installed but this machine has no GPU"):
        backend.device_module()
