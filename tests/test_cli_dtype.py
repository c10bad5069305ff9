"""The command line's --dtype reaches the model (moved out of tests/unit/test_dtype.py: its checkpoint
fixture writes pytorch_model.bin with torch, and tests/unit runs without torch)."""
import numpy as np


def test_the_dtype_reaches_the_model(monkeypatch, capsys, checkpoints):
    """--dtype of the command line: float16 too, as the model's dtype."""
    from minideberta.apps.cli.main import main
    from minideberta.apps.inference import pipelines

    seen = []
    original = pipelines.classify
    monkeypatch.setattr(pipelines, "classify", lambda model, *a: seen.append(model.dtype) or original(model, *a))
    for dtype in ("float16", "float32", "float64"):
        assert main(["classify", str(checkpoints["nli"]), "x", "--dtype", dtype]) == 0
    assert seen == [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
