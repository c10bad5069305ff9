"""The sources of the pre-training corpus: one reader per Debian package, each yielding raw sentences.

Every source installs with ``apt-get install`` on Debian/Ubuntu and is licensed for this use:

| package | what we read | licence |
| --- | --- | --- |
| ``python3-doc`` | the prose of the Python documentation (HTML ``<p> <li> <dd> <dt>``, no ``<pre>`` code) | PSF License Agreement |
| ``wordnet-base`` | WordNet 3.0 glosses as ``"lemma: definition."`` and their quoted example sentences | WordNet 3.0 licence |
| ``dict-gcide`` | the Collaborative International Dictionary of English: definitions as ``"headword: definition."`` and its quotations (Webster 1913, literature) | GPL-2+ |
| ``fortunes``, ``fortunes-min`` | the BSD fortune cookie files: quotations and sayings (``ascii-art`` and ``ethnic`` left out) | BSD |

Left out on purpose: ``dict-devil`` (Bierce's *Devil's Dictionary*, public domain) has racial slurs
among its definitions, and a model trained on it repeats them.

WordNet records carry their synset (part of speech and byte offset): ``corpus.py`` keeps a fixed
share of synsets out of the corpus altogether, reserved for the labelled tasks, so a task's text is
never pre-training text.
"""
import gzip
import html.parser
import re
from pathlib import Path

PYTHON_DOC = Path("/usr/share/doc/python3-doc/html")
WORDNET = Path("/usr/share/wordnet")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
FORTUNES = Path("/usr/share/games/fortunes")
FORTUNES_LEFT_OUT = {"ascii-art", "ethnic"}  # pictures made of characters; jokes about peoples
LICENCES = {
    "python3-doc": "PSF License Agreement (Python documentation), /usr/share/doc/python3-doc/copyright",
    "wordnet-base": "WordNet 3.0 licence (Princeton University), /usr/share/doc/wordnet-base/copyright",
    "dict-gcide": "GNU GPL version 2 or later (GCIDE, from Webster's 1913 and later additions), "
                  "/usr/share/doc/dict-gcide/copyright",
    "fortunes": "BSD licence (fortune-mod's cookie files), /usr/share/doc/fortunes/copyright",
}
PROSE_TAGS = {"p", "li", "dd", "dt"}
SKIP_TAGS = {"pre", "script", "style", "head"}  # code blocks are <pre>
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
MARKUP = re.compile(r"[\\{}\[\]|=*<>_^~#@]|\?\?|\s--|--\s")  # what is left of dictionary markup


def sentences(text):
    """Whitespace-normalised sentences of a block of prose."""
    text = re.sub(r"\s+", " ", text.replace("¶", "")).strip()
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


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


def python_doc_sentences(root=PYTHON_DOC):
    for path in sorted(Path(root).resolve().rglob("*.html")):
        if "_static" in path.parts or "_sources" in path.parts or path.name in ("genindex.html", "py-modindex.html"):
            continue
        parser = ProseParser()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        parser.flush()
        for block in parser.blocks:
            yield from sentences(block)


def wordnet_records(root=WORDNET):
    """``(synset, sentence)``: each gloss as "lemma: definition." and each quoted example, with the
    synset they come from (``"noun:02084071"``: part of speech and byte offset in data.noun)."""
    for part in ("noun", "verb", "adj", "adv"):
        for line in (Path(root) / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue  # the licence header lines start with two spaces
            fields, gloss = line.split("|", 1)
            synset = f"{part}:{fields.split()[0]}"
            lemma = fields.split()[4].replace("_", " ")
            lemma = re.sub(r"\(\w+\)$", "", lemma)  # adjective markers such as (a), (p)
            pieces = [piece.strip() for piece in gloss.split(";")]
            definitions = [p for p in pieces if p and not p.startswith('"')]
            if definitions:
                yield synset, f"{lemma}: {'; '.join(definitions)}."
            for example in re.findall(r'"([^"]+)"', gloss):
                example = example.strip()
                yield synset, example[0].upper() + example[1:] + ("" if example[-1] in ".!?" else ".")


def wordnet_sentences(root=WORDNET):
    for _, sentence in wordnet_records(root):
        yield sentence


def _gcide_paragraphs(path):
    """``(headword, indent, text)`` for every paragraph of the dictd file, editors' tags removed."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        headword, lines, indent = None, [], 0
        for line in f:
            line = line.rstrip("\n")
            if re.fullmatch(r"\s*\[[^\]]*\]\s*", line) or not line.strip():  # "[1913 Webster]", blank
                if lines:
                    yield headword, indent, " ".join(lines)
                lines = []
                continue
            if not line[0].isspace():  # a new entry: "Affect \Af*fect"\, v. t. [etymology]"
                if lines:
                    yield headword, indent, " ".join(lines)
                headword, lines = line.split("\\")[0].strip(), []
            if not lines:
                indent = len(line) - len(line.lstrip())
            lines.append(line.strip())
        if lines:
            yield headword, indent, " ".join(lines)


def gcide_sentences(path=GCIDE):
    """Definitions as "headword: definition." and quotations (deeply indented paragraphs), with the
    dictionary's markup removed; a sentence that keeps any markup (``MARKUP``) is dropped."""
    for headword, indent, text in _gcide_paragraphs(path):
        text = re.sub(r"\s*--\s*[A-Z][\w.' ]*\.?\s*$", "", text)  # the quotation's author: "--Milton."
        text = re.sub(r"\[[^\]]*\]", "", text).replace("{", "").replace("}", "")  # etymology, [Obs.]
        text = re.sub(r"\s+", " ", text).strip()
        if indent >= 8:  # a quotation
            yield from (q for q in sentences(text) if not MARKUP.search(q))
            continue
        if headword and text.startswith(headword):  # the entry line: "Affect \Af*fect"\, v. t. To act..."
            text = re.sub(r"^[^\\]*\\[^\\]*\\,?\s*", "", text)
            text = re.sub(r"^((v|n|a|adv|prep|conj|interj|pl|p|imp|pr|vb|t|i|&)\.,?\s*)+", "", text)
        text = re.sub(r"^(\d+\.|\([a-z]\))\s*", "", text)
        text = re.split(r' -- | "', text)[0].strip()  # derived forms "-- Cen"sur*a*bly, adv.", quotations
        if not text or not text[0].isupper() or text.startswith(("Syn", "Note")) or MARKUP.search(text) \
                or not headword or not re.fullmatch(r"[A-Za-z][a-z' -]*", headword):
            continue  # headwords with accents or inner capitals, and what is not a definition
        definition = text[0].lower() + text[1:]
        if not definition.endswith("."):
            definition += "."
        yield f"{headword}: {definition}"  # GCIDE capitalises every headword: "Affect", "Paris"


def fortune_sentences(root=FORTUNES):
    """The cookies of every fortune file (``%``-separated), attributions ("-- Author") dropped."""
    for path in sorted(Path(root).iterdir()):
        if path.suffix or path.is_symlink() or path.name in FORTUNES_LEFT_OUT or not path.is_file():
            continue  # .dat indexes, .u8 links
        for cookie in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            body = [line for line in cookie.splitlines() if not re.match(r"\s*--\s*\S", line)]
            yield from sentences(" ".join(body))


READERS = {"python3-doc": (python_doc_sentences, PYTHON_DOC), "wordnet-base": (wordnet_records, WORDNET),
           "dict-gcide": (gcide_sentences, GCIDE), "fortunes": (fortune_sentences, FORTUNES)}
