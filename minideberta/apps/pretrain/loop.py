"""The pre-training loop: packed sequences, AdamW, held-out evaluation, checkpoints, exact resume.

    history = pretrain(pretrainer, train_chunks, eval_chunks, counts, steps=2000, batch_size=16, lr=5e-4,
                       output="run/")

or ``python -m minideberta pretrain --corpus train.txt --output run/`` (``cli.py``).

Data: every sentence is tokenized without special tokens, the ids are concatenated in corpus
order and cut into chunks of ``seq_len - 2`` ids, each framed as ``[CLS] ... [SEP]`` (no padding:
packed sequences, as Microsoft's pre-training data). Step s takes the chunks at stream positions
``s * batch_size ...`` (``train.example_order``: a fresh permutation per epoch from (seed, epoch)).

One step (``rtd.Pretrainer.step``): masking and sampling from one seeded
``numpy.random.Generator``, L = L_MLM + lambda L_RTD and its gradient, clipping to the global
norm, lr = base_lr * (linear warm-up then linear decay to 0 at ``steps``), AdamW on
``pretrainer.params``. No dropout: the models run in eval mode (a small model trained for an hour
under-fits; it does not over-fit).

Checkpoints (``output/checkpoint/``, rewritten every ``checkpoint_minutes`` and at the end; the
previous one is replaced only once the new one is complete, ``train.save_checkpoint``):
``model.safetensors`` (all of ``pretrainer.params`` under their ``generator.``/``discriminator.``
names), ``optimizer.safetensors`` (the AdamW moments), ``trainer_state.json`` (step, settings,
the masking/sampling generator's state, the history). ``resume=True`` puts it all back, so a run
stopped and resumed takes exactly the steps of one that was not (resuming with other settings,
e.g. a shorter ``steps`` to end the schedule sooner, warns and goes on with the new ones).
``max_minutes`` stops the loop
cleanly (evaluation + checkpoint) when the time is up.
"""
import json
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ...checkpoints import weights
from ...optim import AdamW, LinearWarmupSchedule, check_finite, clip_grad_norm
from ..train.checkpointing import generator_from_state, load_checkpoint, save_checkpoint
from ..train.loop import example_order
from .evaluate import evaluate

TRAIN_COLUMNS = ("step", "lr", "loss", "mlm_loss", "rtd_loss", "grad_norm", "seconds")


def pack(token_lists, seq_len, cls_id, sep_id):
    """Concatenate id lists and cut them into (n, seq_len) rows ``[CLS] ids... [SEP]`` (the tail that
    does not fill a row is dropped)."""
    if seq_len < 3:
        raise ValueError(f"seq_len={seq_len} leaves no room for tokens between [CLS] and [SEP]; use at least 3")
    flat = np.fromiter((i for ids in token_lists for i in ids), dtype=np.int64)
    body = seq_len - 2
    n = len(flat) // body
    if n == 0:
        raise ValueError(f"the text has {len(flat)} tokens, fewer than one sequence of {seq_len}: give more text "
                         "or a smaller seq_len")
    rows = flat[:n * body].reshape(n, body)
    return np.concatenate([np.full((n, 1), cls_id), rows, np.full((n, 1), sep_id)], axis=1)


def tokenize_file(tokenizer, path, seq_len):
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no text: the corpus is one sentence (or paragraph) per line")
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    return pack(ids, seq_len, tokenizer.cls_token_id, tokenizer.sep_token_id)


