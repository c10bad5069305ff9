"""From token ids to model inputs: truncation, sliding windows, the special-token layout, padding.

The tokenizer (``tokenizer.py``) turns each text into token ids; this file decides which of them
go into each output row and how the rows look:

- **Truncation** keeps ``max_length`` tokens per row. With a pair, "longest_first" cuts the
  longer text first, "only_first" / "only_second" one text only. With
  ``return_overflowing_tokens`` nothing is dropped: the cut text is covered by overlapping
  windows (``stride`` tokens shared by neighbours), each a row with the other text repeated,
  as long-context question answering needs.
- **Layout**: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, token types 0 then 1, a
  special-tokens mask, and character offsets (special tokens get (0, 0)).
- **Padding** to the longest row or to ``max_length``, with ``[PAD]``, attention mask 0.
- ``BatchEncoding``, the result: a dict of fields that also answers ``word_ids()`` and
  ``sequence_ids()`` for each row.
"""
import warnings
from typing import NamedTuple

import numpy as np

from ..checks import check_integer

TRUNCATION = {True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
               "only_second": "only_second", False: None, "do_not_truncate": None}
PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}


def option(value, table, name):
    """Look ``value`` up in ``table``, with an error listing the accepted values."""
    if isinstance(value, (bool, str)) and value in table:
        return table[value]
    raise ValueError(f"unknown {name}={value!r}; use one of {', '.join(repr(k) for k in table)}")


def non_negative_int(value, name):
    return check_integer(value, name, minimum=0)


def as_texts(text, name):
    """``(list of str, is_batch)`` for a str or a list/tuple of str; a clear error otherwise."""
    if isinstance(text, str):
        return [text], False
    if isinstance(text, (list, tuple)):
        for i, t in enumerate(text):
            if not isinstance(t, str):
                raise TypeError(
                    f"{name}[{i}] is a {type(t).__name__}; {name} must be a str or a flat list of str "
                    f"(for pairs, pass the first texts as text= and the second texts as text_pair=)")
        return list(text), True
    raise TypeError(f"{name} must be a str or a list of str, not {type(text).__name__}")


def pair_texts(text, text_pair):
    """``(firsts, seconds or None, is_batch)``: both a str, or both lists of one length."""
    firsts, is_batch = as_texts(text, "text")
    if text_pair is None:
        return firsts, None, is_batch
    seconds, pair_is_batch = as_texts(text_pair, "text_pair")
    if pair_is_batch != is_batch or len(seconds) != len(firsts):
        raise ValueError(f"text and text_pair must both be a str or both be lists of the same length; "
                         f"got {len(firsts)} text(s) and {len(seconds)} text_pair(s)")
    return firsts, seconds, is_batch


def slide(length, window, stride, overflowing, what):
    """``(start, stop)`` of the first ``window`` tokens, or of every window when overflowing.

    Windows start ``window - stride`` tokens apart, so neighbours share ``stride``
    tokens, and the last one reaches the end of the sequence.
    """
    if not overflowing:
        return [(0, window)]
    if stride >= window:
        raise ValueError(f"stride={stride} must be smaller than the {window} tokens of the {what} "
                         f"that fit in each window; use a smaller stride or a larger max_length")
    spans, start = [], 0
    while True:
        spans.append((start, min(start + window, length)))
        if start + window >= length:
            return spans
        start += window - stride


def longest_first(len_a, len_b, budget):
    """Tokens kept of each sequence: cut the longer one down to the shorter, then both alike.

    The same split as transformers' fast tokenizers: when both must be cut, the longer
    sequence (the second, on a tie) keeps the odd token.
    """
    shorter = min(len_a, len_b)
    if 2 * shorter <= budget:
        keep_short, keep_long = shorter, budget - shorter
    else:
        keep_short, keep_long = budget // 2, budget - budget // 2
    return (keep_long, keep_short) if len_a > len_b else (keep_short, keep_long)


class Tokens(NamedTuple):
    """One text's tokens (no [CLS]/[SEP] added) and, if asked for, their character spans."""

    ids: list
    offsets: list = None


class Row(NamedTuple):
    """One output row: a window ``[start, stop)`` over each of an example's sequences."""

    sample: int
    first: Tokens
    first_span: tuple
    second: Tokens = None
    second_span: tuple = None


class BatchEncoding(dict):
    """The tokenizer's output: a dict of fields that also answers per-token questions.

    Fields read as ``enc["input_ids"]`` or ``enc.input_ids``. For a batch (or with
    ``return_tensors="np"``, or with overflowing windows) each field holds one row per
    output sequence; for a single text without those, the row itself.
    """

    def __init__(self, data, rows, lengths, with_special_tokens, is_word_start):
        super().__init__(data)
        self._rows = rows
        self._lengths = lengths  # of each row, padding included
        self._with_special_tokens = with_special_tokens
        self._is_word_start = is_word_start

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r}; it has {list(self)}") from None

    def sequence_ids(self, batch_index=0):
        """For each token of row ``batch_index``: 0 (first text), 1 (second text) or None."""
        row = self._rows[batch_index]
        special = [None] if self._with_special_tokens else []
        out = special + [0] * (row.first_span[1] - row.first_span[0]) + special
        if row.second is not None:
            out += [1] * (row.second_span[1] - row.second_span[0]) + special
        return out + [None] * (self._lengths[batch_index] - len(out))

    def word_ids(self, batch_index=0):
        """For each token of row ``batch_index``: the index of its word in its text, or None.

        A word starts at every piece that begins with "▁" and at every special token
        written in the text. Indices count from 0 in each text and, in overflowing
        windows, keep counting from the start of the text.
        """
        row = self._rows[batch_index]
        words = [iter(self._words(row.first, row.first_span))]
        if row.second is not None:
            words.append(iter(self._words(row.second, row.second_span)))
        return [None if sequence is None else next(words[sequence])
                for sequence in self.sequence_ids(batch_index)]

    def _words(self, tokens, span):
        words, word = [], -1
        for token_id in tokens.ids[:span[1]]:
            if word < 0 or self._is_word_start[token_id]:
                word += 1
            words.append(word)
        return words[span[0]:]


