"""The task models: the backbone of ``model.py`` with a head from ``heads.py`` and its loss.

Each class has transformers' name, parameter names, outputs and loss. ``forward`` runs the
backbone and the head and, given labels, the loss; ``backward()`` then returns the gradient of
that loss for every parameter, and ``backward(d_output)`` the gradient of any function of the
outputs whose derivative you pass (d_logits, or (d_start_logits, d_end_logits) for QA).
"""
import numpy as np

from . import heads, losses
from .encoder import attention_masks
from .ops import add_grads, prefixed, subtree
from .model import DebertaV2PreTrainedModel


class TaskModel(DebertaV2PreTrainedModel):
    """Shared forward/backward: encode, then ``head`` on the hidden states, then ``loss``."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_hidden_states=False, output_attentions=False):
        return self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds),
                        labels, output_hidden_states, output_attentions)

    def run(self, inputs, targets, output_hidden_states, output_attentions):
        (states, attentions, checked), cache = self.encode(**inputs, output_attentions=output_attentions,
                                                           output_hidden_states=output_hidden_states)
        fields, head_cache = self.head(states, checked)
        loss_cache = None
        if targets is not None:
            fields["loss"], loss_cache = self.loss(fields, targets)
        self.remember((cache, len(states), head_cache, loss_cache))
        return self.outputs(states, attentions, output_hidden_states, output_attentions, **fields)

    def backward(self, d_output=None):
        """Gradients of the loss (no argument) or of the outputs whose gradient ``d_output`` is."""
        cache, n_states, head_cache, loss_cache = self.take_cache()
        if d_output is None:
            if loss_cache is None:
                raise ValueError("backward() with no argument differentiates the loss: pass labels to the "
                                 "forward, or pass the gradient of the outputs to backward(d_output)")
            d_output = self.loss_backward(loss_cache)
        dstates, head_grads = self.head_backward(d_output, head_cache)
        if not isinstance(dstates, list):  # most heads read the last hidden state only
            dstates = [None] * (n_states - 1) + [dstates]
        grads = self.encode_backward(dstates, cache)
        return self.complete(add_grads(grads, head_grads))


def per_token_loss(logits, labels):
    """Cross-entropy of (B, N, C) logits against (B, N) labels, -100 ignored (token tasks, masked LM)."""
    labels = np.asarray(labels)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels have shape {labels.shape}; this head needs one label per token, shape "
                         f"{logits.shape[:-1]} (-100 where there is nothing to predict)")
    loss, cache = losses.cross_entropy_forward(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    return loss, (cache, logits.shape)


def per_token_loss_backward(cache):
    ce_cache, shape = cache
    return losses.cross_entropy_backward(1.0, ce_cache).reshape(shape)


def check_label_shape(labels, shapes, what):
    if tuple(labels.shape) not in shapes:
        raise ValueError(f"labels have shape {tuple(labels.shape)}; {what} needs labels of shape "
                         + " or ".join(str(shape) for shape in shapes))
    return labels


def classification_loss(logits, labels, config):
    """transformers' DebertaV2ForSequenceClassification loss, chosen by problem_type and labels."""
    xp = np
    labels = xp.asarray(labels)
    batch, n = logits.shape
    problem = config.problem_type
    if problem is None:
        if n == 1:
            problem = "regression"
        elif labels.ndim == 1 or labels.shape[-1] == 1:
            # transformers' default for DeBERTa counts only labels >= 0: negative labels are ignored.
            check_label_shape(labels, [(batch,), (batch, 1)], "classification (one class id per sequence)")
            labels = losses.check_class_labels(labels.reshape(-1), n, ignore_index="negative")
            if not (labels >= 0).any():  # nothing to count: transformers defines the loss as 0
                return xp.zeros((), dtype=logits.dtype), ("none", logits)
            loss, cache = losses.cross_entropy_forward(logits, xp.where(labels >= 0, labels, -100))
            return loss, ("ce", cache)
        else:
            check_label_shape(labels, [(batch, n)], "classification with probability targets")
            loss, cache = losses.soft_cross_entropy_forward(logits, labels.astype(logits.dtype))
            return loss, ("soft", cache)
    if problem == "regression":
        if labels.dtype.kind != "f":
            raise ValueError(f"regression labels must be floating point, got dtype {labels.dtype}")
        if n == 1:
            check_label_shape(labels, [(batch,), (batch, 1)], "regression (one value per sequence)")
        loss, cache = losses.mse_forward(logits.reshape(labels.shape) if n == 1 else logits,
                                         labels.astype(logits.dtype))
        return loss, ("mse", cache, logits.shape)
    if problem == "single_label_classification":
        loss, cache = losses.cross_entropy_forward(logits, labels.reshape(-1))
        return loss, ("ce", cache)
    loss, cache = losses.bce_with_logits_forward(logits, labels.astype(logits.dtype))
    return loss, ("bce", cache)


