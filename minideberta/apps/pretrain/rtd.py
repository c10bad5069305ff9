"""DeBERTaV3's pre-training step: a generator, a discriminator and their shared embeddings.

DeBERTaV3 (He, Gao, Chen 2021) pre-trains as ELECTRA does, with replaced-token detection (RTD):

1. **Masking** (dynamic, redrawn every step): 15% of the real, non-special tokens of each
   sequence are selected; of those 80% become ``[MASK]``, 10% a random token, 10% stay.
2. **Generator** G: a masked LM with the Enhanced Mask Decoder (same width, fewer layers),
   trained on the selected positions S::

       L_MLM = -1/|S| sum_{i in S} log p_G(x_i | x~)

3. **Sampling**: at every i in S the generator's softmax (special tokens excluded) is sampled,
   x^_i ~ p_G(. | x~), from a seeded ``numpy.random.Generator``; the discriminator's input is
   x with x_i replaced by x^_i on S. Sampling is not differentiable: no gradient flows back
   through it. A sample equal to the original counts as original.
4. **Discriminator** D (``mask_predictions`` head) labels every real token replaced or original::

       L_RTD = -1/|real| sum_i [ y_i log sigma(z_i) + (1 - y_i) log(1 - sigma(z_i)) ],  y_i = [x^_i != x_i]

5. **Joint loss** ``L = L_MLM + lambda * L_RTD`` (the paper: lambda = 50), one AdamW step on both.

Embedding sharing (the paper's section 3) decides what the token-embedding tables are:

- ``nes`` (no sharing): E_G and E_D are separate tables; L_MLM updates E_G, L_RTD updates E_D.
- ``es`` (ELECTRA's sharing): one table E = E_G = E_D, updated by dL_MLM/dE + lambda dL_RTD/dE,
  so the two objectives pull it in opposite directions ("tug-of-war").
- ``gdes`` (gradient-disentangled, DeBERTaV3's default)::

      E_D = sg(E_G) + E_Delta,        E_Delta initialised to 0

  sg is stop-gradient: dL/dE_G = dL_MLM/dE_G only, and dL/dE_Delta = lambda dL_RTD/dE_D.
  The discriminator keeps reading the generator's current table through E_D, but its loss
  changes E_Delta alone. After training E_G + E_Delta is saved as D's word embeddings.

How the arrays live (``Pretrainer.params``, the dict the optimizer updates): the generator's
parameters under ``generator.<hf name>``, the discriminator's under ``discriminator.<hf name>``.
In ``gdes`` the discriminator's ``deberta.embeddings.word_embeddings.weight`` is *not* a parameter
but a buffer recomputed as E_G + E_Delta before each discriminator forward, and E_Delta is the
parameter ``discriminator.deberta.embeddings.word_embeddings.delta``. In ``es`` the discriminator's
table is the generator's array itself (only ``generator.`` holds it). In ``nes`` both are parameters.
The generator decodes only at the selected positions (its MLM head on |S| rows, not B*N).
"""
import numpy as np

from ... import deberta, losses
from ...inputs import prepare_inputs

WORD = "deberta.embeddings.word_embeddings.weight"
DELTA = "deberta.embeddings.word_embeddings.delta"
SHARING = ("gdes", "es", "nes")


def special_ids(tokenizer):
    """The ids that are never masked, sampled or scored: [PAD], [CLS], [SEP], [UNK] ([MASK] is added by
    whoever needs it: ``Pretrainer`` and the evaluation take it as ``mask_id``)."""
    return [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id]


def mask_tokens(input_ids, candidates, rng, mask_id, random_ids, rate=0.15):
    """Dynamic masking. ``candidates`` (B, N) bool: real non-special tokens. Returns
    ``(masked_ids, selected)``: round(rate * candidates) positions per row (at least one where a
    row has a candidate), of which 80% -> ``mask_id``, 10% -> a uniform draw from ``random_ids``, 10% kept."""
    masked, selected = input_ids.copy(), np.zeros(input_ids.shape, dtype=bool)
    for row in range(input_ids.shape[0]):
        where = np.flatnonzero(candidates[row])
        if where.size == 0:
            continue
        count = max(1, round(rate * where.size))
        selected[row, rng.choice(where, size=count, replace=False)] = True
    u = rng.random(input_ids.shape)  # (B, N): one draw per token, used on the selected ones
    to_mask, to_random = selected & (u < 0.8), selected & (u >= 0.8) & (u < 0.9)
    masked[to_mask] = mask_id
    masked[to_random] = rng.choice(random_ids, size=int(to_random.sum()))
    return masked, selected


def sample_tokens(logits, rng, forbidden):
    """One token per row of ``logits`` (M, V) from softmax(logits) with the ``forbidden`` ids
    excluded, by inverting the cumulative distribution at a uniform draw (float64)."""
    z = logits.astype(np.float64)
    z[:, forbidden] = -np.inf
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random(len(z)) * cdf[:, -1]
    return np.minimum((cdf <= u[:, None]).sum(axis=1), z.shape[1] - 1)


def generator_forward(model, input_ids, attention_mask, selected, labels):
    """The generator's masked-LM loss on the ``selected`` positions: encoder, EMD (when the model holds
    its position table: ``resolve_emd``), MLM head on the selected rows only (``deberta.forward``'s
    ``decode``). Returns ``(loss, logits (M, V)), cache``."""
    x = prepare_inputs(model.config, model.dtype, input_ids, attention_mask, device=model.device)
    out, cache = deberta.forward(model.params, model.config, x, "masked_lm", labels,
                                 use_emd=model.resolve_emd(None), rng=model.rng, decode=selected)
    return (out["loss"], out["logits"]), cache


