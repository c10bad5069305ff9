"""The pre-training corpus and vocabulary, rebuilt offline from Debian packages.

    apt-get install python3-doc wordnet-base dict-gcide fortunes fortunes-min
    python -m minideberta corpus --output /work/runs/corpus

The sources and their licences: ``corpus_sources.py`` (the Python documentation's prose, WordNet's
glosses and examples, the GCIDE dictionary's definitions and quotations, the fortune cookies).

The recipe is deterministic: the text is split into sentences, whitespace normalised, sentences
shorter than 4 words or longer than 400 characters dropped, duplicates removed (first occurrence
kept, sources in the order of ``SOURCES``, files in sorted order). Then two hashes decide where a
sentence goes, each the first 8 bytes of a SHA-256 as an integer modulo 10000:

- a WordNet synset whose hash of ``"task:" + synset`` is below ``TASK_PER_10000`` (1500: 15%) is
  *reserved for the labelled tasks* (``minideberta tasks build``): neither its gloss nor its examples
  enter the corpus, so no task text is pre-training text;
- a sentence whose own hash is below ``heldout_per_10000`` (100: 1%) goes to the held-out split.

Outputs in ``--output``: ``train.txt`` and ``heldout.txt`` (one sentence a line, UTF-8),
``spm.model``/``spm.vocab`` (a sentencepiece unigram vocabulary trained on ``train.txt`` with
the sentencepiece library: ``nmt_nfkc``, byte fallback, ``[PAD]`` 0, ``[CLS]`` 1, ``[SEP]`` 2,
``[UNK]`` 3 as in the official DeBERTa-v3 vocabulary; ``[MASK]`` is not a piece, the tokenizer adds
it as id ``len(spm)`` as it does for the official one) and ``corpus.json`` (counts and licences).
"""
import hashlib
import json
from pathlib import Path

from ..cli.errors import OneLineParser
from . import corpus_sources as sources

SOURCES = ("python3-doc", "wordnet-base", "dict-gcide", "fortunes")
TASK_PER_10000 = 1500
DEFAULT_VOCAB = 12000


def keep(sentence):
    return len(sentence.split()) >= 4 and len(sentence) <= 400


def hash_bucket(text):
    """The first 8 bytes of the SHA-256 of ``text`` as an integer, modulo 10000."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % 10000


def is_heldout(sentence, per_10000):
    return hash_bucket(sentence) < per_10000


def reserved_for_tasks(synset):
    """True for the WordNet synsets (``"noun:02084071"``) kept out of the corpus for the tasks."""
    return hash_bucket("task:" + synset) < TASK_PER_10000


def tagged_sentences(paths):
    """``(source, sentence)`` in the recipe's order; WordNet's reserved synsets are left out here."""
    for name in SOURCES:
        reader, _ = sources.READERS[name]
        for item in reader(paths[name]):
            if name == "wordnet-base":
                synset, item = item
                if reserved_for_tasks(synset):
                    continue
            yield name, item


def source_paths(**overrides):
    """Each source's default path (``corpus_sources``), replaced where a keyword names it."""
    paths = {name: Path(overrides.get(name) or default) for name, (_, default) in sources.READERS.items()}
    for name, path in paths.items():
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: install the Debian package {name} "
                                    f"(apt-get install {name}) or pass its path")
    return paths


def build_corpus(output, paths=None, heldout_per_10000=100):
    """Write train.txt and heldout.txt to ``output``; return the counts."""
    paths = paths or source_paths()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    seen, counts = set(), {**{name: 0 for name in SOURCES}, "train": 0, "heldout": 0, "duplicates": 0}
    with open(output / "train.txt", "w", encoding="utf-8") as train, \
            open(output / "heldout.txt", "w", encoding="utf-8") as heldout:
        for name, sentence in tagged_sentences(paths):
            if not keep(sentence):
                continue
            if sentence in seen:
                counts["duplicates"] += 1
                continue
            seen.add(sentence)
            counts[name] += 1
            split = "heldout" if is_heldout(sentence, heldout_per_10000) else "train"
            counts[split] += 1
            (heldout if split == "heldout" else train).write(sentence + "\n")
    return counts


