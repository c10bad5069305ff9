"""The training loop: step for step the same as torch + transformers, and a loop that does what it says.

- llm.c-style: 5 steps of AdamW (with the warm-up/decay schedule, weight-decay groups and
  clipping) on a fixed batch give the same loss at every step and the same parameters after
  every step as transformers' DebertaV2ForSequenceClassification trained with torch.optim.AdamW,
  in float64; ``train()`` on that batch follows the same trajectory.
- Gradient accumulation gives the big batch's losses and parameters, also when the micro-batches
  count different numbers of labels.
- A 50-step fine-tune on a small real task lowers the loss clearly.
- A run stopped at a checkpoint and resumed with fresh objects is the run that was not stopped.
- NaN detection names the broken weight; senseless settings are refused before any step.
- The command line fine-tunes a model folder and writes a loadable model.
"""
import importlib.metadata
import json
import re
import shutil
import sys

import numpy as np
import pytest
import torch
import transformers
from transformers.models.deberta_v2 import modeling_deberta_v2

import minideberta
from minideberta.apps.train.cli import main
from minideberta.apps.train.history import History
from minideberta.apps.train.loop import evaluate, example_order, train
from minideberta.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, no_decay_default
from minideberta.tokenizer.deberta_tokenizer import DebertaV2Tokenizer

Cls = minideberta.DebertaV2ForSequenceClassification

# A DeBERTa-v3-shaped model, shrunk: relative attention with log buckets, shared keys, LayerNorm on
# the relative embeddings, no absolute positions.
TINY = dict(vocab_size=80, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, relative_attention=True, position_buckets=8, max_relative_positions=-1,
            norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
            type_vocab_size=0, layer_norm_eps=1e-7, hidden_act="gelu")
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pooler_dropout=0.0)


def tiny_model(seed=0, dtype=np.float64, **overrides):
    return Cls(minideberta.DebertaV2Config(**{**TINY, "num_labels": 3, **overrides}), seed=seed, dtype=dtype)


def random_dataset(n, length, seed, num_labels=3, vocab_size=80):
    """Right-padded random token ids (lengths from 3 to ``length``) and random labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, length + 1, size=n)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, vocab_size, size=(n, length)) * mask
    return {"input_ids": ids, "attention_mask": mask, "labels": rng.integers(0, num_labels, size=n)}


def rel_error(a, b):
    """max |a - b| / max |b| (plain max |a - b| where b is all zeros, as biases are at first)."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / (np.max(np.abs(b)) or 1.0))


# ---- llm.c-style: the trajectory of transformers + torch.optim.AdamW ----
STEPS, LR, WARMUP, WEIGHT_DECAY, MAX_NORM = 5, 2e-3, 2, 0.1, 0.45
LLMC = dict(**TINY, **NO_DROPOUT, num_labels=3, problem_type="single_label_classification")


def exact_scaled_size_sqrt(query_layer, scale_factor):
    return torch.sqrt(torch.tensor(query_layer.size(-1) * scale_factor, dtype=query_layer.dtype))


