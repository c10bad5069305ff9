"""The tokenizer against sentencepiece on the official DeBERTa-v3 vocabulary.

Ids must equal sentencepiece's for any text; the layout, truncation, padding, overflow
windows and offsets are checked on top of that, and a last test records where
transformers 5.x agrees and where it does not.
"""
import json
import shutil

import numpy as np
import pytest
import sentencepiece
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minideberta.tokenizer.deberta_tokenizer import DebertaV2Tokenizer, DebertaV2TokenizerFast
from minideberta.tokenizer.encoding import BatchEncoding

from conftest import VOCAB_FILE

SPECIAL_STRINGS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")
# The ids, from sentencepiece on the official vocabulary (the reference), not pasted: [PAD], [CLS],
# [SEP] and [UNK] are pieces of spm.model; [MASK] is added after its last piece.
_SP = sentencepiece.SentencePieceProcessor(model_file=str(VOCAB_FILE))
PAD, CLS, SEP, UNK = (_SP.piece_to_id(piece) for piece in SPECIAL_STRINGS[:4])
MASK = _SP.get_piece_size()
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like text: words, spaces of every kind, and the characters that
# normalization rewrites.
text_like = st.lists(
    st.sampled_from(["the", "Cat", "naïve", "DeBERTa", "42", " ", "  ", "\t", "\n", "\u3000", ",", ".", "!",
                     "…", "ﬁ", "Ｆｕｌｌ", "谛", "😀", "e\u0301", "ｶﾞ", "①", "\u200b", "\x00", "北京"]),
    max_size=30,
).map("".join)
any_text = st.one_of(st.text(max_size=40), text_like)


@pytest.fixture(scope="module", params=[DebertaV2Tokenizer, DebertaV2TokenizerFast], ids=["slow", "fast"])
def tok(request, vocab_file):
    return request.param(vocab_file)


@pytest.fixture(scope="module")
def fast(vocab_file):
    return DebertaV2TokenizerFast(vocab_file)


def without_specials(text):
    return not any(s in text for s in SPECIAL_STRINGS)


# ------------------------------------------------------------------ ids

def test_ids_equal_sentencepiece_on_hard_texts(tok, sp, hard_texts):
    for text in hard_texts:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), repr(text)
        assert tok(text)["input_ids"] == [CLS] + sp.encode(text) + [SEP], repr(text)


def test_batch_ids_equal_sentencepiece(tok, sp, hard_texts):
    enc = tok(hard_texts, add_special_tokens=False)
    assert enc["input_ids"] == [sp.encode(text) for text in hard_texts]


@HYPOTHESIS
@given(texts=st.lists(any_text, min_size=1, max_size=4))
def test_ids_equal_sentencepiece_on_generated_text(fast, sp, texts):
    assume(all(without_specials(t) for t in texts))
    assert fast(texts, add_special_tokens=False)["input_ids"] == [sp.encode(t) for t in texts]
    assert fast.encode(texts[0]) == [CLS] + sp.encode(texts[0]) + [SEP]


def test_documented_examples(tok, sp):
    """The examples of tests/fixtures/tokenization_check.md, each against sentencepiece computed here."""
    for text in ("Hello world! DeBERTa improves BERT and RoBERTa.",
                 "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ and ﬁ ligature, café, naïve… “quotes” — dash"):
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text), text
        assert tok.tokenize(text) == sp.encode(text, out_type=str), text
    pair = tok("Hello world", "Second one")
    first, second = sp.encode("Hello world"), sp.encode("Second one")
    assert pair["input_ids"] == [CLS, *first, SEP, *second, SEP]
    assert pair["token_type_ids"] == [0] * (len(first) + 2) + [1] * (len(second) + 1)
    # [MASK] is not a piece: the text around it is encoded on its own, as sentencepiece sees it.
    assert tok.encode("Paris is the [MASK] of France.") == [
        CLS, *sp.encode("Paris is the"), MASK, *sp.encode(" of France."), SEP]


def test_byte_fallback_pieces(tok, sp):
    assert tok.tokenize("谛") == sp.encode("谛", out_type=str)
    assert tok.tokenize("谛")[1:] == ["<0xE8>", "<0xB0>", "<0x9B>"]  # 谛 is U+8C1B: UTF-8 bytes E8 B0 9B
    ids = tok.encode("谛", add_special_tokens=False)
    assert ids == sp.encode("谛") == [sp.piece_to_id(piece) for piece in tok.tokenize("谛")]


