"""``python -m minideberta exercises list | make DIR | check [ID ...] --path DIR [DIR ...]``."""
import argparse
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

from ..cli.errors import OneLineParser
from . import catalog
from .make import MANIFEST, make

EXAMPLES = """examples:
  python -m minideberta exercises list
  python -m minideberta exercises make lab1 --only ops.layer_norm_backward ops.masked_softmax_backward
  python -m minideberta exercises check ops.layer_norm_backward --path lab1
  python -m minideberta exercises check ops.layer_norm_backward --path lab1 --hint
  python -m minideberta exercises check --manifest lab1.manifest.json --path class/* --csv grades.csv \\
      --feedback feedback/          # a teacher grading a class"""


def _points(text):
    exercise_id, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return exercise_id, float(value) if "." in value else int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ID=POINTS (ops.gelu_backward=2), got {text!r}") from None


def _positive(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


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
                                     "  python -m minideberta exercises make lab2 --only attention.backward\n"
                                     "  python -m minideberta exercises make lab3 --only ops.gelu_backward "
                                     "ops.layer_norm_backward --points ops.layer_norm_backward=2")
    sub.add_argument("folder", metavar="DIR", help="a new (or empty) folder")
    sub.add_argument("--only", nargs="+", metavar="ID", help="these exercises (default: every whole-function one)")
    sub.add_argument("--manifest", metavar="FILE", help="where the teacher's manifest goes (default: "
                     "DIR.manifest.json beside DIR; never inside it)")
    sub.add_argument("--points", nargs="+", type=_points, default=[], metavar="ID=N",
                     help="points of an exercise (default 1 each)")
    sub = commands.add_parser("check", help="run a student's functions in stages and judge them",
                              formatter_class=formatter, description="Each (folder, exercise) runs in a process "
                              "of its own, with a time and a memory limit. Exit status: 0 every stage of every "
                              "exercise passed, 1 something failed or is not implemented, 2 a usage error.",
                              epilog="examples:\n  python -m minideberta exercises check ops.gelu_backward --path lab1"
                                     "\n  python -m minideberta exercises check --path lab1 --json"
                                     "\n  python -m minideberta exercises check --manifest lab1.manifest.json "
                                     "--path s1 s2 s3 --csv grades.csv --feedback feedback/")
    sub.add_argument("ids", nargs="*", metavar="ID",
                     help="exercises to check, named before --path (default: the manifest's, else DIR's assignment)")
    sub.add_argument("--path", nargs="+", default=["."], metavar="DIR",
                     help="the student's folder (default: here); several to grade a class")
    sub.add_argument("--manifest", metavar="FILE", help="the teacher's manifest (from make): grade exactly its "
                     "exercises, report changed files, count hints in its log")
    sub.add_argument("--hint", action="store_true", help="also show the next hint (one exercise only)")
    sub.add_argument("--json", action="store_true", help="one JSON document, for grading scripts")
    sub.add_argument("--csv", metavar="FILE", help="write a gradebook: one row per student, one column per exercise")
    sub.add_argument("--feedback", metavar="DIR", help="write one report per student into DIR")
    sub.add_argument("--timeout", type=_positive, metavar="S",
                     help="seconds per student and exercise (default: from the exercise's cost, 30 s for most)")
    sub.add_argument("--memory", type=_positive, default=2048, metavar="MB",
                     help="memory limit of each check's process, where the OS allows (default 2048)")
    sub.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), metavar="N",
                     help="checks run at the same time (default: 2, or 1 on one core)")
    return parser


def _installed_reference(student_root):
    """The folder holding the installed minideberta, looked up with the student's folder off the path."""
    skip = Path(student_root).resolve()
    path = [p for p in sys.path if Path(p or ".").resolve() != skip]
    spec = importlib.machinery.PathFinder.find_spec("minideberta", path)
    for finder in sys.meta_path if spec is None else []:  # an editable install's finder
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_spec"):
            spec = finder.find_spec("minideberta", None)
            if spec is not None and Path(spec.origin).resolve().parents[1] != skip:
                break
            spec = None
    if spec is None or spec.origin is None:
        raise ValueError("this is a student copy and no installed minideberta was found to check it with; "
                         "install minideberta (pip install -e) or run the command from outside the folder")
    return Path(spec.origin).resolve().parents[1]


