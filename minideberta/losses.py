"""Losses as torch.nn defines them, each a forward/backward pair.

    loss, cache = loss_forward(logits, targets)       dlogits = loss_backward(dloss, cache)

(ops.py's contract: a backward without parameters takes ``(dy, cache)`` and returns dx alone.)

The loss is a 0-d array of the logits' dtype; ``dloss`` is the upstream gradient (1 for the
loss itself). All are means over the counted elements, as torch's default ``reduction="mean"``.
"""
from typing import NamedTuple

from .backend import get_xp, widened


def log_softmax(x):
    """log softmax over the last axis, shifted by the row maximum so nothing overflows; float16 in
    float32 (a sum of 128100 exponentials overflows float16)."""
    wide = widened(x)
    shifted = wide - wide.max(axis=-1, keepdims=True)
    out = shifted - get_xp(x).log(get_xp(x).exp(shifted).sum(axis=-1, keepdims=True))
    return out.astype(x.dtype) if wide is not x else out


def softmax(x):
    """softmax over the last axis (the probabilities the cross-entropy compares with its labels)."""
    return get_xp(x).exp(log_softmax(x))


def check_class_labels(labels, num_classes, ignore_index=-100, name="labels"):
    """Return ``labels`` if every one is a class index in [0, num_classes) or ``ignore_index``
    ("negative": any negative value), else raise a ValueError naming the first bad one."""
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    ignored = labels < 0 if ignore_index == "negative" else labels == ignore_index
    bad = ~ignored & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        first = labels[bad].reshape(-1)[0].item()
        raise ValueError(f"{name} has {first}, outside [0, {num_classes}) and not the ignore index "
                         f"{ignore_index}; check the label ids against the model's num_labels/vocab_size")
    return labels


class CrossEntropyCache(NamedTuple):
    logp: object  # (M, C) log softmax of the logits
    safe: object  # (M,) int, the labels with ignored ones replaced by 0 (a valid index)
    counted: object  # (M,) bool, the rows whose label is not the ignore index
    count: object  # 0-d array of the logits' dtype: how many rows were counted (the mean's denominator)


def cross_entropy_forward(logits, labels, ignore_index=-100):
    """Mean of -log softmax(logits)[label] over the labels that are not ``ignore_index``.

    logits (M, C), labels (M,). With every label ignored the mean is over nothing and the loss
    is NaN, as in torch.
    """
    xp = get_xp(logits)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels have shape {labels.shape}, expected {logits.shape[:-1]} (one class index per row of logits)")
    check_class_labels(labels, logits.shape[-1], ignore_index)
    logp = log_softmax(logits)  # (M, C)
    counted = labels != ignore_index
    safe = xp.where(counted, labels, 0)
    picked = xp.take_along_axis(logp, safe[:, None], axis=-1)[:, 0]
    count = counted.sum().astype(logits.dtype)  # stays on the device: no read back per loss
    total = -(picked * counted).sum()
    loss = xp.where(count > 0, total / xp.maximum(count, 1), xp.asarray(xp.nan, dtype=logits.dtype))
    return loss, CrossEntropyCache(logp=logp, safe=safe, counted=counted, count=count)


def cross_entropy_backward(dloss, cache):
    """In the forward: ``loss = -mean(logp[label])`` over the counted rows.

    d/dlogits = (softmax - onehot(label)) / count on counted rows, 0 on ignored rows.
    """
    logp, safe, counted, count = cache.logp, cache.safe, cache.counted, cache.count
    xp = get_xp(logp)
    dlogits = xp.exp(logp)
    xp.put_along_axis(dlogits, safe[:, None], xp.take_along_axis(dlogits, safe[:, None], axis=-1) - 1, axis=-1)
    dlogits *= counted[:, None] * (dloss / xp.maximum(count, 1))
    return dlogits


class SoftCrossEntropyCache(NamedTuple):
    logp: object  # (..., C) log softmax of the logits
    targets: object  # (..., C) the target probabilities


def soft_cross_entropy_forward(logits, targets):
    """Mean over rows of -sum(targets * log softmax(logits)): cross-entropy with probability targets."""
    logp = log_softmax(logits)
    return -(logp * targets).sum(axis=-1).mean(), SoftCrossEntropyCache(logp=logp, targets=targets)


def soft_cross_entropy_backward(dloss, cache):
    """In the forward: ``loss = -mean over rows of sum(targets * logp)``."""
    logp, targets = cache.logp, cache.targets
    xp = get_xp(logp)
    rows = logp.size // logp.shape[-1]
    return (xp.exp(logp) * targets.sum(axis=-1, keepdims=True) - targets) * (dloss / rows)


class MSECache(NamedTuple):
    diff: object  # predictions - targets, any shape


