"""``tasks export``: fine-tune one head per task and write small float16 model folders with a model card.

    python -m minideberta tasks export --data /work/runs/tasks --output weights

| command | head | task | metric |
| --- | --- | --- | --- |
| ``classify`` | sequence classification | ``hypernymy`` (premise, hypothesis: entailment or not) | accuracy |
| ``tokens`` | token classification | ``pos`` (a word's first token carries its tag) | accuracy over scored words |
| ``qa`` | question answering | ``qa`` (the answer's first and last token) | exact match |
| ``choose`` | multiple choice | ``choice`` (a lemma and four definitions) | accuracy |

Each starts from ``--model``'s encoder with a fresh head, is fine-tuned with early stopping on dev
(``finetune.finetune``), evaluated on test, and saved in float16 as ``OUTPUT/<model>-<task>/``
with the tokenizer and a ``README.md`` card (data, splits, test score, the reproducing command). The
scores are those of the saved float16 weights computed in float32, as the commands run them (NumPy
has no fast float16 matrix product).
"""
import json
import shlex
import warnings
from pathlib import Path

import numpy as np

from ...config import DebertaV2Config
from ...tasks import (
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)
from ...tokenizer.deberta_tokenizer import DebertaV2Tokenizer
from ..train.cli import tokenize
from . import finetune as ft
from .build import POS_TAG
from .compare import read_splits

# command -> (task, model class, metric name, metric)
HEADS = {"classify": ("hypernymy", DebertaV2ForSequenceClassification, "accuracy", ft.accuracy_of),
         "tokens": ("pos", DebertaV2ForTokenClassification, "accuracy over scored words", ft.token_accuracy_of),
         "qa": ("qa", DebertaV2ForQuestionAnswering, "exact match", ft.exact_match_of),
         "choose": ("choice", DebertaV2ForMultipleChoice, "accuracy", ft.accuracy_of)}
TAGS = tuple(POS_TAG.values()) + ("O",)


def encode_classify(tokenizer, rows, max_length):
    lookup = {"entailment": 0, "not_entailment": 1}
    return tokenize(tokenizer, rows, lookup, max_length), {0: "entailment", 1: "not_entailment"}


def encode_tokens(tokenizer, rows, max_length):
    """Each word's first token gets the word's tag; every other token, and untagged words, -100."""
    enc = tokenizer([row["text"] for row in rows], padding=True, truncation=True, max_length=max_length,
                    return_offsets_mapping=True, return_tensors="np")
    labels = np.full(enc["input_ids"].shape, -100, dtype=np.int64)
    for r, row in enumerate(rows):
        offsets = enc["offset_mapping"][r]
        token = 1  # after [CLS]
        for (start, _), tag in zip(row["spans"], row["tags"]):
            while token < len(offsets) and offsets[token][1] <= start:
                token += 1
            if token < len(offsets) and enc["attention_mask"][r, token] and tag is not None:
                labels[r, token] = TAGS.index(tag)
    data = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    data["labels"] = labels
    return data, dict(enumerate(TAGS))


def encode_qa(tokenizer, rows, max_length):
    """The answer's first and last context token; a row whose answer is cut off by ``max_length`` is dropped."""
    enc = tokenizer([row["question"] for row in rows], [row["context"] for row in rows], padding=True,
                    truncation="only_second", max_length=max_length, return_offsets_mapping=True, return_tensors="np")
    keep, starts, ends = [], [], []
    for r, row in enumerate(rows):
        a = row["answers"]["answer_start"][0]
        b = a + len(row["answers"]["text"][0])
        context = [i for i, s in enumerate(enc.sequence_ids(r)) if s == 1]
        first = [i for i in context if enc["offset_mapping"][r, i, 1] > a]
        last = [i for i in context if enc["offset_mapping"][r, i, 0] < b]
        if first and last and enc["offset_mapping"][r, context[-1], 1] >= b:
            keep.append(r)
            starts.append(first[0])
            ends.append(last[-1])
    data = {k: enc[k][keep] for k in ("input_ids", "attention_mask", "token_type_ids")}
    data["start_positions"], data["end_positions"] = np.array(starts), np.array(ends)
    return data, None


