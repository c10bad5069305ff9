"""What a new user met (issue 24), each fixed: long fill-mask inputs, empty rtd text, rtd marks without
colour, the new_head hint, ``train``'s bare model name, summary and missing data file, weights/ truth."""
import json
import re
import subprocess

import numpy as np
import pytest

from minideberta import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification, DebertaV2Model
from minideberta.apps.cli.main import main
from minideberta.apps.inference import show

from conftest import REPO

GENERATOR = REPO / "weights" / "minideberta-v3-tiny-generator"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fill_mask_past_the_emd_position_table_is_one_line_naming_the_limit(capsys):
    text = "The cat sat on the mat. " * 60 + "[MASK]"  # more than 256 tokens
    code, out, err = run(capsys, "fill-mask", GENERATOR, text)
    assert code == 2 and out == "" and err.count("\n") == 1 and "256" in err and "IndexError" not in err
    assert run(capsys, "fill-mask", GENERATOR, text, "--emd", "off", "--top-k", 1)[0] == 0  # relative positions only


def test_the_masked_lm_refuses_more_positions_than_its_table_and_takes_as_many():
    model = DebertaV2ForMaskedLM.from_pretrained(GENERATOR)
    rows = model.config.max_position_embeddings
    assert model.resolve_emd(None) and rows == 256
    ids = np.full((1, rows + 1), 5)
    with pytest.raises(ValueError, match=f"holds {rows} .*max_length={rows}"):
        model(ids)
    with pytest.raises(ValueError, match=f"holds {rows}"):
        model(ids[:, :4], position_ids=np.array([[0, 1, 2, rows]]))
    assert model(ids[:, :rows]).logits.shape[1] == rows  # exactly the table: fine
    assert model(ids, emd=False).logits.shape[1] == rows + 1  # no absolute positions read


def test_rtd_on_an_empty_text_exits_2(capsys):
    code, out, err = run(capsys, "rtd", "minideberta-v3-tiny", "")
    assert code == 2 and out == "" and "empty" in err and err.count("\n") == 1


def test_rtd_marks_probably_replaced_tokens_in_plain_text(capsys):
    text = "Return the number of bananas in the elephant list sky."
    code, out, _ = run(capsys, "rtd", "minideberta-v3-tiny", text, "--json")
    tokens = json.loads(out)
    code, plain, _ = run(capsys, "rtd", "minideberta-v3-tiny", text)  # captured: not a terminal, no colour
    assert code == 0 and "\033[" not in plain
    lines = plain.splitlines()[1:1 + len(tokens)]
    for token, line in zip(tokens, lines):
        p = token["probability"]
        expected = "**" if p >= 0.5 else "*" if p >= 0.25 else ""
        assert line.split()[0] == token["token"] and show.mark(p) == expected
        assert (line.rstrip().endswith("*") and line.rstrip().split()[-1] == expected) or expected == ""
    assert "probably replaced" in plain


def test_a_backbone_folder_loaded_with_a_head_says_new_head(tmp_path):
    config = DebertaV2Config(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, max_position_embeddings=32)
    DebertaV2Model(config, seed=0).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="new_head=True") as error:
        DebertaV2ForSequenceClassification.from_pretrained(tmp_path)
    assert "classifier.bias" in str(error.value)
    with pytest.warns(UserWarning, match="initialised a new head"):
        model = DebertaV2ForSequenceClassification.from_pretrained(tmp_path, new_head=True)
    assert "classifier.weight" in model.params


def test_train_takes_the_bare_name_and_prints_a_summary(capsys, tmp_path):
    data = REPO / "tasks" / "sample" / "topic"
    code, out, err = run(capsys, "train", "minideberta-v3-tiny", "--data", data / "train.jsonl", "--eval-data",
                         data / "dev.jsonl", "--output-dir", tmp_path, "--steps", 2, "--batch-size", 4,
                         "--max-length", 32, "--no-progress")
    assert code == 0, err
    assert "History(" not in out and re.search(r"trained 2 steps .* -> \d\.\d{4} at step 2", out)
    assert "evaluation at step 2: loss" in out and f"saved to {tmp_path}" in out
    assert json.loads((tmp_path / "history.json").read_text())["train"]["step"] == [1, 2]


def test_train_with_a_missing_data_file_is_one_clear_line(capsys, tmp_path):
    code, out, err = run(capsys, "train", "minideberta-v3-tiny", "--data", tmp_path / "nothing.jsonl",
                         "--output-dir", tmp_path, "--steps", 1)
    assert code == 2 and err.count("\n") == 1 and "nothing.jsonl: no such data file" in err and "Errno" not in err


def test_weights_readme_and_gitignore_tell_the_truth():
    """Every committed folder of weights/ is whitelisted in .gitignore and described in weights/README.md."""
    listed = subprocess.run(["git", "ls-files", "weights"], cwd=REPO, capture_output=True, text=True).stdout.split()
    folders = sorted({path.split("/")[1] for path in listed if path.count("/") >= 2})
    ignore, readme = (REPO / ".gitignore").read_text(), (REPO / "weights" / "README.md").read_text()
    assert folders and "ignores everything here but this file" not in readme
    for folder in folders:
        assert f"!weights/{folder}/" in ignore and f"`{folder}/`" in readme, folder
