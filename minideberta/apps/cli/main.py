"""``python -m minideberta COMMAND``: the one dispatcher of every command.

    python -m minideberta fill-mask microsoft/deberta-v3-base "Paris is the [MASK] of France."
    python -m minideberta classify ./nli-model "A man eats pizza." "Someone is eating."
    python -m minideberta bench --sizes v3-xsmall --shapes 1x128

MODEL is a local folder or a Hugging Face hub id (see ``checkpoints/hub.py``). Each task command prints a
table for people, or with ``--json`` one JSON document for scripts (the dict the function of the same
name in ``inference/pipelines.py`` returns). A user's mistake (a missing file, a text without [MASK], a
model without the needed head, a refused pickle...) prints one ``error:`` line and exits with 2;
``--debug`` (or MINIDEBERTA_DEBUG=1) adds the traceback. ``errors.py`` holds that contract.

Where each command lives: the task commands in ``inference/commands.py``, ``verify`` and ``bench`` in
``bench/cli.py``, ``demo`` in ``inference/demo.py``; the commands of ``FORWARDED`` parse their own options
in their subpackage (``train/cli.py``, ``pretrain/cli.py``, ``pretrain/corpus.py``, ``pretrain/ablate.py``, ``wordnet_tasks/cli.py``,
``exercises/cli.py``, ``course/render.py``) and get the rest of the command line from here.
"""
import argparse
import importlib
import sys

from ... import backend
from ..bench import cli as bench_cli
from ..inference import commands as task_commands
from .errors import OneLineParser, UserError, reported, split_debug

CPU_ONLY = {"verify": "verify compares with transformers on the CPU; `bench --device gpu` checks the GPU path "
                     "against NumPy", "tokenizer": "the tokenizer runs on the CPU"}
# The commands that parse their own options: name -> (help, module under apps/, its function of argv).
FORWARDED = {
    "train": ("fine-tune a sequence classifier", "train.cli", "main"),
    "exercises": ("classroom exercises: list, make a student copy, check", "exercises.cli", "run"),
    "corpus": ("rebuild the pre-training corpus and vocabulary (pretrain/corpus.py)", "pretrain.corpus", "main"),
    "tasks": ("labelled tasks from WordNet: build, compare baselines and fine-tuning, export heads",
              "wordnet_tasks.cli", "main"),
    "pretrain": ("pre-train a small DeBERTaV3: generator + discriminator, RTD, GDES (pretrain/cli.py)",
                 "pretrain.cli", "main"),
    "pretrain-eval": ("held-out numbers of a pre-trained pair: top-1/top-5 vs unigram, RTD AUC",
                      "pretrain.cli", "eval_main"),
    "pretrain-export": ("write a pre-training checkpoint as two model folders (float16)", "pretrain.cli", "export_main"),
    "ablate": ("the papers' ablations at small scale: no c2p, no p2c, no EMD, ES, NES (pretrain/ablate.py)",
               "pretrain.ablate", "main"),
    "course": ("execute the read-along notebooks and render them as HTML", "course.render", "main"),
}
GPU_FORWARDED = ("train",)  # the forwarded commands that run on a GPU (and read --device themselves)
NO_DEVICE = ("exercises", "course")  # the forwarded commands without a --device option


def run_forwarded(name, argv):
    """Hand ``argv`` to the command's own parser; ``--device gpu`` is refused here for a CPU-only command."""
    if name not in NO_DEVICE:
        device = OneLineParser(prog=f"minideberta {name}", add_help=False)
        device.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
        known, rest = device.parse_known_args(argv)
        if known.device == "gpu":
            if name not in GPU_FORWARDED:
                raise UserError(f"{name} --device gpu: {name} runs on the CPU (only the model, train and bench run "
                                "on a GPU); use --device cpu")
            backend.device_module()  # one line saying whether CuPy or the GPU is missing, before anything loads
        if name not in GPU_FORWARDED:
            argv = rest
    _, module, function = FORWARDED[name]
    code = getattr(importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.{module}"), function)(argv)
    return 0 if code is None else code


def run_demo(args):
    """The offline tour of ``inference/demo.py``: forward, gradient check, checkpoint round trip, verify."""
    from ..inference import demo

    return demo.main()


def build_parser():
    formatter = argparse.RawDescriptionHelpFormatter
    overview = "\n".join(f"  {example.splitlines()[0]}" for _, _, example in task_commands.TASKS.values())
    parser = OneLineParser(prog="minideberta", formatter_class=formatter,
                           description="DeBERTa-v2/v3 in NumPy: run a checkpoint's task head from the shell.",
                           epilog=f"examples:\n{overview}\n\n"
                                  "`python -m minideberta COMMAND --help` for a command's options.")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the traceback too (also: MINIDEBERTA_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where to compute (default cpu)")
    device.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    common = argparse.ArgumentParser(add_help=False, parents=[device])
    common.add_argument("model", metavar="MODEL", help="a model folder, or a Hugging Face hub id")

    def dtype(sub, default, choices=("float16", "float32", "float64")):
        sub.add_argument("--dtype", choices=choices, default=default,
                         help=f"precision of the computation: {', '.join(choices)} (default {default})")

    task_commands.add_commands(commands, common, dtype, formatter)
    bench_cli.add_verify(commands, common, dtype, formatter)
    for name, (text, _, _) in FORWARDED.items():
        commands.add_parser(name, help=f"{text} (`{name} --help` for its options)", add_help=False)
    sub = commands.add_parser("demo", formatter_class=formatter,
                              help="the library in one offline run, on a small random model",
                              description="Build a small DeBERTa-v3-shaped model, run a padded batch, check every "
                                          "hand-written gradient against central differences, save and reload the "
                                          "checkpoint, and compare it with transformers when that is installed. "
                                          "Needs no network and no downloaded weights.",
                              epilog="example:\n  python -m minideberta demo")
    sub.set_defaults(run=run_demo, device="cpu")
    bench_cli.add_bench(commands, device, formatter)
    return parser


def main(argv=None):
    """Run one command; return the exit status (0 success, 2 a user's mistake: see ``errors.py``)."""
    debug, argv = split_debug(sys.argv[1:] if argv is None else [str(a) for a in argv])
    return reported(lambda: _run(argv), debug)


def _run(argv):
    try:
        if argv and argv[0] in FORWARDED:
            return run_forwarded(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse: --help (0) or a bad option (2, its one line printed)
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    if args.device == "gpu":
        where = "tokenizer" if getattr(args, "target", None) == "tokenizer" else args.command
        if where in CPU_ONLY:
            raise UserError(f"{where} --device gpu: {CPU_ONLY[where]}; use --device cpu")
        backend.device_module()  # one line saying whether CuPy or the GPU is missing, before anything loads
    return args.run(args)
