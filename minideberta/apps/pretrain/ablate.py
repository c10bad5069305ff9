"""``python -m minideberta ablate``: DeBERTa's and DeBERTaV3's ablations at laptop scale.

    python -m minideberta corpus --output /work/runs/corpus          # train.txt, heldout.txt, spm.model
    python -m minideberta tasks build --output /work/runs/tasks      # the downstream task (topic)
    python -m minideberta ablate --corpus /work/runs/corpus/train.txt --tasks /work/runs/tasks \\
        --output experiments/ablations --runs /work/runs/ablations --jobs 2

Every variant is the same pre-training (``loop.pretrain``: RTD, generator + discriminator) with
one switch changed, at one small size, with the same token budget, data order, masks and seeds:

========  =================================================================  ====================
variant   what changes                                                       where in the code
========  =================================================================  ====================
full      nothing: GDES, c2p and p2c, the Enhanced Mask Decoder (generator)  --
no-c2p    ``pos_att_type="p2c"``: no content-to-position term, both models   ``attention.py``
no-p2c    ``pos_att_type="c2p"``: no position-to-content term, both models   ``attention.py``
no-emd    the generator's head reads its last layer (no absolute positions)  ``emd.py``
es        ELECTRA's embedding sharing (one table, both gradients)            ``pretrain/rtd.py``
nes       no embedding sharing (two tables)                                  ``pretrain/rtd.py``
========  =================================================================  ====================

Each run (``runs/<variant>-seed<k>/``: the pre-training checkpoint, ``history.json``, ``log.txt``, the
discriminator the fine-tuning starts from (``discriminator/``, float32),
``metrics.json``) is measured on held-out text (``evaluate.evaluate``: the generator's masked
top-1/top-5, the discriminator's RTD AUC on its own generator's samples and on random
replacements, the two losses), by the mean pairwise cosine similarity of each model's word
embeddings (DeBERTaV3's analysis of the sharing modes, at every evaluation), and downstream: the
discriminator fine-tuned on the ``topic`` task with one fixed protocol (``wordnet_tasks.finetune.finetune``,
early stopping on dev, test accuracy of the best dev checkpoint). A finished run is never redone
and a stopped one resumes from its checkpoint, so the command can be run again until it is done.
``ablate_report.py`` writes ``results.csv`` (one row per run), ``curves.csv``, ``summary.csv``
(mean, spread, and each variant against ``full`` paired by seed) and the figures.
"""
import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ... import DebertaV2Tokenizer
from ..cli.errors import OneLineParser
from ..train.cli import tokenize
from ..wordnet_tasks import finetune as ft
from ..wordnet_tasks.compare import classifier, label_names, read_splits
from . import ablate_report as report
from .cli import build_models, model_configs
from .evaluate import evaluate, token_counts
from .loop import pretrain, tokenize_file
from .rtd import WORD, Pretrainer, special_ids

VARIANTS = {"full": {}, "no-c2p": {"pos_att_type": "p2c"}, "no-p2c": {"pos_att_type": "c2p"},
            "no-emd": {"emd": False}, "es": {"sharing": "es"}, "nes": {"sharing": "nes"}}
# The size and budget of the committed results (about 9 minutes of one core per pre-training run,
# chosen by pilot runs: at 500 steps every pilot was still at the unigram plateau, the generator's
# top-1 equal to always guessing the commonest token; this size leaves it near step 800) and of
# --smoke (every variant for a few steps, seconds each).
SIZES = {"default": dict(hidden_size=128, layers=2, generator_layers=1, heads=2, position_buckets=32, batch_size=16,
                         seq_len=64, steps=2000, warmup_steps=100, lr=1e-3, eval_every=250, eval_sequences=64,
                         final_sequences=512, train_size=4000, dev_size=300, ft_steps=400, ft_batch_size=32,
                         ft_lr=3e-4, ft_eval_every=50, ft_patience=4, ft_warmup_steps=40),
         "smoke": dict(hidden_size=32, layers=2, generator_layers=1, heads=2, position_buckets=8, batch_size=4,
                       seq_len=32, steps=3, warmup_steps=1, lr=1e-3, eval_every=3, eval_sequences=4,
                       final_sequences=4, train_size=16, dev_size=8, ft_steps=2, ft_batch_size=8, ft_lr=3e-4,
                       ft_eval_every=1, ft_patience=1, ft_warmup_steps=0)}


