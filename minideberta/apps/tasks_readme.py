"""The README that ``tasks build`` writes beside the datasets: construction, sizes, label balance, licence."""
from . import tasks_build

LICENCE = ("The text and labels are derived from WordNet 3.0 (Princeton University), under the WordNet 3.0 "
           "licence: use, copy, modify and distribute for any purpose, without fee, provided the copyright "
           "notice and licence text are kept (/usr/share/doc/wordnet-base/copyright). George A. Miller (1995), "
           "WordNet: A Lexical Database for English; Christiane Fellbaum (1998, ed.), WordNet: An Electronic "
           "Lexical Database.")

FIELDS = {
    "topic": '`{"id", "text", "label", "lexname", "lemma"}`: the text is the definition, capitalised, lemma left out',
    "hypernymy": '`{"id", "text", "text_pair", "label"}`: premise, hypothesis, `entailment` / `not_entailment`',
    "pos": '`{"id", "text", "words", "spans", "tags", "target"}`: character spans of the words, a tag or null '
           '(not scored) per word, `target` the exemplified word(s) (gold tags)',
    "qa": '`{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}` (SQuAD\'s format)',
    "choice": '`{"id", "prompt", "choices": [4 definitions], "label": index of the right one}`',
}


def readme(stats):
    """Markdown: how the tasks are made (the module docstring of ``tasks_build``) and what came out."""
    doc = tasks_build.__doc__.split("\n\n", 2)[2].strip().replace("``", "`")  # after the title and the command
    lines = ["# Labelled tasks from WordNet's reserved synsets", "",
             "Built by `python -m minideberta tasks build --output DIR` (minideberta/apps/tasks_build.py) from the "
             "Debian package wordnet-base (WordNet 3.0).", "", doc, "",
             f"{stats['reserved_synsets']} of WordNet's {stats['synsets']} synsets are reserved for the tasks.", "",
             "## Sizes and label balance", "", "| task | split | examples | labels |", "| --- | --- | --- | --- |"]
    for task, splits in stats["tasks"].items():
        for split, info in splits.items():
            labels = ", ".join(f"{k} {v}" for k, v in info["labels"].items()) or "(spans)"
            lines.append(f"| {task} | {split} | {info['examples']} | {labels} |")
    lines += ["", "## Files", "", "`<task>/train.jsonl`, `dev.jsonl`, `test.jsonl`, one JSON object a line:", ""]
    lines += [f"- `{task}`: {FIELDS[task]}" for task in stats["tasks"]]
    lines += ["", "## Licence", "", LICENCE, ""]
    return "\n".join(lines)
