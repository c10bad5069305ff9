"""The pre-training corpus and vocabulary, rebuilt offline from two Debian packages.

    apt-get install python3-doc wordnet-base
    python -m minideberta corpus --output /work/runs/corpus

Sources (both installable with apt on Debian/Ubuntu, both licensed for this use):

- ``python3-doc``: the Python 3 documentation as HTML (``/usr/share/doc/python3-doc/html``;
  Debian bookworm ships 3.11). Licence: the PSF License Agreement (Python's documentation is
  distributed under it; the copyright notice is ``/usr/share/doc/python3-doc/copyright``).
  We keep the prose of the ``<p>``, ``<li>``, ``<dd>`` and ``<dt>`` elements, without ``<pre>`` code.
- ``wordnet-base``: Princeton WordNet 3.0 (``/usr/share/wordnet/data.{noun,verb,adj,adv}``).
  Licence: the WordNet 3.0 licence (permissive, notice in ``/usr/share/doc/wordnet-base/copyright``:
  "WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved."). From each synset
  we write its gloss as ``"lemma: definition."`` and every quoted example sentence on its own.

The recipe is deterministic: the text is split into sentences, whitespace normalised, sentences
shorter than 4 words or longer than 400 characters dropped, duplicates removed (first occurrence
kept, files read in sorted order), and each sentence goes to the held-out split when the first
8 bytes of its SHA-256, as an integer, modulo 10000 is below ``heldout_per_10000`` (100: 1%).

Outputs in ``--output``: ``train.txt`` and ``heldout.txt`` (one sentence a line, UTF-8),
``spm.model``/``spm.vocab`` (a sentencepiece unigram vocabulary trained on ``train.txt`` with
the sentencepiece library: ``nmt_nfkc``, byte fallback, ``[PAD]`` 0, ``[CLS]`` 1, ``[SEP]`` 2,
``[UNK]`` 3 as in the official DeBERTa-v3 vocabulary; ``[MASK]`` is not a piece, the tokenizer adds
it as id ``len(spm)`` as it does for the official one) and ``corpus.json`` (counts and licences).
"""
import hashlib
import html.parser
import json
import re
from pathlib import Path

from .errors import OneLineParser

PYTHON_DOC = Path("/usr/share/doc/python3-doc/html")
WORDNET = Path("/usr/share/wordnet")
LICENCES = {"python3-doc": "PSF License Agreement (Python documentation), /usr/share/doc/python3-doc/copyright",
            "wordnet-base": "WordNet 3.0 licence (Princeton University), /usr/share/doc/wordnet-base/copyright"}
PROSE_TAGS = {"p", "li", "dd", "dt"}
SKIP_TAGS = {"pre", "script", "style", "head"}  # code blocks are <pre>
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


