"""bench.py: the measurement itself, and the report, on a tiny model (timings are not asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from minideberta.apps.bench import model as bench

TINY = dict(bench.V3, vocab_size=300, hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
            intermediate_size=64, position_buckets=8)


MEASURE_IN_A_FRESH_PROCESS = """
import json, mmap, time
import numpy as np
from minideberta.apps.bench import model as bench
kept = []
def keep():  # 8 MiB written and kept at every call, and 20 ms
    kept.append(np.ones(1 << 20))
    time.sleep(0.02)
def temporary():  # 16 MiB of pages touched, then unmapped: the process gives them back at once
    pages = mmap.mmap(-1, 16 << 20)
    for at in range(0, 16 << 20, mmap.PAGESIZE):
        pages[at] = 1
    pages.close()
kept_result = bench.measure(keep, repeats=3)
temporary_result = bench.measure(temporary, repeats=3)
print(json.dumps([len(kept), *kept_result, *temporary_result]))
"""


def test_measure_returns_a_median_and_a_peak():
    """In a fresh process (as bench runs each measurement), where freed memory of earlier tests cannot hide
    new allocations: 4 calls (one warm-up, three timed) keeping 8 MiB each peak at 32 MiB above the start;
    a 16 MiB array freed after each call peaks at 16 MiB, though it is gone when measure returns."""
    done = subprocess.run([sys.executable, "-c", MEASURE_IN_A_FRESH_PROCESS], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    calls, median, peak, _, temporary_peak = json.loads(done.stdout)
    assert calls == 4
    assert 0.02 <= median < 0.5  # the sleep, and not the warm-up's
    assert 31 <= peak < 36, peak  # 1 MiB either side: pages the interpreter itself takes or gives back
    assert 15 <= temporary_peak < 20, temporary_peak


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