def generator_backward(model, dloss, cache):
    """d(dloss * L_MLM)/d(every generator parameter), under the model's parameter names."""
    dlogits = losses.task_loss_backward(dloss, cache.loss)  # in the forward: loss = CE(logits, labels)
    _, grads = deberta.backward(model.params, dlogits, cache)
    return model.complete(grads)


def discriminator_labels(original, replaced, attention_mask):
    """1 where the discriminator's input differs from the original (a sample equal to it is original)."""
    return ((replaced != original) & (np.asarray(attention_mask) > 0)).astype(np.int64)


def share_embedding_gradients(grads, sharing):
    """Which token-embedding table gets which gradient (the module docstring's sharing modes).
    ``grads``: the generator's gradients under ``generator.<name>`` (from L_MLM) and the
    discriminator's under ``discriminator.<name>`` (already times lambda, from L_RTD), including
    ``discriminator.`` + WORD, the gradient of the table the discriminator read. Returns the
    gradients named as ``Pretrainer.params``: that entry removed and given to the table it updates.
    """
    grads = dict(grads)
    dword = grads.pop(f"discriminator.{WORD}")
    if sharing == "gdes":
        grads[f"discriminator.{DELTA}"] = dword  # sg(E_G): nothing reaches the generator's table
    elif sharing == "es":
        grads[f"generator.{WORD}"] = grads[f"generator.{WORD}"] + dword
    else:
        grads[f"discriminator.{WORD}"] = dword
    return grads


class Pretrainer:
    """A generator (``DebertaV2ForMaskedLM`` with EMD) and a discriminator
    (``DebertaV2ForReplacedTokenDetection``) with their embedding sharing; ``params`` is the one
    dict of trainable arrays (module docstring) for ``optim.AdamW``."""

    def __init__(self, generator, discriminator, sharing="gdes", rtd_weight=50.0, special_ids=(0, 1, 2, 3),
                 mask_id=None, mask_rate=0.15):
        if sharing not in SHARING:
            raise ValueError(f"sharing must be one of {', '.join(SHARING)}, got {sharing!r}")
        if generator.params[WORD].shape != discriminator.params[WORD].shape:
            raise ValueError(f"the generator's word embeddings {generator.params[WORD].shape} and the "
                             f"discriminator's {discriminator.params[WORD].shape} must have the same shape")
        self.generator, self.discriminator, self.sharing = generator, discriminator, sharing
        self.rtd_weight, self.mask_rate = float(rtd_weight), mask_rate
        vocab = generator.config.vocab_size
        self.mask_id = vocab - 1 if mask_id is None else mask_id
        self.special_ids = np.array(sorted(set(special_ids) | {self.mask_id}))
        self.random_ids = np.setdiff1d(np.arange(vocab), self.special_ids)
        self.params = {f"generator.{k}": v for k, v in generator.params.items()}
        self.params.update({f"discriminator.{k}": v for k, v in discriminator.params.items() if k != WORD})
        if sharing == "gdes":
            self.params[f"discriminator.{DELTA}"] = np.zeros_like(generator.params[WORD])
        elif sharing == "es":
            discriminator.params[WORD] = generator.params[WORD]
        else:
            self.params[f"discriminator.{WORD}"] = discriminator.params[WORD]
        self.compose()

    def compose(self):
        """Gdes: E_D <- E_G + E_Delta (in place: the discriminator reads it by reference)."""
        if self.sharing == "gdes":
            np.add(self.generator.params[WORD], self.params[f"discriminator.{DELTA}"],
                   out=self.discriminator.params[WORD])

    def discriminator_embeddings(self):
        """The discriminator's final word-embedding table (E_G + E_Delta for gdes)."""
        self.compose()
        return self.discriminator.params[WORD]

    def candidates(self, input_ids, attention_mask):
        return (np.asarray(attention_mask) > 0) & ~np.isin(input_ids, self.special_ids)

    def step(self, input_ids, attention_mask, rng, masks=None, samples=None):
        """Losses and gradients of one pre-training step: ``(metrics, grads, drawn)``, grads named
        as ``params``, drawn = (masked_ids, selected, samples, rtd labels, rtd logits).
        ``masks=(masked_ids, selected)`` and ``samples`` may be given (the tests feed the same to a
        reference); otherwise they are drawn from ``rng``."""
        input_ids, attention_mask = np.asarray(input_ids), np.asarray(attention_mask)
        if masks is None:
            masks = mask_tokens(input_ids, self.candidates(input_ids, attention_mask), rng, self.mask_id,
                                self.random_ids, self.mask_rate)
        masked_ids, selected = masks
        (mlm_loss, logits), g_cache = generator_forward(self.generator, masked_ids, attention_mask, selected, input_ids)
        if samples is None:
            samples = sample_tokens(logits, rng, self.special_ids)
        replaced = input_ids.copy()
        replaced[selected] = samples
        labels = discriminator_labels(input_ids, replaced, attention_mask)
        self.compose()
        out = self.discriminator(replaced, attention_mask=attention_mask, labels=labels)
        d_grads = self.discriminator.backward()
        g_grads = generator_backward(self.generator, 1.0, g_cache)
        grads = {f"generator.{k}": v for k, v in g_grads.items()}
        for k, v in d_grads.items():
            grads[f"discriminator.{k}"] = self.rtd_weight * v
        grads = share_embedding_gradients(grads, self.sharing)
        rtd_loss = float(out.loss)
        metrics = {"loss": float(mlm_loss) + self.rtd_weight * rtd_loss, "mlm_loss": float(mlm_loss),
                   "rtd_loss": rtd_loss, "replaced": float(labels.sum() / max(1, selected.sum()))}
        return metrics, {k: grads[k] for k in self.params}, (masked_ids, selected, samples, labels, out.logits)
