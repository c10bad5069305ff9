"""DeBERTa-v2/v3's tokenizer: sentencepiece, DeBERTa's special tokens, transformers' calling surface.

Text becomes model input in four steps:

1. **Split.** Special-token strings written in the text (``"[MASK]"``, ``"[SEP]"``, ...)
   become single tokens; the plain text between them is encoded on its own. With
   ``split_by_punct=True`` every punctuation character is cut out as well, as in
   Microsoft's original tokenizer; with ``do_lower_case=True`` plain text is lowercased.
2. **Encode.** Each plain chunk goes through sentencepiece exactly as Microsoft's code
   calls it: the model's own ``nmt_nfkc`` normalization and byte fallback (transformers
   5.x rebuilds the model with NFC and no byte fallback, and so differs on full-width
   text, ligatures, "…" and rare characters). ``minideberta.unigram`` shows the same
   algorithm written out in Python.
3. **Cut.** Truncation keeps ``max_length`` tokens; with ``return_overflowing_tokens``
   the rest is not dropped but returned as more rows, sliding windows that overlap by
   ``stride`` tokens (long-context question answering).
4. **Lay out.** ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, token types 0 for the
   first part and 1 for the second, padding with ``[PAD]`` to a common length.

Steps 1 and 2 are ``calls.py`` (with ``pieces.py``); steps 3 and 4, from ids to model inputs, are
``encoding.py``. This file holds the vocabulary: its files, its pieces and special ids, and decoding.

Offsets (``return_offsets_mapping``) are character positions in the *original*
string. Sentencepiece reports, for each character of the normalized text, the original
character it came from; a piece spans the original characters of all its normalized
characters. When one original character feeds several pieces ("…" -> "." "." ".", a
ligature split across pieces, the UTF-8 bytes of a byte-fallback character), each of
those pieces spans that whole character, so no piece gets an empty span. A ``"▁"``
piece's span includes the space it stands for, as in transformers.

``DebertaV2Tokenizer`` encodes one chunk at a time; ``DebertaV2TokenizerFast`` hands a
whole batch to sentencepiece's C++ thread pool. Both give identical results.
"""
import json
import os
import re
from pathlib import Path

import numpy as np

from .calls import TokenizerCalls
from .encoding import non_negative_int
from .files import check_special_tokens, read_settings

PAD, CLS, SEP, UNK, MASK = "[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"
VOCAB_FILE = "spm.model"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
def _sentencepiece():
    """sentencepiece, imported where a vocabulary is read (the model's math needs NumPy only)."""
    try:
        import sentencepiece
    except ImportError:
        raise ModuleNotFoundError("the tokenizer reads its vocabulary with sentencepiece, which is not installed: "
                                  "pip install sentencepiece (or pip install -e .)") from None
    return sentencepiece


SPACE = "▁"  # sentencepiece's stand-in for a space: a piece starting with it starts a word