def test_slow_and_fast_give_identical_output(vocab_file, hard_texts):
    slow, fast = DebertaV2Tokenizer(vocab_file), DebertaV2TokenizerFast(vocab_file)
    questions = [f"Question {i} [MASK]?" for i in range(len(hard_texts))]
    for args, options in [
        ((questions, hard_texts), dict(truncation="only_second", max_length=16, stride=2, padding=True,
                                       return_overflowing_tokens=True, return_offsets_mapping=True,
                                       return_special_tokens_mask=True)),
        ((hard_texts,), dict(padding=True, return_tensors="np", return_offsets_mapping=True)),
    ]:
        a, b = slow(*args, **options), fast(*args, **options)
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
        n_rows = len(a["input_ids"])
        assert [a.word_ids(i) for i in range(n_rows)] == [b.word_ids(i) for i in range(n_rows)]


# ------------------------------------------------------- special tokens

def test_special_token_ids(tok, sp):
    assert (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id) == (
        PAD, CLS, SEP, UNK, MASK)
    assert (PAD, CLS, SEP, UNK, MASK) == (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id(), 128000)
    assert tok.vocab_size == sp.get_piece_size() and len(tok) == sp.get_piece_size() + 1
    assert tok.convert_tokens_to_ids(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]) == [PAD, CLS, SEP, UNK, MASK]
    assert tok.convert_ids_to_tokens([PAD, CLS, SEP, UNK, MASK]) == list(SPECIAL_STRINGS)
    assert tok.convert_tokens_to_ids("no such piece") == UNK
    assert tok.get_vocab()["▁Hello"] == sp.piece_to_id("▁Hello") and tok.get_vocab()["[MASK]"] == MASK


def test_special_strings_in_text_are_single_tokens(tok, sp):
    text = "a[MASK]b [SEP][PAD] c[CLS][UNK]"
    expected = sp.encode("a") + [MASK] + sp.encode("b ") + [SEP, PAD] + sp.encode(" c") + [CLS, UNK]
    assert tok.encode(text, add_special_tokens=False) == expected
    assert tok.tokenize("Hello [MASK]!") == ["▁Hello", "[MASK]", "▁!"]


def test_special_token_helpers(tok):
    assert tok.build_inputs_with_special_tokens([7, 8]) == [CLS, 7, 8, SEP]
    assert tok.build_inputs_with_special_tokens([7, 8], [9]) == [CLS, 7, 8, SEP, 9, SEP]
    assert tok.get_special_tokens_mask([7, 8], [9]) == [1, 0, 0, 1, 0, 1]
    assert tok.get_special_tokens_mask([CLS, 7, SEP, PAD], already_has_special_tokens=True) == [1, 0, 1, 1]
    assert tok.create_token_type_ids_from_sequences([7, 8]) == [0, 0, 0, 0]
    assert tok.create_token_type_ids_from_sequences([7, 8], [9]) == [0, 0, 0, 0, 1, 1]


def test_pair_layout_and_masks(tok, sp):
    a, b = sp.encode("The cat sat."), sp.encode("On the mat.")
    enc = tok("The cat sat.", "On the mat.", return_special_tokens_mask=True)
    assert enc.input_ids == [CLS] + a + [SEP] + b + [SEP]
    assert enc.token_type_ids == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert enc.attention_mask == [1] * (len(a) + len(b) + 3)
    assert enc.special_tokens_mask == [1] + [0] * len(a) + [1] + [0] * len(b) + [1]
    assert enc.sequence_ids() == [None] + [0] * len(a) + [None] + [1] * len(b) + [None]
    bare = tok("The cat sat.", "On the mat.", add_special_tokens=False, return_special_tokens_mask=True)
    assert bare.input_ids == a + b and bare.token_type_ids == [0] * len(a) + [1] * len(b)
    assert bare.special_tokens_mask == [0] * (len(a) + len(b))