def encode_choose(tokenizer, rows, max_length):
    n, c = len(rows), len(rows[0]["choices"])
    enc = tokenizer([row["prompt"] for row in rows for _ in row["choices"]],
                    [choice for row in rows for choice in row["choices"]], padding=True, truncation=True,
                    max_length=max_length, return_tensors="np")
    data = {k: enc[k].reshape(n, c, -1) for k in ("input_ids", "attention_mask", "token_type_ids")}
    data["labels"] = np.array([row["label"] for row in rows], dtype=np.int64)
    return data, None


ENCODE = {"classify": encode_classify, "tokens": encode_tokens, "qa": encode_qa, "choose": encode_choose}


def start_model(cls, model_dir, id2label, seed):
    config = DebertaV2Config.from_pretrained(model_dir)
    if id2label is not None:
        config = DebertaV2Config.from_dict({**config.to_dict(), "id2label": id2label})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a new head and an unused RTD head: expected
        return cls.from_pretrained(model_dir, dtype=np.float32, config=config, new_head=True, seed=seed)


def export_head(command, args, report=print):
    """Fine-tune, test and save one head; return its card's numbers."""
    task, cls, metric_name, metric = HEADS[command]
    tokenizer = DebertaV2Tokenizer.from_pretrained(args.model)
    rows = read_splits(args.data, task, args.train_size, args.dev_size, args.test_size)
    data, id2label = {}, None
    for split, split_rows in rows.items():
        data[split], id2label = ENCODE[command](tokenizer, split_rows, args.max_length)
    model = start_model(cls, args.model, id2label, args.seed)
    report(f"{command} ({task}): {len(data['train']['input_ids'])} training examples")
    curve, best = ft.finetune(model, data["train"], data["dev"], seed=args.seed, lr=args.lr,
                              batch_size=args.batch_size, max_steps=args.max_steps, eval_every=args.eval_every,
                              patience=args.patience, warmup_steps=args.warmup_steps, metric=metric, report=report)
    folder = Path(args.output) / f"{Path(args.model).name}-{task}"
    model.save_pretrained(folder)
    cls.from_pretrained(folder, dtype=np.float16).save_pretrained(folder)  # the shipped copy: float16 weights
    tokenizer.save_pretrained(folder)
    shipped = cls.from_pretrained(folder, dtype=np.float32)  # scored as the commands run it: float32 compute
    scores = {split: metric(shipped, data[split]) for split in ("dev", "test")}
    numbers = {"command": command, "task": task, "metric": metric_name, "best_step": best, **scores,
               "examples": {split: len(d["input_ids"]) for split, d in data.items()}, "curve": curve}
    (folder / "README.md").write_text(card(folder, args, numbers), encoding="utf-8")
    (folder / "training.json").write_text(json.dumps(numbers, indent=1) + "\n", encoding="utf-8")
    report(f"  {folder}: test {metric_name} {scores['test']:.4f} (float16 weights)")
    return numbers


def card(folder, args, n):
    sizes = ", ".join(f"{split} {count}" for split, count in n["examples"].items())
    return "\n".join([
        f"# {folder.name}: `{n['command']}` on the WordNet `{n['task']}` task", "",
        f"`{Path(args.model).name}`'s encoder with a {HEADS[n['command']][1].__name__} head, fine-tuned by "
        f"minideberta and stored in float16. Try it: `python -m minideberta {n['command']} {folder.name} ...` "
        f"(`python -m minideberta {n['command']} --help` has an example).", "",
        f"- data: the `{n['task']}` task of `python -m minideberta tasks build` (tasks/README.md: WordNet 3.0's "
        f"synsets that the pre-training corpus leaves out, split by a hash of the synset), from `{args.data}`;",
        f"- examples used: {sizes};",
        f"- test {n['metric']}: **{n['test']:.4f}** (dev {n['dev']:.4f}): the float16 weights of the best dev "
        f"checkpoint (step {n['best_step']}), computed in float32 as the commands do;",
        f"- settings: lr {args.lr}, batch {args.batch_size}, at most {args.max_steps} steps, evaluation every "
        f"{args.eval_every}, patience {args.patience}, warm-up {args.warmup_steps}, seed {args.seed}, "
        f"max length {args.max_length};",
        "- reproduce: `python -m minideberta tasks export " + " ".join(shlex.quote(a) for a in args.argv) + "`;",
        "- licence: the model is the repository's; the data is derived from WordNet 3.0, under the WordNet 3.0 "
        "licence (its text, which asks to be reproduced with derived work, is in the repository's "
        "tasks/README.md).",
        "", "`training.json` holds the dev curve.", ""])