def _running_student_copy():
    """The folder of the student copy this code is running from (``python -m minideberta`` inside
    DIR finds DIR's copy first), or None when this is the installed package."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / MANIFEST).is_file() else None


def _rerun_with_reference(argv, student_root):
    """Run the same command with the installed reference in front of the path."""
    root = _installed_reference(student_root)
    boot = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from minideberta.apps.cli.main import main; "
            "sys.exit(main(['exercises', *sys.argv[1:]]))")
    return subprocess.run([sys.executable, "-c", boot, str(root), *argv]).returncode


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
    from .manifest import default_manifest_path

    chosen = make(args.folder, args.only, args.manifest, dict(args.points))
    manifest = args.manifest or default_manifest_path(args.folder)
    print(f"wrote {args.folder}: a copy of minideberta with {len(chosen)} exercise(s) removed; see "
          f"{Path(args.folder) / 'README.md'}")
    for e in chosen:
        print(f"  {e.id}  ({e.file})")
    print(f"wrote {manifest}: the teacher's manifest (keep it; do not hand it out). Grade with: "
          f"python -m minideberta exercises check --manifest {manifest} --path DIR ...")
    return 0


def next_hints(folder, exercise, manifest=None):
    """Reveal one more hint of ``exercise``. The count is kept in DIR's ``.exercises.json`` and,
    with a teacher's manifest, in the hints log beside it (which the grading reads)."""
    from .manifest import hints_from_log, hints_log_path, record_hint

    path = Path(folder) / MANIFEST
    state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"hints": {}}
    before = state.setdefault("hints", {}).get(exercise.id, 0)
    if manifest is not None:
        before = hints_from_log(hints_log_path(manifest), folder).get(exercise.id, 0)
    shown = min(before + 1, len(exercise.hints))
    if manifest is not None:
        record_hint(hints_log_path(manifest), folder, exercise.id, shown)
    state["hints"][exercise.id] = shown
    if path.parent.is_dir():
        path.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    return list(exercise.hints[:shown])


def _print_student(student, several):
    from .check import format_report

    if several:
        print(f"== {student['name']}  ({student['path']})")
    for key, words in (("changed_files", "changed, though no exercise is in them"),
                       ("missing_files", "missing"), ("added_files", "added")):
        if student[key]:
            print(f"files {words}: {', '.join(student[key])}")
    for r in student["exercises"]:
        if r["stages"]:
            status = {"passed": "pass", "failed": "fail"}.get(r["status"], "not implemented")
            print(format_report({**r, "status": status}))
        else:
            print(f"{r['id']}: {r['status'].upper()}: {r.get('message', '')}")
        for i, hint in enumerate(r.get("hints", []), 1):
            print(f"  hint {i}/{r['hints_total']}: {hint}")
    if len(student["exercises"]) > 1:
        print(f"{student['exercises_passed']} of {len(student['exercises'])} exercises pass")


def run_check(args):
    from .grade import grade, write_csv, write_feedback

    if args.hint and len(args.path) != 1:
        raise ValueError("--hint works on one folder")
    if len(args.path) == 1 and not (Path(args.path[0]) / "minideberta" / "__init__.py").is_file():
        raise FileNotFoundError(f"{args.path[0]} holds no minideberta/ package; make one with "
                                f"`python -m minideberta exercises make {args.path[0]}`")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    document = grade(args.path, args.ids, args.manifest, args.timeout, args.memory, args.jobs)
    if args.hint:
        records = document["students"][0]["exercises"]
        if len(records) != 1:
            raise ValueError("--hint shows the next hint of one exercise: name exactly one ID")
        exercise = catalog.get(records[0]["id"])
        records[0]["hints"] = next_hints(args.path[0], exercise, args.manifest)
        records[0]["hints_total"] = len(exercise.hints)
        records[0]["hints_used"] = len(records[0]["hints"])
    if args.csv:
        write_csv(document, args.csv)
    if args.feedback:
        write_feedback(document, args.feedback)
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        for student in document["students"]:
            _print_student(student, len(document["students"]) > 1)
        if len(document["students"]) > 1:
            print("\n".join(f"{s['name']}: {s['exercises_passed']} of {len(s['exercises'])} exercises pass, "
                            f"{s['points']:g} of {s['points_max']:g} points" for s in document["students"]))
    return 0 if document["passed"] else 1


def run(argv):
    """Run ``exercises ...``; return the exit status. Mistakes raise ValueError / OSError (cli/main.py prints them)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    student_root = _running_student_copy()
    if student_root is not None:
        return _rerun_with_reference(argv, student_root)
    return {"list": run_list, "make": run_make, "check": run_check}[args.action](args)
