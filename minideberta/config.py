"""DebertaV2Config: the hyper-parameters of a DeBERTa-v2/v3 model, read from a Hugging Face ``config.json``.

Every key transformers' ``DebertaV2Config`` knows has the same name, meaning and default here,
including the ones transformers' modelling code reads with ``getattr(config, key, default)``
(``share_att_key``, ``position_buckets``, ``norm_rel_ebd``, ``conv_kernel_size``, ...). Keys this
file does not know (``architectures``, ``transformers_version``, ...) are kept and written back, so
a config survives a load/save round trip.

A folder written by Microsoft's own trainer (github.com/microsoft/DeBERTa, ``DeBERTa/apps/run.py``)
holds ``model_config.json`` instead: the ``__dict__`` of its ``ModelConfig``, with the same key
names as transformers' but ``padding_idx`` for ``pad_token_id`` and its own defaults for absent
keys (``MICROSOFT_DEFAULTS``). ``from_pretrained`` reads it when a folder has no ``config.json``.
"""
import json
import math
import numbers
from pathlib import Path

from .checks import check_integer
from .json_file import read_json_object

ACTIVATIONS = ("gelu", "gelu_new", "relu", "tanh", "silu")
POSITION_ATTENTION_TYPES = ("c2p", "p2c")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

# transformers' defaults (DebertaV2Config, PreTrainedConfig and the getattr defaults of modeling_deberta_v2).
DEFAULTS = {
    "vocab_size": 128100, "hidden_size": 1536, "num_hidden_layers": 24, "num_attention_heads": 24,
    "intermediate_size": 6144, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 0, "initializer_range": 0.02, "layer_norm_eps": 1e-7,
    "relative_attention": False, "max_relative_positions": -1, "position_buckets": -1, "pad_token_id": 0,
    "position_biased_input": True, "pos_att_type": None, "share_att_key": False, "norm_rel_ebd": "none",
    "embedding_size": None,  # None: same as hidden_size
    "attention_head_size": None,  # None: hidden_size // num_attention_heads
    "conv_kernel_size": 0,  # 0: no nGiE convolution
    "conv_groups": 1, "conv_act": "tanh",
    "pooler_hidden_size": None,  # None: same as hidden_size
    "pooler_dropout": 0.0, "pooler_hidden_act": "gelu",
    "cls_dropout": None,  # None: hidden_dropout_prob
    "legacy": True, "tie_word_embeddings": True, "problem_type": None, "model_type": "deberta-v2",
}

CONFIG_FILE, MICROSOFT_CONFIG_FILE = "config.json", "model_config.json"
# Microsoft's ModelConfig (DeBERTa/deberta/config.py) and the getattr defaults of its modules
# (pos_att_type: DeBERTa/deberta/disentangled_attention.py), where they differ from transformers'.
MICROSOFT_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                      "intermediate_size": 3072, "pos_att_type": "c2p"}
MICROSOFT_NAMES = {"padding_idx": "pad_token_id"}


def config_file(folder):
    """``(path, is_microsoft)`` of the config of a model folder: config.json, else model_config.json."""
    folder = Path(folder)
    if (folder / CONFIG_FILE).is_file() or not (folder / MICROSOFT_CONFIG_FILE).is_file():
        return folder / CONFIG_FILE, False
    return folder / MICROSOFT_CONFIG_FILE, True


# ---- a config's fields (config.json is read from disk: anything may be in it) ----
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


