"""Run an exercise's stages on a student's copy, judge each output, and say what is probably wrong.

Every output of every stage gets two numbers where it can: the relative error against the
reference function (a correct answer differs only by round-off, below ``REFERENCE_TOL``) and,
for gradients, against central differences of the reference forward (a correct backward is
about as close as the reference's own backward, which is printed next to it). "Not
implemented" (the stub's NotImplementedError) is kept apart from "wrong" and from a crash.
"""
import traceback

import numpy as np

from .cases import STUDENT_MARK
from .diagnose import array_diagnoses, integer_diagnoses, shape_diagnosis
from .terms import nothing_explains, term_diagnoses

REFERENCE_TOL = 1e-9  # float64, same formula in another order: round-off of 1e-15 .. 1e-12
NUMERIC_TOL = 1e-7  # float64 central differences with h = 1e-5 (minideberta.gradcheck.EXPECTED_ERROR)
FLOOR = 1e-3  # errors of an all-but-zero gradient are measured against the stage's largest gradient


def _is_float_array(x):
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def _fail(row, *diagnosis, **numbers):
    return {**row, **numbers, "status": "FAIL", "diagnosis": list(diagnosis)}


def _judge_exact(row, got, want, labels):
    """Integers, flags, lists: right or wrong, nothing in between."""
    if isinstance(want, np.ndarray):
        try:
            got = np.asarray(got)
        except ValueError:
            return _fail(row, f"not an array: {_short(got)}")
        if got.shape != want.shape:
            return _fail(row, f"shape {got.shape}, expected {want.shape}: " + shape_diagnosis(got.shape, want.shape))
        if got.dtype.kind not in "iub":
            return _fail(row, f"dtype {got.dtype}, expected integers ({want.dtype})")
        found = integer_diagnoses(got, want, labels)
        return _fail(row, *found, error=1.0, expected=0.0) if found else {**row, "error": 0.0, "expected": 0.0}
    if _same(got, want):
        return {**row, "error": 0.0, "expected": 0.0}
    return _fail(row, f"got {_short(got)}, expected {_short(want)}", error=1.0, expected=0.0)


def judge(out, stage_scale):
    """A dict for one output: its errors, the bound a correct answer stays under, PASS/FAIL, diagnoses.

    Errors are relative to the largest entry of the right answer, or to a thousandth of the
    stage's largest answer when this one is all but zero (a gradient that vanishes by symmetry).
    """
    row = {"output": out.name, "status": "PASS", "diagnosis": []}
    want, got = out.want, out.got
    if got is None and want is not None:
        return _fail(row, f"{out.name} is missing from what the function returned")
    if not _is_float_array(want):
        return _judge_exact(row, got, want, out.labels)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return _fail(row, f"not an array of numbers: {_short(got)}")
    if got.shape != want.shape:
        return _fail(row, f"shape {got.shape}, expected {want.shape}: " + shape_diagnosis(got.shape, want.shape))
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, FLOOR * stage_scale, np.finfo(float).tiny)
    row.update(error=float(np.max(np.abs(got - want), initial=0.0)) / scale, expected=REFERENCE_TOL)
    passed = row["error"] <= REFERENCE_TOL
    if out.numeric is not None:
        picked, numeric = out.numeric
        reference_error = float(np.max(np.abs(want.reshape(-1)[picked] - numeric), initial=0.0)) / scale
        row.update(numeric_error=float(np.max(np.abs(got.reshape(-1)[picked] - numeric), initial=0.0)) / scale,
                   numeric_expected=max(NUMERIC_TOL, 10 * reference_error), numeric_reference=reference_error)
        passed = passed and row["numeric_error"] <= row["numeric_expected"]
    if passed:
        return row
    found = term_diagnoses(got, want, out.terms, out.variants, scale)
    if not found:
        found = array_diagnoses(got, want, REFERENCE_TOL, out.regions, scale)
        if (out.terms or out.variants) and found and "no pattern recognised" in found[-1]:
            found[-1] = found[-1].replace("no pattern recognised", nothing_explains(out.terms, out.variants))
    return _fail(row, *found)


def _short(x, width=100):
    text = repr(x)
    return text if len(text) <= width else text[:width - 3] + "..."


def _where(error, student):
    """Where to look: the innermost line of the student's copy in the traceback, or, when the error
    came from the checker reading the result, a word on what the result should be."""
    root = str(student.file)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(root)]
    if frames and "apps/exercises" not in frames[-1].filename.replace("\\", "/"):
        return f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return " (raised while the checker used what the function returned: does it return what the docstring says?)"


