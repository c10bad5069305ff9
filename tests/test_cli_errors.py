"""The error contract of every command (apps/cli/errors.py): a failure of loading or input is one
``error:`` line on stderr and exit status 2, never a traceback unless asked for (``--debug`` or
MINIDEBERTA_DEBUG=1); a pickle that would run code is refused by every model-loading command,
and the code in it never runs."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from minideberta.apps.cli.main import main
from minideberta.apps.inference import pipelines

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(capsys, argv, *phrases, status=2):
    """The command fails with ``status``, prints nothing on stdout and exactly one ``error:`` line on stderr."""
    code, out, err = run(capsys, *argv)
    assert (code, out) == (status, ""), err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err
    return err


class Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def hostile(tmp_path, checkpoints):
    """``(folder, marker)``: a model folder whose pytorch_model.bin is a pickle that would create ``marker``."""
    marker = tmp_path / "the-payload-ran"
    payload = pickle.dumps({"deberta.embeddings.word_embeddings.weight": Payload(marker)}, protocol=2)
    pickle.loads(payload)  # the payload is live: plain pickle runs it ...
    assert marker.is_file()
    marker.unlink()  # ... and from here on nothing may create the marker again
    folder = tmp_path / "hostile"
    folder.mkdir()
    for name in ("config.json", "spm.model"):
        shutil.copyfile(checkpoints["nli"] / name, folder / name)
    (folder / "pytorch_model.bin").write_bytes(payload)
    return folder, marker


def data_file(folder, rows):
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def model_commands(folder, tmp_path):
    """Every command that loads a model, on ``folder``."""
    data = data_file(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    return {
        "fill-mask": ["fill-mask", folder, "Paris is the [MASK]."],
        "rtd": ["rtd", folder, "Paris"],
        "classify": ["classify", folder, "A man eats.", "Someone eats."],
        "tokens": ["tokens", folder, "Ada Lovelace"],
        "qa": ["qa", folder, "--question", "Where?", "--context", "In London."],
        "choose": ["choose", folder, "She opened the umbrella", "because it rained."],
        "verify": ["verify", folder],
        "train": ["train", folder, "--data", data, "--output-dir", tmp_path / "out", "--steps", 1, "--no-progress"],
    }


@pytest.mark.parametrize("command", ["fill-mask", "rtd", "classify", "tokens", "qa", "choose", "verify", "train"])
def test_a_pickle_that_would_run_code_is_refused(capsys, hostile, tmp_path, command):
    folder, marker = hostile
    assert_one_line_error(capsys, model_commands(folder, tmp_path)[command], "pickle was refused",
                          "nothing in it was run", "refused global io.open")
    assert not marker.exists(), "the pickle's code ran"


def test_a_hostile_zip_checkpoint_is_refused_too(capsys, hostile):
    folder, marker = hostile
    payload = (folder / "pytorch_model.bin").read_bytes()
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:  # torch.save's layout since 1.6
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
    assert_one_line_error(capsys, ["classify", folder, "text"], "refused global io.open")
    assert not marker.exists()


def test_the_real_process_prints_one_line_and_exits_2(hostile):
    """Through ``python -m minideberta`` itself: the status the shell sees, and stderr as a whole."""
    folder, marker = hostile
    env = {k: v for k, v in os.environ.items() if k != "MINIDEBERTA_DEBUG"}
    done = subprocess.run([sys.executable, "-m", "minideberta", "classify", str(folder), "text"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert not marker.exists()


# ---- damaged files and configs ----
def broken_copy(tmp_path, checkpoints, name="mlm"):
    shutil.copytree(checkpoints[name], tmp_path / f"broken-{name}")
    return tmp_path / f"broken-{name}"


def test_a_truncated_checkpoint(capsys, tmp_path, checkpoints):
    folder = broken_copy(tmp_path, checkpoints)
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    assert_one_line_error(capsys, ["fill-mask", folder, "a [MASK]"], "pytorch_model.bin")


def test_a_truncated_safetensors_file(capsys, tmp_path, checkpoints):
    from minideberta import DebertaV2ForSequenceClassification

    folder = broken_copy(tmp_path, checkpoints, "nli")
    DebertaV2ForSequenceClassification.from_pretrained(folder).save_pretrained(folder)
    (folder / "pytorch_model.bin").unlink()
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-100])
    assert_one_line_error(capsys, ["classify", folder, "text"], "model.safetensors", "damaged or truncated")


@pytest.mark.parametrize("change, phrases", [
    (lambda c: c.update(hidden_size=30), ["hidden_size (30) is not a multiple of num_attention_heads"]),
    (lambda c: c.update(pos_att_type=5), ["config.json: pos_att_type must be null, a string", "got 5"]),
    (lambda c: c.update(hidden_act="swish2"), ["hidden_act='swish2' is not a known activation"]),
    (lambda c: c.update(hidden_size=64), ["parameters with the wrong shape", "does the config match"]),
    (lambda c: [1, 2], ["config.json should hold a JSON object", "it holds a list"]),
])
def test_a_wrong_config(capsys, tmp_path, checkpoints, change, phrases):
    folder = broken_copy(tmp_path, checkpoints)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change(config) or config))
    assert_one_line_error(capsys, ["fill-mask", folder, "a [MASK]"], *phrases)


def test_a_folder_without_weights_or_vocabulary(capsys, tmp_path, checkpoints):
    folder = broken_copy(tmp_path, checkpoints, "ner")
    (folder / "spm.model").unlink()
    assert_one_line_error(capsys, ["tokens", folder, "text"], "has no spm.model")
    shutil.copyfile(checkpoints["ner"] / "spm.model", folder / "spm.model")
    (folder / "pytorch_model.bin").unlink()
    assert_one_line_error(capsys, ["tokens", folder, "text"], "no checkpoint in", "looked for")


# ---- options and inputs of each command ----
@pytest.mark.parametrize("argv, phrases", [
    (["fill-mask", "M", "a [MASK]", "--dtype", "bfloat16"], ["--dtype: invalid choice: 'bfloat16'", "float16"]),
    (["rtd", "M", "x", "--dtype", "int64"], ["--dtype: invalid choice: 'int64'"]),
    (["classify", "M"], ["the following arguments are required: text"]),
    (["tokens", "M", "x", "--color", "always"], ["unrecognized arguments: --color always"]),
    (["qa", "M", "--question", "q"], ["one of the arguments --context --context-file is required"]),
    (["choose", "M", "p", "c", "--top-k", "2"], ["unrecognized arguments: --top-k"]),
    (["verify", "M", "--dtype", "float16"], ["--dtype: invalid choice: 'float16'"]),
    (["bench", "--sizes", "v3-huge"], ["--sizes: invalid choice: 'v3-huge'"]),
    (["bench", "tokenizer", "--sentences", "0"], ["--sentences: must be at least 1, got 0"]),
    (["demo", "--steps", "3"], ["unrecognized arguments: --steps 3"]),
    (["train", "M", "--data", "d.jsonl", "--output-dir", "o"], ["one of the arguments --steps --epochs is required"]),
    (["train", "M", "--data", "d.jsonl", "--output-dir", "o", "--steps", "1", "--dtype", "int8"],
     ["--dtype: invalid choice: 'int8'"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
])
def test_bad_options(capsys, argv, phrases):
    err = assert_one_line_error(capsys, argv, *phrases)
    assert "--help" in err  # what to do: where the options are listed


def test_every_task_s_input_mistake(capsys, checkpoints, tmp_path):
    assert_one_line_error(capsys, ["fill-mask", checkpoints["mlm"], "no mask here"], "no [MASK]")
    assert_one_line_error(capsys, ["rtd", checkpoints["ner"], "Paris"], 'Use "tokens"')
    assert_one_line_error(capsys, ["classify", checkpoints["swag"], "x"], "no sequence classification head")
    assert_one_line_error(capsys, ["tokens", checkpoints["nli"], "x"], "no token classification head",
                          'Use "classify"')
    assert_one_line_error(capsys, ["qa", checkpoints["qa"], "--question", "q", "--context-file", tmp_path / "none.txt"],
                          "--context-file", "cannot be read")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert_one_line_error(capsys, ["qa", checkpoints["qa"], "--question", "q", "--context-file",
                                   tmp_path / "latin1.txt"], "is not UTF-8 text")
    assert_one_line_error(capsys, ["choose", checkpoints["swag"], "prompt"], "no choices given")
    assert_one_line_error(capsys, ["verify", tmp_path / "missing"], "does not exist")
    assert_one_line_error(capsys, ["bench", "tokenizer", "--vocab", tmp_path / "none.model", "--sentences", 1],
                          "none.model not found")


# ---- train's data ----
@pytest.fixture
def train_folder(tmp_path, checkpoints):
    return broken_copy(tmp_path, checkpoints, "nli")


def train_argv(folder, data, tmp_path):
    return ["train", folder, "--data", data, "--output-dir", tmp_path / "out", "--steps", 1, "--no-progress"]


def test_train_without_a_label_column(capsys, train_folder, tmp_path):
    data = data_file(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "class": 1}])
    assert_one_line_error(capsys, train_argv(train_folder, data, tmp_path), "example 2",
                          "needs the columns 'text' and 'label', has ['class', 'text']")
    csv = tmp_path / "train.csv"
    csv.write_text("text,target\na,0\n")
    assert_one_line_error(capsys, train_argv(train_folder, csv, tmp_path), "train.csv, example 1",
                          "needs the columns 'text' and 'label'")


def test_train_s_other_data_mistakes(capsys, train_folder, tmp_path):
    assert_one_line_error(capsys, train_argv(train_folder, tmp_path / "missing.jsonl", tmp_path), "missing.jsonl")
    (tmp_path / "train.txt").write_text("a\n")
    assert_one_line_error(capsys, train_argv(train_folder, tmp_path / "train.txt", tmp_path),
                          "must be a .jsonl, .csv or .tsv file")
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 0}\n{not json\n')
    assert_one_line_error(capsys, train_argv(train_folder, tmp_path / "bad.jsonl", tmp_path),
                          "bad.jsonl, line 2 is not JSON")
    (tmp_path / "empty.jsonl").write_text("\n")
    assert_one_line_error(capsys, train_argv(train_folder, tmp_path / "empty.jsonl", tmp_path), "holds no examples")
    assert_one_line_error(capsys, train_argv(tmp_path / "no-model", tmp_path / "empty.jsonl", tmp_path), "no-model")


def test_train_s_senseless_settings(capsys, train_folder, tmp_path):
    # three labels, as the checkpoint's classifier has: no new head, so no warning line before the error
    data = data_file(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 1}, {"text": "c", "label": 2}])
    assert_one_line_error(capsys, train_argv(train_folder, data, tmp_path) + ["--batch-size", 0], "batch_size=0")
    assert_one_line_error(capsys, train_argv(train_folder, data, tmp_path) + ["--lr", -1], "lr=-1.0")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---- a bug is reported as one, and --debug shows the traceback ----
def test_an_internal_error_is_one_line_pointing_at_debug(capsys, monkeypatch, checkpoints):
    def broken(*args):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(pipelines, "classify", broken)
    monkeypatch.delenv("MINIDEBERTA_DEBUG", raising=False)
    assert_one_line_error(capsys, ["classify", checkpoints["nli"], "x"], "internal error, please report it",
                          "TypeError: unsupported operand", "run again with --debug", status=1)


def test_ctrl_c_is_one_line_and_status_130(capsys, monkeypatch, checkpoints):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipelines, "classify", interrupted)
    assert_one_line_error(capsys, ["classify", checkpoints["nli"], "x"], "interrupted", status=130)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_adds_the_traceback(capsys, monkeypatch, tmp_path, how):
    monkeypatch.delenv("MINIDEBERTA_DEBUG", raising=False)
    argv = ["classify", tmp_path / "missing", "x"]
    if how == "flag":
        argv.insert(1, "--debug")
    else:
        monkeypatch.setenv("MINIDEBERTA_DEBUG", "1")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("Traceback") and "FileNotFoundError" in err
    assert err.splitlines()[-1].startswith("error: ") and "does not exist" in err.splitlines()[-1]


def test_a_long_message_stays_on_one_line(capsys, tmp_path, checkpoints):
    """A checkpoint missing many parameters: one line, the first ones named, the count of the rest given."""
    from minideberta.checkpoints import weights

    folder = broken_copy(tmp_path, checkpoints)
    state = weights.load_state_dict(folder)  # layer 1 loses everything but its output LayerNorm
    kept = {k: v for k, v in state.items() if ".layer.1." not in k or ".layer.1.output.LayerNorm." in k}
    weights.save_safetensors(kept, folder / "model.safetensors")
    (folder / "pytorch_model.bin").unlink()
    err = assert_one_line_error(capsys, ["fill-mask", folder, "a [MASK]"], "parameters missing from the checkpoint",
                                "more lines (--debug shows them all)")
    assert "encoder.layer.1.attention" in err


def test_a_warning_is_one_line_too(checkpoints, tmp_path):
    """train on a checkpoint whose head has other labels warns, as one ``warning:`` line, then fails on one line."""
    data = data_file(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    argv = [*map(str, train_argv(checkpoints["nli"], data, tmp_path)), "--batch-size", "0"]
    done = subprocess.run([sys.executable, "-m", "minideberta", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "warning: DebertaV2ForSequenceClassification: initialised a new head, not found in the checkpoint at this "
        "size: classifier.bias, classifier.weight; train it before use",
        "error: batch_size=0 must be >= 1"]


@pytest.mark.parametrize("argv", [["exercises"], ["exercises", "list", "--bogus"], ["course"], ["course", "--bogus"],
                                  ["corpus"], ["pretrain", "--bogus"], ["pretrain-eval"], ["pretrain-export"]])
def test_the_commands_with_their_own_parsers_fail_on_one_line_too(capsys, argv):
    """exercises, course, corpus and the pretrain commands parse their own options: a bad command line is
    still one ``error:`` line naming the command and its --help, exit 2."""
    assert_one_line_error(capsys, argv, f"minideberta {argv[0]}", "--help")