def classification_loss_backward(cache):
    kind = cache[0]
    if kind == "ce":
        return losses.cross_entropy_backward(1.0, cache[1])
    if kind == "soft":
        return losses.soft_cross_entropy_backward(1.0, cache[1])
    if kind == "mse":
        return losses.mse_backward(1.0, cache[1]).reshape(cache[2])
    if kind == "none":
        return np.zeros_like(cache[1])
    return losses.bce_with_logits_backward(1.0, cache[1])


class DebertaV2ForSequenceClassification(TaskModel):
    """[CLS] -> ContextPooler -> dropout -> classifier: ``logits`` (B, num_labels). One label means
    regression (MSE); otherwise ``problem_type`` and the labels' shape choose the loss, as in transformers."""

    @classmethod
    def head_shapes(cls, config):
        p = config.pooler_hidden_size
        return {"pooler.dense.weight": (p, p), "pooler.dense.bias": (p,),
                "classifier.weight": (config.num_labels, p), "classifier.bias": (config.num_labels,)}

    def classifier_dropout(self):
        c = self.config
        return c.hidden_dropout_prob if c.cls_dropout is None else c.cls_dropout

    def head(self, states, inputs):
        pooled, pool_cache = heads.pooler_forward(subtree(self.params, "pooler"), states[-1], self.config, self.rng)
        logits, cls_cache = heads.classifier_forward(subtree(self.params, "classifier"), pooled,
                                                     self.classifier_dropout(), self.rng)
        return {"logits": logits}, (pool_cache, cls_cache)

    def head_backward(self, dlogits, cache):
        pool_cache, cls_cache = cache
        dpooled, g_cls = heads.classifier_backward(subtree(self.params, "classifier"), dlogits, cls_cache)
        dlast, g_pool = heads.pooler_backward(subtree(self.params, "pooler"), dpooled, pool_cache)
        return dlast, {**prefixed(g_cls, "classifier"), **prefixed(g_pool, "pooler")}

    def loss(self, fields, labels):
        return classification_loss(fields["logits"], labels, self.config)

    def loss_backward(self, cache):
        return classification_loss_backward(cache)


class DebertaV2ForMultipleChoice(DebertaV2ForSequenceClassification):
    """Each (prompt, choice) pair is encoded on its own; the pooled [CLS] scores it:
    inputs (B, C, N) -> ``logits`` (B, C); loss: cross-entropy over the C choices."""

    @classmethod
    def head_shapes(cls, config):
        p = config.pooler_hidden_size
        return {"pooler.dense.weight": (p, p), "pooler.dense.bias": (p,),
                "classifier.weight": (1, p), "classifier.bias": (1,)}

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_hidden_states=False, output_attentions=False):
        grouped = input_ids if input_ids is not None else inputs_embeds
        if grouped is None or np.ndim(grouped) != (3 if input_ids is not None else 4):
            raise ValueError("multiple choice takes input_ids of shape (batch, num_choices, length) "
                             "(or inputs_embeds (batch, num_choices, length, dim))")
        self.num_choices, self.embeds_shape = np.shape(grouped)[1], np.shape(inputs_embeds)
        flat = lambda a: None if a is None else np.reshape(a, (-1,) + np.shape(a)[2:])  # noqa: E731
        inputs = dict(input_ids=flat(input_ids), attention_mask=flat(attention_mask),
                      token_type_ids=flat(token_type_ids), position_ids=flat(position_ids),
                      inputs_embeds=flat(inputs_embeds))
        return self.run(inputs, labels, output_hidden_states, output_attentions)

    def head(self, states, inputs):
        fields, cache = super().head(states, inputs)
        logits = fields["logits"].reshape(-1, self.num_choices)  # (B*C, 1) -> (B, C)
        return {"logits": logits}, (cache, self.embeds_shape)

    def head_backward(self, dlogits, cache):
        head_cache, self.embeds_shape = cache
        return super().head_backward(dlogits.reshape(-1, 1), head_cache)

    def backward(self, d_output=None):
        """As every task model's; d/d(inputs_embeds) comes back grouped, (B, C, N, dim), as it went in."""
        grads = super().backward(d_output)
        if grads.inputs_embeds is not None:
            grads.inputs_embeds = grads.inputs_embeds.reshape(self.embeds_shape)
        return grads

    def loss(self, fields, labels):
        labels = np.asarray(labels).reshape(-1)
        return losses.cross_entropy_forward(fields["logits"], labels)

    def loss_backward(self, cache):
        return losses.cross_entropy_backward(1.0, cache)


