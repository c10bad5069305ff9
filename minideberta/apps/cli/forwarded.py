"""The commands that parse their own options: ``train``, ``exercises``, ``corpus``, ``tasks``, ``pretrain``,
``pretrain-eval``, ``pretrain-export`` (and ``course``, which ``cli.py`` hands to ``course_render.py``).

``cli.py`` lists them in its help and passes them the rest of the command line; ``--device`` is
checked here, as for every command.
"""
from .. import backend
from .errors import OneLineParser, UserError

FORWARDED = {"train": "fine-tune a sequence classifier",  # train_cli.py parses its own options
             "exercises": "classroom exercises: list, make a student copy, check",  # exercises/cli.py
             "corpus": "rebuild the pre-training corpus and vocabulary (corpus.py)",
             "tasks": "labelled tasks from WordNet: build, compare baselines and fine-tuning, export heads",
             "pretrain": "pre-train a small DeBERTaV3: generator + discriminator, RTD, GDES (pretrain_cli.py)",
             "pretrain-eval": "held-out numbers of a pre-trained pair: top-1/top-5 vs unigram, RTD AUC",
             "pretrain-export": "write a pre-training checkpoint as two model folders (float16)"}
COURSE = {"course": "execute the read-along notebooks and render them as HTML"}  # course_render.py parses its own


def run_forwarded(name, argv):
    """``train``, ``exercises``, ``corpus`` and the ``pretrain*`` commands parse their own options;
    ``--device`` is checked here."""
    if name == "exercises":
        from .exercises.cli import run

        return run(argv)
    device = OneLineParser(prog=f"minideberta {name}", add_help=False)
    device.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    known, rest = device.parse_known_args(argv)
    if known.device == "gpu":
        if name != "train":
            raise UserError(f"{name} --device gpu: {name} runs on the CPU (only the model, train and bench run "
                            "on a GPU); use --device cpu")
        backend.device_module()  # one line saying whether CuPy or the GPU is missing, before anything loads
    if name == "train":
        from . import train_cli

        code = train_cli.main(argv)  # train_cli reads --device itself
        return 0 if code is None else code
    if name == "corpus":
        from . import corpus as command
    elif name == "tasks":
        from . import tasks_cli as command
    else:
        from . import pretrain_cli as command
    main = {"pretrain-eval": getattr(command, "eval_main", None),
            "pretrain-export": getattr(command, "export_main", None)}.get(name, command.main)
    code = main(rest)
    return 0 if code is None else code
