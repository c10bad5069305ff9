"""The exercises: id, statement, level, a rough time, hints, and the stages that check them.

The id is the dotted name of the function the exercise removes, relative to the package; a
partial exercise (``part``) removes only the region between ``# BEGIN EXERCISE ID`` and
``# END EXERCISE ID`` in that function and adds the region's name to the id.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import stages_attention, stages_misc, stages_model, stages_ops, stages_pretraining

PACKAGE = Path(__file__).resolve().parents[2]  # the installed minideberta/
LEVELS = ("first course", "intermediate", "advanced")


@dataclass(frozen=True)
class Exercise:
    id: str
    statement: str
    level: str
    minutes: int
    hints: tuple
    stages: Callable  # () -> [Stage]
    function: str = None  # a partial exercise: the function holding the marked region
    seconds: float = 0.5  # about what checking the reference takes (the default time limit grows with it)
    also: tuple = ()  # other functions whose bodies go too, because they would give the answer away

    @property
    def target(self):
        """The dotted name of the function whose body (or part of it) is removed."""
        return self.function or self.id

    @property
    def part(self):
        return self.function is not None

    @property
    def module(self):
        """The module's dotted name relative to the package, and the qualified name inside it."""
        return module_of(self.target)

    @property
    def file(self):
        return file_of(self.target)

    @property
    def files(self):
        """Every file the exercise removes something from (``also``: helpers that would give it away)."""
        return sorted({self.file, *(file_of(name) for name in self.also)})


