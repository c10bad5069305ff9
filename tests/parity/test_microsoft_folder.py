"""A folder written by Microsoft's own trainer (github.com/microsoft/DeBERTa) loads by folder.

Microsoft's ``DeBERTa/apps/run.py`` writes ``model_config.json`` (its ``ModelConfig.__dict__``:
transformers' key names, ``padding_idx`` for the pad id, no ``model_type``) and copies ``spm.model``
into the output folder; its trainer saves ``pytorch.model-<step>.bin`` (``f"{step:06}"``) at every
evaluation, with Microsoft's parameter names (``deberta.*``, ``lm_predictions.lm_head.*``, and the
absolute position table the Enhanced Mask Decoder needs). Proves: from_pretrained and the CLI read
such a folder, the highest step wins (compared as a number: 1000000 after 999999, although
"999999" sorts after "1000000" as text), and the order in which a folder's files are preferred is
the one list of weights.py.
"""
import json
import shutil

import numpy as np
import pytest
import torch

from minideberta import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification
from minideberta.apps.cli.main import main
from minideberta.apps.inference.pipelines import softmax
from minideberta.checkpoints import hub, weights
from minideberta.checkpoints.weights import CHECKPOINT_FILES, choose_checkpoint
from minideberta.loading import load_model
from minideberta.masked_lm import POSITIONS
from minideberta.model import no_grad

from checkpoints import CONFIG, VOCAB

# ModelConfig's own fields (DeBERTa/deberta/config.py) updated with a v3 experiment config, scaled down,
# as run.py writes them: sorted keys, padding_idx.
MICROSOFT_CONFIG = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 32,
    "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-7, "max_position_embeddings": 512,
    "max_relative_positions": -1, "norm_rel_ebd": "layer_norm", "num_attention_heads": 4, "num_hidden_layers": 2,
    "padding_idx": 0, "pos_att_type": "p2c|c2p", "position_biased_input": False, "position_buckets": 8,
    "relative_attention": True, "share_att_key": True, "type_vocab_size": 0, "vocab_size": 128100}
STEPS = (999999, 1000000, 2000)  # the trainer's names: pytorch.model-999999.bin, -1000000.bin, -002000.bin


def microsoft_mlm_state(seed):
    """A masked-LM state dict under Microsoft's names, in float16 as its fp16 runs save them."""
    model = DebertaV2ForMaskedLM(DebertaV2Config(**{**CONFIG, "legacy": False}), seed=seed)
    params = dict(model.params, **{POSITIONS: np.random.default_rng(seed).normal(0, 0.02, (512, 32))})
    assert any(name.startswith("lm_predictions.lm_head.") for name in params)  # Microsoft's head names
    return {name: np.asarray(a, dtype=np.float16) for name, a in params.items()}


