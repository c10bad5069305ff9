"""Damaged tokenizer files: spm.model (sentencepiece and the from-scratch unigram parser),
tokenizer_config.json and special_tokens_map.json.

Proves, on generated corruptions of a small valid vocabulary (built here from the official one's
specs: DeBERTa's special pieces, the 256 byte pieces, a few words; with and without the nmt_nfkc
character map): a load gives a tokenizer that encodes text, or a ValueError / FileNotFoundError
naming the file; nothing else escapes. And the settings files' values are checked by type.
"""
import json
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentencepiece import sentencepiece_model_pb2

from minideberta import DebertaV2Tokenizer
from minideberta.tokenizer.unigram import Unigram

from corruption import EXAMPLES, assert_contract, byte_edits, damaged, json_values

TEXT = "Hello the world, ﬁne café 東京 [MASK] ok"
WORDS = ["▁", "▁the", "▁a", "e", "t", "h", "a", "s", "▁is", "n", "o", "▁hello", "l", "r"]


def tiny_vocabulary(official, charsmap):
    """A DeBERTa-like spm.model of 274 pieces, as bytes: [PAD] [CLS] [SEP] [UNK], <0x00>..<0xFF>, WORDS."""
    spec = sentencepiece_model_pb2.ModelProto()
    spec.ParseFromString(official.read_bytes())
    model = sentencepiece_model_pb2.ModelProto()
    for text, kind in [("[PAD]", 3), ("[CLS]", 3), ("[SEP]", 3), ("[UNK]", 2)]:
        model.pieces.add(piece=text, score=0.0, type=kind)
    for byte in range(256):
        model.pieces.add(piece=f"<0x{byte:02X}>", score=0.0, type=6)
    for i, text in enumerate(WORDS):
        model.pieces.add(piece=text, score=-1.0 - i, type=1)
    model.trainer_spec.CopyFrom(spec.trainer_spec)
    model.trainer_spec.vocab_size = len(model.pieces)
    model.normalizer_spec.CopyFrom(spec.normalizer_spec)
    if not charsmap:
        model.normalizer_spec.name = "identity"
        model.normalizer_spec.precompiled_charsmap = b""
    return model.SerializeToString()


@pytest.fixture(scope="module")
def vocabularies(vocab_file, tmp_path_factory):
    return ({charsmap: tiny_vocabulary(vocab_file, charsmap) for charsmap in (False, True)},
            tmp_path_factory.mktemp("tokenizer"))


def folder_with(case, files):
    folder = case / "tok"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def load_both(folder):
    """Both readers of spm.model, each made to encode a text."""
    assert DebertaV2Tokenizer.from_pretrained(folder)(TEXT)["input_ids"]
    assert Unigram.from_file(folder / "spm.model").encode(TEXT)


def test_the_tiny_vocabularies_tokenize_alike(vocabularies):
    models, case = vocabularies
    for data in models.values():
        folder = folder_with(case, {"spm.model": data})
        tok, unigram = DebertaV2Tokenizer.from_pretrained(folder), Unigram.from_file(folder / "spm.model")
        plain = TEXT.replace("[MASK]", "")
        assert tok(plain, add_special_tokens=False)["input_ids"] == unigram.encode(plain)
        assert tok.convert_ids_to_tokens(tok("hello")["input_ids"]) == ["[CLS]", "▁hello", "[SEP]"]


@EXAMPLES
@given(edits=byte_edits(5000))
def test_damaged_spm_model(vocabularies, edits):
    models, case = vocabularies
    folder = folder_with(case, {"spm.model": damaged(models[False], edits)})
    assert_contract(lambda: load_both(folder), folder)


@EXAMPLES
@given(edits=byte_edits(250_000))
def test_damaged_spm_model_with_character_map(vocabularies, edits):
    models, case = vocabularies
    folder = folder_with(case, {"spm.model": damaged(models[True], edits)})
    assert_contract(lambda: load_both(folder), folder)


SETTINGS = ["do_lower_case", "split_by_punct", "model_max_length", "vocab_type"]
SPECIALS = ["pad_token", "cls_token", "sep_token", "unk_token", "mask_token", "bos_token", "eos_token"]


@EXAMPLES
@given(name=st.sampled_from(["tokenizer_config.json", "special_tokens_map.json"]), data=st.data())
def test_edited_settings_files(vocabularies, name, data):
    models, case = vocabularies
    valid = {"tokenizer_config.json": {"do_lower_case": False, "split_by_punct": False, "vocab_type": "spm",
                                       "model_max_length": 512},
             "special_tokens_map.json": {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                                         "unk_token": "[UNK]", "mask_token": {"content": "[MASK]"}}}[name]
    edit = data.draw(st.sampled_from(["value", "value", "document", "bytes"]))
    if edit == "value":
        key = data.draw(st.sampled_from(SETTINGS if name.startswith("tokenizer") else SPECIALS))
        valid[key] = data.draw(st.one_of(json_values(), st.sampled_from(["[PAD]", "[MASK]", "<s>"])))
    elif edit == "document":
        valid = data.draw(json_values())
    text = json.dumps(valid).encode()
    if edit == "bytes":
        text = damaged(text, data.draw(byte_edits(len(text))))
    folder = folder_with(case, {"spm.model": models[False], name: text})
    assert_contract(lambda: DebertaV2Tokenizer.from_pretrained(folder)(TEXT), folder)


@pytest.mark.parametrize("cut", [0, 1, 10, 100, 1000, 4000])
def test_truncated_spm_model(vocabularies, cut):
    models, case = vocabularies
    folder = folder_with(case, {"spm.model": models[False][:cut]})
    for load in (lambda: DebertaV2Tokenizer.from_pretrained(folder), lambda: Unigram.from_file(folder / "spm.model")):
        with pytest.raises(ValueError) as error:
            load()
        assert str(folder / "spm.model") in str(error.value)


@pytest.mark.parametrize("name, content, match", [
    ("tokenizer_config.json", {"do_lower_case": "yes"}, "do_lower_case must be true or false"),
    ("tokenizer_config.json", {"model_max_length": 1.5}, "model_max_length must be a non-negative integer"),
    ("tokenizer_config.json", [1], "should hold a JSON object"),
    ("special_tokens_map.json", {"mask_token": "<mask>"}, "sets mask_token to '<mask>'"),
    ("special_tokens_map.json", {"pad_token": {"content": 0}}, "sets pad_token to 0"),
])
def test_bad_settings_name_the_file_and_key(vocabularies, name, content, match):
    models, case = vocabularies
    folder = folder_with(case, {"spm.model": models[False], name: json.dumps(content).encode()})
    with pytest.raises(ValueError, match=match) as error:
        DebertaV2Tokenizer.from_pretrained(folder)
    assert str(folder / name) in str(error.value)
