"""Optimisation: AdamW, the linear warm-up/decay schedule, gradient clipping, and a NaN detector.

Every function works on dicts ``{name: array}``: ``model.params`` and the ``grads`` that
``model.backward()`` returns, under the same names.

AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization")
--------------------------------------------------------------------
With gradient g, learning rate lr, decay rate wd and step count t = 1, 2, ..., every
parameter theta, with its running moments m and v (both start at 0), is updated as::

    theta <- theta * (1 - lr * wd)              decoupled weight decay
    m     <- beta1 * m + (1 - beta1) * g        first moment (mean of g)
    v     <- beta2 * v + (1 - beta2) * g * g    second moment (mean of g^2)
    theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

m and v start at 0 and so are biased towards 0 in the first steps; dividing by
1 - beta^t (the weight the running average has given to real gradients so far) removes
that bias. The decay is *decoupled*: it shrinks theta directly instead of adding
wd * theta to g, where Adam's per-coordinate scaling would weaken it exactly for the
coordinates with large gradients. Biases and LayerNorm parameters get no decay: pulling
a LayerNorm gain towards 0 or a bias towards 0 is not a sensible prior.
The code follows ``torch.optim.AdamW`` operation by operation (same grouping, same
order of floating-point operations), so float64 runs agree with torch to the last few bits
(torch's vectorised ``lerp`` rounds once where NumPy rounds twice: a fused multiply-add).

The learning-rate schedule (transformers' ``get_linear_schedule_with_warmup``)
------------------------------------------------------------------------------
The optimizer step that follows ``s`` completed steps (s = 0, 1, ...) uses lr = base_lr * f(s)::

    f(s) = s / max(1, warmup)                                 if s < warmup
    f(s) = max(0, (total - s) / max(1, total - warmup))       otherwise

a linear rise from 0 to 1 over ``warmup`` steps, then a linear fall to 0 at step ``total``.
Warm-up matters for Adam because v is estimated from very few gradients at first.

Clipping
--------
``clip_grad_norm`` rescales all gradients together, as ``torch.nn.utils.clip_grad_norm_``:
with the global norm ||g|| = sqrt(sum over every array of sum g^2), every gradient is
multiplied by max_norm / (||g|| + 1e-6) when that is below 1. The direction is kept, only
the length is capped, so one bad batch cannot throw the parameters far.

Finding NaNs
------------
One NaN weight makes the loss and almost every gradient NaN at the next step, and from then
on every parameter. ``check_finite`` (the training loop's ``detect_anomalies``) stops at the
first step where the loss, a gradient or a parameter is not finite, and names the first
array affected in ``model.params`` order, with its NaN and inf counts.
"""
import math
import numbers

from .backend import device_of, get_xp, to_device
from .checks import check_integer


def no_decay_default(name):
    """transformers' rule: no weight decay for biases and LayerNorm parameters."""
    return name.endswith("bias") or "LayerNorm." in name