def write_run(folder, states):
    """A Microsoft trainer output folder: model_config.json, spm.model and one .bin per step."""
    folder.mkdir()
    (folder / "model_config.json").write_text(json.dumps(MICROSOFT_CONFIG, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(VOCAB, folder / "spm.model")
    for step, state in states.items():
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, folder / f"pytorch.model-{step:06}.bin")
    return folder


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    states = {step: microsoft_mlm_state(seed) for seed, step in enumerate(STEPS)}
    return write_run(tmp_path_factory.mktemp("microsoft") / "run", states), states


def reference_logits(state, ids, mask):
    """The logits of the model built from ``state`` itself, with a config written the transformers way."""
    config = DebertaV2Config(**{**CONFIG, "legacy": False})
    model = DebertaV2ForMaskedLM.from_state_dict(config, state, np.float64)
    with no_grad():
        return model(ids, attention_mask=mask).logits


def test_the_config_is_read_with_microsoft_s_names_and_defaults(run_folder, tmp_path):
    config = DebertaV2Config.from_pretrained(run_folder[0])
    assert (config.pad_token_id, config.hidden_size, config.position_buckets, config.pos_att_type) == (
        0, 32, 8, ["p2c", "c2p"])
    (tmp_path / "model_config.json").write_text(json.dumps({"vocab_size": 1000, "relative_attention": True,
                                                            "padding_idx": 3}))
    bare = DebertaV2Config.from_pretrained(tmp_path / "model_config.json")  # Microsoft's defaults, not HF's
    assert (bare.hidden_size, bare.num_hidden_layers, bare.intermediate_size, bare.pos_att_type, bare.pad_token_id) == (
        768, 12, 3072, ["c2p"], 3)


def test_from_pretrained_reads_the_highest_step(run_folder):
    folder, states = run_folder
    assert weights.checkpoint_file(folder).name == "pytorch.model-1000000.bin"
    model = DebertaV2ForMaskedLM.from_pretrained(folder, dtype=np.float64)
    assert POSITIONS in model.params  # the EMD's absolute position table came along
    ids = np.array([[1, 523, 128000, 2901, 2, 0], [1, 77, 9, 128000, 18, 2]])
    mask = (ids != 0).astype(np.int64)
    with no_grad():
        got = model(ids, attention_mask=mask).logits
    np.testing.assert_array_equal(got, reference_logits(states[1000000], ids, mask))
    assert not np.allclose(got, reference_logits(states[999999], ids, mask))  # the steps differ


def test_the_command_line_reads_the_folder(run_folder, capsys):
    folder, states = run_folder
    text = "Paris is the [MASK] of France."
    assert main(["fill-mask", str(folder), text, "--top-k", "3", "--dtype", "float64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model, tokenizer = load_model(folder, "masked-lm", np.float64)
    enc = tokenizer(text, return_tensors="np")
    at = int(np.flatnonzero(enc["input_ids"][0] == tokenizer.mask_token_id)[0])
    probs = softmax(reference_logits(states[1000000], enc["input_ids"], enc["attention_mask"])[0, at])
    best = np.argsort(-probs)[:3]
    predictions = result["masks"][0]["predictions"]
    assert [p["token_id"] for p in predictions] == [int(i) for i in best]
    np.testing.assert_allclose([p["score"] for p in predictions], probs[best], rtol=1e-9)
    assert hub.checkpoint_heads(folder) == {"masked-lm": "masked-LM"}


def test_a_microsoft_classifier_folder(tmp_path, capsys):
    """Microsoft's SequenceClassificationModel: deberta.*, pooler.dense.*, classifier.* (3 labels, none named)."""
    source = DebertaV2ForSequenceClassification(DebertaV2Config(**{**CONFIG, "num_labels": 3}), seed=7)
    folder = write_run(tmp_path / "run", {500: {k: v.astype(np.float16) for k, v in source.params.items()}})
    text = "A man eats pizza."
    assert main(["classify", str(folder), text, "--dtype", "float64", "--json"]) == 0
    labels = {e["label"]: e["score"] for e in json.loads(capsys.readouterr().out)["labels"]}
    model, tokenizer = load_model(folder, "sequence-classification", np.float64)
    enc = tokenizer(text, return_tensors="np")
    reference = DebertaV2ForSequenceClassification.from_state_dict(
        DebertaV2Config(**{**CONFIG, "num_labels": 3}), {k: v.astype(np.float16) for k, v in source.params.items()},
        np.float64)
    with no_grad():
        probs = softmax(reference(enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0])
    np.testing.assert_allclose([labels[f"LABEL_{i}"] for i in range(3)], probs, rtol=1e-9)


@pytest.mark.parametrize("names, chosen", [
    ({"pytorch_model.bin", "model.safetensors", "pytorch.model-000100.bin"}, "model.safetensors"),
    ({"pytorch_model.bin.index.json", "pytorch_model.bin"}, "pytorch_model.bin"),
    ({"model.safetensors.index.json", "pytorch_model.bin"}, "model.safetensors.index.json"),
    ({"pytorch.model.bin", "pytorch.model-000100.bin"}, "pytorch.model.bin"),
    ({"pytorch.model-000100.bin", "pytorch.model-000099.bin", "pytorch.model-final.bin"}, "pytorch.model-000100.bin"),
    ({"pytorch.model-999999.bin", "pytorch.model-1000000.bin"}, "pytorch.model-1000000.bin"),
    ({"config.json", "spm.model", "model.bin"}, None),
])
def test_the_one_order_of_checkpoint_files(names, chosen):
    assert choose_checkpoint(names) == chosen


def test_hub_downloads_the_file_the_loader_reads():
    """hub.py takes its list from weights.py: the same file is fetched as a folder would read."""
    assert hub.CHECKPOINT_FILES is CHECKPOINT_FILES
    listed = {"config.json", "spm.model", "pytorch_model.bin", "model.safetensors", "tf_model.h5"}
    assert hub._wanted_files("someone/model", listed)[-1] == choose_checkpoint(listed) == "model.safetensors"
