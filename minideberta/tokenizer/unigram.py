"""Sentencepiece's unigram tokenizer, from scratch: read the model, normalize, segment.

DeBERTa-v2/v3 cut text into pieces with a sentencepiece *unigram* model. The model
file (``spm.model``) is a protobuf message holding, for each of its 128000 pieces, the
piece's text and a score: the log-probability of that piece in the unigram language
model. Tokenizing a text then takes three steps, each written out here in plain Python:

1. **Read the model.** ``read_model`` (in ``spm_proto.py``) decodes the protobuf wire
   format by hand: a message is a run of (field number, wire type) keys, each followed
   by a varint, a 4- or 8-byte number, or a length-prefixed blob (a string or a nested
   message).
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

import numpy as np

from .spm_proto import (  # noqa: F401
    BYTE,
    CONTROL,
    NORMAL,
    UNIGRAM,
    UNKNOWN,
    UNUSED,
    USER_DEFINED,
    Piece,
    SentencePieceModel,
    read_model,
)

SPACE = "▁"  # U+2581, sentencepiece's visible stand-in for a space
UNK_PENALTY = np.float32(10.0)  # the unknown piece scores this far below the worst piece
# Normalized once when a model is read, so that a damaged character map is found then.
PROBE = "Hello, World! ﬁne Ｆull-width «quotes» café 東京 \u00a0 x\u0301 ½ ①"


# ---------------------------------------------------------------------------- normalize

class _CharsMap:
    """The precompiled character map: a darts-clone double-array trie over UTF-8 bytes.

    Layout of the blob: a little-endian uint32 ``n``, then ``n`` bytes of trie (uint32
    units), then the replacement strings, each ending in a NUL byte. A trie unit packs
    a label byte, a leaf flag and the XOR offset to its children; a leaf's value is the
    position of the replacement string.
    """

    def __init__(self, blob):
        trie_size = struct.unpack_from("<I", blob, 0)[0] if len(blob) >= 4 else -1
        if not 4 <= trie_size <= len(blob) - 4 or trie_size % 4:
            raise ValueError(f"the precompiled character map ({len(blob)} bytes) declares a trie of {trie_size} "
                             "bytes: the model is damaged")
        self.units = np.frombuffer(blob, dtype="<u4", count=trie_size // 4, offset=4).tolist()
        self.replacements = blob[4 + trie_size:]

    def _unit(self, node):
        if node >= len(self.units):
            raise ValueError(f"the character map's trie points at unit {node} of {len(self.units)}: "
                             "the model is damaged")
        return self.units[node]

    @staticmethod
    def _offset(unit):
        return (unit >> 10) << ((unit & (1 << 9)) >> 6)

    def longest_match(self, data, pos):
        """``(length, replacement)`` of the longest rule matching ``data[pos:]``, or ``(0, b"")``."""
        node = self._offset(self.units[0])
        length, value = 0, None
        for i in range(pos, len(data)):
            byte = data[i]
            node ^= byte
            unit = self._unit(node)
            if (unit & ((1 << 31) | 0xFF)) != byte:  # this child does not exist
                break
            node ^= self._offset(unit)
            if (unit >> 8) & 1:
                length, value = i + 1 - pos, self._unit(node) & 0x7FFFFFFF
        if value is None:
            return 0, b""
        end = self.replacements.find(b"\0", value)
        if end < 0:
            raise ValueError(f"the character map's replacement at byte {value} is not NUL-terminated: "
                             "the model is damaged")
        return length, self.replacements[value:end]


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
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the character map gives replacements that are not UTF-8: the model is damaged") from None


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
        unknown = [i for i, p in enumerate(model.pieces) if p.type == UNKNOWN]
        normal_scores = [s for s, p in zip(self.scores, model.pieces) if p.type == NORMAL]
        if len(unknown) != 1 or not normal_scores:
            raise ValueError(f"a unigram model needs one unknown piece and some normal pieces, this one has "
                             f"{len(unknown)} and {len(normal_scores)}: not a sentencepiece model, or a damaged one")
        self.unk_id = unknown[0]
        self.unk_score = min(normal_scores) - UNK_PENALTY
        self.byte_ids = {p.text: i for i, p in enumerate(model.pieces) if p.type == BYTE}
        if model.byte_fallback and len({f"<0x{b:02X}>" for b in range(256)} & set(self.byte_ids)) != 256:
            raise ValueError("the model has byte_fallback but lacks some of the 256 byte pieces <0x00>..<0xFF>")
        self.normalizer.normalize(PROBE)  # a damaged character map shows here rather than in a later encode

    @classmethod
    def from_file(cls, path):
        """Read a ``.model`` file (see ``read_model``); a ``ValueError`` names the file if it is not one."""
        model = read_model(path)
        try:
            return cls(model)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

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
