"""bench_pretrain.py: both pre-training steps run and train at a tiny shape; the report (timings are not asserted)."""
import math

import pytest

from minideberta.apps.bench import pretrain as bench_pretrain

TINY = dict(vocab=200, hidden=32, layers=2, generator_layers=1, heads=4, batch=2, length=16)


@pytest.mark.parametrize("child", [bench_pretrain.child_minideberta, bench_pretrain.child_torch])
def test_each_step_runs(child):
    assert child(TINY, 1) > 0


def test_the_torch_step_is_the_pretraining_loss(monkeypatch):
    """At initialisation both losses are those of a model that knows nothing: L_MLM near log V,
    L_RTD near log 2; a torch step that computed something else would land elsewhere."""
    import torch

    losses = []
    real = torch.nn.functional.binary_cross_entropy_with_logits

    def spy(z, labels):
        loss = real(z, labels)
        losses.append(float(loss))
        return loss

    monkeypatch.setattr(torch.nn.functional, "binary_cross_entropy_with_logits", spy)
    cross = torch.nn.functional.cross_entropy
    mlm = []
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: mlm.append(float(cross(*a, **k))) or cross(*a, **k))
    bench_pretrain.child_torch(dict(TINY, vocab=2000, batch=4, length=64), 1)
    assert abs(mlm[0] - math.log(2000)) < 0.5, mlm
    assert abs(losses[0] - math.log(2)) < 0.2, losses


def test_batch_is_framed_like_pretraining_data():
    ids = bench_pretrain.batch_ids(100, 3, 10)
    assert ids.shape == (3, 10) and (ids[:, 0] == 1).all() and (ids[:, -1] == 2).all()
    assert ((ids[:, 1:-1] >= 4) & (ids[:, 1:-1] < 99)).all()  # no special ids, no [MASK] (V - 1)


def test_report_and_ratio(monkeypatch):
    monkeypatch.setattr(bench_pretrain, "run_child", lambda impl, shape, repeats, n: 2.0 if impl == "minideberta" else 4.0)
    lines = []
    rows = bench_pretrain.run(TINY, threads=(1, 2), report=lines.append)
    assert [row["threads"] for row in rows] == [1, 2]
    assert rows[0]["ratio"] == 0.5 and rows[0]["minideberta_tokens_per_s"] == 2 * 16 / 2.0
    assert any("time ratio 0.50" in line for line in lines)


def test_bench_pretrain_command_parses(monkeypatch):
    from minideberta.apps.cli import main as cli

    seen = {}
    monkeypatch.setattr(bench_pretrain, "run", lambda shape, **kw: seen.update(shape=shape, **kw) or [])
    assert cli.main(["bench", "pretrain", "--hidden", "64", "--threads", "1", "2", "--repeats", "2"]) == 0
    assert seen["shape"] == {"hidden": 64} and seen["threads"] == [1, 2] and seen["repeats"] == 2
