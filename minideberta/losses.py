"""Losses as torch.nn defines them, each a forward/backward pair.

    loss, cache = loss_forward(logits, targets)       dlogits = loss_backward(dloss, cache)

The loss is a 0-d array of the logits' dtype; ``dloss`` is the upstream gradient (1 for the
loss itself). All are means over the counted elements, as torch's default ``reduction="mean"``.
"""
from .backend import get_xp, widened


def log_softmax(x):
    """log softmax over the last axis; float16 in float32 (a sum of 128100 exponentials overflows float16)."""
    wide = widened(x)
    shifted = wide - wide.max(axis=-1, keepdims=True)
    out = shifted - get_xp(x).log(get_xp(x).exp(shifted).sum(axis=-1, keepdims=True))
    return out.astype(x.dtype) if wide is not x else out


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
    count = int(counted.sum())
    loss = -(picked * counted).sum() / count if count else xp.asarray(xp.nan, dtype=logits.dtype)
    return loss, (logp, safe, counted, count)


def cross_entropy_backward(dloss, cache):
    """d/dlogits = (softmax - onehot(label)) / count on counted rows, 0 on ignored rows."""
    xp = get_xp(cache[0])
    logp, safe, counted, count = cache
    dlogits = xp.exp(logp)
    xp.put_along_axis(dlogits, safe[:, None], xp.take_along_axis(dlogits, safe[:, None], axis=-1) - 1, axis=-1)
    dlogits *= counted[:, None] * (dloss / max(count, 1))
    return dlogits


def soft_cross_entropy_forward(logits, targets):
    """Mean over rows of -sum(targets * log softmax(logits)): cross-entropy with probability targets."""
    logp = log_softmax(logits)
    return -(logp * targets).sum(axis=-1).mean(), (logp, targets)


def soft_cross_entropy_backward(dloss, cache):
    logp, targets = cache
    xp = get_xp(logp)
    rows = logp.size // logp.shape[-1]
    return (xp.exp(logp) * targets.sum(axis=-1, keepdims=True) - targets) * (dloss / rows)


def mse_forward(predictions, targets):
    """Mean squared error; shapes must match exactly (no broadcasting surprises)."""
    if predictions.shape != targets.shape:
        raise ValueError(f"labels of shape {targets.shape} do not match predictions of shape {predictions.shape}")
    diff = predictions - targets
    return (diff * diff).mean(), diff


def mse_backward(dloss, cache):
    diff = cache
    return diff * (2 * dloss / diff.size)


def bce_with_logits_forward(logits, targets):
    """Mean binary cross-entropy on logits, in the overflow-free form max(x,0) - x t + log(1 + e^-|x|)."""
    if logits.shape != targets.shape:
        raise ValueError(f"labels of shape {targets.shape} do not match logits of shape {logits.shape}")
    xp = get_xp(logits)
    losses = xp.maximum(logits, 0) - logits * targets + xp.log1p(xp.exp(-abs(logits)))
    return losses.mean(), (logits, targets)


def bce_with_logits_backward(dloss, cache):
    logits, targets = cache
    xp = get_xp(logits)
    return (1 / (1 + xp.exp(-logits)) - targets) * (dloss / logits.size)
