"""Five labelled tasks built from the WordNet synsets the pre-training corpus leaves out.

    python -m minideberta tasks build --output /work/runs/tasks

``corpus.reserved_for_tasks`` keeps 15% of WordNet's synsets out of the pre-training corpus; every
task here is built from those synsets only (their glosses, examples, lemmas, lexicographer files
and pointers), so no task text is pre-training text. The only words taken from other synsets are
the *names* (lemmas) of hypernyms in the ``hypernymy`` task's hypotheses.

Each reserved synset goes to one split by a hash of its name (``hash_bucket("split:" + name)``:
below 8000 train, below 9000 dev, else test: 80/10/10). An example belongs to the split of the
synset it asks about, and its distractors (other glosses, other hypernyms) come from synsets of the
same split, so no test text is seen in training. Distractors are drawn with a ``random.Random``
seeded by the synset's hash: the build is deterministic.

- ``topic``: sequence classification. The definition of a noun synset (lemma left out), labelled
  with a coarse topic grouping its lexicographer file (``TOPICS``).
- ``hypernymy``: a pair in the shape of NLI. Premise "dog: a member of the genus Canis ...",
  hypothesis "A dog is a kind of canine." (``entailment``: a direct hypernym) or the same sentence
  naming the hypernym of another synset of the same lexicographer file, not an ancestor
  (``not_entailment``). One of each per noun or verb synset: balanced by construction.
- ``pos``: token classification. The words of WordNet's example sentences tagged NOUN, VERB, ADJ,
  ADV or O (in no WordNet index: function words, punctuation). The exemplified word takes its
  synset's part of speech (gold, decided by context); another word takes the one part of speech
  WordNet's index and inflection rules allow, and is not scored (tag null) when they allow several;
  closed-class words (``FUNCTION_WORDS``) are O. Only the exemplified word's tag is gold: the others
  are silver, a lexicon's guess.
- ``qa``: extractive question answering, SQuAD's format. A context of four glosses written as the
  corpus writes them ("lemma: definition."), from one lexicographer file, in shuffled order; the
  question "What is a dog?" ("What does it mean to run?" for verbs, "What does able mean?" else);
  the answer is the definition's span.
- ``choice``: multiple choice. The prompt is a lemma; the four choices are its definition and the
  definitions of three other synsets of its lexicographer file sharing no lemma with it.
"""
import json
import random
import re
from collections import Counter
from pathlib import Path

from ..pretrain.corpus import hash_bucket, reserved_for_tasks
from .wordnet import Lexicon, read_synsets

SPLITS = ("train", "dev", "test")
TASKS = ("topic", "hypernymy", "pos", "qa", "choice")
TOPICS = {"person": ("noun.person",), "animal": ("noun.animal",), "plant": ("noun.plant",),
          "artifact": ("noun.artifact",), "act": ("noun.act", "noun.event", "noun.process", "noun.phenomenon"),
          "communication": ("noun.communication", "noun.cognition", "noun.feeling", "noun.motive"),
          "attribute": ("noun.attribute", "noun.state", "noun.quantity", "noun.relation", "noun.shape", "noun.time"),
          "matter": ("noun.substance", "noun.food", "noun.body", "noun.object")}
TOPIC_OF = {lexname: topic for topic, lexnames in TOPICS.items() for lexname in lexnames}
POS_TAG = {"noun": "NOUN", "verb": "VERB", "adj": "ADJ", "adv": "ADV"}
WORD = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*|\S")
CHOICES = 4
# Closed-class words (determiners, pronouns, prepositions, conjunctions, auxiliaries) are O: WordNet has no
# such parts of speech, and its index holds some of them only as abbreviations ("it", "in", "be", "a").
FUNCTION_WORDS = set("""a an the this that these those some any no every each either neither all both
i me my mine you your yours he him his she her hers it its we us our ours they them their theirs who whom
whose which what there here one ones myself yourself himself herself itself ourselves themselves
in on at by for with from to of into onto upon about above below over under between among through during
before after since until against without within across along around behind beyond near off out up down
and or but nor so yet if because although though while whether than as
is am are was were be been being do does did done have has had having will would shall should can could
may might must not n't 's 're 've 'll 'd""".split())