def test_batch_encoding_access(tok):
    enc = tok(["Hello world", "Hi"])
    assert isinstance(enc, BatchEncoding)
    assert set(enc.keys()) == {"input_ids", "token_type_ids", "attention_mask"}
    assert enc.input_ids is enc["input_ids"]
    with pytest.raises(AttributeError, match="no field 'offset_mapping'"):
        enc.offset_mapping  # noqa: B018  (the attribute read is what raises)
    assert tok("Hello world", return_token_type_ids=False, return_attention_mask=False).keys() == {"input_ids"}


def test_word_ids(tok):
    enc = tok("Hello world, naïve… a[MASK]b", "Second   text!")
    tokens = tok.convert_ids_to_tokens(enc.input_ids)
    assert tokens == ["[CLS]", "▁Hello", "▁world", ",", "▁naïve", ".", ".", ".", "▁a", "[MASK]", "▁b", "[SEP]",
                      "▁Second", "▁text", "!", "[SEP]"]
    assert enc.word_ids() == [None, 0, 1, 1, 2, 2, 2, 2, 3, 4, 5, None, 0, 1, 1, None]


# ------------------------------------------------------------ truncation

@pytest.mark.parametrize("len_a, len_b, budget, kept_a, kept_b", [
    (5, 4, 1, 1, 0), (4, 4, 1, 0, 1), (5, 4, 3, 2, 1), (4, 4, 3, 1, 2), (3, 6, 3, 1, 2),
    (2, 9, 5, 2, 3), (9, 2, 5, 3, 2), (3, 6, 8, 3, 5), (7, 7, 13, 6, 7), (1, 1, 0, 0, 0)])
def test_longest_first_cuts_the_longer_sequence_first(tok, len_a, len_b, budget, kept_a, kept_b):
    a, b = " ".join(["a"] * len_a), " ".join(["b"] * len_b)  # one token per letter
    enc = tok(a, b, truncation="longest_first", max_length=budget + 3)
    assert enc.input_ids == [CLS] + [266] * kept_a + [SEP] + [2165] * kept_b + [SEP]


def test_truncation_strategies(tok, sp):
    a, b = sp.encode("one two three four five"), sp.encode("six seven eight")
    text_a, text_b = "one two three four five", "six seven eight"
    assert tok(text_a, truncation=True, max_length=4).input_ids == [CLS] + a[:2] + [SEP]
    only_first = tok(text_a, text_b, truncation="only_first", max_length=8)
    assert only_first.input_ids == [CLS] + a[:2] + [SEP] + b + [SEP]
    only_second = tok(text_b, text_a, truncation="only_second", max_length=8)
    assert only_second.input_ids == [CLS] + b + [SEP] + a[:2] + [SEP]
    assert tok(text_a, truncation=False, max_length=4).input_ids == [CLS] + a + [SEP]
    assert tok(text_a, text_b, max_length=100, truncation=True).input_ids == [CLS] + a + [SEP] + b + [SEP]


def test_max_length_alone_truncates_with_a_warning(tok, sp):
    with pytest.warns(UserWarning, match="truncating 'longest_first'"):
        enc = tok("one two three four five", max_length=4)
    assert enc.input_ids == [CLS] + sp.encode("one two three four five")[:2] + [SEP]


def test_model_max_length_from_config(vocab_file, tmp_path):
    shutil.copyfile(vocab_file, tmp_path / "spm.model")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 5, "vocab_type": "spm"}))
    tok = DebertaV2TokenizerFast.from_pretrained(tmp_path)
    assert len(tok("a b c d e f g h", truncation=True).input_ids) == 5
    assert len(tok("a b c d e f g h").input_ids) == 10


# --------------------------------------------------------------- padding

def test_padding_modes(tok, sp):
    texts = ["a b c", "Hello"]
    longest = tok(texts, padding=True, return_special_tokens_mask=True, return_offsets_mapping=True)
    assert longest.input_ids == [[CLS, 266, 2165, 2285, SEP], [CLS, 5365, SEP, PAD, PAD]]
    assert longest.attention_mask == [[1] * 5, [1, 1, 1, 0, 0]]
    assert longest.token_type_ids == [[0] * 5, [0] * 5]
    assert longest.special_tokens_mask == [[1, 0, 0, 0, 1], [1, 0, 1, 1, 1]]
    assert longest.offset_mapping[1] == [(0, 0), (0, 5), (0, 0), (0, 0), (0, 0)]
    assert longest.word_ids(1) == [None, 0, None, None, None]
    assert tok(texts, padding="longest") == tok(texts, padding=True)
    fixed = tok(texts, padding="max_length", max_length=7)
    assert [len(row) for row in fixed.input_ids] == [7, 7]
    assert tok(texts, padding=False).input_ids == [[CLS, 266, 2165, 2285, SEP], [CLS, 5365, SEP]]
    pair = tok(["a", "b c d"], ["x y", "z"], padding=True)
    assert pair.token_type_ids == [[0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1, 1]]


