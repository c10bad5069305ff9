"""Every command of ``python -m minideberta`` end to end, on the official-layout checkpoints of
test_pipelines.py: readable text, ``--json``, and one clear ``error:`` line for each user mistake."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minideberta.apps.cli.main import main
from minideberta.loading import load_model

from checkpoints import CONTEXT, NLI
from task_reference import best_span, bio_entities, mask_probabilities


def run(capsys, *argv):
    """``main(argv)`` -> (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def assert_user_error(capsys, argv, *phrases):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith("error: ") and "Traceback" not in err
    for phrase in phrases:
        assert phrase in err
    return err


# ---- each task, text and JSON ----
def test_fill_mask(capsys, checkpoints):
    text = "Paris is the [MASK] of France."
    result = run_json(capsys, "fill-mask", checkpoints["mlm"], text, "--top-k", 3)
    assert result["emd"] is True and len(result["masks"]) == 1
    model, tokenizer = load_model(checkpoints["mlm"], "masked-lm")  # what the command loads (float32)
    _, (probs,) = mask_probabilities(model, tokenizer, text)  # the model's own softmax at the mask
    best = np.argsort(-probs[:len(tokenizer)], kind="stable")[:3]
    assert [p["token_id"] for p in result["masks"][0]["predictions"]] == list(best)
    np.testing.assert_allclose([p["score"] for p in result["masks"][0]["predictions"]], probs[best], rtol=1e-12)
    code, out, _ = run(capsys, "fill-mask", checkpoints["mlm"], text, "--emd", "off", "--dtype", "float64")
    assert code == 0 and "[MASK] at characters 13-19 (decoded with the last layer)" in out
    assert out.count("Paris is the ") == 5  # one filled-in sentence per prediction, default --top-k 5


def test_rtd_highlights_only_when_asked(capsys, checkpoints):
    text = "Paris is the banana of France."
    result = run_json(capsys, "rtd", checkpoints["rtd"], text)
    assert [text[t["start"]:t["end"]].strip() for t in result] == ["Paris", "is", "the", "banana", "of", "France", "."]
    code, plain, _ = run(capsys, "rtd", checkpoints["rtd"], text)  # captured output is no terminal
    assert code == 0 and "\033[" not in plain and "p(replaced)" in plain and "▁banana" in plain
    code, coloured, _ = run(capsys, "rtd", checkpoints["rtd"], text, "--color", "always")
    assert code == 0 and "\033[" in coloured


def test_classify_a_pair(capsys, checkpoints):
    result = run_json(capsys, "classify", checkpoints["nli"], "A man eats pizza.", "Someone is eating.")
    assert {e["label"] for e in result["labels"]} == set(NLI.values())
    code, out, _ = run(capsys, "classify", checkpoints["nli"], "A man eats pizza.")
    assert code == 0 and all(label in out for label in NLI.values())


def test_tokens_words_and_entities(capsys, checkpoints):
    result = run_json(capsys, "tokens", checkpoints["ner"], "Grace Hopperman met Babbage in London.")
    assert [w["text"] for w in result["words"]] == ["Grace", "Hopperman", "met", "Babbage", "in", "London."]
    expected = bio_entities(*load_model(checkpoints["ner"], "token-classification"),
                            "Grace Hopperman met Babbage in London.")
    assert expected and [(e["entity"], e["text"]) for e in result["entities"]] == expected
    code, out, _ = run(capsys, "tokens", checkpoints["ner"], "Grace Hopperman met Babbage in London.")
    assert code == 0 and "Hopperman" in out and "entities:" in out


def test_qa_over_several_windows(capsys, checkpoints, tmp_path):
    context_file = tmp_path / "context.txt"
    context_file.write_text(CONTEXT, encoding="utf-8")
    result = run_json(capsys, "qa", checkpoints["qa"], "--question", "Where do ships wait?",
                      "--context-file", context_file, "--max-length", 48, "--stride", 8)
    expected, window, score = best_span(*load_model(checkpoints["qa"], "question-answering"), "Where do ships wait?",
                                        CONTEXT, 48, 8, 30)  # the command's default --max-answer-length: 30
    assert result["windows"] > 5 and (result["answer"], result["window"]) == (expected, window)
    assert result["score"] == pytest.approx(score, rel=1e-9)
    assert CONTEXT[result["start"]:result["end"]] == result["answer"]
    code, out, _ = run(capsys, "qa", checkpoints["qa"], "--question", "Where?", "--context", "Ships wait in Zanzibar.")
    assert code == 0 and out.startswith("answer: ") and "window 1 of 1" in out


def test_choose(capsys, checkpoints):
    choices = ["it was raining.", "she was hungry.", "the sun set."]
    result = run_json(capsys, "choose", checkpoints["swag"], "She opened the umbrella because", *choices)
    assert sorted(r["choice"] for r in result) == sorted(choices) and abs(sum(r["score"] for r in result) - 1) < 1e-9
    code, out, _ = run(capsys, "choose", checkpoints["swag"], "She opened the umbrella because", *choices)
    assert code == 0 and out.splitlines()[1].startswith("*")  # the best choice is marked


# ---- user mistakes: exit 2, one message, no traceback ----
def test_gpu_without_cupy_says_how_to_install_it(capsys, checkpoints):
    """This machine has no CuPy: every command that could run on a GPU says so in one line, exit 2."""
    for argv in (["fill-mask", checkpoints["mlm"], "[MASK]"], ["rtd", checkpoints["rtd"], "a b"],
                 ["classify", checkpoints["nli"], "a"], ["tokens", checkpoints["ner"], "a"],
                 ["qa", checkpoints["qa"], "--question", "a", "--context", "b"],
                 ["choose", checkpoints["swag"], "a", "b", "c"], ["bench"], ["train", "folder"]):
        assert_user_error(capsys, argv + ["--device", "gpu"], "needs CuPy, which is not installed",
                          "pip install cupy-cuda12x")


def test_gpu_for_commands_that_run_on_the_cpu(capsys, checkpoints):
    assert_user_error(capsys, ["verify", checkpoints["mlm"], "--device", "gpu"], "verify compares with transformers",
                      "bench --device gpu")
    assert_user_error(capsys, ["bench", "tokenizer", "--device", "gpu"], "the tokenizer runs on the CPU")


def test_text_without_mask(capsys, checkpoints):
    assert_user_error(capsys, ["fill-mask", checkpoints["mlm"], "Paris is the capital."], "no [MASK]")


@pytest.mark.parametrize("argv, has, hint", [
    (["fill-mask", "nli", "Paris [MASK]"], "sequence classification (3 labels)", 'Use "classify"'),
    (["classify", "mlm", "Paris"], "masked-LM", 'Use "fill-mask"'),
    (["qa", "swag", "--question", "q", "--context", "c"], "multiple choice", 'Use "choose"'),
    (["rtd", "ner", "Paris"], "token classification (5 labels)", 'Use "tokens"'),
])
def test_a_model_without_the_head(capsys, checkpoints, argv, has, hint):
    argv = [argv[0], checkpoints[argv[1]], *argv[2:]]
    assert_user_error(capsys, argv, "head; it holds: " + has, hint)


def test_question_longer_than_the_window_and_empty_choices(capsys, checkpoints):
    assert_user_error(capsys, ["qa", checkpoints["qa"], "--question", "why " * 30, "--context", "Because.",
                               "--max-length", 16], "leaves no room for the context")
    assert_user_error(capsys, ["choose", checkpoints["swag"], "She opened the umbrella because"], "no choices given")


def test_unreadable_folders(capsys, tmp_path, checkpoints):
    assert_user_error(capsys, ["classify", tmp_path / "missing", "text"], "does not exist")
    assert_user_error(capsys, ["classify", tmp_path, "text"], "has no config.json")
    (tmp_path / "config.json").write_text("{not json")
    assert_user_error(capsys, ["classify", tmp_path, "text"], "config.json is not valid JSON")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "spm.model"):
        (broken / name).write_bytes((checkpoints["nli"] / name).read_bytes())
    (broken / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    assert_user_error(capsys, ["classify", broken, "text"], "pytorch_model.bin")


def test_bad_options_are_argparse_errors(capsys, checkpoints):
    code, out, err = run(capsys, "fill-mask", checkpoints["mlm"], "[MASK]", "--top-k", 0)
    assert code == 2 and "--top-k: must be at least 1" in err and "Traceback" not in err
    code, out, err = run(capsys, "bench", "--shapes", "8by128")
    assert code == 2 and "is not BATCHxLENGTH" in err


# ---- help ----
@pytest.mark.parametrize("command", ["fill-mask", "rtd", "classify", "tokens", "qa", "choose", "verify", "bench"])
def test_every_command_has_help_with_an_example(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "python -m minideberta " + command in out and "--device" in out and "--json" in out


def test_python_dash_m_help():
    done = subprocess.run([sys.executable, "-m", "minideberta", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0 and "fill-mask" in done.stdout and "examples:" in done.stdout


# ---- the commands other modules implement ----
def test_bench_passes_its_options_on(capsys, monkeypatch):
    from minideberta.apps.bench import model as bench
    from minideberta.apps.bench import tokenizer as bench_tokenizer

    calls = {}
    monkeypatch.setattr(bench, "run", lambda **kw: calls.setdefault("model", kw) and [{"model": "v3-xsmall"}])
    monkeypatch.setattr(bench_tokenizer, "run", lambda **kw: calls.setdefault("tokenizer", kw) and {"ratio": 1.0})
    assert run_json(capsys, "bench", "--sizes", "v3-xsmall", "--shapes", "1x128", "8x64", "--backward",
                    "--repeats", 2, "--no-reference") == [{"model": "v3-xsmall"}]
    model = calls["model"]
    assert (model["sizes"], model["shapes"], model["backward"], model["repeats"], model["reference"]) == (
        ["v3-xsmall"], [(1, 128), (8, 64)], True, 2, False)
    assert run_json(capsys, "bench", "tokenizer", "--sentences", 100, "--repeats", 1) == {"ratio": 1.0}
    assert (calls["tokenizer"]["n_sentences"], calls["tokenizer"]["repeats"]) == (100, 1)


def test_train_gets_the_rest_of_the_command_line(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr("minideberta.apps.train.cli.main", lambda argv: seen.append(argv) or 0)
    assert main(["train", "folder", "--data", "d.jsonl", "--device", "cpu", "--steps", "3"]) == 0
    assert seen == [["folder", "--data", "d.jsonl", "--device", "cpu", "--steps", "3"]]  # train reads --device itself


def test_train_help_is_train_s_own(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and out.startswith("usage: minideberta train") and "--data" in out


def test_verify_end_to_end(capsys, checkpoints):
    result = run_json(capsys, "verify", checkpoints["qa"])
    assert result["ok"] is True and any("start_logits" in row["output"] for row in result["rows"])


def test_verify_is_called_with_the_folder_and_dtype(monkeypatch, checkpoints):
    seen = []
    monkeypatch.setattr("minideberta.apps.bench.verify.main",
                        lambda folder, dtype, as_json: seen.append((folder, dtype, as_json)) or 1)
    assert main(["verify", str(checkpoints["mlm"]), "--json"]) == 1  # verify's own status: 1 = mismatch
    assert seen == [(checkpoints["mlm"], np.dtype("float64"), True)]