@pytest.fixture(scope="module")
def torch_run():
    """The reference: transformers' model trained by torch for STEPS steps on one fixed batch.

    Returns the starting state dict, the batch, and per step the loss, the gradient norm and the
    parameters after the update.
    """
    # transformers computes the attention scale sqrt(3d) in float32 even for a float64 model, a 1e-8
    # relative error in every score that would swamp the 1e-10 comparison; minideberta (like
    # Microsoft's original) uses the exact value. The patch makes transformers do the same.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modeling_deberta_v2, "scaled_size_sqrt", exact_scaled_size_sqrt)
        torch.manual_seed(0)
        model = transformers.DebertaV2ForSequenceClassification(transformers.DebertaV2Config(**LLMC)).double().train()
        start = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
        batch = random_dataset(6, 10, seed=1)
        named = dict(model.named_parameters())
        groups = [{"params": [p for k, p in named.items() if not no_decay_default(k)], "weight_decay": WEIGHT_DECAY},
                  {"params": [p for k, p in named.items() if no_decay_default(k)], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=LR)
        scheduler = transformers.get_linear_schedule_with_warmup(optimizer, WARMUP, STEPS)
        inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
        steps = []
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss = model(**inputs).loss
            loss.backward()
            assert all(p.grad is not None for p in named.values()), "every parameter takes part"
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
            optimizer.step()
            scheduler.step()
            steps.append({"loss": loss.item(), "grad_norm": norm.item(),
                          "params": {k: v.detach().numpy().copy() for k, v in named.items()}})
    return start, batch, steps


def model_from_state(start):
    config = minideberta.DebertaV2Config(**LLMC)
    return Cls(config, dtype=np.float64, params={k: start[k].copy() for k in Cls.param_shapes(config)})


def test_five_adamw_steps_match_torch(torch_run):
    start, batch, reference = torch_run
    model = model_from_state(start).train(seed=0)
    optimizer = AdamW(model.params, lr=LR, weight_decay=WEIGHT_DECAY)
    schedule = LinearWarmupSchedule(STEPS, WARMUP)
    norms = [r["grad_norm"] for r in reference]
    assert min(norms) < MAX_NORM < max(norms), f"steps with and without clipping are wanted, norms {norms}"
    for step, expected in enumerate(reference):
        out = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        assert abs(float(out.loss) - expected["loss"]) <= 1e-10 * abs(expected["loss"]), step
        grads = model.backward()
        assert clip_grad_norm(grads, MAX_NORM) == pytest.approx(expected["grad_norm"], rel=1e-10)
        optimizer.lr = LR * schedule(step)
        optimizer.step(grads)
        for name, p in expected["params"].items():
            assert rel_error(model.params[name], p) <= 1e-10, (step, name)


def test_train_follows_the_torch_trajectory(torch_run):
    start, batch, reference = torch_run
    model = model_from_state(start)
    # One batch holding the whole dataset: every step sees the same examples (shuffled, which
    # only reorders a sum).
    history = train(model, batch, steps=STEPS, batch_size=len(batch["labels"]), lr=LR, warmup_steps=WARMUP,
                    weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_NORM, progress=False)
    np.testing.assert_allclose(history.train["loss"], [r["loss"] for r in reference], rtol=1e-10)
    np.testing.assert_allclose(history.train["grad_norm"], [r["grad_norm"] for r in reference], rtol=1e-10)
    assert history.train["lr"] == [LR * LinearWarmupSchedule(STEPS, WARMUP)(s) for s in range(STEPS)]
    for name, p in reference[-1]["params"].items():
        assert rel_error(model.params[name], p) <= 1e-10, name


# ---- data order and gradient accumulation ----
def test_each_epoch_is_a_fresh_permutation():
    stream = example_order(10, 3, 0, 30)
    epochs = stream.reshape(3, 10)
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 3
    np.testing.assert_array_equal(example_order(10, 3, 7, 12), stream[7:19])  # any window of the same stream
    history = train(tiny_model(), random_dataset(10, 5, seed=0), epochs=2, batch_size=4, progress=False)
    assert history.train["step"] == [1, 2, 3, 4, 5] and history.train["epoch"][-1] == 2.0


def test_accumulation_equals_the_big_batch():
    # problem_type None: negative labels are ignored, so micro-batches count different numbers of labels.
    data = random_dataset(16, 9, seed=2)
    data["labels"][[0, 3, 4, 9]] = -1
    runs = {}
    for batch_size, accum in ((8, 1), (2, 4)):
        model = tiny_model(**NO_DROPOUT, num_labels=3)
        history = train(model, data, steps=4, batch_size=batch_size, grad_accum_steps=accum, lr=1e-2,
                        max_grad_norm=None, seed=5, progress=False)
        runs[accum] = history, model.params
    (big, big_params), (accumulated, accumulated_params) = runs[1], runs[4]
    np.testing.assert_allclose(accumulated.train["loss"], big.train["loss"], rtol=1e-13)
    np.testing.assert_allclose(accumulated.train["grad_norm"], big.train["grad_norm"], rtol=1e-12)
    for name, p in big_params.items():
        assert rel_error(accumulated_params[name], p) <= 1e-12, name


# ---- a real task ----
def sentences(text):
    """Sentences of 6-30 words in plain ASCII, whitespace normalised."""
    found = re.split(r"(?<=[.;:!?])\s+", " ".join(text.split()))
    return sorted({s for s in found if 6 <= len(s.split()) <= 30 and re.fullmatch(r"[A-Za-z0-9 ,.;:'\"()/-]+", s)})


def license_or_docs():
    """The task: is a sentence legal text or API documentation? Real English sentences shipped
    with numpy: from the license texts it bundles (label 1) and from the first paragraphs of its
    public functions' docstrings (label 0), 120 of each (fewer if numpy ships fewer)."""
    files = [f for f in importlib.metadata.distribution("numpy").files
             if re.search(r"licen[cs]e|copying", str(f), re.IGNORECASE) and f.suffix in ("", ".txt", ".md")]
    legal = sentences(" ".join(f.read_text(encoding="utf-8") for f in files))
    docs = sentences(" ".join(" ".join(obj.__doc__.strip().split("\n\n")[:2]) for name in dir(np)
                              if not name.startswith("_") and callable(obj := getattr(np, name))
                              and isinstance(obj.__doc__, str)))
    rng = np.random.default_rng(0)
    n = min(len(legal), len(docs), 120)
    assert n >= 60, "numpy ships fewer sentences than expected"
    texts = ([legal[i] for i in rng.choice(len(legal), n, replace=False)]
             + [docs[i] for i in rng.choice(len(docs), n, replace=False)])
    labels = np.array([1] * n + [0] * n)
    order = rng.permutation(2 * n)
    return [texts[i] for i in order], labels[order]


def test_fine_tuning_a_real_task_lowers_the_loss(vocab_file):
    texts, labels = license_or_docs()
    encoded = DebertaV2Tokenizer(vocab_file)(texts, padding=True, truncation=True, max_length=24, return_tensors="np")
    # The official vocabulary has 128100 rows; these texts use about a thousand pieces. Renumbering
    # them 0..V-1 ([PAD] stays 0) keeps the embedding table, and the test, small.
    used = np.union1d(encoded["input_ids"], [0])
    data = {"input_ids": np.searchsorted(used, encoded["input_ids"]), "attention_mask": encoded["attention_mask"],
            "labels": labels}
    split = 3 * len(labels) // 4
    train_set, eval_set = ({k: v[:split] for k, v in data.items()}, {k: v[split:] for k, v in data.items()})
    model = tiny_model(seed=0, dtype=np.float32, vocab_size=len(used), num_labels=2)
    before = evaluate(model, eval_set)
    history = train(model, train_set, eval_set, steps=50, batch_size=16, lr=3e-3, warmup_steps=5, eval_every=25,
                    seed=0, progress=False)
    losses = history.train["loss"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses
    assert history.eval["loss"][-1] < 0.5 * before["loss"], (before, history.eval)
    assert history.eval["accuracy"][-1] >= 0.85, history.eval


# ---- checkpoints ----
def test_resume_continues_the_same_trajectory(tmp_path):
    """(train 10 steps) == (train, checkpoint at 5, resume in fresh objects, train to 10), bit for bit,
    with dropout, accumulation, warm-up, shuffling across epochs and evaluations along the way."""
    data, eval_set = random_dataset(12, 8, seed=3), random_dataset(5, 8, seed=4)
    settings = dict(steps=10, batch_size=2, grad_accum_steps=2, lr=5e-3, warmup_steps=3, seed=7, progress=False)
    model = tiny_model(seed=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    straight = train(model, data, eval_set, eval_every=3, checkpoint_dir=tmp_path, save_every=5, **settings)

    assert sorted(p.name for p in (tmp_path / "checkpoint-5").iterdir()) == [
        "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]
    fresh = tiny_model(seed=99, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    resumed = train(fresh, data, eval_set, eval_every=3, resume_from=tmp_path / "checkpoint-5", **settings)
    assert resumed.to_dict() == straight.to_dict()
    for name, p in model.params.items():
        np.testing.assert_array_equal(fresh.params[name], p, err_msg=name)

    # Evaluations and checkpoints leave the trajectory alone (dropout draws included).
    quiet = tiny_model(seed=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    assert train(quiet, data, **settings).train == straight.train
    for name, p in model.params.items():
        np.testing.assert_array_equal(quiet.params[name], p, err_msg=name)

    reloaded = Cls.from_pretrained(tmp_path / "checkpoint-10", dtype=np.float64)
    for name, p in model.params.items():
        np.testing.assert_array_equal(reloaded.params[name], p, err_msg=name)

    # Resuming with other settings is allowed, but said; a model of another dtype is refused.
    with pytest.warns(UserWarning, match="steps: 10 -> 11, lr: 0.005 -> 0.001"):
        train(tiny_model(), data, resume_from=tmp_path / "checkpoint-10", **{**settings, "steps": 11, "lr": 1e-3})
    with pytest.raises(ValueError, match="the checkpoint holds float64"):
        train(tiny_model(dtype=np.float32), data, resume_from=tmp_path / "checkpoint-5", **settings)


# ---- bad input ----
def test_detect_anomalies_names_the_nan_weight():
    data = random_dataset(8, 6, seed=5)
    broken = "deberta.encoder.layer.1.attention.self.value_proj.weight"
    model = tiny_model()
    model.params[broken][3, 4] = np.nan
    expected = rf"at step 1: the loss is nan(.|\n)*the first is '{re.escape(broken)}' \(1 NaN, 0 inf"
    with pytest.raises(FloatingPointError, match=expected):
        train(model, data, steps=3, batch_size=4, detect_anomalies=True, progress=False)
    # Without the check the loop goes on, as torch does; the history shows the damage.
    assert np.isnan(train(model, data, steps=1, batch_size=4, progress=False).train["loss"]).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(lr=0.0), "lr=0.0"), (dict(lr=float("nan")), "lr=nan"), (dict(lr=-1e-4), "lr=-0.0001"),
    (dict(warmup_steps=11), "warmup_steps=11"), (dict(warmup_steps=-1), "warmup_steps=-1"),
    (dict(steps=0), "steps=0"), (dict(steps=None), "steps=... or as epochs"), (dict(epochs=2), "not both"),
    (dict(batch_size=0), "batch_size=0"), (dict(grad_accum_steps=0), "grad_accum_steps=0"),
    (dict(max_grad_norm=0.0), "max_grad_norm=0.0"), (dict(weight_decay=-0.1), "weight_decay=-0.1"),
    (dict(eval_every=0), "eval_every=0"),
])
def test_senseless_settings_are_refused(kwargs, words):
    model = tiny_model()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=re.escape(words)):
        train(model, random_dataset(4, 5, seed=0), **{"steps": 10, "progress": False, **kwargs})
    assert all(np.array_equal(before[k], v) for k, v in model.params.items()), "no step was taken"


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("labels"), "missing ['labels']"),
    (lambda d: d.update(label=d.pop("labels")), "drop or rename ['label']"),
    (lambda d: d.update(attention_mask=d["attention_mask"][:3]), "one row per example"),
])
def test_malformed_datasets_are_refused(change, words):
    data = random_dataset(4, 5, seed=0)
    change(data)
    with pytest.raises(ValueError, match=re.escape(words)):
        train(tiny_model(), data, steps=1, progress=False)