def test_numpy_output(tok):
    enc = tok(["a b c", "Hello"], ["x", "y z"], padding=True, return_tensors="np", return_offsets_mapping=True)
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        assert enc[name].dtype == np.int64 and enc[name].shape == (2, 7)
    assert enc.offset_mapping.shape == (2, 7, 2) and enc.offset_mapping.dtype == np.int64
    single = tok("Hello world", return_tensors="np")
    assert single.input_ids.shape == (1, 4) and single.input_ids.tolist() == [[CLS, 5365, 447, SEP]]
    assert tok([""], [""], return_tensors="np").input_ids.tolist() == [[CLS, SEP, SEP]]


def test_ragged_numpy_output_asks_for_padding(tok):
    with pytest.raises(ValueError, match="padding=True"):
        tok(["a b c", "Hello"], return_tensors="np")


# ---------------------------------------------------------- overflow windows

def test_overflow_windows_for_question_answering(tok, sp):
    question = "What is it?"
    context = " ".join(f"w{i}" for i in range(30))
    q, c = sp.encode(question), sp.encode(context)
    max_length, stride = 16, 4
    enc = tok([question, "Short?"], [context, "tiny"], truncation="only_second", max_length=max_length,
              stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    rows = enc.input_ids
    assert enc.overflow_to_sample_mapping == [0] * (len(rows) - 1) + [1]
    assert rows[-1] == [CLS] + sp.encode("Short?") + [SEP] + sp.encode("tiny") + [SEP]
    # Windows of the context, `stride` tokens overlapping, the last one reaching the end.
    window = max_length - len(q) - 3
    starts = [0]
    while starts[-1] + window < len(c):
        starts.append(starts[-1] + window - stride)
    assert len(rows) - 1 == len(starts) > 2
    full = tok(context, add_special_tokens=False, return_offsets_mapping=True)
    for row, start in enumerate(starts):
        context_part = slice(len(q) + 2, -1)
        part = c[start:start + window]
        assert rows[row] == [CLS] + q + [SEP] + part + [SEP]  # the question in every window
        assert enc.offset_mapping[row][context_part] == full.offset_mapping[start:start + window]
        assert enc.word_ids(row)[context_part] == full.word_ids()[start:start + window]
        assert enc.sequence_ids(row) == [None] + [0] * len(q) + [None] + [1] * len(part) + [None]


def test_overflow_of_a_single_text_and_of_the_first_text(tok, sp):
    ids = sp.encode("a b c d e f g")
    enc = tok("a b c d e f g", truncation=True, max_length=5, stride=1, return_overflowing_tokens=True)
    assert enc.input_ids == [[CLS] + ids[s:s + 3] + [SEP] for s in (0, 2, 4)]
    assert enc.overflow_to_sample_mapping == [0, 0, 0]
    pair = tok("a b c d e f g", "x", truncation="only_first", max_length=6, return_overflowing_tokens=True)
    assert pair.input_ids == [[CLS] + ids[s:s + 2] + [SEP] + sp.encode("x") + [SEP] for s in (0, 2, 4, 6)]


# ---------------------------------------------------------------- offsets

def piece_bytes(sp, piece_id):
    piece = sp.id_to_piece(piece_id)
    return bytes([int(piece[3:5], 16)]) if sp.is_byte(piece_id) else piece.encode("utf-8")


def check_offsets(tok, sp, text):
    """Each span, sliced from the input, normalizes to the text of its pieces.

    Pieces that share an original character ("…" -> "." "." ".") share its span; such
    pieces are checked together. A leading "▁" is ignored on both sides: sentencepiece
    adds one in front of any text it normalizes.
    """
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    groups = []  # [start, end, piece ids]
    for piece_id, (start, end) in zip(enc.input_ids, enc.offset_mapping):
        assert 0 <= start < end <= len(text), (text, start, end)
        if groups and start < groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], end)
            groups[-1][2].append(piece_id)
        else:
            assert not groups or start >= groups[-1][1]
            groups.append([start, end, [piece_id]])
    for start, end, piece_ids in groups:
        pieces = b"".join(piece_bytes(sp, i) for i in piece_ids).decode("utf-8")
        assert sp.normalize(text[start:end]).removeprefix("▁") == pieces.removeprefix("▁"), (text, start, end)


