"""Ready-made tasks on a loaded model: fill masks, spot replaced tokens, classify, tag, answer, choose.

    from minideberta.loading import load_model
    from minideberta.apps.inference.pipelines import fill_mask
    model, tokenizer = load_model("microsoft/deberta-v3-base", "masked-lm")
    fill_mask(model, tokenizer, "Paris is the [MASK] of France.")["masks"][0]["predictions"][0]

Each function takes a model and its tokenizer, runs under ``no_grad()`` and returns plain Python
data (dicts, lists, str, int, float), ready for ``json.dumps``. Character offsets (``start``,
``end``) index the text the caller passed. Scores are computed in float64 whatever the model's dtype.
"""
import numpy as np

from ... import losses
from ...backend import to_numpy
from ...model import no_grad
from ...tokenizer.deberta_tokenizer import MASK


def softmax(x):
    """Probabilities over the last axis, computed in float64 on the host (the pipelines' reports)."""
    return losses.softmax(np.asarray(x, dtype=np.float64))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _encode(tokenizer, text, text_pair=None):
    return tokenizer(text, text_pair, return_offsets_mapping=True, return_tensors="np")


PLACEHOLDER = "the"  # the word a [MASK] stands for while its neighbours are tokenized (one common piece)


def encode_masked(tokenizer, text):
    """Encode ``text`` with every ``[MASK]`` standing for one whole word, as in pre-training.

    The tokenizer (Microsoft's and transformers' alike) starts a new word after a special token, so
    "the [MASK]." becomes ``▁the [MASK] ▁.``; but in pre-training the masked token was a word piece
    such as ``▁mat`` and the full stop after it was ``.``, and a ``▁.`` is almost never seen there
    (only in spaced ellipses, ". . ."), so the model reads the wrong context. Here each ``[MASK]`` is
    tokenized as the word ``PLACEHOLDER``, whose pieces are then replaced by one ``[MASK]`` id: the
    neighbours are the pieces the model was trained on. Offsets point into ``text``. Where a
    placeholder would merge with its neighbours (``[MASK]s``), the plain encoding is returned.
    """
    parts = text.split(MASK)
    plain = _encode(tokenizer, text)
    if len(parts) == 1:
        return plain
    joined, spans, shifts = parts[0], [], []  # spans of the placeholders in ``joined``; text offset = joined - shift
    for part in parts[1:]:
        spans.append((len(joined), len(joined) + len(PLACEHOLDER)))
        shifts.append(len(PLACEHOLDER) - len(MASK))
        joined += PLACEHOLDER + part
    enc = _encode(tokenizer, joined)
    ids, offsets, keep_ids, keep_offsets, k = enc["input_ids"][0], enc["offset_mapping"][0], [], [], 0
    for token_id, (start, end) in zip(ids.tolist(), offsets.tolist()):
        while k < len(spans) and start >= spans[k][1]:
            k += 1
        shift = sum(shifts[:k])
        if start == end:  # [CLS], [SEP]
            keep_ids.append(token_id)
            keep_offsets.append((0, 0))
        elif k < len(spans) and end > spans[k][0]:  # a piece of the placeholder
            if start < spans[k][0] - 1 or end > spans[k][1]:  # it reaches into the neighbouring text
                return plain
            if not keep_ids or keep_ids[-1] != tokenizer.mask_token_id or keep_offsets[-1][0] != spans[k][0] - shift:
                keep_ids.append(tokenizer.mask_token_id)
                keep_offsets.append((spans[k][0] - shift, spans[k][0] - shift + len(MASK)))
        else:
            keep_ids.append(token_id)
            keep_offsets.append((start - shift, end - shift))
    if keep_ids.count(tokenizer.mask_token_id) != len(spans):
        return plain
    n = len(keep_ids)
    return {"input_ids": np.array([keep_ids]), "attention_mask": np.ones((1, n), dtype=np.int64),
            "offset_mapping": np.array([keep_offsets])}


