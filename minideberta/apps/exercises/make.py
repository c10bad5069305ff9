"""``exercises make DIR``: a complete copy of the package with the chosen bodies removed.

Functions are found with ``ast``; the source is cut by the nodes' line numbers, so every other
line (comments, formatting, the docstrings of the removed functions) stays exactly as it was.
A removed body becomes one ``raise NotImplementedError("exercise ID: ...")`` at the body's
indentation; a partial exercise replaces the lines from ``# BEGIN EXERCISE ID`` to
``# END EXERCISE ID`` the same way.
"""
import ast
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

from . import catalog

MANIFEST = ".exercises.json"  # in DIR: which exercises, the hints shown (the teacher's manifest is outside DIR)
MARKER = re.compile(r"^(?P<indent>\s*)# (?P<kind>BEGIN|END) EXERCISE (?P<id>\S+)\s*$")


def _find(tree, qualname):
    """The FunctionDef of ``qualname`` ("f" or "Class.method") in a module's tree, or None."""
    nodes = tree.body
    *outer, name = qualname.split(".")
    for cls in outer:
        nodes = next((n.body for n in nodes if isinstance(n, ast.ClassDef) and n.name == cls), [])
    return next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)


def _stub(exercise, folder):
    message = (f"exercise {exercise.id}: {exercise.statement}. Check with: "
               f"python -m minideberta exercises check {exercise.id} --path {folder}")
    return f"raise NotImplementedError({message!r})"


def body_span(lines, node):
    """(first, last) 1-based line numbers of a function's body after its docstring (comments included)."""
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)
    if has_doc:
        if len(body) == 1:
            raise ValueError(f"{node.name} has only a docstring: nothing to remove")
        first = body[0].end_lineno + 1
    else:
        if body[0].lineno == node.lineno:
            raise ValueError(f"{node.name} is written on one line: give it a body of its own lines")
        first = body[0].lineno
        while first - 1 > node.lineno and lines[first - 2].strip().startswith("#"):  # comments before it go too
            first -= 1
    return first, node.end_lineno, " " * body[0].col_offset


def _docstring_answer(lines, node):
    """The span of a removed function's docstring after its first paragraph, which may state the
    answer (the backward's formula): the student keeps the question, what the forward computed,
    and the docstring simply ends there."""
    doc = node.body[0]
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
        return []
    blank = next((n for n in range(doc.lineno + 1, doc.end_lineno) if not lines[n - 1].strip()), None)
    if blank is None:
        return []
    return [(blank, doc.end_lineno, " " * doc.col_offset + '"""\n')]


def marked_span(lines, node, part_id):
    """(first, last, indent) of the ``# BEGIN/END EXERCISE part_id`` region inside ``node``."""
    found = {}
    for number in range(node.lineno, node.end_lineno + 1):
        match = MARKER.match(lines[number - 1])
        if match and match["id"] == part_id:
            found[match["kind"]] = (number, match["indent"])
    if set(found) != {"BEGIN", "END"} or found["BEGIN"][0] > found["END"][0]:
        raise ValueError(f"no '# BEGIN EXERCISE {part_id}' ... '# END EXERCISE {part_id}' region in {node.name}")
    return found["BEGIN"][0], found["END"][0], found["BEGIN"][1]