def strategies(padding, truncation, max_length, n_special, is_pair, model_max_length):
    """Checked ``(padding, truncation, max_length, budget)``, with transformers' defaults.

    ``budget`` is how many tokens of text a row may hold (None: no limit).
    """
    padding = option(padding, PADDING, "padding")
    if max_length is not None:
        max_length = non_negative_int(max_length, "max_length")
    if truncation is None:
        truncation = max_length is not None and padding != "max_length"
        if truncation:
            warnings.warn("max_length is given without truncation: truncating 'longest_first'; "
                          "pass truncation=True (or another strategy) to silence this", stacklevel=3)
    truncation = option(truncation, TRUNCATION, "truncation")
    if max_length is None and (truncation or padding == "max_length"):
        max_length = model_max_length
    if padding == "max_length" and max_length is None:
        raise ValueError("padding='max_length' needs max_length (or a model_max_length)")
    if truncation == "only_second" and not is_pair:
        raise ValueError("truncation='only_second' truncates the second text of a pair; pass text_pair, "
                         "or use truncation=True for single texts")
    if not truncation or max_length is None:
        return padding, truncation, max_length, None
    if max_length < n_special:
        kind = "a pair" if is_pair else "a single text"
        raise ValueError(f"max_length={max_length} cannot hold the {n_special} special tokens of {kind}; "
                         f"use max_length >= {n_special}")
    return padding, truncation, max_length, max_length - n_special

def windows(a, b, truncation, budget, stride, overflowing):
    """``(first_span, second_span)`` of each row that example ``(a, b)`` gives."""
    len_a = len(a.ids)
    len_b = 0 if b is None else len(b.ids)
    whole = ((0, len_a), None if b is None else (0, len_b))
    if budget is None or len_a + len_b <= budget:
        return [whole]
    if b is None:
        return [(span, None) for span in slide(len_a, budget, stride, overflowing, "text")]
    if truncation == "longest_first":
        if overflowing:
            raise ValueError("return_overflowing_tokens with a pair needs truncation='only_first' or "
                             "'only_second' (which sequence to slide a window over); 'longest_first' "
                             "cuts both")
        keep_a, keep_b = longest_first(len_a, len_b, budget)
        return [((0, keep_a), (0, keep_b))]
    kept, cut = ("second", "first") if truncation == "only_first" else ("first", "second")
    room = budget - (len_b if truncation == "only_first" else len_a)
    if room < 1:
        raise ValueError(f"truncation={truncation!r} cannot fit this pair in {budget} tokens "
                         f"(max_length minus the special tokens): the {kept} text alone has "
                         f"{budget - room} tokens; use truncation='longest_first' or a larger max_length")
    if truncation == "only_first":
        return [(span, whole[1]) for span in slide(len_a, room, stride, overflowing, cut + " text")]
    return [(whole[0], span) for span in slide(len_b, room, stride, overflowing, cut + " text")]

def columns(rows, add_special_tokens, with_offsets, cls_id, sep_id):
    """Per-row lists of every output field, before padding."""
    columns = {name: [] for name in ("input_ids", "token_type_ids", "attention_mask",
                                     "special_tokens_mask", "offset_mapping")}
    cls, sep = ([cls_id], [sep_id]) if add_special_tokens else ([], [])
    edge = [1] if add_special_tokens else []
    for row in rows:
        a0, a1 = row.first_span
        ids = cls + row.first.ids[a0:a1] + sep
        special = edge + [0] * (a1 - a0) + edge
        offsets = None
        if with_offsets:
            offsets = [(0, 0)] * len(cls) + row.first.offsets[a0:a1] + [(0, 0)] * len(sep)
        n_first = len(ids)
        if row.second is not None:
            b0, b1 = row.second_span
            ids += row.second.ids[b0:b1] + sep
            special += [0] * (b1 - b0) + edge
            if with_offsets:
                offsets += row.second.offsets[b0:b1] + [(0, 0)] * len(sep)
        columns["input_ids"].append(ids)
        columns["token_type_ids"].append([0] * n_first + [1] * (len(ids) - n_first))
        columns["attention_mask"].append([1] * len(ids))
        columns["special_tokens_mask"].append(special)
        columns["offset_mapping"].append(offsets)
    return columns

def pad(columns, target, pad_id):
    """Pad every row to ``target`` tokens (rows already longer stay as they are)."""
    fill = {"input_ids": pad_id, "token_type_ids": 0, "attention_mask": 0,
            "special_tokens_mask": 1, "offset_mapping": (0, 0)}
    for i, ids in enumerate(columns["input_ids"]):
        missing = target - len(ids)
        if missing > 0:
            for name, value in fill.items():
                if columns[name][i] is not None:
                    columns[name][i] = columns[name][i] + [value] * missing

def to_array(name, rows):
    """One output field as an int64 array: (rows, tokens), or (rows, tokens, 2) for offsets."""
    if name == "overflow_to_sample_mapping":
        return np.array(rows, dtype=np.int64)
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise ValueError(f"return_tensors='np' needs rows of one length, got lengths from {min(lengths)} to "
                         f"{max(lengths)}; pass padding=True (or padding='max_length' with max_length)")
    shape = (len(rows), lengths.pop() if lengths else 0) + ((2,) if name == "offset_mapping" else ())
    return np.array(rows, dtype=np.int64).reshape(shape)
