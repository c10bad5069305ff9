"""What DebertaV2Tokenizer does with text: split, encode, cut and lay out, behind transformers' call.

``TokenizerCalls`` holds the tokenizer's calling surface (``tok(text, text_pair, ...)``, ``encode``,
``tokenize``) and its first two steps (``deberta_tokenizer.py``'s docstring has all four): the
special tokens and punctuation splits of ``pieces.py``, then sentencepiece on each plain chunk.
``encoding.py`` turns the ids into model inputs. The vocabulary, its files and the special ids are
``DebertaV2Tokenizer``'s own; this class only uses them.
"""
from .encoding import (
    BatchEncoding,
    Row,
    Tokens,
    as_texts,
    columns,
    non_negative_int,
    pad,
    pair_texts,
    strategies,
    to_array,
    windows,
)
from .pieces import check_valid_unicode, piece_offsets, segments


class TokenizerCalls:
    """Text to ids to model inputs; mixed into ``DebertaV2Tokenizer``, whose vocabulary it reads."""

    # ------------------------------------------------------- text to tokens

    def _encode_chunks(self, chunks):
        """Sentencepiece ids of each plain-text chunk, one chunk at a time."""
        return [self._sp.encode(chunk) for chunk in chunks]

    def _tokenize_texts(self, texts, with_offsets):
        """``Tokens`` of each text: ids without [CLS]/[SEP], and spans if ``with_offsets``."""
        plans = [segments(text, self._special_pattern, self._special_tokens, self.split_by_punct) for text in texts]
        chunks = [text[s.start:s.end] for text, plan in zip(texts, plans) for s in plan if s.special_id is None]
        if self.do_lower_case:
            chunks = [chunk.lower() for chunk in chunks]
        try:
            encoded = iter(self._encode_chunks(chunks))
        except (TypeError, RuntimeError):  # what sentencepiece raises on a lone surrogate
            check_valid_unicode(texts)
            raise
        out = []
        for text, plan in zip(texts, plans):
            if len(plan) == 1 and plan[0].special_id is None and not with_offsets:
                out.append(Tokens(next(encoded)))  # the common case, kept short for speed
                continue
            ids, offsets = [], []
            for segment in plan:
                if segment.special_id is not None:
                    ids.append(segment.special_id)
                    offsets.append((segment.start, segment.end))
                    continue
                chunk_ids = next(encoded)
                ids += chunk_ids
                if with_offsets:
                    spans = piece_offsets(self, text[segment.start:segment.end], chunk_ids)
                    offsets += [(segment.start + s, segment.start + e) for s, e in spans]
            out.append(Tokens(ids, offsets if with_offsets else None))
        return out

    def tokenize(self, text):
        """Token strings of one text, without [CLS]/[SEP]: ``"Hi [MASK]"`` -> ``["▁Hi", "[MASK]"]``."""
        texts, is_batch = as_texts(text, "text")
        if is_batch:
            raise TypeError("tokenize takes one str; call it once per text")
        return [self._pieces[i] for i in self._tokenize_texts(texts, with_offsets=False)[0].ids]

    # ------------------------------------------------------------ the call

    def __call__(self, text, text_pair=None, *, add_special_tokens=True, padding=False, truncation=None,
                 max_length=None, stride=0, return_overflowing_tokens=False, return_tensors=None,
                 return_attention_mask=True, return_token_type_ids=True, return_special_tokens_mask=False,
                 return_offsets_mapping=False):
        """Encode a text, a pair, or lists of them (a batch), as transformers' tokenizers do.

        - ``padding``: False / "do_not_pad", True / "longest" (to the longest row), or
          "max_length" (to ``max_length``).
        - ``truncation``: True / "longest_first", "only_first", "only_second", or False /
          "do_not_truncate". Given ``max_length`` without ``truncation`` (and without
          ``padding="max_length"``), truncates "longest_first" with a warning.
        - ``return_overflowing_tokens``: instead of dropping what truncation cuts,
          return it as more rows, windows overlapping by ``stride`` tokens; the
          untruncated sequence is repeated in each (the question, in QA), and
          ``overflow_to_sample_mapping`` says which example each row came from.
        - ``return_tensors="np"``: int64 arrays (rows of one length are then required);
          ``None``: lists.
        """
        firsts, seconds, is_batch = pair_texts(text, text_pair)
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: minideberta returns NumPy arrays "
                             f"(return_tensors='np') or lists (None)")
        n_special = (2 if seconds is None else 3) if add_special_tokens else 0
        padding, truncation, max_length, budget = strategies(padding, truncation, max_length, n_special,
                                                             seconds is not None, self.model_max_length)
        stride = non_negative_int(stride, "stride")

        tokens_a = self._tokenize_texts(firsts, return_offsets_mapping)
        tokens_b = [None] * len(firsts)
        if seconds is not None:
            tokens_b = self._tokenize_texts(seconds, return_offsets_mapping)
        rows = []
        for sample, (a, b) in enumerate(zip(tokens_a, tokens_b)):
            for a_span, b_span in windows(a, b, truncation, budget, stride, return_overflowing_tokens):
                rows.append(Row(sample, a, a_span, b, b_span))

        fields = columns(rows, add_special_tokens, return_offsets_mapping, self.cls_token_id, self.sep_token_id)
        if padding is not None:
            longest = max((len(ids) for ids in fields["input_ids"]), default=0)
            pad(fields, longest if padding == "longest" else max_length, self.pad_token_id)
        wanted = {"input_ids": True, "token_type_ids": return_token_type_ids,
                  "attention_mask": return_attention_mask, "special_tokens_mask": return_special_tokens_mask,
                  "offset_mapping": return_offsets_mapping}
        data = {name: fields[name] for name, keep in wanted.items() if keep}
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = [row.sample for row in rows]
        if return_tensors == "np":
            data = {name: to_array(name, value) for name, value in data.items()}
        elif not is_batch and not return_overflowing_tokens:
            data = {name: value[0] for name, value in data.items()}
        return BatchEncoding(data, rows, [len(ids) for ids in fields["input_ids"]], add_special_tokens,
                             self._is_word_start)

    def encode(self, text, text_pair=None, add_special_tokens=True, truncation=None, max_length=None):
        """Token ids of one text (or one pair) as a list: ``"Hello world"`` -> ``[1, 5365, 447, 2]``."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes one str (call the tokenizer itself for a batch), "
                            f"not {type(text).__name__}")
        return self(text, text_pair, add_special_tokens=add_special_tokens, truncation=truncation,
                    max_length=max_length)["input_ids"]
