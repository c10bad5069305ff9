"""Read a sentencepiece model file (``spm.model``): the protobuf wire format, decoded by hand.

A protobuf message is a run of fields. Each field starts with a varint key, ``field_number << 3 |
wire_type``, followed by its value: a varint (wire type 0), 8 or 4 raw bytes (1 and 5), or a
varint length and that many bytes (2: a string, a blob or a nested message alike). The file is one
``ModelProto`` (sentencepiece_model.proto): its pieces (text, score, type), a trainer spec and a
normalizer spec. Every value is checked for the wire type its field should have, so a damaged file
is refused with a ``ValueError`` rather than read as nonsense.
"""
import struct
from dataclasses import dataclass

# Piece types, numbered as in sentencepiece_model.proto.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM = 1  # TrainerSpec.model_type


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
    """Decode the base-128 varint at ``buf[pos:]``: 7 bits a byte, low bits first, at most 10 bytes."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise ValueError("truncated varint: not a sentencepiece model")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise ValueError(f"a varint longer than 10 bytes ending at byte {pos}: not a sentencepiece model")


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


def _typed(value, kind, what):
    """``value`` if it has the wire type ``kind`` (int: a varint, bytes: a blob), else a ValueError."""
    if not isinstance(value, kind):
        raise ValueError(f"{what} is stored as a {type(value).__name__}, not a {kind.__name__}: "
                         "not a sentencepiece model, or a damaged one")
    return value


def _read_piece(buf, index):
    text, score, kind = "", 0.0, NORMAL  # the defaults proto2 gives absent fields
    for number, value in _fields(buf):
        if number == 1:
            try:
                text = _typed(value, bytes, f"piece {index}'s text").decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"piece {index}'s text is not UTF-8: the model is damaged") from None
        elif number == 2:
            if len(_typed(value, bytes, f"piece {index}'s score")) != 4:
                raise ValueError(f"piece {index}'s score is not a 4-byte float: the model is damaged")
            (score,) = struct.unpack("<f", value)
        elif number == 3:
            kind = _typed(value, int, f"piece {index}'s type")
            if not NORMAL <= kind <= BYTE:
                raise ValueError(f"piece {index} has type {kind}, not one of sentencepiece's 1 to 6")
    return Piece(text, score, kind)


def read_model(source):
    """Parse a sentencepiece ``ModelProto`` from a file path or from its bytes.

    Field numbers are those of sentencepiece_model.proto: ModelProto 1 = pieces,
    2 = trainer_spec, 3 = normalizer_spec; SentencePiece 1 = piece, 2 = score,
    3 = type. Raises ``ValueError`` if the bytes are not a sentencepiece model
    (naming the file when given a path).
    """
    if isinstance(source, (bytes, bytearray)):
        return _parse_model(source)
    with open(source, "rb") as f:
        data = f.read()
    try:
        return _parse_model(data)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _parse_model(source):
    pieces = []
    trainer, normalizer = {}, {}
    for number, value in _fields(source):
        if number == 1:
            pieces.append(_read_piece(_typed(value, bytes, "a piece"), len(pieces)))
        elif number == 2:
            trainer = dict(_fields(_typed(value, bytes, "trainer_spec")))
        elif number == 3:
            normalizer = dict(_fields(_typed(value, bytes, "normalizer_spec")))
    if not pieces:
        raise ValueError("no vocabulary pieces found: not a sentencepiece model")
    name = _typed(normalizer.get(1, b""), bytes, "normalizer_spec.name")
    flags = {key: _typed(spec.get(field, default), int, label) for key, spec, field, default, label in (
        ("model_type", trainer, 3, UNIGRAM, "trainer_spec.model_type"),
        ("byte_fallback", trainer, 35, 0, "trainer_spec.byte_fallback"),
        ("treat_whitespace_as_suffix", trainer, 24, 0, "trainer_spec.treat_whitespace_as_suffix"),
        ("add_dummy_prefix", normalizer, 3, 1, "normalizer_spec.add_dummy_prefix"),
        ("remove_extra_whitespaces", normalizer, 4, 1, "normalizer_spec.remove_extra_whitespaces"),
        ("escape_whitespaces", normalizer, 5, 1, "normalizer_spec.escape_whitespaces"))}
    return SentencePieceModel(
        pieces=pieces,
        model_type=flags["model_type"],
        byte_fallback=bool(flags["byte_fallback"]),
        treat_whitespace_as_suffix=bool(flags["treat_whitespace_as_suffix"]),
        normalizer_name=name.decode("utf-8", errors="replace"),
        precompiled_charsmap=_typed(normalizer.get(2, b""), bytes, "normalizer_spec.precompiled_charsmap"),
        add_dummy_prefix=bool(flags["add_dummy_prefix"]),
        remove_extra_whitespaces=bool(flags["remove_extra_whitespaces"]),
        escape_whitespaces=bool(flags["escape_whitespaces"]),
    )
