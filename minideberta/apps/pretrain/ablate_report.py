"""The ablation's tables and figures (``ablate.py`` runs; this writes what the runs measured).

- ``results.csv``: one row per run (``variant``, ``seed``, one column per metric).
- ``curves.csv``: every held-out evaluation of every run (step, the metrics, the embedding similarity).
- ``summary.csv``: per variant and metric, the mean and standard deviation over seeds, and the
  comparison with ``full`` **paired by seed**: the runs of one seed share the initialisation
  seed, the data order, the masks and the fine-tuning order, so the difference d_s = variant_s -
  full_s removes what the seed does to both. ``diff_mean`` and ``diff_std`` are the mean and
  standard deviation of d_s, ``t = diff_mean / (diff_std / sqrt(n))`` and ``p`` its two-sided
  p-value with n - 1 degrees of freedom (``scipy.stats.ttest_rel``). With 3 seeds a difference needs
  to be large against its spread to mean anything: |t| > 4.30 for p < 0.05.
- ``results.png`` (each metric by variant, every seed a dot, the mean a bar) and ``curves.png``
  (held-out curves, and the embedding similarity over training for GDES, ES and NES).
- In ``README.md`` (if there), the table between ``<!-- results -->`` and ``<!-- /results -->``.
"""
import csv
import json
from pathlib import Path

import numpy as np

HELDOUT = ("mlm_top1", "mlm_top5", "unigram_top1", "rtd_auc", "rtd_auc_random", "rtd_accuracy", "mlm_loss",
           "rtd_loss")
METRICS = ("mlm_top1", "rtd_auc", "rtd_auc_random", "topic_test", "cos_generator", "cos_discriminator")
CURVES = ("mlm_top1", "rtd_auc", "rtd_auc_random", "mlm_loss", "rtd_loss", "cos_generator", "cos_discriminator")
START, END = "<!-- results -->", "<!-- /results -->"


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (float(f"{v:.5g}") if isinstance(v, float) else v) for k, v in row.items()}
                         for row in rows)


def paired(rows, variant, metric, baseline="full"):
    """The summary row of ``variant`` on ``metric`` (module docstring), paired with ``baseline`` by seed."""
    from scipy.stats import ttest_rel

    mine = {r["seed"]: r[metric] for r in rows if r["variant"] == variant}
    base = {r["seed"]: r[metric] for r in rows if r["variant"] == baseline}
    values = np.array(list(mine.values()), dtype=np.float64)
    out = {"variant": variant, "metric": metric, "seeds": len(values), "mean": float(values.mean()),
           "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
           "diff_mean": float("nan"), "diff_std": float("nan"), "t": float("nan"), "p": float("nan")}
    seeds = sorted(set(mine) & set(base))
    if variant != baseline and seeds:
        d = np.array([mine[s] - base[s] for s in seeds], dtype=np.float64)
        out.update(diff_mean=float(d.mean()))
        if len(d) > 1:
            out.update(diff_std=float(d.std(ddof=1)))
            if d.std() > 0:
                test = ttest_rel([mine[s] for s in seeds], [base[s] for s in seeds])
                out.update(t=float(test.statistic), p=float(test.pvalue))
    return out


def summarise(rows, variants):
    return [paired(rows, variant, metric) for variant in variants for metric in METRICS
            if any(r["variant"] == variant for r in rows)]


def curves_of(rows, runs):
    out = []
    for row in rows:
        history = json.loads((Path(runs) / f"{row['variant']}-seed{row['seed']}" / "history.json").read_text())
        ev = history["eval"]
        for i, step in enumerate(ev["step"]):
            out.append({"variant": row["variant"], "seed": row["seed"], "step": step,
                        **{k: ev[k][i] for k in CURVES}})
    return out


def markdown_table(summary, variants):
    """Mean +- std per variant and metric; under it, the paired difference from full and its p."""
    cell = {(s["variant"], s["metric"]): s for s in summary}
    lines = ["| variant | " + " | ".join(METRICS) + " |", "| --- |" + " --- |" * len(METRICS)]
    for variant in variants:
        if (variant, METRICS[0]) not in cell:
            continue
        parts = []
        for metric in METRICS:
            s = cell[(variant, metric)]
            text = f"{s['mean']:.4f} ± {s['std']:.4f}"
            if variant != "full" and np.isfinite(s["diff_mean"]):
                text += f"<br>Δ {s['diff_mean']:+.4f}" + (f", p {s['p']:.2f}" if np.isfinite(s["p"]) else "")
            parts.append(text)
        lines.append(f"| {variant} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def mean_curve(ax, curves, variant, metric, label):
    """Plot ``metric`` against the step for ``variant``, averaged over its seeds (nothing if it has no runs)."""
    points = [c for c in curves if c["variant"] == variant]
    steps = sorted({c["step"] for c in points})
    if steps:
        ax.plot(steps, [np.mean([c[metric] for c in points if c["step"] == s]) for s in steps], label=label)


def figures(output, rows, curves, variants):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, metric in zip(axes.ravel(), METRICS):
        for x, variant in enumerate(variants):
            values = [r[metric] for r in rows if r["variant"] == variant]
            if values:
                ax.bar(x, np.mean(values), color="#ccd", width=0.6)
                ax.plot(np.full(len(values), x) + np.linspace(-0.15, 0.15, len(values)), values, "o", color="k", ms=4)
        ax.set_xticks(range(len(variants)), variants, rotation=30)
        lo = min(r[metric] for r in rows)
        ax.set_ylim(bottom=min(0.0, lo))
        ax.set_title(metric)
    fig.suptitle("each run a dot (one per seed), the bar the mean")
    fig.tight_layout()
    fig.savefig(Path(output) / "results.png", dpi=80)
    plt.close(fig)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, metric in zip(axes[:2], ("mlm_top1", "rtd_auc")):
        for variant in variants:
            mean_curve(ax, curves, variant, metric, label=variant)
        ax.set_title(f"held-out {metric} (mean over seeds)")
    for ax, metric in zip(axes[2:], ("cos_generator", "cos_discriminator")):
        for variant, name in (("full", "GDES"), ("es", "ES"), ("nes", "NES")):
            mean_curve(ax, curves, variant, metric, label=name)
        ax.set_title(metric.replace("cos_", "embedding similarity, "))
    for ax in axes:
        ax.set_xlabel("step")
        if ax is not axes[1] and ax.get_legend_handles_labels()[0]:  # one legend for the two held-out panels
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(output) / "curves.png", dpi=80)
    plt.close(fig)


def write(output, rows, runs, settings):
    """All of the module docstring's files in ``output``, from the runs' metrics and histories."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    variants = [v for v in settings["variants"] if any(r["variant"] == v for r in rows)]
    rows = sorted(rows, key=lambda r: (variants.index(r["variant"]), r["seed"]))
    write_csv(output / "results.csv", rows)
    curves = curves_of(rows, runs)
    write_csv(output / "curves.csv", curves)
    summary = summarise(rows, variants)
    write_csv(output / "summary.csv", summary)
    (output / "settings.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    figures(output, rows, curves, variants)
    readme = output / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if START in text and END in text:
            head, rest = text.split(START, 1)
            readme.write_text(head + START + "\n" + markdown_table(summary, variants) + "\n" + END
                              + rest.split(END, 1)[1], encoding="utf-8")
    return summary
