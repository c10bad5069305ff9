"""The checks of a ``DebertaV2Config``: every field's type and range, then how the fields fit together.

config.json is read from disk: anything may be in it. ``check_config_types`` refuses, naming the
field, a value of the wrong type or out of range before anything is derived from it; ``config_labels``
reads the labels (``id2label`` keys may be strings, as JSON stores them); ``check_config`` checks the
finished config (sizes that divide, known activations and attention terms, probabilities in [0, 1),
buckets that fit the span). Each raises ``ValueError`` with what was wrong and what to use instead;
``DebertaV2Config.from_pretrained`` puts the file's name in front. Generic argument checks (an
integer, a compute dtype) are in ``checks.py``.
"""
import math
import numbers

from .checks import check_integer

ACTIVATIONS = ("gelu", "gelu_new", "relu", "tanh", "silu")
POSITION_ATTENTION_TYPES = ("c2p", "p2c")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

# The largest size a field may hold: far above any real model, low enough that a damaged file
# (num_hidden_layers = 2**40) is refused here rather than building for ever.
MAX_SIZE = 2**31 - 1
MAX_LABELS = 2**20  # labels are named one by one (LABEL_0, LABEL_1...): a million is plenty
SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings", "embedding_size", "pooler_hidden_size", "attention_head_size",
         "type_vocab_size", "conv_kernel_size", "conv_groups")
SIGNED = ("max_relative_positions", "position_buckets")  # below 1: "use the default" (see max_relative)
FLAGS = ("relative_attention", "position_biased_input", "share_att_key", "legacy", "tie_word_embeddings")
STRINGS = ("hidden_act", "pooler_hidden_act", "conv_act", "norm_rel_ebd", "model_type")


