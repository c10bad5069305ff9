"""The task models: the backbone of ``model.py`` with a head from ``heads.py`` and its loss.

Each class has transformers' name, parameter names, outputs and loss. ``forward`` runs the
backbone and the head and, given labels, the loss; ``backward()`` then returns the gradient of
that loss for every parameter, and ``backward(d_output)`` the gradient of any function of the
outputs whose derivative you pass (d_logits, or (d_start_logits, d_end_logits) for QA).

A class says what its head computes in ``head`` / ``head_backward`` and its loss in ``loss`` /
``loss_backward``; ``TaskModel`` runs them in order and keeps their caches in one ``TaskCache``.
"""
from typing import NamedTuple

from . import heads, losses
from .backend import get_xp, to_device
from .model import DebertaV2PreTrainedModel
from .params import add_grads, prefixed, subtree


class TaskCache(NamedTuple):
    backbone: object  # BackboneCache of embeddings + encoder
    n_states: int  # how many hidden states the encoder returned (L + 1)
    head: object  # the head's own cache (a NamedTuple of heads.py, or the class's)
    loss: object  # the loss's cache, None when the forward had no labels
    groups: tuple  # (B, C) for multiple choice, whose B*C sequences ran as one batch; None otherwise


class TaskModel(DebertaV2PreTrainedModel):
    """Shared forward/backward: encode, then ``head`` on the hidden states, then ``loss``."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_hidden_states=False, output_attentions=False):
        return self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds),
                        labels, output_hidden_states, output_attentions)

    def run(self, inputs, targets, output_hidden_states, output_attentions, groups=None):
        (states, attentions, checked), cache = self.encode(**inputs, output_attentions=output_attentions,
                                                           output_hidden_states=output_hidden_states)
        fields, head_cache = self.head(states, checked)
        if groups is not None:
            fields = {k: v.reshape(groups) for k, v in fields.items()}  # (B*C, 1) -> (B, C)
        loss_cache = None
        if targets is not None:
            fields["loss"], loss_cache = self.loss(fields, targets, checked)
        self.remember(TaskCache(cache, len(states), head_cache, loss_cache, groups))
        return self.outputs(states, attentions, output_hidden_states, output_attentions, **fields)

    def backward(self, d_output=None):
        """Gradients of the loss (no argument) or of the outputs whose gradient ``d_output`` is."""
        cache = self.take_cache()
        if d_output is None:
            if cache.loss is None:
                raise ValueError("backward() with no argument differentiates the loss: pass labels to the "
                                 "forward, or pass the gradient of the outputs to backward(d_output)")
            d_output = self.loss_backward(cache.loss)
        if cache.groups is not None:
            d_output = d_output.reshape(-1, 1)  # (B, C) -> (B*C, 1)
        dstates_by_index, head_grads = self.head_backward(d_output, cache.head)
        dstates = [None] * cache.n_states  # most heads read the last hidden state only
        for index, d in dstates_by_index.items():
            dstates[index] = d
        grads = self.encode_backward(dstates, cache.backbone)
        add_grads(grads, head_grads)
        if cache.groups is not None and grads.inputs_embeds is not None:  # back to (B, C, N, dim), as it came in
            grads.inputs_embeds = grads.inputs_embeds.reshape(cache.groups + grads.inputs_embeds.shape[1:])
        return self.complete(grads)

    def loss(self, fields, labels, inputs):
        """Cross-entropy per token (token classification, masked LM); other heads override this."""
        return losses.per_token_loss(fields["logits"], labels)

    def loss_backward(self, cache):
        return losses.task_loss_backward(cache)


class SequenceHeadCache(NamedTuple):
    pooler: heads.PoolerCache
    classifier: heads.ClassifierCache


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
        return {"logits": logits}, SequenceHeadCache(pool_cache, cls_cache)

    def head_backward(self, dlogits, cache):
        dpooled, g_cls = heads.classifier_backward(subtree(self.params, "classifier"), dlogits, cache.classifier)
        dlast, g_pool = heads.pooler_backward(subtree(self.params, "pooler"), dpooled, cache.pooler)
        return {-1: dlast}, {**prefixed(g_cls, "classifier"), **prefixed(g_pool, "pooler")}

    def loss(self, fields, labels, inputs):
        return losses.classification_loss(fields["logits"], labels, self.config)


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
        move = lambda a: None if a is None else to_device(a, self.device)  # noqa: E731
        input_ids, attention_mask, token_type_ids = move(input_ids), move(attention_mask), move(token_type_ids)
        position_ids, inputs_embeds = move(position_ids), move(inputs_embeds)
        grouped = input_ids if input_ids is not None else inputs_embeds
        if grouped is None or grouped.ndim != (3 if input_ids is not None else 4):
            raise ValueError("multiple choice takes input_ids of shape (batch, num_choices, length) "
                             "(or inputs_embeds (batch, num_choices, length, dim))")
        flat = lambda a: None if a is None else a.reshape((-1,) + a.shape[2:])  # noqa: E731
        inputs = dict(input_ids=flat(input_ids), attention_mask=flat(attention_mask),  # (B, C, ...) -> (B*C, ...)
                      token_type_ids=flat(token_type_ids), position_ids=flat(position_ids),
                      inputs_embeds=flat(inputs_embeds))
        # The logits come back as (B, C) and d/d(inputs_embeds) as (B, C, N, dim), grouped as they came in.
        return self.run(inputs, labels, output_hidden_states, output_attentions, groups=tuple(grouped.shape[:2]))

    def loss(self, fields, labels, inputs):
        labels = get_xp(fields["logits"]).asarray(labels).reshape(-1)
        loss, cache = losses.cross_entropy_forward(fields["logits"], labels)
        return loss, losses.TaskLossCache("cross_entropy", cache, fields["logits"].shape)


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
        return {-1: dlast}, prefixed(grads, "classifier")


class SpanLossCache(NamedTuple):
    start: losses.CrossEntropyCache  # of the start logits (B, N) against start_positions
    end: losses.CrossEntropyCache  # of the end logits against end_positions


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
        dlogits = get_xp(d_output[0]).stack(d_output, axis=-1)  # 2 x (B, N) -> (B, N, 2)
        dlast, grads = heads.classifier_backward(subtree(self.params, "qa_outputs"), dlogits, cache)
        return {-1: dlast}, prefixed(grads, "qa_outputs")

    def loss(self, fields, targets, inputs):
        """(cross-entropy of the start + of the end) / 2; positions past the sequence are ignored."""
        n = fields["start_logits"].shape[1]
        caches, total = [], 0
        for name, positions, logits in zip(("start_positions", "end_positions"), targets,
                                           (fields["start_logits"], fields["end_logits"])):
            xp = get_xp(logits)
            positions = xp.asarray(positions).reshape(-1)
            if positions.shape[0] != logits.shape[0]:
                raise ValueError(f"{name} has {positions.shape[0]} entries for a batch of {logits.shape[0]}")
            if positions.dtype.kind not in "iu" or (positions.size and int(positions.min()) < 0):
                raise ValueError(f"{name} must be integer token positions >= 0, got {positions}")
            loss, cache = losses.cross_entropy_forward(logits, xp.where(positions < n, positions, -100))
            total, caches = total + loss / 2, caches + [cache]
        return total, SpanLossCache(*caches)

    def loss_backward(self, cache):
        return tuple(losses.cross_entropy_backward(0.5, c) for c in (cache.start, cache.end))


class RTDLossCache(NamedTuple):
    bce: losses.BCECache  # of the real tokens' logits, flattened
    real: object  # (B, N) bool, the real tokens (where the loss was counted)


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
        return {"logits": logits}, cache

    def head_backward(self, dlogits, cache):
        dlast, grads = heads.rtd_head_backward(subtree(self.params, "mask_predictions"), dlogits, cache)
        return {-1: dlast}, prefixed(grads, "mask_predictions")

    def loss(self, fields, labels, inputs):
        """Mean binary cross-entropy over the real tokens (``inputs.masks.token``)."""
        logits = fields["logits"]
        xp = get_xp(logits)
        labels = xp.asarray(labels)
        if labels.shape != logits.shape:
            raise ValueError(f"labels have shape {labels.shape}; replaced-token detection needs one 0/1 label "
                             f"per token, shape {logits.shape}")
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise ValueError("replaced-token labels must be 0 (original) or 1 (replaced)")
        real = inputs.masks.token
        loss, cache = losses.bce_with_logits_forward(logits[real], labels[real].astype(logits.dtype))
        return loss, RTDLossCache(cache, real)

    def loss_backward(self, cache):
        dlogits = get_xp(cache.bce.logits).zeros(cache.real.shape, dtype=cache.bce.logits.dtype)
        dlogits[cache.real] = losses.bce_with_logits_backward(1.0, cache.bce)  # padding gets no gradient
        return dlogits
