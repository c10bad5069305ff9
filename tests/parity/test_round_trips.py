"""Save -> load -> the same numbers, for what the other tests do not round-trip.

Proves:
- the masked-LM model with Microsoft's head (``lm_predictions.lm_head.*``) and the absolute position
  table of the Enhanced Mask Decoder, and the replaced-token-detection model, each survive
  save_pretrained -> from_pretrained with bit-identical logits (EMD still on for the first);
- a sharded checkpoint (safetensors or torch .bin shards, with transformers' index file) loads
  through from_pretrained and through the command line, giving the unsharded model's numbers.
"""
import json
import shutil

import numpy as np
import pytest
import torch

from minideberta import (
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DebertaV2ForReplacedTokenDetection,
    DebertaV2ForSequenceClassification,
)
from minideberta.apps.cli.main import main
from minideberta.checkpoints.weights import save_safetensors
from minideberta.masked_lm import POSITIONS
from minideberta.model import no_grad

from checkpoints import CONFIG, NLI, VOCAB
from task_reference import class_probabilities

IDS = np.array([[1, 523, 128000, 2901, 77, 2], [1, 77, 9, 2, 0, 0]])
MASK = (IDS != 0).astype(np.int64)


def logits(model, **kwargs):
    with no_grad():
        return model(IDS, attention_mask=MASK, **kwargs).logits


def test_masked_lm_with_microsoft_s_head_and_the_emd_table(tmp_path):
    config = DebertaV2Config(**{**CONFIG, "legacy": False})  # legacy=False: Microsoft's lm_predictions names
    params = dict(DebertaV2ForMaskedLM(config, seed=3, dtype=np.float64).params)
    params[POSITIONS] = np.random.default_rng(3).normal(0, 0.02, (512, 32))
    model = DebertaV2ForMaskedLM(config, dtype=np.float64, params=params)
    assert model.resolve_emd(None) and any(k.startswith("lm_predictions.lm_head.") for k in model.params)
    model.save_pretrained(tmp_path)
    loaded = DebertaV2ForMaskedLM.from_pretrained(tmp_path, dtype=np.float64)
    assert set(loaded.params) == set(model.params) and loaded.config == model.config
    np.testing.assert_array_equal(logits(loaded), logits(model))
    assert loaded.use_emd  # decoded through the Enhanced Mask Decoder, as before saving
    assert not np.allclose(logits(loaded, emd=False), logits(model))  # and that is not the plain last layer


def test_replaced_token_detection(tmp_path):
    model = DebertaV2ForReplacedTokenDetection(DebertaV2Config(**CONFIG), seed=4, dtype=np.float64)
    model.save_pretrained(tmp_path)
    loaded = DebertaV2ForReplacedTokenDetection.from_pretrained(tmp_path, dtype=np.float64)
    assert set(loaded.params) == set(model.params)
    np.testing.assert_array_equal(logits(loaded), logits(model))


def shard(params, folder, kind):
    """Write ``params`` as two shards and transformers' index, as save_pretrained(max_shard_size=...) does."""
    names = sorted(params)
    halves = {f"model-0000{i + 1}-of-00002": names[i::2] for i in range(2)}
    weight_map = {}
    for stem, part in halves.items():
        if kind == "safetensors":
            save_safetensors({n: params[n] for n in part}, folder / f"{stem}.safetensors")
        else:
            torch.save({n: torch.from_numpy(params[n]) for n in part}, folder / f"{stem}.bin")
        weight_map.update({n: f"{stem}.{'safetensors' if kind == 'safetensors' else 'bin'}" for n in part})
    index = "model.safetensors.index.json" if kind == "safetensors" else "pytorch_model.bin.index.json"
    (folder / index).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_a_sharded_checkpoint_loads_by_folder_and_in_the_cli(tmp_path, kind, capsys):
    config = DebertaV2Config(**CONFIG, id2label={int(k): v for k, v in NLI.items()})
    model = DebertaV2ForSequenceClassification(config, seed=5, dtype=np.float32)
    folder = tmp_path / "sharded"
    folder.mkdir()
    config.save_pretrained(folder)
    shutil.copyfile(VOCAB, folder / "spm.model")
    shard(model.params, folder, kind)
    assert not (folder / "model.safetensors").exists() and not (folder / "pytorch_model.bin").exists()

    loaded = DebertaV2ForSequenceClassification.from_pretrained(folder, dtype=np.float32)
    np.testing.assert_array_equal(logits(loaded), logits(model))

    assert main(["classify", str(folder), "A man eats pizza.", "Someone is eating.", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    from minideberta.tokenizer.deberta_tokenizer import DebertaV2Tokenizer

    probs = class_probabilities(model, DebertaV2Tokenizer(VOCAB), "A man eats pizza.", "Someone is eating.")
    np.testing.assert_allclose([r["score"] for r in result["labels"]],
                               [probs[config.label2id[r["label"]]] for r in result["labels"]], rtol=1e-12)


def test_a_shard_index_that_misses_a_shard_is_one_error_line(tmp_path, capsys):
    model = DebertaV2ForSequenceClassification(DebertaV2Config(**CONFIG, num_labels=3), seed=6)
    folder = tmp_path / "sharded"
    folder.mkdir()
    model.config.save_pretrained(folder)
    shutil.copyfile(VOCAB, folder / "spm.model")
    shard(model.params, folder, "safetensors")
    (folder / "model-00002-of-00002.safetensors").unlink()
    assert main(["classify", str(folder), "text"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "model-00002-of-00002.safetensors" in err
