"""Shared fixtures: the official DeBERTa-v3 vocabulary, sentencepiece, hard texts, and small checkpoints;
and the rule that a skipped test fails the run.

A skip is a failure: a run in which any test is skipped (``pytest.skip``, ``importorskip``, a skip
marker), is expected to fail (xfail) or unexpectedly passes (xpass) ends with exit status 1, unless
that test carries ``@pytest.mark.gpu`` (it needs a GPU this machine may lack). A module that skips at
collection fails the run too. The summary says how many GPU tests were skipped.
"""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VOCAB_DIR = REPO / "weights" / "deberta-v3-tokenizer"
VOCAB_FILE = VOCAB_DIR / "spm.model"  # Microsoft's official v3 vocabulary, committed with its provenance

# Texts where tokenizers go wrong: the cases where transformers 5.x differs from
# sentencepiece (full-width, ligatures, "…", rare characters), CJK, emoji, byte
# fallback, combining characters, odd whitespace, control characters, empty strings.
HARD_TEXTS = [
    "Hello world! DeBERTa improves BERT and RoBERTa.",
    "The quick brown fox jumps over the lazy dog.",
    "I was born in 92000, and this is falsé!",
    " \tHeLLo!how  \n Are yoU?  ",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ and ﬁ ligature, café, naïve… “quotes” — dash",
    "ﬃ ﬄ ﬀ œuvre Æsop ™ ① x² ½ ℃ ㍻",
    "Wait… what…… really…",
    "北京是中国的首都。東京は日本の首都です。서울은 한국의 수도입니다.",
    "谛 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 \U0010fffd \ue000",
    "I ❤️ 🤗 👩‍👩‍👧‍👦 🇫🇷!",
    "e\u0301 a\u0308 A\u030a ｶﾞ \u0301start",
    "a\u00a0b\u2003c\u3000d\u200be\tf\r\ng\u2028h\u00adi",
    "\u3000\u3000lead and trail  \u00a0",
    "A\x00B\x07C\x7f",
    "مرحبا بالعالم שלום नमस्ते สวัสดี",
    "a▁b ▁ ▁▁",
    "",
    "   ",
    "\n",
]


@pytest.fixture(scope="session")
def vocab_file():
    """Path of the official DeBERTa-v3 spm.model committed in weights/deberta-v3-tokenizer/."""
    return VOCAB_FILE


@pytest.fixture(scope="session")
def sp(vocab_file):
    """The reference: sentencepiece's own processor on the official vocabulary."""
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(vocab_file))


@pytest.fixture(scope="session")
def hard_texts():
    return list(HARD_TEXTS)


@pytest.fixture(scope="session")
def no_byte_fallback_vocab(vocab_file, tmp_path_factory):
    """The official vocabulary without byte fallback: unknown characters become [UNK]."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(vocab_file.read_bytes())
    model.trainer_spec.byte_fallback = False
    for piece in model.pieces:
        if piece.type == piece.BYTE:
            piece.type = piece.UNUSED  # sentencepiece refuses byte pieces without byte fallback
    path = tmp_path_factory.mktemp("vocab") / "spm.model"
    path.write_bytes(model.SerializeToString())
    return path


# ---- the exercises: the reference, and the repository loaded as a student's copy ----
# (tests/test_exercises_terms.py and tests/unit/test_exercises_mutations.py install wrong answers in it)
@pytest.fixture(scope="module")
def ref():
    """The reference solutions the checker compares with (``exercises.cases.reference``)."""
    from minideberta.apps.exercises.cases import reference

    return reference()


@pytest.fixture(scope="module")
def student():
    """This repository loaded as a student's copy, under a package name of its own; one per test module, so
    the answers a module installs (with monkeypatch) never reach another."""
    from minideberta.apps.exercises.cases import load_student

    return load_student(REPO)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, vocab_file):
    """{head: folder} of small official-layout checkpoints (see checkpoints.py), built once."""
    from checkpoints import build_checkpoints

    return build_checkpoints(tmp_path_factory.mktemp("checkpoints"))


# ---- a skip is a failure (except GPU tests) ----
_outcomes = {"gpu_skipped": [], "refused": []}  # nodeids


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().needs_gpu = item.get_closest_marker("gpu") is not None


def pytest_runtest_logreport(report):
    needs_gpu = getattr(report, "needs_gpu", False)
    if hasattr(report, "wasxfail"):  # xfail, or xpass (a passed report that was expected to fail)
        _outcomes["refused"].append(f"{report.nodeid} (xfail/xpass: {report.wasxfail or 'no reason'})")
    elif report.skipped and needs_gpu:
        _outcomes["gpu_skipped"].append(report.nodeid)
    elif report.skipped:
        _outcomes["refused"].append(f"{report.nodeid} ({_reason(report)})")


def pytest_collectreport(report):
    if report.skipped:
        _outcomes["refused"].append(f"{report.nodeid or 'collection'} (skipped at collection: {_reason(report)})")


def _reason(report):
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_sessionfinish(session, exitstatus):
    if _outcomes["refused"] and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    gpu, refused = _outcomes["gpu_skipped"], _outcomes["refused"]
    terminalreporter.write_line(f"{len(gpu)} GPU tests skipped (marked gpu; they need a GPU)")
    if refused:
        terminalreporter.write_line(f"FAILED: {len(refused)} tests skipped or xfailed without the gpu marker; "
                                    "a skip is a failure here (install requirements-dev.txt, or fix the test):",
                                    red=True)
        for line in refused:
            terminalreporter.write_line(f"  {line}")
