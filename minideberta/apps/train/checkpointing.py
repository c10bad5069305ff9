"""Training checkpoints: the model, AdamW's moments and the trainer's state, written all or nothing and
read back so that a resumed run takes exactly the steps of one that was not stopped (``loop.py``'s
docstring lists what a ``checkpoint-<step>/`` folder holds)."""
import json
import shutil
from pathlib import Path

import numpy as np

from ...backend import device_of, to_device
from ...checkpoints import weights

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def save_checkpoint(folder, model, optimizer, state):
    """Write the model, the optimizer's moments and ``state`` (JSON) to ``folder``, all or nothing:
    into a temporary folder first, renamed when complete."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    opt = optimizer.state_dict()
    moments = {f"{key}.{name}": a for key in ("exp_avg", "exp_avg_sq") for name, a in opt.pop(key).items()}
    weights.save_safetensors(moments, partial / OPTIMIZER_FILE)
    (partial / STATE_FILE).write_text(json.dumps({**state, "optimizer": opt}, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def load_checkpoint(folder, model, optimizer):
    """Put a checkpoint's parameters into ``model.params`` and its moments into ``optimizer`` (in place);
    return the trainer state (step, settings, dropout generator state, history)."""
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        raise FileNotFoundError(f"{folder} is not a training checkpoint: it has no {STATE_FILE} "
                                "(checkpoints are the checkpoint-<step> folders inside checkpoint_dir)")
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    saved = weights.load_state_dict(folder)
    moments = weights.load_state_dict(folder / OPTIMIZER_FILE)
    missing = [name for name in model.params if name not in saved]
    if missing:
        raise ValueError(f"the checkpoint {folder} lacks {len(missing)} parameters of this model, "
                         f"e.g. {missing[:3]}: it was saved from another architecture")
    for name, p in model.params.items():
        if saved[name].shape != p.shape or saved[name].dtype != p.dtype:
            raise ValueError(f"{name}: the checkpoint holds {saved[name].dtype} {saved[name].shape}, the model "
                             f"{p.dtype} {p.shape}; build the model with the checkpoint's config and dtype")
    # Everything is checked before anything is overwritten (load_state_dict checks its part first).
    optimizer.load_state_dict({**state["optimizer"],
                               **{key: {name: moments[f"{key}.{name}"] for name in model.params}
                                  for key in ("exp_avg", "exp_avg_sq")}})
    for name, p in model.params.items():
        p[...] = to_device(saved[name], device_of(p))  # onto the device the parameter lives on
    return state


def dropout_state(model):
    """The dropout generator's state as JSON (NumPy's ``bit_generator.state``); None on the GPU, whose
    generator state CuPy does not expose: a resumed GPU run draws dropout from ``device_seed``."""
    return model.rng.bit_generator.state if model.device == "cpu" else None


def device_seed(seed, step):
    return int(np.random.default_rng((int(seed), int(step))).integers(2**31))


def generator_from_state(state):
    """The NumPy generator whose ``bit_generator.state`` was ``state``."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
