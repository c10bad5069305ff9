"""The README that ``tasks build`` writes beside the datasets: construction, sizes, label balance, licence."""
from . import build as tasks_build

LICENCE = ("The text and labels are derived from WordNet 3.0 (Princeton University), under the WordNet 3.0 "
           "licence: use, copy, modify and distribute for any purpose, without fee, provided the copyright "
           "notice and licence text are kept (/usr/share/doc/wordnet-base/copyright). George A. Miller (1995), "
           "WordNet: A Lexical Database for English; Christiane Fellbaum (1998, ed.), WordNet: An Electronic "
           "Lexical Database.")

WORDNET_LICENCE = """This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license.  By obtaining, using
and/or copying this software and database, you agree that you have
read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or
royalty is hereby granted, provided that you agree to comply with
the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal
use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE
OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT
INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software
and/or database.  Title to copyright in this software, database and
any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same."""

FIELDS = {
    "topic": '`{"id", "text", "label", "lexname", "lemma"}`: the text is the definition, capitalised, lemma left out',
    "hypernymy": '`{"id", "text", "text_pair", "label"}`: premise, hypothesis, `entailment` / `not_entailment`',
    "pos": '`{"id", "text", "words", "spans", "tags", "target"}`: character spans of the words, a tag or null '
           '(not scored) per word, `target` the exemplified word(s) (gold tags)',
    "qa": '`{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}` (SQuAD\'s format)',
    "choice": '`{"id", "prompt", "choices": [4 definitions], "label": index of the right one}`',
}


def readme(stats):
    """Markdown: how the tasks are made (the module docstring of ``build.py``) and what came out."""
    doc = tasks_build.__doc__.split("\n\n", 2)[2].strip().replace("``", "`")  # after the title and the command
    lines = ["# Labelled tasks from WordNet's reserved synsets", "",
             "Built by `python -m minideberta tasks build --output DIR` (minideberta/apps/wordnet_tasks/build.py) from the "
             "Debian package wordnet-base (WordNet 3.0).", "", doc, "",
             f"{stats['reserved_synsets']} of WordNet's {stats['synsets']} synsets are reserved for the tasks.", "",
             "## Sizes and label balance", "", "| task | split | examples | labels |", "| --- | --- | --- | --- |"]
    for task, splits in stats["tasks"].items():
        for split, info in splits.items():
            labels = ", ".join(f"{k} {v}" for k, v in info["labels"].items()) or "(spans)"
            lines.append(f"| {task} | {split} | {info['examples']} | {labels} |")
    lines += ["", "## Files", "", "`<task>/train.jsonl`, `dev.jsonl`, `test.jsonl`, one JSON object a line:", ""]
    lines += [f"- `{task}`: {FIELDS[task]}" for task in stats["tasks"]]
    lines += ["", "## Licence", "", LICENCE, "", "The WordNet 3.0 licence, which asks to be reproduced with derived "
              "work:", "", "```", WORDNET_LICENCE, "```", ""]
    return "\n".join(lines)
