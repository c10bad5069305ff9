"""The pre-training loop, its evaluation, the corpus recipe and the commands, on a micro corpus.

The corpus is written by the test (a tiny grammar), its vocabulary trained by the test with
sentencepiece, the models are a few thousand parameters: every test runs in seconds.
"""
import json
import types

import numpy as np
import pytest

from micro_corpus import write_micro_corpus
from minideberta import DebertaV2Tokenizer
from minideberta.apps.cli import main as cli
from minideberta.apps.pretrain.cli import build_models, export, load_pair, model_configs
from minideberta.apps.pretrain.evaluate import evaluate, roc_auc, token_counts
from minideberta.apps.pretrain.loop import pack, pretrain, tokenize_file
from minideberta.apps.pretrain.rtd import Pretrainer, special_ids


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """(folder, tokenizer, train chunks, held-out chunks): a grammar corpus and its own vocabulary."""
    folder = write_micro_corpus(tmp_path_factory.mktemp("micro"))
    tokenizer = DebertaV2Tokenizer(folder / "spm.model")
    return folder, tokenizer, tokenize_file(tokenizer, folder / "train.txt", 32), \
        tokenize_file(tokenizer, folder / "heldout.txt", 32)


def micro_pretrainer(tokenizer, sharing="gdes"):
    g, d = model_configs(len(tokenizer), hidden_size=32, layers=2, heads=2, intermediate_size=64, position_buckets=8,
                         max_position_embeddings=32)
    generator, discriminator = build_models(g, d, seed=0)
    return Pretrainer(generator, discriminator, sharing, special_ids=(0, 1, 2, 3), mask_id=tokenizer.mask_token_id)


def test_vocabulary_has_deberta_special_ids_and_mask_after_the_pieces(micro):
    _, tokenizer, train, _ = micro
    special = special_ids(tokenizer)
    assert special == [0, 1, 2, 3]
    assert tokenizer.mask_token_id == tokenizer.vocab_size == len(tokenizer) - 1 == 300
    assert (train[:, 0] == 1).all() and (train[:, -1] == 2).all() and not np.isin(train[:, 1:-1], [0, 1, 2, 3]).any()


def test_pack_frames_and_drops_the_tail():
    rows = pack([[5, 6, 7], [8, 9], [10]], 5, cls_id=1, sep_id=2)
    np.testing.assert_array_equal(rows, [[1, 5, 6, 7, 2], [1, 8, 9, 10, 2]])
    with pytest.raises(ValueError, match="fewer than one sequence"):
        pack([[5]], 5, 1, 2)


@pytest.mark.parametrize("sharing", ["gdes", "es", "nes"])
def test_micro_pretraining_lowers_both_losses(micro, sharing):
    _, tokenizer, train, heldout = micro
    pt = micro_pretrainer(tokenizer, sharing)
    history = pretrain(pt, train, heldout, token_counts(train, len(tokenizer)), steps=40, batch_size=8, lr=3e-3,
                       warmup_steps=4, eval_every=0, progress=False, log=lambda _: None)
    mlm, rtd = np.array(history["train"]["mlm_loss"]), np.array(history["train"]["rtd_loss"])
    assert mlm[-5:].mean() < mlm[:5].mean() - 1.0, mlm
    assert rtd[-5:].mean() < rtd[:5].mean() - 0.05, rtd


def test_resume_gives_the_same_trajectory(micro, tmp_path):
    _, tokenizer, train, heldout = micro
    counts = token_counts(train, len(tokenizer))
    settings = dict(steps=6, batch_size=4, lr=3e-3, warmup_steps=2, eval_every=3, eval_sequences=4, progress=False,
                    log=lambda _: None)
    straight = micro_pretrainer(tokenizer)
    full = pretrain(straight, train, heldout, counts, **settings)
    stopped = micro_pretrainer(tokenizer)
    first = pretrain(stopped, train, heldout, counts, output=tmp_path, max_minutes=0, **settings)  # stops at step 1
    assert first["train"]["step"] == [1] and (tmp_path / "checkpoint" / "trainer_state.json").is_file()
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000
    resumed = micro_pretrainer(tokenizer)
    rest = pretrain(resumed, train, heldout, counts, output=tmp_path, resume=True, **settings)
    assert rest["train"]["loss"] == full["train"]["loss"]
    assert rest["eval"]["step"][1:] == full["eval"]["step"] and rest["eval"]["rtd_auc"][1:] == full["eval"]["rtd_auc"]
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    np.testing.assert_array_equal(resumed.discriminator_embeddings(), straight.discriminator_embeddings())
    with pytest.warns(UserWarning, match="other settings"):
        pretrain(micro_pretrainer(tokenizer), train, heldout, counts, output=tmp_path, resume=True,
                 **{**settings, "lr": 1e-3})


