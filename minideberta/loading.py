"""A model with the head a task needs, and its tokenizer, from a folder or a hub id.

    model, tokenizer = load_model("microsoft/deberta-v3-base", "masked-lm")   # or a local folder
    model, tokenizer = load_model("minideberta-v3-tiny", "replaced-token-detection", np.float64)

``checkpoints/hub.py`` finds the folder and says which heads its checkpoint holds (from the names and
shapes alone); this file, a layer up, picks the public class of the wanted head (``HEAD_CLASSES``) and
builds it from the checkpoint, read once. The command line's task commands, ``verify``, the demo and
the course load their models here.
"""
import warnings

import numpy as np

from .checkpoints import weights
from .checkpoints.hub import MissingHeadError, heads_from_shapes, read_config, resolve_model
from .config import DebertaV2Config, config_file
from .masked_lm import DebertaV2ForMaskedLM
from .tasks import (
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForReplacedTokenDetection,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)
from .tokenizer.deberta_tokenizer import VOCAB_FILE, DebertaV2Tokenizer

HEAD_CLASSES = {
    "masked-lm": DebertaV2ForMaskedLM,
    "replaced-token-detection": DebertaV2ForReplacedTokenDetection,
    "sequence-classification": DebertaV2ForSequenceClassification,
    "token-classification": DebertaV2ForTokenClassification,
    "question-answering": DebertaV2ForQuestionAnswering,
    "multiple-choice": DebertaV2ForMultipleChoice,
}


def load_model(name_or_path, head, dtype=np.float32, progress=True, device="cpu"):
    """``(model, tokenizer)`` for ``head`` (a key of HEAD_CLASSES), the checkpoint read once; the model
    on ``device`` ("cpu" or "gpu").

    Raises MissingHeadError when the checkpoint lacks ``head``, before building anything.
    """
    folder = resolve_model(name_or_path, progress)
    raw = read_config(folder)
    if not (folder / VOCAB_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {VOCAB_FILE}, the sentencepiece vocabulary DeBERTa-v2/v3 "
                                "models ship with; copy it from the model's hub repository")
    tokenizer = DebertaV2Tokenizer.from_pretrained(folder)
    state = weights.load_state_dict(folder)
    held = heads_from_shapes({name: a.shape for name, a in state.items()}, raw.get("architectures"))
    if head not in held:
        raise MissingHeadError(name_or_path, head, held)
    file, microsoft = config_file(folder)  # Microsoft's model_config.json: its names and defaults
    try:
        config = DebertaV2Config.from_microsoft(raw) if microsoft else DebertaV2Config.from_dict(raw)
    except ValueError as error:  # a value of the wrong type or out of range: the message names the file
        raise ValueError(f"{file}: {error}") from None
    try:  # names and shapes that do not fit: the message names the folder
        return _build(HEAD_CLASSES[head], config, state, head, dtype, device), tokenizer
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from None


def _build(cls, config, state, head, dtype, device):
    labels = len(state["classifier.weight"]) if head in ("sequence-classification", "token-classification") else None
    if labels is not None and labels != config.num_labels:
        # config.json without id2label: count the labels on the classifier, name them LABEL_i.
        config = DebertaV2Config.from_dict({**config.to_dict(), "label2id": None,
                                            "id2label": {i: f"LABEL_{i}" for i in range(labels)}})
    with warnings.catch_warnings():
        # Official checkpoints hold several heads (v3: masked LM and replaced-token detection); the others go unused.
        warnings.filterwarnings("ignore", message=r".* does not use \d+ arrays of the checkpoint")
        return cls.from_state_dict(config, state, dtype, device=device)
