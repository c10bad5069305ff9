"""``python -m minideberta COMMAND``: run a DeBERTa-v2/v3 checkpoint from the shell.

    python -m minideberta fill-mask microsoft/deberta-v3-base "Paris is the [MASK] of France."
    python -m minideberta classify ./nli-model "A man eats pizza." "Someone is eating."
    python -m minideberta bench --sizes v3-xsmall --shapes 1x128

MODEL is a local folder or a Hugging Face hub id (see ``hub.py``). Each task command prints a
table for people, or with ``--json`` one JSON document for scripts (the dict the function of
the same name in ``pipelines.py`` returns). A user's mistake (a missing file, a text without
[MASK], a model without the needed head, a refused pickle...) prints one ``error:`` line and exits
with 2; ``--debug`` (or MINIDEBERTA_DEBUG=1) adds the traceback. ``errors.py`` holds that contract.
"""
import argparse
import json
import sys

import numpy as np

from .. import backend
from ..checkpoints import hub
from ..checks import check_integer
from . import pipelines
from .errors import OneLineParser, UserError, reported, split_debug
from .forwarded import COURSE, FORWARDED, run_forwarded
from .show import SHOW

CPU_ONLY = {"verify": "verify compares with transformers on the CPU; `bench --device gpu` checks the GPU path "
                     "against NumPy", "tokenizer": "the tokenizer runs on the CPU"}
