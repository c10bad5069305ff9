# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13. Ablations: one switch at a time, over seeds
#
# How do we know that disentangled attention, the Enhanced Mask Decoder or gradient-disentangled embedding
# sharing are worth having? Not from the equations: from **ablations**. DeBERTa's paper pre-trains its base
# model again with one part removed at a time (without the EMD, without content-to-position attention, without
# position-to-content attention) and compares the variants downstream; DeBERTaV3's compares ELECTRA's embedding
# sharing (ES), no sharing (NES) and its gradient-disentangled sharing (GDES), and looks at how alike the
# generator's and the discriminator's word embeddings end up under each (the average cosine similarity
# between the embeddings of different words). Each claim rests on the same design: **remove one thing, keep
# everything else equal**, and look at the difference.
#
# Two questions decide whether such a difference means anything:
#
# 1. *Was everything else really equal?* Same size, same data in the same order, same token budget, same
#    masks, same fine-tuning protocol; only the switch changed.
# 2. *Is the difference larger than what chance alone does?* Pre-train the same model twice with two seeds
#    and the numbers differ. A difference between variants must be read against that spread.
#
# `python -m minideberta ablate` (`minideberta/apps/pretrain/ablate.py`, read its docstring) runs six variants at one
# small size (`ablate.SIZES["default"]`, printed below: a model of width 128, minutes of CPU per run) over three
# seeds, and writes what it measured to `experiments/ablations/` (`apps/pretrain/ablate_report.py`). The papers' own tables,
# with their sources, are beside the results in `experiments/ablations/README.md`; this chapter is about how to
# run and read such an experiment, on a scale a laptop affords.
#
# Sections: 1. the variants; 2. what each switch removes, in the code; 3. how to read a difference against the
# spread over seeds; 4. the committed results; 5. a tiny ablation, live.

# %%
import os
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm's, on importing pretrain outside Jupyter
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads: these matrices are too small for threads
os.environ.setdefault("OMP_NUM_THREADS", "1")

import csv  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import minideberta  # noqa: E402
from minideberta import DebertaV2Config, DebertaV2Model, DebertaV2Tokenizer, attention, encoder, masked_lm  # noqa: E402
from minideberta.apps.pretrain import (  # noqa: E402
    ablate,
    ablate_report,
    rtd,  # noqa: E402
)
from minideberta.apps.pretrain import cli as pretrain_cli  # noqa: E402
from minideberta.apps.pretrain import evaluate as pretrain_eval  # noqa: E402
from minideberta.apps.pretrain.loop import pack, pretrain  # noqa: E402
from minideberta.params import subtree  # noqa: E402

np.set_printoptions(linewidth=120, precision=4, suppress=True)
REPO = Path(minideberta.__file__).resolve().parents[1]      # the checkout: experiments/, tasks/, weights/

# %% [markdown]
# ## 1. The variants
#
# `ablate.VARIANTS` is the whole experiment design: each variant is the full model (GDES, c2p and p2c, the EMD
# in the generator) with **one** setting changed. Everything else (`ablate.SIZES["default"]`, the seeds, the
# data) is shared by all of them.

# %%
for name, change in ablate.VARIANTS.items():
    print(f"{name:>7}: {change or 'nothing (the reference)'}")
print("size and budget:", {k: ablate.SIZES["default"][k] for k in ("hidden_size", "layers", "generator_layers",
                                                                  "batch_size", "seq_len", "steps")})
assert ablate.VARIANTS["full"] == {} and all(len(change) == 1 for name, change in ablate.VARIANTS.items()
                                             if name != "full")   # one switch per variant, no more


# %% [markdown]
# ## 2. What each switch removes
#
# Read the lines that a switch turns off. `lines_of(obj, *needles)` prints, with its line number, each line of
# `obj`'s source that contains a needle, and fails if a needle is missing (so this chapter notices when the
# code it points at moves).

# %%
def lines_of(obj, *needles):
    source, first = inspect.getsourcelines(obj)
    name = Path(inspect.getsourcefile(obj)).relative_to(REPO)
    for needle in needles:
        assert any(needle in line for line in source), f"{needle!r} is no longer in {name}"
    for number, line in enumerate(source, start=first):
        if any(needle in line for needle in needles):
            print(f"{name}:{number}: {line.strip()}")

