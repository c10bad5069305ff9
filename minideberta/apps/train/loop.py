"""Fine-tuning: batches from a tokenized dataset, AdamW with warm-up and decay, evaluation, checkpoints.

    history = train(model, train_set, eval_set, steps=300, batch_size=16, lr=2e-5, warmup_steps=30)
    history.plot()                        # loss, metric, learning rate, gradient norm

or from a shell: ``python -m minideberta train MODEL_DIR --data train.jsonl ...`` (``cli.py``).

Datasets
--------
A dataset is a dict of NumPy arrays, one row per example, all with the same number of rows:

- ``input_ids``       (n, N) token ids; (n, C, N) for multiple choice
- ``attention_mask``  same shape, 1 = token, 0 = padding (optional: all ones)
- ``token_type_ids``  same shape (optional: all zeros)
- ``labels``          what the model's loss takes: (n,) class ids for sequence classification
  and multiple choice; (n,) or (n, num_labels) floats for regression and multi-label; (n, N)
  per-token ids with -100 where nothing is to be predicted (token classification, masked LM).

That is what the tokenizer returns for a list of texts (``padding=True, return_tensors="np"``)
plus a ``labels`` array.

One optimizer step
------------------
The examples form one endless stream: epoch after epoch, each a fresh permutation of the
dataset drawn from ``(seed, epoch)``. Step s takes the next ``batch_size * grad_accum_steps``
examples as ``grad_accum_steps`` micro-batches of ``batch_size`` and runs forward and backward
on each. Micro-batch i's loss L_i is a mean over the c_i labels it counts (integer labels >= 0,
-100 and other negative labels being ignored; for float labels one per row, as every row holds
as many values). The step's loss and gradient are the weighted means

    L = sum_i (c_i / C) L_i,        g = sum_i (c_i / C) dL_i/dtheta,        C = sum_i c_i,

which is exactly the mean over all C labels of the step: the loss and gradient of one forward
on the whole batch. Accumulation only saves memory; it changes nothing else. (A plain average of
the L_i would weigh a label of a micro-batch with few counted labels more than the others.)
Then, in this order: the NaN check (``detect_anomalies``), clipping to ``max_grad_norm``, the
learning rate ``lr * schedule(s)`` (``optim.LinearWarmupSchedule``), the AdamW update.

Checkpoints
-----------
``checkpoint_dir/checkpoint-<step>/`` holds everything the run needs to go on:

- ``config.json``, ``model.safetensors``  the model (``Cls.from_pretrained`` loads it);
- ``optimizer.safetensors``  the AdamW moments, ``exp_avg.<name>`` and ``exp_avg_sq.<name>``;
- ``trainer_state.json``  the step, the optimizer's step count and hyper-parameters, the run's
  settings, the dropout generator's state and the history so far.

The data order needs no state of its own: it follows from the seed and the number of steps taken.
``train(..., resume_from=folder)`` puts all of it back into fresh objects, so a run that is
stopped and resumed takes exactly the steps of a run that was not.
"""
import math
import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ...backend import to_numpy
from ...checks import check_integer
from ...model import no_grad
from ...optim import AdamW, LinearWarmupSchedule, check_finite, clip_grad_norm, global_norm
from .checkpointing import device_seed, dropout_state, generator_from_state, load_checkpoint, save_checkpoint
from .history import History

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


# ---- datasets ----
def check_dataset(data, name):
    """The dataset as a dict of arrays, or a clear error saying what is wrong with it."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{name} must be a dict of arrays (input_ids, attention_mask, token_type_ids, labels), "
                        f"not {type(data).__name__}")
    unknown = sorted(set(data) - set(INPUT_KEYS) - {"labels"})
    missing = [k for k in ("input_ids", "labels") if k not in data]
    if unknown or missing:
        raise ValueError(f"{name} has keys {sorted(data)}; it needs input_ids and labels, may have attention_mask "
                         f"and token_type_ids" + (f"; drop or rename {unknown}" if unknown else "")
                         + (f"; missing {missing}" if missing else ""))
    arrays = {k: np.asarray(v) for k, v in data.items()}
    rows = {k: a.shape[0] if a.ndim else 0 for k, a in arrays.items()}
    if len(set(rows.values())) != 1 or rows["input_ids"] == 0:
        raise ValueError(f"{name} must have one row per example in every array, at least one; rows: {rows}")
    return arrays


def count_labels(labels):
    """c, the number of labels a micro-batch's mean loss averages over (see the module docstring)."""
    if labels.dtype.kind in "iu":
        return int((labels >= 0).sum())
    return len(labels)