def mse_forward(predictions, targets):
    """Mean squared error; shapes must match exactly (no broadcasting surprises)."""
    if predictions.shape != targets.shape:
        raise ValueError(f"labels of shape {targets.shape} do not match predictions of shape {predictions.shape}")
    diff = predictions - targets
    return (diff * diff).mean(), MSECache(diff=diff)


def mse_backward(dloss, cache):
    """In the forward: ``loss = mean(diff^2)``, diff = predictions - targets."""
    diff = cache.diff
    return diff * (2 * dloss / diff.size)


class BCECache(NamedTuple):
    logits: object  # the logits, any shape
    targets: object  # the 0/1 (or soft) targets, same shape


def bce_with_logits_forward(logits, targets):
    """Mean binary cross-entropy on logits, in the overflow-free form max(x,0) - x t + log(1 + e^-|x|)."""
    if logits.shape != targets.shape:
        raise ValueError(f"labels of shape {targets.shape} do not match logits of shape {logits.shape}")
    xp = get_xp(logits)
    losses = xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-abs(logits)))
    return losses.mean(), BCECache(logits=logits, targets=targets)


def bce_with_logits_backward(dloss, cache):
    """In the forward: ``loss = mean(max(x, 0) - x t + log(1 + e^-|x|))``; d/dx = sigmoid(x) - t."""
    logits, targets = cache.logits, cache.targets
    xp = get_xp(logits)
    return (1 / (1 + xp.exp(-logits)) - targets) * (dloss / logits.size)


# ---- the losses of the task heads, chosen as transformers chooses them ----
class TaskLossCache(NamedTuple):
    problem: str  # which loss ran: "cross_entropy", "soft_cross_entropy", "mse", "bce", "span", "rtd" or "none"
    inner: object  # that loss's cache; for "none" the logits themselves (their gradient is zero)
    logits_shape: tuple  # the logits' shape, which the gradient takes back


def check_label_shape(labels, shapes, what):
    if tuple(labels.shape) not in shapes:
        raise ValueError(f"labels have shape {tuple(labels.shape)}; {what} needs labels of shape "
                         + " or ".join(str(shape) for shape in shapes))
    return labels