# %% [markdown]
# ### 2.1 Without c2p, without p2c
#
# `pos_att_type` lists the position terms an attention layer adds to the content-to-content score $Q_i \cdot K_j$
# (chapter 06): **c2p**, $Q_i \cdot K^r_{\delta(i,j)}$, the query's *content* asking about the *distance* to the key
# ("what lies two tokens to my left?"), and **p2c**, $K_j \cdot Q^r_{\delta(i,j)}$, the key's content answering for
# a distance ("I matter to whoever is two tokens to my right"). The variant `no-c2p` sets `pos_att_type="p2c"`
# in both models: the c2p term is not computed, and the scale becomes $1/\sqrt{2d}$ instead of $1/\sqrt{3d}$.
# With `share_att_key` (v3) the position vectors are made by the layer's own key and query projections, so
# **no weight is removed**: the same parameters, one dot product fewer. Checked on a small random layer
# (float64), each variant's attention probabilities against the softmax of the sum it should compute. First the
# lines of `attention.forward` that the switch acts on:

# %%
lines_of(attention.forward, "terms = ", "scale = ", "c2p = c2p_scores", "p2c = p2c_scores", "scores = (")


def small_config(pos_att_type):
    return DebertaV2Config(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64, relative_attention=True,
                           position_buckets=8, pos_att_type=pos_att_type, share_att_key=True,
                           norm_rel_ebd="layer_norm", position_biased_input=False, initializer_range=0.3)


def softmax(scores):
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


full_model = DebertaV2Model(small_config("p2c|c2p"), seed=0, dtype=np.float64)
N, d = 10, full_model.config.attention_head_size
x = full_model(np.random.default_rng(0).integers(1, 100, size=(1, N)), output_hidden_states=True).hidden_states[0]
layer = subtree(full_model.params, "encoder.layer.0.attention.self")
for terms in ("p2c|c2p", "p2c", "c2p"):
    config = small_config(terms)
    assert DebertaV2Model(config, params=full_model.params, dtype=np.float64).num_parameters() \
        == full_model.num_parameters()                                  # the same weights, whatever the terms
    relative = encoder.relative_embeddings_forward(subtree(full_model.params, "encoder"), config, N)
    _, cache = attention.forward(layer, x, None, config, relative.table, relative.rows)
    heads = config.num_attention_heads
    c2c = cache.q.reshape(1, N, heads, d).transpose(0, 2, 1, 3) @ cache.k.reshape(1, N, heads, d).transpose(0, 2, 3, 1)
    c2p = attention.c2p_scores(cache.q, cache.pos["c2p"]) if "c2p" in cache.terms else 0
    p2c = attention.p2c_scores(cache.k, cache.pos["p2c"]) if "p2c" in cache.terms else 0
    expected = softmax((c2c + c2p + p2c) / math.sqrt(d * (1 + len(cache.terms))))
    np.testing.assert_allclose(attention.probabilities(cache), expected, rtol=1e-12, atol=1e-15)
    print(f"pos_att_type {terms!r:>10}: terms {cache.terms}, scale 1/sqrt({1 + len(cache.terms)}d), "
          f"{full_model.num_parameters()} parameters")

# %% [markdown]
# What the model loses: without c2p a token can no longer choose *where* to look from *what it is* (an adjective
# cannot ask for the word right after it); relative position still enters through p2c, from the key's side.
# Without p2c, the converse. Neither variant loses the relative positions altogether: that would take removing
# both, which neither paper does.
#
# ### 2.2 Without the Enhanced Mask Decoder
#
# A v3 model has no absolute positions in its input (`position_biased_input=False`); the only place they enter
# is the EMD (chapter 08), which adds the absolute position embeddings to the queries of the last layer (applied
# twice) just before the masked-LM head. The generator uses the EMD when it *holds* that table (`resolve_emd`),
# and `build_models` gives it the table or not:

# %%
lines_of(masked_lm.DebertaV2ForMaskedLM.resolve_emd, "available = ", "return available")
lines_of(rtd.generator_forward, "use_emd=")
lines_of(pretrain_cli.build_models, "optional_shapes")
g_config, d_config = pretrain_cli.model_configs(100, hidden_size=32, layers=2, generator_layers=1, heads=2,
                                                position_buckets=8, max_position_embeddings=64)
