"""Opening the course in JupyterLab: notebooks/jupytext.toml pairs each .py with an .ipynb, and
``python -m minideberta course lab`` builds the missing .ipynb (which must execute) and starts Lab."""
import os
import shutil
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import find_jupytext_configuration_file, get_formats_from_notebook_and_config, load_jupytext_config

from minideberta.apps.cli import main as cli
from minideberta.apps.course import render as course_render

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"  # the clone's course

SOURCES = course_render.sources(NOTEBOOK_DIR)


def test_jupytext_reads_the_committed_configuration_and_pairs_every_notebook():
    found = find_jupytext_configuration_file(str(NOTEBOOK_DIR))
    assert found == str(NOTEBOOK_DIR / "jupytext.toml")
    config = load_jupytext_config(str(SOURCES[0]))
    for path in SOURCES:
        nb = jupytext.read(path)
        bare = nbformat.v4.new_notebook(cells=nb.cells)  # no pairing of its own: the configuration decides
        for notebook in (nb, bare):
            formats = get_formats_from_notebook_and_config(notebook, config, str(path))
            assert {f["extension"] for f in formats} == {".ipynb", ".py"}, (path.name, formats)
            assert [f.get("format_name") for f in formats if f["extension"] == ".py"] == ["percent"], path.name


def test_built_notebook_executes_and_an_existing_one_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    folder = tmp_path / "notebooks"
    folder.mkdir()
    source = next(p for p in SOURCES if p.name.startswith("01_"))  # the tokenizer: a few seconds
    shutil.copy(source, folder)
    shutil.copy(NOTEBOOK_DIR / "jupytext.toml", folder)
    (built,) = course_render.build_notebooks(folder, report=lambda line: None)
    assert built == folder / (source.stem + ".ipynb")
    nb = nbformat.read(built, as_version=4)
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert [c.source for c in nb.cells] == [c.source for c in jupytext.read(source).cells]
    executed = course_render.execute(built)
    assert any("image/png" in out.get("data", {}) for c in executed.cells if c.cell_type == "code" for out in c.outputs)

    built.write_text(built.read_text(encoding="utf-8").replace("Viterbi", "VITERBI"), encoding="utf-8")  # scribbles
    course_render.build_notebooks(folder, report=lambda line: None)
    assert "VITERBI" in built.read_text(encoding="utf-8")


def test_lab_without_jupyterlab_is_one_error_line(monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["course", "lab"]) == 2
    err = capsys.readouterr().err
    assert err == "error: jupyter lab is not installed: pip install -e .[notebooks]\n"


def test_lab_builds_then_starts_jupyter_lab_on_the_folder(tmp_path, monkeypatch):
    """A stand-in ``jupyter-lab`` on PATH records how it was started: on the course's folder, with the options
    after ``--``, after the .ipynb was built, and with this checkout importable by the kernels it starts."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    source = next(p for p in SOURCES if p.name.startswith("01_"))
    shutil.copy(source, folder)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "started.txt"
    fake = bin_dir / "jupyter-lab"
    fake.write_text(f'#!/bin/sh\nls "$1" > {record}\necho "$@" >> {record}\necho "$PYTHONPATH" >> {record}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert course_render.lab(["--no-browser", "--port", "8899"], folder=folder) == 0
    *listing, args, pythonpath = record.read_text().splitlines()
    assert (folder / (source.stem + ".ipynb")).is_file() and source.stem + ".ipynb" in listing  # built before Lab
    assert args == f"{folder} --no-browser --port 8899"
    assert pythonpath.split(os.pathsep)[0] == course_render.PACKAGE_ROOT
