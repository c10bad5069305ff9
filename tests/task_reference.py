"""What each task pipeline should answer, computed here from the model's own outputs, apart from pipelines.py.

Each function runs the model on the tokenizer's encoding and derives the answer the plain way
(scipy's softmax, loops instead of the pipelines' array tricks), so a test can compare a pipeline's
result with it number for number.
"""
import numpy as np
from scipy.special import expit, softmax

from minideberta.model import no_grad


def _run(model, enc, **kwargs):
    inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    with no_grad():
        return model(**inputs, **kwargs)


def mask_probabilities(model, tokenizer, text):
    """(positions of [MASK], softmax over the whole output vocabulary at each), float64, with each [MASK]
    read as a whole word, as in pre-training: the text is tokenized with "the" in its place, and the
    "▁the" piece that starts there becomes the mask (the pipeline's ``encode_masked``)."""
    starts, written = [], text.split("[MASK]")[0]
    for part in text.split("[MASK]")[1:]:
        starts.append(len(written))
        written += "the" + part
    enc = tokenizer(written, return_tensors="np", return_offsets_mapping=True)
    the = tokenizer.convert_tokens_to_ids(["▁the"])[0]
    for at, (start, _) in enumerate(enc["offset_mapping"][0].tolist()):
        if enc["input_ids"][0, at] == the and start + 1 in starts or (start in starts and start == 0):
            enc["input_ids"][0, at] = tokenizer.mask_token_id
    del enc["offset_mapping"]
    positions = np.flatnonzero(enc["input_ids"][0] == tokenizer.mask_token_id)
    assert len(positions) == len(starts), "every [MASK] is one \"▁the\" piece in these tests' texts"
    logits = np.asarray(_run(model, enc).logits, dtype=np.float64)[0, positions]
    return positions, softmax(logits, axis=-1)


def class_probabilities(model, tokenizer, text, text_pair=None):
    enc = tokenizer(text, text_pair, return_tensors="np")
    return softmax(np.asarray(_run(model, enc).logits, dtype=np.float64)[0])


def replaced_probabilities(model, tokenizer, text):
    """p(replaced) of every token but [CLS] and [SEP]."""
    enc = tokenizer(text, return_tensors="np")
    return list(expit(np.asarray(_run(model, enc).logits, dtype=np.float64)[0, 1:-1]))


def choice_probabilities(model, tokenizer, prompt, choices):
    enc = tokenizer([prompt] * len(choices), choices, padding=True, return_tensors="np")
    inputs = {k: enc[k][None] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    with no_grad():
        return softmax(np.asarray(model(**inputs).logits, dtype=np.float64)[0])


def bio_entities(model, tokenizer, text):
    """[(type, text)] of the entities: each word labelled by its first token's argmax; B-X opens an entity,
    I-X extends an open X (or opens one), O closes."""
    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="np")
    labels = np.asarray(_run(model, enc).logits)[0].argmax(-1)
    words = {}  # word index -> [label of its first token, start, end]
    for i, word in enumerate(enc.word_ids(0)):
        if word is None:
            continue
        start, end = (int(v) for v in enc["offset_mapping"][0, i])
        if word not in words:
            words[word] = [model.config.id2label[int(labels[i])], start, end]
        words[word][2] = end
    entities = []
    for label, start, end in words.values():
        while start < end and text[start].isspace():
            start += 1
        tag, _, kind = label.partition("-")
        if tag == "I" and entities and entities[-1][0] == kind and entities[-1][3]:
            entities[-1][2] = end
        elif tag in ("B", "I"):
            entities.append([kind, start, end, True])
        elif entities:
            entities[-1][3] = False  # O closes the open entity
    return [(kind, text[start:end].strip()) for kind, start, end, _ in entities]


def best_span(model, tokenizer, question, context, max_length, stride, max_answer_length):
    """The answer with the largest start logit + end logit over every window and every span of context
    tokens (start <= end, at most max_answer_length tokens), by brute force; returns (answer, window, score),
    the score p(start) * p(end) with softmaxes over that window's context tokens."""
    enc = tokenizer(question, context, truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="np")
    out = _run(model, enc)
    best = (-np.inf, None, None)
    for window in range(len(enc["input_ids"])):
        context_tokens = [i for i, s in enumerate(enc.sequence_ids(window)) if s == 1]
        for i in context_tokens:
            for j in context_tokens:
                if 0 <= j - i < max_answer_length:
                    total = float(out.start_logits[window, i]) + float(out.end_logits[window, j])
                    if total > best[0]:
                        best = (total, window, (i, j))
    _, window, (i, j) = best
    offsets = enc["offset_mapping"][window]
    context_tokens = [k for k, s in enumerate(enc.sequence_ids(window)) if s == 1]
    p_start = softmax(np.asarray(out.start_logits[window], dtype=np.float64)[context_tokens])
    p_end = softmax(np.asarray(out.end_logits[window], dtype=np.float64)[context_tokens])
    score = p_start[context_tokens.index(i)] * p_end[context_tokens.index(j)]
    return context[int(offsets[i, 0]):int(offsets[j, 1])].strip(), window, float(score)
