"""``python -m minideberta bench pretrain``: one pre-training step, minideberta against torch, in tokens/s.

The step is the whole of DeBERTaV3's replaced-token detection at the shipped shapes
(``pretrain/rtd.py``: ``Pretrainer.step``): dynamic masking, the generator's forward with the Enhanced
Mask Decoder and its MLM head on the masked rows, sampling, the discriminator's forward,
L_MLM + 50 L_RTD, both backwards, GDES embedding sharing, clipping to the global norm, and one
AdamW update of every parameter.

The torch step is the same computation with transformers' layers and autograd (its masking puts
``[MASK]`` at every selected position, about 15% of the tokens, where minideberta's keeps 10% and
randomises 10%: the same work): the generator is
``DebertaV2ForMaskedLM``'s backbone with its last layer applied twice more with absolute-position
queries (the EMD, as Microsoft's code does it) and transformers' MLM head on the masked rows; the
discriminator is ``DebertaV2Model`` with a dense-GELU-LayerNorm-dense head; E_D = E_G.detach() +
E_Delta; ``torch.nn.utils.clip_grad_norm_`` and ``torch.optim.AdamW``. Both use float32.

Each implementation runs in a fresh child process with the same number of threads (torch's
intra-op threads; NumPy's BLAS through ``OPENBLAS_NUM_THREADS``), one warm-up step, then
``repeats`` timed steps; the report gives the median and tokens/s = batch x length / median.
The children run without ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``, as ``bench`` does.
"""
import json
import os
import subprocess
import sys

import numpy as np

from .model import PINNED_BLAS, measure

# The shipped pair's shapes (weights/minideberta-v3-tiny*/config.json) and its run's batch; --hidden etc. override.
SHIPPED = dict(vocab=12001, hidden=256, layers=4, generator_layers=2, heads=4, batch=16, length=128)


def batch_ids(vocab, batch, length, seed=0):
    ids = np.random.default_rng(seed).integers(4, vocab - 1, size=(batch, length))
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS] ... [SEP], packed as in pre-training
    return ids


def child_minideberta(shape, repeats):
    from ...optim import AdamW, clip_grad_norm
    from ..pretrain.cli import build_models, model_configs
    from ..pretrain.rtd import Pretrainer

    g_config, d_config = model_configs(shape["vocab"], shape["hidden"], shape["layers"], shape["generator_layers"],
                                       shape["heads"])
    pretrainer = Pretrainer(*build_models(g_config, d_config), mask_id=shape["vocab"] - 1)
    optimizer = AdamW(pretrainer.params, lr=1e-4, weight_decay=0.01)
    ids = batch_ids(shape["vocab"], shape["batch"], shape["length"])
    mask, rng = np.ones_like(ids), np.random.default_rng(0)

    def step():
        _, grads, _ = pretrainer.step(ids, mask, rng)
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)

    return measure(step, repeats)[0]  # the median seconds (bench/model.py; the memory peak is not reported)


