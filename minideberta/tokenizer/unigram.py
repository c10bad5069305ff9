"""Sentencepiece's unigram tokenizer, from scratch: read the model, normalize, segment.

DeBERTa-v2/v3 cut text into pieces with a sentencepiece *unigram* model. The model
file (``spm.model``) is a protobuf message holding, for each of its 128000 pieces, the
piece's text and a score: the log-probability of that piece in the unigram language
model. Tokenizing a text then takes three steps, each written out here in plain Python:

1. **Read the model.** ``read_model`` decodes the protobuf wire format by hand: a
   message is a run of (field number, wire type) keys, each followed by a varint, a
   4- or 8-byte number, or a length-prefixed blob (a string or a nested message).
2. **Normalize.** ``Normalizer`` applies the model's character map (for DeBERTa,
   ``nmt_nfkc``: NFKC folding, so ``"ﬁ"`` becomes ``"fi"`` and full-width ``"Ａ"``
   becomes ``"A"``), then sentencepiece's whitespace conventions: drop leading,
   trailing and repeated spaces, add a space in front (the "dummy prefix", so a word
   looks the same at the start of a text as in the middle), and write every space
   as ``"▁"`` (U+2581). The character map is stored in the model as a double-array
   trie (the darts-clone format) over UTF-8 bytes, followed by the replacement
   strings; ``_CharsMap`` walks that trie itself.
3. **Segment.** ``Unigram.segment`` picks, among all ways to cut the normalized text
   into vocabulary pieces, the one whose scores add up to the most: Viterbi over the
   lattice of pieces, ``best[end] = max(best[start] + score(text[start:end]))``. A
   character no piece covers becomes the unknown piece, which a model with
   ``byte_fallback`` (DeBERTa-v3 has it) spells as its UTF-8 bytes ``<0xNN>``.

The result is the same as ``sentencepiece.SentencePieceProcessor.encode`` (the tests
check it on real text and on random unicode), including sentencepiece's float32
arithmetic and its rule for ties (the longer last piece wins). This file is for
reading; ``minideberta.tokenizer`` calls the C++ sentencepiece, which is much faster.
"""
import struct
from dataclasses import dataclass

import numpy as np

# Piece types, numbered as in sentencepiece_model.proto.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1  # TrainerSpec.model_type

SPACE = "▁"  # U+2581, sentencepiece's visible stand-in for a space
UNK_PENALTY = np.float32(10.0)  # the unknown piece scores this far below the worst piece


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry: its text, its log-probability, its type (NORMAL, BYTE, ...)."""

    text: str
    score: float
    type: int


@dataclass(frozen=True)
class SentencePieceModel:
    """What a ``.model`` file holds that tokenizing needs (training settings are skipped)."""

    pieces: list
    model_type: int
    byte_fallback: bool
    treat_whitespace_as_suffix: bool
    normalizer_name: str
    precompiled_charsmap: bytes
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    escape_whitespaces: bool


# ----------------------------------------------------------------------------- protobuf

def _varint(buf, pos):
    """Decode the base-128 varint at ``buf[pos:]``: 7 bits a byte, low bits first."""
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint: not a sentencepiece model")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf):
    """Yield ``(field_number, value)`` for each field of one protobuf message.

    ``value`` is an int for varints, raw bytes for fixed-size numbers and for
    length-delimited fields (strings, bytes and nested messages alike: the caller
    knows which is which from the field number).
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type in (1, 5):  # 64-bit and 32-bit fixed-size numbers
            size = 8 if wire_type == 1 else 4
            value, pos = bytes(buf[pos:pos + size]), pos + size
        elif wire_type == 2:
            size, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + size]), pos + size
        else:
            raise ValueError(f"protobuf wire type {wire_type} at byte {pos}: not a sentencepiece model")
        if pos > len(buf):
            raise ValueError("truncated protobuf field: not a sentencepiece model")
        yield number, value


def _read_piece(buf):
    text, score, kind = "", 0.0, NORMAL  # the defaults proto2 gives absent fields
    for number, value in _fields(buf):
        if number == 1:
            text = value.decode("utf-8")
        elif number == 2:
            (score,) = struct.unpack("<f", value)
        elif number == 3:
            kind = value
    return Piece(text, score, kind)


