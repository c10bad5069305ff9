"""``tasks build`` on a tiny WordNet-format folder: only reserved synsets, deterministic splits, right labels."""
import json
import subprocess
import sys

import pytest

from minideberta.apps.pretrain import corpus
from minideberta.apps.pretrain.corpus_sources import wordnet_records
from minideberta.apps.wordnet_tasks import build as tasks_build
from minideberta.apps.wordnet_tasks.wordnet import read_synsets
from wordnet_fixture import write_wordnet

from conftest import REPO


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("wordnet")
    made = write_wordnet(root)
    out = tmp_path_factory.mktemp("tasks")
    stats = tasks_build.build_tasks(root, out)
    rows = {task: {split: [json.loads(line) for line in (out / task / f"{split}.jsonl").open()]
                   for split in tasks_build.SPLITS} for task in tasks_build.TASKS}
    return root, out, made, stats, rows


def all_rows(rows, task):
    return [(split, row) for split in tasks_build.SPLITS for row in rows[task][split]]


def test_every_task_is_built_from_reserved_synsets_only_and_none_of_its_text_is_corpus_text(built):
    root, _, made, _, rows = built
    corpus_text = [s for synset, s in wordnet_records(root) if not corpus.reserved_for_tasks(synset)]
    assert corpus_text, "the fixture must also have synsets the corpus keeps"
    for task in tasks_build.TASKS:
        assert all_rows(rows, task), task
        for _, row in all_rows(rows, task):
            assert corpus.reserved_for_tasks(row["id"].split("#")[0]), (task, row["id"])
            fields = [row.get("text"), row.get("context"), row.get("question")] + row.get("choices", [])
            for sentence in corpus_text:
                assert not any(sentence in field for field in fields if field), (task, sentence)


def test_the_split_is_the_hash_of_the_synset_and_distractors_come_from_the_same_split(built):
    _, _, made, _, rows = built
    seen = {split: set() for split in tasks_build.SPLITS}
    for task in tasks_build.TASKS:
        for split, row in all_rows(rows, task):
            name = row["id"].split("#")[0]
            assert tasks_build.split_of(name) == split
            seen[split].add(name)
    assert all(seen.values()), "every split gets examples"
    definitions = {split: set() for split in tasks_build.SPLITS}
    synsets = read_synsets(built[0])
    for name in made:
        definitions[tasks_build.split_of(name)].add(synsets[name].definition)
    for split, row in all_rows(rows, "choice"):
        assert set(row["choices"]) <= definitions[split]


def test_the_build_is_deterministic(built, tmp_path):
    root, out, _, _, _ = built
    tasks_build.build_tasks(root, tmp_path)
    for task in tasks_build.TASKS:
        for split in tasks_build.SPLITS:
            assert (tmp_path / task / f"{split}.jsonl").read_bytes() == (out / task / f"{split}.jsonl").read_bytes()


def test_labels_are_what_wordnet_says(built):
    root, _, made, stats, rows = built
    synsets = read_synsets(root)
    for _, row in all_rows(rows, "topic"):
        assert row["label"] == tasks_build.TOPIC_OF[made[row["id"]][1]]
        assert made[row["id"]][0] not in row["text"]  # the lemma is left out
    for _, row in all_rows(rows, "hypernymy"):
        parent = synsets[synsets[row["id"]].hypernyms[0]].lemmas[0]
        assert (parent in row["text_pair"]) == (row["label"] == "entailment"), row
    for split in tasks_build.SPLITS:
        labels = stats["tasks"]["hypernymy"][split]["labels"]
        assert labels.get("entailment") == labels.get("not_entailment")
    for _, row in all_rows(rows, "qa"):
        start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start:start + len(text)] == text == synsets[row["id"]].definition
        assert made[row["id"]][0] in row["question"]
    for _, row in all_rows(rows, "choice"):
        assert row["choices"][row["label"]] == synsets[row["id"]].definition and len(set(row["choices"])) == 4
        assert row["prompt"] == made[row["id"]][0]


def test_pos_tags_the_exemplified_word_with_its_synsets_part_of_speech(built):
    root, _, made, _, rows = built
    tagged = all_rows(rows, "pos")
    for _, row in tagged:
        lemma = made[row["id"].split("#")[0]][0]
        (target,) = row["target"]
        assert row["words"][target] == lemma
        assert row["tags"][target] == {"n": "NOUN", "v": "VERB"}[lemma[0]]
        for word, (a, b), tag in zip(row["words"], row["spans"], row["tags"]):
            assert row["text"][a:b] == word
            if word.lower() in ("the", "a", "to", "by", "."):
                assert tag == "O"
            if word == "field":
                assert tag is None  # a noun and a verb in the index: not scored
            if word == "yellow":
                assert tag == "ADJ"


def test_the_command_writes_the_readme_with_sizes_and_licence(built, tmp_path):
    root = built[0]
    done = subprocess.run([sys.executable, "-m", "minideberta", "tasks", "build", "--output", str(tmp_path),
                           "--wordnet", str(root), "--only", "topic", "qa"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    readme = (tmp_path / "README.md").read_text()
    stats = json.loads((tmp_path / "tasks.json").read_text())
    n = stats["tasks"]["topic"]["train"]["examples"]
    assert f"| topic | train | {n} |" in readme and "WordNet 3.0 licence" in readme and n > 0
    assert not (tmp_path / "pos").exists()


def test_a_missing_wordnet_is_one_clear_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "minideberta", "tasks", "build", "--output", str(tmp_path / "o"),
                           "--wordnet", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "apt-get install wordnet-base" in done.stderr
