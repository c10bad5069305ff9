"""Small checkpoints in the official layout, one per head, for the pipeline, CLI, hub and verify tests.

Laid out as Microsoft and the hub ship them: ``config.json``, ``spm.model`` (the real v3
vocabulary, so the embedding keeps its 128100 rows) and ``pytorch_model.bin`` in float16, with
Microsoft's head names. The ``checkpoints`` fixture (conftest.py) builds them once per session.
"""
import json
import shutil
from pathlib import Path

import numpy as np

from minideberta import (
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForReplacedTokenDetection,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
)
from minideberta.masked_lm import POSITIONS

VOCAB = Path(__file__).resolve().parents[1] / "weights" / "deberta-v3-tokenizer" / "spm.model"
# microsoft/deberta-v3-xsmall's config.json, scaled down (8 buckets: distances past 4 are bucketed).
CONFIG = {"model_type": "deberta-v2", "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
          "max_position_embeddings": 512, "relative_attention": True, "position_buckets": 8,
          "norm_rel_ebd": "layer_norm", "share_att_key": True, "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7,
          "max_relative_positions": -1, "position_biased_input": False, "num_attention_heads": 4,
          "num_hidden_layers": 2, "type_vocab_size": 0, "vocab_size": 128100}
NLI = {"0": "entailment", "1": "neutral", "2": "contradiction"}
BIO = {str(i): label for i, label in enumerate(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])}
# folder -> (class, what config.json adds, what the model is built with beyond it)
LAYOUTS = {
    "mlm": (DebertaV2ForMaskedLM, {}, {"legacy": False}),  # Microsoft's lm_predictions.lm_head.* names
    "rtd": (DebertaV2ForReplacedTokenDetection, {}, {}),
    "nli": (DebertaV2ForSequenceClassification,
            {"id2label": NLI, "label2id": {v: int(k) for k, v in NLI.items()},
             "architectures": ["DebertaV2ForSequenceClassification"]}, {}),
    "ner": (DebertaV2ForTokenClassification, {"id2label": BIO}, {}),
    "qa": (DebertaV2ForQuestionAnswering, {"architectures": ["DebertaV2ForQuestionAnswering"]}, {}),
    "swag": (DebertaV2ForMultipleChoice, {"architectures": ["DebertaV2ForMultipleChoice"]}, {}),
}


def build_checkpoints(root):
    """One folder per head under ``root``; returns {name: folder}."""
    import torch  # the tests write pytorch_model.bin with torch.save

    folders = {}
    for seed, (name, (cls, written, built)) in enumerate(LAYOUTS.items()):
        folder = root / name
        folder.mkdir()
        config = {**CONFIG, **written}
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        shutil.copyfile(VOCAB, folder / "spm.model")
        model = cls(DebertaV2Config(**{**config, **built}), seed=seed)
        params = dict(model.params)
        if name == "mlm":  # official MLM checkpoints keep the absolute position table, for EMD
            params[POSITIONS] = np.random.default_rng(seed).normal(0, 0.02, (512, 32)).astype(np.float32)
        torch.save({k: torch.from_numpy(v).half() for k, v in params.items()}, folder / "pytorch_model.bin")
        folders[name] = folder
    return folders


# A question-answering context long enough for several windows, with one planted answer.
CONTEXT = "The river flows north. " * 40 + "Ships wait in Zanzibar harbour. " + "The river flows north. " * 3
