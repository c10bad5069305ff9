"""A tiny folder in WordNet 3.0's database format (wndb(5WN)), for the task builder's tests.

The real files (Debian's wordnet-base) are not installed in CI. The synsets here are made up:
nonsense lemmas ("blick7"), definitions that name their topic, example sentences using the lemma.
Their offsets are chosen so that ``corpus.reserved_for_tasks`` reserves the children and not the
parents, as in the real database where a reserved synset's hypernym is usually not reserved.
"""
from pathlib import Path

from minideberta.apps.pretrain.corpus import reserved_for_tasks

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University.  \n"
# lexicographer file number, part, parent lemma, the kind of definition, how an example uses the lemma
FAMILIES = {
    "noun.animal": (5, "noun", "beast", "a small furry animal that lives in burrows number {i}",
                    "The {w} ran across the field."),
    "noun.artifact": (6, "noun", "gadget", "a metal device used for cutting wood number {i}",
                      "She bought a new {w} yesterday."),
    "noun.plant": (20, "noun", "shrub", "a flowering plant with yellow leaves number {i}", "A {w} grew by the wall."),
    "verb.motion": (38, "verb", "move", "move quickly on foot number {i}", "They {w} to school every day."),
}


def offsets(part, reserved):
    """Eight-digit offsets whose synset ``part:offset`` is (or is not) reserved, in increasing order."""
    n = 1000
    while True:
        n += 1
        if reserved_for_tasks(f"{part}:{n:08d}") == reserved:
            yield f"{n:08d}"


def write_wordnet(root, per_family=40):
    """Write data.*, index.* and the *.exc files to ``root``; return {synset name: (lemma, lexname)}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lines = {part: [] for part in ("noun", "verb", "adj", "adv")}
    index = {part: {} for part in lines}
    made = {}
    free = {part: (offsets(part, True), offsets(part, False)) for part in lines}
    code = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
    for lexname, (lexfile, part, parent, definition, example) in FAMILIES.items():
        reserved, kept = free[part]
        parents = [(f"{parent}{k}", next(kept)) for k in range(2)]  # two parents: a hypernym to get wrong
        children = [next(reserved) for _ in range(per_family)]
        for k, (name, offset) in enumerate(parents):
            mine = children[k::2]
            pointers = " ".join(f"~ {c} {code[part]} 0000" for c in mine)
            lines[part].append(f"{offset} {lexfile:02d} {code[part]} 01 {name} 0 {len(mine):03d} {pointers} | "
                               f"a general {name}; \"the {name} is here\"")
            index[part].setdefault(name, []).append(offset)
        for i, child in enumerate(children):
            word = f"{part[0]}{lexfile}w{i}"
            lines[part].append(f"{child} {lexfile:02d} {code[part]} 01 {word} 0 001 @ {parents[i % 2][1]} {code[part]} "
                               f"0000 | {definition.format(i=i)}; \"{example.format(w=word).rstrip('.')}\"")
            index[part].setdefault(word, []).append(child)
            made[f"{part}:{child}"] = (word, lexname)
    index["adj"]["yellow"] = ["00000001"]
    index["noun"]["field"] = ["00000002"]
    index["verb"]["field"] = ["00000003"]  # ambiguous: not scored
    for part in lines:
        (root / f"data.{part}").write_text(HEADER + "\n".join(lines[part]) + "\n", encoding="latin-1")
        (root / f"index.{part}").write_text(HEADER + "".join(f"{w} {code[part]} 1 0 1 0 {' '.join(o)}  \n"
                                                             for w, o in sorted(index[part].items())),
                                            encoding="latin-1")
        (root / f"{part}.exc").write_text("", encoding="latin-1")
    return made
