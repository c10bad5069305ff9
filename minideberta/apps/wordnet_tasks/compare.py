"""``tasks compare``: what pre-training buys on a classification task, against baselines, over seeds.

    python -m minideberta tasks build --output /work/runs/tasks
    python -m minideberta tasks compare --data /work/runs/tasks --output experiments/finetune

Four methods on the ``topic`` task (or ``hypernymy``), each with every seed:

- ``majority``: always the most frequent training label;
- ``bag-of-words``: logistic regression on binary word features (``finetune.bow_baseline``);
- ``pretrained``: the shipped discriminator's encoder with a fresh classification head, fine-tuned;
- ``random-init``: the same architecture and vocabulary from a random initialisation, fine-tuned
  with the same settings.

Fine-tuning stops early on dev accuracy (``finetune.finetune``); the test accuracy is that of
the best dev checkpoint. Written to ``--output``: ``results.csv`` (one row per method and seed),
``summary.csv`` (test mean and standard deviation over seeds), ``curves.csv`` and
``learning_curves.png`` (train loss and dev accuracy against steps), and ``README.md``.
"""
import csv
import json
import shlex
import time
from pathlib import Path

import numpy as np

from ...config import DebertaV2Config
from ...tasks import DebertaV2ForSequenceClassification
from ...tokenizer.deberta_tokenizer import DebertaV2Tokenizer
from ..train.cli import load_classifier, tokenize
from . import finetune as ft

METHODS = ("majority", "bag-of-words", "random-init", "pretrained")


def read_rows(data, task, split, size=0, seed=0):
    """The rows of ``data/task/split.jsonl``; a sample of ``size`` of them (fixed by ``seed``) if size > 0."""
    path = Path(data) / task / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the tasks first (python -m minideberta tasks build "
                                f"--output {data})")
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if 0 < size < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def text_of(row):
    return row["text"] + (" " + row["text_pair"] if row.get("text_pair") else "")


def classifier(method, model_dir, id2label, seed):
    """The fine-tuned model's starting point: the checkpoint's encoder, or the same config at random."""
    if method == "pretrained":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "initialised a new head", "does not use mask_predictions.*": expected
            return load_classifier(model_dir, id2label, np.dtype("float32"), seed)
    config = DebertaV2Config.from_dict({**DebertaV2Config.from_pretrained(model_dir).to_dict(), "id2label": id2label})
    return DebertaV2ForSequenceClassification(config, seed=seed, dtype=np.float32)


def read_splits(data, task, train_size=0, dev_size=0, test_size=0):
    """Samples of ``train_size``, ``dev_size`` and ``test_size`` rows of the three splits (0: all; fixed
    by seed 1234), by split."""
    return {split: read_rows(data, task, split, size, 1234)
            for split, size in (("train", train_size), ("dev", dev_size), ("test", test_size))}


def label_names(rows):
    """A classification task's label names, sorted, from all of its splits (a small sample of train
    may lack a label that dev or test has)."""
    return sorted({str(row["label"]) for split_rows in rows.values() for row in split_rows})


def compare(args, report=print):
    """Run every method with every seed; write the CSVs, the figure and the README; return the summary rows."""
    rows = read_splits(args.data, args.task, args.train_size, args.dev_size)
    names = label_names(rows)
    lookup, id2label = {name: i for i, name in enumerate(names)}, dict(enumerate(names))
    labels = {split: [lookup[str(row["label"])] for row in split_rows] for split, split_rows in rows.items()}
    tokenizer = DebertaV2Tokenizer.from_pretrained(args.model)
    data = {split: tokenize(tokenizer, split_rows, lookup, args.max_length) for split, split_rows in rows.items()}
    results, curves = [], []
    texts = {split: [text_of(row) for row in split_rows] for split, split_rows in rows.items()}
    for seed in args.seeds:
        results.append({"method": "majority", "seed": seed, "best_step": "", "dev_accuracy":
                        ft.majority(labels["train"], labels["dev"]),
                        "test_accuracy": ft.majority(labels["train"], labels["test"]), "seconds": 0})
        start = time.perf_counter()
        bow = ft.bow_baseline(*((texts[s], labels[s]) for s in ("train", "dev", "test")), len(names), seed)
        results.append({"method": "bag-of-words", "seed": seed, "best_step": f"l2={bow['l2']}",
                        "dev_accuracy": bow["dev"], "test_accuracy": bow["test"],
                        "seconds": round(time.perf_counter() - start, 1)})
    runs = [(method, seed, args, id2label, data) for seed in args.seeds for method in ("random-init", "pretrained")]
    if args.jobs > 1:  # one process per run: the runs are independent, and each is single-threaded NumPy
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as pool:
            done = list(pool.map(fine_tune_run, runs))
    else:
        done = [fine_tune_run(run) for run in runs]
    for result, curve in done:
        results.append(result)
        curves += curve
    summary = summarise(results)
    write(args, results, curves, summary, {split: len(r) for split, r in rows.items()})
    return summary


