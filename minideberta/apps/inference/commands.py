"""The task commands ``fill-mask``, ``rtd``, ``classify``, ``tokens``, ``qa``, ``choose``: their options,
examples, and the run that loads the model with the head the command needs (``pipelines.py``) and prints
the result (``show.py``, or ``--json``). ``cli/main.py`` registers them with ``add_commands``.
"""
import json

import numpy as np

from ...checkpoints import hub
from ...loading import load_model
from ..cli.errors import UserError, positive
from . import pipelines
from .show import SHOW

# command -> (head it needs, one-line help, example); the order is the order of `--help`.
HUB = "  # hub id: needs the network"  # the marker of an example that downloads (tests skip these lines only)
TASKS = {
    "fill-mask": ("masked-lm", "predict the tokens behind [MASK]",
                  'python -m minideberta fill-mask minideberta-v3-tiny-generator "She put the milk back in the '
                  '[MASK]." --top-k 3\n'
                  'python -m minideberta fill-mask microsoft/deberta-v3-base "Paris is the [MASK] of France."' + HUB),
    "rtd": ("replaced-token-detection", "how likely each token was replaced (DeBERTa-v3's discriminator)",
            'python -m minideberta rtd minideberta-v3-tiny "She drank a cup of hot gravel."\n'
            'python -m minideberta rtd microsoft/deberta-v3-base "Paris is the banana of France."' + HUB),
    "classify": ("sequence-classification", "classify a text or a pair (NLI: premise and hypothesis)",
                 'python -m minideberta classify minideberta-v3-tiny-hypernymy "poodle: an intelligent dog with a '
                 'thick curly coat." "A poodle is a kind of dog."\n'
                 'python -m minideberta classify MoritzLaurer/DeBERTa-v3-base-mnli "A man eats pizza." '
                 '"Someone is eating."' + HUB),
    "tokens": ("token-classification", "label every token and word (parts of speech, named entities, ...)",
               'python -m minideberta tokens minideberta-v3-tiny-pos "The dog barked at the quiet neighbours."\n'
               'python -m minideberta tokens dslim/bert-base-NER "Ada Lovelace was born in London."' + HUB),
    "qa": ("question-answering", "extract the answer to a question from a context",
           'python -m minideberta qa minideberta-v3-tiny-qa --question "What is a kettle?" --context "teapot: a pot '
           'for brewing tea. kettle: a metal pot for boiling water. ladle: a spoon with a long handle."\n'
           'python -m minideberta qa deepset/deberta-v3-base-squad2 --question "Where was Ada born?" '
           '--context "Ada Lovelace was born in London in 1815."' + HUB),
    "choose": ("multiple-choice", "score the choices that may follow a prompt",
               'python -m minideberta choose minideberta-v3-tiny-choice "kettle" "a metal pot for boiling water" '
               '"a spoon with a long handle" "a flowering shrub"'),
}
SUGGEST = {head: command for command, (head, _, _) in TASKS.items()}


def predict(args, model, tokenizer):
    """Call the ``pipelines`` function of the command with the command's arguments."""
    if args.command == "fill-mask":
        emd = {"auto": None, "on": True, "off": False}[args.emd]
        return pipelines.fill_mask(model, tokenizer, args.text, args.top_k, emd)
    if args.command == "rtd":
        return pipelines.replaced_tokens(model, tokenizer, args.text)
    if args.command == "classify":
        return pipelines.classify(model, tokenizer, args.text, args.pair)
    if args.command == "tokens":
        return pipelines.tag_tokens(model, tokenizer, args.text)
    if args.command == "qa":
        context = args.context if args.context_file is None else _read_text(args.context_file)
        return pipelines.answer(model, tokenizer, args.question, context, args.max_length, args.stride,
                                args.max_answer_length)
    return pipelines.choose(model, tokenizer, args.prompt, args.choices)


def run_task(args):
    """Load the model with the head the command needs, run the pipeline, print the result."""
    head = TASKS[args.command][0]
    try:
        model, tokenizer = load_model(args.model, head, np.dtype(args.dtype), device=args.device)
    except hub.MissingHeadError as error:
        hint = " or ".join(f'"{SUGGEST[h]}"' for h in error.held)
        raise UserError(f"{error}." + (f" Use {hint}." if hint else "")) from None
    result = predict(args, model, tokenizer)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        SHOW[args.command](result, args)
    return 0


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as error:
        raise UserError(f"--context-file {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                        "save it as UTF-8") from None
    except OSError as error:
        raise UserError(f"--context-file {path} cannot be read ({error.strerror}); pass a UTF-8 text file") from None


def add_commands(commands, common, dtype, formatter):
    """Add the six task commands to the subparsers ``commands``; ``common`` holds MODEL, --device and --json,
    ``dtype(sub, default)`` adds --dtype."""

    def task(name):
        head, text, example = TASKS[name]
        sub = commands.add_parser(name, parents=[common], help=text, description=f"{text[0].upper()}{text[1:]}.",
                                  epilog="examples:\n" + "\n".join(f"  {line}" for line in example.splitlines()),
                                  formatter_class=formatter)
        sub.set_defaults(run=run_task)
        dtype(sub, "float32")
        return sub

    sub = task("fill-mask")
    sub.add_argument("text", help="text with one or more [MASK]")
    sub.add_argument("--top-k", type=positive, default=5, help="predictions per mask (default 5)")
    sub.add_argument("--emd", choices=("auto", "on", "off"), default="auto",
                     help="Enhanced Mask Decoder: auto uses it when the checkpoint has it (default)")
    sub = task("rtd")
    sub.add_argument("text")
    sub.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                     help="highlight likely replacements (auto: when printing to a terminal)")
    sub = task("classify")
    sub.add_argument("text")
    sub.add_argument("pair", nargs="?", help="second text of a pair (NLI: the hypothesis)")
    sub = task("tokens")
    sub.add_argument("text")
    sub = task("qa")
    sub.add_argument("--question", required=True)
    context = sub.add_mutually_exclusive_group(required=True)
    context.add_argument("--context", help="the text holding the answer")
    context.add_argument("--context-file", help="read the context from this UTF-8 file")
    sub.add_argument("--max-length", type=positive, default=384, help="tokens per window (default 384)")
    sub.add_argument("--stride", type=int, default=128, help="tokens shared by neighbouring windows (default 128)")
    sub.add_argument("--max-answer-length", type=positive, default=30, help="longest answer in tokens (default 30)")
    sub = task("choose")
    sub.add_argument("prompt")
    sub.add_argument("choices", nargs="*", metavar="CHOICE")
