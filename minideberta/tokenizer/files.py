"""The JSON files beside ``spm.model``: ``tokenizer_config.json`` and ``special_tokens_map.json``.

Both come from disk, so every value used is checked; a bad one is a ``ValueError`` naming the file
and the key.
"""
from ..json_file import read_json_object


def read_settings(path):
    """The settings of ``tokenizer_config.json`` this tokenizer uses, their types checked."""
    config = read_json_object(path)
    if config.get("vocab_type", "spm") != "spm":
        raise ValueError(f"{path} says vocab_type={config['vocab_type']!r}; "
                         f"DeBERTa-v2/v3 use a sentencepiece ('spm') vocabulary")
    for key in ("do_lower_case", "split_by_punct"):
        if key in config and not isinstance(config[key], bool):
            raise ValueError(f"{path}: {key} must be true or false, got {config[key]!r}")
    length = config.get("model_max_length")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
        raise ValueError(f"{path}: model_max_length must be a non-negative integer, got {length!r}")
    return {key: config[key] for key in ("do_lower_case", "split_by_punct", "model_max_length")
            if config.get(key) is not None}


def check_special_tokens(path, expected):
    """``special_tokens_map.json`` may only name the tokens this tokenizer uses: ``expected`` maps
    ``pad_token``, ``mask_token``... to them. Tokens given as ``{"content": ...}`` count too."""
    for key, value in read_json_object(path).items():
        token = value.get("content") if isinstance(value, dict) else value
        if key in expected and token != expected[key]:
            raise ValueError(f"{path} sets {key} to {token!r}; minideberta's DeBERTa-v2/v3 tokenizer uses "
                             f"{expected[key]!r} (the official vocabulary's), and reads no other")
