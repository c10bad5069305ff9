"""The teacher's manifest of an assignment, the file comparison, and the hints log.

The manifest is the teacher's record of an assignment, kept *outside* the student folders
(``make DIR`` writes ``DIR.manifest.json`` beside DIR, or where ``--manifest`` says)::

    {"format": "minideberta-assignment/1", "made": "2026-...Z", "folder": "lab1",
     "exercises": [{"id": "ops.layer_norm_backward", "file": "minideberta/ops.py", "points": 2}, ...],
     "files": {"minideberta/ops.py": "<sha256>", ...},          # every file handed out
     "definitions": {"minideberta/ops.py": {"layer_norm_forward": "<sha256>", ...}}}

``check --manifest FILE --path s1 s2 ...`` grades exactly the manifest's exercises, whatever a
student's ``.exercises.json`` says, and compares every student file with the hashes: a file
changed that holds none of the exercises, a file missing, a file added are listed on the
student's record (bytecode caches and the student's own ``.exercises.json`` are not files of
the assignment). In a file that holds an exercise, the manifest's ``definitions`` (a hash of
the syntax tree of every other function, and of the rest of the module) name a changed
function there too (``"minideberta/ops.py: layer_norm_forward"``); comments and blank lines
may change freely.

Hints: ``check ID --path DIR --hint --manifest FILE`` appends one line per hint shown to
``FILE.hints.jsonl`` (student folder, exercise, how many hints shown, when), a log beside the
manifest, which the teacher owns and a student's folder does not hold. Grading with the
manifest reads the hints used from that log (``hints_source: "teacher log"``). Without a
manifest the count in the folder's ``.exercises.json`` is reported, marked
``hints_source: "student folder"``: the student can edit it.
"""
import ast
import datetime
import hashlib
import json
from pathlib import Path

from . import catalog

FORMAT = "minideberta-assignment/1"
FOLDER_MANIFEST = ".exercises.json"  # in the student's folder: which exercises, the hints the student saw
NOT_HANDED_OUT = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")


def default_manifest_path(folder):
    folder = Path(folder)
    return folder.parent / (folder.name + ".manifest.json")


def hints_log_path(manifest_path):
    return Path(str(manifest_path) + ".hints.jsonl")


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def handed_out_files(folder):
    """{relative path: sha256} of every file of a student folder that belongs to the assignment."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part in NOT_HANDED_OUT for part in rel.parts) or path.suffix == ".pyc" \
                or rel.as_posix() == FOLDER_MANIFEST:
            continue
        out[rel.as_posix()] = _sha256(path)
    return out


def _definitions(source):
    """{qualified name: sha256 of its AST} of a module's functions and methods, and "(module level)"
    for everything else in it; None when it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    out, rest = {}, []

    def digest(node):
        return hashlib.sha256(ast.dump(node).encode()).hexdigest()

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = digest(node)
        elif isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[f"{node.name}.{inner.name}"] = digest(inner)
                else:
                    rest.append(inner)
        else:
            rest.append(node)
    out["(module level)"] = hashlib.sha256("".join(ast.dump(n) for n in rest).encode()).hexdigest()
    return out


def _exercise_definitions(folder, chosen):
    """For each file an exercise is in: the hashes of its other definitions (``_definitions``)."""
    mine = {}
    for e in chosen:
        for name in (e.target, *e.also):
            mine.setdefault(catalog.file_of(name), set()).add(catalog.module_of(name)[1])
    out = {}
    for rel, names in mine.items():
        found = _definitions((Path(folder) / rel).read_text(encoding="utf-8")) or {}
        out[rel] = {k: v for k, v in found.items() if k not in names}
    return out


def write_manifest(path, folder, chosen, points=None):
    """The teacher's manifest of the copy just made in ``folder``."""
    points = points or {}
    manifest = {"format": FORMAT, "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "folder": str(folder),
                "exercises": [{"id": e.id, "file": e.file, "points": points.get(e.id, 1)} for e in chosen],
                "files": handed_out_files(folder), "definitions": _exercise_definitions(folder, chosen)}
    Path(path).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def read_manifest(path):
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no manifest {path}: `exercises make DIR` writes DIR.manifest.json beside DIR") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a manifest (not JSON: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a manifest written by `exercises make` (format {FORMAT!r} expected)")
    for row in manifest["exercises"]:
        catalog.get(row["id"])  # an unknown id is the manifest's mistake: say so now
    return manifest


def compare_files(folder, manifest):
    """The student's files against the handed-out hashes: changed files outside the exercises,
    missing files, added files (sorted lists of relative paths)."""
    now = handed_out_files(folder)
    allowed = {row["file"] for row in manifest["exercises"]}
    for row in manifest["exercises"]:  # a partial exercise may also remove a helper elsewhere
        allowed.update(catalog.get(row["id"]).files)
    given = manifest["files"]
    changed = sorted(k for k, v in given.items() if k in now and now[k] != v and k not in allowed)
    for rel, kept in manifest.get("definitions", {}).items():  # in an exercise's file: only its function may change
        found = _definitions((Path(folder) / rel).read_text(encoding="utf-8")) if rel in now else None
        if found is not None:
            changed += [f"{rel}: {name}" for name, digest in kept.items() if found.get(name) != digest]
    return {"changed_files": changed, "missing_files": sorted(k for k in given if k not in now),
            "added_files": sorted(k for k in now if k not in given)}


# ---------------------------------------------------------------- hints
def record_hint(log_path, folder, exercise_id, shown):
    line = {"student": str(Path(folder).resolve()), "exercise": exercise_id, "shown": shown,
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def hints_from_log(log_path, folder):
    """{exercise id: hints shown} for one student folder, from the teacher's log."""
    path, student, used = Path(log_path), str(Path(folder).resolve()), {}
    if not path.is_file():
        return used
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["student"] == student:
            used[entry["exercise"]] = max(used.get(entry["exercise"], 0), entry["shown"])
    return used


def hints_from_folder(folder):
    path = Path(folder) / FOLDER_MANIFEST
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("hints", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def folder_exercises(folder):
    """The exercises a folder's own ``.exercises.json`` names (no manifest: grading as before)."""
    path = Path(folder) / FOLDER_MANIFEST
    ids = None
    if path.is_file():
        try:
            ids = json.loads(path.read_text(encoding="utf-8")).get("exercises")
        except (ValueError, AttributeError):
            ids = None
    return [catalog.get(i) for i in ids] if ids else [e for e in catalog.EXERCISES if not e.part]
