"""Find a model and say what it holds: a local folder, or a Hugging Face hub id fetched into HF's cache.

    folder = resolve_model("microsoft/deberta-v3-base")     # or a local folder, returned as is
    checkpoint_heads(folder)       # {"masked-lm": "masked-LM", "replaced-token-detection": ...}

(Building the model of a head from them is ``minideberta.loading.load_model``, a layer up: this file
reads files and names what they hold, it does not know the model classes.)

A model folder holds ``config.json``, the sentencepiece vocabulary ``spm.model`` (with an optional
``tokenizer_config.json``) and the weights, ``model.safetensors`` or ``pytorch_model.bin``. Official
Microsoft repositories ship only ``pytorch_model.bin`` + ``spm.model``; that is enough. A folder of
Microsoft's own trainer (``model_config.json``, ``pytorch.model-<step>.bin``) is one too: which file
is read is ``weights.CHECKPOINT_FILES``' order, here as everywhere.

Downloads go through ``huggingface_hub`` (an optional dependency) into its usual cache, with its
progress bars. When the hub cannot be reached the files already in the cache are used; when they
are not there either, the error names the files to fetch by hand and where to put them.
"""
import re
from pathlib import Path

from ..config import config_file
from ..json_file import read_json_object
from ..tokenizer.deberta_tokenizer import CONFIG_FILE, VOCAB_FILE
from . import weights
from .safetensors_file import read_shapes

CONFIG = "config.json"
# A repository's checkpoint: the one weights.choose_checkpoint picks of its files is fetched, never two.
CHECKPOINT_FILES = weights.CHECKPOINT_FILES
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the usual two, for messages (the order: CHECKPOINT_FILES)
# The heads a checkpoint may hold (``heads_from_shapes``), by the names the commands use.
HEAD_NAMES = {"masked-lm": "masked-LM", "replaced-token-detection": "replaced-token detection",
              "sequence-classification": "sequence classification", "token-classification": "token classification",
              "question-answering": "question answering", "multiple-choice": "multiple choice"}
# The model folders committed in the repository (an editable install or a checkout sees them): the
# official v3 vocabulary, and the models minideberta pre-trained itself. A bare name such as
# ``deberta-v3-tokenizer`` that is not a path on disk is looked up here before the hub.
EMBEDDED = Path(__file__).resolve().parents[2] / "weights"
# owner/name or name, as the hub spells repository ids; anything else can only be a path.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class MissingHeadError(ValueError):
    """The checkpoint lacks the head a task needs; ``held`` maps the heads it has to their descriptions."""

    def __init__(self, folder, wanted, held):
        self.folder, self.wanted, self.held = folder, wanted, held
        has = "; ".join(held.values()) if held else "no task head (a bare encoder)"
        super().__init__(f"{folder} has no {HEAD_NAMES[wanted]} head; it holds: {has}")


# ---- where the files are ----
def resolve_model(name_or_path, progress=True):
    """The folder holding the model: ``name_or_path`` itself if it is a path, else a hub id downloaded.

    Raises FileNotFoundError, with what to do, for a folder that does not exist or lacks
    ``config.json``, and for a hub model that can be neither downloaded nor found in the cache.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists() or not _HUB_ID.fullmatch(text):
        return _local_folder(path)
    if embedded_folder(text) is not None:
        return embedded_folder(text)
    return _download(text, progress)


def embedded_folder(name):
    """The committed folder ``weights/<name>`` when ``name`` is a bare folder name found there, else None."""
    if "/" in name or name in (".", ".."):
        return None
    folder = EMBEDDED / name
    return folder if folder.is_dir() else None


def _local_folder(path):
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: pass a model folder (config.json, {VOCAB_FILE}, "
                                f"{' or '.join(WEIGHT_FILES)}) or a Hugging Face hub id such as "
                                "microsoft/deberta-v3-base")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is a file; pass the folder that holds it with config.json and {VOCAB_FILE}")
    if not config_file(path)[0].is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG}: a model folder holds {CONFIG}, {VOCAB_FILE} and "
                                f"{' or '.join(WEIGHT_FILES)} (or Microsoft's model_config.json and "
                                "pytorch.model-<step>.bin)")
    return path


def _download(repo_id, progress):
    """Fetch config, vocabulary and one weights file of ``repo_id``; return the snapshot folder."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:
        raise FileNotFoundError(f"{repo_id} is not a local folder, and downloading it from the Hugging Face hub "
                                "needs huggingface_hub: pip install huggingface_hub (or pass a folder)") from None
    # Connection problems are OSError (requests, offline mode) or, in huggingface_hub >= 1.0, httpx errors.
    unreachable = (OSError, getattr(errors, "HTTPError", OSError))
    silenced = progress is False and not huggingface_hub.utils.are_progress_bars_disabled()
    if silenced:
        huggingface_hub.utils.disable_progress_bars()
    try:
        return _fetch(huggingface_hub, repo_id)
    except _NotACheckpoint as error:
        raise FileNotFoundError(str(error)) from None
    except errors.RepositoryNotFoundError:
        raise FileNotFoundError(f"{repo_id} is neither a local folder nor a model on the Hugging Face hub "
                                "(a private or gated one needs `hf auth login`)") from None
    except unreachable as error:
        cached = _from_cache(huggingface_hub, repo_id)
        if cached is None:
            raise FileNotFoundError(_offline_message(repo_id, error)) from None
        return cached
    finally:
        if silenced:
            huggingface_hub.utils.enable_progress_bars()


