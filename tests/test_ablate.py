"""``python -m minideberta ablate``: the variants, the statistics, resuming, on the micro corpus (``--smoke``)."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from micro_corpus import write_micro_corpus
from minideberta.apps.cli import main as cli
from minideberta.apps.pretrain.ablate import mean_pairwise_cosine
from minideberta.apps.pretrain.ablate_report import END, HELDOUT, METRICS, START
from minideberta.masked_lm import POSITIONS

TASKS = Path(__file__).resolve().parents[1] / "tasks" / "sample"
VARIANTS = ["full", "no-c2p", "no-p2c", "no-emd", "es", "nes"]


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_ablate(folder, output):
    return cli.main(["ablate", "--smoke", "--corpus", str(folder / "train.txt"), "--tasks", str(TASKS),
                     "--output", str(output), "--seeds", "0", "1", "--no-progress"])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """(corpus folder, output folder): every variant, seeds 0 and 1, a few steps each."""
    folder = write_micro_corpus(tmp_path_factory.mktemp("corpus"))
    output = tmp_path_factory.mktemp("ablate")
    (output / "README.md").write_text(f"# notes\n{START}\nold table\n{END}\nafter\n", encoding="utf-8")
    assert run_ablate(folder, output) == 0
    return folder, output


def test_mean_pairwise_cosine_is_the_mean_over_distinct_pairs():
    table = np.random.default_rng(0).normal(size=(40, 6)) + 0.3
    keep = [i for i in range(40) if i not in (0, 3)]
    u = table[keep] / np.linalg.norm(table[keep], axis=1, keepdims=True)
    pairs = [u[i] @ u[j] for i in range(len(u)) for j in range(len(u)) if i != j]
    assert mean_pairwise_cosine(table, skip=[0, 3]) == pytest.approx(np.mean(pairs), abs=1e-12)


def test_one_row_per_run_with_every_metric(smoke):
    _, output = smoke
    rows = read_csv(output / "results.csv")
    assert [(r["variant"], int(r["seed"])) for r in rows] == [(v, s) for v in VARIANTS for s in (0, 1)]
    for row in rows:
        for key in (*HELDOUT, *METRICS):
            assert math.isfinite(float(row[key])), (row["variant"], key)
        run = output / "runs" / f"{row['variant']}-seed{row['seed']}"
        assert (run / "checkpoint" / "trainer_state.json").is_file() and (run / "history.json").is_file()
    assert (output / "results.png").is_file() and (output / "curves.png").is_file()
    curves = read_csv(output / "curves.csv")
    assert {(c["variant"], c["seed"]) for c in curves} == {(r["variant"], r["seed"]) for r in rows}


def test_each_variant_changes_its_switch_and_only_it(smoke):
    _, output = smoke
    runs = output / "runs"

    def config(variant, model):
        return json.loads((runs / f"{variant}-seed0" / "checkpoint" / f"{model}_config.json").read_text())

    def state(variant):
        return json.loads((runs / f"{variant}-seed0" / "checkpoint" / "trainer_state.json").read_text())

    expected = {"no-c2p": {"p2c"}, "no-p2c": {"c2p"}}
    for variant in VARIANTS:
        for model in ("generator", "discriminator"):
            assert set(config(variant, model)["pos_att_type"]) == expected.get(variant, {"p2c", "c2p"})
        assert state(variant)["settings"]["sharing"] == {"es": "es", "nes": "nes"}.get(variant, "gdes")
    from safetensors.numpy import load_file

    for variant in VARIANTS:
        saved = load_file(runs / f"{variant}-seed0" / "checkpoint" / "model.safetensors")
        assert (f"generator.{POSITIONS}" in saved) == (variant != "no-emd")
    rows = {r["variant"]: r for r in read_csv(output / "results.csv") if r["seed"] == "0"}
    assert rows["es"]["cos_generator"] == rows["es"]["cos_discriminator"]  # one table
    assert rows["nes"]["cos_generator"] != rows["nes"]["cos_discriminator"]


def test_summary_pairs_each_variant_with_full_by_seed(smoke):
    _, output = smoke
    rows = read_csv(output / "results.csv")
    value = {(r["variant"], r["seed"]): float(r["rtd_auc"]) for r in rows}
    d = np.array([value[("nes", s)] - value[("full", s)] for s in ("0", "1")])
    summary = {(s["variant"], s["metric"]): s for s in read_csv(output / "summary.csv")}
    row = summary[("nes", "rtd_auc")]
    assert float(row["diff_mean"]) == pytest.approx(d.mean(), rel=1e-4)
    assert float(row["t"]) == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(2)), rel=1e-3)
    assert float(row["mean"]) == pytest.approx(np.mean([value[("nes", s)] for s in ("0", "1")]), rel=1e-4)
    assert math.isnan(float(summary[("full", "rtd_auc")]["diff_mean"]))
    readme = (output / "README.md").read_text()
    assert "old table" not in readme and "| nes |" in readme and readme.endswith(f"{END}\nafter\n")


def test_a_second_call_redoes_nothing_and_a_stopped_run_resumes(smoke):
    folder, output = smoke
    run = output / "runs" / "no-emd-seed1"
    done = {p: p.stat().st_mtime_ns for p in (output / "runs").glob("*/metrics.json")}
    before = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()  # as if stopped after its last checkpoint
    assert run_ablate(folder, output) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert "resuming" in (run / "log.txt").read_text()
    timing = ("minutes", "pretrain_minutes")
    assert {k: v for k, v in after.items() if k not in timing} == {k: v for k, v in before.items() if k not in timing}
    for path, mtime in done.items():
        if path.parent != run:
            assert path.stat().st_mtime_ns == mtime, path