def child_torch(shape, repeats):
    import torch
    import transformers

    torch.manual_seed(0)
    base = dict(vocab_size=shape["vocab"], hidden_size=shape["hidden"], num_attention_heads=shape["heads"],
                intermediate_size=4 * shape["hidden"], max_position_embeddings=256, relative_attention=True,
                position_buckets=64, norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
                layer_norm_eps=1e-7, position_biased_input=False, type_vocab_size=0, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, max_relative_positions=-1)
    gen = transformers.DebertaV2ForMaskedLM(transformers.DebertaV2Config(
        **base, num_hidden_layers=shape["generator_layers"]))
    disc = transformers.DebertaV2Model(transformers.DebertaV2Config(**base, num_hidden_layers=shape["layers"]))
    D = shape["hidden"]
    head = torch.nn.Sequential(torch.nn.Linear(D, D), torch.nn.GELU(), torch.nn.LayerNorm(D, eps=1e-7),
                               torch.nn.Linear(D, 1))
    positions = torch.nn.Embedding(256, D)  # the EMD's absolute position table
    delta = torch.nn.Parameter(torch.zeros_like(gen.deberta.embeddings.word_embeddings.weight))
    disc.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for m in (gen, disc, head, positions) for p in m.parameters() if p.requires_grad] + [delta]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.tensor(batch_ids(shape["vocab"], shape["batch"], shape["length"]))
    mask = torch.ones_like(ids)
    special = torch.tensor([0, 1, 2, 3, shape["vocab"] - 1])
    gen_enc, sample_rng = gen.deberta.encoder, torch.Generator().manual_seed(0)

    def step():
        selected = (torch.rand(ids.shape, generator=sample_rng) < 0.15) & ~torch.isin(ids, special)
        masked = torch.where(selected, shape["vocab"] - 1, ids)
        out = gen.deberta(masked, attention_mask=mask, output_hidden_states=True)
        hidden = out.hidden_states[-2]
        ext = gen_enc.get_attention_mask(mask)
        rel_pos, rel_emb = gen_enc.get_rel_pos(hidden), gen_enc.get_rel_embedding()
        query = hidden + positions(torch.arange(ids.shape[1]))[None]
        for _ in range(2):  # the EMD: the last layer twice, absolute-position queries
            query = gen_enc.layer[-1](hidden, ext, query_states=query, relative_pos=rel_pos,
                                      rel_embeddings=rel_emb)[0]
        logits = gen.cls(query[selected])
        mlm = torch.nn.functional.cross_entropy(logits, ids[selected])
        probs = torch.softmax(logits.detach().index_fill(1, special, -torch.inf), dim=-1)
        replaced = ids.clone()
        replaced[selected] = torch.multinomial(probs, 1, generator=sample_rng)[:, 0]
        labels = (replaced != ids).float()
        embedded = torch.nn.functional.embedding(replaced, gen.deberta.embeddings.word_embeddings.weight.detach()
                                                 + delta)
        z = head(disc(inputs_embeds=embedded, attention_mask=mask).last_hidden_state)[..., 0]
        rtd = torch.nn.functional.binary_cross_entropy_with_logits(z, labels)
        optimizer.zero_grad(set_to_none=True)
        (mlm + 50 * rtd).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    return measure(step, repeats)[0]  # the median seconds (bench/model.py; the memory peak is not reported)


def add_arguments(parser, positive):
    """The options of ``bench pretrain`` (the parser of ``cli/main.py``; ``positive`` its check of a positive integer)."""
    for name, default in (("vocab", "ids"), ("hidden", "width"), ("layers", "discriminator layers"),
                          ("generator-layers", "generator layers"), ("heads", "attention heads"),
                          ("batch", "sequences a step"), ("length", "tokens a sequence")):
        parser.add_argument(f"--{name}", type=positive, help=f"{default}; default: the shipped pair's shapes")
    parser.add_argument("--threads", nargs="+", type=positive, default=[1], help="thread counts to time (default 1)")
    parser.add_argument("--repeats", type=positive, default=5, help="timed steps; the median is reported (default 5)")
    parser.add_argument("--no-reference", action="store_true", help="time minideberta alone, without torch")


def run_child(impl, shape, repeats, threads):
    env = {k: v for k, v in os.environ.items() if k not in PINNED_BLAS}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), BENCH_THREADS=str(threads))
    cmd = [sys.executable, "-m", "minideberta.apps.bench.pretrain", impl, json.dumps(shape), str(repeats)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {impl} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(shape=None, repeats=5, threads=(1,), reference=True, report=print):
    """Median seconds per step and tokens/s for each thread count; rows of results."""
    from .verify import reference_installed

    shape = {**SHIPPED, **(shape or {})}
    reference = reference and reference_installed()
    tokens = shape["batch"] * shape["length"]
    report(f"pre-training step at {json.dumps(shape)}: {tokens} tokens a step, median of {repeats}")
    if not reference:
        report("note: torch/transformers not installed (or --no-reference): timing minideberta alone")
    rows = []
    for n in threads:
        md = run_child("minideberta", shape, repeats, n)
        row = dict(threads=n, minideberta_s=md, minideberta_tokens_per_s=tokens / md)
        line = f"threads {n}: minideberta {md:.3f} s ({tokens / md:.0f} tokens/s)"
        if reference:
            hf = run_child("torch", shape, repeats, n)
            row.update(torch_s=hf, torch_tokens_per_s=tokens / hf, ratio=md / hf)
            line += f", torch {hf:.3f} s ({tokens / hf:.0f} tokens/s), time ratio {md / hf:.2f}"
        rows.append(row)
        report(line)
    report("time ratio = minideberta / torch (below 1: minideberta is faster)")
    return rows


if __name__ == "__main__":  # a benchmark child: impl shape-json repeats
    impl, shape, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    print(json.dumps((child_minideberta if impl == "minideberta" else child_torch)(shape, repeats)))
