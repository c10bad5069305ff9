"""``python -m minideberta course render OUTDIR``: execute the read-along course and write it as HTML.

    python -m minideberta course render course-html            # every notebooks/NN_*.py
    python -m minideberta course render course-html --only 02 05
    python -m minideberta course --notebooks ~/minideberta/notebooks list

The notebooks live in a clone's ``notebooks/`` folder, not in the package: the commands read the
``notebooks/`` of the current directory (a clone's root), or the folder ``--notebooks`` names.

The notebook sources are jupytext percent-format ``.py`` files. Each one is read as a notebook,
executed top to bottom in a fresh Python kernel (nbclient) with its own folder as working
directory, and exported with nbconvert's HTMLExporter, figures embedded as base64 PNG and the math
converted to MathML (``html.py``), so the pages read in any browser without Jupyter and without
a network. ``index.html`` lists the chapters in reading order, each with its summary from
notebooks/README.md. ``tests/test_notebooks.py`` runs every notebook through ``execute`` too.

Chapters are numbered ``NN_topic.py``; appendices ``A1_topic.py``, ``A2_...`` come after them.
"""
import argparse
import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

from ... import __file__ as PACKAGE_INIT
from ..cli.errors import OneLineParser
from . import html as course_html

NOTEBOOKS = Path("notebooks")  # the default: a clone's notebooks/, seen from its root
# The folder this package is imported from, put first on the kernels' path (nothing is read from it).
PACKAGE_ROOT = str(Path(PACKAGE_INIT).resolve().parent.parent)
SOURCE = re.compile(r"(\d\d|A\d)_\w+\.py")  # a chapter NN_topic.py or an appendix A1_topic.py
CELL_TIMEOUT = 120  # seconds per cell; a notebook is meant to run in seconds
NEEDED = ("jupytext", "nbformat", "nbclient", "nbconvert", "ipykernel", "matplotlib", "latex2mathml")


def sources(folder=NOTEBOOKS):
    """The course's notebook sources ``NN_topic.py`` (then the appendices ``A1_topic.py``) in ``folder``,
    in reading order."""
    folder = Path(folder).resolve()  # the kernels run in the notebook's folder: an absolute path
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: the notebooks live in a clone's notebooks/ "
                                "folder; run from the clone's root or pass --notebooks DIR")
    return sorted(p for p in folder.iterdir() if SOURCE.fullmatch(p.name))


def _require():
    missing = [name for name in NEEDED if not _importable(name)]
    if missing:
        raise ModuleNotFoundError(f"the course needs {', '.join(missing)}: pip install -e .[notebooks]")


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def kernel_environment():
    """What the kernel inherits: plots to the inline backend (never a window), this checkout's package
    importable even when it is not installed, and one BLAS thread unless the caller chose a number
    (the course's matrices are small: a second thread gains little, and when the other core is busy
    OpenBLAS's threads wait on each other, which made chapter 11 take 158 s instead of 20). Restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("MPLBACKEND", "PYTHONPATH", "OPENBLAS_NUM_THREADS")}
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    paths = [PACKAGE_ROOT] + [p for p in (saved["PYTHONPATH"] or "").split(os.pathsep) if p and p != PACKAGE_ROOT]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def read(path):
    """The jupytext source ``path`` as an nbformat v4 notebook (no outputs)."""
    _require()
    import jupytext

    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def execute(path, timeout=CELL_TIMEOUT):
    """Read and run the notebook at ``path``; returns the executed notebook. Raises nbclient's
    CellExecutionError (naming the cell and its traceback) when a cell fails."""
    import nbclient
    from jupyter_client.manager import KernelManager

    nb = read(path)
    with tempfile.TemporaryDirectory(prefix="minideberta-kernel-") as sockets:
        # The kernel talks over Unix sockets in a private folder, not TCP (which ipykernel warns about);
        # Windows has no Unix sockets for ZeroMQ, so TCP there.
        local = dict(transport="ipc", ip=str(Path(sockets) / "kernel")) if os.name == "posix" else {}
        manager = KernelManager(kernel_name="python3", **local)
        client = nbclient.NotebookClient(nb, km=manager, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(Path(path).parent)}})
        try:
            with kernel_environment():
                client.execute()
        finally:  # nbclient shuts down only the kernels it started itself
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
    return nb


# nbconvert's lab page without the scripts it loads from a CDN: MathJax (the math is MathML already),
# require.js and widgets (no notebook here has widgets) and mermaid (no diagrams).
OFFLINE_TEMPLATE = "\n".join(["{%- extends 'lab/index.html.j2' -%}"] + [
    "{%- block " + block + " -%}{%- endblock " + block + " -%}"
    for block in ("html_head_js_requirejs", "jupyter_widgets", "html_head_js_mathjax", "html_head_js_mermaidjs")])


def to_html(nb):
    """One self-contained HTML page: figures as data: URIs, math as MathML, nothing loaded from a network."""
    import copy

    import jinja2
    import nbconvert

    nb = copy.deepcopy(nb)
    formulas = course_html.take_out_math(nb)
    exporter = nbconvert.HTMLExporter(extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
                                      template_file="offline.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    return course_html.put_back_math(body, formulas)


def title(nb, fallback):
    """The first markdown heading of ``nb``, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def render(outdir, only=None, folder=NOTEBOOKS, report=print):
    """Execute the notebooks (those whose number is in ``only``, or all) and write ``OUTDIR/NN_topic.html``
    and ``OUTDIR/index.html``. Returns the list of pages written."""
    _require()
    paths = sources(folder)
    only = [str(n).upper().zfill(2) for n in only] if only else None  # "5" -> "05", "a1" -> "A1"
    if only:
        unknown = sorted(set(only) - {SOURCE.fullmatch(p.name).group(1) for p in paths})
        if unknown:
            raise ValueError(f"no notebook numbered {', '.join(unknown)} in {folder} "
                             f"(there are {', '.join(p.name for p in paths)})")
        paths = [p for p in paths if SOURCE.fullmatch(p.name).group(1) in only]
    if not paths:
        raise FileNotFoundError(f"{folder} holds no notebook sources NN_topic.py")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    readme = Path(folder) / "README.md"
    summary = course_html.summaries(readme.read_text(encoding="utf-8")) if readme.is_file() else {}
    pages, chapters = [], []
    for path in paths:
        report(f"executing {path.name} ...")
        nb = execute(path)
        page = outdir / (path.stem + ".html")
        page.write_text(to_html(nb), encoding="utf-8")
        pages.append(page)
        chapters.append((page.name, path.stem, title(nb, path.stem), summary.get(path.name, "")))
    index = outdir / "index.html"
    index.write_text(course_html.index_page(chapters), encoding="utf-8")
    report(f"wrote {len(pages)} page(s) and {index}")
    return pages


