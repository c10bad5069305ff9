"""``python -m minideberta pretrain``: pre-train a small DeBERTaV3 (generator + discriminator, RTD, GDES).

    python -m minideberta corpus --output /work/runs/corpus          # train.txt, heldout.txt, spm.model
    python -m minideberta pretrain --corpus /work/runs/corpus/train.txt --output /work/runs/pt \\
        --steps 3000 --max-minutes 60
    python -m minideberta pretrain --corpus ... --output /work/runs/pt --resume      # go on exactly
    python -m minideberta pretrain-eval weights/minideberta-v3-tiny weights/minideberta-v3-tiny-generator \\
        --corpus /work/runs/corpus/train.txt --heldout /work/runs/corpus/heldout.txt

The models are DeBERTa-v3-shaped (relative attention with shared keys, c2p and p2c, log buckets,
LayerNorm on the relative table, no absolute positions in the input, layer_norm_eps 1e-7); the
generator has the discriminator's width and half its layers, Microsoft's ``lm_predictions`` head
and the absolute position table its Enhanced Mask Decoder reads. ``--export DIR`` writes, at the
end, ``DIR/<name>`` (the discriminator) and ``DIR/<name>-generator`` in float16 with the vocabulary.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from ... import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2ForReplacedTokenDetection, DebertaV2Tokenizer
from ...checkpoints import weights
from ...masked_lm import POSITIONS
from ...params import init_params
from ..cli.errors import OneLineParser
from .evaluate import evaluate, evaluate_everyday, token_counts
from .loop import pretrain, tokenize_file
from .rtd import SHARING, WORD, Pretrainer, special_ids

POS_ATT_TYPES = ("p2c|c2p", "c2p", "p2c")


def model_configs(vocab_size, hidden_size=256, layers=4, generator_layers=None, heads=4, intermediate_size=None,
                  position_buckets=64, max_position_embeddings=256, pos_att_type="p2c|c2p"):
    """The generator's and the discriminator's configs; ``pos_att_type`` ("p2c|c2p", "c2p", "p2c")
    chooses the disentangled attention terms of both (the ablations switch them off)."""
    base = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_attention_heads=heads,
                intermediate_size=intermediate_size or 4 * hidden_size, max_position_embeddings=max_position_embeddings,
                relative_attention=True, position_buckets=position_buckets, max_relative_positions=-1,
                norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=pos_att_type, layer_norm_eps=1e-7,
                position_biased_input=False, type_vocab_size=0, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, pad_token_id=0)
    generator = DebertaV2Config(**base, num_hidden_layers=generator_layers or max(1, layers // 2), legacy=False)
    return generator, DebertaV2Config(**base, num_hidden_layers=layers)


def build_models(generator_config, discriminator_config, seed=0, dtype=np.float32, emd=True):
    """A fresh generator and discriminator, initialised as transformers does. With ``emd`` the generator
    holds the absolute position table its Enhanced Mask Decoder reads (and so decodes through it);
    without, it is the plain masked LM: its head reads the last layer, and no absolute position
    reaches it anywhere (the ablation "without EMD")."""
    shapes = {**DebertaV2ForMaskedLM.param_shapes(generator_config),
              **(DebertaV2ForMaskedLM.optional_shapes(generator_config) if emd else {})}
    generator = DebertaV2ForMaskedLM(generator_config, dtype=dtype,
                                     params=init_params(shapes, generator_config, seed, np.dtype(dtype)))
    return generator, DebertaV2ForReplacedTokenDetection(discriminator_config, seed=seed + 1, dtype=dtype)


def export(pretrainer, tokenizer, folder, name="minideberta-v3-tiny", dtype=np.float16, history=None):
    """Write ``folder/name`` (discriminator, word embeddings E_G + E_Delta under gdes) and
    ``folder/name-generator``, each with config.json, model.safetensors (``dtype``) and the vocabulary;
    with ``history`` (a run's, ``pretrain.pretrain``), the discriminator's folder gets ``history.json``."""
    out = {}
    for suffix, model in (("", pretrainer.discriminator), ("-generator", pretrainer.generator)):
        target = Path(folder) / f"{name}{suffix}"
        target.mkdir(parents=True, exist_ok=True)
        params = dict(model.params)
        if suffix == "":
            params[WORD] = pretrainer.discriminator_embeddings()
        model.config.save_pretrained(target)
        weights.save_safetensors({k: np.asarray(v).astype(dtype) for k, v in params.items()},
                                 target / "model.safetensors")
        tokenizer.save_pretrained(target)
        out[suffix or "discriminator"] = target
    if history is not None:
        (out["discriminator"] / "history.json").write_text(json.dumps(compact_history(history)) + "\n",
                                                           encoding="utf-8")
    return out


SHIPPED_TRAIN = ("step", "lr", "mlm_loss", "rtd_loss", "grad_norm")  # per step, in the model's folder


def compact_history(history, digits=4):
    """The run's history as it travels with the model (``history.json`` of the discriminator's folder): every
    evaluation, and per training step the columns ``SHIPPED_TRAIN``, floats rounded to ``digits`` significant
    digits. Left out: the total loss (it is ``mlm_loss + rtd_weight * rtd_loss``) and the run's clock; the run
    folder's own ``history.json`` keeps everything at full precision. (A 12000-step history at full width is
    about 0.7 MB, too much for the pair's 24 MB budget.)"""
    def rounded(value):
        return float(f"{value:.{digits}g}") if isinstance(value, float) else value

    return {"train": {k: [rounded(v) for v in history["train"][k]] for k in SHIPPED_TRAIN if k in history["train"]},
            "eval": {k: [rounded(v) for v in column] for k, column in history["eval"].items()},
            "settings": history.get("settings", {})}


