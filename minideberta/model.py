"""The DeBERTa-v2 backbone as a class: parameters, loading, saving, forward and backward.

``DebertaV2PreTrainedModel`` holds a flat dict of arrays named exactly as in a Hugging Face state
dict, checks a call's inputs, runs the whole model with ``deberta.forward`` (the model on one
screen), and remembers that forward's cache so that ``backward()`` can return d(loss)/d(every
parameter) from ``deberta.backward`` under the same names. The task classes in ``tasks.py`` and
``masked_lm.py`` say which head and loss (``task``) and name the outputs as transformers does.

    model = DebertaV2Model.from_pretrained("folder", dtype=np.float64)
    out = model(input_ids, attention_mask=mask)       # out.last_hidden_state
    grads = model.backward(d_last_hidden_state)       # grads["embeddings.word_embeddings.weight"]
"""
import warnings
from pathlib import Path

import numpy as np

from . import deberta
from .backend import check_device, device_module, get_xp, to_device
from .checkpoints import weights
from .checks import check_float_dtype
from .config import DebertaV2Config
from .inputs import prepare_inputs
from .outputs import Gradients, ModelOutput, grad_enabled, no_grad  # noqa: F401  (no_grad: also imported from here)
from .params import backbone_shapes, init_params, prefixed, subtree


