"""The shared set-up of the read-along notebooks (``notebooks/NN_*.py``): which model they run on.

    from minideberta.apps import course
    model, tokenizer = course.course_model()                       # masked LM (Enhanced Mask Decoder)
    rtd, _ = course.course_model("replaced-token-detection")        # the discriminator
    if course.is_trained(): ...                                     # claims that need trained weights

The model is chosen, in this order:
1. ``MINIDEBERTA_MODEL=folder`` (or a hub id) when set: a checkpoint of the user's, for both heads;
2. the embedded models minideberta pre-trained itself, ``weights/minideberta-v3-tiny-generator``
   (masked LM with EMD) and ``weights/minideberta-v3-tiny`` (discriminator), when they exist;
3. otherwise a tiny seeded random model of DeBERTa-v3's shape (relative attention with 256 log
   buckets, shared keys, no absolute positions in the input, EMD's position table, both heads),
   saved with ``save_pretrained`` into a temporary folder next to the official v3 vocabulary.
   Its embedding keeps all 128100 rows of the official vocabulary, so every real token has a row,
   at width 32 (16 MiB in float32). Its predictions are noise: ``is_trained()`` is False.
"""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...checkpoints import hub
from ...checkpoints.weights import save_safetensors
from ...config import DebertaV2Config
from ...loading import load_model
from ...masked_lm import POSITIONS, DebertaV2ForMaskedLM
from ...params import init_params
from ...tasks import DebertaV2ForReplacedTokenDetection
from ...tokenizer.deberta_tokenizer import VOCAB_FILE

ENVIRONMENT = "MINIDEBERTA_MODEL"
EMBEDDED = {"masked-lm": "minideberta-v3-tiny-generator", "replaced-token-detection": "minideberta-v3-tiny"}
VOCABULARY = hub.EMBEDDED / "deberta-v3-tokenizer"
# A clone's test fixtures (official config.json files, genuine TF checkpoints) as seen from notebooks/, the
# working directory of every notebook (Jupyter's and ``course render``'s): the course reads them there,
# the package never ships or reads them on its own.
FIXTURES = Path("..") / "tests" / "fixtures"
SEED = 0
# DeBERTa-v3's choices (tests/fixtures' official configs) at a width a laptop runs in milliseconds.
RANDOM_CONFIG = dict(
    vocab_size=128100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    hidden_act="gelu", max_position_embeddings=512, type_vocab_size=0, initializer_range=0.02,
    layer_norm_eps=1e-7, relative_attention=True, max_relative_positions=-1, position_buckets=256,
    pos_att_type="p2c|c2p", norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
    pad_token_id=0, legacy=False)
_random = {}  # the temporary folder of the random model, made once per process


def is_trained():
    """True when the notebooks run on trained weights (the user's or the embedded ones)."""
    return bool(os.environ.get(ENVIRONMENT)) or all(hub.embedded_folder(n) is not None for n in EMBEDDED.values())


def is_shipped():
    """True when the notebooks run on the embedded pre-trained pair itself (its examples are asserted)."""
    return not os.environ.get(ENVIRONMENT) and is_trained()


def model_folder(head="masked-lm"):
    """The folder of the model the notebooks use for ``head`` ("masked-lm" or "replaced-token-detection")."""
    if head not in EMBEDDED:
        raise ValueError(f"head must be one of {', '.join(EMBEDDED)}, got {head!r}")
    chosen = os.environ.get(ENVIRONMENT)
    if chosen:
        return hub.resolve_model(chosen)
    if is_trained():
        return hub.embedded_folder(EMBEDDED[head])
    return random_folder()


def describe():
    """One line for a notebook's first output: which weights it runs on."""
    if os.environ.get(ENVIRONMENT):
        return f"{ENVIRONMENT}={os.environ[ENVIRONMENT]}: trained weights of your choice"
    if is_trained():
        return f"the embedded pre-trained models weights/{EMBEDDED['masked-lm']} and weights/{EMBEDDED['replaced-token-detection']}"
    return ("a tiny seeded random v3-shaped model (the embedded pre-trained weights are not there): shapes and "
            f"checks are real, predictions are noise; set {ENVIRONMENT}=folder for a real checkpoint")


def course_model(head="masked-lm", dtype=np.float32):
    """``(model, tokenizer)`` with ``head``, from ``model_folder(head)``."""
    return load_model(model_folder(head), head, np.dtype(dtype), progress=False)