def _inputs(encoding):
    return {k: encoding[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoding}


def trim_span(text, start, end):
    """``(start, end)`` of ``text[start:end]`` without its surrounding whitespace (a "▁" piece spans its space)."""
    piece = text[start:end]
    start += len(piece) - len(piece.lstrip())
    return start, max(start, end - (len(piece) - len(piece.rstrip())))


def fill_mask(model, tokenizer, text, top_k=5, emd=None):
    """The ``top_k`` most likely tokens at every ``[MASK]`` of ``text`` (a DebertaV2ForMaskedLM).

    Scores are the softmax over the whole vocabulary, as in transformers' pipeline; the candidates
    are the ids the tokenizer can write (the embedding rows past them are padding). ``sequence``
    is ``text`` with that one mask replaced. ``emd``: None decodes as the checkpoint was trained
    (Enhanced Mask Decoder when it has Microsoft's head and position table), True/False force it.
    Returns ``{"text", "emd", "masks": [{"position", "start", "end", "predictions": [...]}]}``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    enc = encode_masked(tokenizer, text)  # each [MASK] a whole word, its neighbours as in pre-training
    positions = np.flatnonzero(enc["input_ids"][0] == tokenizer.mask_token_id)
    if positions.size == 0:
        raise ValueError(f"the text has no {MASK}: write {MASK} where a token is to be predicted, "
                         f"e.g. \"Paris is the {MASK} of France.\"")
    length, table = enc["input_ids"].shape[1], _position_table_rows(model, emd)
    if table is not None and length > table:
        raise ValueError(f"the text is {length} tokens long ([CLS] and [SEP] included), but this model decodes masks "
                         f"with the Enhanced Mask Decoder, whose absolute positions end at {table}: shorten the "
                         f"text to {table} tokens around the [MASK], or decode without it (emd=False, --emd off)")
    with no_grad():
        logits = to_numpy(model(**_inputs(enc), emd=emd).logits)[0, positions]  # (masks, vocab_size)
    probs = softmax(logits)
    masks = []
    for position, p in zip(positions, probs):
        start, end = (int(v) for v in enc["offset_mapping"][0, position])
        predictions = []
        for token_id in np.argsort(-p[:len(tokenizer)], kind="stable")[:top_k]:
            word = tokenizer.decode([int(token_id)])
            predictions.append({"token_id": int(token_id), "token": tokenizer.convert_ids_to_tokens([int(token_id)])[0],
                                "token_str": word, "score": float(p[token_id]),
                                "sequence": text[:start] + word + text[end:]})
        masks.append({"position": int(position), "start": start, "end": end, "predictions": predictions})
    return {"text": text, "emd": bool(getattr(model, "use_emd", False)), "masks": masks}


def _position_table_rows(model, emd):
    """The rows of the absolute position table the forward will read (EMD), or None when it reads none."""
    from ...masked_lm import POSITIONS

    if not hasattr(model, "resolve_emd") or not model.resolve_emd(emd):
        return None
    return model.params[POSITIONS].shape[0]


def replaced_tokens(model, tokenizer, text):
    """Each token of ``text`` with the probability that it was replaced (a DebertaV2ForReplacedTokenDetection).

    The probability is the sigmoid of the discriminator's logit; [CLS] and [SEP] are left out.
    """
    enc = _encode(tokenizer, text)
    if enc["input_ids"].shape[1] <= 2:  # [CLS] [SEP] only
        raise ValueError("the text is empty: give a sentence whose tokens to check, e.g. "
                         "\"Paris is the banana of France.\"")
    with no_grad():
        probs = sigmoid(to_numpy(model(**_inputs(enc)).logits)[0])  # (N,)
    ids = enc["input_ids"][0]
    return [{"token": tokenizer.convert_ids_to_tokens([int(ids[i])])[0], "token_id": int(ids[i]),
             "start": int(enc["offset_mapping"][0, i, 0]), "end": int(enc["offset_mapping"][0, i, 1]),
             "probability": float(probs[i])}
            for i, sequence in enumerate(enc.sequence_ids(0)) if sequence is not None]


def classify(model, tokenizer, text, text_pair=None):
    """Labels of ``text`` (or of the pair, e.g. premise and hypothesis for NLI), best first.

    Single-label models: softmax; ``problem_type`` multi_label_classification: a sigmoid per
    label; regression (one output): the value. Label names come from ``config.id2label``.
    Returns ``{"problem_type", "labels": [{"label", "score"}]}`` or, for regression,
    ``{"problem_type": "regression", "label", "value"}``.
    """
    enc = tokenizer(text, text_pair, return_tensors="np")
    with no_grad():
        logits = to_numpy(model(**_inputs(enc)).logits)[0]  # (num_labels,)
    config = model.config
    problem = config.problem_type or ("regression" if config.num_labels == 1 else "single_label_classification")
    if problem == "regression":
        return {"problem_type": problem, "label": config.id2label[0], "value": float(logits[0])}
    scores = sigmoid(logits) if problem == "multi_label_classification" else softmax(logits)
    labels = [{"label": config.id2label[i], "score": float(s)} for i, s in enumerate(scores)]
    return {"problem_type": problem, "labels": sorted(labels, key=lambda entry: -entry["score"])}


def _is_bio(labels):
    return all(label == "O" or label[:2] in ("B-", "I-") for label in labels) and any(
        label != "O" for label in labels)


def _entities(words, text):
    """Spans of words tagged ``B-X I-X ...``; a lone ``I-X`` (or one after another type) starts a span too."""
    entities, current = [], None
    for word in words:
        tag, _, kind = word["label"].partition("-")
        if tag == "I" and current is not None and current["entity"] == kind:
            current["end"], current["scores"] = word["end"], current["scores"] + [word["score"]]
            continue
        current = None
        if tag in ("B", "I"):
            current = {"entity": kind, "start": word["start"], "end": word["end"], "scores": [word["score"]]}
            entities.append(current)
    return [{"entity": e["entity"], "text": text[e["start"]:e["end"]], "start": e["start"], "end": e["end"],
             "score": float(np.mean(e["scores"]))} for e in entities]


def tag_tokens(model, tokenizer, text):
    """Token classification: a label per token, per word, and (for BIO labels) entity spans.

    A word takes the label of its first sub-token, as transformers' "first" aggregation does.
    Returns ``{"tokens": [...], "words": [...], "entities": [...] or None}``, ``entities`` being
    None when the labels are not BIO-style (``O``, ``B-X``, ``I-X``).
    """
    enc = _encode(tokenizer, text)
    with no_grad():
        probs = softmax(to_numpy(model(**_inputs(enc)).logits)[0])  # (N, num_labels)
    id2label, ids, offsets = model.config.id2label, enc["input_ids"][0], enc["offset_mapping"][0]
    tokens, words = [], []
    for i, word in enumerate(enc.word_ids(0)):
        if word is None:
            continue
        best = int(probs[i].argmax())
        token = {"token": tokenizer.convert_ids_to_tokens([int(ids[i])])[0], "start": int(offsets[i, 0]),
                 "end": int(offsets[i, 1]), "label": id2label[best], "score": float(probs[i, best]), "word": word}
        tokens.append(token)
        if words and words[-1]["word"] == word:
            words[-1]["end"] = token["end"]
        else:
            words.append({"word": word, "start": token["start"], "end": token["end"], "label": token["label"],
                          "score": token["score"]})
    for word in words:
        word["start"], word["end"] = trim_span(text, word["start"], word["end"])
        word["text"] = text[word["start"]:word["end"]]
    entities = _entities(words, text) if _is_bio(id2label.values()) else None
    return {"tokens": tokens, "words": words, "entities": entities}


def answer(model, tokenizer, question, context, max_length=384, stride=128, max_answer_length=30):
    """The best answer span to ``question`` in ``context`` (a DebertaV2ForQuestionAnswering).

    The pair is cut into windows of ``max_length`` tokens over the context, overlapping by
    ``stride`` tokens. In each window every span of context tokens with start <= end and at
    most ``max_answer_length`` tokens is scored by start logit + end logit; the best span over
    all windows wins. Its ``score`` is p(start) * p(end), softmaxes over that window's context
    tokens. The answer is cut from ``context`` by the tokens' character offsets.
    Returns ``{"answer", "start", "end", "score", "start_logit", "end_logit", "window", "windows"}``.
    """
    if max_answer_length < 1:
        raise ValueError(f"max_answer_length must be at least 1, got {max_answer_length}")
    if not context.strip():
        raise ValueError("the context is empty: give the text in which to look for the answer")
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    if question_tokens + 3 >= max_length:  # [CLS] question [SEP] context [SEP]
        raise ValueError(f"the question has {question_tokens} tokens, which leaves no room for the context in a "
                         f"window of max_length={max_length} tokens; shorten the question or raise max_length")
    enc = tokenizer(question, context, truncation="only_second", max_length=max_length, stride=stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="np")
    with no_grad():
        out = model(**_inputs(enc))
    start_logits, end_logits = (to_numpy(a).astype(np.float64) for a in (out.start_logits, out.end_logits))
    n = start_logits.shape[1]
    offset = np.arange(n)[None, :] - np.arange(n)[:, None]  # end - start of span (start, end)
    allowed = (offset >= 0) & (offset < max_answer_length)
    best = None
    for window in range(len(start_logits)):
        in_context = np.array([s == 1 for s in enc.sequence_ids(window)])
        starts = np.where(in_context, start_logits[window], -np.inf)
        ends = np.where(in_context, end_logits[window], -np.inf)
        spans = np.where(allowed, starts[:, None] + ends[None, :], -np.inf)  # (N, N): start x end
        i, j = np.unravel_index(np.argmax(spans), spans.shape)
        if best is None or spans[i, j] > best[0]:
            score = softmax(starts)[i] * softmax(ends)[j]
            best = (spans[i, j], window, int(i), int(j), float(score))
    if not np.isfinite(best[0]):
        raise ValueError("the context has no tokens once normalized: give the text in which to look for the answer")
    _, window, i, j, score = best
    offsets = enc["offset_mapping"][window]
    start, end = trim_span(context, int(offsets[i, 0]), int(offsets[j, 1]))
    return {"answer": context[start:end], "start": start, "end": end, "score": score,
            "start_logit": float(start_logits[window, i]), "end_logit": float(end_logits[window, j]),
            "window": window, "windows": len(start_logits)}


def choose(model, tokenizer, prompt, choices):
    """How likely each of ``choices`` follows ``prompt`` (a DebertaV2ForMultipleChoice), best first.

    Each (prompt, choice) pair is encoded as a pair; the C pairs are padded to one length and
    scored together as inputs of shape (1, C, N); the scores are a softmax over the choices.
    Returns ``[{"index", "choice", "score", "logit"}]``, ``index`` being the place in ``choices``.
    """
    choices = list(choices)
    if not choices:
        raise ValueError("no choices given: multiple choice needs at least one answer to score")
    enc = tokenizer([prompt] * len(choices), choices, padding=True, return_tensors="np")
    with no_grad():
        logits = to_numpy(model(**{k: v[None] for k, v in _inputs(enc).items()}).logits)[0]  # (C,)
    scores = softmax(logits)
    ranked = [{"index": i, "choice": c, "score": float(s), "logit": float(v)}
              for i, (c, s, v) in enumerate(zip(choices, scores, logits))]
    return sorted(ranked, key=lambda entry: -entry["score"])
