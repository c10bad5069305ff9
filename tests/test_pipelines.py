"""The task pipelines on small checkpoints in the official layout, and on stub models with planted answers.

The checkpoints (the ``checkpoints`` fixture, see checkpoints.py) have random weights, so the tests
check structure and consistency; the stubs check that the pipelines find an answer the model points at.
"""

import numpy as np
import pytest

from minideberta import DebertaV2Config, ModelOutput
from minideberta.apps.inference.pipelines import answer, choose, classify, fill_mask, replaced_tokens, tag_tokens
from minideberta.loading import load_model
from minideberta.tokenizer.deberta_tokenizer import DebertaV2Tokenizer

from checkpoints import BIO, CONFIG, CONTEXT, NLI, VOCAB
from task_reference import (
    best_span,
    bio_entities,
    choice_probabilities,
    class_probabilities,
    mask_probabilities,
    replaced_probabilities,
)


@pytest.fixture(scope="module")
def loaded(checkpoints):
    """head -> (model, tokenizer), each loaded once."""
    heads = {"mlm": "masked-lm", "rtd": "replaced-token-detection", "nli": "sequence-classification",
             "ner": "token-classification", "qa": "question-answering", "swag": "multiple-choice"}
    return {name: load_model(checkpoints[name], head) for name, head in heads.items()}


class Stub:
    """A model whose forward returns ``outputs[k](input_ids)`` for each output field k."""

    def __init__(self, config=None, **outputs):
        self.config, self.outputs, self.use_emd = config, outputs, False

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, emd=None):
        return ModelOutput({k: f(np.asarray(input_ids)) for k, f in self.outputs.items()})


@pytest.fixture(scope="module")
def tokenizer():
    return DebertaV2Tokenizer(VOCAB)


# ---- fill-mask ----
def test_fill_mask_every_mask_top_k_sorted_and_filled_in(loaded):
    model, tok = loaded["mlm"]
    text = "Paris is the [MASK] of [MASK]."
    result = fill_mask(model, tok, text, top_k=4)
    assert result["emd"] is True  # Microsoft's head and position table: EMD on by default
    assert [text[m["start"]:m["end"]] for m in result["masks"]] == ["[MASK]", "[MASK]"]
    positions, probs = mask_probabilities(model, tok, text)  # the model's own softmax, over all 128100 rows
    assert [m["position"] for m in result["masks"]] == list(positions)
    for mask, p in zip(result["masks"], probs):
        best = np.argsort(-p[:len(tok)], kind="stable")[:4]  # the ids the tokenizer can write
        assert [q["token_id"] for q in mask["predictions"]] == list(best)
        np.testing.assert_allclose([q["score"] for q in mask["predictions"]], p[best], rtol=1e-12)
        for p in mask["predictions"]:
            assert p["sequence"] == text[:mask["start"]] + p["token_str"] + text[mask["end"]:]
            assert p["token_id"] < len(tok) and p["token"] == tok.convert_ids_to_tokens([p["token_id"]])[0]
    without = fill_mask(model, tok, text, top_k=4, emd=False)
    assert without["emd"] is False and without["masks"][0]["predictions"] != result["masks"][0]["predictions"]


def test_fill_mask_finds_the_planted_token(tokenizer):
    capital = tokenizer.convert_tokens_to_ids(["▁capital"])[0]

    def logits(ids):
        out = np.zeros(ids.shape + (128100,), np.float32)
        out[..., capital] = 5.0
        out[..., 128050] = 9.0  # an embedding row past the vocabulary: never a candidate
        return out

    result = fill_mask(Stub(logits=logits), tokenizer, "Paris is the [MASK] of France.", top_k=2)
    best = result["masks"][0]["predictions"][0]
    assert best["token_str"] == "capital" and best["sequence"] == "Paris is the capital of France."
    assert 0 < best["score"] < 1  # the padding row still takes its share of the softmax


