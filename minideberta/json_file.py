"""Read the JSON files of a model folder (config.json, tokenizer_config.json, shard indices...).

Every failure is a ``ValueError`` naming the file: bytes that are not UTF-8, text that is not
JSON, JSON nested too deeply to parse, or a document that is not an object.
"""
from pathlib import Path


def read_json_object(path):
    """The JSON object in ``path`` as a dict; ``FileNotFoundError`` when there is no such file."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file)")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}): the file is damaged") from None
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"{path} nests JSON too deeply to read: the file is damaged") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} should hold a JSON object ({{...}}), it holds a {type(value).__name__}")
    return value