def per_token_loss(logits, labels):
    """Cross-entropy of (B, N, C) logits against (B, N) labels, -100 ignored (token tasks, masked LM)."""
    labels = get_xp(logits).asarray(labels)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels have shape {labels.shape}; this head needs one label per token, shape "
                         f"{logits.shape[:-1]} (-100 where there is nothing to predict)")
    loss, cache = cross_entropy_forward(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    return loss, TaskLossCache(problem="cross_entropy", inner=cache, logits_shape=logits.shape)


def classification_loss(logits, labels, config):
    """transformers' DebertaV2ForSequenceClassification loss, chosen by ``problem_type`` and the labels:
    one output -> regression (MSE); class ids -> cross-entropy (negative ids ignored, as transformers
    does for DeBERTa); (B, C) targets -> soft cross-entropy; "multi_label_classification" -> BCE."""
    xp = get_xp(logits)
    labels = xp.asarray(labels)
    batch, n = logits.shape
    problem = config.problem_type
    if problem is None:
        if n == 1:
            problem = "regression"
        elif labels.ndim == 1 or labels.shape[-1] == 1:
            check_label_shape(labels, [(batch,), (batch, 1)], "classification (one class id per sequence)")
            labels = check_class_labels(labels.reshape(-1), n, ignore_index="negative")
            if not bool((labels >= 0).any()):  # nothing to count: transformers defines the loss as 0
                return xp.zeros((), dtype=logits.dtype), TaskLossCache(problem="none", inner=logits, logits_shape=logits.shape)
            loss, cache = cross_entropy_forward(logits, xp.where(labels >= 0, labels, -100))
            return loss, TaskLossCache(problem="cross_entropy", inner=cache, logits_shape=logits.shape)
        else:
            check_label_shape(labels, [(batch, n)], "classification with probability targets")
            loss, cache = soft_cross_entropy_forward(logits, labels.astype(logits.dtype))
            return loss, TaskLossCache(problem="soft_cross_entropy", inner=cache, logits_shape=logits.shape)
    if problem == "regression":
        if labels.dtype.kind != "f":
            raise ValueError(f"regression labels must be floating point, got dtype {labels.dtype}")
        if n == 1:
            check_label_shape(labels, [(batch,), (batch, 1)], "regression (one value per sequence)")
        loss, cache = mse_forward(logits.reshape(labels.shape) if n == 1 else logits, labels.astype(logits.dtype))
        return loss, TaskLossCache(problem="mse", inner=cache, logits_shape=logits.shape)
    if problem == "single_label_classification":
        loss, cache = cross_entropy_forward(logits, labels.reshape(-1))
        return loss, TaskLossCache(problem="cross_entropy", inner=cache, logits_shape=logits.shape)
    loss, cache = bce_with_logits_forward(logits, labels.astype(logits.dtype))
    return loss, TaskLossCache(problem="bce", inner=cache, logits_shape=logits.shape)


def choice_loss(logits, labels):
    """Multiple choice: cross-entropy over the C choices of (B, C) logits, labels (B,) the right choice."""
    labels = get_xp(logits).asarray(labels).reshape(-1)
    loss, cache = cross_entropy_forward(logits, labels)
    return loss, TaskLossCache(problem="cross_entropy", inner=cache, logits_shape=logits.shape)


class SpanLossCache(NamedTuple):
    start: CrossEntropyCache  # of the start logits (B, N) against start_positions
    end: CrossEntropyCache  # of the end logits against end_positions


def span_loss_forward(logits, positions):
    """Question answering: (cross-entropy of the start + of the end) / 2. logits (B, N, 2) start and end
    scores; positions (start_positions, end_positions), each (B,); one >= N (a span cut off by
    truncation) is ignored, as in transformers."""
    n = logits.shape[1]
    caches, total = [], 0
    for name, given, end in zip(("start_positions", "end_positions"), positions, (0, 1)):
        xp = get_xp(logits)
        given = xp.asarray(given).reshape(-1)
        if given.shape[0] != logits.shape[0]:
            raise ValueError(f"{name} has {given.shape[0]} entries for a batch of {logits.shape[0]}")
        if given.dtype.kind not in "iu" or (given.size and int(given.min()) < 0):
            raise ValueError(f"{name} must be integer token positions >= 0, got {given}")
        loss, cache = cross_entropy_forward(logits[..., end], xp.where(given < n, given, -100))
        total, caches = total + loss / 2, caches + [cache]
    return total, SpanLossCache(start=caches[0], end=caches[1])


def span_loss_backward(dloss, cache):
    """In the forward: ``loss = (CE(start) + CE(end)) / 2``. Returns d/d(logits) (B, N, 2)."""
    dstart, dend = (cross_entropy_backward(0.5 * dloss, c) for c in (cache.start, cache.end))
    return get_xp(dstart).stack((dstart, dend), axis=-1)


class RTDLossCache(NamedTuple):
    bce: BCECache  # of the real tokens' logits, flattened
    real: object  # (B, N) bool, the real tokens (where the loss was counted)


def rtd_loss_forward(logits, labels, real):
    """Replaced-token detection: mean binary cross-entropy over the real tokens (``real`` (B, N) bool),
    as Microsoft's ReplacedTokenDetectionModel computes it. labels (B, N): 1 replaced, 0 original."""
    xp = get_xp(logits)
    labels = xp.asarray(labels)
    if labels.shape != logits.shape:
        raise ValueError(f"labels have shape {labels.shape}; replaced-token detection needs one 0/1 label "
                         f"per token, shape {logits.shape}")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("replaced-token labels must be 0 (original) or 1 (replaced)")
    loss, cache = bce_with_logits_forward(logits[real], labels[real].astype(logits.dtype))
    return loss, RTDLossCache(bce=cache, real=real)


def rtd_loss_backward(dloss, cache):
    """In the forward: ``loss = BCE(logits[real], labels[real])``; padding gets no gradient."""
    dlogits = get_xp(cache.bce.logits).zeros(cache.real.shape, dtype=cache.bce.logits.dtype)
    dlogits[cache.real] = bce_with_logits_backward(dloss, cache.bce)
    return dlogits


def task_loss_forward(task, logits, labels, config, real):
    """The loss of each task of ``deberta.forward``, as transformers (and Microsoft, for RTD) define it.
    real: (B, N) bool, the real tokens. Returns ``loss, TaskLossCache``."""
    if task in ("masked_lm", "token"):
        return per_token_loss(logits, labels)
    if task == "sequence":
        return classification_loss(logits, labels, config)
    if task == "choice":
        return choice_loss(logits, labels)
    if task == "qa":
        loss, cache = span_loss_forward(logits, labels)
        return loss, TaskLossCache(problem="span", inner=cache, logits_shape=logits.shape)
    if task == "replaced_token":
        loss, cache = rtd_loss_forward(logits, labels, real)
        return loss, TaskLossCache(problem="rtd", inner=cache, logits_shape=logits.shape)
    raise ValueError(f"a {task!r} model has no loss: it returns hidden states, not logits")


TASK_LOSS_BACKWARDS = {"cross_entropy": cross_entropy_backward, "soft_cross_entropy": soft_cross_entropy_backward,
                       "mse": mse_backward, "bce": bce_with_logits_backward, "span": span_loss_backward,
                       "rtd": rtd_loss_backward}


def task_loss_backward(dloss, cache):
    """The gradient of ``task_loss_forward`` (or ``per_token_loss``, ``classification_loss``) with respect
    to the logits (``dloss`` 1.0 for the loss itself)."""
    if cache.problem == "none":
        return get_xp(cache.inner).zeros_like(cache.inner)
    return TASK_LOSS_BACKWARDS[cache.problem](dloss, cache.inner).reshape(cache.logits_shape)
