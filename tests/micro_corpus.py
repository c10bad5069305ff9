"""A micro pre-training corpus for the tests: sentences of a tiny grammar and their own vocabulary.

``write_micro_corpus(folder)`` writes ``train.txt`` (450 sentences), ``heldout.txt`` (50) and
``spm.model`` (a 300-piece sentencepiece unigram vocabulary trained on train.txt by ``corpus``), the
layout ``python -m minideberta corpus`` gives; models of a few thousand parameters train on it in seconds.
"""
import numpy as np

from minideberta.apps.pretrain import corpus

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the teacher", "a small bird", "the river", "our neighbour"]
VERBS = ["sees", "likes", "follows", "paints", "watches", "finds", "carries", "remembers"]
OBJECTS = ["the red ball", "a green apple", "the long road", "an open door", "the tall tree", "a quiet garden",
           "the moon"]


def write_micro_corpus(folder):
    rng = np.random.default_rng(0)
    lines = [f"{SUBJECTS[rng.integers(8)].capitalize()} {VERBS[rng.integers(8)]} {OBJECTS[rng.integers(7)]}."
             for _ in range(500)]
    (folder / "train.txt").write_text("\n".join(lines[:450]) + "\n", encoding="utf-8")
    (folder / "heldout.txt").write_text("\n".join(lines[450:]) + "\n", encoding="utf-8")
    corpus.train_vocabulary(folder / "train.txt", folder / "spm", vocab_size=300)
    return folder