def split_of(name):
    """``train`` / ``dev`` / ``test`` for a synset name, by hash (80/10/10)."""
    bucket = hash_bucket("split:" + name)
    return "train" if bucket < 8000 else "dev" if bucket < 9000 else "test"


def rng_for(name):
    return random.Random(hash_bucket("draw:" + name))


def article(word):
    return "an" if word[:1].lower() in "aeiou" else "a"


def gloss_sentence(synset):
    """The gloss as the corpus writes it: ``"dog: a member of ...."``."""
    return f"{synset.lemmas[0]}: {synset.definition}."


# ---- the tasks: each yields (split, example) ----
def topic_task(reserved, synsets):
    for s in reserved:
        if s.part == "noun" and s.lexname in TOPIC_OF and s.definitions:
            yield split_of(s.name), {"id": s.name, "text": s.definition[0].upper() + s.definition[1:] + ".",
                                     "label": TOPIC_OF[s.lexname], "lexname": s.lexname, "lemma": s.lemmas[0]}


def ancestors(name, synsets):
    seen, todo = set(), [name]
    while todo:
        current = synsets.get(todo.pop())
        for parent in current.hypernyms if current else ():
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def hypothesis(synset, category):
    if synset.part == "verb":
        return f"To {synset.lemmas[0]} is a way to {category}."
    return f"{article(synset.lemmas[0]).capitalize()} {synset.lemmas[0]} is a kind of {category}."


def hypernymy_task(reserved, synsets):
    pool = {}  # (split, lexname) -> the hypernyms of its synsets
    candidates = [s for s in reserved if s.part in ("noun", "verb") and s.hypernyms and s.definitions]
    for s in candidates:
        pool.setdefault((split_of(s.name), s.lexname), []).extend(h for h in s.hypernyms if h in synsets)
    for s in candidates:
        split, family = split_of(s.name), ancestors(s.name, synsets) | {s.name}
        own = {synsets[h].lemmas[0] for h in family if h in synsets}
        others = sorted({h for h in pool[(split, s.lexname)] if h not in family and synsets[h].lemmas[0] not in own})
        if not others or s.hypernyms[0] not in synsets:
            continue
        rng = rng_for(s.name)
        wrong = synsets[rng.choice(others)].lemmas[0]
        for label, category in (("entailment", synsets[s.hypernyms[0]].lemmas[0]), ("not_entailment", wrong)):
            yield split, {"id": s.name, "text": gloss_sentence(s), "text_pair": hypothesis(s, category),
                          "label": label}


def words_of(text):
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def target_positions(words, synset, lexicon):
    """Indices of the words that realise one of the synset's lemmas (inflected or not)."""
    forms = [[w.lower() for w, _, _ in words], None]
    forms[1] = [set(lexicon.base_forms(w, synset.part)) | {w} for w in forms[0]]
    for lemma in synset.lemmas:
        parts = lemma.lower().split()
        for i in range(len(words) - len(parts) + 1):
            if all(part in forms[1][i + k] for k, part in enumerate(parts)):
                return list(range(i, i + len(parts)))
    return []


def pos_task(reserved, synsets, lexicon):
    for s in reserved:
        for n, sentence in enumerate(s.examples):
            words = words_of(sentence)
            targets = target_positions(words, s, lexicon)
            if not targets:
                continue  # the example does not show the word itself (another inflection or a synonym)
            tags = []
            for i, (word, _, _) in enumerate(words):
                parts = [s.part] if i in targets else [] if word.lower() in FUNCTION_WORDS else lexicon.parts_of(word)
                tags.append(POS_TAG[parts[0]] if len(parts) == 1 else "O" if not parts else None)
            yield split_of(s.name), {"id": f"{s.name}#{n}", "text": sentence, "words": [w for w, _, _ in words],
                                     "spans": [[a, b] for _, a, b in words], "tags": tags, "target": targets}


