"""Grading a class: the teacher's manifest, one result document, a gradebook, feedback per student.

The manifest is the teacher's record of an assignment, kept *outside* the student folders
(``make DIR`` writes ``DIR.manifest.json`` beside DIR, or where ``--manifest`` says)::

    {"format": "minideberta-assignment/1", "made": "2026-...Z", "folder": "lab1",
     "exercises": [{"id": "ops.layer_norm_backward", "file": "minideberta/ops.py", "points": 2}, ...],
     "files": {"minideberta/ops.py": "<sha256>", ...}}          # every file handed out

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

The result document (``--json``; one schema for one folder or thirty)::

    {"schema": "minideberta-grades/1", "manifest": FILE or null, "passed": bool,
     "exercises": [{"id", "points"}],
     "students": [{"name", "path", "passed", "exercises_passed", "points", "points_max",
                   "changed_files", "missing_files", "added_files",
                   "exercises": [{"id", "file", "statement", "status", "passed", "stages_passed",
                                  "stages_total", "points", "points_max", "seconds", "hints_used",
                                  "hints_source", "diagnosis", "stages"}]}]}

``status`` is one of ``isolate.STATUSES``. Points: all of them for a passed exercise; for a failed
one, the share of its stages that passed; none otherwise.
"""
import ast
import csv
import datetime
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import catalog
from .isolate import DEFAULT_MEMORY_MB, run_isolated

SCHEMA = "minideberta-grades/1"
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


# ---------------------------------------------------------------- one record
def diagnosis_text(record):
    """One paragraph: why the exercise did not pass (empty when it did)."""
    if record["status"] == "passed":
        return ""
    report = record.get("report")
    if report is None:
        return record.get("message", "")
    stages = report["stages"]
    first = next((s for s in stages if s["status"] not in ("pass",)), None)
    if first is None:
        return ""
    if first["status"] in ("not implemented", "error"):
        return f"stage {stages.index(first) + 1}/{len(stages)} ({first['stage']}): {first.get('message', '')}"
    words = [f"{row['output']}: {d}" for row in first["outputs"] if row["status"] != "PASS"
             for d in row["diagnosis"]]
    return f"stage {stages.index(first) + 1}/{len(stages)} ({first['stage']}) fails; " + "; ".join(words)


def exercise_record(exercise, record, points_max, hints_used, hints_source):
    report = record.get("report") or {"stages": []}
    stages = report["stages"]
    passed = record["status"] == "passed"
    stages_passed = sum(s["status"] == "pass" for s in stages)
    earned = points_max if passed else (points_max * stages_passed / len(stages)
                                        if record["status"] == "failed" and stages else 0)
    return {"id": exercise.id, "file": exercise.file, "statement": exercise.statement, "status": record["status"],
            "passed": passed, "stages_passed": stages_passed, "stages_total": len(stages) or len(exercise.stages()),
            "points": round(earned, 3), "points_max": points_max, "seconds": record["seconds"],
            "hints_used": hints_used, "hints_source": hints_source, "diagnosis": diagnosis_text(record),
            **{k: report[k] for k in ("first_failing_stage", "summary") if k in report},
            **({"message": record["message"]} if "message" in record else {}),
            **({"output": record["output"]} if record.get("output") else {}), "stages": stages}


def _student_name(folder, taken):
    name = Path(folder).resolve().name or "student"
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name}-{n}"
    taken.add(unique)
    return unique


