"""The everyday-English sets (``minideberta/data/everyday/``): reading them, and the cloze and swap checks.

The metrics are defined in ``evaluate.py``'s docstring; this file holds what is particular to the
two hand-written checks.

**Cloze input.** A user who types "The cat sat on the [MASK]." gets, from the tokenizer, ``[MASK]``
then a stray ``▁`` before the full stop (the text after a special token is encoded as a fresh
chunk, with sentencepiece's dummy space). Pre-training never saw that: a masked position was always
one piece of a real word, its neighbours tokenized as in running text. The cloze input is therefore
built as pre-training built it: the blank is filled with an answer, the sentence tokenized, and
the answer's pieces (those whose character spans overlap the word) replaced by one ``[MASK]``. The
pieces around stay those of running text. An answer whose pieces reach outside the word (a piece
holding a letter of the word and the full stop after it) would change the context; the next answer
is tried, and an item where none fits is counted in ``context_not_clean`` and left out with the
not evaluable ones (the acceptable pieces do not depend on which answer was used). ``typed_top1``
and ``typed_top5`` score the same items tokenized as typed (the ``fill-mask`` command's input).

**Acceptable pieces.** An answer counts only if the vocabulary holds it as one word-initial piece
(``"mat"`` -> ``▁mat``): the generator predicts one piece at one ``[MASK]``. An item none of whose
answers is a single piece cannot be scored; it is counted as ``not_evaluable``, and ``top1``/``top5``
are shares of the evaluable items (``top5_of_all`` counts the others as misses).

**Swap alignment.** Original and swapped differ in one word. The characters they share at the
start and at the end are cut off; what is left in the swapped line lies inside the swapped word,
whose occurrence covering it (as a whole word, not inside a longer one) gives its character span
``[start, end)``. Lines that differ in anything else raise a ``ValueError``.

**A word's pieces** (``word_pieces``, for the swapped word and for the cloze answer replaced by
``[MASK]``) are the tokens whose offsets overlap its span, widened to the whitespace before it: a
piece holding part of the word and an apostrophe or a full stop counts, and so does a lone ``▁``
(sentencepiece writes "ceiling" as ``▁ ce il ing`` when no piece starts with ``▁c`` and fits: the
``▁`` spans the space only, yet it is the word's first piece, where the original word had ``▁be``).
"""
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ... import __file__ as PACKAGE_INIT
from .rtd import generator_forward

FOLDER = Path(PACKAGE_INIT).resolve().parent / "data" / "everyday"  # package data: minideberta/data/everyday
MASK_TEXT = "[MASK]"


class ClozeItem(NamedTuple):
    text: str  # the sentence with one [MASK]
    answers: tuple  # acceptable words, as they would be written in the blank


class SwapItem(NamedTuple):
    original: str
    swapped: str
    word: str  # the word put into the swapped line


def _rows(path, fields):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: an everyday folder holds sentences.txt, cloze.tsv and swap.tsv")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != fields or not all(part.strip() for part in parts):
            raise ValueError(f"{path} line {number}: expected {fields} non-empty tab-separated fields, "
                             f"got {len(parts)}: {line!r}")
        rows.append((number, parts))
    if not rows:
        raise ValueError(f"{path} holds no items")
    return rows


def load_sentences(folder=None):
    return [parts[0] for _, parts in _rows(Path(folder or FOLDER) / "sentences.txt", 1)]


def load_cloze(folder=None):
    path = Path(folder or FOLDER) / "cloze.tsv"
    items = []
    for number, (text, answers) in _rows(path, 2):
        at = text.find(MASK_TEXT)
        if text.count(MASK_TEXT) != 1 or (at > 0 and text[at - 1] != " ") or text[at + len(MASK_TEXT):][:1].isalnum():
            raise ValueError(f"{path} line {number}: the sentence must hold exactly one {MASK_TEXT}, a whole word "
                             f"(a space or the start before it, a space or punctuation after): {text!r}")
        words = tuple(a.strip() for a in answers.split("|"))
        if not all(words) or any(" " in w for w in words):
            raise ValueError(f"{path} line {number}: answers are single words separated by |, got {answers!r}")
        items.append(ClozeItem(text, words))
    return items


def load_swap(folder=None):
    path = Path(folder or FOLDER) / "swap.tsv"
    items = []
    for number, (original, swapped, word) in _rows(path, 3):
        item = SwapItem(original, swapped, word)
        try:
            swapped_span(item)
        except ValueError as error:
            raise ValueError(f"{path} line {number}: {error}") from None
        items.append(item)
    return items


def _is_word_char(char):
    return char.isalnum() or char == "_"


def swapped_span(item):
    """``(start, end)``: the characters of the swapped word in ``item.swapped`` (module docstring)."""
    original, swapped, word = item
    if original == swapped:
        raise ValueError(f"original and swapped are the same line: {swapped!r}")
    limit = min(len(original), len(swapped))
    prefix = next((i for i in range(limit) if original[i] != swapped[i]), limit)
    suffix = next((i for i in range(limit - prefix) if original[-1 - i] != swapped[-1 - i]), limit - prefix)
    first, last = prefix, len(swapped) - suffix  # the swapped line's differing characters: [first, last)
    start = swapped.find(word)
    while start >= 0:
        end = start + len(word)
        whole = (start == 0 or not _is_word_char(swapped[start - 1])) and \
            (end == len(swapped) or not _is_word_char(swapped[end]))
        if whole and start <= first and last <= end:
            return start, end
        start = swapped.find(word, start + 1)
    raise ValueError(f"the lines differ in {swapped[first:last]!r} (at character {first} of {swapped!r}), which "
                     f"no whole occurrence of the swapped word {word!r} covers: change exactly one word")