def _is_int(value):
    """A whole number as Python or NumPy holds it (stored as int by _validate); not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config_types(values):
    """Refuse, naming the field, every value of the wrong type or out of range, before anything is
    derived from it (config.json is read from disk: anything may be in it)."""
    for name in SIZES:
        value = values[name]
        if value is None and name in ("embedding_size", "pooler_hidden_size", "attention_head_size"):
            continue
        low = 0 if name in ("type_vocab_size", "conv_kernel_size") else 1
        values[name] = check_integer(value, name)  # the type (one validator for the package) ...
        if not low <= values[name] <= MAX_SIZE:  # ... and the range
            kind = "positive" if low else "non-negative"
            raise ValueError(f"{name} must be a {kind} integer (at most {MAX_SIZE}), got {value!r}")
    for name in SIGNED:
        values[name] = check_integer(values[name], name)
        if abs(values[name]) > MAX_SIZE:
            raise ValueError(f"{name} must be an integer of at most {MAX_SIZE} in size (below 1 for the default), "
                             f"got {values[name]!r}")
    for name in FLAGS:
        if not isinstance(values[name], bool):
            raise ValueError(f"{name} must be true or false, got {values[name]!r}")
    for name in STRINGS:
        if not isinstance(values[name], str):
            raise ValueError(f"{name} must be a string, got {values[name]!r}")
    pad = values["pad_token_id"]
    if pad is not None and (not _is_int(pad) or pad < 0):
        raise ValueError(f"pad_token_id must be null or a non-negative integer, got {pad!r}")
    types = values["pos_att_type"]
    if not (types is None or isinstance(types, str)
            or (isinstance(types, (list, tuple)) and all(isinstance(t, str) for t in types))):
        raise ValueError(f"pos_att_type must be null, a string such as 'p2c|c2p' or a list of strings, got {types!r}")
    if not is_number(values["initializer_range"]) or values["initializer_range"] < 0:
        raise ValueError(f"initializer_range must be a number >= 0, got {values['initializer_range']!r}")
    if values["problem_type"] is not None and not isinstance(values["problem_type"], str):
        raise ValueError(f"problem_type must be null or a string, got {values['problem_type']!r}")


def config_labels(id2label, num_labels):
    """``{int id: str label}`` from config.json's ``id2label`` (keys may be strings) or ``num_labels``."""
    if num_labels is not None and (not _is_int(num_labels) or not 0 <= num_labels <= MAX_LABELS):
        raise ValueError(f"num_labels must be an integer from 0 to {MAX_LABELS}, got {num_labels!r}")
    if id2label is None:
        return {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
    if not isinstance(id2label, dict):
        raise ValueError(f"id2label must map label ids to names, got {type(id2label).__name__}")
    labels = {}
    for key, label in id2label.items():
        if _is_int(key):
            index = key
        elif isinstance(key, str) and key.strip().lstrip("-").isdigit():
            index = int(key)
        else:
            raise ValueError(f"id2label keys must be integers (or their strings), got {key!r}")
        if not isinstance(label, str):
            raise ValueError(f"id2label[{key!r}] must be a string, got {label!r}")
        labels[index] = label
    if sorted(labels) != list(range(len(labels))):
        raise ValueError(f"id2label must number its labels 0 to {len(labels) - 1}, got ids {sorted(labels)[:10]}")
    if num_labels is not None and num_labels != len(labels):
        raise ValueError(f"num_labels={num_labels} but id2label has {len(labels)} entries; give one or make them agree")
    return labels


def check_config(config):
    """Refuse, naming the field, a config whose values do not fit together (sizes that do not divide, unknown
    activations or attention terms, probabilities outside [0, 1)...); sizes are stored as int."""
    def positive_int(name):
        setattr(config, name, check_integer(getattr(config, name), name, minimum=1))

    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "embedding_size", "pooler_hidden_size"):
        positive_int(name)
    if config.hidden_size % config.num_attention_heads != 0:
        raise ValueError(
            f"hidden_size ({config.hidden_size}) is not a multiple of num_attention_heads "
            f"({config.num_attention_heads}); choose sizes where hidden_size % num_attention_heads == 0")
    positive_int("attention_head_size")
    if config.all_head_size != config.hidden_size:
        raise ValueError(
            f"num_attention_heads * attention_head_size = {config.all_head_size} must equal hidden_size "
            f"({config.hidden_size}): the attention output layer maps hidden_size to hidden_size")
    if config.pooler_hidden_size != config.hidden_size:
        raise ValueError(f"pooler_hidden_size ({config.pooler_hidden_size}) must equal hidden_size ({config.hidden_size}): "
                         "the pooler reads the [CLS] hidden state and maps it to a vector of the same size")
    for name in ("hidden_act", "pooler_hidden_act", "conv_act"):
        if getattr(config, name) not in ACTIVATIONS:
            raise ValueError(f"{name}={getattr(config, name)!r} is not a known activation; use one of {ACTIVATIONS}")
    unknown = [t for t in config.pos_att_type if t not in POSITION_ATTENTION_TYPES]
    if unknown:
        raise ValueError(f"pos_att_type has unknown entries {unknown}; use a subset of {POSITION_ATTENTION_TYPES}")
    if config.problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type={config.problem_type!r} is not one of {PROBLEM_TYPES}")
    config.type_vocab_size = check_integer(config.type_vocab_size, "type_vocab_size", minimum=0)
    config.conv_kernel_size = check_integer(config.conv_kernel_size, "conv_kernel_size", minimum=0)
    if config.conv_kernel_size > 0 and config.conv_kernel_size % 2 == 0:
        raise ValueError(f"conv_kernel_size must be 0 (no convolution) or an odd positive integer, "
                         f"got {config.conv_kernel_size!r}: an even kernel would change the sequence length")
    if config.conv_kernel_size and config.hidden_size % config.conv_groups != 0:
        raise ValueError(f"conv_groups ({config.conv_groups}) must divide hidden_size ({config.hidden_size})")
    unknown_norms = [t.strip() for t in config.norm_rel_ebd.lower().split("|") if t.strip() not in ("none", "layer_norm")]
    if unknown_norms:
        raise ValueError(f"norm_rel_ebd has unknown entries {unknown_norms}; use 'none' or 'layer_norm'")
    if config.relative_attention and config.position_buckets > 0 and config.max_relative <= config.position_buckets // 2 + 1:
        raise ValueError(
            f"position_buckets={config.position_buckets} needs max_relative_positions (or max_position_embeddings "
            f"when max_relative_positions < 1) above {config.position_buckets // 2 + 1}, got {config.max_relative}: "
            "log buckets spread the distances from position_buckets/2 up to that maximum")
    if config.relative_attention and config.position_span < 1:
        raise ValueError("relative_attention needs position_buckets > 0 or max_relative_positions/"
                         "max_position_embeddings >= 1")
    if not (is_number(config.layer_norm_eps) and config.layer_norm_eps > 0 and math.isfinite(config.layer_norm_eps)):
        raise ValueError(f"layer_norm_eps must be a positive number, got {config.layer_norm_eps!r}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "pooler_dropout", "cls_dropout"):
        value = getattr(config, name)
        if not (value is None and name == "cls_dropout") and not (is_number(value) and 0 <= value < 1):
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if config.pad_token_id is not None and config.pad_token_id >= config.vocab_size:
        raise ValueError(f"pad_token_id ({config.pad_token_id}) must be a row of the word embeddings, "
                         f"below vocab_size ({config.vocab_size})")