def test_offsets_on_hard_texts(tok, sp, hard_texts):
    for text in hard_texts:
        check_offsets(tok, sp, text)


@HYPOTHESIS
@given(text=any_text)
def test_offsets_on_generated_text(fast, sp, text):
    assume(without_specials(text))
    check_offsets(fast, sp, text)


def test_offsets_examples(tok):
    enc = tok("Hello world", return_offsets_mapping=True)
    assert enc.offset_mapping == [(0, 0), (0, 5), (5, 11), (0, 0)]  # "▁world" includes its space
    text = "Ｆｕｌｌ naïve… 谛 [MASK]"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert [(p, text[s:e]) for p, (s, e) in zip(tok.convert_ids_to_tokens(enc.input_ids), enc.offset_mapping)] == [
        ("▁Full", "Ｆｕｌｌ"), ("▁naïve", " naïve"), (".", "…"), (".", "…"), (".", "…"), ("▁", " "),
        ("<0xE8>", "谛"), ("<0xB0>", "谛"), ("<0x9B>", "谛"), ("[MASK]", "[MASK]")]
    pair = tok("Hi", "there you", return_offsets_mapping=True)
    assert pair.offset_mapping == [(0, 0), (0, 2), (0, 0), (0, 5), (5, 9), (0, 0)]  # second text's own positions


def test_offsets_through_lowercasing_that_changes_length(vocab_file, sp):
    tok = DebertaV2TokenizerFast(vocab_file, do_lower_case=True)
    text = "İstanbul ŞEHİR"  # "İ".lower() is "i" + a combining dot: two characters
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc.input_ids == sp.encode(text.lower())
    assert [(p, text[s:e]) for p, (s, e) in zip(tok.convert_ids_to_tokens(enc.input_ids), enc.offset_mapping)] == [
        ("▁i", "İ"), ("\u0307", "İ"), ("stan", "stan"), ("bul", "bul"), ("▁ş", " Ş"), ("e", "E"), ("hi", "Hİ"),
        ("\u0307", "İ"), ("r", "R")]


def test_offsets_without_byte_fallback(no_byte_fallback_vocab):
    """A vocabulary without byte fallback spells unknown characters as [UNK]: offsets still hold."""
    import sentencepiece

    tok = DebertaV2TokenizerFast(no_byte_fallback_vocab)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(no_byte_fallback_vocab))
    expected = {
        "谛谛 x谛a谛": [("▁", "谛"), ("[UNK]", "谛谛"), ("▁x", " x"), ("[UNK]", "谛"), ("a", "a"), ("[UNK]", "谛")],
        "a 𓀀𓀀 b": [("▁a", "a"), ("▁", " "), ("[UNK]", "𓀀𓀀"), ("▁b", " b")],
    }
    for text, pieces in expected.items():
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        assert enc.input_ids == sp.encode(text)
        assert [(p, text[s:e]) for p, (s, e) in zip(tok.convert_ids_to_tokens(enc.input_ids), enc.offset_mapping)] \
            == pieces


# ------------------------------------------------------------ options

def test_do_lower_case(vocab_file, sp, hard_texts):
    tok = DebertaV2Tokenizer(vocab_file, do_lower_case=True)
    for text in hard_texts:
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text.lower())
    assert tok.tokenize("HELLO [MASK]") == ["▁hello", "[MASK]"]


def test_split_by_punct(vocab_file, sp):
    tok = DebertaV2Tokenizer(vocab_file, split_by_punct=True)
    parts = ["Hello", ",", " world", "!", " It", "'", "s", " 3", ".", "5", "…"]
    assert tok.encode("".join(parts), add_special_tokens=False) == [i for p in parts for i in sp.encode(p)]
    check_offsets(tok, sp, "Hello, world! It's 3.5…")


# ---------------------------------------------------------------- decode

