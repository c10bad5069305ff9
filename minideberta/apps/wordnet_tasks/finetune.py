"""Fine-tuning with early stopping, and the two baselines: majority class and bag-of-words logistic regression.

``finetune`` trains with AdamW (linear warm-up then decay, clipping at 1), evaluates on dev every
``eval_every`` steps, keeps the parameters of the best dev accuracy, and stops once ``patience``
evaluations in a row did not beat it. Batches are cut to their longest real sequence (the data
is padded to the longest of the whole set), which changes no number, only the time.

The bag-of-words model: binary features for the training set's words seen at least twice, a
softmax over ``W x + b``, cross-entropy plus ``l2 * |W|^2 / 2``, Adam on mini-batches; the
strength ``l2`` chosen on dev. The seed sets the initialisation and the order of the batches.
"""
from collections import Counter

import numpy as np

from ... import losses
from ...backend import to_numpy
from ...model import no_grad
from ...optim import AdamW, LinearWarmupSchedule, clip_grad_norm
from ..train.loop import example_order, take

WORD_PATTERN = r"[a-z0-9]+"


TARGETS = ("labels", "start_positions", "end_positions")  # what the task models' losses take


def trim(batch):
    """The batch without the padding columns that no row uses (arrays of two or more axes end in the tokens)."""
    mask = batch["attention_mask"]
    length = int(mask.reshape(-1, mask.shape[-1]).sum(-1).max())
    return {k: (v[..., :length] if v.ndim > 1 else v) for k, v in batch.items()}


def loss_and_grads(model, batch):
    """One forward with the targets, then the backward of its mean loss."""
    out = model(**{k: v for k, v in batch.items() if k not in TARGETS},
                **{k: v for k, v in batch.items() if k in TARGETS})
    return float(out.loss), model.backward()


def predict(model, data, batch_size=64, fields=("logits",)):
    """``{field: [one array per row, in order]}`` of the model's outputs, without dropout (rows batched by
    length, each cut to its batch's longest row)."""
    lengths = data["attention_mask"].reshape(len(data["input_ids"]), -1).sum(-1)
    order = np.argsort(lengths, kind="stable")
    results = {field: [None] * len(order) for field in fields}
    was_training, rng = model.training, model.rng
    model.eval()
    with no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out = model(**trim({k: v[rows] for k, v in data.items() if k not in TARGETS}))
            for field in fields:
                for row, value in zip(rows, to_numpy(getattr(out, field))):
                    results[field][row] = value
    if was_training:
        model.train(seed=rng)
    return results


def accuracy_of(model, data, batch_size=64):
    """Sequence classification and multiple choice: the share of rows whose largest logit is the label."""
    logits = np.stack(predict(model, data, batch_size)["logits"])
    return float((logits.argmax(-1) == data["labels"]).mean())


def token_accuracy_of(model, data, batch_size=64):
    """Token classification: the share of the scored tokens (label >= 0) whose largest logit is the label."""
    logits = predict(model, data, batch_size)["logits"]
    right = total = 0
    for row, scores in enumerate(logits):
        labels = data["labels"][row, :len(scores)]
        scored = labels >= 0
        right += int((scores.argmax(-1)[scored] == labels[scored]).sum())
        total += int(scored.sum())
    return right / total


def exact_match_of(model, data, batch_size=64):
    """Question answering: the share of rows whose best span (start <= end) is the answer's, token for token."""
    out = predict(model, data, batch_size, fields=("start_logits", "end_logits"))
    right = 0
    for row, (starts, ends) in enumerate(zip(out["start_logits"], out["end_logits"])):
        context = data["token_type_ids"][row, :len(starts)] == 1
        starts, ends = np.where(context, starts, -np.inf), np.where(context, ends, -np.inf)
        spans = np.triu(starts[:, None] + ends[None, :])  # (N, N): start x end, end >= start
        spans[np.tril_indices(len(starts), -1)] = -np.inf
        i, j = np.unravel_index(np.argmax(spans), spans.shape)
        right += int(i == data["start_positions"][row] and j == data["end_positions"][row])
    return right / len(out["start_logits"])