class DebertaV2PreTrainedModel:
    """Parameters, loading, saving and the backbone forward/backward shared by every DeBERTa class.

    ``base`` is the name prefix of the backbone ("deberta" in the task models, "" in DebertaV2Model).
    """

    base = "deberta"
    tied = {}  # name of a tied copy in checkpoints -> name of the parameter it copies

    def __init__(self, config, seed=0, dtype=np.float32, params=None, device="cpu"):
        """A model of ``config``: random weights initialised as transformers does (from ``seed``),
        or ``params``, a dict holding every parameter (and any of ``optional_shapes``) by name.
        ``dtype``: float16, float32 or float64 (float16: LayerNorm and softmax statistics in float32).
        device "gpu" puts the parameters on the GPU (CuPy); the random initialisation is drawn on
        the host first, so a seed gives the same weights on either device.
        """
        self.config = config
        self.dtype = check_float_dtype(dtype)
        self.device = check_device(device)
        if params is None:
            params = init_params(self.param_shapes(config), config, seed, self.dtype)
        self.check_params(params)
        self.params = {k: to_device(v, device) for k, v in params.items()}
        self.unexpected = {}  # arrays a checkpoint held that this class does not use
        self.training, self.rng, self._cache = False, None, None

    # ---- parameters ----
    @classmethod
    def _name(cls, local):
        return f"{cls.base}.{local}" if cls.base else local

    @classmethod
    def head_shapes(cls, config):
        return {}

    @classmethod
    def optional_shapes(cls, config):
        """Parameters a model may hold beyond transformers' (kept when a checkpoint has them)."""
        return {}

    @classmethod
    def param_shapes(cls, config):
        """Name -> shape of every parameter this class has for ``config``."""
        shapes = {cls._name(k): v for k, v in backbone_shapes(config).items()}
        shapes.update(cls.head_shapes(config))
        return shapes

    def check_params(self, params):
        shapes, optional = self.param_shapes(self.config), self.optional_shapes(self.config)
        missing = sorted(set(shapes) - set(params))
        unknown = sorted(set(params) - set(shapes) - set(optional))
        wrong = [f"{k}: expected {shape}, got {tuple(params[k].shape)}" for k, shape in {**shapes, **optional}.items()
                 if k in params and tuple(params[k].shape) != tuple(shape)]
        wrong += [f"{k}: dtype {params[k].dtype}, the model computes in {self.dtype}" for k in params
                  if params[k].dtype != self.dtype and k not in unknown]
        if missing or unknown or wrong:
            raise ValueError("params do not fit this model: " + "; ".join(
                ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else []) + wrong))

    def num_parameters(self):
        return int(sum(a.size for a in self.params.values()))

    def train(self, seed=None):
        """Training mode: dropout on, drawn from ``default_rng(seed)`` of the model's array module
        (NumPy's, or CuPy's on the GPU, where the masks are drawn; reproducible for a given seed). A
        Generator passed as ``seed`` is used as it is, so a saved dropout state can be resumed exactly."""
        xp = np if self.device == "cpu" else device_module()
        given = seed is not None and hasattr(seed, "random") and not isinstance(seed, (int, np.integer))
        self.training, self.rng = True, seed if given else xp.random.default_rng(seed)
        return self

    def to(self, device, optimizer=None):
        """Move the parameters to ``device`` ("cpu" or "gpu"), and ``optimizer``'s state with them
        (an AdamW built on ``model.params``). The params dict is updated in place, so the optimizer
        keeps seeing the model's arrays. Returns the model."""
        self.device = check_device(device)
        for name, value in self.params.items():
            self.params[name] = to_device(value, device)
        if optimizer is not None:
            if optimizer.params is not self.params:
                raise ValueError("this optimizer was not built on this model's params (AdamW(model.params, ...))")
            optimizer.to(device)
        if self.training:  # dropout draws on the new device, from a seed the old generator gives (reproducible)
            self.train(int(self.rng.integers(2**31)))
        return self

    def eval(self):
        self.training, self.rng = False, None
        return self

    # ---- reading and writing checkpoints ----
    @classmethod
    def from_pretrained(cls, path, dtype=np.float32, config=None, new_head=False, seed=0, device="cpu",
                        from_tf=False):
        """Load ``config.json`` and the weights (safetensors, PyTorch .bin, HF or Microsoft names, or a
        TensorFlow ``tf_model.h5``: read when it is the folder's only checkpoint, or with ``from_tf=True``)
        from a folder; arrays are converted to ``dtype``: float16, float32 or float64 (a NumPy dtype,
        its name or np.float32...; anything else is a ValueError), whatever the checkpoint stores,
        and put on ``device`` ("cpu" or "gpu").

        A parameter missing from the checkpoint is an error, unless ``new_head`` is True: then
        the head of this class (everything outside the backbone) is initialised from ``seed``
        where the checkpoint lacks it or holds it at another size (other labels), with a warning,
        as transformers does when fine-tuning starts from a pre-trained encoder.
        """
        dtype = check_float_dtype(dtype)  # before any file is read
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder; from_pretrained needs a folder with config.json "
                                    "and model.safetensors or pytorch_model.bin")
        config = DebertaV2Config.from_pretrained(path) if config is None else config
        checkpoint = weights.checkpoint_file(path, from_tf)
        state = weights.load_state_dict(checkpoint)
        try:
            return cls.from_state_dict(config, state, dtype, new_head, seed, device)
        except ValueError as error:  # names and shapes that do not fit: say which file
            raise ValueError(f"{checkpoint} does not fit {cls.__name__} of its config: {error}") from None

    @classmethod
    def from_state_dict(cls, config, state, dtype=np.float32, new_head=False, seed=0, device="cpu"):
        """A model of ``config`` holding the arrays of ``state`` (name -> array), converted to
        ``dtype`` and put on ``device``; ``new_head`` and ``seed`` as in ``from_pretrained``."""
        dtype = check_float_dtype(dtype)
        config = cls.adapt_config(config, state)
        weights.check_layer_count(config.num_hidden_layers, state)  # before listing the layers' names
        shapes = cls.param_shapes(config)
        optional = cls.optional_shapes(config)
        state = weights.to_hf_names(state, set(shapes) | set(optional) | set(cls.tied))
        shapes.update({k: v for k, v in optional.items() if k in state})
        fresh = {}
        if new_head:
            head = {k: v for k, v in shapes.items() if not k.startswith(cls._name(""))
                    and (k not in state or tuple(state[k].shape) != tuple(v))}
            fresh = init_params(head, config, seed, np.dtype(dtype))
            shapes = {k: v for k, v in shapes.items() if k not in head}
            state = {k: v for k, v in state.items() if k not in head}
            if fresh:
                warnings.warn(f"{cls.__name__}: initialised a new head, not found in the checkpoint at this size: "
                              f"{', '.join(sorted(fresh))}; train it before use", stacklevel=3)
        try:
            params, unexpected = weights.match_state_dict(shapes, state, cls.tied)
        except ValueError as error:
            absent = [k for k in shapes if k not in state and k not in cls.tied]
            head = sorted(k for k in absent if not k.startswith(cls._name("")))
            if not head or len(head) < len(absent):  # nothing of the head missing, or the backbone too
                raise
            raise ValueError(f"{error}\nThe checkpoint has no {cls.__name__} head ({', '.join(head)}): to start "
                             "one from random weights and fine-tune it, load with new_head=True") from None
        model = cls(config, dtype=dtype, params={**{k: v.astype(dtype) for k, v in params.items()}, **fresh},
                    device=device)
        model.unexpected = {k: state[k] for k in unexpected}
        if unexpected:
            warnings.warn(f"{cls.__name__} does not use {len(unexpected)} arrays of the checkpoint "
                          f"(kept in model.unexpected): {', '.join(sorted(unexpected)[:8])}"
                          + (" ..." if len(unexpected) > 8 else ""), stacklevel=3)
        return model

    @classmethod
    def adapt_config(cls, config, state):
        """Hook for classes whose head is chosen by what the checkpoint holds."""
        return config

    def save_pretrained(self, folder):
        """Write ``config.json`` and ``model.safetensors`` (loadable by transformers)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(folder)
        weights.save_safetensors(self.params, folder / "model.safetensors")

    # ---- forward and backward: deberta.py's two functions ----
    task = "model"  # the head and loss deberta.forward runs for this class

    def deberta_params(self):
        """The parameters under the names deberta.py reads (the bare model stores them without ``deberta.``)."""
        return self.params if self.base else prefixed(self.params, "deberta")

    def run(self, inputs, labels=None, output_hidden_states=False, output_attentions=False, use_emd=False, choices=None):
        """Check ``inputs`` (a dict of the forward's input arguments, see ``inputs.py``), run ``deberta.forward``
        and keep its cache for one ``backward()`` (none under no_grad). Returns forward's ``out`` dict."""
        x = prepare_inputs(self.config, self.dtype, device=self.device, **inputs)
        keep = grad_enabled()
        out, cache = deberta.forward(self.deberta_params(), self.config, x, self.task, labels, use_emd=use_emd, rng=self.rng,
                                     choices=choices, output_attentions=output_attentions, keep_cache=keep,
                                     keep_states=keep or output_hidden_states)
        self._cache = cache
        return out

    def outputs(self, out, output_hidden_states, output_attentions, **fields):
        """A ModelOutput of ``fields``, with the hidden states and attentions when asked for."""
        result = ModelOutput(fields)
        if output_hidden_states:
            result["hidden_states"] = tuple(out["hidden_states"])
        if output_attentions:
            result["attentions"] = tuple(out["attentions"])
        return result

    def output_gradient(self, d_output):
        """d_output as deberta.backward takes it (question answering stacks its two)."""
        return d_output

    def backward(self, d_output=None):
        """Gradients of the loss (no argument: the forward had labels) or of the outputs whose gradient
        ``d_output`` is, for every parameter (zeros for those the forward did not use)."""
        if self._cache is None:
            raise RuntimeError("backward() needs the cache of a forward: call the model first (outside "
                               "no_grad()); each forward allows one backward")
        cache, self._cache = self._cache, None
        if d_output is None and cache.loss is None:
            raise ValueError("backward() with no argument differentiates the loss: pass labels to the "
                             "forward, or pass the gradient of the outputs to backward(d_output)")
        dembeds, grads = deberta.backward(self.deberta_params(), None if d_output is None
                                          else self.output_gradient(d_output), cache)
        if dembeds is not None and cache.choices is not None:  # back to (B, C, N, dim), as they came in
            dembeds = dembeds.reshape(-1, cache.choices, *dembeds.shape[1:])
        return self.complete(grads if self.base else subtree(grads, "deberta"), dembeds)

    def complete(self, grads, inputs_embeds=None):
        """Gradients for every parameter (zeros for those the forward did not use), in params order."""
        complete = Gradients({k: grads[k] if k in grads else get_xp(v).zeros_like(v) for k, v in self.params.items()})
        complete.inputs_embeds = inputs_embeds
        return complete

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


class DebertaV2Model(DebertaV2PreTrainedModel):
    """The bare encoder: ``last_hidden_state`` (B, N, hidden_size); ``backward(d_last_hidden_state)``."""

    base = ""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_hidden_states=False, output_attentions=False):
        out = self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds),
                       output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        return self.outputs(out, output_hidden_states, output_attentions, last_hidden_state=out["hidden_states"][-1])