def _check_number(name, value, low, high=math.inf, low_open=False, high_open=False):
    """``value`` as a float if it is a finite number in the interval, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):  # NaN fails every comparison
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
        raise ValueError(f"{name}={value} makes no sense: it must be a finite number in {interval}")
    return value


class AdamW:
    """AdamW over a dict of arrays, updated in place, with torch.optim.AdamW's arithmetic.

    ``no_decay(name)`` says which parameters get no weight decay; the default exempts biases
    and LayerNorm parameters (``no_decay_default``); ``None`` decays every parameter.
    ``lr`` may be changed between steps (the schedule does so).

        opt = AdamW(model.params, lr=2e-5, weight_decay=0.01)
        opt.step(model.backward())
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, no_decay=no_decay_default):
        self.params = params
        self.lr = _check_number("lr", lr, 0, low_open=True)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_check_number(f"beta{i + 1}", b, 0, 1, high_open=True) for i, b in enumerate(betas))
        self.eps = _check_number("eps", eps, 0, low_open=True)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0)
        self.decays = {name: no_decay is None or not no_decay(name) for name in params}
        self.t = 0  # optimizer steps taken
        self.exp_avg = {name: get_xp(p).zeros_like(p) for name, p in params.items()}
        self.exp_avg_sq = {name: get_xp(p).zeros_like(p) for name, p in params.items()}

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        # 0 is allowed here: a schedule starts and ends there.
        self._lr = _check_number("lr", value, 0)

    def step(self, grads):
        """One update of every parameter from ``grads`` (same names and shapes as the params)."""
        if grads.keys() != self.params.keys():
            missing, extra = sorted(self.params.keys() - grads.keys()), sorted(grads.keys() - self.params.keys())
            raise ValueError(f"grads must hold exactly the parameters' names; missing {missing[:5]}, "
                             f"unknown {extra[:5]}")
        for name, p in self.params.items():  # all checked before anything changes
            if grads[name].shape != p.shape:
                raise ValueError(f"gradient of {name} has shape {grads[name].shape}, the parameter {p.shape}")
        beta1, beta2 = self.betas
        lr, self.t = self.lr, self.t + 1
        # Python floats, as torch computes these scalars on the host.
        step_size = lr / (1 - beta1 ** self.t)
        bias_correction2_sqrt = (1 - beta2 ** self.t) ** 0.5
        for name, p in self.params.items():
            g, m, v = grads[name], self.exp_avg[name], self.exp_avg_sq[name]
            xp = get_xp(p)
            if self.decays[name] and self.weight_decay != 0:
                p *= 1 - lr * self.weight_decay
            # m <- lerp(m, g, 1 - beta1), in the form torch's lerp picks for the weight's size.
            weight = 1 - beta1
            if weight < 0.5:
                m += weight * (g - m)
            else:
                m[...] = g - (g - m) * (1 - weight)
            v *= beta2
            v += (1 - beta2) * g * g
            denom = xp.sqrt(v)
            denom /= bias_correction2_sqrt
            denom += self.eps
            p += -step_size * m / denom

    def to(self, device):
        """Move the moments to ``device`` ("cpu" or "gpu"); ``model.to(device, optimizer=opt)`` calls this."""
        for moments in (self.exp_avg, self.exp_avg_sq):
            for name, value in moments.items():
                moments[name] = to_device(value, device)
        return self

    def state_dict(self):
        """Hyper-parameters, the step count and copies of the moments (``{name: array}`` each)."""
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay,
                "step": self.t,
                "exp_avg": {k: v.copy() for k, v in self.exp_avg.items()},
                "exp_avg_sq": {k: v.copy() for k, v in self.exp_avg_sq.items()}}

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned (as torch does, the hyper-parameters too)."""
        for key in ("exp_avg", "exp_avg_sq"):
            names, ours = state[key].keys(), self.params.keys()
            if names != ours:
                raise ValueError(f"optimizer state {key} holds other parameters than the model: missing "
                                 f"{sorted(ours - names)[:5]}, unknown {sorted(names - ours)[:5]}")
            for name, saved in state[key].items():
                if saved.shape != self.params[name].shape:
                    raise ValueError(f"optimizer state {key}[{name!r}] has shape {saved.shape}, "
                                     f"the parameter {self.params[name].shape}")
        self.lr = state["lr"]
        self.betas = tuple(_check_number(f"beta{i + 1}", b, 0, 1, high_open=True) for i, b in enumerate(state["betas"]))
        self.eps = _check_number("eps", state["eps"], 0, low_open=True)
        self.weight_decay = _check_number("weight_decay", state["weight_decay"], 0)
        self.t = int(state["step"])
        for key in ("exp_avg", "exp_avg_sq"):
            moments = getattr(self, key)
            for name, saved in state[key].items():  # a state saved on the other device is moved explicitly
                moments[name][...] = to_device(saved, device_of(moments[name]))


class LinearWarmupSchedule:
    """lr multiplier f(s) of transformers' ``get_linear_schedule_with_warmup`` (formula above).

    ``schedule(s)`` is the multiplier for the step taken after ``s`` completed steps.
    """

    def __init__(self, total_steps, warmup_steps=0):
        self.total_steps = check_integer(total_steps, "total_steps")
        self.warmup_steps = check_integer(warmup_steps, "warmup_steps")
        if self.total_steps <= 0:
            raise ValueError(f"total_steps={self.total_steps}: a schedule needs at least one step")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be in [0, total_steps={self.total_steps}]: "
                             "a warm-up longer than the run would never reach the full learning rate")

    def __call__(self, step):
        if step < 0:
            raise ValueError(f"step={step}: steps are counted from 0")
        if step < self.warmup_steps:
            return float(step) / float(max(1, self.warmup_steps))
        return max(0.0, float(self.total_steps - step) / float(max(1, self.total_steps - self.warmup_steps)))


def global_norm(grads):
    """sqrt(sum of g^2 over every array): the L2 norm of all gradients seen as one vector.

    As torch, the norm of each array first, then the norm of those norms.
    """
    if not grads:
        return 0.0
    xp = get_xp(next(iter(grads.values())))
    norms = xp.stack([xp.linalg.norm(g.reshape(-1)) for g in grads.values()])  # on the device: one read below
    return float(xp.linalg.norm(norms))


def clip_grad_norm(grads, max_norm):
    """Scale every gradient in place by max_norm / (norm + 1e-6) if that is below 1; return the
    norm before clipping (``torch.nn.utils.clip_grad_norm_``)."""
    max_norm = _check_number("max_norm", max_norm, 0, low_open=True)
    total = global_norm(grads)
    scale = max_norm / (total + 1e-6)
    if scale < 1 or math.isnan(scale):  # a NaN norm makes every gradient NaN, as in torch
        for g in grads.values():
            g *= scale
    return total


def _all_finite(arrays):
    """Whether every value of every array is finite, with a single read back to the host."""
    if not arrays:
        return True
    xp = get_xp(next(iter(arrays.values())))
    return bool(xp.stack([xp.isfinite(a).all() for a in arrays.values()]).all())


def _nonfinite(arrays, order):
    """``[(name, nan count, inf count, size)]`` for the arrays holding NaN or inf, in ``order``."""
    found = []
    for name in order:
        a = arrays[name]
        xp = get_xp(a)
        if not bool(xp.isfinite(a).all()):
            found.append((name, int(xp.isnan(a).sum()), int(xp.isinf(a).sum()), a.size))
    return found


def check_finite(loss, grads, params=None, step=None):
    """Raise ``FloatingPointError`` if the loss, a gradient or (given ``params``) a parameter
    holds NaN or inf.

    The message gives the loss, the number of gradients affected and the first of them, with
    its NaN and inf counts. "First" is in the order of ``params`` (the model's own order,
    embeddings first, head last) when given, else of ``grads``. Given ``params``, it also names
    the parameters that already hold NaN/inf: a NaN weight makes the loss and nearly every
    gradient NaN, so the gradients alone could not point at it.
    """
    order = list(params) if params is not None else list(grads)
    loss = float(loss)
    if math.isfinite(loss) and _all_finite(grads) and (params is None or _all_finite(params)):
        return  # one read back from the device per dict; the per-array search below only on failure
    bad_grads = _nonfinite(grads, order)
    bad_params = _nonfinite(params, order) if params is not None else []
    describe = lambda n, nan, inf, size: f"{n!r} ({nan} NaN, {inf} inf of {size} values)"  # noqa: E731
    lines = [f"non-finite values{'' if step is None else f' at step {step}'}: the loss is {loss}"]
    if bad_params:
        lines.append(f"{len(bad_params)} parameter(s) hold NaN/inf; the first is {describe(*bad_params[0])}. "
                     "Every value computed from it is NaN: find what wrote it (a previous update, a bad checkpoint)")
    if bad_grads:
        lines.append(f"{len(bad_grads)} of {len(order)} gradients hold NaN/inf; the first in model.params order "
                     f"is that of {describe(*bad_grads[0])}")
    else:
        lines.append("every gradient is finite")
    raise FloatingPointError("\n".join(lines))
