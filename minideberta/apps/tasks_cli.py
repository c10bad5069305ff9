"""``python -m minideberta tasks build | compare | export``: the labelled tasks, the comparison, the shipped heads.

- ``build`` writes the datasets (``tasks_build.py``) and their README (``tasks_readme.py``);
- ``compare`` runs the baselines and the fine-tuning comparison on the ``topic`` task (``tasks_compare.py``);
- ``export`` fine-tunes a head per task and writes small float16 model folders (``tasks_export.py``).
"""
import argparse
import json
from pathlib import Path

from . import tasks_build
from .errors import OneLineParser

BUILD_EXAMPLE = """example:
  apt-get install wordnet-base
  python -m minideberta tasks build --output /work/runs/tasks"""


def build_main(argv):
    parser = OneLineParser(prog="minideberta tasks build", formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Build the labelled tasks (topic, hypernymy, pos, qa, choice) from the WordNet "
                                       "synsets the pre-training corpus leaves out, with train/dev/test splits.",
                           epilog=BUILD_EXAMPLE)
    parser.add_argument("--output", required=True, help="folder for <task>/{train,dev,test}.jsonl and README.md")
    parser.add_argument("--wordnet", default="/usr/share/wordnet",
                        help="the folder of WordNet's data.* and index.* files (default /usr/share/wordnet)")
    parser.add_argument("--only", nargs="+", choices=tasks_build.TASKS, default=list(tasks_build.TASKS),
                        help="build these tasks only")
    args = parser.parse_args(argv)
    from .tasks_readme import readme

    stats = tasks_build.build_tasks(args.wordnet, args.output, args.only)
    output = Path(args.output)
    (output / "tasks.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    (output / "README.md").write_text(readme(stats), encoding="utf-8")
    for task, splits in stats["tasks"].items():
        print(f"{task}: " + ", ".join(f"{split} {info['examples']}" for split, info in splits.items()))
    print(f"written to {output} (README.md: construction, sizes, label balance, licence)")
    return 0


COMMANDS = {"build": build_main}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        parser = OneLineParser(prog="minideberta tasks", formatter_class=argparse.RawDescriptionHelpFormatter,
                               description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                               epilog="commands: " + ", ".join(COMMANDS) + " (`tasks COMMAND --help`)\n" + BUILD_EXAMPLE)
        parser.add_argument("command", choices=list(COMMANDS))
        parser.parse_args(argv[:1])
    return COMMANDS[argv[0]](argv[1:])