class DebertaV2ForTokenClassification(TaskModel):
    """dropout -> classifier on every token: ``logits`` (B, N, num_labels); labels (B, N), -100 ignored."""

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (config.num_labels, config.hidden_size), "classifier.bias": (config.num_labels,)}

    def head(self, states, inputs):
        logits, cache = heads.classifier_forward(subtree(self.params, "classifier"), states[-1],
                                                 self.config.hidden_dropout_prob, self.rng)
        return {"logits": logits}, cache

    def head_backward(self, dlogits, cache):
        dlast, grads = heads.classifier_backward(subtree(self.params, "classifier"), dlogits, cache)
        return dlast, prefixed(grads, "classifier")

    def loss(self, fields, labels):
        return per_token_loss(fields["logits"], labels)

    def loss_backward(self, cache):
        return per_token_loss_backward(cache)


class DebertaV2ForQuestionAnswering(TaskModel):
    """A span head: ``qa_outputs`` gives each token a start and an end score, ``start_logits`` and
    ``end_logits`` (B, N). Loss: the mean of the start and end cross-entropies; a position >= N (a
    span cut off by truncation) is ignored, as in transformers."""

    @classmethod
    def head_shapes(cls, config):
        if config.num_labels != 2:
            raise ValueError(f"question answering needs num_labels=2 (start and end), the config has {config.num_labels}")
        return {"qa_outputs.weight": (2, config.hidden_size), "qa_outputs.bias": (2,)}

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_hidden_states=False,
                output_attentions=False):
        if (start_positions is None) != (end_positions is None):
            raise ValueError("give both start_positions and end_positions, or neither")
        targets = None if start_positions is None else (start_positions, end_positions)
        return self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds),
                        targets, output_hidden_states, output_attentions)

    def head(self, states, inputs):
        logits, cache = heads.classifier_forward(subtree(self.params, "qa_outputs"), states[-1], 0.0)  # (B, N, 2)
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}, cache

    def head_backward(self, d_output, cache):
        xp = np
        dlogits = xp.stack(d_output, axis=-1)  # (B, N, 2)
        dlast, grads = heads.classifier_backward(subtree(self.params, "qa_outputs"), dlogits, cache)
        return dlast, prefixed(grads, "qa_outputs")

    def loss(self, fields, targets):
        n = fields["start_logits"].shape[1]
        caches, total = [], 0
        for name, positions, logits in zip(("start_positions", "end_positions"), targets,
                                           (fields["start_logits"], fields["end_logits"])):
            positions = np.asarray(positions).reshape(-1)
            if positions.shape[0] != logits.shape[0]:
                raise ValueError(f"{name} has {positions.shape[0]} entries for a batch of {logits.shape[0]}")
            if positions.dtype.kind not in "iu" or (positions.size and positions.min() < 0):
                raise ValueError(f"{name} must be integer token positions >= 0, got {positions}")
            loss, cache = losses.cross_entropy_forward(logits, np.where(positions < n, positions, -100))
            total, caches = total + loss / 2, caches + [cache]
        return total, caches

    def loss_backward(self, caches):
        return tuple(losses.cross_entropy_backward(0.5, cache) for cache in caches)


class DebertaV2ForReplacedTokenDetection(TaskModel):
    """DeBERTa-v3's discriminator (ELECTRA-style pre-training): ``logits`` (B, N), one per token,
    positive when the token looks replaced. Labels (B, N): 1 replaced, 0 original; the loss is
    the mean binary cross-entropy over real tokens (attention_mask), as Microsoft's
    ReplacedTokenDetectionModel computes it. transformers has no such class."""

    @classmethod
    def head_shapes(cls, config):
        d = config.hidden_size
        return {"mask_predictions.dense.weight": (d, d), "mask_predictions.dense.bias": (d,),
                "mask_predictions.LayerNorm.weight": (d,), "mask_predictions.LayerNorm.bias": (d,),
                "mask_predictions.classifier.weight": (1, d), "mask_predictions.classifier.bias": (1,)}

    def head(self, states, inputs):
        logits, cache = heads.rtd_head_forward(subtree(self.params, "mask_predictions"), states[-1], self.config)
        self.real_tokens = attention_masks(inputs.attention_mask)[1]
        return {"logits": logits}, cache

    def head_backward(self, dlogits, cache):
        dlast, grads = heads.rtd_head_backward(subtree(self.params, "mask_predictions"), dlogits, cache)
        return dlast, prefixed(grads, "mask_predictions")

    def loss(self, fields, labels):
        logits = fields["logits"]
        labels = np.asarray(labels)
        if labels.shape != logits.shape:
            raise ValueError(f"labels have shape {labels.shape}; replaced-token detection needs one 0/1 label "
                             f"per token, shape {logits.shape}")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("replaced-token labels must be 0 (original) or 1 (replaced)")
        real = self.real_tokens
        loss, cache = losses.bce_with_logits_forward(logits[real], labels[real].astype(logits.dtype))
        return loss, (cache, real, logits.shape)

    def loss_backward(self, cache):
        bce_cache, real, shape = cache
        dlogits = np.zeros(shape, dtype=bce_cache[0].dtype)
        dlogits[real] = losses.bce_with_logits_backward(1.0, bce_cache)
        return dlogits
