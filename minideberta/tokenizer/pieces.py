"""From text to the stretches sentencepiece encodes, and from pieces back to the characters they cover.

- ``segments``: a text cut into the special tokens written in it (``[MASK]``) and the plain
  stretches between (one per punctuation split with ``split_by_punct``), as Microsoft's tokenizer cuts it;
- ``piece_offsets``: for the pieces of one stretch, the original characters each stands for, through
  sentencepiece's normalisation (``…`` becomes ``...``), byte fallback and lowercasing.
"""
import unicodedata
from typing import NamedTuple


def check_valid_unicode(texts):
    """Name the first text that is not valid Unicode (sentencepiece's own error does not)."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"text {i} is not valid Unicode: {text[error.start]!r} at position {error.start} "
                             f"is a lone surrogate (decode the input with errors='replace')") from None


def is_punctuation(char):
    """BERT's rule, kept by DeBERTa: ASCII symbols and every Unicode "P*" character."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


class Segment(NamedTuple):
    """A stretch ``text[start:end]``: a special token written in the text, or plain text."""

    start: int
    end: int
    special_id: int = None


def segments(text, special_pattern, special_tokens, split_by_punct):
    """Cut ``text`` into the special tokens written in it (``special_pattern`` matches them,
    ``special_tokens`` gives their ids) and the plain stretches between."""
    found, position = [], 0
    for match in special_pattern.finditer(text):
        found += plain_segments(text, position, match.start(), split_by_punct)
        found.append(Segment(match.start(), match.end(), special_tokens[match.group()]))
        position = match.end()
    return found + plain_segments(text, position, len(text), split_by_punct)


def plain_segments(text, start, end, split_by_punct):
    """Segments of the plain text ``text[start:end]``: one, or one per punctuation split."""
    if start == end:
        return []
    if not split_by_punct:
        return [Segment(start, end)]
    # As Microsoft's tokenizer does: each punctuation character is encoded alone, and
    # so is each stretch between them, whitespace included.
    segments = []
    for i in range(start, end):
        if segments and not is_punctuation(text[i]) and not is_punctuation(text[i - 1]):
            segments[-1] = Segment(segments[-1].start, i + 1)
        else:
            segments.append(Segment(i, i + 1))
    return segments


def piece_offsets(tokenizer, chunk, ids):
    """``(start, end)`` in ``chunk`` of the original characters behind each piece of ``ids``, the pieces
    ``tokenizer`` (its sentencepiece processor and piece table) gave that chunk."""
    text = chunk.lower() if tokenizer.do_lower_case else chunk
    normalized, origin = tokenizer._sp.normalize(text, with_offsets=True)
    # origin[i]: the original character that normalized character i comes from;
    # ends[i]: where the original character(s) behind it end. Characters that one
    # original character expands into ("…" -> "...") share its start and end.
    ends = origin[1:]
    for i in range(len(normalized) - 2, -1, -1):
        if origin[i + 1] == origin[i]:
            ends[i] = ends[i + 1]
    spans, position = [], 0  # position: in normalized characters
    for k, piece_id in enumerate(ids):
        byte = tokenizer._byte_values.get(piece_id)
        if byte is not None:
            # A byte-fallback piece is one UTF-8 byte of one character: a lead byte
            # moves on to the next character, and every byte spans its character.
            if byte & 0xC0 != 0x80:
                position += 1
            first, last = position - 1, position - 1
        elif piece_id == tokenizer.unk_token_id:
            # An unknown run (in models without byte fallback) lasts until the
            # next piece's text begins.
            following = tokenizer._pieces[ids[k + 1]] if k + 1 < len(ids) else None
            stop = normalized.index(following, position + 1) if following else len(normalized)
            first, last, position = position, stop - 1, stop
        else:
            stop = position + len(tokenizer._pieces[piece_id])
            first, last, position = position, stop - 1, stop
        spans.append((origin[first], ends[last]))
    if len(text) != len(chunk):
        # Lowercasing changed the length ("İ" -> "i̇"): map back to the original.
        starts, stops = [], []
        for i, char in enumerate(chunk):
            n = len(char.lower())
            starts += [i] * n
            stops += [i + 1] * n
        spans = [(starts[s], stops[e - 1]) for s, e in spans]
    return spans
