"""``python -m minideberta demo``: the whole library in one offline run, on a small random model.

1. a DeBERTa-v3-shaped classifier (log-bucketed relative attention, shared position projections,
   LayerNorm on the relative table) runs a padded batch;
2. the hand-written backward of every parameter is checked against central differences;
3. the model is saved as a checkpoint and read back, giving the same numbers;
4. when torch and transformers are installed, ``verify`` compares that checkpoint with them;
5. when the embedded pre-trained models are there (``weights/minideberta-v3-tiny``, pre-trained by
   minideberta itself, see ``apps/pretrain/``), fill-mask with the generator on a few sentences and
   replaced-token detection with the discriminator on a corrupted sentence.
Exit code 0 when every check passes.
"""
import tempfile

import numpy as np

from ...config import DebertaV2Config
from ...gradcheck import EXPECTED_ERROR, numerical_gradient, rel_error
from ...relative_position import make_log_bucket_position
from ...tasks import DebertaV2ForSequenceClassification

CONFIG = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
              max_position_embeddings=512, relative_attention=True, position_buckets=16, norm_rel_ebd="layer_norm",
              share_att_key=True, pos_att_type="p2c|c2p", position_biased_input=False, layer_norm_eps=1e-7,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3,
              # Wider than transformers' 0.02, so that every path (the position terms included)
              # carries a gradient well above the round-off of the central differences.
              initializer_range=0.3)


def example(model, rng):
    ids = rng.integers(4, model.config.vocab_size, (2, 40))
    mask = np.ones_like(ids)
    mask[1, 25:] = 0  # the second sequence is padding after 25 tokens
    return ids, mask, rng.integers(0, 3, 2)


def check_gradients(model, ids, mask, labels, rng, entries=3):
    """Largest rel_error between backward() and central differences, over a few entries of every parameter."""
    model(ids, attention_mask=mask, labels=labels)
    grads = model.backward()

    def loss():
        return model(ids, attention_mask=mask, labels=labels).loss

    worst, worst_name = 0.0, None
    for name, array in model.params.items():
        sample = rng.choice(array.size, min(entries, array.size), replace=False)
        numeric = numerical_gradient(loss, array, indices=sample)
        error = rel_error(grads[name].reshape(-1)[sample], numeric.reshape(-1)[sample],
                          scale=float(np.abs(grads[name]).max()))
        if error > worst:
            worst, worst_name = error, name
    return worst, worst_name, len(model.params)


def main(report=print):
    rng = np.random.default_rng(0)
    config = DebertaV2Config(**CONFIG)
    model = DebertaV2ForSequenceClassification(config, seed=0, dtype=np.float64)
    ids, mask, labels = example(model, rng)
    report(f"minideberta demo: a DeBERTa-v3-shaped classifier, hidden {config.hidden_size}, {config.num_hidden_layers} "
           f"layers, {config.num_attention_heads} heads, {model.num_parameters():,} random parameters, float64")

    out = model(ids, attention_mask=mask, labels=labels, output_hidden_states=True, output_attentions=True)
    report(f"1. forward: input_ids {ids.shape} (second row padded) -> {len(out.hidden_states)} hidden states "
           f"{out.hidden_states[-1].shape}, attentions {out.attentions[0].shape}, logits {out.logits.shape}, "
           f"loss {float(out.loss):.4f}")
    distances = np.arange(0, 40, 4)
    report(f"   relative distances {distances.tolist()} -> buckets "
           f"{make_log_bucket_position(distances, config.position_buckets, config.max_relative).tolist()} "
           f"(exact up to {config.position_buckets // 2}, logarithmic beyond)")

    worst, name, n = check_gradients(model, ids, mask, labels, rng)
    grads_ok = worst < EXPECTED_ERROR
    report(f"2. backward: {n} parameter arrays, hand-written gradient vs central differences: worst relative "
           f"error {worst:.1e} ({name}); a correct backward stays below {EXPECTED_ERROR:g} "
           f"{'PASS' if grads_ok else 'FAIL'}")

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        again = DebertaV2ForSequenceClassification.from_pretrained(folder, dtype=np.float64)
        same = np.array_equal(again(ids, attention_mask=mask).logits, out.logits)
        report(f"3. checkpoint: config.json + model.safetensors written and read back: logits "
               f"{'identical PASS' if same else 'DIFFERENT FAIL'}")
        verified = run_verify(folder, report)
    show_pretrained(report)
    ok = grads_ok and same and verified is not False
    report("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1


def run_verify(folder, report):
    """The checkpoint against transformers, when it is installed (None when it is not)."""
    from ..bench import verify

    if not verify.reference_installed():
        report("4. reference: torch and transformers are not installed (pip install -r requirements-dev.txt), "
               "so the comparison with them is skipped")
        return None
    report("4. reference: the checkpoint in minideberta and in transformers, layer by layer:")
    return verify.main(folder, np.float64, report=lambda line: report("   " + line)) == 0


GENERATOR, DISCRIMINATOR = "minideberta-v3-tiny-generator", "minideberta-v3-tiny"
# the corpus's registers: everyday prose, a dictionary gloss, the Python documentation
FILL_MASK = ["She put the milk back in the [MASK].", "dog: a domesticated [MASK] of the genus Canis.",
             "The function returns a [MASK] of strings."]
# (original, corrupted): one word swapped for a word that does not fit
CORRUPTED = ("She drank a cup of hot tea.", "She drank a cup of hot gravel.")


def show_pretrained(report, top_k=3):
    """Section 5: the embedded pre-trained models on real text, when they are in weights/."""
    from ...checkpoints import hub
    from ...loading import load_model
    from . import pipelines

    if hub.embedded_folder(GENERATOR) is None or hub.embedded_folder(DISCRIMINATOR) is None:
        report(f"5. pre-trained: weights/{GENERATOR} and weights/{DISCRIMINATOR} are not there, skipped")
        return
    model, tokenizer = load_model(GENERATOR, "masked-lm")
    report(f"5. pre-trained: fill-mask with {GENERATOR} ({model.num_parameters():,} parameters, pre-trained by "
           f"minideberta on English prose, dictionaries and the Python docs), top {top_k}:")
    for text in FILL_MASK:
        guesses = pipelines.fill_mask(model, tokenizer, text, top_k=top_k)["masks"][0]["predictions"]
        report(f"   {text}\n      " + ", ".join(f"{g['token_str']!r} {g['score']:.2f}" for g in guesses))
    model, tokenizer = load_model(DISCRIMINATOR, "replaced-token-detection")
    report(f"   replaced-token detection with {DISCRIMINATOR}: p(replaced) per token")
    for text in CORRUPTED:
        tokens = pipelines.replaced_tokens(model, tokenizer, text)
        report(f"   {text}\n      " + " ".join(f"{t['token'].replace(chr(9601), '')}:{t['probability']:.2f}"
                                                for t in tokens))
    report("   (a tiny model, briefly trained: how often it gets such sentences right is measured in "
           f"weights/{DISCRIMINATOR}/README.md, \"Everyday English\")")