def overlapping(offsets, start, end):
    """Indices of the pieces whose character spans ``offsets`` (n, 2) overlap ``[start, end)``
    (special tokens have empty spans (0, 0) and never overlap)."""
    offsets = np.asarray(offsets)
    return np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0]))


def word_pieces(offsets, text, start, end):
    """Indices of the pieces of the word at ``text[start:end]`` (module docstring): those overlapping it
    or the whitespace just before it."""
    while start > 0 and text[start - 1].isspace():
        start -= 1
    return overlapping(offsets, start, end)


def pad_rows(rows, pad_id):
    """Lists of ids -> ``(ids, attention_mask)``, (B, N_max) int64, padded on the right."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


def single_pieces(tokenizer, words):
    """The ids of the ``words`` the vocabulary holds as one piece (as a word in running text: ``▁word``)."""
    ids = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    return sorted({row[0] for row in ids if len(row) == 1 and row[0] != tokenizer.unk_token_id})


def cloze_ids(tokenizer, item):
    """The ids of ``item``'s sentence as pre-training framed it (module docstring): ``[CLS] ... [MASK] ... [SEP]``
    with the pieces around the blank those of running text; ``None`` if no answer leaves them clean."""
    at = item.text.index(MASK_TEXT)
    for answer in item.answers:
        filled = item.text[:at] + answer + item.text[at + len(MASK_TEXT):]
        enc = tokenizer(filled, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], np.asarray(enc["offset_mapping"])
        inside = word_pieces(offsets, filled, at, at + len(answer))
        if offsets[inside, 1].max() <= at + len(answer):  # no piece reaches past the word
            return ids[:inside[0]] + [tokenizer.mask_token_id] + ids[inside[-1] + 1:]
    return None


def top5_at_mask(generator, rows, mask_id, pad_id, batch_size=32):
    """The generator's five best ids at the one ``mask_id`` of each row of ids, (n, 5), best first."""
    out = []
    for start in range(0, len(rows), batch_size):
        ids, mask = pad_rows(rows[start:start + batch_size], pad_id)
        selected = ids == mask_id  # (B, N): one [MASK] a row
        (_, logits), _ = generator_forward(generator, ids, mask, selected, ids)  # logits (B, V)
        out.append(np.argsort(-np.asarray(logits), axis=1, kind="stable")[:, :5])
    return np.concatenate(out) if out else np.zeros((0, 5), dtype=np.int64)


def cloze_scores(generator, tokenizer, items, batch_size=32):
    """The cloze numbers (``evaluate.py``'s docstring) of ``items`` (``ClozeItem``)."""
    acceptable = [single_pieces(tokenizer, item.answers) for item in items]
    built = [cloze_ids(tokenizer, item) if ok else None for item, ok in zip(items, acceptable)]
    scored = [i for i, ids in enumerate(built) if ids is not None]
    mask_id, pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id
    framed = top5_at_mask(generator, [built[i] for i in scored], mask_id, pad_id, batch_size)
    typed = top5_at_mask(generator, [tokenizer(items[i].text)["input_ids"] for i in scored], mask_id, pad_id,
                         batch_size)
    good = np.array([np.isin(framed[j], acceptable[i]) for j, i in enumerate(scored)]).reshape(-1, 5)
    good_typed = np.array([np.isin(typed[j], acceptable[i]) for j, i in enumerate(scored)]).reshape(-1, 5)
    n = len(scored)
    share = (lambda hits: float(hits) / n) if n else (lambda hits: float("nan"))
    return {"items": len(items), "evaluable": n, "not_evaluable": sum(1 for ok in acceptable if not ok),
            "context_not_clean": sum(1 for ok, ids in zip(acceptable, built) if ok and ids is None),
            "top1": share(good[:, 0].sum()), "top5": share(good.any(axis=1).sum()),
            "top5_of_all": float(good.any(axis=1).sum()) / len(items),
            "typed_top1": share(good_typed[:, 0].sum()), "typed_top5": share(good_typed.any(axis=1).sum())}


def swap_scores(discriminator, tokenizer, items, special_ids, batch_size=32):
    """The swap numbers (``evaluate.py``'s docstring) of ``items`` (``SwapItem``)."""
    ranks, chance, chance_rank, tokens = [], [], [], []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        enc = tokenizer([item.swapped for item in batch], padding=True, return_offsets_mapping=True,
                        return_tensors="np")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        logits = np.asarray(discriminator(ids, attention_mask=mask).logits)  # (B, N): "replaced" scores
        for row, item in enumerate(batch):
            real = np.flatnonzero((mask[row] > 0) & ~np.isin(ids[row], special_ids))
            pieces = np.intersect1d(word_pieces(enc["offset_mapping"][row], item.swapped, *swapped_span(item)), real)
            others = np.setdiff1d(real, pieces)
            best = logits[row, pieces].max()
            ranks.append(1 + int((logits[row, others] >= best).sum()))  # ties count against the model
            k, n = len(pieces), len(real)
            chance.append(k / n)
            chance_rank.append(1 + (n - k) / (k + 1))  # expected rank of the best of k among n, scored at random
            tokens.append(n)
    ranks = np.array(ranks)
    return {"items": len(items), "top1": float((ranks == 1).mean()), "mean_rank": float(ranks.mean()),
            "chance_top1": float(np.mean(chance)), "chance_mean_rank": float(np.mean(chance_rank)),
            "mean_tokens": float(np.mean(tokens))}
