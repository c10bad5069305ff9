"""The task heads (heads.py) against transformers' head modules, in float64.

Proves: the pooler equals ContextPooler for each pooler_hidden_act; the classifier is a Linear;
the MLM head equals transformers' legacy head (cls.predictions, decoding with the tied word
embeddings, embedding_size != hidden_size included) and its legacy=False head
(lm_predictions.lm_head); configurations transformers would only fail on later are refused at
construction with a ValueError that names the problem.
"""
import numpy as np
import pytest
import torch

from minideberta import DebertaV2ForMaskedLM, DebertaV2ForQuestionAnswering, DebertaV2ForSequenceClassification, heads
from minideberta.params import subtree

from reference import assert_close, hf_model, md_config, numpy, official_path, scaled_config, to_numpy_state

rng = np.random.default_rng(0)


def head_setup(class_name, **overrides):
    d = scaled_config(official_path("v3-xsmall"), num_hidden_layers=1, **overrides)
    hf = hf_model(class_name, d, seed=5)
    return md_config(d), hf, to_numpy_state(hf)


@pytest.mark.parametrize("act", ["gelu", "tanh", "relu", "gelu_new"])
def test_pooler_equals_context_pooler(act):
    config, hf, state = head_setup("DebertaV2ForSequenceClassification", pooler_hidden_act=act, num_labels=3)
    hidden = rng.normal(size=(4, 7, config.hidden_size))
    ours, _ = heads.pooler_forward(subtree(state, "pooler"), hidden, config)
    with torch.no_grad():
        theirs = hf.pooler(torch.from_numpy(hidden))
    assert ours.shape == (4, config.pooler_hidden_size)
    assert_close(ours, numpy(theirs), 1e-13, "pooler")
    logits, _ = heads.classifier_forward(subtree(state, "classifier"), ours, 0.1)  # eval: no dropout
    with torch.no_grad():
        assert_close(logits, numpy(hf.classifier(theirs)), 1e-13, "classifier")


@pytest.mark.parametrize("overrides", [{}, {"embedding_size": 24}, {"hidden_act": "gelu_new"}],
                         ids=["v3", "embedding_size=24", "hidden_act=gelu_new"])
def test_legacy_mlm_head(overrides):
    config, hf, state = head_setup("DebertaV2ForMaskedLM", **overrides)
    hidden = rng.normal(size=(2, 5, config.hidden_size))
    p = {**{f"dense.{k}": v for k, v in subtree(state, "cls.predictions.transform.dense").items()},
         **{f"LayerNorm.{k}": v for k, v in subtree(state, "cls.predictions.transform.LayerNorm").items()},
         "bias": state["cls.predictions.bias"]}
    ours, _ = heads.mlm_head_forward(p, hidden, state["deberta.embeddings.word_embeddings.weight"], config)
    with torch.no_grad():
        theirs = hf.cls(torch.from_numpy(hidden))
    assert ours.shape == (2, 5, config.vocab_size)
    assert_close(ours, numpy(theirs), 1e-12, "legacy MLM head")


def test_microsoft_mlm_head():
    config, hf, state = head_setup("DebertaV2ForMaskedLM", legacy=False)
    hidden = rng.normal(size=(2, 5, config.hidden_size))
    ours, _ = heads.mlm_head_forward(subtree(state, "lm_predictions.lm_head"), hidden,
                                     state["deberta.embeddings.word_embeddings.weight"], config)
    with torch.no_grad():
        theirs = hf.lm_predictions(torch.from_numpy(hidden), hf.deberta.embeddings.word_embeddings)
    assert_close(ours, numpy(theirs), 1e-12, "lm_predictions head")


def test_microsoft_mlm_head_needs_embedding_size_equal_hidden_size():
    config = md_config(scaled_config(official_path("v3-xsmall"), legacy=False, embedding_size=24))
    with pytest.raises(ValueError, match=r"embedding_size \(24\) must equal hidden_size \(32\)"):
        DebertaV2ForMaskedLM(config)


def test_question_answering_needs_two_labels():
    config = md_config(scaled_config(official_path("v3-xsmall"), num_labels=3))
    with pytest.raises(ValueError, match="num_labels=2"):
        DebertaV2ForQuestionAnswering(config)


def test_pooler_hidden_size_other_than_hidden_size_is_refused():
    """transformers' ContextPooler reads the [CLS] state (hidden_size wide) with a
    pooler_hidden_size x pooler_hidden_size layer: the two must be equal."""
    d = scaled_config(official_path("v3-xsmall"), pooler_hidden_size=16, num_hidden_layers=1)
    with pytest.raises(ValueError, match="pooler_hidden_size"):
        DebertaV2ForSequenceClassification(md_config(d))(np.array([[1, 2, 3]]))