def read_model(source):
    """Parse a sentencepiece ``ModelProto`` from a file path or from its bytes.

    Field numbers are those of sentencepiece_model.proto: ModelProto 1 = pieces,
    2 = trainer_spec, 3 = normalizer_spec; SentencePiece 1 = piece, 2 = score,
    3 = type. Raises ``ValueError`` if the bytes are not a sentencepiece model.
    """
    if not isinstance(source, (bytes, bytearray)):
        with open(source, "rb") as f:
            source = f.read()
    pieces = []
    trainer, normalizer = {}, {}
    for number, value in _fields(source):
        if number == 1:
            pieces.append(_read_piece(value))
        elif number == 2:
            trainer = dict(_fields(value))
        elif number == 3:
            normalizer = dict(_fields(value))
    if not pieces:
        raise ValueError("no vocabulary pieces found: not a sentencepiece model")
    return SentencePieceModel(
        pieces=pieces,
        model_type=trainer.get(3, UNIGRAM),
        byte_fallback=bool(trainer.get(35, False)),
        treat_whitespace_as_suffix=bool(trainer.get(24, False)),
        normalizer_name=normalizer.get(1, b"").decode("utf-8"),
        precompiled_charsmap=normalizer.get(2, b""),
        add_dummy_prefix=bool(normalizer.get(3, True)),
        remove_extra_whitespaces=bool(normalizer.get(4, True)),
        escape_whitespaces=bool(normalizer.get(5, True)),
    )


# ---------------------------------------------------------------------------- normalize

