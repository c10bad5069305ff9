"""verify.py: a checkpoint against transformers layer by layer, EMD and RTD against the rebuilt originals.

The checkpoints are the official-layout folders of conftest.py (float16 .bin, Microsoft's names).
A port with one wrong weight must be reported as a MISMATCH, so one test perturbs a single array
on minideberta's side only (transformers reads the untouched file).
"""
import json

import numpy as np
import pytest

from minideberta.apps.bench import verify
from minideberta.checkpoints import weights


@pytest.mark.parametrize("head, references", [
    ("mlm", {"transformers", "rebuilt original"}),  # Microsoft's head: plain last layer vs HF, EMD vs rebuilt
    ("rtd", {"transformers", "rebuilt original"}),
    ("nli", {"transformers"}),
    ("qa", {"transformers"}),
])
def test_a_faithful_checkpoint_verifies(checkpoints, head, references):
    lines = []
    assert verify.main(checkpoints[head], np.float64, report=lines.append) == 0
    assert lines[-1] == "verify: OK"
    rows, shape = verify.compare(checkpoints[head], np.float64)
    assert {reference for _, reference, _, _ in rows} == references
    assert shape[1] > 8 // 2  # past the bucket threshold of these models (position_buckets 8)
    assert max(rel for *_, rel in rows) < 1e-12  # float64: round-off only


def test_emd_rows_are_labelled_as_the_rebuilt_algorithm(checkpoints):
    rows, _ = verify.compare(checkpoints["mlm"], np.float64)
    names = {name: reference for name, reference, _, _ in rows}
    assert names["MLM logits (EMD)"] == "rebuilt original" and names["MLM logits (no EMD)"] == "transformers"


def test_one_perturbed_weight_is_a_mismatch(checkpoints, monkeypatch, capsys):
    original = weights.load_state_dict

    def ported_with_a_bug(path):
        state = original(path)
        name = "deberta.encoder.layer.1.output.dense.weight"
        state[name] = state[name] * np.float16(1.01)
        return state

    monkeypatch.setattr(weights, "load_state_dict", ported_with_a_bug)
    lines = []
    assert verify.main(checkpoints["nli"], np.float64, report=lines.append) == 1
    assert lines[-1] == "verify: MISMATCH"
    flagged = [line for line in lines if "above tolerance" in line]
    assert flagged and not any(line.startswith(("embeddings", "layer 1 ")) for line in flagged)


def test_json_report(checkpoints):
    lines = []
    assert verify.main(checkpoints["qa"], np.float32, as_json=True, report=lines.append) == 0
    report = json.loads(lines[0])
    assert report["ok"] is True and report["tolerance"] == verify.TOLERANCE[np.float32]
    assert {"output", "reference", "max_abs_diff", "max_rel_diff"} <= set(report["rows"][0])


def test_without_the_reference_the_checkpoint_still_runs_but_is_unverified(checkpoints, monkeypatch):
    monkeypatch.setattr(verify, "reference_installed", lambda: False)
    lines = []
    assert verify.main(checkpoints["nli"], np.float32, report=lines.append) == 2
    assert lines[-1] == "verify: UNVERIFIED" and "pip install torch transformers" in lines[0]
    lines = []
    assert verify.main(checkpoints["nli"], np.float32, as_json=True, report=lines.append) == 2
    assert json.loads(lines[0])["verified"] is False