def official_config(name="microsoft/deberta-v3-base", folder=FIXTURES / "configs"):
    """The config.json of an official checkpoint (no weights), from ``folder``: by default a clone's
    ``tests/fixtures/configs`` seen from ``notebooks/``, where the notebooks run."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder.resolve()} does not exist: the official configs are in a clone's "
                                "tests/fixtures/configs; run the notebook from the clone's notebooks/ folder or "
                                "pass folder=")
    path = folder / (name.replace("/", "__") + ".json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {folder} holds "
                                f"{', '.join(sorted(p.stem for p in folder.glob('*.json')))}")
    return DebertaV2Config.from_pretrained(path)


def random_config():
    return DebertaV2Config(**RANDOM_CONFIG)


def random_folder():
    """A folder holding the seeded random model with both heads, written once per process."""
    if "folder" not in _random:
        folder = Path(tempfile.mkdtemp(prefix="minideberta-course-"))
        atexit.register(shutil.rmtree, folder, True)
        write_random_model(folder)
        _random["folder"] = folder
    return _random["folder"]


def write_random_model(folder, seed=SEED):
    """Save the random model into ``folder``: masked LM with Microsoft's head and EMD's position table,
    plus the discriminator's ``mask_predictions`` head, as an official v3 checkpoint holds them."""
    config = random_config()
    generator = DebertaV2ForMaskedLM(config, seed=seed, dtype=np.float32)
    rng = np.random.default_rng(seed + 1)
    positions = rng.normal(0.0, config.initializer_range, (config.max_position_embeddings, config.embedding_size))
    generator = DebertaV2ForMaskedLM(config, dtype=np.float32,
                                     params={**generator.params, POSITIONS: positions.astype(np.float32)})
    generator.save_pretrained(folder)  # config.json + model.safetensors
    head = init_params(DebertaV2ForReplacedTokenDetection.head_shapes(config), config, seed + 2, np.float32)
    save_safetensors({**generator.params, **head}, Path(folder) / "model.safetensors")  # both heads, one file
    for name in (VOCAB_FILE, "tokenizer_config.json"):
        if (VOCABULARY / name).is_file():
            shutil.copy(VOCABULARY / name, Path(folder) / name)
    return folder


def one_piece(tokenizer, word):
    """The id of ``word`` when this tokenizer writes it (after a space, as inside a sentence) as ONE real
    piece, never ``[UNK]``; a ValueError otherwise. Every example that puts a word at one position (a masked
    target, a replaced token) relies on it: a word of two pieces masked or swapped at one position is
    another word, and ``convert_tokens_to_ids`` of a piece the vocabulary lacks is silently ``[UNK]``."""
    pieces = tokenizer.tokenize(word)
    ids = tokenizer.convert_tokens_to_ids(pieces)
    if len(pieces) != 1 or ids[0] == tokenizer.unk_token_id or pieces[0] == tokenizer.unk_token:
        raise ValueError(f"{word!r} is {pieces} (ids {ids}) in this vocabulary of {len(tokenizer)} pieces, "
                         "not one real piece: choose another word for this example")
    return ids[0]


def first_one_piece(tokenizer, words):
    """``(word, id)`` of the first of ``words`` that is one real piece in this vocabulary (``one_piece``);
    a ValueError naming how each was split when none is."""
    splits = []
    for word in words:
        try:
            return word, one_piece(tokenizer, word)
        except ValueError:
            splits.append(f"{word!r} -> {tokenizer.tokenize(word)}")
    raise ValueError(f"none of these words is one piece of this vocabulary: {'; '.join(splits)}")


def position_of(tokenizer, row, word):
    """The one position of ``word`` in the id row ``row``; ``word`` must be one real piece (``one_piece``)
    and occur exactly once."""
    wanted = one_piece(tokenizer, word)
    found = np.flatnonzero(np.asarray(row) == wanted)
    if len(found) != 1:
        raise ValueError(f"{word!r} (id {wanted}) occurs {len(found)} times in "
                         f"{tokenizer.convert_ids_to_tokens(list(row))}, not once")
    return int(found[0])


def pieces_of(tokenizer, row, word):
    """Positions of ``word``'s pieces (as ``tokenizer`` splits the word alone) in the id row ``row``; none of
    them may be ``[UNK]``."""
    want = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))
    if tokenizer.unk_token_id in want:
        raise ValueError(f"{word!r} holds [UNK] in this vocabulary: {tokenizer.tokenize(word)}")
    for at in range(len(row) - len(want) + 1):
        if row[at:at + len(want)].tolist() == want:
            return np.arange(at, at + len(want))
    raise ValueError(f"{word!r} is not in {tokenizer.convert_ids_to_tokens(row.tolist())}")