with_emd, _ = pretrain_cli.build_models(g_config, d_config, seed=0, emd=True)
without_emd, _ = pretrain_cli.build_models(g_config, d_config, seed=0, emd=False)
assert with_emd.resolve_emd(None) and not without_emd.resolve_emd(None)
assert all(np.array_equal(without_emd.params[k], with_emd.params[k]) for k in without_emd.params)  # same start
assert with_emd.num_parameters() - without_emd.num_parameters() == 64 * 32   # the (positions, D) table
print("generator parameters with the EMD:", with_emd.num_parameters(), " without:", without_emd.num_parameters(),
      "(every other weight equal: the seed draws the table last)")

# %% [markdown]
# What the generator loses: every notion of absolute position (it knows how far apart two tokens are, not where
# in the sequence they stand). The discriminator has no EMD in either variant, so this switch reaches it only
# through the generator's samples: an ablation in an RTD set-up measures something other than the same switch
# in DeBERTa's masked-LM set-up, a difference to keep in mind when the results are compared with the paper.
#
# ### 2.3 ES and NES instead of GDES
#
# Chapter 10, section 4 checks every gradient arrow of the three sharing schemes. The switch itself sits in two
# places in `apps/pretrain/rtd.py`: which tables `Pretrainer` trains, and where the discriminator's gradient
# for its word embeddings goes:

# %%
lines_of(rtd.Pretrainer.__init__, "if sharing == ", "discriminator.params[WORD] = ",
         "self.params[f\"discriminator.{WORD}\"] = ", "self.params[f\"discriminator.{DELTA}\"] = ")
print()
print(inspect.getsource(rtd.share_embedding_gradients).split('"""')[-1].strip("\n"))
trained = {"gdes": [f"generator.{rtd.WORD}", f"discriminator.{rtd.DELTA}"], "es": [f"generator.{rtd.WORD}"],
           "nes": [f"generator.{rtd.WORD}", f"discriminator.{rtd.WORD}"]}
for sharing in rtd.SHARING:
    g, dsc = pretrain_cli.build_models(g_config, d_config, seed=0)
    tables = [k for k in rtd.Pretrainer(g, dsc, sharing).params if "word_embeddings" in k]
    print(f"{sharing:>4}: trains {tables}")
    assert tables == trained[sharing]
    assert (dsc.params[rtd.WORD] is g.params[rtd.WORD]) == (sharing == "es")  # ES: one table, read by both

# %% [markdown]
# What each loses: ES keeps one table that both losses pull on (the "tug-of-war" DeBERTaV3 describes); NES
# keeps two tables, so the discriminator's embeddings learn only from its own binary task and nothing the
# generator learns about words reaches them. GDES reads the generator's table in the discriminator but lets
# the RTD loss move only $E_\Delta$.
#
# ### 2.4 The embedding similarity
#
# DeBERTaV3's analysis of the sharing schemes: the mean cosine similarity over all pairs of different words'
# embeddings (the special tokens left out). `ablate.mean_pairwise_cosine` does it without the $V \times V$ matrix,
# through $\sum_{i \ne j} u_i \cdot u_j = \lVert\sum_i u_i\rVert^2 - V$ for unit rows $u_i$; checked against the
# pairs on a small table:

# %%
table = np.random.default_rng(1).normal(size=(50, 8)) + 0.2
u = table / np.linalg.norm(table, axis=1, keepdims=True)
all_pairs = (u @ u.T)[~np.eye(50, dtype=bool)]
assert abs(ablate.mean_pairwise_cosine(table) - all_pairs.mean()) < 1e-12
print(f"mean pairwise cosine: {ablate.mean_pairwise_cosine(table):.4f} (over {all_pairs.size} ordered pairs)")