def test_decode(tok, sp, hard_texts):
    for text in hard_texts:
        ids = sp.encode(text)
        assert tok.decode(ids) == sp.decode(ids)
    ids = tok.encode("Hello [MASK] world")
    assert tok.decode(ids) == "[CLS] Hello [MASK] world [SEP]"
    assert tok.decode(ids, skip_special_tokens=True) == "Hello world"
    assert tok.decode(np.array(ids)) == tok.decode(ids)
    assert tok.batch_decode(np.array([ids, ids]), skip_special_tokens=True) == ["Hello world"] * 2


# ------------------------------------------------------------- files

def test_from_pretrained_and_save(vocab_file, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copyfile(vocab_file, source / "spm.model")
    (source / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "vocab_type": "spm"}))
    tok = DebertaV2TokenizerFast.from_pretrained(source)
    assert tok.do_lower_case and tok.tokenize("HELLO") == ["▁hello"]
    assert DebertaV2TokenizerFast.from_pretrained(source, do_lower_case=False).tokenize("HELLO") == ["▁HELLO"]
    (path,) = tok.save_vocabulary(tmp_path, filename_prefix="copy")
    assert path.endswith("copy-spm.model") and open(path, "rb").read() == vocab_file.read_bytes()
    saved = tok.save_pretrained(tmp_path / "saved")
    assert len(saved) == 2
    again = DebertaV2Tokenizer.from_pretrained(tmp_path / "saved")
    assert again.do_lower_case and again.encode("Hello World") == tok.encode("Hello World")


# ------------------------------------------------------------- bad input

@pytest.mark.parametrize("bad", [None, 42, b"bytes", [["nested", "list"]], ["ok", None], {"a": 1}])
def test_bad_text_raises_type_error(tok, bad):
    with pytest.raises(TypeError, match="str"):
        tok(bad)


def test_bad_arguments_raise_clear_errors(tok):
    message = "max_length=2 cannot hold the 3 special tokens of a pair; use max_length >= 3"
    with pytest.raises(ValueError, match=message):
        tok("a", "b", truncation=True, max_length=2)
    with pytest.raises(ValueError, match="unknown truncation='sideways'"):
        tok("a", truncation="sideways")
    with pytest.raises(ValueError, match="unknown padding='max'"):
        tok("a", padding="max")
    with pytest.raises(ValueError, match="needs max_length"):
        tok("a", padding="max_length")
    with pytest.raises(ValueError, match="return_tensors='pt'"):
        tok("a", return_tensors="pt")
    with pytest.raises(ValueError, match="same length"):
        tok(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="same length"):
        tok("a", ["c"])
    with pytest.raises(ValueError, match="only_second.*text_pair"):
        tok("a", truncation="only_second", max_length=5)
    with pytest.raises(ValueError, match="the first text alone has 5 tokens"):
        tok("a b c d e", "x y z", truncation="only_second", max_length=8)
    with pytest.raises(ValueError, match="stride=3 must be smaller than the 3 tokens"):
        tok("a b c d e f", truncation=True, max_length=5, stride=3, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="only_first' or 'only_second"):
        tok("a b c d", "e f g h", truncation=True, max_length=6, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="max_length=-1 must be >= 0"):
        tok("a", max_length=-1, truncation=True)
    with pytest.raises(TypeError, match="max_length must be an int"):
        tok("a", max_length="5", truncation=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        tok("a", is_split_into_words=True)
    with pytest.raises(TypeError, match="encode takes one str"):
        tok.encode(["a", "b"])
    with pytest.raises(ValueError, match=r"text 1 is not valid Unicode: '\\ud800' at position 1"):
        tok(["fine", "a\ud800b"])


def test_bad_ids_raise_clear_errors(tok):
    with pytest.raises(ValueError, match="token id 128001 is not in the vocabulary of 128001 tokens"):
        tok.decode([5, 128001])
    with pytest.raises(ValueError, match="token id -1"):
        tok.convert_ids_to_tokens([-1])
    with pytest.raises(TypeError, match="ints"):
        tok.decode([1.5])
    with pytest.raises(TypeError, match="1-D array"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))


