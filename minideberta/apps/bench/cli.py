"""The commands that hold minideberta against transformers: ``verify`` (the numbers, ``verify.py``) and
``bench`` (the times: ``model.py``, ``gpu.py``, ``tokenizer.py``, ``pretrain.py``). ``cli/main.py``
registers them with ``add_verify`` and ``add_bench``; the timing modules load only when their command runs.
"""
import argparse
import json
import sys

import numpy as np

from ...checkpoints import hub
from ..cli.errors import positive
from ..inference.commands import HUB
from . import pretrain as bench_pretrain

VERIFY_EXAMPLE = ("python -m minideberta verify minideberta-v3-tiny-generator\n"
                  "python -m minideberta verify microsoft/deberta-v3-xsmall --dtype float64" + HUB)


def run_verify(args):
    """Compare the checkpoint with transformers; exit 0 agree, 1 differ, 2 no reference installed."""
    from . import verify

    return verify.main(hub.resolve_model(args.model), np.dtype(args.dtype), as_json=args.json)


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
        from . import tokenizer

        result = tokenizer.run(n_sentences=args.sentences, batch_size=args.batch_size, repeats=args.repeats,
                               vocab_file=args.vocab, report=report)
    elif args.target == "pretrain":
        shape = {k: getattr(args, k) for k in ("vocab", "hidden", "layers", "generator_layers", "heads", "batch",
                                               "length") if getattr(args, k) is not None}
        result = bench_pretrain.run(shape, repeats=args.repeats, threads=args.threads,
                                    reference=not args.no_reference, report=report)
    elif args.device == "gpu":
        from . import gpu

        result = gpu.run(repeats=args.repeats, reference=not args.no_reference, report=report)
    else:
        from . import model

        result = model.run(sizes=args.sizes, shapes=args.shapes, backward=args.backward, repeats=args.repeats,
                           reference=not args.no_reference, report=report)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def add_verify(commands, common, dtype, formatter):
    """Add ``verify`` to the subparsers ``commands``; ``common`` holds MODEL, --device and --json."""
    sub = commands.add_parser("verify", parents=[common], formatter_class=formatter,
                              help="show, tensor by tensor, that the checkpoint gives transformers' numbers",
                              description="Run the checkpoint in minideberta and in transformers (the reference) "
                                          "and compare every hidden state and head output. Exit status: 0 agree, "
                                          "1 differ, 2 no reference installed.",
                              epilog="examples:\n" + "\n".join(f"  {line}" for line in VERIFY_EXAMPLE.splitlines()))
    sub.set_defaults(run=run_verify)
    dtype(sub, "float64", choices=("float32", "float64"))  # the tolerances verify knows


def add_bench(commands, device, formatter):
    """Add ``bench`` (with ``bench tokenizer`` and ``bench pretrain``); ``device`` holds --device and --json."""
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
    bench.add_argument("--repeats", type=positive, default=5, help="timed passes; the median is reported (default 5)")
    bench.add_argument("--no-reference", action="store_true", help="time minideberta alone, without transformers")
    targets = bench.add_subparsers(dest="target", metavar="tokenizer|pretrain")
    tokens = targets.add_parser("tokenizer", parents=[device], formatter_class=formatter,
                                help="time the tokenizer against transformers' instead",
                                description="Tokenizer throughput of minideberta and transformers on real sentences.",
                                epilog="example:\n  python -m minideberta bench tokenizer --sentences 2000 --repeats 3  # takes minutes")
    tokens.add_argument("--sentences", type=positive, default=10000, help="sentences to encode (default 10000)")
    tokens.add_argument("--batch-size", type=positive, default=64)
    tokens.add_argument("--vocab", default=None, help="the DeBERTa-v3 spm.model (default: the committed weights/deberta-v3-tokenizer/spm.model)")
    tokens.add_argument("--repeats", type=positive, default=5)
    step = targets.add_parser("pretrain", formatter_class=formatter,
                              help="time one pre-training step (generator + discriminator, AdamW) against torch",
                              description="Tokens per second of one DeBERTaV3 pre-training step (RTD with GDES: both "
                                          "forwards, both backwards, clipping, AdamW) in minideberta and in torch "
                                          "with transformers' layers, each in a fresh process with the same threads.",
                              epilog="example:\n  python -m minideberta bench pretrain --threads 1 2 --repeats 5  # takes minutes")
    bench_pretrain.add_arguments(step, positive)
