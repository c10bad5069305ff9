"""``tasks compare`` and its pieces: the baselines, early stopping, the files it writes."""
import csv
import json
from collections import Counter

import numpy as np
import pytest

from minideberta import DebertaV2Config, DebertaV2ForSequenceClassification
from minideberta.apps.wordnet_tasks import cli as tasks_cli
from minideberta.apps.wordnet_tasks import finetune as ft
from tiny_model import tiny_model_folder

from conftest import REPO

SAMPLE = REPO / "tasks" / "sample"


def test_logistic_regression_separates_separable_data_and_l2_shrinks_the_weights():
    rng = np.random.default_rng(0)
    X = (rng.random((300, 20)) < 0.3).astype(np.float32)
    y = X[:, :3].argmax(1) * (X[:, :3].max(1) > 0)  # the first present of three marker words, else 0
    W, b = ft.logistic_regression(X, y, 3, l2=1e-5, seed=0, epochs=60)
    assert ((X @ W + b).argmax(1) == y).mean() >= 0.98  # the majority class is 0.58
    W_strong, _ = ft.logistic_regression(X, y, 3, l2=1.0, seed=0, epochs=60)
    assert np.abs(W_strong).sum() < 0.2 * np.abs(W).sum()


def test_majority_and_bag_of_words_features():
    assert ft.majority(["a", "b", "b"], ["b", "a", "b", "b"]) == 0.75
    X, vocabulary = ft.bag_of_words(["The dog, the DOG.", "a dog", "a cat"])
    assert sorted(vocabulary) == ["a", "dog"]  # words in at least two of the texts ("the": one text, twice)
    assert X.tolist() == [[0, 1], [1, 1], [1, 0]]


def test_finetune_stops_after_patience_and_keeps_the_best_dev_parameters():
    config = DebertaV2Config(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, max_position_embeddings=16, num_labels=2)
    model = DebertaV2ForSequenceClassification(config, seed=0)
    rng = np.random.default_rng(0)
    data = {"input_ids": rng.integers(4, 30, (8, 6)), "attention_mask": np.ones((8, 6), dtype=np.int64),
            "labels": rng.integers(0, 2, 8)}
    scores, snapshots = iter([0.5, 0.7, 0.6, 0.65, 0.69, 0.9]), []

    def metric(model, dev):
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        return next(scores)

    curve, best = ft.finetune(model, data, data, seed=0, lr=1e-2, batch_size=4, max_steps=60, eval_every=2,
                              patience=3, metric=metric, report=lambda line: None)
    assert [p["step"] for p in curve] == [2, 4, 6, 8, 10] and best == 4  # 0.6, 0.65, 0.69: three without gain
    assert all(np.array_equal(model.params[k], snapshots[1][k]) for k in model.params)
    assert not np.array_equal(model.params["classifier.weight"], snapshots[-1]["classifier.weight"])


def test_the_command_writes_results_summary_curves_figure_and_readme(tmp_path):
    model = tiny_model_folder(tmp_path / "tiny")
    out = tmp_path / "out"
    code = tasks_cli.main(["compare", "--data", str(SAMPLE), "--output", str(out), "--model", str(model),
                           "--seeds", "0", "1", "--max-steps", "2", "--eval-every", "1", "--warmup-steps", "0",
                           "--batch-size", "4", "--train-size", "40", "--dev-size", "10"])
    assert code == 0
    results = list(csv.DictReader((out / "results.csv").open()))
    assert Counter(r["method"] for r in results) == {m: 2 for m in ("majority", "bag-of-words", "random-init",
                                                                   "pretrained")}
    train = [json.loads(line) for line in (SAMPLE / "topic" / "train.jsonl").open()]
    test = [json.loads(line)["label"] for line in (SAMPLE / "topic" / "test.jsonl").open()]
    rows = sorted(np.random.default_rng(1234).choice(len(train), 40, replace=False))
    majority = Counter(train[i]["label"] for i in rows).most_common(1)[0][0]
    for r in results:
        assert 0 <= float(r["test_accuracy"]) <= 1
        if r["method"] == "majority":
            assert float(r["test_accuracy"]) == pytest.approx(np.mean([y == majority for y in test]), abs=1e-4)
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [s["method"] for s in summary] == ["majority", "bag-of-words", "random-init", "pretrained"]
    curves = list(csv.DictReader((out / "curves.csv").open()))
    assert len(curves) == 8 and {c["step"] for c in curves} == {"1", "2"}
    readme = (out / "README.md").read_text()
    assert "| pretrained | 2 |" in readme and "tasks compare --data" in readme
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
