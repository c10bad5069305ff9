"""The math imports with NumPy (and SciPy) alone: a student without the I/O libraries can read and run it.

Each check runs in a fresh interpreter whose import system refuses the file and download libraries
(safetensors, sentencepiece, h5py, huggingface_hub) and the test-time references (torch,
transformers), as an environment without them would.
"""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("safetensors", "sentencepiece", "h5py", "huggingface_hub", "torch", "transformers", "tensorflow")
MATH = ("ops", "losses", "embeddings", "relative_position", "attention", "ngie", "encoder", "emd", "heads",
        "deberta", "gradcheck", "optim")

BLOCKER = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"blocked for this test: {{name}}")
        return None
sys.meta_path.insert(0, Blocker())
"""


def run_blocked(code):
    return subprocess.run([sys.executable, "-c", BLOCKER + code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("module", MATH)
def test_math_module_imports_with_numpy_alone(module):
    result = run_blocked(f"import minideberta.{module}\n"
                         f"print(sorted(m for m in {BLOCKED!r} if m in sys.modules))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_blocker_blocks():
    """The hook is real: importing a blocked library in that interpreter fails."""
    result = run_blocked("import safetensors.numpy")
    assert result.returncode != 0 and "blocked for this test: safetensors" in result.stderr


def test_a_missing_io_library_is_named_where_it_is_needed(tmp_path):
    """Without sentencepiece or safetensors the package still imports; reading a vocabulary or writing
    weights then says which library to install."""
    code = f"""
import numpy as np
from minideberta import DebertaV2Tokenizer, DebertaV2Config, DebertaV2Model
try:
    DebertaV2Tokenizer({str(REPO / 'weights' / 'deberta-v3-tokenizer' / 'spm.model')!r})
except ModuleNotFoundError as error:
    print("tokenizer:", error)
model = DebertaV2Model(DebertaV2Config(vocab_size=20, hidden_size=8, num_attention_heads=2, num_hidden_layers=1,
                                       intermediate_size=16, max_position_embeddings=16))
print(model(np.array([[1, 2, 3]])).last_hidden_state.shape)
try:
    model.save_pretrained({str(tmp_path)!r})
except ModuleNotFoundError as error:
    print("save:", error)
"""
    result = run_blocked(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tokenizer:") and "pip install sentencepiece" in lines[0]
    assert lines[1] == "(1, 3, 8)"
    assert lines[2].startswith("save:") and "pip install safetensors" in lines[2]


def imported_modules(path):
    """The ``minideberta`` modules a file imports (relative imports resolved), as dotted names."""
    import ast

    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("minideberta")}


# What each layer may not import: the file readers know no model class and no command; the config and the
# tokenizer read their JSON with minideberta/json_file.py, not through checkpoints/.
FORBIDDEN = {
    "checkpoints": ("minideberta.model", "minideberta.tasks", "minideberta.masked_lm", "minideberta.deberta",
                    "minideberta.tf_classes", "minideberta.loading", "minideberta.apps"),
    "tokenizer": ("minideberta.checkpoints", "minideberta.model", "minideberta.tasks", "minideberta.apps"),
    "config.py": ("minideberta.checkpoints", "minideberta.tokenizer", "minideberta.apps"),
}


@pytest.mark.parametrize("where", FORBIDDEN)
def test_no_import_runs_back_up_the_layers(where):
    target = REPO / "minideberta" / where
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files
    wrong = {f"{path.relative_to(REPO)}: {name}" for path in files for name in imported_modules(path)
             if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[where])}
    assert not wrong, sorted(wrong)
