"""``python -m minideberta course render OUTDIR``: execute the read-along course and write it as HTML.

    python -m minideberta course render course-html            # every notebooks/NN_*.py
    python -m minideberta course render course-html --only 02 05
    python -m minideberta course list

The notebook sources are jupytext percent-format ``.py`` files. Each one is read as a notebook,
executed top to bottom in a fresh Python kernel (nbclient) with its own folder as working
directory, and exported with nbconvert's HTMLExporter, figures embedded as base64 PNG, so the
pages read in any browser without Jupyter. ``index.html`` links them in reading order.
``tests/test_notebooks.py`` runs every notebook through ``execute`` too.
"""
import argparse
import contextlib
import html
import os
import re
import sys
from pathlib import Path

from .errors import OneLineParser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
SOURCE = re.compile(r"(\d\d)_\w+\.py")
CELL_TIMEOUT = 120  # seconds per cell; a notebook is meant to run in seconds
NEEDED = ("jupytext", "nbformat", "nbclient", "nbconvert", "ipykernel", "matplotlib")


def sources(folder=NOTEBOOKS):
    """The course's notebook sources ``NN_topic.py`` in ``folder``, in reading order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: the notebooks live in the repository's notebooks/ "
                                "folder; run from a clone (pip install -e .[notebooks])")
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
    """What the kernel inherits: plots to the inline backend (never a window) and this checkout's package
    importable even when it is not installed. Restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("MPLBACKEND", "PYTHONPATH")}
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
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

    nb = read(path)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(Path(path).parent)}})
    with kernel_environment():
        client.execute()
    return nb


def to_html(nb):
    """One self-contained HTML page (figures as data: URIs)."""
    import nbconvert

    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    return body


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
    pages, links = [], []
    for path in paths:
        report(f"executing {path.name} ...")
        nb = execute(path)
        page = outdir / (path.stem + ".html")
        page.write_text(to_html(nb), encoding="utf-8")
        pages.append(page)
        links.append(f'<li><a href="{page.name}">{html.escape(title(nb, path.stem))}</a></li>')
    index = outdir / "index.html"
    index.write_text("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>minideberta: the read-along "
                     "course</title></head>\n<body><h1>minideberta: the read-along course</h1>\n<ol>\n"
                     + "\n".join(links) + "\n</ol></body></html>\n", encoding="utf-8")
    report(f"wrote {len(pages)} page(s) and {index}")
    return pages


def build_parser():
    parser = OneLineParser(prog="minideberta course", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="The read-along notebooks (notebooks/NN_*.py).",
                                     epilog="examples:\n  python -m minideberta course render course-html  # takes minutes\n"
                                            "  python -m minideberta course render course-html --only 02 05")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    commands.add_parser("list", help="list the notebooks in reading order")
    sub = commands.add_parser("render", help="execute the notebooks and write them as HTML pages into OUTDIR",
                              description="Execute every notebook (or those of --only) and write one HTML page "
                                          "each, figures embedded, plus index.html, into OUTDIR.")
    sub.add_argument("outdir", metavar="OUTDIR", help="folder for the pages (created if needed)")
    sub.add_argument("--only", nargs="+", metavar="NN", help="the numbers of the notebooks to render, e.g. 02 05")
    return parser


def main(argv):
    """Exit status: 0 done, 1 a notebook failed, 2 a user's mistake (one ``error:`` line)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    try:
        if args.action == "list":
            for path in sources():
                print(path.name)
            return 0
        only = [n.zfill(2) for n in args.only] if args.only else None
        render(args.outdir, only, report=lambda line: print(line, file=sys.stderr))
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # nbclient's CellExecutionError: a notebook failed, its traceback is the message
        if type(error).__name__ != "CellExecutionError":
            raise
        print(f"error: a notebook failed:\n{error}", file=sys.stderr)
        return 1
    return 0
