"""demo.py, README's first command: it must pass on a correct library and fail on a broken backward."""
import numpy as np

from minideberta import ops
from minideberta.apps.bench import verify
from minideberta.apps.inference import demo


def test_demo_passes(monkeypatch):
    monkeypatch.setattr(verify, "reference_installed", lambda: False)  # verify itself: test_verify.py
    lines = []
    assert demo.main(report=lines.append) == 0
    assert lines[-1] == "demo: OK"
    assert any(line.startswith("2. backward") and line.endswith("PASS") for line in lines)
    assert any("identical PASS" in line for line in lines)


def test_demo_catches_a_wrong_gradient(monkeypatch):
    """A LayerNorm backward that forgets to subtract the mean must make the demo fail."""
    monkeypatch.setattr(verify, "reference_installed", lambda: False)
    right = ops.layer_norm_backward

    def wrong(p, dy, cache):
        dx, grads = right(p, dy, cache)
        return dx + np.mean(dy * p["weight"], axis=-1, keepdims=True) * cache.rstd, grads

    monkeypatch.setattr(ops, "layer_norm_backward", wrong)
    for module in ("encoder", "embeddings", "heads", "ngie"):  # the names bound at import
        monkeypatch.setattr(f"minideberta.{module}.layer_norm_backward", wrong, raising=False)
    lines = []
    assert demo.main(report=lines.append) == 1
    assert lines[-1] == "demo: FAILED" and any(line.endswith("FAIL") for line in lines)