class _NotACheckpoint(Exception):
    """The repository lacks a file minideberta needs (kept apart from the network's OSErrors)."""


def _fetch(huggingface_hub, repo_id):
    listed = set(huggingface_hub.list_repo_files(repo_id))
    paths = [huggingface_hub.hf_hub_download(repo_id, name) for name in _wanted_files(repo_id, listed)]
    index = next((p for p in paths if p.endswith(".index.json")), None)
    if index:  # a sharded checkpoint: its shards are named in the index
        shards = weights.shard_files(index)  # bare names inside the repository's folder, checked
        paths += [huggingface_hub.hf_hub_download(repo_id, shard.name) for shard in shards]
    return Path(paths[0]).parent


def _wanted_files(repo_id, listed):
    """config, vocabulary, tokenizer_config if there is one, and one checkpoint (safetensors first)."""
    weights_file = weights.choose_checkpoint(listed)
    missing = [name for name in (CONFIG, VOCAB_FILE) if name not in listed]
    missing += [] if weights_file else [" or ".join(WEIGHT_FILES)]
    if missing:
        raise _NotACheckpoint(f"the hub repository {repo_id} has no {', '.join(missing)}: it is not a "
                              "DeBERTa-v2/v3 checkpoint minideberta can read")
    optional = [CONFIG_FILE] if CONFIG_FILE in listed else []
    return [CONFIG, VOCAB_FILE, *optional, weights_file]


def _from_cache(huggingface_hub, repo_id):
    """The cached snapshot folder of ``repo_id`` if it holds config, vocabulary and weights, else None."""
    def cached(name):
        try:
            return huggingface_hub.hf_hub_download(repo_id, name, local_files_only=True)
        except (OSError, ValueError):
            return None

    if cached(CONFIG) is None or cached(VOCAB_FILE) is None:
        return None
    found = next((path for path in map(cached, CHECKPOINT_FILES + (weights.TF_FILE,)) if path), None)
    return None if found is None else Path(found).parent


def _offline_message(repo_id, error):
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"{repo_id} is not a local folder, and it can neither be downloaded from the Hugging Face hub "
            f"nor found in its cache ({reason}).\n"
            f"  Download these files from https://huggingface.co/{repo_id}/tree/main into one folder:\n"
            f"    {CONFIG}, {VOCAB_FILE}, {CONFIG_FILE} (if the repository has it), and {WEIGHT_FILES[0]}\n"
            f"    if it has one, otherwise {WEIGHT_FILES[1]};\n"
            f"  then pass that folder in place of {repo_id}.")


# ---- what a checkpoint holds ----
def checkpoint_shapes(folder):
    """``{name: shape}`` of the checkpoint in ``folder`` (the file weights.load_state_dict reads).
    safetensors: only the header is read."""
    path = weights.checkpoint_file(folder)
    if path.name == WEIGHT_FILES[0]:
        return read_shapes(path)
    if path.name == f"{WEIGHT_FILES[0]}.index.json":  # weights.load_state_dict's order
        return {k: v for shard in weights.shard_files(path) for k, v in read_shapes(shard).items()}
    return {name: array.shape for name, array in weights.load_state_dict(path).items()}


def heads_from_shapes(shapes, architectures=()):
    """Heads present in a checkpoint of parameter ``shapes``: ``{head: description}``.

    ``architectures`` (config.json's list) separates sequence classification from multiple
    choice, whose parameters look alike when the classifier has one output.
    """
    has = lambda prefix: any(name.startswith(prefix) for name in shapes)  # noqa: E731
    found = {}
    if has("lm_predictions.") or has("cls.predictions."):
        found["masked-lm"] = HEAD_NAMES["masked-lm"]
    if has("mask_predictions."):
        found["replaced-token-detection"] = HEAD_NAMES["replaced-token-detection"]
    classifier = shapes.get("classifier.weight")
    if classifier is not None and len(classifier) != 2:  # not a classifier: left for the shape check to report
        classifier = None
    if classifier is not None and has("pooler."):
        listed = architectures if isinstance(architectures, (list, tuple)) else ()
        n, arch = classifier[0], " ".join(a for a in listed if isinstance(a, str))
        if "MultipleChoice" not in arch:
            outputs = "1 output: regression" if n == 1 else f"{n} labels"
            found["sequence-classification"] = f"{HEAD_NAMES['sequence-classification']} ({outputs})"
        if "MultipleChoice" in arch or (n == 1 and "SequenceClassification" not in arch):
            found["multiple-choice"] = HEAD_NAMES["multiple-choice"]
    elif classifier is not None:
        found["token-classification"] = f"{HEAD_NAMES['token-classification']} ({classifier[0]} labels)"
    if has("qa_outputs."):
        found["question-answering"] = HEAD_NAMES["question-answering"]
    return found


def checkpoint_heads(folder):
    """Heads the checkpoint in ``folder`` holds, from its parameter names and config.json's ``architectures``."""
    folder = Path(folder)
    return heads_from_shapes(checkpoint_shapes(folder), read_config(folder).get("architectures"))


def read_config(folder):
    return read_json_object(config_file(folder)[0])