def remove(source, exercises, folder, filename="<source>"):
    """``source`` with the bodies (or marked regions) of ``exercises`` replaced by their stubs."""
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source, filename)
    spans = []
    for exercise in exercises:
        node = _find(tree, exercise.module[1])
        if node is None:
            raise ValueError(f"exercise {exercise.id}: {exercise.module[1]} is not defined in {filename}")
        first, last, indent = marked_span(lines, node, exercise.id) if exercise.part else body_span(lines, node)
        spans.append((first, last, indent + _stub(exercise, folder) + "\n"))
        if not exercise.part:
            spans.extend(_docstring_answer(lines, node))
    # A region inside a removed body goes with that body.
    spans = [s for s in spans if not any(o is not s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    for first, last, text in sorted(spans, reverse=True):
        lines[first - 1:last] = [text]
    out = "".join(lines)
    compile(out, filename, "exec")  # the copy must import
    return out


def removals(exercise):
    """What ``exercise`` takes out: its function (or region), and whole helpers that give it away,
    each stubbed with the exercise's own id."""
    extra = [SimpleNamespace(id=exercise.id, statement=exercise.statement, part=False, module=catalog.module_of(name),
                             file=catalog.file_of(name)) for name in exercise.also]
    return [exercise, *extra]


def make(folder, ids=None, manifest=None, points=None):
    """Write the student copy into ``folder`` (new or empty) and the teacher's manifest (default
    ``DIR.manifest.json`` beside the folder: see grade.py); return the exercises removed."""
    from .manifest import default_manifest_path, write_manifest

    folder = Path(folder)
    manifest = default_manifest_path(folder) if manifest is None else Path(manifest)
    if manifest.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"the manifest {manifest} would be inside the student folder {folder}, where the "
                         "student can edit it; give a path outside it")
    chosen = [catalog.get(i) for i in ids] if ids else list(catalog.EXERCISES)
    if ids is None:  # everything: a partial exercise's function is removed whole anyway
        chosen = [e for e in chosen if not e.part]
    unknown = [i for i in (points or {}) if i not in {e.id for e in chosen}]
    if unknown:
        raise ValueError(f"--points names {', '.join(unknown)}, not among the exercises made")
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} exists and is not empty; give a new folder (a student's work there "
                         "would be overwritten)")
    source_root = catalog.PACKAGE
    if folder.resolve().is_relative_to(source_root):
        raise ValueError(f"{folder} is inside the package itself ({source_root}); choose a folder outside it")
    shutil.copytree(source_root, folder / "minideberta", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    by_file = {}
    for exercise in chosen:
        for removal in removals(exercise):
            by_file.setdefault(removal.file, []).append(removal)
    for name, exercises in by_file.items():
        path = folder / name
        path.write_text(remove(path.read_text(encoding="utf-8"), exercises, folder, name), encoding="utf-8")
    student = {"exercises": [e.id for e in chosen], "hints": {}}  # no path to the reference: self-contained
    (folder / MANIFEST).write_text(json.dumps(student, indent=1) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(student_readme(chosen, folder), encoding="utf-8")
    write_manifest(manifest, folder, chosen, points)
    return chosen


def student_readme(chosen, folder):
    rows = "\n".join(f"| `{e.id}` | `{e.file}` | {e.statement} | {e.level} | ~{e.minutes} min |" for e in chosen)
    first = chosen[0].id if chosen else "ops.layer_norm_backward"
    return f"""# Exercises

This folder holds a complete copy of minideberta in which some functions have been taken out.
Each one now raises `NotImplementedError("exercise ...")`; its docstring and everything around it
are still there. Write the missing code, then ask the checker:

    python -m minideberta exercises check {first} --path {folder}

It runs your function in stages, from the simplest case to the hardest, and prints for each
stage and each output the error against the reference (and, for gradients, against central
differences), the size of the error a correct answer has, PASS or FAIL, and what a wrong answer
probably means. It exits with 0 when every stage passes. `--hint` shows the next hint;
`python -m minideberta exercises check --path {folder}` checks all of your exercises.

To run your copy yourself, put this folder first on the path: `cd {folder} && python`, then
`import minideberta` (or `sys.path.insert(0, "{folder}")` in a notebook). Do not change the
functions' signatures or the caches their forwards return: the checker calls them as they are.
Write only the missing functions: when your folder is graded, any other function or file you
changed is listed. In a notebook, a function written in a cell is checked with
`from minideberta.exercises import check; check("{first}", my_function)`.

| exercise | file | what to write | level | time |
| --- | --- | --- | --- | --- |
{rows}
"""
