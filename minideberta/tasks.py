"""The task models: transformers' classes over ``deberta.py``, each naming its head and loss.

Each class has transformers' name, parameter names, outputs and loss. ``forward`` checks the
inputs and runs ``deberta.forward`` with the class's ``task`` (head and loss) and, given labels,
the loss; ``backward()`` then returns the gradient of that loss for every parameter, and
``backward(d_output)`` the gradient of any function of the outputs whose derivative you pass
(d_logits, or (d_start_logits, d_end_logits) for QA). The heads' math is in ``heads.py``, the
losses' in ``losses.py``; what is here is names, shapes and the checks of the arguments.
"""
from .backend import get_xp, to_device
from .model import DebertaV2PreTrainedModel


class TaskModel(DebertaV2PreTrainedModel):
    """A model whose forward takes ``labels`` and returns ``logits`` (and ``loss``)."""

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_hidden_states=False, output_attentions=False):
        out = self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds),
                       labels, output_hidden_states, output_attentions)
        return self.task_outputs(out, output_hidden_states, output_attentions)

    def task_outputs(self, out, output_hidden_states, output_attentions):
        fields = {"logits": out["logits"]}
        if out["loss"] is not None:
            fields["loss"] = out["loss"]
        return self.outputs(out, output_hidden_states, output_attentions, **fields)


class DebertaV2ForSequenceClassification(TaskModel):
    """[CLS] -> ContextPooler -> dropout -> classifier: ``logits`` (B, num_labels). One label means
    regression (MSE); otherwise ``problem_type`` and the labels' shape choose the loss, as in transformers."""

    task = "sequence"

    @classmethod
    def head_shapes(cls, config):
        p = config.pooler_hidden_size
        return {"pooler.dense.weight": (p, p), "pooler.dense.bias": (p,),
                "classifier.weight": (config.num_labels, p), "classifier.bias": (config.num_labels,)}


class DebertaV2ForMultipleChoice(DebertaV2ForSequenceClassification):
    """Each (prompt, choice) pair is encoded on its own; the pooled [CLS] scores it:
    inputs (B, C, N) -> ``logits`` (B, C); loss: cross-entropy over the C choices."""

    task = "choice"

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
        out = self.run(inputs, labels, output_hidden_states, output_attentions, choices=grouped.shape[1])
        return self.task_outputs(out, output_hidden_states, output_attentions)


class DebertaV2ForTokenClassification(TaskModel):
    """dropout -> classifier on every token: ``logits`` (B, N, num_labels); labels (B, N), -100 ignored."""

    task = "token"

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (config.num_labels, config.hidden_size), "classifier.bias": (config.num_labels,)}


class DebertaV2ForQuestionAnswering(TaskModel):
    """A span head: ``qa_outputs`` gives each token a start and an end score, ``start_logits`` and
    ``end_logits`` (B, N). Loss: the mean of the start and end cross-entropies; a position >= N (a
    span cut off by truncation) is ignored, as in transformers."""

    task = "qa"

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
        out = self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds),
                       targets, output_hidden_states, output_attentions)
        fields = {"start_logits": out["logits"][..., 0], "end_logits": out["logits"][..., 1]}  # (B, N, 2) -> 2 x (B, N)
        if out["loss"] is not None:
            fields["loss"] = out["loss"]
        return self.outputs(out, output_hidden_states, output_attentions, **fields)

    def output_gradient(self, d_output):
        """(d_start_logits, d_end_logits) -> (B, N, 2), the gradient of the head's logits."""
        return get_xp(d_output[0]).stack(d_output, axis=-1)


class DebertaV2ForReplacedTokenDetection(TaskModel):
    """DeBERTa-v3's discriminator (ELECTRA-style pre-training): ``logits`` (B, N), one per token,
    positive when the token looks replaced. Labels (B, N): 1 replaced, 0 original; the loss is
    the mean binary cross-entropy over real tokens (attention_mask), as Microsoft's
    ReplacedTokenDetectionModel computes it. transformers has no such class."""

    task = "replaced_token"

    @classmethod
    def head_shapes(cls, config):
        d = config.hidden_size
        return {"mask_predictions.dense.weight": (d, d), "mask_predictions.dense.bias": (d,),
                "mask_predictions.LayerNorm.weight": (d,), "mask_predictions.LayerNorm.bias": (d,),
                "mask_predictions.classifier.weight": (1, d), "mask_predictions.classifier.bias": (1,)}
