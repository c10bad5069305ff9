"""Read ``tf_model.h5``, the checkpoint transformers' TensorFlow classes save, without TensorFlow.

The file
--------
Keras writes weights into an HDF5 file (read here with h5py, imported only when an ``.h5`` is
read). The root lists its Keras layers in the attribute ``layer_names``; each layer is a group
whose attribute ``weight_names`` lists its variables, and each variable is a dataset at
``<layer>/<weight name>``::

    deberta/tf_deberta_v2_for_sequence_classification/deberta/embeddings/LayerNorm/gamma:0   (32,)
    classifier/tf_deberta_v2_for_sequence_classification/classifier/kernel:0                 (32, 3)

The names
---------
A weight name is ``<class scope>/<module path>/<variable>:0``. Dropping the class scope (the
snake-case name of the TF class) and the ``:0``, and writing ``/`` as ``.``, gives Hugging Face's
PyTorch name, with four renamings, the ones transformers' own TF-to-PyTorch conversion makes:

- a layer list is spelt ``layer_._0`` in TF, ``layer.0`` in PyTorch;
- a Dense or Conv1D ``kernel`` and a LayerNorm ``gamma`` are PyTorch's ``weight``, ``beta`` its ``bias``;
- a Dense kernel is stored ``(in, out)``: PyTorch's Linear weight is its transpose ``(out, in)``;
- the nGiE convolution's kernel is stored ``(kernel, in, out)``: PyTorch's Conv1d weight is
  ``(out, in, kernel)``, the axes reversed.

Embedding tables (``weight:0``, ``rel_embeddings.weight:0``) are stored as PyTorch has them. The
masked-LM class saves the word embeddings twice (its ``cls`` layer holds the tied copy): both
copies name the same parameter, and they must agree.
"""
from pathlib import Path

import numpy as np

_RENAMED = {"kernel": "weight", "gamma": "weight", "beta": "bias"}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ValueError("reading a TensorFlow checkpoint (tf_model.h5) needs h5py: pip install h5py "
                         "(or pip install 'minideberta[tf]')") from None
    return h5py


def hf_name(weight_name):
    """``tf_deberta_v2_model/deberta/encoder/layer_._0/output/dense/kernel:0`` ->
    ``deberta.encoder.layer.0.output.dense.weight``, and whether the array is a kernel to transpose."""
    name = weight_name[:-2] if weight_name.endswith(":0") else weight_name
    parts = name.replace("_._", "/").split("/")[1:]  # [1:]: drop the class scope
    if not parts or "" in parts:
        raise ValueError(f"weight name {weight_name!r} is not <class scope>/<module path>/<variable>:0")
    kernel = parts[-1] == "kernel"
    parts[-1] = _RENAMED.get(parts[-1], parts[-1])
    return ".".join(parts), kernel


def _to_torch_layout(array, kernel):
    """A TF kernel in PyTorch's layout: Dense (in, out) -> (out, in); Conv1D (k, in, out) -> (out, in, k)."""
    if not kernel:
        return np.ascontiguousarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"a kernel of shape {array.shape}: expected a Dense (in, out) or a Conv1D (k, in, out) kernel")
    return np.ascontiguousarray(array.transpose(tuple(reversed(range(array.ndim)))))


def _names(attrs, key, where):
    """A string-list attribute (``layer_names``, ``weight_names``) as a list of str."""
    if key not in attrs:
        raise ValueError(f"{where} has no attribute {key!r}: this is not a Keras weights file")
    values = np.asarray(attrs[key]).reshape(-1)
    if values.size == 0:  # Keras writes an empty float array for a layer without weights
        return []
    names = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.tolist()]
    if not all(isinstance(v, str) and v for v in names):
        raise ValueError(f"{where}: attribute {key!r} should list names, holds {values.dtype} values")
    return names


def _read_dataset(dataset, file_size):
    """The dataset's array, after checking it is a float array no larger than the file."""
    if not isinstance(dataset.dtype, np.dtype) or dataset.dtype.kind != "f" or dataset.dtype.itemsize not in (2, 4, 8):
        raise ValueError(f"{dataset.name} has dtype {dataset.dtype}: expected float16, float32 or float64 weights")
    count = 1
    for n in dataset.shape:
        count *= n
    if count * dataset.dtype.itemsize > file_size:  # Keras stores weights uncompressed
        raise ValueError(f"{dataset.name} declares shape {dataset.shape} ({count * dataset.dtype.itemsize} bytes), "
                         f"more than the whole file ({file_size} bytes)")
    return dataset[()]


def _read(h5py, path, file_size):
    tensors, source = {}, {}
    with h5py.File(path, "r") as f:
        for layer in _names(f.attrs, "layer_names", "the file's root"):
            group = f.get(layer)
            if not isinstance(group, h5py.Group):
                raise ValueError(f"layer_names lists {layer!r}, which is not a group of the file")
            for weight in _names(group.attrs, "weight_names", f"layer {layer}"):
                dataset = group.get(weight)
                if not isinstance(dataset, h5py.Dataset):
                    raise ValueError(f"layer {layer} lists the weight {weight}, which the file lacks")
                name, kernel = hf_name(weight)
                array = _to_torch_layout(_read_dataset(dataset, file_size), kernel)
                if name in tensors:
                    if tensors[name].shape != array.shape or not np.array_equal(tensors[name], array):
                        raise ValueError(f"{source[name]} and {weight} both name {name} but hold different arrays")
                    continue
                tensors[name], source[name] = array, weight
    return tensors


def load_tf_h5(path):
    """Read a Keras ``tf_model.h5`` as ``{Hugging Face name: np.ndarray}`` (PyTorch layouts, dtypes as stored).

    Raises ``ValueError`` naming the file when it is not a readable Keras weights file, and when
    h5py is not installed.
    """
    path = Path(path)
    h5py = _h5py()
    file_size = path.stat().st_size
    try:
        return _read(h5py, path, file_size)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except Exception as error:  # h5py reports damage as OSError, KeyError, RuntimeError, TypeError...
        raise ValueError(f"{path} is not a readable HDF5 / Keras weights file ({type(error).__name__}: "
                         f"{error}): the file is damaged or truncated") from None
