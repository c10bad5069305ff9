"""``python -m minideberta train``: fine-tune a sequence classifier on examples in a text file.

The examples (.jsonl, .csv or .tsv with "text", "label" and maybe "text_pair") are tokenized
with the model folder's spm.model, the labels mapped to ids, and ``train.train`` runs the loop.
"""
import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ...checkpoints.hub import resolve_model
from ...config import DebertaV2Config
from ...tasks import DebertaV2ForSequenceClassification
from ...tokenizer.deberta_tokenizer import DebertaV2Tokenizer
from ..cli.errors import OneLineParser
from .loop import INPUT_KEYS, train

EXAMPLE = """example:
  python -m minideberta train minideberta-v3-tiny --data tasks/sample/topic/train.jsonl \\
      --eval-data tasks/sample/topic/dev.jsonl --output-dir topic-model --steps 4 --batch-size 8 --lr 1e-4 \\
      --warmup-steps 1 --max-length 64

data: .jsonl with one object per line, or .csv/.tsv with a header row; columns "text",
"label" and optionally "text_pair". Labels are integers, or names (mapped to ids in sorted order
unless the model's config.json lists them in id2label). MODEL_DIR holds config.json, the weights
and spm.model; a missing classification head (a pre-trained checkpoint) is initialised fresh.
The output folder gets checkpoint-<step>/ folders, then the final model, spm.model and history.json."""


def read_examples(path):
    """Rows of a .jsonl / .csv / .tsv file as dicts, with text, label and maybe text_pair."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file" + (" (it is a folder)" if path.is_dir() else "")
                                + "; pass a .jsonl, .csv or .tsv file of examples (see `minideberta train --help`)")
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            rows = [_json_line(path, n, line) for n, line in enumerate(f, 1) if line.strip()]
    elif path.suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        raise ValueError(f"{path}: the data must be a .jsonl, .csv or .tsv file")
    for i, row in enumerate(rows):
        if "text" not in row or "label" not in row:
            raise ValueError(f"{path}, example {i + 1}: it needs the columns 'text' and 'label', has {sorted(row)}")
    if not rows:
        raise ValueError(f"{path} holds no examples")
    return rows


def _json_line(path, n, line):
    try:
        row = json.loads(line)
    except ValueError as error:
        raise ValueError(f"{path}, line {n} is not JSON ({error}): a .jsonl file holds one JSON object "
                         "per line") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}, line {n} holds a JSON {type(row).__name__}, not an object with 'text' and 'label'")
    return row


def label_ids(rows, config):
    """``(id2label, lookup)``: the label names by id, and the id of each label as written in the data
    (as a string). The config's names if they cover the data; else integers stand for themselves;
    else the names get ids in sorted order."""
    labels = {str(row["label"]) for row in rows}
    if labels <= set(config.label2id):
        return dict(config.id2label), {str(name): i for name, i in config.label2id.items()}
    if all(label.isdigit() for label in labels):
        ids = range(max(int(label) for label in labels) + 1)
        return {i: config.id2label.get(i, f"LABEL_{i}") for i in ids}, {str(i): i for i in ids}
    names = sorted(labels)
    return dict(enumerate(names)), {name: i for i, name in enumerate(names)}


def load_classifier(model_dir, id2label, dtype, seed, device="cpu"):
    """A DebertaV2ForSequenceClassification with the encoder of ``model_dir`` and, where the
    checkpoint has none for these labels, a freshly initialised head."""
    config = DebertaV2Config.from_pretrained(model_dir)
    config = DebertaV2Config.from_dict({**config.to_dict(), "id2label": id2label})
    return DebertaV2ForSequenceClassification.from_pretrained(model_dir, dtype=dtype, config=config,
                                                              new_head=True, seed=seed, device=device)


def tokenize(tokenizer, rows, lookup, max_length):
    """The dataset dict of ``rows``: the tokenizer's arrays plus the label ids."""
    pairs = [row.get("text_pair") for row in rows]
    encoded = tokenizer([row["text"] for row in rows], None if all(p is None for p in pairs) else pairs,
                        padding=True, truncation=True, max_length=max_length, return_tensors="np")
    unknown = sorted({str(row["label"]) for row in rows} - set(lookup))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} do not occur in the training data (known: {sorted(lookup)})")
    data = {k: encoded[k] for k in INPUT_KEYS if k in encoded}
    data["labels"] = np.array([lookup[str(row["label"])] for row in rows], dtype=np.int64)
    return data


def summary(history, output):
    """What a run did, for people: steps, last training loss, the last evaluation, where the model is."""
    train = history.train
    lines = [f"trained {train['step'][-1]} steps ({train['epoch'][-1]:.2f} epochs), training loss "
             f"{train['loss'][0]:.4f} at step 1 -> {train['loss'][-1]:.4f} at step {train['step'][-1]}"]
    if history.eval["step"]:
        results = ", ".join(f"{key} {values[-1]:.4f}" for key, values in history.eval.items() if key != "step")
        lines.append(f"evaluation at step {history.eval['step'][-1]}: {results}")
    lines.append(f"model, tokenizer and history.json saved to {output}")
    return "\n".join(lines)


def main(argv=None):
    """``minideberta train``: fine-tune a sequence classifier on a text file (``--help`` for an example)."""
    parser = OneLineParser(prog="minideberta train", epilog=EXAMPLE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Fine-tune DebertaV2ForSequenceClassification with AdamW.")
    parser.add_argument("model_dir", help="folder with config.json, model weights and spm.model, or a shipped "
                                          "model's name (minideberta-v3-tiny)")
    parser.add_argument("--data", required=True, help="training examples (.jsonl, .csv or .tsv)")
    parser.add_argument("--eval-data", help="evaluation examples, same format")
    parser.add_argument("--output-dir", required=True)
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int)
    length.add_argument("--epochs", type=float)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grad-accum-steps", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--save-every", type=int)
    parser.add_argument("--resume-from", help="a checkpoint-<step> folder of an earlier run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float16", "float32", "float64"), default="float32")
    parser.add_argument("--detect-anomalies", action="store_true", help="stop at the first NaN/inf")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where to train (gpu: CuPy)")
    args = parser.parse_args(argv)
    args.model_dir = resolve_model(args.model_dir)  # a folder, or a shipped model's bare name

    tokenizer = DebertaV2Tokenizer.from_pretrained(args.model_dir)
    train_rows = read_examples(args.data)
    eval_rows = read_examples(args.eval_data) if args.eval_data else None
    id2label, lookup = label_ids(train_rows, DebertaV2Config.from_pretrained(args.model_dir))
    model = load_classifier(args.model_dir, id2label, np.dtype(args.dtype), args.seed, args.device)
    history = train(model, tokenize(tokenizer, train_rows, lookup, args.max_length),
                    None if eval_rows is None else tokenize(tokenizer, eval_rows, lookup, args.max_length),
                    steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm,
                    grad_accum_steps=args.grad_accum_steps, eval_every=args.eval_every,
                    checkpoint_dir=args.output_dir, save_every=args.save_every, resume_from=args.resume_from,
                    seed=args.seed, detect_anomalies=args.detect_anomalies, progress=not args.no_progress)
    output = Path(args.output_dir)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    (output / "history.json").write_text(json.dumps(history.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(summary(history, output))
    return 0
