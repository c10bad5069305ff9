"""What a pre-trained generator and discriminator can do, measured on held-out text.

``evaluate(generator, discriminator, chunks, counts)`` returns the numbers of the model card:

- **Masked-token accuracy.** In each held-out sequence 15% of the real, non-special tokens are
  selected (seeded, ``rtd_pretraining.mask_tokens``) and *all* of them replaced by ``[MASK]``;
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

The generator is run with ``rtd_pretraining.generator_forward`` (Enhanced Mask Decoder, the
head on the selected rows), the discriminator as ``DebertaV2ForReplacedTokenDetection``, both
without caches (``no_grad``). Nothing here changes the models or a caller's random state.
"""
import numpy as np
from scipy.stats import rankdata

from ..model import no_grad
from .rtd_pretraining import discriminator_labels, generator_forward, mask_tokens, sample_tokens


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


def evaluate(generator, discriminator, chunks, counts, special_ids, mask_id, attention_mask=None, batch_size=32,
             seed=1234, mask_rate=0.15):
    """The held-out numbers (module docstring) over ``chunks`` (n, N) token ids; ``counts`` the
    training corpus's token frequencies (for the unigram baseline)."""
    chunks = np.asarray(chunks)
    mask = np.ones_like(chunks) if attention_mask is None else np.asarray(attention_mask)
    rng = np.random.default_rng(seed)
    random_rng = np.random.default_rng(seed + 1)  # its own stream: the other numbers stay as without it
    special = np.array(sorted(set(special_ids) | {mask_id}))
    random_ids = np.setdiff1d(np.arange(generator.config.vocab_size), special)
    ranked = np.argsort(-np.where(np.isin(np.arange(len(counts)), special), -1, counts), kind="stable")
    top1, top5, base1, base5, n_masked, mlm_loss, rtd_loss = 0, 0, 0, 0, 0, 0.0, 0.0
    scores, labels, random_scores, random_labels, n_real = [], [], [], [], 0
    with no_grad():
        for start in range(0, len(chunks), batch_size):
            ids, m = chunks[start:start + batch_size], mask[start:start + batch_size]
            candidates = (m > 0) & ~np.isin(ids, special)
            _, selected = mask_tokens(ids, candidates, rng, mask_id, random_ids, mask_rate)
            masked = np.where(selected, mask_id, ids)
            (loss, logits), _ = generator_forward(generator, masked, m, selected, ids)
            target = ids[selected]
            order = np.argsort(-logits, axis=1)[:, :5]
            top1 += int((order[:, 0] == target).sum())
            top5 += int((order == target[:, None]).any(axis=1).sum())
            base1 += int((target == ranked[0]).sum())
            base5 += int(np.isin(target, ranked[:5]).sum())
            n_masked += int(selected.sum())
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
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    return {"mlm_top1": top1 / n_masked, "mlm_top5": top5 / n_masked, "unigram_top1": base1 / n_masked,
            "unigram_top5": base5 / n_masked, "rtd_auc": roc_auc(scores, labels),
            "rtd_auc_random": roc_auc(np.concatenate(random_scores), np.concatenate(random_labels)),
            "rtd_accuracy": float(((scores > 0) == labels.astype(bool)).mean()),
            "replaced_share": float(labels.mean()), "mlm_loss": mlm_loss / n_masked, "rtd_loss": rtd_loss / n_real,
            "masked_tokens": n_masked, "sequences": len(chunks)}