class DebertaV2Tokenizer(TokenizerCalls):
    """DeBERTa-v2/v3 tokenizer over a sentencepiece model, called like transformers' tokenizers.

    ``tok = DebertaV2Tokenizer("spm.model")`` or ``DebertaV2Tokenizer.from_pretrained(dir)``;
    ``tok("Hello world")``, ``tok(questions, contexts, truncation="only_second",
    max_length=384, stride=128, return_overflowing_tokens=True, padding=True,
    return_tensors="np")``.

    Special tokens are those of the official vocabulary: ``[PAD]`` = 0, ``[CLS]`` = 1,
    ``[SEP]`` = 2, ``[UNK]`` = 3 are sentencepiece pieces, and ``[MASK]`` is added after
    the last piece (128000 for v3).
    """

    def __init__(self, vocab_file, do_lower_case=False, split_by_punct=False, model_max_length=None):
        if not isinstance(vocab_file, (str, os.PathLike)):
            raise TypeError(f"vocab_file must be a path to a sentencepiece .model file, "
                            f"not {type(vocab_file).__name__}")
        self.vocab_file = Path(vocab_file)
        self.do_lower_case = bool(do_lower_case)
        self.split_by_punct = bool(split_by_punct)
        if model_max_length is not None:
            model_max_length = non_negative_int(model_max_length, "model_max_length")
        self.model_max_length = model_max_length  # max_length when truncating without one
        self._sp = self._load(self.vocab_file)
        n_pieces = self._sp.get_piece_size()
        ids = {token: self._sp.piece_to_id(token) for token in (PAD, CLS, SEP, UNK)}
        for token, token_id in ids.items():
            if self._sp.id_to_piece(token_id) != token:
                raise ValueError(f"{self.vocab_file} has no {token} piece: not a DeBERTa-v2/v3 vocabulary")
        ids[MASK] = n_pieces
        (self.pad_token_id, self.cls_token_id, self.sep_token_id, self.unk_token_id,
         self.mask_token_id) = ids.values()
        self._special_tokens = ids
        self._special_ids = {token_id: token for token, token_id in ids.items()}
        self._special_pattern = re.compile("|".join(re.escape(token) for token in ids))
        self._pieces = [self._sp.id_to_piece(i) for i in range(n_pieces)] + [MASK]
        self._is_word_start = [p.startswith(SPACE) or i in self._special_ids for i, p in enumerate(self._pieces)]
        self._byte_values = {i: int(self._pieces[i][3:5], 16) for i in range(n_pieces) if self._sp.is_byte(i)}

    @staticmethod
    def _load(path):
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file {path} not found (or not a file)")
        processor = _sentencepiece().SentencePieceProcessor()
        try:
            processor.LoadFromFile(str(path))
        except (RuntimeError, OSError) as error:
            raise ValueError(f"{path} is not a sentencepiece model ({error}); "
                             f"DeBERTa-v2/v3 need their {VOCAB_FILE}") from None
        return processor

    # ------------------------------------------------------------------ files

    @classmethod
    def from_pretrained(cls, directory, **kwargs):
        """Load ``directory/spm.model`` and the settings of ``directory/tokenizer_config.json``.

        The config is optional; of its keys, ``do_lower_case``, ``split_by_punct`` and
        ``model_max_length`` are used, and ``kwargs`` override them.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a directory holding {VOCAB_FILE}")
        settings = {}
        config_path = directory / CONFIG_FILE
        if config_path.is_file():
            settings = read_settings(config_path)
        if (directory / SPECIAL_TOKENS_FILE).is_file():
            check_special_tokens(directory / SPECIAL_TOKENS_FILE, {
                "pad_token": PAD, "cls_token": CLS, "sep_token": SEP, "unk_token": UNK, "mask_token": MASK,
                "bos_token": CLS, "eos_token": SEP})
        settings.update(kwargs)
        return cls(directory / VOCAB_FILE, **settings)

    def save_vocabulary(self, save_directory, filename_prefix=None):
        """Write the sentencepiece model to ``save_directory``; return ``(path,)``."""
        name = f"{filename_prefix}-{VOCAB_FILE}" if filename_prefix else VOCAB_FILE
        path = Path(save_directory) / name
        path.write_bytes(self._sp.serialized_model_proto())
        return (str(path),)

    def save_pretrained(self, save_directory):
        """Write ``spm.model`` and ``tokenizer_config.json``, readable by ``from_pretrained``."""
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        config = {"do_lower_case": self.do_lower_case, "split_by_punct": self.split_by_punct, "vocab_type": "spm"}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        config_path = save_directory / CONFIG_FILE
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return self.save_vocabulary(save_directory) + (str(config_path),)

    # ------------------------------------------------------------- vocabulary

    @property
    def vocab_size(self):
        """Number of sentencepiece pieces (128000 for v3); ``len(tok)`` also counts ``[MASK]``."""
        return self._sp.get_piece_size()

    def __len__(self):
        """Number of token ids: the pieces and ``[MASK]`` (128001 for v3)."""
        return len(self._pieces)

    def get_vocab(self):
        """``{token: id}`` for every piece and ``[MASK]``."""
        return {piece: i for i, piece in enumerate(self._pieces)}

    @property
    def all_special_tokens(self):
        """``["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]``."""
        return list(self._special_tokens)

    @property
    def all_special_ids(self):
        """The ids of ``all_special_tokens``, in the same order."""
        return list(self._special_tokens.values())

    pad_token, cls_token, sep_token, unk_token, mask_token = PAD, CLS, SEP, UNK, MASK

    def _check_ids(self, ids):
        """``ids`` as a list of ints, each a valid token id; a clear error otherwise."""
        if isinstance(ids, np.ndarray):
            if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
                raise TypeError(f"expected a 1-D array of integer ids, got shape {ids.shape} of {ids.dtype}")
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"expected a list of token ids, not {type(ids).__name__}")
        for token_id in ids:
            if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)):
                raise TypeError(f"token ids must be ints, got {token_id!r}")
            if not 0 <= token_id < len(self._pieces):
                raise ValueError(f"token id {token_id} is not in the vocabulary of {len(self._pieces)} tokens")
        return [int(i) for i in ids]

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        """Token strings of ``ids`` (one id gives one string): ``[5365, 447]`` -> ``["▁Hello", "▁world"]``."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            return self._pieces[self._check_ids([ids])[0]]
        return [self._pieces[i] for i in self._check_ids(ids)
                if not (skip_special_tokens and i in self._special_ids)]

    def convert_tokens_to_ids(self, tokens):
        """Ids of token strings (one string gives one id); unknown strings give ``[UNK]``'s id."""
        if isinstance(tokens, str):
            return self.mask_token_id if tokens == MASK else self._sp.piece_to_id(tokens)
        return [self.convert_tokens_to_ids(t) for t in tokens]

    # ------------------------------------------------------- special layout

    def build_inputs_with_special_tokens(self, token_ids_0, token_ids_1=None):
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``."""
        ids = [self.cls_token_id] + list(token_ids_0) + [self.sep_token_id]
        if token_ids_1 is not None:
            ids += list(token_ids_1) + [self.sep_token_id]
        return ids

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        """1 where ``build_inputs_with_special_tokens`` puts a special token, 0 elsewhere.

        With ``already_has_special_tokens=True``, ``token_ids_0`` is a finished sequence
        and every special token id in it is marked.
        """
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("with already_has_special_tokens=True pass one finished sequence, not a pair")
            return [int(i in self._special_ids) for i in token_ids_0]
        mask = [1] + [0] * len(token_ids_0) + [1]
        if token_ids_1 is not None:
            mask += [0] * len(token_ids_1) + [1]
        return mask

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None):
        """0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``."""
        types = [0] * (len(token_ids_0) + 2)
        if token_ids_1 is not None:
            types += [1] * (len(token_ids_1) + 1)
        return types

    # ------------------------------------------------------------ decoding

    def decode(self, token_ids, skip_special_tokens=False):
        """Text of ``token_ids``; special tokens are written as themselves, set off by spaces."""
        parts, run = [], []
        for token_id in self._check_ids(token_ids):
            if token_id in self._special_ids:
                parts.append(self._sp.decode(run))
                run = []
                if not skip_special_tokens:
                    parts.append(self._special_ids[token_id])
            else:
                run.append(token_id)
        parts.append(self._sp.decode(run))
        return " ".join(part for part in parts if part)

    def batch_decode(self, sequences, skip_special_tokens=False):
        """``decode`` of each sequence (rows of a 2-D array or lists)."""
        return [self.decode(ids, skip_special_tokens) for ids in sequences]


class DebertaV2TokenizerFast(DebertaV2Tokenizer):
    """The same tokenizer, encoding each batch in sentencepiece's C++ thread pool.

    ``num_threads=-1`` uses every core. Results are identical to ``DebertaV2Tokenizer``.
    """

    def __init__(self, vocab_file, do_lower_case=False, split_by_punct=False, model_max_length=None,
                 num_threads=-1):
        super().__init__(vocab_file, do_lower_case, split_by_punct, model_max_length)
        self.num_threads = num_threads

    def _encode_chunks(self, chunks):
        """Sentencepiece ids of all chunks at once; the GIL is released while threads work."""
        return self._sp.encode(chunks, num_threads=self.num_threads)
