"""Finding a model (local folders, hub ids) and telling which heads a checkpoint holds. Never online:
the hub's functions are replaced, or the library runs in offline mode on a cache the test lays out."""
import json
import shutil
import sys

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import constants, errors

from minideberta import DebertaV2Config, DebertaV2ForSequenceClassification
from minideberta.checkpoints.hub import (
    MissingHeadError,
    checkpoint_heads,
    checkpoint_shapes,
    heads_from_shapes,
    resolve_model,
)
from minideberta.loading import load_model

from checkpoints import CONFIG


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test reaches the network: offline mode, and an empty cache of the test's own."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture
def fake_hub(monkeypatch, tmp_path, checkpoints):
    """A hub whose repo "owner/tiny" lists ``fake_hub.listed`` and serves the files of the qa checkpoint."""
    source = checkpoints["qa"]
    snapshot = tmp_path / "hub-snapshot"
    snapshot.mkdir()

    def download(repo_id, filename, **kwargs):
        assert repo_id == "owner/tiny" and not kwargs.get("local_files_only")
        fake_hub.downloaded.append(filename)
        if (source / filename).exists():
            shutil.copyfile(source / filename, snapshot / filename)
        else:  # a file only the listing has
            (snapshot / filename).write_text(fake_hub.contents.get(filename, ""))
        return str(snapshot / filename)

    fake_hub.listed = ["config.json", "spm.model", "pytorch_model.bin", ".gitattributes", "README.md"]
    fake_hub.downloaded, fake_hub.contents = [], {}
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, **kwargs: list(fake_hub.listed))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return fake_hub


# ---- local folders ----
def test_a_local_folder_is_returned_as_is(checkpoints):
    assert resolve_model(checkpoints["qa"]) == checkpoints["qa"]
    assert resolve_model(str(checkpoints["qa"])) == checkpoints["qa"]


def test_bad_local_paths_say_what_a_model_folder_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: pass a model folder"):
        resolve_model(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        resolve_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="is a file"):
        resolve_model(tmp_path / "notes.txt")


# ---- the hub ----
def test_official_layout_downloads_config_vocabulary_and_the_bin(fake_hub):
    folder = resolve_model("owner/tiny", progress=False)
    assert fake_hub.downloaded == ["config.json", "spm.model", "pytorch_model.bin"]
    model, tokenizer = load_model(folder, "question-answering")
    assert model.params["qa_outputs.weight"].dtype == np.float32 and tokenizer.mask_token_id == 128000


def test_safetensors_is_preferred_and_the_bin_then_skipped(fake_hub):
    fake_hub.listed += ["model.safetensors", "tokenizer_config.json"]
    resolve_model("owner/tiny")
    assert fake_hub.downloaded == ["config.json", "spm.model", "tokenizer_config.json", "model.safetensors"]


def test_a_sharded_checkpoint_brings_its_shards(fake_hub):
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    fake_hub.listed = ["config.json", "spm.model", "model.safetensors.index.json", *shards]
    fake_hub.contents["model.safetensors.index.json"] = json.dumps({"weight_map": {"a": shards[0], "b": shards[1],
                                                                                   "c": shards[0]}})
    resolve_model("owner/tiny")
    assert fake_hub.downloaded == ["config.json", "spm.model", "model.safetensors.index.json", *shards]


def test_a_repository_without_the_vocabulary_is_refused(fake_hub):
    fake_hub.listed.remove("spm.model")
    with pytest.raises(FileNotFoundError, match="has no spm.model"):
        resolve_model("owner/tiny")


CONNECTION_ERROR = getattr(errors, "HTTPError", ConnectionError)  # httpx's in huggingface_hub >= 1.0


@pytest.mark.parametrize("error", [errors.OfflineModeIsEnabled("offline mode is enabled"),
                                   CONNECTION_ERROR("[Errno -2] Name or service not known")])