def _same(got, want):
    try:
        return bool(got == want)
    except (TypeError, ValueError):  # an array where a list or a flag was expected
        return False


def run_stage(stage, student, ref):
    """One stage: a dict with its status ('pass', 'fail', 'not implemented', 'error') and its outputs."""
    result = {"stage": stage.name, "adds": stage.adds, "outputs": []}
    try:
        outputs = stage.run(student, ref)
    except NotImplementedError as error:
        message = str(error)
        if message.startswith(STUDENT_MARK):
            missing = message[len(STUDENT_MARK):].split(":")[0]
            return {**result, "status": "not implemented", "missing": missing,
                    "message": f"{missing} is not implemented yet"}
        return {**result, "status": "error", "message": f"NotImplementedError: {message}{_where(error, student)}"}
    except Exception as error:  # a crash in the student's code: say what and where
        return {**result, "status": "error",
                "message": f"{type(error).__name__}: {error}{_where(error, student)}"}
    floats = [float(np.max(np.abs(o.want))) for o in outputs if _is_float_array(o.want) and o.want.size]
    stage_scale = max(floats, default=0.0)
    result["outputs"] = [judge(o, stage_scale) for o in outputs]
    result["status"] = "pass" if all(r["status"] == "PASS" for r in result["outputs"]) else "fail"
    return result


def check_exercise(exercise, student, ref):
    """Every stage of ``exercise``; the report a teacher's script or the text printer reads."""
    stages = []
    for stage in exercise.stages():
        if stages and stages[-1]["status"] in ("not implemented", "not run"):
            stages.append({"stage": stage.name, "adds": stage.adds, "outputs": [], "status": "not run",
                           "message": "not run: the stage before needs a function that is not implemented"})
        else:
            stages.append(run_stage(stage, student, ref))
    statuses = [s["status"] for s in stages]
    if any(s in ("fail", "error") for s in statuses):
        status = "fail"
    elif "not implemented" in statuses:  # a partial exercise: the stages before its part may pass
        status = "not implemented"
    else:
        status = "pass"
    report = {"id": exercise.id, "file": exercise.file, "statement": exercise.statement, "status": status,
              "stages_passed": statuses.count("pass"), "stages": stages}
    first = next((s for s in stages if s["status"] != "pass"), None)
    if first is not None and status == "fail":
        report["first_failing_stage"] = first["stage"]
        if statuses.index(first["status"]) > 0 and first["status"] == "fail":
            report["summary"] = (f"the stages before passed, so probably what this stage adds is wrong: "
                                 f"{first['adds']}")
    return report


def _num(x):
    return f"{x:.1e}"


LEGEND = ("  (errors relative to the largest entry; ref: against the reference function, numeric: against "
          "central differences; after '<': the bound a correct answer stays under)")


def _row(row, width):
    parts = [f"      {row['output']:<{width}}"]
    if row.get("expected"):
        parts.append(f"ref {_num(row['error'])} <{_num(row['expected'])}")
    elif "error" in row:
        parts.append(f"{'right' if row['status'] == 'PASS' else 'differs':<17}")
    if "numeric_error" in row:
        parts.append(f"numeric {_num(row['numeric_error'])} <{_num(row['numeric_expected'])}")
    parts.append(row["status"])
    return "  ".join(parts)


def format_report(report):
    """The report as text for a person."""
    lines = [f"{report['id']}  ({report['file']})  {report['statement']}", LEGEND]
    stages = report["stages"]
    for i, stage in enumerate(stages, 1):
        lines.append(f"  stage {i}/{len(stages)}: {stage['stage']}  -> {stage['status'].upper()}")
        if stage["status"] in ("not implemented", "error"):
            lines.append(f"      {stage['message']}")
        if stage["status"] != "pass" and not stage["outputs"]:
            continue
        width = min(max((len(r["output"]) for r in stage["outputs"]), default=0), 40)
        for row in stage["outputs"]:
            lines.append(_row(row, width))
            lines.extend(f"          {d}" for d in row["diagnosis"])
    verdict = {"pass": "PASS: every stage passed", "not implemented": "NOT IMPLEMENTED yet",
               "fail": f"FAIL ({report['stages_passed']} of {len(stages)} stages passed)"}[report["status"]]
    lines.append(f"  result: {verdict}")
    if "first_failing_stage" in report:
        lines.append(f"  first failing stage: {report['first_failing_stage']}")
    if "summary" in report:
        lines.append(f"  {report['summary']}")
    return "\n".join(lines)
