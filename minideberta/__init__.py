"""minideberta: DeBERTa-v2/v3 from scratch in NumPy, every forward next to its hand-written backward.

Read the files in this order: ops -> losses -> embeddings -> relative_position -> attention ->
encoder (-> ngie) -> heads -> emd -> model -> tasks -> masked_lm; weights and tokenizer stand on
their own (README.md has the whole tour).
"""
from .config import DebertaV2Config
from .masked_lm import DebertaV2ForMaskedLM
from .model import DebertaV2Model, DebertaV2PreTrainedModel, ModelOutput, no_grad
from .tokenizer.deberta_tokenizer import DebertaV2Tokenizer, DebertaV2TokenizerFast
from .tasks import (DebertaV2ForMultipleChoice, DebertaV2ForQuestionAnswering, DebertaV2ForReplacedTokenDetection,
                    DebertaV2ForSequenceClassification, DebertaV2ForTokenClassification)
from .tf_classes import (TFDebertaV2ForMaskedLM, TFDebertaV2ForMultipleChoice, TFDebertaV2ForQuestionAnswering,
                         TFDebertaV2ForSequenceClassification, TFDebertaV2ForTokenClassification, TFDebertaV2Model,
                         TFDebertaV2PreTrainedModel)

__all__ = [
    "DebertaV2Config", "DebertaV2Tokenizer", "DebertaV2TokenizerFast", "DebertaV2Model", "DebertaV2PreTrainedModel", "DebertaV2ForMaskedLM",
    "DebertaV2ForSequenceClassification", "DebertaV2ForTokenClassification", "DebertaV2ForQuestionAnswering",
    "DebertaV2ForMultipleChoice", "DebertaV2ForReplacedTokenDetection", "ModelOutput", "no_grad",
    # transformers' TensorFlow names of the same NumPy models (tf_classes.py)
    "TFDebertaV2Model", "TFDebertaV2PreTrainedModel", "TFDebertaV2ForMaskedLM", "TFDebertaV2ForSequenceClassification",
    "TFDebertaV2ForTokenClassification", "TFDebertaV2ForQuestionAnswering", "TFDebertaV2ForMultipleChoice",
]
