"""``python -m minideberta tasks build | compare | export``: the labelled tasks, the comparison, the shipped heads.

- ``build`` writes the datasets (``build.py``) and their README (``readme.py``);
- ``compare`` runs the baselines and the fine-tuning comparison on the ``topic`` task (``compare.py``);
- ``export`` fine-tunes a head per task and writes small float16 model folders (``export.py``).
"""
import argparse
import json
from pathlib import Path

from ..cli.errors import OneLineParser
from . import build as tasks_build

BUILD_EXAMPLE = """example:
  apt-get install wordnet-base
  python -m minideberta tasks build --output /work/runs/tasks  # takes minutes
  python -m minideberta tasks build --output /work/runs/tasks --sample 200 --sample-output tasks/sample  # takes minutes"""


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
    parser.add_argument("--sample", type=int, default=0,
                        help="also write a small sample: about this many training examples per task, a quarter as "
                             "many dev and test examples (evenly spaced), under --sample-output")
    parser.add_argument("--sample-output", help="where the sample goes (default: OUTPUT/sample)")
    args = parser.parse_args(argv)
    from .readme import readme

    stats = tasks_build.build_tasks(args.wordnet, args.output, args.only)
    output = Path(args.output)
    (output / "tasks.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    (output / "README.md").write_text(readme(stats), encoding="utf-8")
    if args.sample:
        sample = Path(args.sample_output or output / "sample")
        tasks_build.write_sample(output, sample, args.only, args.sample)
        with open(output / "README.md", "a", encoding="utf-8") as f:
            f.write(f"\n## Sample\n\n`{sample}` holds evenly spaced rows of each split ({args.sample} of train, "
                    f"{max(1, args.sample // 4)} of dev and of test), for examples and tests that must run without "
                    "WordNet: `python -m minideberta tasks build --output DIR --sample "
                    f"{args.sample} --sample-output {sample}`.\n")
    for task, splits in stats["tasks"].items():
        print(f"{task}: " + ", ".join(f"{split} {info['examples']}" for split, info in splits.items()))
    print(f"written to {output} (README.md: construction, sizes, label balance, licence)")
    return 0


COMPARE_EXAMPLE = """examples:
  python -m minideberta tasks build --output /work/runs/tasks  # takes minutes
  python -m minideberta tasks compare --data /work/runs/tasks --output experiments/finetune  # takes minutes (hours: all data)
  python -m minideberta tasks compare --data tasks/sample --output topic-comparison --seeds 0 --max-steps 2 \\
      --eval-every 1 --warmup-steps 0 --train-size 16 --dev-size 8"""


def compare_main(argv):
    parser = OneLineParser(prog="minideberta tasks compare", formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Majority class, bag-of-words logistic regression, and the model fine-tuned "
                                       "from its pre-trained weights and from a random initialisation, over seeds; "
                                       "writes CSVs, learning curves and a README.", epilog=COMPARE_EXAMPLE)
    parser.add_argument("--data", required=True, help="the folder `tasks build` wrote")
    parser.add_argument("--output", required=True, help="folder for results.csv, summary.csv, curves.csv, the figure")
    parser.add_argument("--task", choices=("topic", "hypernymy"), default="topic")
    parser.add_argument("--model", default="minideberta-v3-tiny", help="the pre-trained model (folder or shipped name)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=0, help="a sample of this many training examples (0: all)")
    parser.add_argument("--dev-size", type=int, default=0, help="a sample of this many dev examples (0: all)")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=5, help="evaluations without a better dev accuracy to stop")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=1, help="fine-tuning runs in parallel processes (default 1)")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    from ...checkpoints.hub import resolve_model
    from . import compare as tasks_compare

    args.model = resolve_model(args.model)
    for row in tasks_compare.compare(args):
        print(f"{row['method']}: test accuracy {row['test_mean']:.4f} +- {row['test_std']:.4f} over {row['seeds']} seeds")
    print(f"written to {args.output}")
    return 0


EXPORT_EXAMPLE = """example:
  python -m minideberta tasks export --data tasks/sample --output heads --max-steps 2 --eval-every 1 \\
      --warmup-steps 0"""


def export_main(argv):
    from . import export as tasks_export

    parser = OneLineParser(prog="minideberta tasks export", formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Fine-tune a head per task (classify: hypernymy, tokens: pos, qa: qa, "
                                       "choose: choice) and save each as a float16 model folder with a model card.",
                           epilog=EXPORT_EXAMPLE)
    parser.add_argument("--data", required=True, help="the folder `tasks build` wrote (or tasks/sample)")
    parser.add_argument("--output", required=True, help="where the <model>-<task> folders go (weights to ship)")
    parser.add_argument("--heads", nargs="+", choices=list(tasks_export.HEADS), default=list(tasks_export.HEADS))
    parser.add_argument("--model", default="minideberta-v3-tiny", help="the pre-trained model (folder or shipped name)")
    parser.add_argument("--train-size", type=int, default=0, help="a sample of this many training examples (0: all)")
    parser.add_argument("--dev-size", type=int, default=0, help="a sample of this many dev examples (0: all)")
    parser.add_argument("--test-size", type=int, default=0, help="a sample of this many test examples (0: all)")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.argv = list(argv)
    from ...checkpoints.hub import resolve_model

    args.model = resolve_model(args.model)
    for command in args.heads:
        tasks_export.export_head(command, args)
    return 0


COMMANDS = {"build": build_main, "compare": compare_main, "export": export_main}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        parser = OneLineParser(prog="minideberta tasks", formatter_class=argparse.RawDescriptionHelpFormatter,
                               description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                               epilog="commands: " + ", ".join(COMMANDS) + " (`tasks COMMAND --help`)\n" + BUILD_EXAMPLE)
        parser.add_argument("command", choices=list(COMMANDS))
        parser.parse_args(argv[:1])
    return COMMANDS[argv[0]](argv[1:])