# command -> (head it needs, one-line help, example); the order is the order of `--help`.
HUB = "  # hub id: needs the network"  # the marker of an example that downloads (tests skip these lines only)
TASKS = {
    "fill-mask": ("masked-lm", "predict the tokens behind [MASK]",
                  'python -m minideberta fill-mask minideberta-v3-tiny-generator "The function returns a [MASK] of '
                  'strings." --top-k 3\n'
                  'python -m minideberta fill-mask microsoft/deberta-v3-base "Paris is the [MASK] of France."' + HUB),
    "rtd": ("replaced-token-detection", "how likely each token was replaced (DeBERTa-v3's discriminator)",
            'python -m minideberta rtd minideberta-v3-tiny "Return the number of bananas in the sky."\n'
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
VERIFY_EXAMPLE = ("python -m minideberta verify minideberta-v3-tiny-generator\n"
                  "python -m minideberta verify microsoft/deberta-v3-xsmall --dtype float64" + HUB)


# ---- text output ----
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
        model, tokenizer = hub.load_model(args.model, head, np.dtype(args.dtype), device=args.device)
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


def run_verify(args):
    """Compare the checkpoint with transformers; exit 0 agree, 1 differ, 2 no reference installed."""
    from . import verify

    return verify.main(hub.resolve_model(args.model), np.dtype(args.dtype), as_json=args.json)


def run_demo(args):
    """The offline tour of ``demo.py``: forward, gradient check, checkpoint round trip, verify."""
    from . import demo

    return demo.main()


# ---- bench ----
def _shape(text):
    try:
        batch, length = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not BATCHxLENGTH, e.g. 8x128") from None
    return batch, length


def run_bench(args):
    """``bench`` times the model forward (and backward); ``bench tokenizer`` the tokenizer."""
    report = (lambda line: print(line, file=sys.stderr)) if args.json else print  # --json: stdout holds JSON only
    if args.target == "tokenizer":
        from . import bench_tokenizer

        result = bench_tokenizer.run(n_sentences=args.sentences, batch_size=args.batch_size, repeats=args.repeats,
                                     vocab_file=args.vocab, report=report)
    elif args.target == "pretrain":
        from . import bench_pretrain

        shape = {k: getattr(args, k) for k in ("vocab", "hidden", "layers", "generator_layers", "heads", "batch",
                                               "length") if getattr(args, k) is not None}
        result = bench_pretrain.run(shape, repeats=args.repeats, threads=args.threads,
                                    reference=not args.no_reference, report=report)
    elif args.device == "gpu":
        from . import bench_gpu

        result = bench_gpu.run(repeats=args.repeats, reference=not args.no_reference, report=report)
    else:
        from . import bench

        result = bench.run(sizes=args.sizes, shapes=args.shapes, backward=args.backward, repeats=args.repeats,
                           reference=not args.no_reference, report=report)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


# ---- the parser ----
def _positive(text):
    value = int(text)  # not an integer: argparse says "invalid _positive value: 'x'"
    try:
        return check_integer(value, None, minimum=1)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser():
    formatter = argparse.RawDescriptionHelpFormatter
    overview = "\n".join(f"  {example.splitlines()[0]}" for _, _, example in TASKS.values())
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

    def task(name, **kwargs):
        head, text, example = TASKS[name]
        sub = commands.add_parser(name, parents=[common], help=text, description=f"{text[0].upper()}{text[1:]}.",
                                  epilog="examples:\n" + "\n".join(f"  {line}" for line in example.splitlines()),
                                  formatter_class=formatter, **kwargs)
        sub.set_defaults(run=run_task)
        dtype(sub, "float32")
        return sub

    sub = task("fill-mask")
    sub.add_argument("text", help="text with one or more [MASK]")
    sub.add_argument("--top-k", type=_positive, default=5, help="predictions per mask (default 5)")
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
    sub.add_argument("--max-length", type=_positive, default=384, help="tokens per window (default 384)")
    sub.add_argument("--stride", type=int, default=128, help="tokens shared by neighbouring windows (default 128)")
    sub.add_argument("--max-answer-length", type=_positive, default=30, help="longest answer in tokens (default 30)")
    sub = task("choose")
    sub.add_argument("prompt")
    sub.add_argument("choices", nargs="*", metavar="CHOICE")

    sub = commands.add_parser("verify", parents=[common], formatter_class=formatter,
                              help="show, tensor by tensor, that the checkpoint gives transformers' numbers",
                              description="Run the checkpoint in minideberta and in transformers (the reference) "
                                          "and compare every hidden state and head output. Exit status: 0 agree, "
                                          "1 differ, 2 no reference installed.",
                              epilog="examples:\n" + "\n".join(f"  {line}" for line in VERIFY_EXAMPLE.splitlines()))
    sub.set_defaults(run=run_verify)
    dtype(sub, "float64", choices=("float32", "float64"))  # the tolerances verify knows
    for name, text in {**FORWARDED, **COURSE}.items():
        commands.add_parser(name, help=f"{text} (`{name} --help` for its options)", add_help=False)
    sub = commands.add_parser("demo", formatter_class=formatter,
                              help="the library in one offline run, on a small random model",
                              description="Build a small DeBERTa-v3-shaped model, run a padded batch, check every "
                                          "hand-written gradient against central differences, save and reload the "
                                          "checkpoint, and compare it with transformers when that is installed. "
                                          "Needs no network and no downloaded weights.",
                              epilog="example:\n  python -m minideberta demo")
    sub.set_defaults(run=run_demo, device="cpu")

    bench = commands.add_parser("bench", parents=[device], formatter_class=formatter,
                                help="time minideberta against transformers (forward, backward, tokenizer)",
                                description="Time the model forward (and backward) of minideberta and transformers, "
                                            "each in a fresh process.",
                                epilog="examples:\n  python -m minideberta bench --sizes v3-xsmall --shapes 1x128 8x128"
                                       " --backward  # takes minutes\n"
                                       "  python -m minideberta bench tokenizer --sentences 2000  # takes minutes")
    bench.set_defaults(run=run_bench, target="model")
    bench.add_argument("--sizes", nargs="+", choices=("v3-xsmall", "v3-base"), default=["v3-xsmall", "v3-base"])
    bench.add_argument("--shapes", nargs="+", type=_shape, default=[(1, 128), (8, 128), (1, 512)],
                       metavar="BATCHxLENGTH", help="input shapes (default 1x128 8x128 1x512)")
    bench.add_argument("--backward", action="store_true", help="also time forward + backward")
    bench.add_argument("--repeats", type=_positive, default=5, help="timed passes; the median is reported (default 5)")
    bench.add_argument("--no-reference", action="store_true", help="time minideberta alone, without transformers")
    targets = bench.add_subparsers(dest="target", metavar="tokenizer|pretrain")
    tokens = targets.add_parser("tokenizer", parents=[device], formatter_class=formatter,
                                help="time the tokenizer against transformers' instead",
                                description="Tokenizer throughput of minideberta and transformers on real sentences.",
                                epilog="example:\n  python -m minideberta bench tokenizer --sentences 2000 --repeats 3  # takes minutes")
    tokens.add_argument("--sentences", type=_positive, default=10000, help="sentences to encode (default 10000)")
    tokens.add_argument("--batch-size", type=_positive, default=64)
    tokens.add_argument("--vocab", default=None, help="the DeBERTa-v3 spm.model (default: the committed weights/deberta-v3-tokenizer/spm.model)")
    tokens.add_argument("--repeats", type=_positive, default=5)
    step = targets.add_parser("pretrain", formatter_class=formatter,
                              help="time one pre-training step (generator + discriminator, AdamW) against torch",
                              description="Tokens per second of one DeBERTaV3 pre-training step (RTD with GDES: both "
                                          "forwards, both backwards, clipping, AdamW) in minideberta and in torch "
                                          "with transformers' layers, each in a fresh process with the same threads.",
                              epilog="example:\n  python -m minideberta bench pretrain --threads 1 2 --repeats 5  # takes minutes")
    from . import bench_pretrain

    bench_pretrain.add_arguments(step, _positive)
    return parser


def main(argv=None):
    """Run one command; return the exit status (0 success, 2 a user's mistake: see ``errors.py``)."""
    debug, argv = split_debug(sys.argv[1:] if argv is None else [str(a) for a in argv])
    return reported(lambda: _run(argv), debug)


def _run(argv):
    try:
        if argv and argv[0] in COURSE:
            from . import course_render

            return course_render.main(argv[1:])
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