def test_offline_says_which_files_to_fetch_and_where(monkeypatch, error):
    def unreachable(repo_id, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "list_repo_files", unreachable)
    with pytest.raises(FileNotFoundError) as raised:
        resolve_model("microsoft/deberta-v3-xsmall")
    message = str(raised.value)
    assert "https://huggingface.co/microsoft/deberta-v3-xsmall/tree/main" in message
    for name in ("config.json", "spm.model", "tokenizer_config.json", "model.safetensors", "pytorch_model.bin",
                 "one folder", "pass that folder"):
        assert name in message


def test_offline_uses_the_files_already_in_the_cache(tmp_path, checkpoints):
    """The real library in offline mode, on a cache laid out as huggingface_hub lays it out."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf-cache" / "models--owner--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(checkpoints["qa"], repo / "snapshots" / commit)
    assert resolve_model("owner/cached") == repo / "snapshots" / commit


def test_unknown_repository_and_missing_library(monkeypatch):
    class NotFound(errors.RepositoryNotFoundError):
        def __init__(self):
            Exception.__init__(self, "404 Client Error")

    def missing(repo_id, **kwargs):
        raise NotFound()

    monkeypatch.setattr(huggingface_hub, "list_repo_files", missing)
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a model on the Hugging Face hub"):
        resolve_model("owner/typo")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import huggingface_hub now fails
    with pytest.raises(FileNotFoundError, match="pip install huggingface_hub"):
        resolve_model("owner/tiny")


# ---- heads ----
def test_each_checkpoint_names_its_head(checkpoints):
    assert {name: list(checkpoint_heads(folder)) for name, folder in checkpoints.items()} == {
        "mlm": ["masked-lm"], "rtd": ["replaced-token-detection"], "nli": ["sequence-classification"],
        "ner": ["token-classification"], "qa": ["question-answering"], "swag": ["multiple-choice"]}
    assert checkpoint_heads(checkpoints["nli"])["sequence-classification"] == "sequence classification (3 labels)"


def test_safetensors_heads_come_from_the_header(tmp_path):
    model = DebertaV2ForSequenceClassification(DebertaV2Config(**{**CONFIG, "vocab_size": 100}, num_labels=1))
    model.save_pretrained(tmp_path)
    shapes = checkpoint_shapes(tmp_path)
    assert shapes == {name: a.shape for name, a in model.params.items()}
    # One output and no architectures: a regression classifier and a multiple-choice head look alike.
    assert set(checkpoint_heads(tmp_path)) == {"sequence-classification", "multiple-choice"}
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "architectures": ["DebertaV2ForMultipleChoice"]}))
    assert list(checkpoint_heads(tmp_path)) == ["multiple-choice"]


def test_heads_of_official_pretraining_checkpoints():
    """microsoft/deberta-v3-* hold both pre-training heads; a bare encoder holds none."""
    shapes = {"deberta.embeddings.word_embeddings.weight": (128100, 32), "lm_predictions.lm_head.bias": (128100,),
              "mask_predictions.classifier.weight": (1, 32)}
    assert list(heads_from_shapes(shapes)) == ["masked-lm", "replaced-token-detection"]
    assert heads_from_shapes({"embeddings.word_embeddings.weight": (10, 4)}) == {}


def test_a_missing_head_is_refused_before_loading(checkpoints):
    with pytest.raises(MissingHeadError, match="no masked-LM head; it holds: sequence classification") as raised:
        load_model(checkpoints["nli"], "masked-lm")
    assert list(raised.value.held) == ["sequence-classification"]


def test_labels_are_counted_on_the_classifier_when_config_json_has_none(tmp_path, checkpoints):
    shutil.copytree(checkpoints["nli"], tmp_path / "nli")
    config = json.loads((tmp_path / "nli" / "config.json").read_text())
    del config["id2label"], config["label2id"]
    (tmp_path / "nli" / "config.json").write_text(json.dumps(config))
    model, _ = load_model(tmp_path / "nli", "sequence-classification")
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