# %% [markdown]
# Under ES the generator and the discriminator read the same table, so their two numbers are equal by
# construction; under NES and GDES they can drift apart.
#
# ## 3. Reading a difference against the spread over seeds
#
# A seed fixes the initial weights, the order of the batches, the masks and the generator's samples, and the
# order of the fine-tuning batches. Two runs that differ only in their seed give different numbers; with $n$
# seeds per variant we can measure that spread:
#
# $$\bar x = \frac1n \sum_s x_s, \qquad s_x = \sqrt{\frac{1}{n-1}\sum_s (x_s - \bar x)^2}.$$
#
# **Pairing.** `ablate.py` runs every variant with the *same* seeds, and a seed does the same things to each
# variant (same initial weights wherever the shapes agree, same data order, same masks). A lucky seed lifts both
# runs, so compare within the seed: $d_s = x^{\text{variant}}_s - x^{\text{full}}_s$. Its spread is
# $\operatorname{Var}(d) = \operatorname{Var}(x^{\text{variant}}) + \operatorname{Var}(x^{\text{full}}) -
# 2\operatorname{Cov}$: the more the seed decides, the larger the covariance, and the more pairing removes.
#
# **The paired t statistic** is the mean difference in units of its standard error, with $n - 1$ degrees of freedom:
#
# $$t = \frac{\bar d}{s_d / \sqrt n}.$$
#
# With $n = 3$ seeds (2 degrees of freedom) the t distribution has a closed form, and the two-sided p-value is
# $p = 1 - |t| / \sqrt{t^2 + 2}$. A difference is "significant at 5%" only when $|t| > 4.30$: the mean
# difference must exceed about 2.5 times the spread of the differences ($4.30/\sqrt 3$). That is a high bar,
# and it is the honest one for 3 seeds.
#
# Three more cautions. A *t* says whether a difference is distinguishable from zero, not whether it is *large*: a
# tiny difference that every seed repeats exactly has a huge *t*. With 5 variants and 6 metrics, 30 comparisons are
# made: at $p < 0.05$ about 1.5 of them come out "significant" by chance alone. And a null result at this scale
# says that *this* budget cannot see the effect, not that the effect is absent.

# %%
def paired(variant, full):
    """By hand: mean and spread of each side, and the paired comparison (d = variant - full, seed by seed)."""
    a, b = np.asarray(variant, dtype=np.float64), np.asarray(full, dtype=np.float64)
    n, diff = len(a), a - b
    out = {"n": n, "mean": a.sum() / n, "full_mean": b.sum() / n, "diff_mean": diff.sum() / n}
    if n > 1:
        out["std"] = math.sqrt(((a - out["mean"]) ** 2).sum() / (n - 1))
        out["full_std"] = math.sqrt(((b - out["full_mean"]) ** 2).sum() / (n - 1))
        out["diff_std"] = math.sqrt(((diff - out["diff_mean"]) ** 2).sum() / (n - 1))
        if out["diff_std"] > 0:
            out["t"] = out["diff_mean"] / (out["diff_std"] / math.sqrt(n))
            out["p"] = 2 * stats.t.sf(abs(out["t"]), n - 1)
    return out


critical = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))        # |t| / sqrt(t^2 + 2) = 0.95  <=>  p = 0.05 at df 2
assert abs(critical - stats.t.ppf(0.975, 2)) < 1e-12
print(f"critical |t| at p = 0.05, 2 degrees of freedom: {critical:.3f}")
for t in (1.0, 2.0, critical, 10.0):                  # the closed form against scipy's t distribution
    assert abs((1 - t / math.sqrt(t * t + 2)) - 2 * stats.t.sf(t, 2)) < 1e-12

# %% [markdown]
# ## 4. The committed results
#
# `experiments/ablations/` holds what `ablate` measured: `results.csv` (one row per run: `variant`, `seed`, the
# held-out numbers, the embedding similarities, the topic task's test accuracy), `curves.csv` (every held-out
# evaluation during pre-training) and `summary.csv` (per variant and metric: mean, spread, and the comparison with
# `full` paired by seed). The metrics, higher is better for all but the similarities:
#
# - `mlm_top1`: the generator's masked-token top-1 accuracy on held-out text;
# - `rtd_auc`, `rtd_auc_random`: the discriminator's ROC AUC on its own generator's replacements, and on uniformly
#   random ones (chapter 10, section 5);
# - `topic_test`: test accuracy of the discriminator fine-tuned on the topic task, one protocol for every run;
# - `cos_generator`, `cos_discriminator`: section 2.4 on each model's word embeddings.

# %%
RESULTS = REPO / "experiments" / "ablations"


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: (v if k in ("variant", "metric") else float(v)) for k, v in row.items()} for row in rows]


have_results = (RESULTS / "results.csv").is_file()
if have_results:
    runs, summary = read_csv(RESULTS / "results.csv"), read_csv(RESULTS / "summary.csv")
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    metrics = ablate_report.METRICS
    seeds = sorted({int(r["seed"]) for r in runs})
    print(f"{len(runs)} runs: variants {variants}, seeds {seeds}")
    print(f"{'variant':>8} " + " ".join(f"{m:>19}" for m in metrics))
    for variant in variants:
        cells = []
        for metric in metrics:
            values = [r[metric] for r in runs if r["variant"] == variant]
            spread = f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else " (1 seed)"
            cells.append(f"{np.mean(values):.4f}{spread}")
        print(f"{variant:>8} " + " ".join(f"{c:>19}" for c in cells))
