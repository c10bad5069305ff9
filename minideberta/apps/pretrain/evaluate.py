"""What a pre-trained generator and discriminator can do, measured on held-out text.

``evaluate(generator, discriminator, chunks, counts)`` returns the numbers of the model card:

- **Masked-token accuracy.** In each held-out sequence 15% of the real, non-special tokens are
  selected (seeded, ``rtd.mask_tokens``) and *all* of them replaced by ``[MASK]``;
  the generator's top-1 and top-5 accuracy at those positions (``mlm_top1``, ``mlm_top5``).
- **Unigram baseline** on the very same positions: always predict the k most frequent tokens
  of the training corpus (special tokens excluded), ``unigram_top1``, ``unigram_top5``.
- **Replaced-token detection.** The same selected positions are filled with samples of the
  generator's softmax (seeded); the discriminator scores every real non-special token. With
  y = 1 where the token differs from the original: ``rtd_auc``, the ROC AUC (the probability that
  a replaced token scores above an original one, ties counting 1/2: the Mann-Whitney rank
  statistic AUC = (R_1 - n_1 (n_1 + 1) / 2) / (n_1 n_0), R_1 the rank sum of the replaced tokens),
  and ``rtd_accuracy`` at logit 0.
- ``rtd_auc_random``: the same AUC when the selected positions hold uniform random tokens instead
  of generator samples (a second seeded draw). It tells a weak discriminator from a hard task:
  random replacements rarely fit their context, generator samples often do.
- ``mlm_loss`` and ``rtd_loss``: the two pre-training losses on these inputs.

``evaluate_everyday(generator, discriminator, tokenizer)`` measures what a user sees, on the
hand-written sets of plain everyday English in ``minideberta/data/everyday/`` (never trained or
tuned on; their README says how they were written). Three parts:

- ``sentences`` (``sentences.txt``, each sentence alone as ``[CLS] ... [SEP]``, batched with
  padding and the attention mask): the numbers above, by the very same passes (``masked_passes``),
  the unigram baseline only when the training corpus's ``counts`` are given (else ``None``), and
  ``best_constant_top1``/``best_constant_top5``: the best constant guess chosen in hindsight, the
  share of the masked positions whose original is the most frequent (one of the five most
  frequent) original among those positions. A generator below it has learnt less than a constant.
- ``cloze`` (``cloze.tsv``: a sentence with one ``[MASK]`` and its acceptable answers): ``top5``,
  the share of items where an acceptable answer is among the generator's five best pieces at the
  blank, ``top1`` where it is the best. Only answers the vocabulary holds as one piece count (the
  generator predicts one piece); ``evaluable`` items have at least one, ``not_evaluable`` none and
  are left out of the shares' denominator (as are the ``context_not_clean`` ones, expected none),
  ``top5_of_all`` counts them all as misses. The blank is framed as in pre-training (``everyday``'s
  docstring); ``typed_top1``/``typed_top5`` are the same shares with the sentence tokenized as
  typed, ``[MASK]`` and all (what ``fill-mask`` feeds the model).
- ``swap`` (``swap.tsv``: a sentence and the same with one word replaced by an implausible one):
  ``top1``, the share of swapped sentences where the discriminator's highest "replaced" logit among
  the real non-special tokens falls on a piece of the swapped word (located by aligning the two
  lines, ``everyday.swapped_span``, and the offsets of its pieces, ``everyday.word_pieces``); ``mean_rank``, the mean rank of the swapped word's best
  piece among the other tokens (1 = top; a tie counts against the model). ``chance_top1`` and
  ``chance_mean_rank``: the same for scores drawn at random (k pieces among n tokens: k / n and
  1 + (n - k) / (k + 1)), ``mean_tokens`` the mean n.

The generator is run with ``rtd.generator_forward`` (its Enhanced Mask Decoder if it has one, the
head on the selected rows), the discriminator as ``DebertaV2ForReplacedTokenDetection``, both
without caches (``no_grad``). Nothing here changes the models or a caller's random state.
"""
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata

from ...model import no_grad
from . import everyday
from .rtd import discriminator_labels, generator_forward, mask_tokens, sample_tokens, special_ids


def roc_auc(scores, labels):
    """ROC AUC of ``scores`` for binary ``labels`` (1 positive) by the rank statistic (ties: mean ranks)."""
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)  # 1-based, ties get their mean rank
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def token_counts(chunks, vocab_size):
    """How often each id occurs in ``chunks`` (any integer array)."""
    return np.bincount(np.asarray(chunks).ravel(), minlength=vocab_size)


class Passes(NamedTuple):
    """What the masked passes over a set of sequences saw, position by position."""
    targets: np.ndarray  # (M,) the original ids at the M selected positions
    top5: np.ndarray  # (M, 5) the generator's five best ids there, best first
    mlm_loss: float  # the masked-LM loss summed over the M positions
    rtd_loss: float  # the RTD loss summed over the real tokens
    n_real: int  # real tokens (attention mask 1)
    scores: np.ndarray  # (T,) discriminator logits of the real non-special tokens, generator samples in place
    labels: np.ndarray  # (T,) 1 where such a token was replaced
    random_scores: np.ndarray  # (T,) the same with uniform random tokens in place
    random_labels: np.ndarray  # (T,)