class JointCheckpoint:
    """What ``train.save_checkpoint``/``load_checkpoint`` need: ``params`` and ``save_pretrained``."""

    def __init__(self, pretrainer):
        self.pretrainer, self.params = pretrainer, pretrainer.params

    def save_pretrained(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights.save_safetensors(self.params, folder / "model.safetensors")
        for name, model in (("generator", self.pretrainer.generator), ("discriminator", self.pretrainer.discriminator)):
            (folder / f"{name}_config.json").write_text(json.dumps(model.config.to_dict(), indent=1) + "\n",
                                                        encoding="utf-8")


def plot_history(history, path):
    """Loss curves (MLM, RTD) and the held-out metrics, as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None  # the numbers are in trainer_state.json; the picture is optional
    train, ev = history["train"], history["eval"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, key in zip(axes[:2], ("mlm_loss", "rtd_loss")):
        ax.plot(train["step"], train[key], lw=0.6, label="train")
        if ev["step"]:
            ax.plot(ev["step"], ev[key], "o-", label="held-out")
        ax.set_title({"mlm_loss": "generator: masked-LM loss", "rtd_loss": "discriminator: RTD loss"}[key])
        ax.set_xlabel("step")
        ax.legend()
    for key in ("mlm_top1", "mlm_top5", "unigram_top1", "rtd_auc", "rtd_accuracy"):
        if ev["step"]:
            axes[2].plot(ev["step"], ev[key], marker="o", label=key, ls="--" if key.startswith("unigram") else "-")
    axes[2].set_title("held-out metrics")
    axes[2].set_xlabel("step")
    if ev["step"]:  # before the first evaluation the panel is empty (a legend would warn)
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def pretrain(pretrainer, train_chunks, eval_chunks, counts, *, steps, batch_size=16, lr=5e-4, warmup_steps=None,
             weight_decay=0.01, max_grad_norm=1.0, seed=0, output=None, eval_every=200, eval_sequences=64,
             checkpoint_minutes=5.0, max_minutes=None, resume=False, detect_anomalies=False, progress=True,
             log=print, extra_eval=None):
    """Pre-train ``pretrainer`` in place; return the history dict (module docstring). ``extra_eval``:
    a function of the pretrainer returning more held-out numbers (a dict of floats) for each evaluation."""
    if warmup_steps is None:
        warmup_steps = max(1, steps // 20)
    n = len(train_chunks)
    schedule = LinearWarmupSchedule(steps, warmup_steps)
    optimizer = AdamW(pretrainer.params, lr=lr, weight_decay=weight_decay)
    settings = {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup_steps": warmup_steps,
                "weight_decay": weight_decay, "max_grad_norm": max_grad_norm, "seed": seed, "sharing":
                pretrainer.sharing, "rtd_weight": pretrainer.rtd_weight, "train_sequences": n,
                "seq_len": int(train_chunks.shape[1])}
    rng = np.random.default_rng(seed)
    history = {"train": {k: [] for k in TRAIN_COLUMNS}, "eval": {"step": []}, "settings": settings}
    start, elapsed_before = 0, 0.0
    checkpoint = None if output is None else Path(output) / "checkpoint"
    if resume:
        if checkpoint is None or not (checkpoint / "trainer_state.json").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to resume in {checkpoint}")
        state = load_checkpoint(checkpoint, JointCheckpoint(pretrainer), optimizer)
        changed = {k: (state["settings"].get(k), v) for k, v in settings.items() if state["settings"].get(k) != v}
        if changed:  # as train.train: allowed (e.g. a longer or shorter schedule), but said
            warnings.warn("resuming with other settings than the run's (" + ", ".join(
                f"{k}: {old} -> {new}" for k, (old, new) in changed.items()) + "): the run goes on, but not along "
                "the trajectory it would have taken", stacklevel=2)
        pretrainer.compose()
        start, history, rng = state["step"], state["history"], generator_from_state(state["rng"])
        history["settings"] = settings
        elapsed_before = history["train"]["seconds"][-1] if history["train"]["seconds"] else 0.0
        log(f"resumed from {checkpoint} at step {start}")
    eval_ids = eval_chunks[:eval_sequences]
    special = [int(i) for i in pretrainer.special_ids if i != pretrainer.mask_id]

    def run_eval(done):
        results = evaluate(pretrainer.generator, pretrainer.discriminator, eval_ids, counts, special,
                           pretrainer.mask_id)
        if extra_eval is not None:
            results.update(extra_eval(pretrainer))
        history["eval"].setdefault("step", []).append(done)
        for key, value in results.items():
            history["eval"].setdefault(key, []).append(value)
        log(f"step {done} held-out: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()
                                                   if isinstance(v, float)))

    def save(done):
        if checkpoint is None:
            return
        save_checkpoint(checkpoint, JointCheckpoint(pretrainer), optimizer,
                        {"step": done, "settings": settings, "rng": rng.bit_generator.state, "history": history})
        plot_history(history, Path(output) / "loss_curves.png")

    t0, last_save = time.time(), time.time()
    bar = tqdm(total=steps, initial=start, disable=not progress, desc="pre-training", unit="step", mininterval=10)
    done = start
    for step in range(start, steps):
        rows = example_order(n, seed, step * batch_size, batch_size)
        ids = train_chunks[rows]
        metrics, grads, _ = pretrainer.step(ids, np.ones_like(ids), rng)
        if detect_anomalies:
            check_finite(metrics["loss"], grads, pretrainer.params, step=step + 1)
        grad_norm = clip_grad_norm(grads, max_grad_norm)
        optimizer.lr = lr * schedule(step)
        optimizer.step(grads)
        pretrainer.compose()
        done = step + 1
        seconds = elapsed_before + time.time() - t0
        for key, value in dict(step=done, lr=optimizer.lr, grad_norm=float(grad_norm), seconds=seconds,
                               **{k: metrics[k] for k in ("loss", "mlm_loss", "rtd_loss")}).items():
            history["train"][key].append(value)
        bar.update(1)
        bar.set_postfix(mlm=f"{metrics['mlm_loss']:.3f}", rtd=f"{metrics['rtd_loss']:.4f}", refresh=False)
        if done % 20 == 0 or done == 1:
            log(f"step {done} mlm_loss {metrics['mlm_loss']:.4f} rtd_loss {metrics['rtd_loss']:.4f} "
                f"lr {optimizer.lr:.2e} grad_norm {grad_norm:.3f} {seconds / 60:.1f} min")
        out_of_time = max_minutes is not None and time.time() - t0 > 60 * max_minutes
        if eval_every and (done % eval_every == 0 or done == steps or out_of_time):
            run_eval(done)
        if done == steps or out_of_time or time.time() - last_save > 60 * checkpoint_minutes:
            save(done)
            last_save = time.time()
        if out_of_time:
            log(f"--max-minutes {max_minutes} reached at step {done}: stopped with a checkpoint")
            break
    bar.close()
    return history