def test_a_mask_is_read_as_a_whole_word(tokenizer):
    """The tokenizer starts a new word after [MASK] ("▁."), but in pre-training the masked word was a piece such
    as "▁mat" and the full stop after it "."; encode_masked gives the model the pieces it was trained on."""
    from minideberta.apps.inference.pipelines import encode_masked

    text = "The cat sat on the [MASK]. [MASK] is where it sleeps."
    plain = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    enc = encode_masked(tokenizer, text)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert plain[6:8] == ["[MASK]", "▁."]
    assert pieces == ["[CLS]", "▁The", "▁cat", "▁sat", "▁on", "▁the", "[MASK]", ".", "[MASK]", "▁is", "▁where",
                      "▁it", "▁sleeps", ".", "[SEP]"]
    assert [text[a:b] for a, b in enc["offset_mapping"][0].tolist()][6:9] == ["[MASK]", ".", "[MASK]"]
    assert (enc["attention_mask"] == 1).all()
    word = tokenizer("The cat sat on the mat.")["input_ids"]
    assert enc["input_ids"][0, 7] == word[7]  # the same "." as after a real word


def test_fill_mask_needs_a_mask(loaded):
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        fill_mask(*loaded["mlm"], "Paris is the capital of France.")


# ---- replaced-token detection ----
def test_replaced_tokens_one_probability_per_text_token(loaded):
    model, tok = loaded["rtd"]
    text = "Paris is the banana of France."
    result = replaced_tokens(model, tok, text)
    assert [r["token"] for r in result] == tok.tokenize(text)
    np.testing.assert_allclose([r["probability"] for r in result], replaced_probabilities(model, tok, text), rtol=1e-12)
    assert "".join(text[r["start"]:r["end"]] for r in result) == text


# ---- classification ----
def test_classify_nli_labels_sorted_and_pairs_count(loaded):
    model, tok = loaded["nli"]
    single = classify(model, tok, "A man eats pizza.")
    pair = classify(model, tok, "A man eats pizza.", "Someone is eating.")
    for result, texts in ((single, ("A man eats pizza.",)), (pair, ("A man eats pizza.", "Someone is eating."))):
        scores = [entry["score"] for entry in result["labels"]]
        assert {entry["label"] for entry in result["labels"]} == set(NLI.values())
        assert scores == sorted(scores, reverse=True)
        probs = class_probabilities(model, tok, *texts)
        np.testing.assert_allclose([probs[model.config.label2id[e["label"]]] for e in result["labels"]], scores,
                                   rtol=1e-12)
    assert single != pair


def test_classify_multi_label_and_regression(tokenizer):
    logits = np.array([[2.0, -1.0, 0.0]])
    multi = DebertaV2Config(**CONFIG, id2label={0: "a", 1: "b", 2: "c"}, problem_type="multi_label_classification")
    result = classify(Stub(multi, logits=lambda ids: logits), tokenizer, "text")
    assert [(e["label"], round(e["score"], 4)) for e in result["labels"]] == [("a", 0.8808), ("c", 0.5), ("b", 0.2689)]
    regression = DebertaV2Config(**CONFIG, num_labels=1)
    result = classify(Stub(regression, logits=lambda ids: np.array([[3.5]])), tokenizer, "text")
    assert result == {"problem_type": "regression", "label": "LABEL_0", "value": 3.5}


# ---- token classification ----
def test_tag_tokens_words_and_entities(loaded):
    model, tok = loaded["ner"]
    text = "Ada Lovelace was born in London, England."
    result = tag_tokens(model, tok, text)
    assert [t["token"] for t in result["tokens"]] == tok.tokenize(text)
    assert [w["text"] for w in result["words"]] == ["Ada", "Lovelace", "was", "born", "in", "London,", "England."]
    for word in result["words"]:
        first = next(t for t in result["tokens"] if t["word"] == word["word"])
        assert (word["label"], word["score"]) == (first["label"], first["score"])
    expected = bio_entities(model, tok, text)
    assert expected, "the random model should tag some entity here, or this test shows nothing"
    assert [(e["entity"], e["text"]) for e in result["entities"]] == expected
    for entity in result["entities"]:
        assert text[entity["start"]:entity["end"]] == entity["text"]


