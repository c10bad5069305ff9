"""Reading and writing checkpoints: safetensors, sharded folders, PyTorch ``.bin`` without torch, the hub.

``weights.py`` (formats, name maps between Hugging Face and Microsoft, the state-dict match),
``torch_pickle.py`` (a restricted unpickler for ``.bin``), ``hub.py`` (folders, hub ids, head detection).
"""
