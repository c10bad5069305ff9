"""Reading and writing checkpoints: safetensors, sharded folders, PyTorch ``.bin`` without torch, TF ``.h5``, the hub.

``weights.py`` (which file a folder holds, shard indices, name maps between Hugging Face and Microsoft, the
state-dict match), ``safetensors_file.py`` (the one safetensors header parser, every claim checked),
``torch_pickle.py`` + ``restricted_unpickler.py`` (``.bin``), ``tf_h5.py`` (``tf_model.h5`` via h5py),
``hub.py`` (folders, hub ids, head detection). The files here read and name what a folder holds; they do
not build models (``minideberta/loading.py`` does, a layer up) and import nothing above them but the
config's and the tokenizer's file names (JSON is read by ``minideberta/json_file.py``, shared with both).
A bad file raises ``ValueError`` (or ``FileNotFoundError``) naming it; see DESIGN.md, "Reading files".
"""