def test_roc_auc_is_the_pairwise_probability():
    rng = np.random.default_rng(0)
    scores, labels = rng.normal(size=300).round(1), rng.random(300) < 0.3  # rounding makes ties
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert abs(roc_auc(scores, labels) - pairwise) < 1e-12
    assert roc_auc([0.1, 0.9], [0, 1]) == 1.0 and np.isnan(roc_auc([1.0, 2.0], [1, 1]))


def test_evaluate_counts_and_baseline(micro):
    _, tokenizer, train, heldout = micro
    pt = micro_pretrainer(tokenizer)
    counts = token_counts(train, len(tokenizer))
    results = evaluate(pt.generator, pt.discriminator, heldout, counts, [0, 1, 2, 3], tokenizer.mask_token_id)
    again = evaluate(pt.generator, pt.discriminator, heldout, counts, [0, 1, 2, 3], tokenizer.mask_token_id)
    assert results == again  # seeded masking and sampling
    assert results["masked_tokens"] == sum(round(0.15 * 30) for _ in heldout)
    # the baseline by hand: the most frequent non-special id of the training chunks
    counts_plain = counts.copy()
    counts_plain[[0, 1, 2, 3, tokenizer.mask_token_id]] = -1
    assert 0 < results["unigram_top1"] <= results["unigram_top5"] < 1
    share = (heldout[:, 1:-1] == counts_plain.argmax()).mean()
    assert abs(results["unigram_top1"] - share) < 0.1  # masked positions are a sample of the tokens
    assert 0 <= results["rtd_auc"] <= 1 and 0.05 < results["replaced_share"] < 0.2
    assert 0 <= results["rtd_auc_random"] <= 1 and results["rtd_auc_random"] != results["rtd_auc"]


def test_export_then_load_gives_the_same_numbers(micro, tmp_path):
    _, tokenizer, train, heldout = micro
    pt = micro_pretrainer(tokenizer)
    pretrain(pt, train, heldout, token_counts(train, len(tokenizer)), steps=3, batch_size=4, eval_every=0,
             progress=False, log=lambda _: None)
    folders = export(pt, tokenizer, tmp_path, name="tiny", dtype=np.float32)
    generator, discriminator = load_pair(folders["discriminator"], folders["-generator"])
    assert generator.resolve_emd(None)  # Microsoft's head and the position table: decodes with EMD
    np.testing.assert_array_equal(discriminator.params["deberta.embeddings.word_embeddings.weight"],
                                  pt.discriminator_embeddings())
    ids = heldout[:2]
    np.testing.assert_allclose(discriminator(ids).logits, pt.discriminator(ids).logits, rtol=0, atol=1e-6)
    assert DebertaV2Tokenizer.from_pretrained(folders["discriminator"]).mask_token_id == tokenizer.mask_token_id


