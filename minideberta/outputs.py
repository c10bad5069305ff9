"""What a forward returns, what a backward returns, and the switch that says whether a forward keeps
what its backward needs.

    out = model(ids)              # a ModelOutput: out.logits, out["logits"]; absent fields read as None
    grads = model.backward()      # Gradients: {parameter name: array}, grads.inputs_embeds
    with no_grad():               # inference: no caches kept, no backward
        model(ids)
"""
import contextlib
import threading

# ---- the gradient switch: whether a forward keeps what its backward needs ----
# As torch's grad mode: on by default; ``no_grad()`` turns it off for a block. It belongs to the
# thread that set it (a second thread starts with it on), and nothing else in the package changes it.
_grad_mode = threading.local()


def grad_enabled():
    """True when forwards keep their caches for a ``backward()`` (the default), False inside ``no_grad()``."""
    return getattr(_grad_mode, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Within this block forwards keep no cache (inference memory), and ``backward()`` is unavailable."""
    previous, _grad_mode.enabled = grad_enabled(), False
    try:
        yield
    finally:
        _grad_mode.enabled = previous


class ModelOutput(dict):
    """A dict of outputs whose fields are also attributes; absent fields read as None (as in transformers)."""

    FIELDS = ("loss", "logits", "start_logits", "end_logits", "last_hidden_state", "hidden_states", "attentions")

    def __getattr__(self, name):
        if name in self.FIELDS:
            return self.get(name)
        raise AttributeError(name)


class Gradients(dict):
    """d(loss)/d(parameter) by parameter name; ``.inputs_embeds`` holds d/d(inputs_embeds) when given."""

    inputs_embeds = None