def mean_pairwise_cosine(table, skip=()):
    """The mean cosine similarity over all pairs i != j of the rows of ``table`` (V, D), the rows in
    ``skip`` left out. With u_i = e_i / |e_i|: sum_{i != j} u_i . u_j = |sum_i u_i|^2 - V."""
    rows = np.setdiff1d(np.arange(len(table)), np.asarray(skip, dtype=np.int64))
    e = np.asarray(table[rows], dtype=np.float64)
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    total = u.sum(axis=0)
    return float((total @ total - len(u)) / (len(u) * (len(u) - 1)))


def embedding_similarity(pretrainer):
    """DeBERTaV3's analysis: the mean pairwise cosine similarity of each model's word embeddings
    (the discriminator's as it reads them: E_G + E_Delta under gdes, E_G itself under es)."""
    skip = pretrainer.special_ids
    return {"cos_generator": mean_pairwise_cosine(pretrainer.generator.params[WORD], skip),
            "cos_discriminator": mean_pairwise_cosine(pretrainer.discriminator_embeddings(), skip)}


def prepare_data(corpus, vocab, folder, seq_len):
    """The corpus's training and held-out text as packed id arrays, tokenized once into ``folder``
    (the file names carry the sequence length and a digest of the corpus and the vocabulary)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = DebertaV2Tokenizer(vocab)
    sources = (("train", corpus), ("heldout", corpus.with_name("heldout.txt")))
    for _, path in sources:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (build the corpus with python -m minideberta corpus)")
    digest = hashlib.sha256(b"".join(Path(p).read_bytes() for p in (vocab, corpus))).hexdigest()[:12]
    targets = [folder / f"{name}-{seq_len}-{digest}.npy" for name, _ in sources]
    for (_, path), target in zip(sources, targets):
        if not target.is_file():
            np.save(target, tokenize_file(tokenizer, path, seq_len).astype(np.int32))
    return targets


def topic_data(tasks, tokenizer, size):
    """The topic task's train sample, dev sample and whole test split, tokenized; and the label names."""
    rows = read_splits(tasks, "topic", size["train_size"], size["dev_size"])
    names = label_names(rows)
    lookup = {name: i for i, name in enumerate(names)}
    return {split: tokenize(tokenizer, split_rows, lookup, 128) for split, split_rows in rows.items()}, names


def run_one(job):
    """Pre-train, measure and fine-tune one (variant, seed); return its metrics (read back if done)."""
    variant, seed, size, paths = job
    folder = Path(paths["runs"]) / f"{variant}-seed{seed}"
    if (folder / "metrics.json").is_file():
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    log_file = open(folder / "log.txt", "a", encoding="utf-8")

    def log(text):
        print(text, file=log_file, flush=True)

    switches = {"sharing": "gdes", "pos_att_type": "p2c|c2p", "emd": True, **VARIANTS[variant]}
    tokenizer = DebertaV2Tokenizer(paths["vocab"])
    train_ids, heldout_ids = np.load(paths["train"]).astype(np.int64), np.load(paths["heldout"]).astype(np.int64)
    counts = token_counts(train_ids, len(tokenizer))
    g_config, d_config = model_configs(len(tokenizer), size["hidden_size"], size["layers"], size["generator_layers"],
                                       size["heads"], None, size["position_buckets"], 256, switches["pos_att_type"])
    generator, discriminator = build_models(g_config, d_config, seed, emd=switches["emd"])
    special = special_ids(tokenizer)
    pretrainer = Pretrainer(generator, discriminator, switches["sharing"], 50.0, special_ids=special,
                            mask_id=tokenizer.mask_token_id)
    resume = (folder / "checkpoint" / "trainer_state.json").is_file()
    log(f"{variant} seed {seed}: {switches}, {'resuming' if resume else 'starting'}")
    start = time.perf_counter()
    history = pretrain(pretrainer, train_ids, heldout_ids, counts, steps=size["steps"], batch_size=size["batch_size"],
                       lr=size["lr"], warmup_steps=size["warmup_steps"], seed=seed, output=folder,
                       eval_every=size["eval_every"], eval_sequences=size["eval_sequences"], checkpoint_minutes=2.0,
                       resume=resume, progress=False, log=log, extra_eval=embedding_similarity)
    (folder / "history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    final = evaluate(generator, discriminator, heldout_ids[:size["final_sequences"]], counts, special,
                     tokenizer.mask_token_id)
    pretrainer.compose()  # the discriminator's table as it was trained (gdes: E_G + E_Delta)
    model_dir = folder / "discriminator"
    discriminator.save_pretrained(model_dir)  # float32: the fine-tuning starts from exactly these weights
    data, names = topic_data(paths["tasks"], tokenizer, size)
    model = classifier("pretrained", model_dir, dict(enumerate(names)), seed)
    curve, best = ft.finetune(model, data["train"], data["dev"], seed=seed, lr=size["ft_lr"],
                              batch_size=size["ft_batch_size"], max_steps=size["ft_steps"],
                              eval_every=size["ft_eval_every"], patience=size["ft_patience"],
                              warmup_steps=size["ft_warmup_steps"], report=log)
    metrics = {"variant": variant, "seed": seed, "steps": history["train"]["step"][-1],
               "tokens": history["train"]["step"][-1] * size["batch_size"] * size["seq_len"],
               "pretrain_minutes": round(history["train"]["seconds"][-1] / 60, 2),
               **{k: final[k] for k in report.HELDOUT}, **embedding_similarity(pretrainer),
               "topic_dev": max(point["dev"] for point in curve), "topic_test": ft.accuracy_of(model, data["test"]),
               "finetune_step": best, "minutes": round((time.perf_counter() - start) / 60, 2)}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    log(f"done: {metrics}")
    log_file.close()
    return metrics


