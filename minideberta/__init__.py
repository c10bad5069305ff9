"""minideberta: DeBERTa-v2/v3 from scratch in NumPy, every forward next to its hand-written backward.

Start from ``deberta.py``: the whole model on one screen, ``forward(p, config, x, task, labels)``
and ``backward(p, dlogits, cache)`` over a parameter dict, in reading order (embeddings, the relative
table, each layer, the Enhanced Mask Decoder, a head, the loss; the backward in reverse), as llm.c's
gpt2_forward / gpt2_backward. Each of its lines calls one file, each file one idea with its equations
in its docstring, in this order:

    ops           linear, LayerNorm, GELU, masked softmax (XSoftmax), dropout
    losses        cross-entropy and the other losses, the task heads' loss choice
    embeddings    the lookup and its scatter-add; ids -> vectors (word, position, token type), embed_proj, LayerNorm, mask
    relative_position   distances i - j, log buckets, rel_to_abs
    attention     disentangled attention: (c2c + c2p + p2c) / sqrt(3d)
    ngie          the convolution beside layer 0 (v2 xlarge/xxlarge)
    encoder       one post-LayerNorm layer, the stack, the shared relative table
    emd           the Enhanced Mask Decoder
    heads         pooler, classifiers, the tied MLM head, the replaced-token-detection head
    deberta       the model on one screen: the files above, forward then backward
    model, tasks, masked_lm   the public classes over deberta.py (inputs, config, config_checks: what they accept)
    backend, optim, gradcheck the array module (NumPy/CuPy), AdamW, numerical gradients
    loading       a model with a task's head and its tokenizer, from a folder or a hub id
    checks, json_file   argument checks; JSON files that may be damaged (config, tokenizer, checkpoints)
    blocks        a speed device: elementwise work in cache-sized blocks of rows (GELU)

Apart from the model: ``tokenizer/`` (text -> ids, exact to sentencepiece), ``checkpoints/`` (reading
and writing weights), ``apps/`` (the command line and what it runs). README.md has the whole tour.
"""
from .config import DebertaV2Config
from .masked_lm import DebertaV2ForMaskedLM
from .model import DebertaV2Model, DebertaV2PreTrainedModel, ModelOutput, no_grad
from .tasks import (
                    DebertaV2ForMultipleChoice,
                    DebertaV2ForQuestionAnswering,
                    DebertaV2ForReplacedTokenDetection,
                    DebertaV2ForSequenceClassification,
                    DebertaV2ForTokenClassification,
)
from .tf_classes import (
                    TFDebertaV2ForMaskedLM,
                    TFDebertaV2ForMultipleChoice,
                    TFDebertaV2ForQuestionAnswering,
                    TFDebertaV2ForSequenceClassification,
                    TFDebertaV2ForTokenClassification,
                    TFDebertaV2Model,
                    TFDebertaV2PreTrainedModel,
)
from .tokenizer.deberta_tokenizer import DebertaV2Tokenizer, DebertaV2TokenizerFast

__all__ = [
    "DebertaV2Config", "DebertaV2Tokenizer", "DebertaV2TokenizerFast", "DebertaV2Model", "DebertaV2PreTrainedModel", "DebertaV2ForMaskedLM",
    "DebertaV2ForSequenceClassification", "DebertaV2ForTokenClassification", "DebertaV2ForQuestionAnswering",
    "DebertaV2ForMultipleChoice", "DebertaV2ForReplacedTokenDetection", "ModelOutput", "no_grad",
    # transformers' TensorFlow names of the same NumPy models (tf_classes.py)
    "TFDebertaV2Model", "TFDebertaV2PreTrainedModel", "TFDebertaV2ForMaskedLM", "TFDebertaV2ForSequenceClassification",
    "TFDebertaV2ForTokenClassification", "TFDebertaV2ForQuestionAnswering", "TFDebertaV2ForMultipleChoice",
]
