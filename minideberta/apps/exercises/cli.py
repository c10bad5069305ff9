"""``python -m minideberta exercises list | make DIR | check [ID ...] --path DIR``."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import OneLineParser
from . import catalog
from .make import MANIFEST, make

EXAMPLES = """examples:
  python -m minideberta exercises list
  python -m minideberta exercises make lab1 --only ops.layer_norm_backward ops.masked_softmax_backward
  python -m minideberta exercises check ops.layer_norm_backward --path lab1
  python -m minideberta exercises check ops.layer_norm_backward --path lab1 --hint
  python -m minideberta exercises check --path submissions/* --json > grades.json  # a class's folders"""


def build_parser():
    formatter = argparse.RawDescriptionHelpFormatter
    parser = OneLineParser(prog="minideberta exercises", formatter_class=formatter, epilog=EXAMPLES,
                                     description="Classroom exercises: copies of minideberta with functions "
                                                 "removed, and a checker that says what is wrong.")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = commands.add_parser("list", help="every exercise: id, file, statement, level", formatter_class=formatter,
                              epilog="example:\n  python -m minideberta exercises list --json")
    sub.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    sub = commands.add_parser("make", help="write a student copy with the chosen functions removed",
                              formatter_class=formatter,
                              epilog="examples:\n  python -m minideberta exercises make lab1\n"
                                     "  python -m minideberta exercises make lab2 --only attention.backward")
    sub.add_argument("folder", metavar="DIR", help="a new (or empty) folder")
    sub.add_argument("--only", nargs="+", metavar="ID", help="these exercises (default: every whole-function one)")
    sub = commands.add_parser("check", help="run a student's functions in stages and judge them",
                              formatter_class=formatter, description="Exit status: 0 every stage of every "
                              "exercise passed, 1 something failed or is not implemented, 2 a usage error.",
                              epilog="examples:\n  python -m minideberta exercises check ops.gelu_backward --path lab1"
                                     "\n  python -m minideberta exercises check --path lab1 --json")
    sub.add_argument("ids", nargs="*", metavar="ID",
                     help="exercises to check, named before --path (default: those of DIR's assignment)")
    sub.add_argument("--path", nargs="+", default=["."], metavar="DIR",
                     help="the student's folder (default: here); several to grade a class")
    sub.add_argument("--hint", action="store_true", help="also show the next hint (one exercise only)")
    sub.add_argument("--json", action="store_true", help="one JSON document, for grading scripts")
    return parser


def _running_student_copy():
    """The manifest beside this package when this code is itself a student copy (run from inside DIR)."""
    manifest = Path(__file__).resolve().parents[3] / MANIFEST
    return json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None


def _rerun_with_reference(args, manifest):
    """``python -m minideberta`` found the student's copy (the current folder comes first on the path):
    run the same command with the installed reference instead."""
    root = manifest["reference"]
    if not (Path(root) / "minideberta" / "__init__.py").is_file():
        raise ValueError(f"the reference minideberta this folder was made from ({root}) is gone; "
                         f"run the command from outside the folder")
    argv = ["exercises", args.action]
    if args.action == "check":
        argv += [*args.ids, "--path", *(str(Path(p).resolve()) for p in args.path)]
        argv += ["--hint"] * args.hint + ["--json"] * args.json
    elif args.action == "make":
        argv += [str(Path(args.folder).resolve())] + (["--only", *args.only] if args.only else [])
    else:
        argv += ["--json"] * args.json
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, "-m", "minideberta", *argv], cwd=root, env=env).returncode


def run_list(args):
    rows = [{"id": e.id, "file": e.file, "statement": e.statement, "level": e.level, "minutes": e.minutes,
             "partial": e.part} for e in catalog.EXERCISES]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['id']:<{width}}  {r['level']:<12}  ~{r['minutes']:>2} min  {r['file']:<34} {r['statement']}")
    return 0


def run_make(args):
    chosen = make(args.folder, args.only)
    print(f"wrote {args.folder}: a copy of minideberta with {len(chosen)} exercise(s) removed; see "
          f"{Path(args.folder) / 'README.md'}")
    for e in chosen:
        print(f"  {e.id}  ({e.file})")
    return 0


def next_hints(folder, exercise):
    """Reveal one more hint of ``exercise``; the count is kept in DIR's manifest."""
    path = Path(folder) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"hints": {}}
    shown = min(manifest.setdefault("hints", {}).get(exercise.id, 0) + 1, len(exercise.hints))
    manifest["hints"][exercise.id] = shown
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return list(exercise.hints[:shown])


def check_folder(folder, ids, hint=False, strict=True):
    """The JSON-ready result of checking one student's folder. ``strict``: a folder without a
    copy is the user's mistake (an error), else (grading a class) a result saying so."""
    from .cases import load_student, reference
    from .check import check_exercise

    folder = Path(folder)
    if ids:
        exercises = [catalog.get(i) for i in ids]
    else:
        path = folder / MANIFEST
        ids = json.loads(path.read_text(encoding="utf-8"))["exercises"] if path.is_file() else None
        exercises = [catalog.get(i) for i in ids] if ids else [e for e in catalog.EXERCISES if not e.part]
    if hint and len(exercises) != 1:
        raise ValueError("--hint shows the next hint of one exercise: name exactly one ID")
    try:
        student, problem = load_student(folder), None
    except FileNotFoundError as error:
        if strict:
            raise
        student, problem = None, str(error)
    except Exception as error:  # the student's copy does not import: every exercise reports it
        student, problem = None, f"your copy does not import: {type(error).__name__}: {error}"
    ref = reference()
    reports = []
    for exercise in exercises:
        if student is None:
            reports.append({"id": exercise.id, "file": exercise.file, "statement": exercise.statement,
                            "status": "error", "message": problem, "stages": []})
        else:
            reports.append(check_exercise(exercise, student, ref))
    if hint:
        reports[0]["hints"] = next_hints(folder, exercises[0])
        reports[0]["hints_total"] = len(exercises[0].hints)
    return {"path": str(folder), "passed": all(r["status"] == "pass" for r in reports),
            "exercises_passed": sum(r["status"] == "pass" for r in reports), "exercises": reports}


def run_check(args):
    from .check import format_report

    if args.hint and len(args.path) != 1:
        raise ValueError("--hint works on one folder")
    results = [check_folder(folder, args.ids, args.hint, len(args.path) == 1) for folder in args.path]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"submissions": results}, indent=1))
    for result in results if not args.json else []:
        reports = result["exercises"]
        if len(results) > 1:
            print(f"== {result['path']}")
        for report in reports:
            print(format_report(report) if report["stages"] else f"{report['id']}: ERROR: {report['message']}")
            for i, hint in enumerate(report.get("hints", []), 1):
                print(f"  hint {i}/{report['hints_total']}: {hint}")
        if len(reports) > 1:
            print(f"{result['exercises_passed']} of {len(reports)} exercises pass")
    if len(results) > 1 and not args.json:
        print("\n".join(f"{r['path']}: {r['exercises_passed']} of {len(r['exercises'])} exercises pass"
                        for r in results))
    return 0 if all(r["passed"] for r in results) else 1


def run(argv):
    """Run ``exercises ...``; return the exit status. Mistakes raise ValueError / OSError (cli.py prints them)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    manifest = _running_student_copy()
    if manifest is not None:
        return _rerun_with_reference(args, manifest)
    return {"list": run_list, "make": run_make, "check": run_check}[args.action](args)