def distractors(s, pool, rng, k):
    """``k`` synsets of ``pool`` sharing no lemma with ``s`` (and with each other), or None."""
    lemmas = {lemma.lower() for lemma in s.lemmas}
    chosen, used = [], set(lemmas)
    for other in rng.sample(pool, min(len(pool), 8 * k)):
        if not used & {lemma.lower() for lemma in other.lemmas} and other.definitions:
            chosen.append(other)
            used |= {lemma.lower() for lemma in other.lemmas}
            if len(chosen) == k:
                return chosen
    return None


def question(s):
    lemma = s.lemmas[0]
    if s.part == "noun":
        return f"What is {article(lemma)} {lemma}?"
    return f"What does it mean to {lemma}?" if s.part == "verb" else f"What does {lemma} mean?"


def by_family(reserved):
    pool = {}
    for s in reserved:
        if s.definitions:
            pool.setdefault((split_of(s.name), s.lexname), []).append(s)
    return pool


def qa_task(reserved, synsets):
    pool = by_family(reserved)
    for s in reserved:
        rng = rng_for(s.name)
        others = distractors(s, pool.get((split_of(s.name), s.lexname), []), rng, CHOICES - 1) if s.definitions else None
        if others is None:
            continue
        entries = [s] + others
        rng.shuffle(entries)
        context = " ".join(gloss_sentence(e) for e in entries)
        start = context.index(gloss_sentence(s)) + len(s.lemmas[0]) + 2
        assert context[start:start + len(s.definition)] == s.definition
        yield split_of(s.name), {"id": s.name, "question": question(s), "context": context,
                                 "answers": {"text": [s.definition], "answer_start": [start]}}


def choice_task(reserved, synsets):
    pool = by_family(reserved)
    for s in reserved:
        rng = rng_for("choice:" + s.name)
        others = distractors(s, pool.get((split_of(s.name), s.lexname), []), rng, CHOICES - 1) if s.definitions else None
        if others is None:
            continue
        label = rng.randrange(CHOICES)
        choices = [o.definition for o in others]
        choices.insert(label, s.definition)
        yield split_of(s.name), {"id": s.name, "prompt": s.lemmas[0], "choices": choices, "label": label}


def build_tasks(wordnet_root, output, only=TASKS):
    """Write ``output/<task>/{train,dev,test}.jsonl`` and return ``{task: {split: counts}}``."""
    synsets = read_synsets(wordnet_root)
    reserved = [s for s in synsets.values() if reserved_for_tasks(s.name)]
    lexicon = Lexicon(wordnet_root)
    makers = {"topic": lambda: topic_task(reserved, synsets), "hypernymy": lambda: hypernymy_task(reserved, synsets),
              "pos": lambda: pos_task(reserved, synsets, lexicon), "qa": lambda: qa_task(reserved, synsets),
              "choice": lambda: choice_task(reserved, synsets)}
    stats = {"reserved_synsets": len(reserved), "synsets": len(synsets), "tasks": {}}
    for task in only:
        folder = Path(output) / task
        folder.mkdir(parents=True, exist_ok=True)
        rows = {split: [] for split in SPLITS}
        for split, example in makers[task]():
            rows[split].append(example)
        for split in SPLITS:
            with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[split])
        stats["tasks"][task] = {split: summary(task, rows[split]) for split in SPLITS}
    return stats


def summary(task, rows):
    """The size of a split and its label balance (for pos: the tags; for qa: none)."""
    if task == "pos":
        labels = Counter(tag if tag is not None else "(not scored)" for row in rows for tag in row["tags"])
    elif task == "qa":
        labels = Counter()
    else:
        labels = Counter(str(row["label"]) for row in rows)
    return {"examples": len(rows), "labels": dict(sorted(labels.items()))}


def write_sample(built, output, tasks, size):
    """Evenly spaced rows of each built split: ``size`` of train, ``size // 4`` of dev and test."""
    for task in tasks:
        (Path(output) / task).mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            lines = (Path(built) / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
            n = size if split == "train" else max(1, size // 4)
            keep = lines[::max(1, len(lines) // n)][:n]
            (Path(output) / task / f"{split}.jsonl").write_text("".join(keep), encoding="utf-8")