def test_tag_tokens_groups_bio_spans(tokenizer):
    text = "Grace Hopperman met Babbage in London"
    labels = {"▁Grace": 1, "▁Hopper": 2, "man": 0, "▁Babbage": 2, "▁London": 3}  # "man": a sub-token, ignored
    config = DebertaV2Config(**CONFIG, id2label={int(k): v for k, v in BIO.items()})

    def logits(ids):
        out = np.zeros(ids.shape + (5,))
        for i, token in enumerate(tokenizer.convert_ids_to_tokens(ids[0])):
            out[0, i, labels.get(token, 0)] = 4.0
        return out

    result = tag_tokens(Stub(config, logits=logits), tokenizer, text)
    assert [(e["entity"], e["text"]) for e in result["entities"]] == [
        ("PER", "Grace Hopperman"), ("PER", "Babbage"), ("LOC", "London")]  # a lone I-PER starts an entity
    plain = DebertaV2Config(**CONFIG, id2label={0: "NOUN", 1: "VERB"})
    assert tag_tokens(Stub(plain, logits=lambda ids: np.zeros(ids.shape + (2,))), tokenizer, text)["entities"] is None


# ---- question answering ----


def test_answer_span_over_windows(loaded):
    model, tok = loaded["qa"]
    result = answer(model, tok, "Where do ships wait?", CONTEXT, max_length=48, stride=8)
    assert result["windows"] > 5 and 0 <= result["window"] < result["windows"]
    expected, window, score = best_span(model, tok, "Where do ships wait?", CONTEXT, 48, 8, 30)
    assert (result["answer"], result["window"]) == (expected, window)
    assert result["score"] == pytest.approx(score, rel=1e-9)
    assert result["answer"] and CONTEXT[result["start"]:result["end"]] == result["answer"]
    assert result["answer"] == result["answer"].strip() and 0 < result["score"] <= 1
    assert len(tok.tokenize(result["answer"])) <= 30


def test_answer_finds_the_planted_span_in_a_late_window(tokenizer):
    start_id, end_id = tokenizer.convert_tokens_to_ids(["▁Zanzibar", "▁harbour"])
    model = Stub(start_logits=lambda ids: 10.0 * (ids == start_id), end_logits=lambda ids: 10.0 * (ids == end_id))
    result = answer(model, tokenizer, "Where?", CONTEXT, max_length=48, stride=8)
    assert result["answer"] == "Zanzibar harbour" and result["windows"] > 5 and result["window"] >= 5
    assert CONTEXT[result["start"]:result["end"]] == "Zanzibar harbour"
    short = answer(model, tokenizer, "Where?", CONTEXT, max_length=48, stride=8, max_answer_length=1)
    assert short["answer"] in ("Zanzibar", "harbour")  # the two-token span is now too long


def test_answer_rejects_a_question_longer_than_the_window(loaded):
    with pytest.raises(ValueError, match="question has .* tokens"):
        answer(*loaded["qa"], "why " * 20, "Because.", max_length=16)
    with pytest.raises(ValueError, match="context is empty"):
        answer(*loaded["qa"], "Why?", "  ")


# ---- multiple choice ----
def test_choose_softmax_over_choices(loaded):
    model, tok = loaded["swag"]
    choices = ["it was raining.", "she was hungry.", "the sun set."]
    result = choose(model, tok, "She opened the umbrella because", choices)
    assert sorted(r["index"] for r in result) == [0, 1, 2]
    assert all(choices[r["index"]] == r["choice"] for r in result)
    scores = [r["score"] for r in result]
    assert scores == sorted(scores, reverse=True)
    probs = choice_probabilities(model, tok, "She opened the umbrella because", choices)
    np.testing.assert_allclose(scores, [probs[r["index"]] for r in result], rtol=1e-12)
    assert choose(model, tok, "Prompt", ["only one"])[0]["score"] == 1.0
    with pytest.raises(ValueError, match="no choices"):
        choose(model, tok, "Prompt", [])
