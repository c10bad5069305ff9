"""minideberta.weights: loading every checkpoint layout, saving, renaming, matching."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_safetensors
from safetensors.torch import save_file as torch_save_safetensors

from minideberta.checkpoints import weights
from minideberta.checkpoints.weights import load_state_dict, match_state_dict, save_safetensors, to_hf_names

TIED = {"cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias"}


def tiny_config():
    from transformers import DebertaV2Config

    return DebertaV2Config(vocab_size=50, hidden_size=16, num_attention_heads=2,
                           num_hidden_layers=2, intermediate_size=32, max_position_embeddings=64,
                           relative_attention=True, position_buckets=4,
                           pos_att_type=["p2c", "c2p"])


@pytest.fixture(scope="module")
def mlm():
    from transformers import DebertaV2ForMaskedLM

    torch.manual_seed(0)
    return DebertaV2ForMaskedLM(tiny_config()).eval()


def numpy_state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def assert_equal_dicts(loaded, reference):
    assert sorted(loaded) == sorted(reference)
    for name, ref in reference.items():
        assert loaded[name].dtype == ref.dtype and np.array_equal(loaded[name], ref), name


def mixed_tensors():
    g = torch.Generator().manual_seed(1)
    return {"f32": torch.randn(3, 4, generator=g), "f16": torch.randn(5, generator=g).half(),
            "bf16": torch.randn(2, 3, generator=g).bfloat16(), "i64": torch.arange(3),
            "bool": torch.tensor([True, False]), "scalar": torch.tensor(1.5)}


def reference(tensors):
    return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in tensors.items()}


# --- reading -------------------------------------------------------------------------------

def test_safetensors_from_torch_every_dtype(tmp_path):
    tensors = mixed_tensors()
    torch_save_safetensors(tensors, tmp_path / "model.safetensors")
    loaded = load_state_dict(tmp_path / "model.safetensors")
    assert_equal_dicts(loaded, reference(tensors))
    assert loaded["bf16"].dtype == np.float32 and loaded["f16"].dtype == np.float16
    assert all(a.flags.c_contiguous and a.flags.writeable for a in loaded.values())


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_bin_file_and_folder(tmp_path, legacy):
    tensors = mixed_tensors()
    torch.save(tensors, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    assert_equal_dicts(load_state_dict(tmp_path), reference(tensors))
    assert_equal_dicts(load_state_dict(tmp_path / "pytorch_model.bin"), reference(tensors))


def test_folder_prefers_safetensors(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    torch_save_safetensors({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    assert np.array_equal(load_state_dict(tmp_path)["w"], np.ones(2, np.float32))


def write_shards(folder, tensors, kind):
    names = list(tensors)
    shards = {f"model-0000{i + 1}-of-00002.{kind}": names[i::2] for i in range(2)}
    for shard, keys in shards.items():
        part = {k: tensors[k] for k in keys}
        if kind == "bin":
            torch.save(part, folder / shard)
        else:
            torch_save_safetensors(part, folder / shard)
    index = {"metadata": {}, "weight_map": {k: s for s, keys in shards.items() for k in keys}}
    name = "pytorch_model.bin.index.json" if kind == "bin" else "model.safetensors.index.json"
    (folder / name).write_text(json.dumps(index))


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_sharded_checkpoint_reads_each_shard_once(tmp_path, monkeypatch, kind):
    tensors = mixed_tensors()
    write_shards(tmp_path, tensors, kind)
    reads, real_load_file = [], weights._load_file

    def counting_load_file(path):
        reads.append(path.name)
        return real_load_file(path)

    monkeypatch.setattr(weights, "_load_file", counting_load_file)
    assert_equal_dicts(load_state_dict(tmp_path), reference(tensors))
    assert reads[0].endswith(".index.json")
    assert sorted(reads[1:]) == ["model-00001-of-00002." + kind, "model-00002-of-00002." + kind]


def test_shard_index_naming_an_absent_tensor(tmp_path):
    write_shards(tmp_path, mixed_tensors(), "safetensors")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["ghost"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="shards that lack them: ghost"):
        load_state_dict(tmp_path)


def test_transformers_checkpoints(tmp_path, mlm):
    """save_pretrained drops the tied decoder copies; torch.save of state_dict() keeps them."""
    state = numpy_state(mlm)
    saved = {k: v for k, v in state.items() if k not in TIED}
    mlm.save_pretrained(tmp_path / "single")
    assert_equal_dicts(load_state_dict(tmp_path / "single"), saved)
    mlm.save_pretrained(tmp_path / "sharded", max_shard_size="10KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    assert_equal_dicts(load_state_dict(tmp_path / "sharded"), saved)
    torch.save(mlm.state_dict(), tmp_path / "pytorch_model.bin")
    assert_equal_dicts(load_state_dict(tmp_path), state)


# --- writing -------------------------------------------------------------------------------

def test_save_safetensors_round_trip(tmp_path):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    state = {"t": base.T, "same": base, "h": np.ones(3, np.float16), "i": np.arange(2),
             "scalar": np.array(2.5), "mask": np.array([True, False])}
    save_safetensors(state, tmp_path / "a.safetensors")
    back = torch_load_safetensors(tmp_path / "a.safetensors")
    for name, a in state.items():
        assert back[name].numpy().dtype == a.dtype and back[name].shape == a.shape
        assert np.array_equal(back[name].numpy(), a)
    from safetensors import safe_open

    with safe_open(tmp_path / "a.safetensors", "np") as f:
        assert f.metadata() == {"format": "pt"}
    save_safetensors(state, tmp_path / "b.safetensors", metadata={"note": "x"})
    with safe_open(tmp_path / "b.safetensors", "np") as f:
        assert f.metadata() == {"note": "x"}


def test_transformers_loads_what_we_save(tmp_path, mlm):
    from transformers import DebertaV2ForMaskedLM

    state = {k: v for k, v in numpy_state(mlm).items() if k not in TIED}
    mlm.config.save_pretrained(tmp_path)
    save_safetensors(state, tmp_path / "model.safetensors")
    again = DebertaV2ForMaskedLM.from_pretrained(tmp_path)
    assert_equal_dicts(numpy_state(again), numpy_state(mlm))


# --- names ---------------------------------------------------------------------------------

def to_microsoft(hf_state, prefix=""):
    """HF legacy names -> Microsoft's: backbone under ``prefix``, MLM head as lm_predictions."""
    out = {}
    for name, a in hf_state.items():
        if name in TIED:
            continue
        name = name.replace("cls.predictions.transform.", "lm_predictions.lm_head.")
        name = name.replace("cls.predictions.bias", "lm_predictions.lm_head.bias")
        out[prefix + name[len("deberta."):] if name.startswith("deberta.") else name] = a
    return out


