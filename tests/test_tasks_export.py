"""``tasks export`` on a tiny random model: float16 folders that the four commands run, with honest cards."""
import json
import re
import struct

import numpy as np
import pytest

from minideberta.apps.cli.main import main
from minideberta.apps.wordnet_tasks import cli as tasks_cli
from minideberta.apps.wordnet_tasks import export as tasks_export
from minideberta.apps.wordnet_tasks.compare import read_rows
from minideberta.tokenizer.deberta_tokenizer import DebertaV2Tokenizer
from tiny_model import tiny_model_folder

from conftest import REPO

SAMPLE = REPO / "tasks" / "sample"
RUNS = {"classify": ["a dog: a domestic animal.", "A dog is a kind of animal."], "tokens": ["The dog barked."],
        "qa": ["--question", "What is a dog?", "--context", "cat: a feline. dog: a canine."],
        "choose": ["dog", "a canine", "a feline"]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    model = tiny_model_folder(tmp / "tiny")
    code = tasks_cli.main(["export", "--data", str(SAMPLE), "--output", str(tmp / "out"), "--model", str(model),
                           "--max-steps", "2", "--eval-every", "1", "--warmup-steps", "0", "--batch-size", "4",
                           "--train-size", "12", "--dev-size", "6", "--test-size", "6"])
    assert code == 0
    return tmp / "out"


def safetensors_dtypes(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}


@pytest.mark.parametrize("command", list(tasks_export.HEADS))
def test_each_head_is_a_float16_folder_its_command_runs_with_a_card_that_tells_the_truth(exported, command, capsys):
    task, cls, metric_name, metric = tasks_export.HEADS[command]
    folder = exported / f"tiny-{task}"
    assert safetensors_dtypes(folder / "model.safetensors") == {"F16"}
    card = (folder / "README.md").read_text()
    stated = float(re.search(r"test .*: \*\*([0-9.]+)\*\*", card).group(1))
    model = cls.from_pretrained(folder, dtype=np.float32)  # float16 weights, float32 compute: as the commands
    tokenizer = DebertaV2Tokenizer.from_pretrained(folder)
    rows = read_rows(SAMPLE, task, "test", 6, 1234)
    data, _ = tasks_export.ENCODE[command](tokenizer, rows, 128)
    assert stated == pytest.approx(metric(model, data), abs=5e-5)  # recomputed from the saved folder
    assert "tasks export --data" in card and "hypernymy" not in card or task == "hypernymy"
    code = main([command, str(folder), *RUNS[command]])
    out, err = capsys.readouterr()
    assert code == 0, err
    if command == "tokens":
        assert set(re.findall(r"\b(NOUN|VERB|ADJ|ADV|O)\b", out)) <= set(tasks_export.TAGS) and "dog" in out


def test_pos_labels_sit_on_each_words_first_token():
    tokenizer = DebertaV2Tokenizer.from_pretrained(REPO / "weights" / "minideberta-v3-tiny")
    row = {"text": "The dogs barked.", "spans": [[0, 3], [4, 8], [9, 15], [15, 16]],
           "tags": ["O", "NOUN", None, "O"]}
    data, id2label = tasks_export.encode_tokens(tokenizer, [row], 32)
    enc = tokenizer(row["text"], return_offsets_mapping=True)
    labelled = {int(i): id2label[int(data["labels"][0, i])] for i in np.flatnonzero(data["labels"][0] >= 0)}
    firsts = {}
    for (start, _), tag in zip(row["spans"], row["tags"]):
        first = next(i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > start and i > 0)
        if tag is not None:
            firsts[first] = tag
    assert labelled == firsts and len(labelled) == 3