else:
    print(f"{RESULTS / 'results.csv'} not found: run python -m minideberta ablate (its docstring) to make it")

# %% [markdown]
# Every run a dot, coloured by its seed, the mean over seeds a line. Read the distance between two means
# against the vertical scatter of the dots around them before anything else. (The axes are zoomed on the runs:
# look at their scales.)

# %%
if have_results:
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, metric in zip(axes.ravel(), metrics):
        for i, variant in enumerate(variants):
            mine = [r for r in runs if r["variant"] == variant]
            ax.plot([i - 0.3, i + 0.3], [np.mean([r[metric] for r in mine])] * 2, "-", color="k", lw=1.5)
            for r, offset in zip(mine, np.linspace(-0.15, 0.15, len(mine))):
                ax.plot(i + offset, r[metric], "o", color=f"C{int(r['seed'])}", ms=4)
        low, high = min(r[metric] for r in runs), max(r[metric] for r in runs)
        ax.set_ylim(low - 0.3 * (high - low + 1e-9), high + 0.3 * (high - low + 1e-9))   # zoomed on the runs
        ax.set_xticks(range(len(variants)), variants, rotation=30)
        ax.set_title(metric)
    fig.suptitle("experiments/ablations/results.csv: each run a dot (a colour per seed), the line the mean over seeds "
                 "(zoomed axes)")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# Now the paired comparison, by hand from `results.csv` with section 3's `paired`, checked against
# `scipy.stats.ttest_rel` on the same numbers and against `summary.csv` (which `ablate_report` computed from the
# unrounded values; the CSV files keep 5 significant digits, so the check allows for that rounding).

# %%
comparisons, checked_t = {}, 0
if have_results:
    cell = {(s["variant"], s["metric"]): s for s in summary}
    for variant in variants[1:]:
        for metric in metrics:
            mine = {r["seed"]: r[metric] for r in runs if r["variant"] == variant}
            base = {r["seed"]: r[metric] for r in runs if r["variant"] == "full"}
            common = sorted(set(mine) & set(base))
            if not common:
                continue
            result = comparisons[variant, metric] = paired([mine[s] for s in common], [base[s] for s in common])
            row = cell[variant, metric]
            assert row["seeds"] == len(mine) and abs(row["diff_mean"] - result["diff_mean"]) < 2e-5
            if "t" in result:
                scipy_t = stats.ttest_rel([mine[s] for s in common], [base[s] for s in common])
                assert math.isclose(result["t"], scipy_t.statistic, rel_tol=1e-9)
                assert math.isclose(result["p"], scipy_t.pvalue, rel_tol=1e-6, abs_tol=1e-12)
                # rounding to 5 digits moves each d_s by up to 1e-5: t is comparable only where d is far larger
                if abs(result["diff_mean"]) > 1e-4 and result["diff_std"] > 1e-4:
                    slack = abs(result["t"]) * (1e-5 / abs(result["diff_mean"]) + 2e-5 / result["diff_std"])
                    assert abs(row["t"] - result["t"]) <= 2 * slack, (variant, metric, row["t"], result["t"])
                    checked_t += 1
    print(f"{len(comparisons)} paired comparisons checked against summary.csv and ttest_rel, {checked_t} of them by t"
          + (" (the others' differences are too close to the CSV's rounding to recompute t)"
             if checked_t < len(comparisons) else ""))
    print(f"{'variant':>8} {'metric':>18} {'seeds':>5} {'mean d':>10} {'sd of d':>9} {'t':>7} {'p':>6}")
    for (variant, metric), c in comparisons.items():
        print(f"{variant:>8} {metric:>18} {c['n']:5d} {c['diff_mean']:+10.2e} {c.get('diff_std', math.nan):9.2e}"
              f" {c.get('t', math.nan):7.2f} {c.get('p', math.nan):6.3f}"
              + ("  beyond the seed noise (|t| > 4.30)" if c["n"] == 3 and abs(c.get("t", 0)) > critical else ""))

# %% [markdown]
# The pairing drawn: for one metric, each seed is a line from its `full` run to its run of the variant. Lines that
# are parallel (all going the same way by about the same amount) are a consistent effect, however far apart the
# seeds lie; lines that cross are noise.