def from_checkpoint(folder):
    """The ``Pretrainer`` of a run's checkpoint folder (``pretrain.JointCheckpoint``), float32."""
    folder = Path(folder)
    state_file = folder / "trainer_state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{folder} is not a pre-training checkpoint: it has no trainer_state.json")
    settings = json.loads(state_file.read_text(encoding="utf-8"))["settings"]
    configs = [DebertaV2Config.from_dict(json.loads((folder / f"{name}_config.json").read_text(encoding="utf-8")))
               for name in ("generator", "discriminator")]
    saved = weights.load_state_dict(folder)
    generator, discriminator = build_models(*configs, emd=f"generator.{POSITIONS}" in saved)
    pretrainer = Pretrainer(generator, discriminator, settings["sharing"], settings["rtd_weight"],
                            mask_id=configs[0].vocab_size - 1)
    for name, array in pretrainer.params.items():
        array[...] = saved[name]
    pretrainer.compose()
    state = json.loads(state_file.read_text(encoding="utf-8"))
    return pretrainer, state["step"], state.get("history")


def export_main(argv=None):
    parser = OneLineParser(
        prog="minideberta pretrain-export", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a pre-training run's checkpoint as two model folders (discriminator, generator), float16.",
        epilog="example:\n  python -m minideberta pretrain-export /work/runs/pt --to weights  # takes minutes: needs a pretrain run")
    parser.add_argument("run", help="the run folder given to pretrain --output (or its checkpoint/ folder)")
    parser.add_argument("--to", required=True, help="where to write NAME/ and NAME-generator/")
    parser.add_argument("--name", default="minideberta-v3-tiny")
    parser.add_argument("--vocab", required=True, help="the run's spm.model")
    args = parser.parse_args(argv)
    run = Path(args.run)
    pretrainer, step, history = from_checkpoint(run / "checkpoint" if (run / "checkpoint").is_dir() else run)
    for folder in export(pretrainer, DebertaV2Tokenizer(args.vocab), args.to, args.name, history=history).values():
        print(f"exported {folder} (step {step})")
    return 0


def load_pair(discriminator_dir, generator_dir, dtype=np.float32):
    return (DebertaV2ForMaskedLM.from_pretrained(generator_dir, dtype=dtype),
            DebertaV2ForReplacedTokenDetection.from_pretrained(discriminator_dir, dtype=dtype))


