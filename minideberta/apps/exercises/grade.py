"""Grading a class: one result document, a gradebook, feedback per student (the manifest: manifest.py).

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
import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import catalog
from .isolate import DEFAULT_MEMORY_MB, run_isolated
from .manifest import compare_files, folder_exercises, hints_from_folder, hints_from_log, hints_log_path, read_manifest

SCHEMA = "minideberta-grades/1"


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


def grade(folders, exercises=None, manifest_path=None, time_limit=None, memory_mb=DEFAULT_MEMORY_MB, jobs=2):
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
