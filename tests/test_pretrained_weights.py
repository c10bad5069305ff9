"""The embedded pre-trained models in weights/: they load by bare name, and what they predict is stable.

Nothing here is a hard-coded prediction: every expectation is computed at test time from the
shipped files (the float16 file computed in float32 against the same file in float64, and a
second load against the first).
"""
from pathlib import Path

import numpy as np
import pytest

from minideberta import DebertaV2ForMaskedLM, DebertaV2ForReplacedTokenDetection, DebertaV2Tokenizer
from minideberta.apps.cli import main as cli
from minideberta.apps.inference import demo, pipelines
from minideberta.checkpoints import hub
from minideberta.loading import load_model

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
DISCRIMINATOR, GENERATOR = "minideberta-v3-tiny", "minideberta-v3-tiny-generator"
TEXT = "The function returns a [MASK] of strings."
CORRUPTED = "Return the number of bananas in the list."


def test_both_folders_are_complete_and_fit_in_24_mb():
    total = 0
    for name in (DISCRIMINATOR, GENERATOR):
        folder = WEIGHTS / name
        for file in ("config.json", "model.safetensors", "spm.model", "tokenizer_config.json"):
            assert (folder / file).is_file(), f"{folder / file} missing"
        total += sum(f.stat().st_size for f in folder.iterdir())
    assert total <= 24 * 10**6, f"{total / 10**6:.1f} MB"  # the shipped pair's budget (float16)
    assert (WEIGHTS / DISCRIMINATOR / "README.md").is_file()  # the model card
    assert (WEIGHTS / DISCRIMINATOR / "spm.model").read_bytes() == (WEIGHTS / GENERATOR / "spm.model").read_bytes()


def test_bare_names_resolve_to_the_committed_folders():
    assert hub.resolve_model(GENERATOR) == WEIGHTS / GENERATOR
    model, tokenizer = load_model(GENERATOR, "masked-lm")
    assert isinstance(model, DebertaV2ForMaskedLM) and model.resolve_emd(None)  # decodes with EMD
    assert tokenizer.mask_token_id == model.config.vocab_size - 1
    model, _ = load_model(DISCRIMINATOR, "replaced-token-detection")
    assert isinstance(model, DebertaV2ForReplacedTokenDetection)


def test_fill_mask_is_stable_across_precision_and_reload():
    tokenizer = DebertaV2Tokenizer.from_pretrained(WEIGHTS / GENERATOR)
    f32 = DebertaV2ForMaskedLM.from_pretrained(WEIGHTS / GENERATOR, dtype=np.float32)
    f64 = DebertaV2ForMaskedLM.from_pretrained(WEIGHTS / GENERATOR, dtype=np.float64)
    again = DebertaV2ForMaskedLM.from_pretrained(WEIGHTS / GENERATOR, dtype=np.float32)
    enc = tokenizer([TEXT], return_tensors="np")
    logits = [m(enc["input_ids"], attention_mask=enc["attention_mask"]).logits for m in (f32, f64, again)]
    np.testing.assert_array_equal(logits[0], logits[2])
    assert np.abs(logits[0] - logits[1]).max() <= 1e-4 * np.abs(logits[1]).max()
    top = [pipelines.fill_mask(m, tokenizer, TEXT, top_k=3)["masks"][0]["predictions"] for m in (f32, f64)]
    assert [p["token_id"] for p in top[0]][:1] == [p["token_id"] for p in top[1]][:1]
    assert all(p["token_id"] != tokenizer.mask_token_id for p in top[0])


def test_rtd_is_stable_across_precision():
    tokenizer = DebertaV2Tokenizer.from_pretrained(WEIGHTS / DISCRIMINATOR)
    probs = [[t["probability"] for t in pipelines.replaced_tokens(
        DebertaV2ForReplacedTokenDetection.from_pretrained(WEIGHTS / DISCRIMINATOR, dtype=dtype), tokenizer, CORRUPTED)]
        for dtype in (np.float32, np.float64)]
    np.testing.assert_allclose(probs[0], probs[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("command", "name", "text"), [
    ("fill-mask", GENERATOR, TEXT), ("rtd", DISCRIMINATOR, CORRUPTED), ("fill-mask", DISCRIMINATOR, TEXT),
    ("tokens", DISCRIMINATOR, TEXT)])
def test_commands_accept_the_bare_names(command, name, text, capsys):
    code = cli.main([command, name, text])
    out = capsys.readouterr()
    if command == "rtd" or name == GENERATOR:
        assert code == 0 and out.out.strip()
    else:  # the discriminator holds the RTD head only: a clear message, naming the command that fits
        assert code == 2 and 'Use "rtd"' in out.err


def test_demo_shows_the_embedded_models():
    lines = []
    demo.show_pretrained(lines.append)
    assert lines[0].startswith("5. pre-trained: fill-mask with minideberta-v3-tiny-generator")
    assert all(any(text in line for line in lines) for text in demo.FILL_MASK + list(demo.CORRUPTED))
