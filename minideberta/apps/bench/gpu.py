"""``python -m minideberta bench --device gpu``: the GPU path checked against NumPy, then timed against torch.

1. Correctness: every head, on a small v3 model and a small v2 model with the nGiE convolution, run on
   the GPU and on the CPU with the same weights and inputs (padded batch): float64 must agree to 1e-10
   relative, float32 to 1e-5, logits and every gradient.
2. Speed: float32 forward and forward+backward of a randomly initialised v3-base at (8, 128) and
   (32, 512), minideberta on CuPy against transformers in torch eager mode on the same GPU, TF32 off on
   both (CuPy: ``CUPY_TF32=0``; torch: ``allow_tf32 = False``), medians of ``repeats`` timed passes after
   one warm-up, the device synchronised around each; peak GPU memory of the pass (torch: its allocator's
   peak; CuPy: its memory pool's size after the pass, emptied before, which the pool grows to its peak).

Nothing here runs without CuPy and a GPU except the correctness check, which the tests run on the CPU
with fakecupy (tests/fakecupy). The report says which GPU it ran on.
"""
import os
import time

import numpy as np

from ... import backend
from .model import SIZES, minideberta_pass, transformers_pass

HEAD_CLASSES = ("DebertaV2Model", "DebertaV2ForMaskedLM", "DebertaV2ForSequenceClassification",
                "DebertaV2ForTokenClassification", "DebertaV2ForQuestionAnswering", "DebertaV2ForReplacedTokenDetection")
SMALL = {"v3": dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                    max_position_embeddings=128, relative_attention=True, position_buckets=16, max_relative_positions=-1,
                    share_att_key=True, pos_att_type="p2c|c2p", norm_rel_ebd="layer_norm", position_biased_input=False,
                    type_vocab_size=0, layer_norm_eps=1e-7, num_labels=3),
         "v2-nGiE": dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=128, relative_attention=True,
                         position_buckets=16, max_relative_positions=-1, share_att_key=False, pos_att_type="p2c|c2p",
                         norm_rel_ebd="layer_norm", position_biased_input=False, conv_kernel_size=3, conv_act="gelu",
                         layer_norm_eps=1e-7, num_labels=3)}
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
GPU_SHAPES = ((8, 128), (32, 512))


def _relative(ours, reference):
    ours, reference = backend.to_numpy(ours).astype(np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-30))


def check(report=print):
    """Compare every head on the GPU (float64 and float32) with the NumPy float64 path; returns rows and
    raises AssertionError on a mismatch. Gradients that are zero in exact arithmetic (a key bias, which
    the softmax cancels) are round-off on both sides and are not compared."""
    import minideberta

    rng = np.random.default_rng(0)
    ids = rng.integers(5, 1000, size=(3, 40))
    mask = np.ones_like(ids)
    mask[1, 25:] = 0
    rows = []
    for arch, config in SMALL.items():
        for name in HEAD_CLASSES:
            cls = getattr(minideberta, name)
            labels = 2 if name.endswith("QuestionAnswering") else config["num_labels"]
            reference = cls(minideberta.DebertaV2Config(**{**config, "num_labels": labels}), seed=0, dtype=np.float64)
            expected = reference(ids, mask)
            field = next(k for k in ("logits", "start_logits", "last_hidden_state") if expected.get(k) is not None)
            d = rng.normal(size=expected[field].shape) * (mask[..., None] if field == "last_hidden_state" else 1)
            upstream = (d, d) if name.endswith("QuestionAnswering") else d
            g_ref = reference.backward(upstream)
            scale = max(float(np.abs(g).max()) for g in g_ref.values())
            for dtype, tolerance in TOLERANCE.items():
                gpu = cls(reference.config, dtype=dtype, device="gpu",
                          params={k: v.astype(dtype) for k, v in reference.params.items()})
                out = gpu(ids, mask)
                move = lambda a, dtype=dtype: backend.to_device(np.asarray(a, dtype=dtype), "gpu")  # noqa: E731
                g_gpu = gpu.backward(tuple(move(u) for u in upstream) if isinstance(upstream, tuple) else move(upstream))
                error = max([_relative(out[field], expected[field])]
                            + [_relative(g_gpu[k], g) for k, g in g_ref.items() if np.abs(g).max() > 1e-6 * scale])
                rows.append(dict(arch=arch, dtype=np.dtype(dtype).name, head=name, max_rel_error=error,
                                 tolerance=tolerance))
                report(f"  {arch:8} {np.dtype(dtype).name:8} {name:38} {error:9.2e}  (tolerance {tolerance:.0e}) "
                       f"{'OK' if error <= tolerance else 'MISMATCH'}")
    bad = [r for r in rows if r["max_rel_error"] > r["tolerance"]]
    if bad:
        raise AssertionError(f"{len(bad)} GPU results differ from the NumPy float64 path beyond tolerance: {bad[:3]}")
    return rows


