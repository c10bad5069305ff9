"""The everyday-English sets and their metrics (``apps/pretrain/everyday.py``, ``apps/pretrain/evaluate.py``: ``evaluate_everyday``).

The models are tiny and random, over the shipped vocabulary (``weights/minideberta-v3-tiny/spm.model``,
committed); where a metric must be exactly 1 (or 0), an oracle generator or discriminator that
knows the answer stands in for the model.
"""
import difflib
import json
import re
import types
from pathlib import Path

import numpy as np
import pytest

from minideberta import DebertaV2Tokenizer
from minideberta.apps.cli import main as cli
from minideberta.apps.pretrain import evaluate as pretrain_eval
from minideberta.apps.pretrain import everyday
from minideberta.apps.pretrain.cli import build_models, export, model_configs
from minideberta.apps.pretrain.everyday import ClozeItem, SwapItem, swapped_span
from minideberta.apps.pretrain.rtd import Pretrainer

VOCAB = Path(__file__).resolve().parent.parent / "weights" / "minideberta-v3-tiny"


@pytest.fixture(scope="module")
def tokenizer():
    return DebertaV2Tokenizer.from_pretrained(VOCAB)


@pytest.fixture(scope="module")
def pair(tokenizer):
    g, d = model_configs(len(tokenizer), hidden_size=16, layers=2, heads=2, intermediate_size=32, position_buckets=8,
                         max_position_embeddings=64)
    return build_models(g, d, seed=0)


@pytest.fixture
def small_sets(tmp_path):
    """A folder of a few items of each set, the last cloze item with only multi-piece answers (made-up
    words: no English vocabulary holds them whole, so the tests hold for the vocabulary shipped next)."""
    (tmp_path / "sentences.txt").write_text("The dog ran to the park.\nWe ate soup for lunch today.\n\n"
                                            "My sister reads a book every night.\n", encoding="utf-8")
    (tmp_path / "cloze.tsv").write_text("The cat sat on the [MASK].\tmat|floor|sofa\n"
                                        "We cut the bread with a [MASK].\tknife\n"
                                        "The password is [MASK] today.\tZorblaxian|Qwvzzyx\n", encoding="utf-8")
    (tmp_path / "swap.tsv").write_text("The cat drank the milk.\tThe hat drank the milk.\that\n"
                                       "He locked the door with a key.\tHe locked the door with a song.\tsong\n"
                                       "The teacher's car was red.\tThe volcano's car was red.\tvolcano\n",
                                       encoding="utf-8")
    return tmp_path


# ---- the shipped sets ----

def test_the_shipped_sets_are_what_the_brief_asks():
    sentences, cloze, swap = everyday.load_sentences(), everyday.load_cloze(), everyday.load_swap()
    assert len(sentences) >= 200 and len(cloze) >= 80 and len(swap) >= 80
    assert len(set(sentences)) == len(sentences) and all(6 <= len(s.split()) <= 20 for s in sentences)
    assert all(len(set(item.answers)) == len(item.answers) for item in cloze)  # no answer listed twice
    assert all(len(item.original.split()) == len(item.swapped.split()) for item in swap)
    filled = {item.text.replace("[MASK]", item.answers[0]) for item in cloze}
    assert not (set(sentences) & (filled | {item.original for item in swap}))  # three separate sets