def test_commands_pretrain_export_and_evaluate(micro, tmp_path, capsys):
    folder = micro[0]
    code = cli.main(["pretrain", "--corpus", str(folder / "train.txt"), "--output", str(tmp_path / "run"),
                     "--steps", "2", "--batch-size", "2", "--seq-len", "32", "--hidden-size", "16", "--layers", "2",
                     "--heads", "2", "--position-buckets", "8", "--eval-every", "2", "--eval-sequences", "2",
                     "--export", str(tmp_path / "weights"), "--no-progress"])
    assert code == 0
    run = json.loads((tmp_path / "run" / "history.json").read_text())
    assert run["train"]["step"] == [1, 2]
    shipped = json.loads((tmp_path / "weights" / "minideberta-v3-tiny" / "history.json").read_text())
    assert shipped["train"]["step"] == [1, 2] and shipped["eval"]["step"] == [2]  # the run's record, with the model
    assert set(shipped["train"]) == {"step", "lr", "mlm_loss", "rtd_loss", "grad_norm"}  # no total loss, no clock
    np.testing.assert_allclose(shipped["train"]["mlm_loss"], run["train"]["mlm_loss"], rtol=5e-4)  # 4 digits
    assert shipped["train"]["mlm_loss"] != run["train"]["mlm_loss"]  # rounded: the shipped copy is compact
    assert cli.main(["pretrain-export", str(tmp_path / "run"), "--to", str(tmp_path / "again"), "--vocab",
                     str(folder / "spm.model")]) == 0
    for name in ("minideberta-v3-tiny", "minideberta-v3-tiny-generator"):  # the last checkpoint is the end state
        for file in ("model.safetensors", "config.json", "spm.model"):
            assert (tmp_path / "again" / name / file).read_bytes() == (tmp_path / "weights" / name / file).read_bytes()
    capsys.readouterr()
    code = cli.main(["pretrain-eval", str(tmp_path / "weights" / "minideberta-v3-tiny"),
                     str(tmp_path / "weights" / "minideberta-v3-tiny-generator"), "--corpus",
                     str(folder / "train.txt"), "--heldout", str(folder / "heldout.txt"), "--seq-len", "32"])
    assert code == 0
    assert {"mlm_top1", "unigram_top1", "rtd_auc"} <= set(json.loads(capsys.readouterr().out))
    assert cli.main(["pretrain", "--corpus", str(tmp_path / "nope.txt"), "--output", str(tmp_path)]) == 2
    assert "error: --corpus" in capsys.readouterr().err


def test_pretrain_switches_for_the_ablations_reach_the_models_and_the_export(micro, tmp_path):
    folder = micro[0]
    assert cli.main(["pretrain", "--corpus", str(folder / "train.txt"), "--output", str(tmp_path / "run"),
                     "--steps", "1", "--batch-size", "2", "--seq-len", "32", "--hidden-size", "16", "--layers", "2",
                     "--heads", "2", "--position-buckets", "8", "--eval-every", "0", "--pos-att-type", "c2p",
                     "--no-emd", "--export", str(tmp_path / "weights"), "--no-progress"]) == 0
    from minideberta import DebertaV2ForMaskedLM
    from minideberta.masked_lm import POSITIONS

    generator = DebertaV2ForMaskedLM.from_pretrained(tmp_path / "weights" / "minideberta-v3-tiny-generator")
    assert POSITIONS not in generator.params and not generator.resolve_emd(None)  # the plain head, no EMD
    assert generator.config.pos_att_type == ["c2p"]
    assert cli.main(["pretrain-export", str(tmp_path / "run"), "--to", str(tmp_path / "again"), "--vocab",
                     str(folder / "spm.model")]) == 0  # from_checkpoint rebuilds the generator without the table
    name = "minideberta-v3-tiny-generator/model.safetensors"
    assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "weights" / name).read_bytes()


class Oracle:
    """A stand-in discriminator that knows the original chunks: logit 1 where a token was replaced,
    0 elsewhere (``sign`` -1 turns it into the worst possible one). ``evaluate`` calls it twice per
    batch, generator samples first, then random replacements."""

    def __init__(self, chunks, batch_size, sign=1.0):
        self.chunks, self.batch_size, self.sign, self.calls = chunks, batch_size, sign, 0

    def __call__(self, ids, attention_mask=None, labels=None):
        start = (self.calls // 2) * self.batch_size
        self.calls += 1
        replaced = ids != self.chunks[start:start + len(ids)]
        return types.SimpleNamespace(logits=self.sign * replaced.astype(np.float64), loss=0.0)


def test_both_aucs_score_the_replacements_of_their_own_pass(micro):
    _, tokenizer, train, heldout = micro
    pt = micro_pretrainer(tokenizer)
    counts = token_counts(train, len(tokenizer))
    for sign, auc in ((1.0, 1.0), (-1.0, 0.0)):
        results = evaluate(pt.generator, Oracle(heldout, 4, sign), heldout, counts, [0, 1, 2, 3],
                           tokenizer.mask_token_id, batch_size=4)
        assert results["rtd_auc"] == auc and results["rtd_auc_random"] == auc