def _time(run, synchronize, repeats):
    run()
    synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_minideberta(batch, length, mode, repeats):
    import cupy

    import minideberta

    config = minideberta.DebertaV2Config(**SIZES["v3-base"], hidden_dropout_prob=0, attention_probs_dropout_prob=0)
    model = minideberta.DebertaV2Model(config, dtype=np.float32, device="gpu")
    ids = cupy.asarray(np.random.default_rng(0).integers(0, 128000, (batch, length)))
    dout = cupy.asarray(np.random.default_rng(1).normal(size=(batch, length, 768)).astype(np.float32))
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    seconds = _time(minideberta_pass(model, ids, dout, mode), cupy.cuda.Device().synchronize, repeats)
    return seconds, pool.total_bytes() / 2**20


def time_torch(batch, length, mode, repeats):
    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = transformers.DebertaV2Config(**SIZES["v3-base"], hidden_dropout_prob=0, attention_probs_dropout_prob=0)
    model = transformers.DebertaV2Model(config).cuda().eval()
    ids = torch.tensor(np.random.default_rng(0).integers(0, 128000, (batch, length))).cuda()
    dout = torch.randn(batch, length, 768, device="cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    seconds = _time(transformers_pass(model, ids, dout, mode), torch.cuda.synchronize, repeats)
    return seconds, torch.cuda.max_memory_allocated() / 2**20


def run(shapes=GPU_SHAPES, repeats=10, reference=True, report=print):
    """The correctness check, then the timings; returns {"check": rows, "timings": rows}."""
    os.environ.setdefault("CUPY_TF32", "0")
    xp = backend.device_module()  # a ValueError saying what is missing, without CuPy or a GPU
    name = xp.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    report(f"GPU: {name}; CuPy {xp.__version__}")
    report("1. the GPU path against the NumPy path (same weights, padded batch; logits and every gradient):")
    checked = check(report)
    from .verify import reference_installed

    reference = reference and reference_installed()
    report(f"2. v3-base float32, TF32 off, median of {repeats}: minideberta (CuPy) "
           + ("vs transformers (torch eager, same GPU)" if reference else "alone (no torch/transformers)"))
    rows = []
    for batch, length in shapes:
        for mode in ("forward", "forward_backward"):
            md_s, md_mib = time_minideberta(batch, length, mode, repeats)
            row = dict(batch=batch, length=length, mode=mode, minideberta_s=md_s, minideberta_peak_mib=md_mib)
            line = f"  {batch}x{length:<4} {mode:16} minideberta {md_s * 1e3:8.2f} ms {md_mib:8.0f} MiB"
            if reference:
                hf_s, hf_mib = time_torch(batch, length, mode, repeats)
                row.update(torch_s=hf_s, torch_peak_mib=hf_mib, ratio=md_s / hf_s)
                line += f" | torch {hf_s * 1e3:8.2f} ms {hf_mib:8.0f} MiB | ratio {md_s / hf_s:5.2f}"
            report(line)
            rows.append(row)
    return {"gpu": name, "check": checked, "timings": rows}