def grade(folders, exercises=None, manifest_path=None, time_limit=None, memory_mb=DEFAULT_MEMORY_MB, jobs=2,
          hint_for=None):
    """Grade ``folders``; return the result document. ``exercises``: ids to check (default: the
    manifest's, else each folder's own list). One child process per (student, exercise), ``jobs``
    at a time."""
    manifest = read_manifest(manifest_path) if manifest_path is not None else None
    points = {row["id"]: row["points"] for row in manifest["exercises"]} if manifest else {}
    if exercises and manifest:
        outside = [i for i in exercises if i not in points]
        if outside:
            raise ValueError(f"{', '.join(outside)} is not in the manifest {manifest_path} (it lists "
                             f"{', '.join(points)}); name some of those, or none")
    if exercises:
        chosen = {str(f): [catalog.get(i) for i in exercises] for f in folders}
    elif manifest:
        chosen = {str(f): [catalog.get(row["id"]) for row in manifest["exercises"]] for f in folders}
    else:
        chosen = {str(f): folder_exercises(f) for f in folders}
    tasks = [(str(f), e) for f in folders for e in chosen[str(f)]]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(lambda t: run_isolated(t[0], t[1], time_limit, memory_mb), tasks))
    results = dict(zip(((f, e.id) for f, e in tasks), runs))
    students, taken = [], set()
    log = hints_log_path(manifest_path) if manifest_path is not None else None
    for folder in map(str, folders):
        hints = hints_from_log(log, folder) if log else hints_from_folder(folder)
        source = "teacher log" if log else "student folder"
        records = [exercise_record(e, results[folder, e.id], points.get(e.id, 1), hints.get(e.id, 0), source)
                   for e in chosen[folder]]
        files = compare_files(folder, manifest) if manifest else {"changed_files": [], "missing_files": [],
                                                                   "added_files": []}
        students.append({"name": _student_name(folder, taken), "path": folder,
                         "passed": all(r["passed"] for r in records),
                         "exercises_passed": sum(r["passed"] for r in records),
                         "points": round(sum(r["points"] for r in records), 3),
                         "points_max": sum(r["points_max"] for r in records), **files, "exercises": records})
    every = dict.fromkeys(e.id for f in map(str, folders) for e in chosen[f])  # in order, each once
    listed = [{"id": i, "points": points.get(i, 1)} for i in every]
    return {"schema": SCHEMA, "manifest": None if manifest_path is None else str(manifest_path),
            "passed": all(s["passed"] for s in students), "exercises": listed, "students": students}


# ---------------------------------------------------------------- gradebook and feedback
def write_csv(document, path):
    """One row per student, one column per exercise (its points), the total and the maximum, and
    a last column with what is not a pass (status, changed files)."""
    ids = list(dict.fromkeys(r["id"] for s in document["students"] for r in s["exercises"]))
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["student", "path", *ids, "total", "out of", "notes"])
        for s in document["students"]:
            by_id = {r["id"]: r for r in s["exercises"]}
            notes = [f"{i}: {by_id[i]['status']}" for i in ids if i in by_id and not by_id[i]["passed"]]
            notes += [f"changed {f}" for f in s["changed_files"]] + [f"missing {f}" for f in s["missing_files"]]
            writer.writerow([s["name"], s["path"], *(by_id[i]["points"] if i in by_id else "" for i in ids),
                             s["points"], s["points_max"], "; ".join(notes)])


def feedback_text(student):
    from .check import format_report

    lines = [f"Feedback for {student['name']} ({student['path']})",
             f"{student['exercises_passed']} of {len(student['exercises'])} exercises pass; points "
             f"{student['points']:g} of {student['points_max']:g}", ""]
    for key, words in (("changed_files", "changed, though no exercise is in them"),
                       ("missing_files", "missing from your folder"), ("added_files", "added (not graded)")):
        if student[key]:
            lines.append(f"Files {words}: {', '.join(student[key])}")
    for r in student["exercises"]:
        lines.append("")
        lines.append(f"== {r['id']}: {r['status'].upper()}  ({r['points']:g} of {r['points_max']:g} points, "
                     f"{r['stages_passed']} of {r['stages_total']} stages, {r['seconds']:g} s, "
                     f"{r['hints_used']} hint(s) used)")
        if r["stages"]:
            lines.append(format_report({**r, "status": {"passed": "pass", "failed": "fail"}.get(
                r["status"], "not implemented")}))
        elif r.get("message"):
            lines.append(f"  {r['message']}")
    return "\n".join(lines) + "\n"


def write_feedback(document, folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student in document["students"]:
        path = folder / f"{student['name']}.txt"
        path.write_text(feedback_text(student), encoding="utf-8")
        written.append(path)
    return written