def test_loaders_name_the_line_of_a_bad_item(tmp_path):
    (tmp_path / "cloze.tsv").write_text("A [MASK] and a [MASK].\ta|b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"cloze.tsv line 1: .*exactly one \[MASK\]"):
        everyday.load_cloze(tmp_path)
    (tmp_path / "cloze.tsv").write_text("Half a word[MASK] here.\tx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: .*whole word"):
        everyday.load_cloze(tmp_path)
    (tmp_path / "swap.tsv").write_text("ok line\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: expected 3 non-empty tab-separated fields"):
        everyday.load_swap(tmp_path)
    with pytest.raises(FileNotFoundError, match="sentences.txt"):
        everyday.load_sentences(tmp_path)


# ---- aligning original and swapped ----

@pytest.mark.parametrize("original, swapped, word, expected", [
    ("He locked the door with a key.", "He locked the door with a song.", "song", "song"),
    ("The cat drank the milk.", "The hat drank the milk.", "hat", "hat"),  # shares "at" with the original
    ("Fly a kite today.", "Fly a key today.", "key", "key"),  # shares "k"
    ("The dog saw the dog.", "The dog saw the pen.", "pen", "pen"),
    ("The dog saw the cat.", "The dog saw the dog.", "dog", "dog"),  # the swapped word also earlier
    ("I know that the cat sleeps.", "I know that the hat sleeps.", "hat", "hat"),  # "hat" inside "that" first
    ("The teacher's car was red.", "The volcano's car was red.", "volcano", "volcano"),
    ("We can't go.", "We won't go.", "won't", "won't"),
    ("Snow fell all night.", "Soup fell all night.", "Soup", "Soup"),  # first word, shares the "S"
    ("She is kind.", "She is wooden.", "wooden", "wooden"),  # last word before the full stop
    ("A mother-in-law came.", "A mother-in-cloud came.", "cloud", "cloud"),
])
def test_swapped_span_finds_the_whole_swapped_word(original, swapped, word, expected):
    start, end = swapped_span(SwapItem(original, swapped, word))
    assert swapped[start:end] == expected
    assert swapped[:start] == original[:start] and swapped[end:] == original[len(original) - len(swapped) + end:]


@pytest.mark.parametrize("original, swapped, word, message", [
    ("The cat sat.", "The cat sat.", "cat", "the same line"),
    ("The cat sat on a mat.", "The dog sat on a rug.", "dog", "no whole occurrence"),  # two words changed
    ("The cat sat.", "The hat sat.", "at", "no whole occurrence"),  # the word column must be the whole word
    ("The cat sat.", "The hat sat.", "sat", "no whole occurrence"),  # ... and the one that changed
    ("The cats sat.", "The hats sat.", "hat", "no whole occurrence"),  # "hat" is inside the changed word "hats"
])
def test_swapped_span_refuses_what_is_not_one_word(original, swapped, word, message):
    with pytest.raises(ValueError, match=message):
        swapped_span(SwapItem(original, swapped, word))


def test_overlapping_pieces_by_offsets():
    #          [CLS]   ▁The    ▁   so      ng.      [SEP]   [PAD]   for "The  song." (two spaces)
    offsets = [(0, 0), (0, 3), (3, 5), (5, 7), (7, 10), (0, 0), (0, 0)]
    np.testing.assert_array_equal(everyday.overlapping(offsets, 5, 9), [3, 4])  # "ng." overlaps "song"
    np.testing.assert_array_equal(everyday.word_pieces(offsets, "The  song.", 5, 9), [2, 3, 4])  # and the lone "▁"
    np.testing.assert_array_equal(everyday.word_pieces(offsets, "The  song.", 0, 3), [1])


def test_swapped_pieces_in_real_tokenizations(tokenizer):
    for item in (SwapItem("The teacher's car was red.", "The volcano's car was red.", "volcano"),  # "'" "s" after
                 SwapItem("We met on Monday.", "We met on Zorblaxian.", "Zorblaxian"),
                 SwapItem("I know that the cat sleeps.", "I know that the hat sleeps.", "hat")):
        enc = tokenizer(item.swapped, return_offsets_mapping=True)
        found = everyday.word_pieces(enc["offset_mapping"], item.swapped, *swapped_span(item))
        assert tokenizer.convert_ids_to_tokens([enc["input_ids"][i] for i in found]) == tokenizer.tokenize(item.word)
    assert len(tokenizer.tokenize("Zorblaxian")) > 1  # the case of several pieces is exercised
    # A lone "▁" first (as "▁ dra nk" for "drank" in the 12000-piece vocabulary): here a character only byte
    # fallback spells.
    odd = SwapItem("We sat on the beach.", "We sat on the ʘʘ.", "ʘʘ")
    enc = tokenizer(odd.swapped, return_offsets_mapping=True)
    found = everyday.word_pieces(enc["offset_mapping"], odd.swapped, *swapped_span(odd))
    pieces = tokenizer.convert_ids_to_tokens([enc["input_ids"][i] for i in found])
    assert pieces == tokenizer.tokenize("ʘʘ") and pieces[0] == "▁" and len(pieces) == 5  # "▁" and 4 UTF-8 bytes
    assert tuple(enc["offset_mapping"][found[0]]) == (13, 14)  # the lone "▁" spans the space only


# ---- cloze inputs and accounting ----

def test_cloze_ids_frame_the_blank_as_running_text(tokenizer):
    item = ClozeItem("The cat sat on the [MASK].", ("mat", "floor"))
    ids = everyday.cloze_ids(tokenizer, item)
    running = tokenizer("The cat sat on the mat.")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(running)[6] == "▁mat"
    assert ids == running[:6] + [tokenizer.mask_token_id] + running[7:]  # "." after the blank, no stray "▁"
    typed = tokenizer(item.text)["input_ids"]
    assert typed[:7] == ids[:7] and typed[7:] != ids[7:]  # fill-mask's input: "▁" "." or "▁." after [MASK]
    several = everyday.cloze_ids(tokenizer, ClozeItem("We met on [MASK] at noon.", ("Zorblaxian",)))
    assert several == tokenizer("We met on")["input_ids"][:-1] + [tokenizer.mask_token_id] + \
        tokenizer("at noon.")["input_ids"][1:]  # four pieces become one [MASK]


class SplitTokenizer:
    """Splits at spaces; a word followed by "." becomes one piece with it (as a vocabulary piece ``t.`` would)."""
    mask_token_id, pad_token_id = 99, 0

    def __call__(self, text, return_offsets_mapping=False):
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        return {"input_ids": [1] + [10 + i for i in range(len(spans))] + [2],
                "offset_mapping": [(0, 0)] + spans + [(0, 0)]}


def test_cloze_ids_refuses_an_answer_whose_piece_takes_the_punctuation():
    assert everyday.cloze_ids(SplitTokenizer(), ClozeItem("It is a [MASK].", ("mat",))) is None
    assert everyday.cloze_ids(SplitTokenizer(), ClozeItem("It is a [MASK] here.", ("mat",))) == [1, 10, 11, 12, 99,
                                                                                                  14, 2]


def test_single_pieces(tokenizer):
    ids = everyday.single_pieces(tokenizer, ["mat", "Zorblaxian", "knife", "Qwvzzyx"])
    assert tokenizer.convert_ids_to_tokens(ids) == sorted(["▁mat", "▁knife"], key=tokenizer.convert_tokens_to_ids)


def oracle_generator(tokenizer, items, rank, typed_rank):
    """A stand-in for ``generator_forward``: at each row's [MASK] the first acceptable answer gets rank
    ``rank`` (0 = best, None = not among the five best) in the framed input, ``typed_rank`` in the typed one."""
    answer_of = {}
    for item in items:
        good = everyday.single_pieces(tokenizer, item.answers)
        for ids, place in ((everyday.cloze_ids(tokenizer, item), rank), (tokenizer(item.text)["input_ids"], typed_rank)):
            if good and ids is not None:
                answer_of[tuple(ids)] = good[0], place

    def forward(model, ids, mask, selected, labels):
        logits = np.zeros((len(ids), len(tokenizer)))
        logits[:, 4:10] = [6, 5, 4, 3, 2, 1]  # ids 4..9 lead unless the answer is put above them
        for row, (row_ids, row_mask) in enumerate(zip(ids, mask)):
            answer, place = answer_of[tuple(row_ids[row_mask > 0])]
            logits[row, answer] = -1.0 if place is None else 6.5 - place
        return (0.0, logits), None
    return forward


@pytest.mark.parametrize("rank, typed_rank, expected", [(0, 0, (1, 1, 1, 1)), (3, 0, (0, 1, 1, 1)),
                                                        (None, 4, (0, 0, 0, 1)), (0, None, (1, 1, 0, 0))])
def test_cloze_with_an_oracle_and_the_not_evaluable_items(small_sets, tokenizer, monkeypatch, rank, typed_rank,
                                                          expected):
    items = everyday.load_cloze(small_sets)
    monkeypatch.setattr(everyday, "generator_forward", oracle_generator(tokenizer, items, rank, typed_rank))
    results = everyday.cloze_scores(None, tokenizer, items, batch_size=1)
    assert (results["items"], results["evaluable"], results["not_evaluable"], results["context_not_clean"]) == \
        (3, 2, 1, 0)  # the made-up words are several pieces each
    assert (results["top1"], results["top5"], results["typed_top1"], results["typed_top5"]) == expected
    assert results["top5_of_all"] == expected[1] * 2 / 3


# ---- swap ----

class DiffDiscriminator:
    """Knows each swapped line's original: logit ``sign`` on the tokens an id-level diff (difflib, not
    offsets) finds replaced or inserted, 0 elsewhere."""

    def __init__(self, tokenizer, items, sign=1.0):
        self.original = {tuple(tokenizer(i.swapped)["input_ids"]): tokenizer(i.original)["input_ids"] for i in items}
        self.sign = sign

    def __call__(self, ids, attention_mask=None):
        logits = np.zeros(ids.shape)
        for row, (row_ids, row_mask) in enumerate(zip(ids, attention_mask)):
            real = list(row_ids[row_mask > 0])
            matcher = difflib.SequenceMatcher(a=self.original[tuple(real)], b=real, autojunk=False)
            for tag, _, _, j1, j2 in matcher.get_opcodes():
                if tag != "equal":
                    logits[row, j1:j2] = self.sign
        return types.SimpleNamespace(logits=logits)


def test_swap_with_an_oracle_on_the_shipped_set(tokenizer):
    items, special = everyday.load_swap(), [0, 1, 2, 3, tokenizer.mask_token_id]
    best = everyday.swap_scores(DiffDiscriminator(tokenizer, items), tokenizer, items, special)
    assert best["top1"] == 1.0 and best["mean_rank"] == 1.0 and best["items"] == len(items)
    worst = everyday.swap_scores(DiffDiscriminator(tokenizer, items, -1.0), tokenizer, items, special)
    assert worst["top1"] == 0.0 and worst["mean_rank"] > best["chance_mean_rank"] > 1
    assert 0 < best["chance_top1"] < 0.5 and best["mean_tokens"] > 6


def test_swap_ties_count_against_the_model(small_sets, tokenizer):
    items = everyday.load_swap(small_sets)
    def flat(ids, attention_mask=None):
        return types.SimpleNamespace(logits=np.zeros(ids.shape))

    results = everyday.swap_scores(flat, tokenizer, items, [0, 1, 2, 3, tokenizer.mask_token_id])
    assert results["top1"] == 0.0
    ranks = [1 + len(tokenizer(i.swapped)["input_ids"]) - 2 - len(tokenizer.tokenize(i.word)) for i in items]
    assert results["mean_rank"] == np.mean(ranks)  # rank 1 + (n - k): every other real token ties above


# ---- the sentences, and the whole ----

def test_everyday_on_a_tiny_random_pair(small_sets, tokenizer, pair):
    generator, discriminator = pair
    counts = np.arange(len(tokenizer))[::-1].copy()  # id 4 the most frequent non-special piece
    results = pretrain_eval.evaluate_everyday(generator, discriminator, tokenizer, small_sets, counts, batch_size=2)
    assert results == pretrain_eval.evaluate_everyday(generator, discriminator, tokenizer, small_sets, counts,
                                                      batch_size=2)  # seeded
    sentences = results["sentences"]
    lengths = [len(tokenizer(s)["input_ids"]) - 2 for s in everyday.load_sentences(small_sets)]
    assert sentences["sentences"] == 3 and sentences["masked_tokens"] == sum(max(1, round(0.15 * n)) for n in lengths)
    for key in ("mlm_top1", "mlm_top5", "unigram_top1", "unigram_top5", "best_constant_top1", "best_constant_top5",
                "rtd_auc", "rtd_auc_random", "rtd_accuracy"):
        assert 0.0 <= sentences[key] <= 1.0, key
    assert sentences["mlm_top1"] <= sentences["mlm_top5"] and sentences["unigram_top5"] <= \
        sentences["best_constant_top5"]  # no constant beats the one chosen in hindsight
    assert json.loads(json.dumps(results)) == results  # the command prints it as JSON
    without = pretrain_eval.evaluate_everyday(generator, discriminator, tokenizer, small_sets, batch_size=2)
    assert without["sentences"]["unigram_top1"] is None and without["sentences"]["mlm_top1"] == sentences["mlm_top1"]
    again = pretrain_eval.evaluate_everyday(generator, discriminator, tokenizer, small_sets, counts, batch_size=3)
    assert again["sentences"]["masked_tokens"] == sentences["masked_tokens"]


def test_best_constant():
    assert pretrain_eval.best_constant(np.array([7, 7, 7, 3, 3, 9]), 1) == 0.5
    assert pretrain_eval.best_constant(np.array([7, 7, 7, 3, 3, 9]), 2) == 5 / 6


def test_sentences_with_oracles_score_one(tokenizer, pair, monkeypatch):
    """On the shipped sentences: a generator that puts the original first and a discriminator that knows them."""
    lines = everyday.load_sentences()
    originals = [tokenizer(lines[s:s + 32], padding=True, return_tensors="np")["input_ids"]
                 for s in range(0, len(lines), 32)]
    calls = []

    def generator_forward(model, ids, mask, selected, labels):
        logits = np.zeros((int(selected.sum()), len(tokenizer)))
        logits[np.arange(len(logits)), labels[selected]] = np.log(len(tokenizer))  # first; sampled with p ~ 1/2
        return (0.0, logits), None

    def discriminator(ids, attention_mask=None, labels=None):
        calls.append(1)
        if len(calls) > 2 * len(originals):  # the swap check after the sentences
            return types.SimpleNamespace(logits=np.zeros(ids.shape))
        original = originals[(len(calls) - 1) // 2]  # two calls a batch: generator samples, then random tokens
        return types.SimpleNamespace(logits=(ids != original).astype(float), loss=0.0)

    monkeypatch.setattr(pretrain_eval, "generator_forward", generator_forward)
    results = pretrain_eval.evaluate_everyday(pair[0], discriminator, tokenizer)["sentences"]
    assert results["mlm_top1"] == 1.0 and results["rtd_auc"] == 1.0 and results["rtd_auc_random"] == 1.0
    real = sum(len(tokenizer(line)["input_ids"]) - 2 for line in lines)
    assert 0 < results["replaced_share"] * real < results["masked_tokens"]  # some samples differ, not all


# ---- the command ----

def test_command_reports_the_everyday_sets(small_sets, tokenizer, pair, tmp_path, capsys):
    pt = Pretrainer(*pair, special_ids=(0, 1, 2, 3), mask_id=tokenizer.mask_token_id)
    folders = export(pt, tokenizer, tmp_path / "weights", name="tiny", dtype=np.float32)
    models = [str(folders["discriminator"]), str(folders["-generator"])]
    assert cli.main(["pretrain-eval", *models, "--everyday", str(small_sets)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"everyday"} and out["everyday"]["cloze"]["not_evaluable"] == 1
    corpus = tmp_path / "train.txt"
    corpus.write_text("The dog ran home.\nA cat sat on a mat.\n" * 20, encoding="utf-8")
    assert cli.main(["pretrain-eval", *models, "--everyday", str(small_sets), "--corpus", str(corpus),
                     "--heldout", str(corpus), "--seq-len", "16"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mlm_top1", "rtd_auc", "everyday"} <= set(out) and out["everyday"]["sentences"]["unigram_top1"] is not None
    assert cli.main(["pretrain-eval", *models, "--corpus", str(corpus), "--heldout", str(corpus), "--seq-len", "16",
                     "--no-everyday"]) == 0
    assert "everyday" not in json.loads(capsys.readouterr().out)
    for argv, message in ((["--heldout", str(corpus)], "--heldout needs --corpus"),
                          (["--no-everyday"], "nothing to evaluate"),
                          (["--everyday", str(tmp_path / "none")], "sentences.txt")):
        assert cli.main(["pretrain-eval", *models, *argv]) == 2
        assert message in capsys.readouterr().err
