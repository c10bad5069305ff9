"""corpus.py and corpus_sources.py on small files in each package's format (the real packages are not needed)."""
import gzip
import json
from pathlib import Path

import pytest

from minideberta.apps.cli import main as cli
from minideberta.apps.pretrain import corpus
from minideberta.apps.pretrain import corpus_sources as sources

GCIDE_TEXT = """\
Affect \\Af*fect"\\, v. t. [imp. & p. p. {Affected}; p. pr. & vb.
   n. {Affecting}.] [L. affectus, p. p. of afficere.]
   1. To act upon; to produce an effect or change upon.
      [1913 Webster]

            The climate affected their health and spirits.
                                                  --Macaulay.
      [1913 Webster]

   2. To love; to regard with affection. [Obs.]
      [1913 Webster]

Ethic \\Eth"ic\\, a. Of, or belonging to, morals \\Eth"ic*al\\ still marked up.
   [1913 Webster]

Paris \\Par"is\\, n. A proper name is kept.
   [1913 Webster]
"""

FORTUNE_TEXT = """\
The early bird gets the worm, but the second mouse gets the cheese.
%
Never put off until tomorrow what you can do today.
		-- Thomas Jefferson
%
"""


def wordnet_line(offset, lemma, gloss):
    return f"{offset:08d} 05 n 01 {lemma} 0 000 | {gloss}\n"


@pytest.fixture
def packages(tmp_path):
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    lines = "  1 This software and database is being provided to you\n"  # the licence header
    lines += "".join(wordnet_line(n, f"thing_{n}", f'an object number {n} of some kind; "the thing number {n} '
                                              f'sat on the shelf"') for n in range(1, 301))
    (wordnet / "data.noun").write_text(lines, encoding="latin-1")
    for part in ("verb", "adj", "adv"):
        (wordnet / f"data.{part}").write_text("", encoding="latin-1")
    gcide = tmp_path / "gcide.dict.dz"
    with gzip.open(gcide, "wt", encoding="utf-8") as f:
        f.write(GCIDE_TEXT)
    fortunes = tmp_path / "fortunes"
    fortunes.mkdir()
    (fortunes / "wisdom").write_text(FORTUNE_TEXT, encoding="utf-8")
    (fortunes / "wisdom.dat").write_bytes(b"\0\1")
    (fortunes / "ethnic").write_text("A joke about a people that is left out of the corpus.\n%\n", encoding="utf-8")
    docs = tmp_path / "html"
    docs.mkdir()
    (docs / "index.html").write_text("<html><p>The function returns a list of strings. It never fails "
                                     "on empty input.</p><pre>x = f(1)  # code is dropped</pre></html>")
    return {"python3-doc": docs, "wordnet-base": wordnet, "dict-gcide": gcide, "fortunes": fortunes}


def test_python_doc_keeps_prose_without_code(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "os.html").write_text(
        "<html><head><title>os</title></head><body><p>This module provides a portable way of using "
        "operating system functionality. It is <code>os</code> for short.</p><pre>import os\nos.getcwd()</pre>"
        "<li>Short.</li><dd>Return the current working directory as a string.</dd></body></html>", encoding="utf-8")
    assert list(sources.python_doc_sentences(tmp_path)) == [
        "This module provides a portable way of using operating system functionality.", "It is os for short.",
        "Short.", "Return the current working directory as a string."]


def test_gcide_keeps_definitions_and_quotations_and_drops_markup(packages):
    got = list(sources.gcide_sentences(packages["dict-gcide"]))
    assert got == ["Affect: to act upon; to produce an effect or change upon.",
                   "The climate affected their health and spirits.",
                   "Affect: to love; to regard with affection.",
                   "Paris: a proper name is kept."]


def test_fortunes_drop_attributions_and_left_out_files(packages):
    got = list(sources.fortune_sentences(packages["fortunes"]))
    assert got == ["The early bird gets the worm, but the second mouse gets the cheese.",
                   "Never put off until tomorrow what you can do today."]


def test_wordnet_records_carry_their_synset(packages):
    records = list(sources.wordnet_records(packages["wordnet-base"]))
    assert records[0] == ("noun:00000001", "thing 1: an object number 1 of some kind.")
    assert records[1] == ("noun:00000001", "The thing number 1 sat on the shelf.")
    assert len(records) == 600


def test_build_is_deterministic_and_keeps_reserved_synsets_out(packages, tmp_path):
    counts = corpus.build_corpus(tmp_path / "a", packages, heldout_per_10000=2000)
    corpus.build_corpus(tmp_path / "b", packages, heldout_per_10000=2000)
    for name in ("train.txt", "heldout.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    text = (tmp_path / "a" / "train.txt").read_text().splitlines() + (tmp_path / "a" / "heldout.txt").read_text().splitlines()
    reserved = {n for n in range(1, 301) if corpus.reserved_for_tasks(f"noun:{n:08d}")}
    assert 20 < len(reserved) < 80  # 15% of 300, give or take
    for n in range(1, 301):
        present = f"thing {n}: an object number {n} of some kind." in text
        assert present != (n in reserved), n
    assert counts["wordnet-base"] == 2 * (300 - len(reserved))
    assert counts["fortunes"] == 2 and counts["dict-gcide"] == 4 and counts["python3-doc"] == 2
    assert counts["train"] + counts["heldout"] == len(text) == len(set(text))
    held = (tmp_path / "a" / "heldout.txt").read_text().splitlines()
    assert held and all(corpus.is_heldout(s, 2000) for s in held)
    assert not any(corpus.is_heldout(s, 2000) for s in (tmp_path / "a" / "train.txt").read_text().splitlines())


def test_duplicates_are_counted_once(packages, tmp_path):
    (packages["fortunes"] / "again").write_text(FORTUNE_TEXT, encoding="utf-8")
    counts = corpus.build_corpus(tmp_path / "out", packages)
    assert counts["fortunes"] == 2 and counts["duplicates"] == 2


def test_command_writes_the_corpus_and_vocabulary(packages, tmp_path, capsys):
    args = ["corpus", "--output", str(tmp_path / "out"), "--vocab-size", "320"]
    args += [arg for name, path in packages.items() for arg in (f"--{name}", str(path))]
    assert cli.main(args) == 0
    info = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert info["vocab_size"] == 320 and set(info["licences"]) == set(corpus.SOURCES)
    assert (tmp_path / "out" / "spm.model").is_file()


def test_whole_word_share_counts_single_pieces():
    """On Microsoft's 128k vocabulary (committed): common words are one piece, a made-up word is not."""
    spm = Path(__file__).resolve().parents[1] / "weights" / "deberta-v3-tokenizer" / "spm.model"
    assert corpus.whole_word_share(spm, ["list", "house", "qzxvbnwq"]) == pytest.approx(2 / 3)


def test_a_missing_package_is_one_line(tmp_path, capsys):
    code = cli.main(["corpus", "--output", str(tmp_path), "--dict-gcide", str(tmp_path / "nowhere.dz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "apt-get install dict-gcide" in err[0]
