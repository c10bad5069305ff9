"""``python -m minideberta bench``: time minideberta against transformers in the same run.

Every measurement runs in a fresh child process, so one implementation's memory and threads
never affect the other's (in one process, torch's OpenMP threads and NumPy's OpenBLAS threads
spin against each other): the child builds a randomly initialised model of an official v3
shape, resets the kernel's peak-memory counter, runs one warm-up pass and ``repeats`` timed
passes, and reports their median time and the peak resident memory *above the loaded model*
(activations, caches, gradients and temporaries; the weights are the same size in both).

The children run without ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (the report says so when
they were set): those variables pin NumPy's BLAS to an older kernel, which torch does not use.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

from .verify import reference_installed

# The official v3 shapes (config.json of microsoft/deberta-v3-xsmall and -base).
V3 = dict(vocab_size=128100, max_position_embeddings=512, relative_attention=True, position_buckets=256,
          norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p", layer_norm_eps=1e-7,
          max_relative_positions=-1, position_biased_input=False, type_vocab_size=0, hidden_act="gelu")
SIZES = {"v3-xsmall": dict(V3, hidden_size=384, num_attention_heads=6, num_hidden_layers=12, intermediate_size=1536),
         "v3-base": dict(V3, hidden_size=768, num_attention_heads=12, num_hidden_layers=12, intermediate_size=3072)}
SHAPES = ((1, 128), (8, 128), (1, 512))
PINNED_BLAS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def rss_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def reset_peak_memory():
    """Make VmHWM (peak resident memory) restart from the current use (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(run, repeats):
    """Median seconds of ``run()`` after one warm-up call, and the peak MiB above the start.

    The peak counts from before the warm-up: memory an allocator keeps after the first pass
    would otherwise hide what the pass needed.
    """
    reset_peak_memory()
    start = rss_kib("VmRSS")
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), (rss_kib("VmHWM") - start) / 1024


def random_ids(vocab_size, batch, length):
    return np.random.default_rng(0).integers(0, min(vocab_size, 128000), (batch, length))


def minideberta_pass(model, ids, dout, mode):
    """The pass to time: "forward" under no_grad, or "forward_backward" from the upstream ``dout``."""
    from ... import no_grad

    def forward():
        with no_grad():
            model(ids)

    def forward_backward():
        model(ids)
        model.backward(dout)

    return forward if mode == "forward" else forward_backward


def transformers_pass(model, ids, dout, mode):
    """The same pass of a transformers model (torch eager)."""
    import torch

    def forward():
        with torch.no_grad():
            model(ids)

    def forward_backward():
        model(ids).last_hidden_state.backward(dout)
        model.zero_grad(set_to_none=True)

    return forward if mode == "forward" else forward_backward


def child_minideberta(size, batch, length, mode, repeats):
    from ... import DebertaV2Config, DebertaV2Model

    model = DebertaV2Model(DebertaV2Config(**SIZES[size], hidden_dropout_prob=0, attention_probs_dropout_prob=0))
    ids = random_ids(model.config.vocab_size, batch, length)
    dout = np.random.default_rng(1).normal(size=(batch, length, model.config.hidden_size)).astype(np.float32)
    return measure(minideberta_pass(model, ids, dout, mode), repeats)


def child_transformers(size, batch, length, mode, repeats):
    import torch
    import transformers

    config = transformers.DebertaV2Config(**SIZES[size], hidden_dropout_prob=0, attention_probs_dropout_prob=0)
    model = transformers.DebertaV2Model(config).eval()
    ids = torch.tensor(random_ids(config.vocab_size, batch, length))
    dout = torch.randn(batch, length, config.hidden_size)
    return measure(transformers_pass(model, ids, dout, mode), repeats)


def run_child(impl, size, batch, length, mode, repeats):
    env = {k: v for k, v in os.environ.items() if k not in PINNED_BLAS}
    cmd = [sys.executable, "-m", "minideberta.apps.bench.model", impl, size, str(batch), str(length), mode, str(repeats)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {' '.join(cmd[2:])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(sizes=tuple(SIZES), shapes=SHAPES, backward=False, repeats=5, reference=True, report=print):
    """Time the forward (and with ``backward`` the forward+backward) of each size and shape.

    Returns a list of result rows; ``report`` receives the human-readable lines.
    """
    pinned = [k for k in PINNED_BLAS if k in os.environ]
    if pinned:
        report(f"note: benchmark children run without {', '.join(pinned)} (set here), which would pin "
               "NumPy's OpenBLAS to an older CPU kernel")
    reference = reference and reference_installed()
    if not reference:
        report("note: torch/transformers not installed (or --no-reference): timing minideberta alone")
    modes = ["forward"] + (["forward_backward"] if backward else [])
    rows = []
    report(f"{'model':10} {'shape':>8} {'pass':>16} {'minideberta':>12} {'transformers':>13} {'ratio':>6} "
           f"{'peak MiB md/hf':>15}")
    for size in sizes:
        for batch, length in shapes:
            for mode in modes:
                md_time, md_mem = run_child("minideberta", size, batch, length, mode, repeats)
                row = dict(model=size, batch=batch, length=length, mode=mode, minideberta_s=md_time,
                           minideberta_peak_mib=md_mem)
                if reference:
                    hf_time, hf_mem = run_child("transformers", size, batch, length, mode, repeats)
                    row.update(transformers_s=hf_time, transformers_peak_mib=hf_mem, ratio=md_time / hf_time)
                rows.append(row)
                hf = (f"{row['transformers_s']:12.3f}s {row['ratio']:6.2f} {md_mem:7.0f}/{row['transformers_peak_mib']:<7.0f}"
                      if reference else f"{'-':>13} {'-':>6} {md_mem:7.0f}/-")
                report(f"{size:10} {f'{batch}x{length}':>8} {mode:>16} {md_time:11.3f}s {hf}")
    report("times are medians; ratio = minideberta / transformers (below 1: minideberta is faster); "
           "peak MiB is resident memory above the loaded model")
    return rows


if __name__ == "__main__":  # a benchmark child: impl size batch length mode repeats
    impl, size, batch, length, mode, repeats = sys.argv[1:7]
    child = child_minideberta if impl == "minideberta" else child_transformers
    print(json.dumps(child(size, int(batch), int(length), mode, int(repeats))))