# %%
if have_results:
    shown = ["rtd_auc", "topic_test"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.6))
    for ax, metric in zip(axes, shown):
        for seed in seeds:
            by = {r["variant"]: r[metric] for r in runs if int(r["seed"]) == seed}
            xs = [i for i, v in enumerate(variants) if v in by]
            for i in xs[1:]:
                ax.plot([0, i], [by["full"], by[variants[i]]], "-", color=f"C{seed}", lw=0.8, alpha=0.7)
            ax.plot(xs, [by[variants[i]] for i in xs], "o", color=f"C{seed}", ms=4, label=f"seed {seed}")
        ax.set_xticks(range(len(variants)), variants)
        ax.set_title(f"{metric}: each seed's variants joined to its full run")
        ax.legend(fontsize=7)
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ### DeBERTaV3's embedding analysis, over training
#
# `curves.csv` holds the similarity at every held-out evaluation, for every run: below, each seed a thin line,
# the mean a thick one, for the three sharing schemes (`full` is GDES).

# %%
if have_results:
    curves = read_csv(RESULTS / "curves.csv")
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), sharey=True)
    for ax, metric in zip(axes, ("cos_generator", "cos_discriminator")):
        for color, (variant, label) in enumerate((("full", "GDES"), ("es", "ES"), ("nes", "NES"))):
            points = [c for c in curves if c["variant"] == variant]
            for seed in sorted({c["seed"] for c in points}):
                mine = [c for c in points if c["seed"] == seed]
                ax.plot([c["step"] for c in mine], [c[metric] for c in mine], color=f"C{color}", lw=0.6, alpha=0.5)
            steps = sorted({c["step"] for c in points})
            if steps:
                ax.plot(steps, [np.mean([c[metric] for c in points if c["step"] == s]) for s in steps], "o-",
                        color=f"C{color}", lw=2, ms=3, label=label)
        ax.set_title(metric.replace("cos_", "mean pairwise cosine of the word embeddings: "))
        ax.set_xlabel("pre-training step")
        ax.legend()
    plt.tight_layout()
    plt.show()
    es_points = [c for c in curves if c["variant"] == "es"]
    assert all(c["cos_generator"] == c["cos_discriminator"] for c in es_points)   # ES: one table (section 2.4)
    for variant in ("full", "es", "nes"):
        final = [r for r in runs if r["variant"] == variant]
        if final:
            g_cos, d_cos = (np.mean([r[k] for r in final]) for k in ("cos_generator", "cos_discriminator"))
            print(f"{variant:>4}: at the end, generator {g_cos:.4f}, discriminator {d_cos:.4f} "
                  f"(mean over {len(final)} seeds)")

# %% [markdown]
# **What this run shows** (the next cell checks each sentence against `summary.csv`; the discussion beside the
# papers' numbers is in `experiments/ablations/README.md`):
#
# - **DeBERTaV3's embedding analysis reproduces, far outside the noise.** Under NES the discriminator's table,
#   trained by RTD alone, stays nearly isotropic while the generator's ends far more self-similar; under GDES the
#   discriminator's table (E_G + E_Delta) stays close to the generator's; under ES the one shared table ends unlike
#   either. These differences are tens of times the spread between seeds, $|t|$ far above 4.30.
# - **The sharing schemes do not differ in quality here**: no top-1, AUC or topic difference of ES or NES from GDES
#   passes $|t| > 4.30$.
# - **Without the EMD the generator is weaker on average** (its mean top-1 is lower by several times the full
#   model's spread) but not significantly over three seeds: one of them caught up.
# - **The attention ablations**: without c2p nothing passes; without p2c a few differences pass, small ones, among 30
#   tests with 3 seeds (one or two such "passes" are expected by chance alone).
#
# Read with care in any case: at this scale the models are far from converged, so a switch that matters after
# hundreds of thousands of steps of a base model may not show in a few thousand steps of a tiny one, and one
# that shows may be about the *speed* of learning rather than where it ends.