def example_order(n, seed, start, count):
    """Indices of the examples at positions start .. start+count-1 of the stream: position q is
    entry q % n of epoch q // n's permutation, drawn from (seed, epoch)."""
    positions = np.arange(start, start + count)
    epochs = positions // n
    indices = np.empty(count, dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng((seed, int(epoch))).permutation(n)
        here = epochs == epoch
        indices[here] = order[positions[here] % n]
    return indices


def take(data, indices):
    return {k: v[indices] for k, v in data.items()}


def model_inputs(batch):
    return {k: batch[k] for k in INPUT_KEYS if k in batch}


# ---- evaluation ----
def accuracy(logits, labels):
    """Fraction of the counted labels (those >= 0) that the largest logit predicts."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"accuracy needs integer class labels, these are {labels.dtype}: for regression or "
                         "multi-label pass metric=None or a metric of your own")
    counted = labels >= 0
    return float((np.asarray(logits).argmax(axis=-1)[counted] == labels[counted]).mean())


def evaluate(model, dataset, batch_size=32, metric=accuracy):
    """``{"loss": ..., <metric>: ...}`` over the whole dataset, without dropout and without caches.

    The loss is the mean over all counted labels (batches weighted as in training). ``metric``
    gets all logits and labels at once (``metric(logits, labels)``, a float or a dict of them);
    for masked LM, whose logits are huge, pass ``metric=None``. The model's mode, and the state of
    its dropout generator, are as before afterwards.
    """
    dataset = check_dataset(dataset, "the evaluation set")
    was_training, rng = model.training, model.rng
    model.eval()
    total_loss, total_count, logits = 0.0, 0, []
    try:
        with no_grad():
            for start in range(0, len(dataset["input_ids"]), batch_size):
                batch = take(dataset, slice(start, start + batch_size))
                out = model(**model_inputs(batch), labels=batch["labels"])
                count = count_labels(batch["labels"])
                if count:
                    total_loss, total_count = total_loss + count * float(out.loss), total_count + count
                if metric is not None:
                    logits.append(to_numpy(out.logits))  # metrics run on the host
    finally:
        if was_training:
            model.train(seed=rng)  # default_rng(generator) is that generator: dropout goes on where it was
    results = {"loss": total_loss / total_count if total_count else math.nan}
    if metric is not None:
        value = metric(np.concatenate(logits), dataset["labels"])
        results.update(value if isinstance(value, Mapping) else {getattr(metric, "__name__", "metric"): value})
    return {key: float(value) for key, value in results.items()}  # plain floats: the history is JSON


# ---- the loop ----
def accumulate(model, batches, step):
    """Loss and gradient of one optimizer step over its micro-batches: the weighted means
    L = sum_i (c_i / C) L_i and g = sum_i (c_i / C) dL_i (module docstring)."""
    counts = [count_labels(batch["labels"]) for batch in batches]
    total = sum(counts)
    if total == 0:
        raise ValueError(f"step {step}: none of its examples has a label that counts (all negative, e.g. -100): "
                         "the loss would be a mean over nothing")
    loss, grads = 0.0, None
    for batch, count in zip(batches, counts):
        if count == 0:  # its loss is a mean over nothing (NaN) and it weighs 0: skip it
            continue
        out = model(**model_inputs(batch), labels=batch["labels"])
        weight = count / total
        loss += weight * float(out.loss)
        micro_grads = model.backward()
        if grads is None:
            grads = {name: weight * g for name, g in micro_grads.items()}
        else:
            for name, g in micro_grads.items():
                grads[name] += weight * g
    return loss, grads


def _positive_int(name, value, optional=False):
    return check_integer(value, name, minimum=1, optional=optional)


def train(model, train_set, eval_set=None, *, steps=None, epochs=None, batch_size=8, lr=5e-5, warmup_steps=0,
          weight_decay=0.01, max_grad_norm=1.0, grad_accum_steps=1, eval_every=None, eval_batch_size=None,
          metric=accuracy, checkpoint_dir=None, save_every=None, resume_from=None, seed=0,
          detect_anomalies=False, progress=True):
    """Fine-tune ``model`` in place with AdamW; return the ``History`` of the run.

    - ``steps`` optimizer steps, or ``epochs`` passes over ``train_set`` (give one); each step
      sees ``batch_size * grad_accum_steps`` examples (see the module docstring).
    - ``lr`` rises linearly from 0 over ``warmup_steps`` steps, then falls linearly to 0 at the
      last step; ``weight_decay`` spares biases and LayerNorm; gradients are clipped to the
      global norm ``max_grad_norm`` (None: no clipping).
    - Evaluation on ``eval_set`` every ``eval_every`` steps and at the end (``evaluate``).
    - With ``checkpoint_dir``, a checkpoint every ``save_every`` steps and at the end;
      ``resume_from`` (a ``checkpoint-<step>`` folder) continues that run exactly.
    - ``seed`` fixes the data order and dropout. ``detect_anomalies`` checks the loss, every
      gradient and every parameter for NaN/inf at each step (``optim.check_finite``) and stops
      with a ``FloatingPointError`` naming the first array affected, in ``model.params`` order.
    - ``progress``: a tqdm bar (evaluations are printed under it).

    The model is left in eval mode.
    """
    train_set = check_dataset(train_set, "train_set")
    eval_set = None if eval_set is None else check_dataset(eval_set, "eval_set")
    batch_size = _positive_int("batch_size", batch_size)
    grad_accum_steps = _positive_int("grad_accum_steps", grad_accum_steps)
    eval_every = _positive_int("eval_every", eval_every, optional=True)
    save_every = _positive_int("save_every", save_every, optional=True)
    eval_batch_size = _positive_int("eval_batch_size", eval_batch_size, optional=True) or batch_size
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm={max_grad_norm} makes no sense: give a positive norm, or None for no clipping")
    n, per_step = len(train_set["input_ids"]), batch_size * grad_accum_steps
    if (steps is None) == (epochs is None):
        raise ValueError("give the length of the run as steps=... or as epochs=..., not both")
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real) or not 0 < epochs < math.inf:
            raise ValueError(f"epochs={epochs!r} makes no sense: it must be a positive number")
        steps = math.ceil(epochs * n / per_step)
    steps = _positive_int("steps", steps)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed={seed!r}: the seed must be an integer >= 0 (it fixes the data order and dropout)")
    if metric is accuracy and eval_set is not None and eval_set["labels"].dtype.kind not in "iu":
        raise ValueError(f"the default metric, accuracy, needs integer class labels; eval_set has "
                         f"{eval_set['labels'].dtype} labels: pass metric=None or a metric for them")
    schedule = LinearWarmupSchedule(steps, warmup_steps)
    optimizer = AdamW(model.params, lr=lr, weight_decay=weight_decay)
    settings = {"steps": steps, "batch_size": batch_size, "grad_accum_steps": grad_accum_steps, "lr": optimizer.lr,
                "warmup_steps": schedule.warmup_steps, "weight_decay": optimizer.weight_decay,
                "max_grad_norm": None if max_grad_norm is None else float(max_grad_norm), "seed": int(seed),
                "train_examples": n}

    model.train(seed=seed)
    history, start = History(), 0
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer)
        changed = {k: (state["settings"].get(k), v) for k, v in settings.items() if state["settings"].get(k) != v}
        if changed:
            warnings.warn(f"resuming {resume_from} with other settings than its run ("
                          + ", ".join(f"{k}: {old} -> {new}" for k, (old, new) in changed.items())
                          + "): the run goes on, but not along the trajectory it would have taken", stacklevel=2)
        start, history = state["step"], History.from_dict(state["history"])
        saved_rng = state["dropout_rng"]
        # NumPy's generator state resumes bitwise; a GPU generator restarts from a seed given by the step.
        model.train(seed=generator_from_state(saved_rng) if saved_rng is not None else device_seed(seed, start))

    bar = tqdm(total=steps, initial=start, disable=not progress, desc="training", unit="step")
    for step in range(start, steps):
        micro_batches = example_order(n, seed, step * per_step, per_step).reshape(grad_accum_steps, batch_size)
        loss, grads = accumulate(model, [take(train_set, indices) for indices in micro_batches], step + 1)
        if detect_anomalies:
            check_finite(loss, grads, model.params, step=step + 1)
        grad_norm = global_norm(grads) if max_grad_norm is None else clip_grad_norm(grads, max_grad_norm)
        optimizer.lr = lr * schedule(step)
        history.log_train(step=step + 1, epoch=(step + 1) * per_step / n, lr=optimizer.lr, loss=loss,
                          grad_norm=grad_norm)
        optimizer.step(grads)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{optimizer.lr:.2e}")

        done = step + 1
        if eval_set is not None and (done == steps or (eval_every and done % eval_every == 0)):
            results = evaluate(model, eval_set, eval_batch_size, metric)
            history.log_eval(done, results)
            if progress:
                bar.write(f"step {done}: " + ", ".join(f"eval {k} {v:.4f}" for k, v in results.items()))
        if checkpoint_dir is not None and (done == steps or (save_every and done % save_every == 0)):
            save_checkpoint(Path(checkpoint_dir) / f"checkpoint-{done}", model, optimizer,
                            {"step": done, "settings": settings, "dropout_rng": dropout_state(model),
                             "history": history.to_dict()})
    bar.close()
    model.eval()
    return history