def masked_passes(generator, discriminator, batches, special_ids, mask_id, seed=1234, mask_rate=0.15):
    """Run the masking, the generator, its samples and uniform random replacements through the
    discriminator on ``batches``, an iterable of ``(ids, attention_mask)`` (B, N) arrays (the
    module docstring's protocol). Seeded: the same batches give the same ``Passes``."""
    rng = np.random.default_rng(seed)
    random_rng = np.random.default_rng(seed + 1)  # its own stream: the other numbers stay as without it
    special = np.array(sorted(set(special_ids) | {mask_id}))
    random_ids = np.setdiff1d(np.arange(generator.config.vocab_size), special)
    targets, top5, scores, labels, random_scores, random_labels = [], [], [], [], [], []
    mlm_loss, rtd_loss, n_real = 0.0, 0.0, 0
    with no_grad():
        for ids, m in batches:
            ids, m = np.asarray(ids), np.asarray(m)
            candidates = (m > 0) & ~np.isin(ids, special)
            _, selected = mask_tokens(ids, candidates, rng, mask_id, random_ids, mask_rate)
            masked = np.where(selected, mask_id, ids)
            (loss, logits), _ = generator_forward(generator, masked, m, selected, ids)
            targets.append(ids[selected])
            top5.append(np.argsort(-logits, axis=1)[:, :5])
            mlm_loss += float(loss) * int(selected.sum())
            replaced = ids.copy()
            replaced[selected] = sample_tokens(logits, rng, special)
            y = discriminator_labels(ids, replaced, m)
            out = discriminator(replaced, attention_mask=m, labels=y)
            rtd_loss += float(out.loss) * int((m > 0).sum())
            n_real += int((m > 0).sum())
            scores.append(np.asarray(out.logits)[candidates])
            labels.append(y[candidates])
            replaced[selected] = random_rng.choice(random_ids, size=int(selected.sum()))
            random_scores.append(np.asarray(discriminator(replaced, attention_mask=m).logits)[candidates])
            random_labels.append(discriminator_labels(ids, replaced, m)[candidates])
    return Passes(np.concatenate(targets), np.concatenate(top5), mlm_loss, rtd_loss, n_real, np.concatenate(scores),
                  np.concatenate(labels), np.concatenate(random_scores), np.concatenate(random_labels))


def summarize(passes, counts, special_ids):
    """The numbers of the module docstring from ``Passes``; the unigram baseline is ``None`` without ``counts``."""
    targets, n = passes.targets, len(passes.targets)
    results = {"mlm_top1": float((passes.top5[:, 0] == targets).sum()) / n,
               "mlm_top5": float((passes.top5 == targets[:, None]).any(axis=1).sum()) / n,
               "unigram_top1": None, "unigram_top5": None}
    if counts is not None:
        counts = np.asarray(counts)
        ranked = np.argsort(-np.where(np.isin(np.arange(len(counts)), special_ids), -1, counts), kind="stable")
        results.update(unigram_top1=float((targets == ranked[0]).sum()) / n,
                       unigram_top5=float(np.isin(targets, ranked[:5]).sum()) / n)
    scores, labels = passes.scores, passes.labels
    results.update(rtd_auc=roc_auc(scores, labels), rtd_auc_random=roc_auc(passes.random_scores, passes.random_labels),
                   rtd_accuracy=float(((scores > 0) == labels.astype(bool)).mean()),
                   replaced_share=float(labels.mean()), mlm_loss=passes.mlm_loss / n,
                   rtd_loss=passes.rtd_loss / passes.n_real, masked_tokens=n)
    return results


def best_constant(targets, k):
    """The share of ``targets`` the best constant guess of k ids gets, chosen in hindsight: the k most frequent."""
    _, frequency = np.unique(targets, return_counts=True)
    return float(np.sort(frequency)[::-1][:k].sum()) / len(targets)


def evaluate(generator, discriminator, chunks, counts, special_ids, mask_id, attention_mask=None, batch_size=32,
             seed=1234, mask_rate=0.15):
    """The held-out numbers (module docstring) over ``chunks`` (n, N) token ids; ``counts`` the
    training corpus's token frequencies (for the unigram baseline)."""
    chunks = np.asarray(chunks)
    mask = np.ones_like(chunks) if attention_mask is None else np.asarray(attention_mask)
    batches = ((chunks[s:s + batch_size], mask[s:s + batch_size]) for s in range(0, len(chunks), batch_size))
    passes = masked_passes(generator, discriminator, batches, special_ids, mask_id, seed, mask_rate)
    return {**summarize(passes, counts, sorted(set(special_ids) | {mask_id})), "sequences": len(chunks)}


def evaluate_everyday(generator, discriminator, tokenizer, folder=None, counts=None, batch_size=32, seed=1234,
                      mask_rate=0.15):
    """The everyday numbers (module docstring) on the sets in ``folder`` (default: the package's
    ``data/everyday``): ``{"sentences": ..., "cloze": ..., "swap": ...}``. ``counts``: the training
    corpus's token frequencies, for the unigram baseline (``None`` without)."""
    special = special_ids(tokenizer)
    lines = everyday.load_sentences(folder)
    cloze, swap = everyday.load_cloze(folder), everyday.load_swap(folder)

    def batches():
        for start in range(0, len(lines), batch_size):
            enc = tokenizer(lines[start:start + batch_size], padding=True, return_tensors="np")
            yield enc["input_ids"], enc["attention_mask"]

    passes = masked_passes(generator, discriminator, batches(), special, tokenizer.mask_token_id, seed, mask_rate)
    sentences = {**summarize(passes, counts, special + [tokenizer.mask_token_id]),
                 "best_constant_top1": best_constant(passes.targets, 1),
                 "best_constant_top5": best_constant(passes.targets, 5), "sentences": len(lines)}
    with no_grad():
        return {"sentences": sentences, "cloze": everyday.cloze_scores(generator, tokenizer, cloze, batch_size),
                "swap": everyday.swap_scores(discriminator, tokenizer, swap, special + [tokenizer.mask_token_id],
                                             batch_size)}
