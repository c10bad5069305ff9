"""bench.py: the measurement itself, and the report, on a tiny model (timings are not asserted)."""
import json

import numpy as np
import pytest

from minideberta.apps import bench

TINY = dict(bench.V3, vocab_size=300, hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
            intermediate_size=64, position_buckets=8)


def test_measure_returns_a_median_and_a_peak():
    calls = []
    median, peak = bench.measure(lambda: calls.append(np.ones(1 << 20)), repeats=3)
    assert len(calls) == 4 and median > 0 and peak >= 0  # one warm-up, three timed


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_children_run_both_implementations(monkeypatch, mode):
    monkeypatch.setitem(bench.SIZES, "tiny", TINY)
    assert bench.child_minideberta("tiny", 2, 16, mode, 1)[0] > 0
    assert bench.child_transformers("tiny", 2, 16, mode, 1)[0] > 0


def test_report_and_rows_without_reference(monkeypatch):
    monkeypatch.setattr(bench, "run_child", lambda impl, *args: (0.5, 10.0) if impl == "minideberta" else (1.0, 20.0))
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    lines = []
    rows = bench.run(sizes=("v3-xsmall",), shapes=((1, 8),), backward=True, reference=False, report=lines.append)
    assert [row["mode"] for row in rows] == ["forward", "forward_backward"]
    assert "OPENBLAS_CORETYPE" in lines[0] and "minideberta alone" in lines[1]
    json.dumps(rows)


def test_ratio_with_reference(monkeypatch):
    monkeypatch.setattr(bench, "run_child", lambda impl, *args: (0.5, 10.0) if impl == "minideberta" else (1.0, 20.0))
    monkeypatch.setattr(bench, "reference_installed", lambda: True)
    rows = bench.run(sizes=("v3-xsmall",), shapes=((1, 8),), report=lambda line: None)
    assert rows[0]["ratio"] == 0.5 and rows[0]["transformers_peak_mib"] == 20.0