@pytest.mark.parametrize("prefix", ["", "deberta.", "bert."])
def test_microsoft_names_to_hf(mlm, prefix):
    state = {k: v for k, v in numpy_state(mlm).items() if k not in TIED}
    ms = to_microsoft(state, prefix)
    assert "lm_predictions.lm_head.dense.weight" in ms
    assert f"{prefix}encoder.rel_embeddings.weight" in ms
    renamed = to_hf_names(ms, state)
    assert_equal_dicts(renamed, state)
    assert all(renamed[k] is ms[m] for k, m in zip(renamed, ms))  # renamed, never copied


def test_prefix_follows_the_model():
    from transformers import DebertaV2Model

    base = DebertaV2Model(tiny_config())
    expected = set(base.state_dict())
    stored = {"deberta." + k: np.zeros(1) for k in expected}
    assert set(to_hf_names(stored, expected)) == expected  # a bare model has no deberta.


def test_heads_by_either_name():
    stored = {"cls.predictions.transform.dense.weight": 1, "cls.predictions.bias": 2,
              "mask_predictions.classifer.weight": 3, "mask_predictions.LayerNorm.bias": 4,
              "pooler.dense.weight": 5, "something.else": 6}
    expected = {"lm_predictions.lm_head.dense.weight", "lm_predictions.lm_head.bias",
                "mask_predictions.classifier.weight", "mask_predictions.LayerNorm.bias",
                "pooler.dense.weight"}
    assert to_hf_names(stored, expected) == {
        "lm_predictions.lm_head.dense.weight": 1, "lm_predictions.lm_head.bias": 2,
        "mask_predictions.classifier.weight": 3, "mask_predictions.LayerNorm.bias": 4,
        "pooler.dense.weight": 5, "something.else": 6}


def test_two_names_for_one_parameter():
    stored = {"embeddings.LayerNorm.weight": 1, "deberta.embeddings.LayerNorm.weight": 2}
    with pytest.raises(ValueError, match="embeddings.LayerNorm.weight and deberta.embeddings"):
        to_hf_names(stored, {"deberta.embeddings.LayerNorm.weight"})


# --- matching ------------------------------------------------------------------------------

def test_match_keeps_arrays_and_reports_unexpected(mlm):
    state = {k: v.astype(np.float16) for k, v in numpy_state(mlm).items()}
    state["deberta.embeddings.token_type_embeddings.weight"] = np.zeros((2, 16))
    expected = {k: v.shape for k, v in state.items() if k not in TIED and "token_type" not in k}
    params, unexpected = match_state_dict(expected, state, TIED)
    assert unexpected == ["deberta.embeddings.token_type_embeddings.weight"]
    assert set(params) == set(expected)
    assert all(params[k] is state[k] and params[k].dtype == np.float16 for k in params)


def test_match_fills_a_missing_source_from_its_tied_copy():
    emb = np.arange(6.0).reshape(3, 2)
    state = {"cls.predictions.decoder.weight": emb, "cls.predictions.bias": np.zeros(3)}
    expected = {"deberta.embeddings.word_embeddings.weight": (3, 2), "cls.predictions.bias": (3,),
                "cls.predictions.decoder.weight": (3, 2)}
    params, unexpected = match_state_dict(expected, state, TIED)
    assert params["deberta.embeddings.word_embeddings.weight"] is emb and unexpected == []
    assert "cls.predictions.decoder.weight" not in params


def test_match_lists_every_missing_name_and_wrong_shape():
    expected = {"b.weight": (2,), "a.weight": (2,), "c.weight": (3, 4), "d.weight": (1,)}
    state = {"c.weight": np.zeros((4, 3)), "d.weight": np.zeros(1)}
    with pytest.raises(ValueError) as error:
        match_state_dict(expected, state)
    message = str(error.value)
    assert "2 parameters missing from the checkpoint:\n  a.weight\n  b.weight" in message
    assert "c.weight: the model expects shape (3, 4), the checkpoint has (4, 3)" in message


# --- errors --------------------------------------------------------------------------------

def test_folder_without_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as error:
        load_state_dict(tmp_path)
    message = str(error.value)
    assert "model.safetensors, model.safetensors.index.json, pytorch_model.bin" in message
    assert "config.json" in message


def test_path_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state_dict(tmp_path / "nothing.bin")


def test_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.safetensors").write_bytes(b"just some text, not a header")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_state_dict(tmp_path / "notes.safetensors")
    (tmp_path / "notes.bin").write_text("just some text")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_state_dict(tmp_path / "notes.bin")


def test_damaged_safetensors(tmp_path):
    torch_save_safetensors({"w": torch.ones(8)}, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="damaged or truncated"):
        load_state_dict(tmp_path / "cut.safetensors")