class _CharsMap:
    """The precompiled character map: a darts-clone double-array trie over UTF-8 bytes.

    Layout of the blob: a little-endian uint32 ``n``, then ``n`` bytes of trie (uint32
    units), then the replacement strings, each ending in a NUL byte. A trie unit packs
    a label byte, a leaf flag and the XOR offset to its children; a leaf's value is the
    position of the replacement string.
    """

    def __init__(self, blob):
        (trie_size,) = struct.unpack_from("<I", blob, 0)
        self.units = np.frombuffer(blob, dtype="<u4", count=trie_size // 4, offset=4).tolist()
        self.replacements = blob[4 + trie_size:]

    @staticmethod
    def _offset(unit):
        return (unit >> 10) << ((unit & (1 << 9)) >> 6)

    def longest_match(self, data, pos):
        """``(length, replacement)`` of the longest rule matching ``data[pos:]``, or ``(0, b"")``."""
        units = self.units
        node = self._offset(units[0])
        length, value = 0, None
        for i in range(pos, len(data)):
            byte = data[i]
            node ^= byte
            unit = units[node]
            if (unit & ((1 << 31) | 0xFF)) != byte:  # this child does not exist
                break
            node ^= self._offset(unit)
            if (unit >> 8) & 1:
                length, value = i + 1 - pos, units[node] & 0x7FFFFFFF
        if value is None:
            return 0, b""
        return length, self.replacements[value:self.replacements.index(b"\0", value)]


def _utf8_length(lead_byte):
    """Bytes in the UTF-8 character that starts with ``lead_byte``."""
    if lead_byte < 0x80:
        return 1
    if lead_byte < 0xE0:
        return 2
    return 3 if lead_byte < 0xF0 else 4


class Normalizer:
    """Sentencepiece's normalizer: the character map, then the whitespace rules."""

    def __init__(self, model):
        self.charsmap = _CharsMap(model.precompiled_charsmap) if model.precompiled_charsmap else None
        self.add_dummy_prefix = model.add_dummy_prefix
        self.remove_extra_whitespaces = model.remove_extra_whitespaces
        self.space = (SPACE if model.escape_whitespaces else " ").encode("utf-8")

    def _map_prefix(self, data, pos):
        """``(replacement, length)`` for the rule or the single character at ``data[pos:]``."""
        if self.charsmap is not None:
            length, replacement = self.charsmap.longest_match(data, pos)
            if length:
                return replacement, length
        length = _utf8_length(data[pos])
        return data[pos:pos + length], length

    def normalize(self, text):
        """The normalized text that the segmenter sees, e.g. ``"  ﬁne  day"`` -> ``"▁fine▁day"``.

        The whitespace rules run on the character map's output, one replacement at a
        time, exactly as sentencepiece's ``Normalizer::Normalize`` does.
        """
        data = text.encode("utf-8")
        pos = 0
        if self.remove_extra_whitespaces:
            while pos < len(data):
                replacement, length = self._map_prefix(data, pos)
                if replacement != b" ":
                    break
                pos += length
        if pos == len(data):
            return ""
        out = bytearray(self.space if self.add_dummy_prefix else b"")
        previous_was_space = self.remove_extra_whitespaces
        while pos < len(data):
            replacement, length = self._map_prefix(data, pos)
            pos += length
            if previous_was_space:
                replacement = replacement.lstrip(b" ")
            if replacement:
                out += replacement.replace(b" ", self.space)
                previous_was_space = self.remove_extra_whitespaces and replacement.endswith(b" ")
        if self.remove_extra_whitespaces:
            while out.endswith(self.space):
                del out[-len(self.space):]
        return out.decode("utf-8")


# ------------------------------------------------------------------------------ segment

class Unigram:
    """A unigram sentencepiece model: ``encode(text)`` gives the same ids as sentencepiece.

    ``Unigram.from_file("spm.model").encode("Hello world")`` -> ``[5365, 447]``.
    """

    def __init__(self, model):
        if model.model_type != UNIGRAM:
            raise ValueError(f"model_type {model.model_type} is not UNIGRAM (1): "
                             f"this file implements unigram models only")
        if model.treat_whitespace_as_suffix:
            raise ValueError("treat_whitespace_as_suffix models are not supported (DeBERTa's are prefix models)")
        if any(p.type == USER_DEFINED for p in model.pieces):
            # Sentencepiece protects user-defined symbols from normalization; that step
            # is not written here, so refuse rather than give different pieces.
            raise ValueError("models with user-defined symbols are not supported")
        self.model = model
        self.normalizer = Normalizer(model)
        # Float32, as sentencepiece stores and adds them: sums in float64 could break
        # near-ties differently.
        self.scores = np.array([p.score for p in model.pieces], dtype=np.float32)
        self.vocab = {p.text: i for i, p in enumerate(model.pieces) if p.type == NORMAL}
        # Every prefix of every piece: the scan for pieces starting at a position stops
        # as soon as the text read so far is no piece's prefix.
        self.prefixes = {text[:k] for text in self.vocab for k in range(1, len(text) + 1)}
        self.unk_id = next(i for i, p in enumerate(model.pieces) if p.type == UNKNOWN)
        normal_scores = [s for s, p in zip(self.scores, model.pieces) if p.type == NORMAL]
        self.unk_score = min(normal_scores) - UNK_PENALTY
        self.byte_ids = {p.text: i for i, p in enumerate(model.pieces) if p.type == BYTE}

    @classmethod
    def from_file(cls, path):
        """Read a ``.model`` file (see ``read_model``)."""
        return cls(read_model(path))

    def segment(self, normalized):
        """Best segmentation of normalized text: a list of ``(piece_text, id)``.

        ``best[end]`` is the highest total score of any segmentation of
        ``normalized[:end]``; ``back[end]`` remembers where that path's last piece
        starts and which piece it is. Positions are processed left to right and a
        candidate must score strictly higher to replace one found earlier, so on a tie
        the piece that starts earliest (the longest) wins, as in sentencepiece.
        """
        n = len(normalized)
        best = np.zeros(n + 1, dtype=np.float32)
        back = [None] * (n + 1)  # back[end] = (start, id)
        for start in range(n):
            has_single_char_piece = False
            end = start + 1
            while end <= n and normalized[start:end] in self.prefixes:
                piece_id = self.vocab.get(normalized[start:end])
                if piece_id is not None:
                    self._relax(best, back, start, end, piece_id, self.scores[piece_id])
                    if end == start + 1:
                        has_single_char_piece = True
                end += 1
            if not has_single_char_piece:
                self._relax(best, back, start, start + 1, self.unk_id, self.unk_score)
        pieces = []
        end = n
        while end > 0:
            start, piece_id = back[end]
            pieces.append((normalized[start:end], piece_id))
            end = start
        return pieces[::-1]

    @staticmethod
    def _relax(best, back, start, end, piece_id, score):
        """Make piece ``[start, end)`` the last piece of the best path to ``end`` if it scores higher."""
        candidate = best[start] + score  # float32 + float32, as in sentencepiece
        if back[end] is None or candidate > best[end]:
            best[end] = candidate
            back[end] = (start, piece_id)

    def _spell_unknowns(self, pieces):
        """Unknown characters as byte pieces (byte fallback) or as one ``[UNK]`` per run."""
        out = []
        for text, piece_id in pieces:
            if piece_id != self.unk_id:
                out.append((text, piece_id))
            elif self.model.byte_fallback:
                out.extend((f"<0x{b:02X}>", self.byte_ids[f"<0x{b:02X}>"]) for b in text.encode("utf-8"))
            elif out and out[-1][1] == self.unk_id:
                out[-1] = (out[-1][0] + text, self.unk_id)
            else:
                out.append((text, piece_id))
        return out

    def encode_as_pieces(self, text):
        """Piece strings of ``text``, e.g. ``["▁Hello", "▁world"]``, as sentencepiece spells them.

        An unknown run (in a model without byte fallback) is spelled as its own text.
        """
        return [piece for piece, _ in self._spell_unknowns(self.segment(self.normalizer.normalize(text)))]

    def encode(self, text):
        """Piece ids of ``text``, as ``sentencepiece.SentencePieceProcessor.encode`` gives them."""
        return [i for _, i in self._spell_unknowns(self.segment(self.normalizer.normalize(text)))]