def ablate(args, echo=print):
    """Run every (variant, seed) not yet done, ``--jobs`` at a time; write the report; return the rows."""
    size = SIZES["smoke" if args.smoke else "default"]
    corpus = Path(args.corpus)
    vocab = Path(args.vocab) if args.vocab else corpus.with_name("spm.model")
    output, runs = Path(args.output), Path(args.runs) if args.runs else Path(args.output) / "runs"
    train, heldout = prepare_data(corpus, vocab, runs / "data", size["seq_len"])
    paths = {"runs": str(runs), "vocab": str(vocab), "train": str(train), "heldout": str(heldout),
             "tasks": str(args.tasks)}
    jobs = [(variant, seed, size, paths) for seed in args.seeds for variant in args.variants]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="ablation runs", unit="run", disable=args.no_progress)
    rows = []
    if args.jobs > 1:  # one process per run: the runs are independent, each single-threaded NumPy
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs) as pool:
            for future in as_completed([pool.submit(run_one, job) for job in jobs]):
                rows.append(future.result())
                bar.update(1)
    else:
        for job in jobs:
            rows.append(run_one(job))
            bar.update(1)
    bar.close()
    settings = {"size": size, "variants": list(args.variants), "seeds": list(args.seeds), "smoke": args.smoke,
                "vocab": f"{vocab} ({len(DebertaV2Tokenizer(vocab))} ids)", "corpus": str(corpus)}
    report.write(output, rows, runs, settings)
    echo(f"{len(rows)} runs; results in {output / 'results.csv'}, {output / 'summary.csv'}, figures beside them")
    return rows


def build_parser():
    parser = OneLineParser(
        prog="minideberta ablate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="DeBERTa's ablations (no c2p, no p2c, no EMD) and DeBERTaV3's embedding sharing (ES, NES "
                    "against GDES) at one small size, over seeds: held-out numbers, embedding similarity and a "
                    "downstream task per run; results.csv, summary.csv, figures.",
        epilog="examples:\n"
               "  python -m minideberta ablate --corpus /work/runs/corpus/train.txt --tasks /work/runs/tasks "
               "--output experiments/ablations --runs /work/runs/ablations --jobs 2  # takes minutes (hours: all)\n"
               "  python -m minideberta ablate --smoke --corpus /work/runs/corpus/train.txt --tasks tasks/sample "
               "--output /tmp/ablate-smoke  # takes minutes: needs the corpus")
    parser.add_argument("--corpus", required=True, help="the corpus's train.txt (heldout.txt and spm.model beside)")
    parser.add_argument("--vocab", help="sentencepiece model (default: spm.model beside --corpus)")
    parser.add_argument("--tasks", required=True, help="the folder `tasks build` wrote (its topic task)")
    parser.add_argument("--output", required=True, help="results.csv, curves.csv, summary.csv, figures")
    parser.add_argument("--runs", help="one folder per run with its checkpoint (default: OUTPUT/runs)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (default 1)")
    parser.add_argument("--smoke", action="store_true", help="a tiny size, a few steps per run: the pipeline only")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    ablate(args)
    return 0