def build_notebooks(folder=NOTEBOOKS, report=print):
    """Write ``NN_topic.ipynb`` beside every source that has none (paired with the .py, as
    ``notebooks/jupytext.toml`` says); an existing .ipynb is the reader's and is left alone (jupytext
    brings its cells up to date with the .py when Lab opens it). Returns the .ipynb paths."""
    _require()
    import jupytext

    built = []
    for path in sources(folder):
        target = path.with_suffix(".ipynb")
        if not target.exists():
            nb = read(path)
            nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
            jupytext.write(nb, target)
            report(f"built {target}")
        built.append(target)
    return built


def lab(extra, folder=NOTEBOOKS):
    """Build the missing .ipynb, then run ``jupyter lab`` on the course's folder (``extra``: Lab's own options)."""
    import shutil
    import subprocess

    if shutil.which("jupyter-lab") is None:
        raise ModuleNotFoundError("jupyter lab is not installed: pip install -e .[notebooks]")
    build_notebooks(folder, report=lambda line: print(line, file=sys.stderr))
    with kernel_environment():  # the kernels Lab starts import this checkout's package
        return subprocess.call(["jupyter-lab", str(folder), *extra])


def build_parser():
    parser = OneLineParser(prog="minideberta course", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="The read-along notebooks (notebooks/NN_*.py of a clone).",
                                     epilog="examples:\n  python -m minideberta course render course-html  # takes minutes\n"
                                            "  python -m minideberta course render course-html --only 02 05\n"
                                            "  python -m minideberta course lab -- --no-browser  # starts Jupyter Lab")
    parser.add_argument("--notebooks", metavar="DIR", default=NOTEBOOKS, type=Path,
                        help="the folder of the notebook sources (default: notebooks/ of the current directory)")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    commands.add_parser("list", help="list the notebooks in reading order")
    sub = commands.add_parser("render", help="execute the notebooks and write them as HTML pages into OUTDIR",
                              description="Execute every notebook (or those of --only) and write one HTML page "
                                          "each, figures embedded, plus index.html, into OUTDIR.")
    sub.add_argument("outdir", metavar="OUTDIR", help="folder for the pages (created if needed)")
    sub.add_argument("--only", nargs="+", metavar="NN", help="the numbers of the notebooks to render, e.g. 02 05 A1")
    sub = commands.add_parser("lab", help="build the missing notebooks/NN_topic.ipynb and open the course in JupyterLab",
                              description="Write NN_topic.ipynb beside each notebooks/NN_topic.py that has none "
                                          "(paired with it: saving in Lab updates the .py), then run jupyter lab "
                                          "on notebooks/. Options after -- go to jupyter lab.")
    sub.add_argument("lab_options", nargs=argparse.REMAINDER, metavar="...", help="options for jupyter lab")
    return parser


def main(argv):
    """Exit status: 0 done, 1 a notebook failed, 2 a user's mistake (one ``error:`` line)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    try:
        if args.action == "list":
            for path in sources(args.notebooks):
                print(path.name)
            return 0
        if args.action == "lab":
            options = args.lab_options
            return lab(options[1:] if options[:1] == ["--"] else options, args.notebooks)
        render(args.outdir, args.only, args.notebooks, report=lambda line: print(line, file=sys.stderr))
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # nbclient's CellExecutionError: a notebook failed, its traceback is the message
        if type(error).__name__ != "CellExecutionError":
            raise
        print(f"error: a notebook failed:\n{error}", file=sys.stderr)
        return 1
    return 0