def fine_tune_run(run):
    """One fine-tuning run: ``(result row, curve rows)``."""
    method, seed, args, id2label, data = run
    lines = []
    start = time.perf_counter()
    model = classifier(method, args.model, id2label, seed)
    curve, best = ft.finetune(model, data["train"], data["dev"], seed=seed, lr=args.lr, batch_size=args.batch_size,
                              max_steps=args.max_steps, eval_every=args.eval_every, patience=args.patience,
                              warmup_steps=args.warmup_steps, report=lines.append)
    result = {"method": method, "seed": seed, "best_step": best, "dev_accuracy": max(p["dev"] for p in curve),
              "test_accuracy": ft.accuracy_of(model, data["test"]), "seconds": round(time.perf_counter() - start, 1)}
    print(f"{method}, seed {seed}:\n" + "\n".join(lines) + f"\n  test accuracy {result['test_accuracy']:.4f} "
          f"(best dev step {best})", flush=True)
    return result, [{"method": method, "seed": seed, **point} for point in curve]


def summarise(results):
    out = []
    for method in METHODS:
        scores = [r["test_accuracy"] for r in results if r["method"] == method]
        if scores:
            out.append({"method": method, "seeds": len(scores), "test_mean": float(np.mean(scores)),
                        "test_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
                        "test_min": min(scores), "test_max": max(scores)})
    return out


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in rows)


def plot(path, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, dev_ax) = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"pretrained": "tab:blue", "random-init": "tab:orange"}
    for (method, seed) in sorted({(c["method"], c["seed"]) for c in curves}):
        points = [c for c in curves if c["method"] == method and c["seed"] == seed]
        steps = [p["step"] for p in points]
        label = method if seed == min(c["seed"] for c in curves) else None
        loss_ax.plot(steps, [p["train_loss"] for p in points], color=colours[method], alpha=0.7, label=label)
        dev_ax.plot(steps, [p["dev"] for p in points], color=colours[method], alpha=0.7, label=label)
    loss_ax.set(xlabel="step", ylabel="train loss (mean since last evaluation)", title="training loss")
    dev_ax.set(xlabel="step", ylabel="dev accuracy", title="dev accuracy (early stopping on it)")
    loss_ax.legend()
    dev_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(args, results, curves, summary, sizes):
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    write_csv(output / "results.csv", results)
    write_csv(output / "summary.csv", summary)
    write_csv(output / "curves.csv", curves)
    plot(output / "learning_curves.png", curves)
    table = ["| method | seeds | test accuracy, mean | std | min | max |", "| --- | --- | --- | --- | --- | --- |"]
    table += [f"| {s['method']} | {s['seeds']} | {s['test_mean']:.4f} | {s['test_std']:.4f} | {s['test_min']:.4f} | "
              f"{s['test_max']:.4f} |" for s in summary]
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "data", "argv")}
    settings["model"] = Path(args.model).name
    text = ["# Fine-tuning on the WordNet tasks: what pre-training buys", "",
            f"Task `{args.task}` (built by `python -m minideberta tasks build`), examples used: "
            + ", ".join(f"{k} {v}" for k, v in sizes.items()) + ".", "",
            "Reproduce: `python -m minideberta tasks compare " + " ".join(shlex.quote(a) for a in args.argv) + "`", "",
            *table, "", f"Settings: `{json.dumps(settings)}`.", "",
            "Files: `results.csv` (one row per method and seed: the best dev step, dev and test accuracy, seconds), "
            "`summary.csv` (the table above), `curves.csv` and `learning_curves.png` (train loss and dev accuracy "
            "every evaluation). Test accuracy is that of the checkpoint with the best dev accuracy.", ""]
    (output / "README.md").write_text("\n".join(text), encoding="utf-8")