class ProseParser(html.parser.HTMLParser):
    """Collects the text of prose elements, one string per element, skipping code and navigation."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.depth_skip, self.current = [], 0, None

    def handle_starttag(self, tag, attrs):
        if tag in SKIP_TAGS:
            self.depth_skip += 1
        elif tag in PROSE_TAGS and self.depth_skip == 0:
            self.flush()
            self.current = []

    def handle_endtag(self, tag):
        if tag in SKIP_TAGS:
            self.depth_skip = max(0, self.depth_skip - 1)
        elif tag in PROSE_TAGS:
            self.flush()

    def handle_data(self, data):
        if self.current is not None and self.depth_skip == 0:
            self.current.append(data)

    def flush(self):
        if self.current:
            self.blocks.append("".join(self.current))
        self.current = None


def sentences(text):
    """Whitespace-normalised sentences of a block of prose."""
    text = re.sub(r"\s+", " ", text.replace("¶", "")).strip()
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def python_doc_sentences(root=PYTHON_DOC):
    for path in sorted(Path(root).resolve().rglob("*.html")):
        if "_static" in path.parts or "_sources" in path.parts or path.name in ("genindex.html", "py-modindex.html"):
            continue
        parser = ProseParser()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        parser.flush()
        for block in parser.blocks:
            yield from sentences(block)


def wordnet_sentences(root=WORDNET):
    """Glosses as "lemma: definition." and the quoted examples, from WordNet's data files."""
    for part in ("noun", "verb", "adj", "adv"):
        for line in (Path(root) / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue  # the licence header lines start with two spaces
            fields, gloss = line.split("|", 1)
            lemma = fields.split()[4].replace("_", " ")
            lemma = re.sub(r"\(\w+\)$", "", lemma)  # adjective markers such as (a), (p)
            pieces = [piece.strip() for piece in gloss.split(";")]
            definitions = [p for p in pieces if p and not p.startswith('"')]
            if definitions:
                yield f"{lemma}: {'; '.join(definitions)}."
            for example in re.findall(r'"([^"]+)"', gloss):
                example = example.strip()
                yield example[0].upper() + example[1:] + ("" if example[-1] in ".!?" else ".")


def keep(sentence):
    return len(sentence.split()) >= 4 and len(sentence) <= 400


def is_heldout(sentence, per_10000):
    digest = hashlib.sha256(sentence.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < per_10000


def build_corpus(output, python_doc=PYTHON_DOC, wordnet=WORDNET, heldout_per_10000=100):
    """Write train.txt and heldout.txt to ``output``; return the counts."""
    for source, what in ((python_doc, "python3-doc"), (wordnet, "wordnet-base")):
        if not Path(source).is_dir():
            raise FileNotFoundError(f"{source} not found: install the Debian package {what} "
                                    f"(apt-get install {what}) or pass its folder")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    seen, counts = set(), {"python3-doc": 0, "wordnet-base": 0, "train": 0, "heldout": 0, "duplicates": 0}
    with open(output / "train.txt", "w", encoding="utf-8") as train, \
            open(output / "heldout.txt", "w", encoding="utf-8") as heldout:
        for name, stream in (("python3-doc", python_doc_sentences(python_doc)),
                             ("wordnet-base", wordnet_sentences(wordnet))):
            for sentence in stream:
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


def train_vocabulary(text_file, model_prefix, vocab_size=6000, seed_sentences=2_000_000):
    """A sentencepiece unigram model with DeBERTa-v3's special pieces (module docstring)."""
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(model_prefix), model_type="unigram", vocab_size=vocab_size,
        normalization_rule_name="nmt_nfkc", byte_fallback=True, character_coverage=0.9995,
        pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]",
        unk_id=3, unk_piece="[UNK]", input_sentence_size=seed_sentences, shuffle_input_sentence=False,
        num_threads=1, minloglevel=2)
    return Path(f"{model_prefix}.model")


def main(argv=None):
    import argparse

    parser = OneLineParser(
        prog="minideberta corpus", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rebuild the pre-training corpus (Python documentation + WordNet, from the Debian packages "
                    "python3-doc and wordnet-base) and train its sentencepiece vocabulary.",
        epilog="example:\n  apt-get install python3-doc wordnet-base\n"
               "  python -m minideberta corpus --output /work/runs/corpus --vocab-size 6000")
    parser.add_argument("--output", required=True, help="folder for train.txt, heldout.txt, spm.model, corpus.json")
    parser.add_argument("--vocab-size", type=int, default=6000, help="sentencepiece pieces (default 6000)")
    parser.add_argument("--heldout-per-10000", type=int, default=100, help="held-out share in 1/10000 (default 100)")
    parser.add_argument("--python-doc", default=str(PYTHON_DOC), help=f"HTML folder (default {PYTHON_DOC})")
    parser.add_argument("--wordnet", default=str(WORDNET), help=f"WordNet data folder (default {WORDNET})")
    args = parser.parse_args(argv)
    if not 0 < args.heldout_per_10000 < 10000:
        raise ValueError(f"--heldout-per-10000 must be between 1 and 9999, got {args.heldout_per_10000}")
    output = Path(args.output)
    counts = build_corpus(output, args.python_doc, args.wordnet, args.heldout_per_10000)
    train_vocabulary(output / "train.txt", output / "spm", args.vocab_size)
    sizes = {name: (output / name).stat().st_size for name in ("train.txt", "heldout.txt")}
    info = {"sentences": counts, "bytes": sizes, "vocab_size": args.vocab_size, "licences": LICENCES,
            "heldout_per_10000": args.heldout_per_10000}
    (output / "corpus.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(info, indent=1))
    return 0
