"""WordNet 3.0's database files, read as structured synsets for the labelled tasks (``build.py``).

A line of ``data.noun`` (``data.verb``, ``data.adj``, ``data.adv``), from wndb(5WN):

    02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 023 @ 02083346 n 0000 ... | a member of ...

offset, lexicographer file number (``LEXNAMES``), synset type, word count (hex), the words with
their lex ids, the pointer count and pointers (``@`` hypernym, ``@i`` instance hypernym, ``~``
hyponym, ...), verb frames, then ``|`` and the gloss: definitions and quoted examples separated by
``;``. The gloss is split exactly as ``corpus_sources.wordnet_records`` splits it, so a synset's
text here is the text the corpus leaves out for it. A synset is named ``"noun:02084071"`` (the
data file and the offset), as in ``corpus.reserved_for_tasks``.

``index.*`` list every lemma of each part of speech, and ``*.exc`` the irregular inflections;
``base_forms`` undoes inflections with them and WordNet's detachment rules (morphy(7WN)).
"""
import re
from pathlib import Path
from typing import NamedTuple

PARTS = ("noun", "verb", "adj", "adv")
POINTER_PART = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
# lexnames(5WN): the lexicographer files, by number.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
# morphy(7WN)'s detachment rules: (suffix, ending) per part of speech.
DETACH = {"noun": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
                   ("men", "man"), ("ies", "y")],
          "verb": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
                   ("ing", "")],
          "adj": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")], "adv": []}


class Synset(NamedTuple):
    name: str              # "noun:02084071"
    part: str              # noun, verb, adj, adv
    lexname: str           # "noun.animal"
    lemmas: tuple          # ("dog", "domestic dog", "Canis familiaris"): underscores as spaces
    hypernyms: tuple       # synset names of the @ and @i pointers
    hyponyms: tuple        # synset names of the ~ and ~i pointers
    definitions: tuple     # the gloss's definitions, in order
    examples: tuple        # its quoted examples, capitalised and ended as the corpus writes them

    @property
    def definition(self):
        """The definitions joined as the corpus joins them (without the final full stop)."""
        return "; ".join(self.definitions)


def parse_line(part, line):
    """The ``Synset`` of one line of ``data.<part>``, or None for a licence header line."""
    if line.startswith(" ") or "|" not in line:
        return None
    fields, gloss = line.split("|", 1)
    fields = fields.split()
    offset, lexfile, count = fields[0], int(fields[1]), int(fields[3], 16)
    words = [fields[4 + 2 * i] for i in range(count)]
    lemmas = tuple(re.sub(r"\(\w+\)$", "", word).replace("_", " ") for word in words)
    at = 4 + 2 * count
    pointers = [fields[at + 1 + 4 * i: at + 5 + 4 * i] for i in range(int(fields[at]))]
    hypernyms = tuple(f"{POINTER_PART[p[2]]}:{p[1]}" for p in pointers if p[0] in ("@", "@i"))
    hyponyms = tuple(f"{POINTER_PART[p[2]]}:{p[1]}" for p in pointers if p[0] in ("~", "~i"))
    pieces = [piece.strip() for piece in gloss.split(";")]
    definitions = tuple(p for p in pieces if p and not p.startswith('"'))
    examples = tuple(e[0].upper() + e[1:] + ("" if e[-1] in ".!?" else ".")
                     for e in (e.strip() for e in re.findall(r'"([^"]+)"', gloss)) if e)
    return Synset(f"{part}:{offset}", part, LEXNAMES[lexfile], lemmas, hypernyms, hyponyms, definitions, examples)


def read_synsets(root):
    """Every synset of ``root/data.{noun,verb,adj,adv}``, by name, in file order."""
    synsets = {}
    for part in PARTS:
        path = Path(root) / f"data.{part}"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: install WordNet (apt-get install wordnet-base) "
                                    "or pass --wordnet FOLDER holding data.noun, data.verb, data.adj, data.adv")
        for line in path.read_text(encoding="latin-1").splitlines():
            synset = parse_line(part, line)
            if synset is not None:
                synsets[synset.name] = synset
    return synsets


class Lexicon:
    """Which parts of speech a word can be: the lemmas of ``index.*`` and the inflections of ``*.exc``."""

    def __init__(self, root):
        self.lemmas, self.exceptions = {}, {}
        for part in PARTS:
            lemmas, exceptions = set(), {}
            index, exc = Path(root) / f"index.{part}", Path(root) / f"{part}.exc"
            for line in index.read_text(encoding="latin-1").splitlines() if index.is_file() else []:
                if not line.startswith(" ") and line.strip():
                    lemmas.add(line.split()[0])
            for line in exc.read_text(encoding="latin-1").splitlines() if exc.is_file() else []:
                words = line.split()
                if len(words) >= 2:
                    exceptions.setdefault(words[0], []).extend(words[1:])
            self.lemmas[part], self.exceptions[part] = lemmas, exceptions

    def base_forms(self, word, part):
        """The lemmas of ``part`` that ``word`` (lower case) may be an inflection of (morphy(7WN))."""
        candidates = [word] + self.exceptions[part].get(word, [])
        candidates += [word[:-len(suffix)] + ending for suffix, ending in DETACH[part]
                       if word.endswith(suffix) and len(word) > len(suffix)]
        return [c for c in dict.fromkeys(candidates) if c in self.lemmas[part]]

    def parts_of(self, word):
        """The parts of speech ``word`` can be, in ``PARTS`` order."""
        word = word.lower()
        return [part for part in PARTS if self.base_forms(word, part)]
