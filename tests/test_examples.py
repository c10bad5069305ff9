"""Every example of every command's ``--help`` and of the README runs as written, offline, on a fresh clone.

An example is a line starting ``python -m minideberta`` (a trailing ``\\`` continues it), or a README
``python`` block. Only lines carrying a marker are not run, and each marker says why:
``# hub id: needs the network`` (the hub examples, kept as a second line for users with a network),
``# takes minutes`` (building the corpus, pre-training, benchmarks, the whole course), ``# starts Jupyter Lab``
(a server that runs until stopped), and a README
block under ``<!-- not run by tests/test_examples.py: needs a GPU -->``. The examples run in a fresh
folder that sees the clone's ``weights/``, ``tasks/`` and ``notebooks/`` (as its root does), one after another (``exercises check``
grades the folder ``exercises make`` wrote).
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from minideberta.apps.cli.main import main

from conftest import REPO

HUB, LONG, GPU = "# hub id: needs the network", "# takes minutes", "<!-- not run by tests/test_examples.py: needs a GPU -->"
SERVER = "# starts Jupyter Lab"
COMMANDS = ["", "fill-mask", "rtd", "classify", "tokens", "qa", "choose", "verify", "demo", "bench", "bench tokenizer",
            "train", "exercises", "exercises list", "exercises make", "exercises check", "corpus", "tasks",
            "tasks build", "tasks compare", "tasks export", "pretrain", "pretrain-eval", "pretrain-export",
            "course", "course render", "course lab", "bench pretrain"]


def example_lines(text):
    """The ``python -m minideberta`` lines of ``text``, continuation lines joined."""
    lines, current = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if current is not None:
            current += " " + line.rstrip("\\").strip()
        elif line.startswith("python -m minideberta "):
            current = line.rstrip("\\").strip()
        if current is not None and not line.endswith("\\"):
            lines.append(current)
            current = None
    return lines


def help_text(capsys, command):
    assert main([*command.split(), "--help"]) == 0, command
    return capsys.readouterr().out


def runnable(lines):
    return [line for line in lines if HUB not in line and LONG not in line and SERVER not in line]


@pytest.fixture
def workdir(tmp_path):
    """A fresh folder that sees the clone's weights/, tasks/ and notebooks/ (`course` reads ./notebooks)."""
    for name in ("weights", "tasks", "notebooks"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def prepare(line, folder):
    """What an example presumes: ``exercises check --path lab1`` a student copy, ``submissions/*``, ``class/*``
    or ``s1 s2 s3`` a class (copies of the assignment ``lab1`` with its manifest)."""
    students = ["lab1"] if "--path lab1" in line else ["submissions/ada", "submissions/bob"] if "submissions/*" in line else []
    for student in students:
        assert main(["exercises", "make", str(folder / student), "--only", "ops.gelu_backward"]) == 0
    handed_out = ["class/ada", "class/bob"] if "class/*" in line else ["s1", "s2", "s3"] if "--path s1 s2 s3" in line else []
    if handed_out and not (folder / "lab1.manifest.json").is_file():  # the teacher's `exercises make lab1`
        assert main(["exercises", "make", str(folder / "lab1"), "--only", "ops.gelu_backward"]) == 0
    for student in handed_out:  # each student hands back a copy of what was handed out
        if not (folder / student).exists():
            shutil.copytree(folder / "lab1", folder / student)


def run_line(line, folder):
    """Run an example in ``folder``; ``exercises check`` may exit 1 (a fresh student copy is not implemented yet)."""
    prepare(line, folder)
    command = line.replace("python -m minideberta", f"{shlex_quote(sys.executable)} -m minideberta", 1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    done = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True)
    allowed = (0, 1) if " exercises check " in line else (0,)
    assert done.returncode in allowed and "error:" not in done.stderr, \
        f"{line}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def shlex_quote(text):
    import shlex

    return shlex.quote(text)


def test_every_help_example_is_runnable_or_marked(capsys):
    """The parser of the examples finds what it should, and each unrun line says why."""
    texts = {command: help_text(capsys, command) for command in COMMANDS}
    found = {command: example_lines(text) for command, text in texts.items()}
    assert {c for c in COMMANDS if not found[c]} == {"course render", "course lab"}  # examples in `course --help`
    for command, text in texts.items():
        assert not re.search(r"^\s*minideberta \w", text, re.M), f"{command}: write examples as python -m minideberta"
    hub = [line for lines in found.values() for line in lines if HUB in line]
    assert {line.split()[3] for line in hub} == {"fill-mask", "rtd", "classify", "tokens", "qa", "verify"}
    assert example_lines("x\n  python -m minideberta a \\\n      --b c\n  python -m minideberta d  # e\n") == [
        "python -m minideberta a --b c", "python -m minideberta d  # e"]


def help_examples():
    """(command, line) of every runnable help example, in order, each line once."""
    import contextlib
    import io

    seen, out = set(), []
    for command in COMMANDS:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            main([*command.split(), "--help"])
        for line in runnable(example_lines(buffer.getvalue())):
            if line not in seen:
                seen.add(line)
                out.append(line)
    return out


@pytest.mark.parametrize("line", help_examples())
def test_help_example_runs_offline(line, workdir):
    run_line(line, workdir)


def readme_examples():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"(<!--[^\n]*-->\n)?```(\w*)\n(.*?)```", text, re.S)
    python = [code for marker, language, code in blocks if language == "python" and GPU not in marker]
    lines = [line for marker, language, code in blocks if language != "python" for line in example_lines(code)]
    return python, runnable(lines)


def test_readme_has_python_and_command_examples():
    python, lines = readme_examples()
    assert len(python) >= 1 and len(lines) >= 10
    assert not any("MODEL" in line.split()[3:5] for line in lines), "a placeholder is not an example"


@pytest.mark.parametrize("line", readme_examples()[1])
def test_readme_command_runs_offline(line, workdir):
    run_line(line, workdir)


@pytest.mark.parametrize("code", readme_examples()[0])
def test_readme_python_block_runs_offline(code, workdir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"