def test_bad_vocabulary_files(tmp_path, vocab_file):
    text_file = tmp_path / "vocab.txt"
    text_file.write_text("hello world\n")
    empty = tmp_path / "empty.model"
    empty.write_bytes(b"")
    for path in (text_file, empty):
        with pytest.raises(ValueError, match="is not a sentencepiece model"):
            DebertaV2Tokenizer(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        DebertaV2Tokenizer(tmp_path / "missing.model")
    with pytest.raises(TypeError, match="vocab_file must be a path"):
        DebertaV2Tokenizer(None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"vocab_type": "gpt2"}))
    shutil.copyfile(vocab_file, tmp_path / "spm.model")
    with pytest.raises(ValueError, match="vocab_type='gpt2'"):
        DebertaV2Tokenizer.from_pretrained(tmp_path)


# ------------------------------------------------------ transformers

def test_where_transformers_agrees_and_where_it_does_not(vocab_file, tmp_path, fast, sp):
    """transformers 5.x rebuilds spm.model with NFC and without byte fallback.

    It is loaded with ``from_pretrained(dir)`` from a folder laid out as Microsoft
    ships it (its ``vocab_file=`` argument is ignored in 5.x).
    """
    from transformers import DebertaV2Tokenizer as TransformersTokenizer

    shutil.copyfile(vocab_file, tmp_path / "spm.model")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "vocab_type": "spm"}))
    theirs = TransformersTokenizer.from_pretrained(tmp_path)

    agree = ["Hello world! DeBERTa improves BERT and RoBERTa.", "I was born in 92000, and this is falsé!",
             " \tHeLLo!how  \n Are yoU?  ", "café naïve résumé Zürich", "北京 😀 e\u0301 Å", "a  b\tc",
             "Paris is the [MASK] of France."]
    for text in agree:
        assert fast(text).input_ids == theirs(text)["input_ids"], text

    # Same layout, truncation, padding, windows and offsets on single-spaced plain text.
    question = ["What is the capital?", "Who wrote it?"]
    context = [" ".join(f"word{i}" for i in range(60)), "A short answer here."]
    options = dict(truncation="only_second", max_length=32, stride=8, return_overflowing_tokens=True,
                   padding="max_length", return_offsets_mapping=True, return_special_tokens_mask=True)
    ours, reference = fast(question, context, **options), theirs(question, context, **options)
    assert set(ours) == set(reference)
    for name in ours:
        assert ours[name] == list(reference[name]), name
    assert [ours.word_ids(i) for i in range(len(ours.input_ids))] == [
        reference.word_ids(i) for i in range(len(reference["input_ids"]))]
    options = dict(truncation="longest_first", max_length=12, padding=True, return_tensors="np")
    ours, reference = fast(context, question, **options), theirs(context, question, **options)
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        np.testing.assert_array_equal(ours[name], reference[name])

    # Where transformers differs, it has [UNK] where sentencepiece (and minideberta) has real pieces:
    # full-width (NFKC folds it, NFC does not), a ligature, an ellipsis, byte fallback, x², a no-break space.
    for text in ("Ｆｕｌｌｗｉｄｔｈ", "ﬁne", "Wait…", "谛", "x²", "A\u00a0B"):
        ours, reference = fast.encode(text, add_special_tokens=False), theirs.encode(text, add_special_tokens=False)
        assert ours == sp.encode(text) and UNK not in ours, text
        assert reference != ours and UNK in reference, text
    # Collapsed whitespace: sentencepiece's "▁" stands for the first space of a run.
    text = "  Hello   world  "
    assert fast(text, return_offsets_mapping=True).offset_mapping == [(0, 0), (2, 7), (7, 15), (0, 0)]
    assert theirs(text, return_offsets_mapping=True)["offset_mapping"] == [(0, 0), (1, 7), (9, 15), (0, 0)]


def test_the_committed_vocabulary_is_microsofts(vocab_file, sp):
    """weights/deberta-v3-tokenizer/spm.model is the official file (the sha256 Hugging Face's LFS metadata
    lists for microsoft/deberta-v3-base), with the piece counts its README states."""
    import hashlib

    assert hashlib.sha256(vocab_file.read_bytes()).hexdigest() == \
        "c679fbf93643d19aab7ee10c0b99e460bdbc02fedf34b92b05af343b4af586fd"
    assert sp.get_piece_size() == 128000
    assert [sp.id_to_piece(i) for i in range(4)] == ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    assert sum(sp.is_byte(i) for i in range(sp.get_piece_size())) == 256
