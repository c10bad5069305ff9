"""Text to model inputs: the sentencepiece tokenizer, ids to padded batches, and a from-scratch unigram.

``deberta_tokenizer.py`` (``DebertaV2Tokenizer``: exact to sentencepiece), ``encoding.py`` (truncation,
stride windows, pairs, padding, ``BatchEncoding``), ``unigram.py`` (the ``spm.model`` protobuf read by
hand and the Viterbi segmentation, for reading rather than speed).
"""
from .deberta_tokenizer import DebertaV2Tokenizer, DebertaV2TokenizerFast

__all__ = ["DebertaV2Tokenizer", "DebertaV2TokenizerFast"]
