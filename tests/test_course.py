"""The course's helpers (minideberta/apps/course/__init__.py) that keep the notebooks' examples honest."""
import numpy as np
import pytest

from minideberta import DebertaV2Tokenizer
from minideberta.apps import course


@pytest.fixture(scope="module")
def official():
    """The official v3 vocabulary (128000 pieces + [MASK]), committed in weights/deberta-v3-tokenizer."""
    return DebertaV2Tokenizer.from_pretrained(course.VOCABULARY)


def test_one_piece_is_the_id_of_a_single_real_piece(official):
    assert official.tokenize("Paris") == ["▁Paris"]
    assert course.one_piece(official, "Paris") == official.convert_tokens_to_ids(["▁Paris"])[0] != official.unk_token_id


def test_a_word_of_two_pieces_is_refused(official):
    """The bug of notebook 09: "ate" was "▁a" + "te" and only "▁a" was swapped in."""
    pieces = official.tokenize("hieroglyph")
    assert len(pieces) > 1
    with pytest.raises(ValueError, match=r"'hieroglyph' is \[.*\].*not one real piece"):
        course.one_piece(official, "hieroglyph")


def test_a_piece_missing_from_the_vocabulary_is_never_unk(official, monkeypatch):
    """The bug of notebook 03 (now 04): convert_tokens_to_ids(["▁Paris"]) on a vocabulary without that piece
    is [UNK], silently. one_piece asks the tokenizer how it writes the word, and refuses [UNK]."""
    assert official.convert_tokens_to_ids(["▁Zzyzxqwv"]) == [official.unk_token_id]  # the silent failure
    monkeypatch.setattr(official, "tokenize", lambda text: [official.unk_token])
    with pytest.raises(ValueError, match="not one real piece"):
        course.one_piece(official, "Paris")


def test_first_one_piece_and_position_of(official):
    word, at = course.first_one_piece(official, ["hieroglyph", "Paris"])
    assert word == "Paris" and at == course.one_piece(official, "Paris")
    with pytest.raises(ValueError, match="none of these words is one piece.*'hieroglyph' -> "):
        course.first_one_piece(official, ["hieroglyph"])
    row = np.array(official("The chef cooked a meal in Paris.")["input_ids"])
    assert row[course.position_of(official, row, "Paris")] == at
    with pytest.raises(ValueError, match="occurs 0 times"):
        course.position_of(official, row, "London")


def test_pieces_of_refuses_unk(official, monkeypatch):
    row = np.array(official("A new store.")["input_ids"])
    assert len(course.pieces_of(official, row, "store")) == 1
    monkeypatch.setattr(official, "tokenize", lambda text: ["▁Zzyzxqwv"])
    with pytest.raises(ValueError, match=r"holds \[UNK\]"):
        course.pieces_of(official, row, "store")


def test_the_shipped_examples_are_asserted_only_on_the_shipped_pair(monkeypatch):
    """The notebooks check their examples against the shipped pair (the original word far above chance, swaps
    scored above the original) only when they run on it."""
    monkeypatch.delenv(course.ENVIRONMENT, raising=False)
    assert course.is_shipped() == course.is_trained() is True  # a clone holds the embedded pair
    monkeypatch.setenv(course.ENVIRONMENT, "some/other/checkpoint")
    assert course.is_trained() and not course.is_shipped()
    monkeypatch.delenv(course.ENVIRONMENT)
    monkeypatch.setattr(course.hub, "embedded_folder", lambda name: None)  # a checkout without weights/
    assert not course.is_trained() and not course.is_shipped()
