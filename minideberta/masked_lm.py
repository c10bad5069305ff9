"""DebertaV2ForMaskedLM: predict the token behind each position from the encoder's output.

Two heads with the same computation (``heads.mlm_head_*``) and different names exist:
- transformers' "legacy" head ``cls.predictions.{transform.dense, transform.LayerNorm, bias}``,
  the one transformers builds by default (``config.legacy`` true);
- Microsoft's ``lm_predictions.lm_head.{dense, LayerNorm, bias}``, the one official checkpoints
  hold (transformers uses it with ``legacy=False``).
``from_pretrained`` picks the head the checkpoint holds. Both decode with the word-embedding
table (tied weights), so that table gets gradient from the input lookup and from the decoder.

With Microsoft's head the model also keeps Microsoft's absolute position table
(``deberta.embeddings.position_embeddings.weight``, which transformers drops for v3 models)
and decodes through the Enhanced Mask Decoder (``emd.py``) as the checkpoint was trained.
"""
from . import heads
from .backend import to_numpy
from .tasks import TaskModel

POSITIONS = "deberta.embeddings.position_embeddings.weight"


class DebertaV2ForMaskedLM(TaskModel):
    """``logits`` (B, N, vocab_size); labels (B, N) with -100 on positions not to predict.

    ``forward(..., emd=None)``: None decodes as the checkpoint was trained (the Enhanced Mask
    Decoder with Microsoft's head and its position table, the plain last layer otherwise);
    True/False force it. ``use_emd`` records what the last forward did.
    """

    task = "masked_lm"
    tied = {"cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
            "cls.predictions.decoder.bias": "cls.predictions.bias"}
    use_emd = False

    @classmethod
    def head_names(cls, config):
        return heads.mlm_head_names(config)

    @classmethod
    def head_shapes(cls, config):
        names = cls.head_names(config)
        width = config.embedding_size if config.legacy else config.hidden_size
        if not config.legacy and config.embedding_size != config.hidden_size:
            raise ValueError(f"Microsoft's MLM head (legacy=False) decodes hidden states with the word embeddings, "
                             f"so embedding_size ({config.embedding_size}) must equal hidden_size ({config.hidden_size})")
        return {f"{names['dense']}.weight": (width, config.hidden_size), f"{names['dense']}.bias": (width,),
                f"{names['LayerNorm']}.weight": (width,), f"{names['LayerNorm']}.bias": (width,),
                names["bias"]: (config.vocab_size,)}

    @classmethod
    def optional_shapes(cls, config):
        """Microsoft's checkpoints keep the absolute position table for EMD even when the input
        does not use it; transformers' layout (and a fresh model) lacks it, and then EMD is off."""
        if config.position_biased_input:
            return {}
        return {POSITIONS: (config.max_position_embeddings, config.embedding_size)}

    @classmethod
    def adapt_config(cls, config, state):
        """Use the head the checkpoint holds: Microsoft's if it has ``lm_predictions.*`` arrays."""
        has_microsoft = any(k.startswith("lm_predictions.") for k in state)
        has_legacy = any(k.startswith("cls.predictions.") for k in state)
        if has_microsoft != has_legacy and config.legacy != has_legacy:
            config = type(config).from_dict({**config.to_dict(), "legacy": has_legacy})
        return config

    def head_params(self):
        """The MLM head's arrays as ``heads.mlm_head_forward`` takes them (dense.*, LayerNorm.*, bias)."""
        return heads.mlm_head_params(self.params, self.config)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_hidden_states=False, output_attentions=False, emd=None):
        self.use_emd = self.resolve_emd(emd)
        if self.use_emd:
            self.check_positions(input_ids, inputs_embeds, position_ids)
        out = self.run(dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds),
                       labels, output_hidden_states, output_attentions, use_emd=self.use_emd)
        return self.task_outputs(out, output_hidden_states, output_attentions)

    def check_positions(self, input_ids, inputs_embeds, position_ids):
        """Refuse an input longer than the Enhanced Mask Decoder's absolute position table."""
        rows = self.params[POSITIONS].shape[0]
        if position_ids is not None:
            longest = int(to_numpy(position_ids).max()) + 1 if to_numpy(position_ids).size else 0
        else:
            longest = (input_ids if input_ids is not None else inputs_embeds[..., 0]).shape[-1]
        if longest > rows:
            raise ValueError(f"the input has {longest} positions, but the Enhanced Mask Decoder's absolute position "
                             f"table holds {rows} (max_position_embeddings): cut the text to at most {rows} tokens, "
                             f"e.g. tokenizer(text, truncation=True, max_length={rows}), or decode with emd=False")

    def resolve_emd(self, emd):
        """Whether a forward with this ``emd`` argument decodes through the Enhanced Mask Decoder."""
        if self.config.position_biased_input:
            return False  # positions are in the input already: EMD is the plain last layer
        available = POSITIONS in self.params
        if emd is None:
            return available and not self.config.legacy
        if emd and not available:
            raise ValueError(f"EMD needs the absolute position table {POSITIONS}, which this model does not hold "
                             "(transformers drops it when it saves a v3 model); load Microsoft's checkpoint, "
                             "or use emd=False")
        return bool(emd)