def finetune(model, train, dev, *, seed, lr, batch_size=32, max_steps=1000, eval_every=50, patience=4,
             warmup_steps=0, weight_decay=0.01, metric=accuracy_of, report=print):
    """Train ``model`` in place; leave it at the parameters of the best dev score. Returns the curve
    ``[{"step", "train_loss", "dev"}]`` (train_loss: the mean since the last evaluation) and the best step."""
    optimizer = AdamW(model.params, lr=lr, weight_decay=weight_decay)
    schedule = LinearWarmupSchedule(max_steps, warmup_steps)
    model.train(seed=seed)
    n, curve, losses_since = len(train["input_ids"]), [], []
    best_score, best_step, best_params, waited = -np.inf, 0, None, 0
    for step in range(max_steps):
        batch = trim(take(train, example_order(n, seed, step * batch_size, batch_size)))
        loss, grads = loss_and_grads(model, batch)
        clip_grad_norm(grads, 1.0)
        optimizer.lr = lr * schedule(step)
        optimizer.step(grads)
        losses_since.append(loss)
        if (step + 1) % eval_every and step + 1 != max_steps:
            continue
        score = metric(model, dev)
        curve.append({"step": step + 1, "train_loss": float(np.mean(losses_since)), "dev": score})
        report(f"  step {step + 1}: train loss {curve[-1]['train_loss']:.4f}, dev {score:.4f}")
        losses_since = []
        if score > best_score:
            best_score, best_step, waited = score, step + 1, 0
            best_params = {k: to_numpy(v).copy() for k, v in model.params.items()}
        else:
            waited += 1
            if waited >= patience:
                break
    for name, value in best_params.items():
        model.params[name][...] = value  # in place: the model and the optimizer hold these arrays
    model.eval()
    return curve, best_step


# ---- baselines ----
def majority(train_labels, test_labels):
    """Accuracy of always answering the most frequent training label."""
    label = Counter(train_labels).most_common(1)[0][0]
    return float(np.mean([y == label for y in test_labels]))


def words(text):
    import re

    return re.findall(WORD_PATTERN, text.lower())


def bag_of_words(texts, vocabulary=None, min_count=2):
    """``(X, vocabulary)``: binary features (n, V), float32; the vocabulary from ``texts`` if not given."""
    if vocabulary is None:
        counts = Counter(w for text in texts for w in set(words(text)))
        vocabulary = {w: i for i, w in enumerate(sorted(w for w, c in counts.items() if c >= min_count))}
    X = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
    for row, text in enumerate(texts):
        X[row, [vocabulary[w] for w in set(words(text)) if w in vocabulary]] = 1
    return X, vocabulary


def logistic_regression(X, y, n_classes, *, l2, seed, epochs=30, batch_size=64, lr=0.01):
    """``(W, b)`` of a softmax regression trained with Adam; loss = mean cross-entropy + l2 |W|^2 / 2."""
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.01, (X.shape[1], n_classes)).astype(np.float64)
    b = np.zeros(n_classes)
    moments = [np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)]
    t = 0
    for _ in range(epochs):
        for rows in np.array_split(rng.permutation(len(X)), max(1, len(X) // batch_size)):
            p = losses.softmax(X[rows] @ W + b)                     # (B, C)
            p[np.arange(len(rows)), y[rows]] -= 1                   # d loss / d logits, times B
            gW, gb = X[rows].T @ p / len(rows) + l2 * W, p.mean(0)
            t += 1
            for k, (param, g) in enumerate(((W, gW), (b, gb))):
                m, v = moments[2 * k], moments[2 * k + 1]
                m[...] = 0.9 * m + 0.1 * g
                v[...] = 0.999 * v + 0.001 * g * g
                param -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return W, b


def bow_baseline(train, dev, test, n_classes, seed, l2s=(1e-4, 1e-3, 1e-2)):
    """Train one model per ``l2``; return ``{"l2", "dev", "test"}`` of the best on dev.
    ``train``/``dev``/``test``: ``(texts, labels)``."""
    X, vocabulary = bag_of_words(train[0])
    Xd, Xt = bag_of_words(dev[0], vocabulary)[0], bag_of_words(test[0], vocabulary)[0]
    y, yd, yt = (np.asarray(labels) for labels in (train[1], dev[1], test[1]))
    best = None
    for l2 in l2s:
        W, b = logistic_regression(X, y, n_classes, l2=l2, seed=seed)
        score = float(((Xd @ W + b).argmax(-1) == yd).mean())
        if best is None or score > best["dev"]:
            best = {"l2": l2, "dev": score, "test": float(((Xt @ W + b).argmax(-1) == yt).mean())}
    return best