def test_accuracy_refuses_float_labels():
    data = random_dataset(4, 5, seed=0)
    regression = dict(data, labels=np.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="metric=None"):
        train(tiny_model(num_labels=1), data, regression, steps=1, progress=False)


# ---- the history ----
def test_history_plots_and_says_what_is_missing(monkeypatch):
    history = History()
    for step in (1, 2, 3):
        history.log_train(step=step, epoch=step / 3, lr=1e-3, loss=1.0 / step, grad_norm=2.0)
    history.log_eval(3, {"loss": 0.4, "accuracy": 0.75})
    assert repr(history) == "History(3 steps, last loss 0.3333, last eval loss 0.4, last eval accuracy 0.75)"
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))).to_dict() == history.to_dict()

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
        patch.setitem(sys.modules, "matplotlib.pyplot", None)
        with pytest.raises(ImportError, match="pip install matplotlib"):
            history.plot()
    import matplotlib

    matplotlib.use("Agg")
    figure = history.plot()
    assert [ax.get_title() for ax in figure.axes] == ["loss", "eval metrics", "learning rate",
                                                      "gradient norm (before clipping)"]


# ---- the command line ----
def test_command_line_fine_tunes_a_model_folder(tmp_path, vocab_file, capsys):
    base = tmp_path / "base"
    config = minideberta.DebertaV2Config(**{**TINY, "vocab_size": 128100, "hidden_size": 16, "intermediate_size": 32,
                                            "num_hidden_layers": 1})
    pretrained = minideberta.DebertaV2Model(config, seed=123, dtype=np.float32)
    pretrained.save_pretrained(base)
    shutil.copy(vocab_file, base / "spm.model")
    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"text": f"This is sentence {i}.", "label": "good" if i % 2 else "bad"}) + "\n" for i in range(8)))
    (tmp_path / "dev.tsv").write_text("text\tlabel\nA fine sentence.\tgood\nA poor one.\tbad\n")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="initialised a new head"):  # the pre-trained folder has no head
        assert main([str(base), "--data", str(tmp_path / "train.jsonl"), "--eval-data", str(tmp_path / "dev.tsv"),
                     "--output-dir", str(out), "--steps", "2", "--batch-size", "4", "--max-length", "12",
                     "--no-progress"]) == 0
    tuned = Cls.from_pretrained(out)
    assert tuned.config.id2label == {0: "bad", 1: "good"}
    for name, p in pretrained.params.items():  # the backbone started from the folder's weights
        np.testing.assert_allclose(tuned.params[f"deberta.{name}"], p, atol=1e-3, err_msg=name)
    history = json.loads((out / "history.json").read_text())
    assert history["train"]["step"] == [1, 2] and history["eval"]["step"] == [2]
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and (out / "spm.model").is_file()

    with pytest.raises(SystemExit) as done:  # argparse's --help: usage printed, exit status 0
        main(["--help"])
    assert done.value.code == 0
    assert "python -m minideberta train minideberta-v3-tiny --data tasks/sample/topic/train.jsonl" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:  # a missing option: one error line, status 2 (test_cli_errors.py: all)
        main([str(base), "--output-dir", str(out), "--steps", "1"])
    assert done.value.code == 2
    assert capsys.readouterr().err == ("error: minideberta train: the following arguments are required: --data "
                                       "(see `minideberta train --help`)\n")
