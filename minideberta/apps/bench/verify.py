"""``python -m minideberta verify MODEL``: show, tensor by tensor, that a checkpoint gives the same
numbers in minideberta as in the reference.

The reference is Hugging Face transformers (PyTorch), loaded from the same folder. For what
transformers does not run, the Enhanced Mask Decoder and the replaced-token-detection head,
the reference is Microsoft's algorithm rebuilt here from transformers' own torch layers
(``EnhancedMaskDecoder`` and ``LMMaskPredictionHead`` of microsoft/DeBERTa), and the report says so.

This is the one module that imports torch and transformers, lazily and only for the reference:
the model itself never needs them. Two documented differences are removed before comparing:
transformers computes the attention scale sqrt(d * factor) in float32 even in float64 (patched
here for the run, so float64 comparisons are exact to round-off), and padded rows differ by
design (DeBERTa's XSoftmax gives padding queries zero attention), so only real tokens count.
"""
import contextlib
import warnings
from pathlib import Path

import numpy as np

from ...checkpoints import weights
from ...checkpoints.hub import HEAD_NAMES, heads_from_shapes
from ...config import DebertaV2Config
from ...loading import HEAD_CLASSES
from ...masked_lm import POSITIONS, DebertaV2ForMaskedLM
from ...model import DebertaV2Model, no_grad
from ...tasks import DebertaV2ForReplacedTokenDetection

SENTENCES = ["Paris is the capital and most populous city of France.",
             "The quick brown fox jumps over the lazy dog.",
             "DeBERTa improves BERT and RoBERTa using disentangled attention and an enhanced mask decoder."]