# %%
if have_results:
    cell = {(row["variant"], row["metric"]): row for row in summary}
    full_spread = cell[("full", "mlm_top1")]["std"]


    def passes(variant, metric):
        return abs(cell[(variant, metric)]["t"]) > 4.303


    print("mean similarity, generator / discriminator: NES", round(cell[("nes", "cos_generator")]["mean"], 3),
          round(cell[("nes", "cos_discriminator")]["mean"], 3), "| GDES", round(cell[("full", "cos_generator")]["mean"], 3),
          round(cell[("full", "cos_discriminator")]["mean"], 3), "| ES (one table)", round(cell[("es", "cos_generator")]["mean"], 3))
    for scheme in ("full", "nes"):  # a generator more self-similar than its discriminator
        assert cell[(scheme, "cos_generator")]["mean"] > cell[(scheme, "cos_discriminator")]["mean"]
    nes_gap = cell[("nes", "cos_generator")]["mean"] - cell[("nes", "cos_discriminator")]["mean"]
    gdes_gap = cell[("full", "cos_generator")]["mean"] - cell[("full", "cos_discriminator")]["mean"]
    assert gdes_gap < nes_gap / 5  # the gap is far smaller under GDES
    assert cell[("es", "cos_generator")]["mean"] < min(cell[("full", "cos_discriminator")]["mean"],
                                                       cell[("nes", "cos_generator")]["mean"]) / 2
    for key in (("es", "cos_generator"), ("nes", "cos_discriminator")):
        assert passes(*key) and abs(cell[key]["diff_mean"]) > 10 * cell[("full", key[1])]["std"], key
    quality = ("mlm_top1", "rtd_auc", "rtd_auc_random", "topic_test")
    for variant in ("es", "nes"):
        assert not any(passes(variant, m) for m in quality), variant
    emd = cell[("no-emd", "mlm_top1")]
    assert emd["diff_mean"] < -3 * full_spread and not passes("no-emd", "mlm_top1")
    assert max(r["mlm_top1"] for r in runs if r["variant"] == "no-emd") >= 0.8 * min(
        r["mlm_top1"] for r in runs if r["variant"] == "full")  # the seed that caught up
    assert not any(passes("no-c2p", m) for m in metrics)
    p2c = [m for m in quality if passes("no-p2c", m)]
    print("no-p2c differences past |t| 4.30:", {m: round(cell[("no-p2c", m)]["diff_mean"], 4) for m in p2c})
    assert 0 < len(p2c) <= 3 and all(abs(cell[("no-p2c", m)]["diff_mean"]) < 0.06 for m in p2c)

# %% [markdown]
# ## 5. A tiny ablation, live
#
# The same design in a few seconds: `full` against `no-c2p`, three seeds each, a model of width 32 (a 2-layer
# discriminator, a 1-layer generator), 10 steps of 8 x 32 tokens, through the same functions `ablate.py` calls
# (`model_configs`, `build_models`, `Pretrainer`, `pretrain`). It trains on the definitions in `tasks/sample` with
# the shipped model's vocabulary, and is measured on the everyday sentences of `minideberta/data/everyday` (never
# trained on). Far too short to learn much: what it shows is how the numbers of one switch compare with the
# numbers of one seed.

# %%
tokenizer = DebertaV2Tokenizer.from_pretrained(REPO / "weights" / "minideberta-v3-tiny")   # the shipped vocabulary
definitions = [json.loads(line)["text"] for task in ("topic", "pos", "hypernymy")
               for line in (REPO / "tasks" / "sample" / task / "train.jsonl").read_text(encoding="utf-8").splitlines()]
everyday = (REPO / "minideberta" / "data" / "everyday" / "sentences.txt").read_text(encoding="utf-8").splitlines()


def chunks(lines, seq_len=32):
    return pack(tokenizer(lines, add_special_tokens=False)["input_ids"], seq_len, tokenizer.cls_token_id,
                tokenizer.sep_token_id)


train_ids, heldout_ids = chunks(definitions), chunks(everyday)
counts = pretrain_eval.token_counts(train_ids, len(tokenizer))
special = rtd.special_ids(tokenizer)
print(f"train {train_ids.shape} and held-out {heldout_ids.shape} chunks of token ids; vocabulary {len(tokenizer)}")


def tiny_run(variant, seed, steps=10):
    switches = {"sharing": "gdes", "pos_att_type": "p2c|c2p", "emd": True, **ablate.VARIANTS[variant]}
    g_config, d_config = pretrain_cli.model_configs(len(tokenizer), hidden_size=32, layers=2, generator_layers=1,
                                                    heads=2, position_buckets=16, max_position_embeddings=64,
                                                    pos_att_type=switches["pos_att_type"])
    generator, discriminator = pretrain_cli.build_models(g_config, d_config, seed, emd=switches["emd"])
    trainer = rtd.Pretrainer(generator, discriminator, switches["sharing"], 50.0, special_ids=special,
                             mask_id=tokenizer.mask_token_id)
    history = pretrain(trainer, train_ids, heldout_ids, counts, steps=steps, batch_size=8, lr=3e-3, warmup_steps=2,
                       seed=seed, eval_every=steps, eval_sequences=16, progress=False, log=lambda line: None)
    return {k: history["eval"][k][-1] for k in ("mlm_loss", "rtd_loss", "mlm_top1", "rtd_auc")}


