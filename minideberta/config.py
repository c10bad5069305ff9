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
from pathlib import Path

from .config_checks import check_config, check_config_types, config_labels
from .json_file import read_json_object

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
        check_config(self)

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