def module_of(dotted):
    """``("ops", "layer_norm_backward")``: a function's module relative to the package, and its qualified name."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        if PACKAGE.joinpath(*parts[:cut - 1], parts[cut - 1] + ".py").is_file():
            return ".".join(parts[:cut]), ".".join(parts[cut:])
    raise ValueError(f"no module of the package holds {dotted}")


def file_of(dotted):
    return "minideberta/" + module_of(dotted)[0].replace(".", "/") + ".py"


EXERCISES = [
    Exercise("ops.layer_norm_backward", "LayerNorm backward: dx, dweight, dbias", "first course", 30, (
        "The cache holds xhat = (x - mean) * rstd and rstd. Start with dweight = sum(dy * xhat) and dbias = sum(dy) "
        "over every axis but the last.",
        "With g = dy * weight, dx is rstd times g with its mean removed and its component along xhat removed.",
        "dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), the means over the last axis.",
    ), stages_ops.layer_norm_backward),
    Exercise("ops.gelu_backward", "GELU backward (the exact erf form)", "first course", 15, (
        "GELU(x) = x Phi(x): the product rule gives two terms.",
        "Phi'(x) = phi(x) = exp(-x^2 / 2) / sqrt(2 pi), the standard normal density; normal_cdf gives Phi.",
    ), stages_ops.gelu_backward),
    Exercise("ops.masked_softmax_backward", "masked softmax (XSoftmax) backward", "first course", 30, (
        "The cache is the probabilities P, with 0 at masked entries.",
        "For one row, dS_i = P_i (dP_i - sum_j dP_j P_j).",
        "Masked entries have P = 0, so the formula gives them no gradient by itself: nothing else is needed.",
    ), stages_ops.masked_softmax_backward),
    Exercise("losses.cross_entropy_backward", "cross-entropy backward, with ignored labels", "first course", 20, (
        "The cache holds log softmax(logits), the labels (ignored ones replaced by 0), which rows count, the count.",
        "d loss / d logits = (softmax - onehot(label)) / count on counted rows, times dloss.",
        "Rows with label -100 are neither in the sum nor in the count: their gradient is 0.",
    ), stages_ops.cross_entropy_backward),
    Exercise("optim.AdamW.step", "one AdamW step, as torch.optim.AdamW", "first course", 30, (
        "Read the module docstring of optim.py: it has the four update lines.",
        "t counts the steps (first step t = 1); m and v are updated in place, as are the parameters.",
        "Weight decay multiplies theta by 1 - lr * wd before the Adam update, only where self.decays[name].",
    ), stages_misc.adamw_step),
    Exercise("relative_position.make_log_bucket_position", "log buckets of relative distances", "intermediate",
             30, (
                 "Inside |d| <= bucket_size // 2 the bucket is d itself.",
                 "Beyond: sign(d) * (mid + ceil(log(|d| / mid) / log((max_position - 1) / mid) * (mid - 1))), "
                 "mid = bucket_size // 2, computed in float64.",
                 "Keep log() finite: replace the small |d| by something harmless before the log, then overwrite.",
             ), stages_misc.make_log_bucket_position),
    Exercise("relative_position.rel_to_abs", "scores by distance -> scores by key, as a strided view",
             "intermediate", 45, (
                 "out[..., i, j] = table[..., i, j - i + N - 1]: row i is read along a diagonal band.",
                 "Start the view at table[..., N - 1:]; stepping one row down and one column left is one row "
                 "stride minus one column stride.",
                 "numpy.lib.stride_tricks.as_strided with the table's own strides (it may be a transposed view).",
             ), stages_misc.rel_to_abs),
    Exercise("tokenizer.unigram.Unigram.segment", "the unigram Viterbi segmentation", "intermediate", 45, (
        "best[end] is the best total score of any segmentation of text[:end]; back[end] the last piece of that path.",
        "For every start, try every piece text[start:end] (self.vocab); _relax keeps a candidate if it is better.",
        "A start with no single-character piece gets the unknown piece (self.unk_id, self.unk_score); "
        "read the path back from the end.",
    ), stages_misc.unigram_segment),
    Exercise("ngie.conv1d_backward", "the nGiE Conv1d backward (im2col)", "intermediate", 60, (
        "The forward made cols (G, B*N, C_in/G*K) and did one matmul per group: the weight gradient is a matmul too.",
        "dcols = dy @ w per group; reshape it to (B, N, C_in, K).",
        "col2im: tap t read padded[:, t:t + N]; add dcols[..., t] back there, then cut the padding off.",
    ), stages_model.conv1d_backward),
    Exercise("ngie.conv1d_backward.col2im", "col2im only: the taps' gradients back onto the input",
             "intermediate", 20, (
                 "dcols[..., t] is the gradient of what tap t read: padded[:, t:t + n].",
                 "Several taps read the same input position: add, do not assign.",
             ), stages_model.conv1d_backward, function="ngie.conv1d_backward"),
    Exercise("heads.rtd_head_backward", "the replaced-token-detection head backward", "intermediate", 30, (
        "Undo the forward line by line: classifier, activation, dense, LayerNorm.",
        "The forward added hidden[:, :1] (the [CLS] state) to every position.",
        "So the [CLS] position gets its own gradient plus the sum over the sequence.",
    ), stages_model.rtd_head_backward),
    Exercise("attention.c2p_scores", "the content-to-position scores Q_i . Kr[row(i - j)]", "advanced", 30, (
        "Score every token against every one of the 2N-1 distances first: position_scores gives (B, H, N, 2N-1).",
        "Column m of that table is the distance N-1-m; relative_position.rel_to_abs reads it as (B, H, N, N).",
    ), stages_attention.c2p_scores),
    Exercise("attention.p2c_scores", "the position-to-content scores K_j . Qr[row(i - j)]", "advanced", 30, (
        "The same table as c2p, but of the keys against the position queries.",
        "Row j of the (N, N) view holds key j: the [i, j] score is its transpose.",
    ), stages_attention.p2c_scores),
    Exercise("attention.position_projection_backward", "the gradient of the projected, gathered relative table",
             "advanced", 40, (
                 "In the forward: per_distance = (table W^T + b)[rows], reshaped to (H, 2N-1, d).",
                 "Undo the reshape, then the gather: a gather's gradient is a scatter-add (embeddings.scatter_add_rows).",
                 "Distances that share a row add their gradients; then linear_backward gives dtable and grads.",
             ), stages_attention.position_projection_backward),
    Exercise("attention.backward", "the disentangled attention backward", "advanced", 120, (
        "Undo the forward from its last line: context = dropped @ V, the dropout, the masked softmax.",
        "scores = (c2c + c2p + p2c) * scale: each term's gradient is dscores * scale.",
        "c2p_scores_backward and p2c_scores_backward give the gradients of q (or k) and of the position vectors; "
        "position_projection_backward takes those back to the table and the projection weights.",
        "position_projection_backward returns the whole (2k, D) table's gradient; c2p and p2c read the same "
        "table: add their two.",
        "With share_att_key the key and query projections also made the position vectors: add both gradients.",
    ), stages_attention.attention_backward, seconds=2),
    Exercise("attention.backward.p2c", "the position-to-content term of the attention backward", "advanced", 30, (
        "In the forward: p2c = p2c_scores(k, pos['p2c']), one of three terms multiplied by the scale; "
        "p2c_scores_backward is yours to write too.",
        "p2c_scores reads the (N, N) view of position_scores(k, pos) transposed: its gradient is transposed back "
        "before position_scores_backward.",
        "p2c_scores_backward gives dk's share and dpos; add the share to dk.",
    ), stages_attention.attention_backward, function="attention.backward", seconds=2,
        also=("attention.p2c_scores_backward",)),
    Exercise("emd.forward", "the Enhanced Mask Decoder forward", "advanced", 45, (
        "hidden = states[-2]; the queries start as hidden + position_embeddings[position_ids].",
        "The last layer runs twice with keys and values from hidden, each time on the previous queries.",
        "encoder.relative_embeddings_forward and attention_masks give the table, its rows and the mask.",
    ), stages_model.emd_forward),
    Exercise("emd.backward", "the Enhanced Mask Decoder backward", "advanced", 60, (
        "Go through the two passes in reverse; each layer_backward gives (dkeys, dquery, drel).",
        "The last layer's weights are used twice: add both passes' gradients (params.add_grads).",
        "hidden was used as keys in both passes and in the first query; the position table by the first query.",
    ), stages_model.emd_backward, seconds=4),
    Exercise("losses.rtd_loss_backward",
             "the replaced-token-detection loss (BCE over real tokens) and its backward", "intermediate", 30, (
                 "loss: the mean over the real tokens (real, (B, N) bool) of max(z, 0) - z y + log(1 + e^-|z|); "
                 "losses.bce_with_logits_forward computes it on the real tokens' logits.",
                 "The derivative of the binary cross-entropy on a logit z is sigmoid(z) - y, divided by the count.",
                 "The count is the number of real tokens, and padded tokens get exactly 0: scatter the real "
                 "tokens' gradient back into a (B, N) zero array.",
             ), stages_pretraining.rtd_loss_backward, also=("losses.rtd_loss_forward",)),
    Exercise("apps.pretrain.rtd.discriminator_labels", "the labels of a corrupted batch", "first course", 10, (
        "A token is replaced (1) where the discriminator's input differs from the original input.",
        "The generator may sample the original token back: then the input does not differ, and the label is 0.",
        "Padding (attention_mask 0) is never replaced: its label is 0.",
    ), stages_pretraining.discriminator_labels),
    Exercise("apps.pretrain.rtd.share_embedding_gradients",
             "embedding sharing: which table gets which gradient (GDES, ES, NES)", "intermediate", 20, (
                 "Read the module docstring of apps/pretrain/rtd.py: the three sharing modes, and the names "
                 "of the parameters in each.",
                 "nes: each table its own model's gradient; es: one table (the generator's), both gradients summed.",
                 "gdes: E_D = sg(E_G) + E_Delta, so the discriminator's gradient goes to E_Delta "
                 "(discriminator.<word>.delta) only and E_G keeps the MLM gradient alone.",
             ), stages_pretraining.share_embedding_gradients),
]

BY_ID = {e.id: e for e in EXERCISES}


def get(exercise_id):
    if exercise_id not in BY_ID:
        close = [e for e in BY_ID if exercise_id.split(".")[-1] in e]
        raise ValueError(f"unknown exercise {exercise_id!r}"
                         + (f"; did you mean {', '.join(close)}?" if close else "")
                         + " (`python -m minideberta exercises list` lists them)")
    return BY_ID[exercise_id]
