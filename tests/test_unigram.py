"""The from-scratch unigram tokenizer gives sentencepiece's pieces, on real and random text."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentencepiece import SentencePieceProcessor, sentencepiece_model_pb2

from minideberta.apps.bench.tokenizer import real_sentences
from minideberta.tokenizer.unigram import BYTE, CONTROL, NORMAL, UNKNOWN, Unigram, read_model

HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def unigram(vocab_file):
    return Unigram.from_file(vocab_file)


@pytest.fixture(scope="module")
def corpus(hard_texts):
    """A few hundred real sentences, plus the texts where tokenizers go wrong."""
    return real_sentences(300) + hard_texts


def variant(vocab_file, tmp_path, edit):
    """The official model changed by ``edit(model_proto)``: ``(path, sentencepiece processor)``."""
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(vocab_file.read_bytes())
    edit(model)
    path = tmp_path / "variant.model"
    path.write_bytes(model.SerializeToString())
    return path, SentencePieceProcessor(model_file=str(path))


def test_read_model_matches_sentencepiece(vocab_file, sp):
    model = read_model(vocab_file)
    assert len(model.pieces) == sp.get_piece_size() == 128000
    for i, piece in enumerate(model.pieces):
        assert piece.text == sp.id_to_piece(i)
        assert piece.score == sp.get_score(i)
        kind = CONTROL if sp.is_control(i) else UNKNOWN if sp.is_unknown(i) else BYTE if sp.is_byte(i) else NORMAL
        assert piece.type == kind, i
    reference = sentencepiece_model_pb2.ModelProto()
    reference.ParseFromString(vocab_file.read_bytes())
    spec = reference.normalizer_spec
    assert (model.normalizer_name, model.precompiled_charsmap, model.add_dummy_prefix,
            model.remove_extra_whitespaces, model.escape_whitespaces) == (
        spec.name, spec.precompiled_charsmap, spec.add_dummy_prefix, spec.remove_extra_whitespaces,
        spec.escape_whitespaces) == ("nmt_nfkc", spec.precompiled_charsmap, True, True, True)
    assert model.byte_fallback and model.model_type == 1
    assert read_model(vocab_file.read_bytes()) == model


def test_normalize_matches_sentencepiece(unigram, sp, corpus):
    for text in corpus:
        assert unigram.normalizer.normalize(text) == sp.normalize(text), repr(text)


def test_pieces_match_sentencepiece_on_real_text(unigram, sp, corpus):
    for text in corpus:
        assert unigram.encode(text) == sp.encode(text), repr(text)
        assert unigram.encode_as_pieces(text) == sp.encode(text, out_type=str), repr(text)


@HYPOTHESIS
@given(text=st.text(max_size=30))
def test_pieces_match_sentencepiece_on_generated_text(unigram, sp, text):
    assert unigram.normalizer.normalize(text) == sp.normalize(text)
    assert unigram.encode(text) == sp.encode(text)


def test_whitespace_flags(vocab_file, tmp_path, hard_texts):
    def keep_whitespace(model):
        model.normalizer_spec.add_dummy_prefix = False
        model.normalizer_spec.remove_extra_whitespaces = False

    path, sp = variant(vocab_file, tmp_path, keep_whitespace)
    unigram = Unigram.from_file(path)
    for text in hard_texts:
        assert unigram.normalizer.normalize(text) == sp.normalize(text), repr(text)
        assert unigram.encode(text) == sp.encode(text), repr(text)


def test_unknown_runs_without_byte_fallback(no_byte_fallback_vocab):
    sp = SentencePieceProcessor(model_file=str(no_byte_fallback_vocab))
    unigram = Unigram.from_file(no_byte_fallback_vocab)
    for text in ["谛谛 x谛a谛", "𓀀", "a 𓀀𓀀 b <0x41>"]:
        assert unigram.encode(text) == sp.encode(text)
        assert unigram.encode_as_pieces(text) == sp.encode(text, out_type=str)
    assert unigram.encode("谛谛") == [507, 3]  # one [UNK] for the run


def test_ties_go_to_the_longer_last_piece(tmp_path):
    """"▁ab" and "▁a" + "b" score the same: sentencepiece (and Unigram) keep "▁ab"."""
    model = sentencepiece_model_pb2.ModelProto()
    for text, score, kind in [("<unk>", 0.0, UNKNOWN), ("▁", -1.0, NORMAL), ("▁a", -1.0, NORMAL),
                              ("b", -1.0, NORMAL), ("▁ab", -2.0, NORMAL), ("a", -3.0, NORMAL)]:
        model.pieces.add(piece=text, score=score, type=kind)
    model.trainer_spec.model_type = 1
    model.normalizer_spec.name = "identity"
    path = tmp_path / "tiny.model"
    path.write_bytes(model.SerializeToString())
    sp, unigram = SentencePieceProcessor(model_file=str(path)), Unigram.from_file(path)
    for text in ["ab", "ab ab", "abab", "ba", "a  b", "xab"]:
        assert unigram.encode_as_pieces(text) == sp.encode(text, out_type=str), text
    assert unigram.encode_as_pieces("ab") == ["▁ab"]


def test_not_a_model(tmp_path, vocab_file):
    for junk in (b"hello world\n", b"\xff\xff\xff", b""):
        with pytest.raises(ValueError, match="not a sentencepiece model"):
            read_model(junk)

    def bpe(model):
        model.trainer_spec.model_type = 2

    path, _ = variant(vocab_file, tmp_path, bpe)
    with pytest.raises(ValueError, match="not UNIGRAM"):
        Unigram.from_file(path)
