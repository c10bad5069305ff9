"""Benchmark: minideberta's tokenizer against transformers' DebertaV2Tokenizer.

Both tokenizers encode the same real sentences in batches, padded, to NumPy arrays,
several times over; the report gives the median throughput of each and their ratio.

The sentences are real English prose that every machine running minideberta has: the
docstrings of the installed ``numpy`` and ``scipy`` packages (both are minideberta
dependencies). Their ``.py`` files are read in sorted order, each triple-quoted string
is cut into paragraphs and sentences, and the first ``n`` distinct sentences that look
like prose (8 to 50 words, a capital letter first and a full stop last, nearly all
letters) are kept; the selection is the same on every run. Should a future release
hold fewer, the list is repeated to reach ``n``.

transformers is optional: without it, only minideberta is measured.
"""
import importlib.util
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ...checkpoints.hub import embedded_folder
from ...tokenizer.deberta_tokenizer import DebertaV2TokenizerFast

VOCAB_FOLDER = "deberta-v3-tokenizer"  # weights/deberta-v3-tokenizer: Microsoft's official v3 spm.model
SOURCE_PACKAGES = ("numpy", "scipy")

_DOCSTRING = re.compile(r'"""(.*?)"""', re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _looks_like_prose(sentence):
    words = sentence.split()
    letters = sum(c.isalpha() or c in " ,." for c in sentence)
    return (8 <= len(words) <= 50 and sentence[0].isupper() and sentence.endswith(".")
            and letters >= 0.9 * len(sentence))


def real_sentences(n=10000):
    """``n`` English sentences from the docstrings of the installed numpy and scipy."""
    found = {}
    for package in SOURCE_PACKAGES:
        root = Path(importlib.util.find_spec(package).origin).parent
        for path in sorted(root.rglob("*.py")):
            for docstring in _DOCSTRING.findall(path.read_text(encoding="utf-8", errors="replace")):
                for paragraph in re.split(r"\n\s*\n", docstring):
                    if ">>>" in paragraph or "--" in paragraph:  # code examples, section rules
                        continue
                    for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
                        if _looks_like_prose(sentence):
                            found[sentence] = None
                    if len(found) >= n:
                        return list(found)[:n]
    sentences = list(found)
    return (sentences * (n // len(sentences) + 1))[:n]


def _throughput(tokenize, sentences, batch_size, repeats):
    """Median sentences per second of ``tokenize`` over ``repeats`` passes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(sentences), batch_size):
            tokenize(sentences[i:i + batch_size])
        times.append(time.perf_counter() - start)
    return len(sentences) / statistics.median(times)


def _transformers_tokenizer(vocab_file, workdir):
    """transformers' DebertaV2Tokenizer on ``vocab_file``, or None if transformers is absent.

    It is loaded with ``from_pretrained`` from a folder laid out as Microsoft ships it:
    in transformers 5.x the ``vocab_file=`` argument is ignored.
    """
    try:
        from transformers import DebertaV2Tokenizer
    except ImportError:
        return None
    shutil.copyfile(vocab_file, Path(workdir) / "spm.model")
    (Path(workdir) / "tokenizer_config.json").write_text('{"do_lower_case": false, "vocab_type": "spm"}')
    return DebertaV2Tokenizer.from_pretrained(workdir)


def default_vocab():
    """The committed ``weights/deberta-v3-tokenizer/spm.model``; a FileNotFoundError saying what to pass without it."""
    folder = embedded_folder(VOCAB_FOLDER)
    if folder is None or not (folder / "spm.model").is_file():
        raise FileNotFoundError(f"the embedded vocabulary weights/{VOCAB_FOLDER}/spm.model is not here (an install "
                                "outside the repository checkout); pass --vocab PATH/TO/spm.model (DeBERTa-v3's)")
    return folder / "spm.model"


def run(n_sentences=10000, batch_size=64, repeats=5, vocab_file=None, report=print):
    """Time both tokenizers on ``n_sentences`` real sentences; return the throughputs and ratio.

    Returns ``{"sentences", "batch_size", "minideberta_per_s", "transformers_per_s",
    "ratio"}``; the last two are None without transformers.
    """
    vocab_file = default_vocab() if vocab_file is None else Path(vocab_file)
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file} not found; pass vocab_file= the DeBERTa-v3 spm.model")
    sentences = real_sentences(n_sentences)
    ours = DebertaV2TokenizerFast(vocab_file)
    report(f"{len(sentences)} sentences from the {' and '.join(SOURCE_PACKAGES)} docstrings, "
           f"batches of {batch_size}, padding=True, return_tensors='np', median of {repeats} runs")
    ours_per_s = _throughput(lambda batch: ours(batch, padding=True, return_tensors="np"),
                             sentences, batch_size, repeats)
    report(f"minideberta DebertaV2TokenizerFast: {ours_per_s:10,.0f} sentences/s")
    result = {"sentences": len(sentences), "batch_size": batch_size, "minideberta_per_s": ours_per_s,
              "transformers_per_s": None, "ratio": None}
    with tempfile.TemporaryDirectory() as workdir:
        theirs = _transformers_tokenizer(vocab_file, workdir)
        if theirs is None:
            report("transformers is not installed: measured minideberta only")
            return result
        theirs_per_s = _throughput(lambda batch: theirs(batch, padding=True, return_tensors="np"),
                                   sentences, batch_size, repeats)
    report(f"transformers DebertaV2Tokenizer:    {theirs_per_s:10,.0f} sentences/s")
    result.update(transformers_per_s=theirs_per_s, ratio=ours_per_s / theirs_per_s)
    report(f"ratio (minideberta / transformers): {result['ratio']:.2f}x")
    return result
