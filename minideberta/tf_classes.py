"""transformers' TensorFlow class names, for code ported from TF: the very same NumPy models.

transformers' DeBERTa-v2 page lists a TensorFlow twin of every class (``TFDebertaV2Model``,
``TFDebertaV2ForMaskedLM``, ...). A user porting TF code can keep those names: each one here is
a subclass of the NumPy class of the same task that adds nothing, so it computes, loads and saves
exactly as that class does (``isinstance(model, DebertaV2ForMaskedLM)`` holds). There is no
TensorFlow underneath: ``from_pretrained`` reads ``tf_model.h5`` (without TensorFlow, see
``checkpoints/tf_h5.py``) when it is the folder's only checkpoint or when ``from_tf=True``,
and ``save_pretrained`` writes ``model.safetensors``, not an ``.h5``.
"""
from .masked_lm import DebertaV2ForMaskedLM
from .model import DebertaV2Model, DebertaV2PreTrainedModel
from .tasks import (
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)


class TFDebertaV2PreTrainedModel(DebertaV2PreTrainedModel):
    """transformers' TensorFlow name of :class:`DebertaV2PreTrainedModel`: the same NumPy model, nothing added."""


class TFDebertaV2Model(DebertaV2Model):
    """transformers' TensorFlow name of :class:`DebertaV2Model`: the same NumPy model, nothing added."""


class TFDebertaV2ForMaskedLM(DebertaV2ForMaskedLM):
    """transformers' TensorFlow name of :class:`DebertaV2ForMaskedLM`: the same NumPy model, nothing added."""


class TFDebertaV2ForSequenceClassification(DebertaV2ForSequenceClassification):
    """transformers' TensorFlow name of :class:`DebertaV2ForSequenceClassification`: the same NumPy model."""


class TFDebertaV2ForTokenClassification(DebertaV2ForTokenClassification):
    """transformers' TensorFlow name of :class:`DebertaV2ForTokenClassification`: the same NumPy model."""


class TFDebertaV2ForQuestionAnswering(DebertaV2ForQuestionAnswering):
    """transformers' TensorFlow name of :class:`DebertaV2ForQuestionAnswering`: the same NumPy model, nothing added."""


class TFDebertaV2ForMultipleChoice(DebertaV2ForMultipleChoice):
    """transformers' TensorFlow name of :class:`DebertaV2ForMultipleChoice`: the same NumPy model, nothing added."""


__all__ = ["TFDebertaV2PreTrainedModel", "TFDebertaV2Model", "TFDebertaV2ForMaskedLM",
           "TFDebertaV2ForSequenceClassification", "TFDebertaV2ForTokenClassification",
           "TFDebertaV2ForQuestionAnswering", "TFDebertaV2ForMultipleChoice"]