class DebertaV2Config:
    """Hyper-parameters of a DeBERTa-v2/v3 model.

    ``DebertaV2Config(hidden_size=384, num_hidden_layers=12, ...)`` builds one from keywords;
    ``DebertaV2Config.from_pretrained(folder_or_json)`` reads a ``config.json``. Labels come from
    ``id2label`` (keys may be strings, as JSON stores them) or ``num_labels`` (default 2).
    """

    def __init__(self, **kwargs):
        values = dict(DEFAULTS)
        values.update(kwargs)
        id2label = values.pop("id2label", None)
        num_labels = values.pop("num_labels", None)
        values.pop("label2id", None)  # derived from id2label
        self.id2label = config_labels(id2label, num_labels)
        check_config_types(values)
        if isinstance(values["pos_att_type"], str):
            values["pos_att_type"] = [t.strip() for t in values["pos_att_type"].lower().split("|")]
        values["pos_att_type"] = list(values["pos_att_type"] or [])
        for key in ("embedding_size", "pooler_hidden_size"):
            if values[key] is None:
                values[key] = values["hidden_size"]
        if values["attention_head_size"] is None and values["hidden_size"] % values["num_attention_heads"] == 0:
            values["attention_head_size"] = values["hidden_size"] // values["num_attention_heads"]
        for key, value in values.items():
            setattr(self, key, value)
        self._validate()

    # ---- derived quantities used by the model ----
    @property
    def num_labels(self):
        return len(self.id2label)

    @property
    def label2id(self):
        return {v: k for k, v in self.id2label.items()}

    @property
    def all_head_size(self):
        """Width of the concatenated heads: num_attention_heads * attention_head_size."""
        return self.num_attention_heads * self.attention_head_size

    @property
    def max_relative(self):
        """The max_position of the log buckets: max_relative_positions, or max_position_embeddings if < 1."""
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def position_span(self):
        """k, half the number of rows in the relative-embedding table (which has 2k rows)."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative

    @property
    def rel_layer_norm(self):
        """Whether the relative-embedding table goes through the encoder's LayerNorm first."""
        return "layer_norm" in [t.strip() for t in self.norm_rel_ebd.lower().split("|")]

    # ---- validation ----
    def _validate(self):
        def positive_int(name):
            setattr(self, name, check_integer(getattr(self, name), name, minimum=1))

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "embedding_size", "pooler_hidden_size"):
            positive_int(name)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); choose sizes where hidden_size % num_attention_heads == 0")
        positive_int("attention_head_size")
        if self.all_head_size != self.hidden_size:
            raise ValueError(
                f"num_attention_heads * attention_head_size = {self.all_head_size} must equal hidden_size "
                f"({self.hidden_size}): the attention output layer maps hidden_size to hidden_size")
        if self.pooler_hidden_size != self.hidden_size:
            raise ValueError(f"pooler_hidden_size ({self.pooler_hidden_size}) must equal hidden_size ({self.hidden_size}): "
                             "the pooler reads the [CLS] hidden state and maps it to a vector of the same size")
        for name in ("hidden_act", "pooler_hidden_act", "conv_act"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name}={getattr(self, name)!r} is not a known activation; use one of {ACTIVATIONS}")
        unknown = [t for t in self.pos_att_type if t not in POSITION_ATTENTION_TYPES]
        if unknown:
            raise ValueError(f"pos_att_type has unknown entries {unknown}; use a subset of {POSITION_ATTENTION_TYPES}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type={self.problem_type!r} is not one of {PROBLEM_TYPES}")
        self.type_vocab_size = check_integer(self.type_vocab_size, "type_vocab_size", minimum=0)
        self.conv_kernel_size = check_integer(self.conv_kernel_size, "conv_kernel_size", minimum=0)
        if self.conv_kernel_size > 0 and self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be 0 (no convolution) or an odd positive integer, "
                             f"got {self.conv_kernel_size!r}: an even kernel would change the sequence length")
        if self.conv_kernel_size and self.hidden_size % self.conv_groups != 0:
            raise ValueError(f"conv_groups ({self.conv_groups}) must divide hidden_size ({self.hidden_size})")
        unknown_norms = [t.strip() for t in self.norm_rel_ebd.lower().split("|") if t.strip() not in ("none", "layer_norm")]
        if unknown_norms:
            raise ValueError(f"norm_rel_ebd has unknown entries {unknown_norms}; use 'none' or 'layer_norm'")
        if self.relative_attention and self.position_buckets > 0 and self.max_relative <= self.position_buckets // 2 + 1:
            raise ValueError(
                f"position_buckets={self.position_buckets} needs max_relative_positions (or max_position_embeddings "
                f"when max_relative_positions < 1) above {self.position_buckets // 2 + 1}, got {self.max_relative}: "
                "log buckets spread the distances from position_buckets/2 up to that maximum")
        if self.relative_attention and self.position_span < 1:
            raise ValueError("relative_attention needs position_buckets > 0 or max_relative_positions/"
                             "max_position_embeddings >= 1")
        if not (is_number(self.layer_norm_eps) and self.layer_norm_eps > 0 and math.isfinite(self.layer_norm_eps)):
            raise ValueError(f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "pooler_dropout", "cls_dropout"):
            value = getattr(self, name)
            if not (value is None and name == "cls_dropout") and not (is_number(value) and 0 <= value < 1):
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be a row of the word embeddings, "
                             f"below vocab_size ({self.vocab_size})")

    # ---- reading and writing ----
    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    @classmethod
    def from_microsoft(cls, d):
        """A config from the dict of Microsoft's ``model_config.json`` (its names and defaults)."""
        return cls(**{**MICROSOFT_DEFAULTS, **{MICROSOFT_NAMES.get(k, k): v for k, v in d.items()}})

    @classmethod
    def from_pretrained(cls, path):
        """Read ``config.json`` (or Microsoft's ``model_config.json``) from a folder, or a JSON file given
        by its path (a file named model_config.json is read as Microsoft's)."""
        path = Path(path)
        file, microsoft = config_file(path) if path.is_dir() else (path, path.name == MICROSOFT_CONFIG_FILE)
        if not file.is_file():
            raise FileNotFoundError(f"no config.json at {file}; a model folder needs a config.json (or Microsoft's "
                                    "model_config.json) next to its weights")
        raw = read_json_object(file)
        try:
            return cls.from_microsoft(raw) if microsoft else cls.from_dict(raw)
        except ValueError as error:
            raise ValueError(f"{file}: {error}") from None
        except (TypeError, AttributeError) as error:  # a value of the wrong JSON type, e.g. "pos_att_type": 5
            raise ValueError(f"{file} is not a DeBERTa-v2 config: a value has the wrong type ({error})") from None

    def to_dict(self):
        """Every hyper-parameter as transformers writes it (``id2label`` keys as strings)."""
        d = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        d["pos_att_type"] = list(self.pos_att_type)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        d["label2id"] = self.label2id
        return d

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(self.to_json_string(), encoding="utf-8")

    def __eq__(self, other):
        return isinstance(other, DebertaV2Config) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"DebertaV2Config {self.to_json_string()}"