live_variants, live_seeds = ("full", "no-c2p"), (0, 1, 2)
live = {(v, s): tiny_run(v, s) for v in live_variants for s in live_seeds}
print(f"{'variant':>7} {'seed':>4} " + " ".join(f"{k:>9}" for k in live["full", 0]))
for (v, s), numbers in live.items():
    print(f"{v:>7} {s:>4} " + " ".join(f"{x:9.5f}" for x in numbers.values()))
assert all(math.isfinite(x) for numbers in live.values() for x in numbers.values())

# %% [markdown]
# The paired comparison of section 3 on these six runs, checked against `scipy.stats.ttest_rel` and against the
# closed form for 3 seeds:

# %%
live_stats = {}
for metric in ("mlm_loss", "rtd_auc"):
    a, b = [live["no-c2p", s][metric] for s in live_seeds], [live["full", s][metric] for s in live_seeds]
    c = live_stats[metric] = paired(a, b)
    reference = stats.ttest_rel(a, b)
    assert math.isclose(c["t"], reference.statistic, rel_tol=1e-9)
    assert math.isclose(c["p"], reference.pvalue, rel_tol=1e-6)
    assert math.isclose(c["p"], 1 - abs(c["t"]) / math.sqrt(c["t"] ** 2 + 2), rel_tol=1e-9)
    print(f"{metric}: full {c['full_mean']:.5f} ± {c['full_std']:.5f} over seeds; no-c2p - full, paired: "
          f"{c['diff_mean']:+.6f} ± {c['diff_std']:.6f}, t = {c['t']:+.2f}, p = {c['p']:.3f}; "
          f"|mean difference| / spread over seeds = {abs(c['diff_mean']) / c['full_std']:.1e}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for ax, metric in zip(axes, ("mlm_loss", "rtd_auc")):
    for s in live_seeds:
        ax.plot([0, 1], [live["full", s][metric], live["no-c2p", s][metric]], "o-", color=f"C{s}", label=f"seed {s}")
    ax.set_xticks([0, 1], ["full", "no-c2p"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_title(f"held-out {metric} after 10 steps")
    ax.legend(fontsize=7)
fig.suptitle("the seeds lie far apart; each seed's two runs nearly coincide")
plt.tight_layout()
plt.show()

# %% [markdown]
# After 10 steps from the same initial weights the c2p term has had no time to matter: both runs of a seed
# still compute almost the same thing, and the difference between them is a small fraction of the difference
# between seeds. Its *t* can still be anything: tiny differences that every seed repeats give a large one. That is
# section 3's caution made concrete: significance is not size. What is asserted is the size: on both metrics the
# paired difference is less than a tenth of the spread between seeds.

# %%
for metric, c in live_stats.items():
    assert abs(c["diff_mean"]) < 0.1 * c["full_std"], (metric, c)

# %% [markdown]
# ## Questions
#
# 1. Why does `ablate.py` run the variants with the *same* seeds rather than fresh ones for each? What would
#    the spread of the difference $d_s$ be if the seeds were independent?
# 2. With 3 seeds, a difference of 0.01 in `rtd_auc` and differences $d_s$ of 0.012, 0.007 and 0.011: compute *t*
#    by hand. Is it beyond $|t| > 4.30$? And with $d_s$ = 0.030, -0.010, 0.010 (the same mean)?
# 3. In section 5, `no-c2p` and `full` differ after 10 steps by far less than two seeds do. Name one reason the
#    difference could grow with training, and one reason it might not show even in the committed runs.
# 4. The variant `no-emd` changes the generator only. Through which path can it still change the discriminator's
#    numbers (`rtd_auc`, `topic_test`)?
# 5. Under ES, `cos_generator` equals `cos_discriminator` at every step. Why? Which of the other two schemes would
#    you expect to keep the two closer, and why?
#
# Exercises: `python -m minideberta exercises check apps.pretrain.rtd.share_embedding_gradients` (the sharing
# switch of section 2.3) and `python -m minideberta exercises check attention.backward.p2c` (the gradient of the
# term `no-p2c` removes).