def train_vocabulary(text_file, model_prefix, vocab_size=DEFAULT_VOCAB, seed_sentences=2_000_000):
    """A sentencepiece unigram model with DeBERTa-v3's special pieces (module docstring)."""
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(model_prefix), model_type="unigram", vocab_size=vocab_size,
        normalization_rule_name="nmt_nfkc", byte_fallback=True, character_coverage=0.9995,
        pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]",
        unk_id=3, unk_piece="[UNK]", input_sentence_size=seed_sentences, shuffle_input_sentence=False,
        num_threads=1, minloglevel=2)
    return Path(f"{model_prefix}.model")


def whole_word_share(spm_model, words):
    """The share of ``words`` that the vocabulary keeps as one piece (``"▁word"``)."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    return sum(len(processor.encode(word, out_type=str)) == 1 for word in words) / len(words)


def frequent_words(text_file, n):
    """The ``n`` most frequent lower-case alphabetic words of a text file, most frequent first."""
    import collections
    import re

    counts = collections.Counter()
    with open(text_file, encoding="utf-8") as f:
        for line in f:
            counts.update(re.findall(r"\b[a-z]+\b", line))
    return [word for word, _ in counts.most_common(n)]


def measure_vocabularies(output, sizes, hidden_size, everyday=None):
    """For each vocabulary size: the share of the corpus's 2000 and 10000 most frequent words kept
    whole (and of the words of ``everyday``, a text file), and the embedding table's cost."""
    rows = []
    words = frequent_words(Path(output) / "train.txt", 10000)
    plain = frequent_words(everyday, 100000) if everyday else None
    for size in sizes:
        model = train_vocabulary(Path(output) / "train.txt", Path(output) / f"spm-{size}", size)
        row = {"vocab_size": size, "whole_top2000": round(whole_word_share(model, words[:2000]), 4),
               "whole_top10000": round(whole_word_share(model, words), 4),
               "embedding_parameters": (size + 1) * hidden_size,
               "embedding_mib_float16": round((size + 1) * hidden_size * 2 / 2**20, 2)}
        if plain:
            row["whole_everyday"] = round(whole_word_share(model, plain), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    import argparse

    parser = OneLineParser(
        prog="minideberta corpus", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rebuild the pre-training corpus from the Debian packages " + ", ".join(SOURCES) +
                    " and train its sentencepiece vocabulary.",
        epilog="example:\n  apt-get install " + " ".join(SOURCES) + " fortunes-min\n"
               "  python -m minideberta corpus --output /work/runs/corpus --vocab-size 12000  # takes minutes\n"
               "  python -m minideberta corpus --output /work/runs/corpus --measure-vocab 6000,8000,12000,16000  # takes minutes")
    parser.add_argument("--output", required=True, help="folder for train.txt, heldout.txt, spm.model, corpus.json")
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB, help=f"sentencepiece pieces (default {DEFAULT_VOCAB})")
    parser.add_argument("--measure-vocab", help="comma-separated sizes: train each and report the share of "
                                                "common words kept whole against the embedding's cost")
    parser.add_argument("--everyday", help="with --measure-vocab: a text file of plain sentences whose words to count")
    parser.add_argument("--hidden-size", type=int, default=256, help="with --measure-vocab: for the embedding's cost")
    parser.add_argument("--heldout-per-10000", type=int, default=100, help="held-out share in 1/10000 (default 100)")
    for name, (_, default) in sources.READERS.items():
        parser.add_argument(f"--{name}", help=f"where {name} is installed (default {default})")
    args = parser.parse_args(argv)
    if not 0 < args.heldout_per_10000 < 10000:
        raise ValueError(f"--heldout-per-10000 must be between 1 and 9999, got {args.heldout_per_10000}")
    output = Path(args.output)
    paths = source_paths(**{name: getattr(args, name.replace("-", "_")) for name in sources.READERS})
    counts = build_corpus(output, paths, args.heldout_per_10000)
    info = {"sentences": counts, "licences": {name: sources.LICENCES[name] for name in SOURCES},
            "heldout_per_10000": args.heldout_per_10000, "task_per_10000": TASK_PER_10000}
    if args.measure_vocab:
        sizes = [int(size) for size in args.measure_vocab.split(",")]
        info["vocabularies"] = measure_vocabularies(output, sizes, args.hidden_size, args.everyday)
    train_vocabulary(output / "train.txt", output / "spm", args.vocab_size)
    info["vocab_size"] = args.vocab_size
    info["bytes"] = {name: (output / name).stat().st_size for name in ("train.txt", "heldout.txt")}
    (output / "corpus.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=1))
    return 0