def build_parser():
    parser = OneLineParser(
        prog="minideberta pretrain", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pre-train a small DeBERTaV3 from scratch: a generator (masked LM with the Enhanced Mask "
                    "Decoder) and a discriminator (replaced-token detection), loss L_MLM + lambda L_RTD, with "
                    "gradient-disentangled embedding sharing (GDES), ES or NES.",
        epilog="example:\n  python -m minideberta corpus --output /work/runs/corpus  # takes minutes\n"
               "  python -m minideberta pretrain --corpus /work/runs/corpus/train.txt --output /work/runs/pt "
               "--steps 3000 --max-minutes 60 --export weights  # takes minutes")
    parser.add_argument("--corpus", required=True, help="training text, one sentence a line (corpus's train.txt)")
    parser.add_argument("--heldout", help="held-out text (default: heldout.txt beside --corpus)")
    parser.add_argument("--vocab", help="sentencepiece spm.model (default: spm.model beside --corpus)")
    parser.add_argument("--output", required=True, help="run folder: checkpoint/, loss_curves.png, history.json")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (the lr schedule's length)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--sharing", choices=SHARING, default="gdes", help="embedding sharing (default gdes)")
    parser.add_argument("--rtd-weight", type=float, default=50.0, help="lambda in L_MLM + lambda L_RTD (default 50)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4, help="discriminator layers (default 4)")
    parser.add_argument("--generator-layers", type=int, help="generator layers (default: half of --layers)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate-size", type=int, help="FFN width (default 4 * hidden size)")
    parser.add_argument("--position-buckets", type=int, default=64)
    parser.add_argument("--pos-att-type", choices=POS_ATT_TYPES, default="p2c|c2p",
                        help="disentangled attention terms, both models (default p2c|c2p; the ablations drop one)")
    parser.add_argument("--no-emd", action="store_true",
                        help="the generator decodes with the plain MLM head on its last layer, not the EMD")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, help="default: 5%% of --steps")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0, help="initialisation, data order, masking and sampling")
    parser.add_argument("--eval-every", type=int, default=200, help="held-out evaluation every N steps")
    parser.add_argument("--eval-sequences", type=int, default=64, help="held-out sequences per evaluation")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, help="checkpoint every M minutes")
    parser.add_argument("--max-minutes", type=float, help="stop cleanly (evaluation, checkpoint) after M minutes")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output exactly")
    parser.add_argument("--export", metavar="DIR", help="write DIR/minideberta-v3-tiny{,-generator} at the end")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("steps", "batch_size", "seq_len", "hidden_size", "layers", "heads", "eval_sequences"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    corpus = Path(args.corpus)
    if not corpus.is_file():
        raise FileNotFoundError(f"--corpus {corpus} not found (build it with python -m minideberta corpus)")
    heldout = Path(args.heldout) if args.heldout else corpus.with_name("heldout.txt")
    vocab = Path(args.vocab) if args.vocab else corpus.with_name("spm.model")
    tokenizer = DebertaV2Tokenizer(vocab)
    train_chunks = tokenize_file(tokenizer, corpus, args.seq_len)
    eval_chunks = tokenize_file(tokenizer, heldout, args.seq_len)
    counts = token_counts(train_chunks, len(tokenizer))
    print(f"{len(train_chunks)} training and {len(eval_chunks)} held-out sequences of {args.seq_len} tokens, "
          f"vocabulary {len(tokenizer)} ids", flush=True)
    g_config, d_config = model_configs(len(tokenizer), args.hidden_size, args.layers, args.generator_layers,
                                       args.heads, args.intermediate_size, args.position_buckets,
                                       max(256, args.seq_len), args.pos_att_type)
    generator, discriminator = build_models(g_config, d_config, args.seed, emd=not args.no_emd)
    pretrainer = Pretrainer(generator, discriminator, args.sharing, args.rtd_weight,
                            special_ids=special_ids(tokenizer), mask_id=tokenizer.mask_token_id)
    print(f"generator {generator.num_parameters()} parameters ({g_config.num_hidden_layers} layers), "
          f"discriminator {discriminator.num_parameters()} ({d_config.num_hidden_layers} layers), "
          f"sharing {args.sharing}, attention {args.pos_att_type}, "
          f"{'plain MLM head' if args.no_emd else 'EMD'} in the generator", flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    history = pretrain(pretrainer, train_chunks, eval_chunks, counts, steps=args.steps, batch_size=args.batch_size,
                       lr=args.lr, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, seed=args.seed,
                       output=output, eval_every=args.eval_every, eval_sequences=args.eval_sequences,
                       checkpoint_minutes=args.checkpoint_minutes, max_minutes=args.max_minutes, resume=args.resume,
                       progress=not args.no_progress, log=lambda text: print(text, flush=True))
    (output / "history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    if args.export:
        for folder in export(pretrainer, tokenizer, args.export, history=history).values():
            print(f"exported {folder}")
    return 0


def eval_main(argv=None):
    parser = OneLineParser(
        prog="minideberta pretrain-eval", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The model card's numbers. On held-out text (--heldout): generator masked-token top-1/top-5 "
                    "against a unigram-frequency baseline on the same positions, discriminator ROC AUC on generator "
                    "replacements and on uniform random ones. On the package's everyday-English sets (always, "
                    "unless --no-everyday; under \"everyday\" in the JSON): the same on plain sentences, a cloze "
                    "check (an acceptable answer in the generator's top 5) and a swap check (the swapped word the "
                    "discriminator's top token). Definitions: minideberta/apps/pretrain/evaluate.py.",
        epilog="example:\n  python -m minideberta pretrain-eval weights/minideberta-v3-tiny "
               "weights/minideberta-v3-tiny-generator --corpus /work/runs/corpus/train.txt "
               "--heldout /work/runs/corpus/heldout.txt  # takes minutes\n"
               "  python -m minideberta pretrain-eval weights/minideberta-v3-tiny weights/minideberta-v3-tiny-generator")
    parser.add_argument("discriminator")
    parser.add_argument("generator")
    parser.add_argument("--corpus", help="training text (token frequencies for the unigram baseline); "
                                         "needed with --heldout")
    parser.add_argument("--heldout", help="held-out text, one sentence a line")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--sequences", type=int, help="evaluate on the first N held-out sequences (default all)")
    parser.add_argument("--seed", type=int, default=1234, help="masking and sampling (default 1234)")
    parser.add_argument("--everyday", metavar="DIR", help="the everyday sets' folder (sentences.txt, cloze.tsv, "
                                                          "swap.tsv; default: the package's data/everyday)")
    parser.add_argument("--no-everyday", action="store_true", help="skip the everyday-English sets")
    args = parser.parse_args(argv)
    if args.heldout and not args.corpus:
        raise ValueError("--heldout needs --corpus (the training text, for the unigram baseline)")
    if not args.heldout and args.no_everyday:
        raise ValueError("nothing to evaluate: give --heldout (with --corpus), or leave out --no-everyday")
    if args.everyday and args.no_everyday:
        raise ValueError("--everyday DIR and --no-everyday contradict each other: give one")
    generator, discriminator = load_pair(args.discriminator, args.generator)
    tokenizer = DebertaV2Tokenizer.from_pretrained(args.discriminator)
    counts = None if args.corpus is None else token_counts(tokenize_file(tokenizer, args.corpus, args.seq_len),
                                                           len(tokenizer))
    results = {}
    if args.heldout:
        chunks = tokenize_file(tokenizer, args.heldout, args.seq_len)[:args.sequences]
        results = evaluate(generator, discriminator, chunks, counts, special_ids(tokenizer), tokenizer.mask_token_id, seed=args.seed)
    if not args.no_everyday:
        results["everyday"] = evaluate_everyday(generator, discriminator, tokenizer, args.everyday, counts,
                                                seed=args.seed)
    print(json.dumps(results, indent=1))
    return 0