TOLERANCE = {np.float64: 1e-9, np.float32: 1e-4}
def example_batch(folder, config):
    """A padded batch: the fixed sentences and one long text past the bucket threshold."""
    n_long = max(config.position_buckets, 64) + 8
    if config.position_biased_input:
        n_long = min(n_long, config.max_position_embeddings)
    if (Path(folder) / "spm.model").is_file():
        from ...tokenizer.deberta_tokenizer import DebertaV2Tokenizer

        tok = DebertaV2Tokenizer.from_pretrained(folder)
        texts = SENTENCES + [" ".join(SENTENCES * (n_long // 8))]
        enc = tok(texts, padding=True, truncation=True, max_length=n_long, return_tensors="np")
        ids, mask = enc["input_ids"], enc["attention_mask"]
    else:  # no vocabulary: deterministic ids, ragged lengths
        rng = np.random.default_rng(0)
        ids = rng.integers(4, min(config.vocab_size, 128000), (4, n_long))
        mask = (np.arange(n_long)[None] < np.array([[12], [20], [31], [n_long]])).astype(np.int64)
    return np.where(mask == 1, ids, config.pad_token_id), mask


def difference(ours, reference, real):
    """Largest absolute difference on real tokens, and the same relative to the reference's scale."""
    ours, reference = np.asarray(ours)[real], np.asarray(reference)[real]
    diff = float(np.abs(ours - reference).max())
    return diff, diff / max(float(np.abs(reference).max()), np.finfo(np.float64).tiny)


def exact_scaled_size_sqrt(query_layer, scale_factor):
    """sqrt(d * factor) in the query's dtype, to replace transformers' ``scaled_size_sqrt``.

    transformers computes it as ``torch.sqrt(torch.tensor(d, dtype=torch.float) * factor)``, in
    float32 even for a float64 model, which puts a ~1e-8 relative error into every float64 score.
    Microsoft's original uses an exact Python float (``math.sqrt``), as minideberta does. In float32
    both give the same number, so float32 comparisons are unchanged.
    """
    import torch

    return torch.sqrt(torch.tensor(query_layer.size(-1) * scale_factor, dtype=query_layer.dtype))


@contextlib.contextmanager
def quiet_exact_reference():
    """For the run: transformers' float64 attention scale made exact (``exact_scaled_size_sqrt``),
    and loading reports silenced, transformers' and the warning that the bare encoder leaves the
    heads' arrays unused (each head is compared on its own)."""
    from transformers.models.deberta_v2 import modeling_deberta_v2 as hf
    from transformers.utils import logging

    original, verbosity = hf.scaled_size_sqrt, logging.get_verbosity()
    hf.scaled_size_sqrt = exact_scaled_size_sqrt
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        hf.scaled_size_sqrt = original
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def rebuilt_emd_logits(hf_mlm, position_table, ids, mask):
    """Microsoft's EnhancedMaskDecoder on transformers' layers: last layer twice, queries from H + P."""
    import torch

    out = hf_mlm.deberta(ids, attention_mask=mask, output_hidden_states=True)
    hidden, encoder = out.hidden_states[-2], hf_mlm.deberta.encoder
    query = position_table[torch.arange(ids.shape[1])][None] + hidden
    pair_mask, rel_pos, rel_emb = encoder.get_attention_mask(mask), encoder.get_rel_pos(hidden), encoder.get_rel_embedding()
    for _ in range(2):
        query = encoder.layer[-1](hidden, pair_mask, query_states=query, relative_pos=rel_pos, rel_embeddings=rel_emb)[0]
    return hf_mlm.lm_predictions(query, hf_mlm.deberta.embeddings.word_embeddings)


def rebuilt_rtd_logits(hf_base, head, ids, mask, config):
    """Microsoft's LMMaskPredictionHead: LayerNorm(h + h[CLS]) -> dense -> activation -> 1 logit."""
    import torch
    from transformers.activations import ACT2FN

    h = hf_base(ids, attention_mask=mask).last_hidden_state
    h = torch.nn.functional.layer_norm(h + h[:, :1], (h.shape[-1],), head["LayerNorm.weight"], head["LayerNorm.bias"],
                                       config.layer_norm_eps)
    h = ACT2FN[config.hidden_act](torch.nn.functional.linear(h, head["dense.weight"], head["dense.bias"]))
    return torch.nn.functional.linear(h, head["classifier.weight"], head["classifier.bias"])[..., 0]


def reference_installed():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


TF_NOTE = ("the folder holds only tf_model.h5, and transformers 5 reads no TensorFlow file: the reference runs "
           "the arrays minideberta's reader took from it, saved as model.safetensors in a temporary folder. This "
           "checks the computation, not the reading; the reading of tf_model.h5 is checked by the tests against "
           "logits TensorFlow itself computed (tests/fixtures/tf)")


def reads_tf(folder):
    """Whether ``folder``'s checkpoint is a TensorFlow ``tf_model.h5`` (its only checkpoint)."""
    return weights.checkpoint_file(folder).name == weights.TF_FILE


@contextlib.contextmanager
def reference_folder(folder, config, state):
    """The folder transformers loads: ``folder`` itself, or for a TF-only folder a temporary copy
    holding config.json and the TF arrays (already under Hugging Face's names) as model.safetensors."""
    if not reads_tf(folder):
        yield folder
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="minideberta-verify-") as tmp:
        config.save_pretrained(tmp)
        weights.save_safetensors(state, Path(tmp) / "model.safetensors")
        yield Path(tmp)


def compare(folder, dtype=np.float64):
    """Rows (output, reference, max abs diff, max rel diff) for every hidden state and every head."""
    folder = Path(folder)
    config = DebertaV2Config.from_pretrained(folder)
    state = weights.load_state_dict(folder)
    with reference_folder(folder, config, state) as reference:
        return _compare(folder, reference, config, state, dtype)


def _compare(folder, reference, config, state, dtype):
    import torch
    import transformers

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    ids, mask = example_batch(folder, config)
    real = mask.astype(bool)
    rows = []
    with no_grad(), torch.no_grad(), quiet_exact_reference():
        ours = DebertaV2Model.from_state_dict(config, state, dtype)(ids, attention_mask=mask,
                                                                    output_hidden_states=True).hidden_states
        theirs = transformers.DebertaV2Model.from_pretrained(reference, dtype=tdtype)(
            torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True).hidden_states
        for i, (a, b) in enumerate(zip(ours, theirs)):
            rows.append(("embeddings" if i == 0 else f"layer {i}", "transformers", *difference(a, b.numpy(), real)))
        shapes = {name: array.shape for name, array in state.items()}
        for head in heads_from_shapes(shapes, getattr(config, "architectures", None)):
            rows += compare_head(head, reference, config, state, dtype, tdtype, ids, mask, real)
    return rows, ids.shape


def main(folder, dtype=np.float64, as_json=False, report=print):
    """The ``verify`` command: print the comparison; exit code 0 when it agrees, 1 when it does not,
    2 when there is no reference to compare with."""
    tolerance = TOLERANCE[np.dtype(dtype).type]
    if not reference_installed():
        config = DebertaV2Config.from_pretrained(folder)
        ids, mask = example_batch(folder, config)
        with no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the heads' arrays: the bare encoder leaves them
            DebertaV2Model.from_pretrained(folder, dtype=dtype)(ids, attention_mask=mask)
        message = ("the checkpoint loads and runs in minideberta, but torch and transformers (the reference) are "
                   "not installed: pip install torch transformers, then run verify again")
        if as_json:
            import json

            report(json.dumps({"ok": None, "verified": False, "message": message}))
        else:
            report(message)
            report("verify: UNVERIFIED")
        return 2
    rows, shape = compare(folder, dtype)
    ok = all(rel <= tolerance for *_, rel in rows)
    note = TF_NOTE if reads_tf(folder) else None
    if as_json:
        import json

        report(json.dumps({"ok": ok, "tolerance": tolerance, "batch": list(shape), "note": note, "rows": [
            dict(output=name, reference=ref, max_abs_diff=a, max_rel_diff=r) for name, ref, a, r in rows]}))
        return 0 if ok else 1
    if note:
        report(f"note: {note}")
    report(f"batch {shape[0]} x {shape[1]} tokens (padded); differences on real tokens, relative to the "
           "reference's largest value")
    report(f"{'output':34} {'reference':17} {'max abs diff':>13} {'max rel diff':>13}")
    for name, reference, abs_diff, rel_diff in rows:
        flag = "" if rel_diff <= tolerance else "  <-- above tolerance"
        report(f"{name:34} {reference:17} {abs_diff:13.3e} {rel_diff:13.3e}{flag}")
    report(f"tolerance {tolerance:g} relative; 'rebuilt original' = Microsoft's algorithm rebuilt from "
           "transformers' layers (transformers has no such head)")
    report("verify: OK" if ok else "verify: MISMATCH")
    return 0 if ok else 1


def compare_head(head, folder, config, state, dtype, tdtype, ids, mask, real):
    """Rows comparing one head's outputs with transformers or with the rebuilt original algorithm."""
    import torch
    import transformers

    tids, tmask = torch.tensor(ids), torch.tensor(mask)
    if head == "replaced-token-detection":
        ours = DebertaV2ForReplacedTokenDetection.from_state_dict(config, state, dtype)(ids, attention_mask=mask).logits
        renamed = weights.to_hf_names(state, DebertaV2ForReplacedTokenDetection.param_shapes(config))
        params = {k[len("mask_predictions."):]: torch.tensor(v, dtype=tdtype) for k, v in renamed.items()
                  if k.startswith("mask_predictions.")}
        hf_base = transformers.DebertaV2Model.from_pretrained(folder, dtype=tdtype)
        theirs = rebuilt_rtd_logits(hf_base, params, tids, tmask, config)
        return [("RTD logits", "rebuilt original", *difference(ours, theirs.numpy(), real))]
    if head == "masked-lm":
        model = DebertaV2ForMaskedLM.from_state_dict(config, state, dtype)
        hf = transformers.DebertaV2ForMaskedLM.from_pretrained(folder, dtype=tdtype, legacy=model.config.legacy)
        rows = [("MLM logits (no EMD)", "transformers",
                 *difference(model(ids, attention_mask=mask, emd=False).logits, hf(tids, attention_mask=tmask).logits.numpy(), real))]
        if model.resolve_emd(None):
            table = torch.tensor(model.params[POSITIONS], dtype=tdtype)
            rows.append(("MLM logits (EMD)", "rebuilt original", *difference(
                model(ids, attention_mask=mask, emd=True).logits, rebuilt_emd_logits(hf, table, tids, tmask).numpy(), real)))
        return rows
    cls = HEAD_CLASSES[head]  # transformers' class of the same head has the same name
    ours_in, theirs_in, keep = (ids, tids, real)
    if head == "multiple-choice":  # each sequence of the batch as one choice of one question
        ours_in, theirs_in, keep = ids[None], tids[None], np.ones((1, len(ids)), bool)
    model = cls.from_state_dict(config, state, dtype)
    mask_in = mask[None] if head == "multiple-choice" else mask
    ours = model(ours_in, attention_mask=mask_in)
    theirs = getattr(transformers, cls.__name__).from_pretrained(folder, dtype=tdtype)(
        theirs_in, attention_mask=torch.tensor(mask_in))
    fields = ("start_logits", "end_logits") if head == "question-answering" else ("logits",)
    if head == "sequence-classification":
        keep = np.ones(len(ids), bool)
    return [(f"{HEAD_NAMES[head]} {f}", "transformers", *difference(ours[f], getattr(theirs, f).numpy(), keep))
            for f in fields]
