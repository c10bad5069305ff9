"""A teacher grades a synthetic class of 14 folders in one run: every failure mode on its own record.

One assignment (LayerNorm and GELU backwards, 2 and 1 points) made with its manifest outside the
folders; each student's folder then holds what a student might hand in: a right answer, an
endless loop, ``os._exit``, a segfault, ``SystemExit``, a copy that does not import, a call of
"the package's" function (which inside the check is their own copy), an edited
``.exercises.json``, one-term mistakes, a file changed outside the exercise, a memory hog.
"""
import csv
import json
import shutil
from pathlib import Path

import pytest

from minideberta.apps.cli.main import main
from minideberta.apps.exercises.manifest import hints_log_path

IDS = ["ops.layer_norm_backward", "ops.gelu_backward"]
RIGHT_LN = """\
    d = cache.xhat.shape[-1]
    g = dy * p["weight"]
    dx = cache.rstd / d * (d * g - g.sum(-1, keepdims=True) - cache.xhat * (g * cache.xhat).sum(-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, {"weight": (dy * cache.xhat).sum(axis=axes), "bias": dy.sum(axis=axes)}
"""
RIGHT_GELU = """\
    import numpy as np
    from scipy.special import erf
    x = cache.x
    return dy * (0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi))
"""
SIGN_LN = RIGHT_LN.replace("- cache.xhat * (g", "+ cache.xhat * (g")
TANH_GELU = """\
    import numpy as np
    x = cache.x
    t = np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x))
"""
CLASS = {  # name -> ({exercise: body}, what else to do to the folder)
    "right": ({"ops.layer_norm_backward": RIGHT_LN, "ops.gelu_backward": RIGHT_GELU}, None),
    "hang": ({"ops.layer_norm_backward": "    while True:\n        pass\n"}, None),
    "exits": ({"ops.layer_norm_backward": "    import os\n    os._exit(3)\n"}, None),
    "segfault": ({"ops.layer_norm_backward": "    import ctypes\n    return ctypes.string_at(0)\n"}, None),
    "systemexit": ({"ops.gelu_backward": "    raise SystemExit(3)\n"}, None),
    "syntax": ({}, "syntax"),
    "calls_package": ({"ops.layer_norm_backward": "    import minideberta.ops\n"
                                                  "    return minideberta.ops.layer_norm_backward(p, dy, cache)\n",
                       "ops.gelu_backward": "    from minideberta import ops\n    return ops.gelu_backward(dy, cache)\n"},
                      None),
    "edited_list": ({}, "empty list"),
    "sign": ({"ops.layer_norm_backward": SIGN_LN, "ops.gelu_backward": TANH_GELU}, None),
    "outside": ({"ops.layer_norm_backward": RIGHT_LN}, "edit heads.py"),
    "memory": ({"ops.gelu_backward": "    import numpy as np\n    return np.ones((20000, 20000, 8)) * dy.sum()\n"}, None),
    "not_started": ({}, None),
    "forward_edited": ({"ops.layer_norm_backward": RIGHT_LN}, "edit layer_norm_forward"),
    "lingering": ({"ops.gelu_backward": "    import threading, time\n"
                                        "    threading.Thread(target=time.sleep, args=(3600,)).start()\n"
                                        + RIGHT_GELU}, None),  # right, but the process does not end
}


def _answer(folder, exercise_id, body):
    ops = folder / "minideberta" / "ops.py"
    lines = ops.read_text().splitlines(keepends=True)
    stub = next(line for line in lines if f"exercise {exercise_id}:" in line)
    ops.write_text(ops.read_text().replace(stub, body))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    manifest = root / "lab.manifest.json"
    assert main(["exercises", "make", str(root / "lab"), "--only", *IDS, "--manifest", str(manifest),
                 "--points", "ops.layer_norm_backward=2"]) == 0
    folders = []
    for name, (answers, extra) in CLASS.items():
        folder = root / "class" / name
        shutil.copytree(root / "lab", folder)  # the teacher hands out copies of one folder
        for exercise_id, body in answers.items():
            _answer(folder, exercise_id, body)
        if extra == "syntax":
            ops = folder / "minideberta" / "ops.py"
            ops.write_text(ops.read_text().replace("def gelu_backward(dy, cache):", "def gelu_backward(dy, cache)"))
        elif extra == "empty list":
            (folder / ".exercises.json").write_text('{"exercises": [], "hints": {"ops.gelu_backward": 0}}\n')
        elif extra == "edit layer_norm_forward":  # in the exercise's own file, another function
            ops = folder / "minideberta" / "ops.py"
            ops.write_text(ops.read_text().replace("    xp = get_xp(x)\n", "    xp = get_xp(x)  # mine\n    x = x + 0\n",
                                                   1))
        elif extra == "edit heads.py":
            heads = folder / "minideberta" / "heads.py"
            heads.write_text(heads.read_text() + "\n# a note of mine\n")
        folders.append(str(folder))
    # One student asks for a hint through the teacher's checker, then edits the count in their folder.
    asking = str(root / "class" / "not_started")
    assert main(["exercises", "check", "ops.gelu_backward", "--path", asking, "--hint", "--manifest",
                 str(manifest), "--timeout", "60"]) == 1
    (Path(asking) / ".exercises.json").write_text('{"exercises": [], "hints": {}}\n')
    out = root / "out.json"
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        status = main(["exercises", "check", "--manifest", str(manifest), "--path", *folders, "--json", "--timeout",
                       "12", "--memory", "1024", "--jobs", "2", "--csv", str(root / "grades.csv"),
                       "--feedback", str(root / "feedback")])
    out.write_text(text.getvalue())
    return status, json.loads(text.getvalue()), root


def _records(document):
    return {Path(s["path"]).name: {e["id"]: e for e in s["exercises"]} for s in document["students"]}


def test_every_student_has_a_record_with_the_right_status(graded):
    status, document, _ = graded
    assert status == 1 and document["schema"] == "minideberta-grades/1"
    assert [e["id"] for e in document["exercises"]] == IDS
    statuses = {name: (r[IDS[0]]["status"], r[IDS[1]]["status"]) for name, r in _records(document).items()}
    assert statuses == {
        "right": ("passed", "passed"),
        "hang": ("time-out", "not implemented"),
        "exits": ("crashed", "not implemented"),
        "segfault": ("crashed", "not implemented"),
        "systemexit": ("not implemented", "crashed"),
        "syntax": ("does not import", "does not import"),
        "calls_package": ("failed", "failed"),  # their own copy, calling itself
        "edited_list": ("not implemented", "not implemented"),  # the manifest decides, not the folder
        "sign": ("failed", "failed"),
        "outside": ("passed", "not implemented"),
        "memory": ("not implemented", "failed"),
        "not_started": ("not implemented", "not implemented"),
        "forward_edited": ("passed", "not implemented"),
        "lingering": ("not implemented", "passed"),  # reported before the time limit: the report counts
    }


def test_the_records_say_why(graded):
    _, document, _ = graded
    records = _records(document)
    assert "still running after 12 s" in records["hang"][IDS[0]]["diagnosis"]
    assert records["hang"][IDS[0]]["seconds"] >= 12
    assert "exit status 3" in records["exits"][IDS[0]]["diagnosis"]
    assert "SIGSEGV" in records["segfault"][IDS[0]]["diagnosis"]
    assert "SystemExit" in records["systemexit"][IDS[1]]["diagnosis"]
    assert "does not import: SyntaxError" in records["syntax"][IDS[0]]["diagnosis"]
    assert "RecursionError" in records["calls_package"][IDS[0]]["diagnosis"]
    assert "the -xhat * mean(g * xhat) term has the wrong sign" in records["sign"][IDS[0]]["diagnosis"]
    assert "the tanh approximation" in records["sign"][IDS[1]]["diagnosis"]
    assert "MemoryError" in records["memory"][IDS[1]]["diagnosis"]
    students = {Path(s["path"]).name: s for s in document["students"]}
    assert students["outside"]["changed_files"] == ["minideberta/heads.py"]
    assert students["forward_edited"]["changed_files"] == ["minideberta/ops.py: layer_norm_forward"]
    assert all(s["changed_files"] == [] for name, s in students.items() if name not in ("outside", "forward_edited"))
    assert students["right"]["points"] == 3 and students["right"]["points_max"] == 3
    assert records["right"][IDS[0]]["points"] == 2 and records["outside"][IDS[0]]["points"] == 2
    assert records["not_started"][IDS[1]]["hints_used"] == 1  # from the teacher's log, not the folder
    assert all(r["hints_source"] == "teacher log" for s in records.values() for r in s.values())
    assert all(r["stages_total"] > 0 for s in records.values() for r in s.values())


def test_the_gradebook_and_the_feedback(graded):
    _, document, root = graded
    with open(root / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["student"] for r in rows] == list(CLASS)
    right = rows[0]
    assert (float(right[IDS[0]]), float(right[IDS[1]]), float(right["total"]), float(right["out of"])) == (2, 1, 3, 3)
    assert "ops.layer_norm_backward: time-out" in rows[1]["notes"]
    assert "changed minideberta/heads.py" in next(r for r in rows if r["student"] == "outside")["notes"]
    files = sorted(p.name for p in (root / "feedback").iterdir())
    assert files == sorted(f"{name}.txt" for name in CLASS)
    text = (root / "feedback" / "sign.txt").read_text()
    assert "the -xhat * mean(g * xhat) term has the wrong sign" in text and "FAIL" in text
    assert hints_log_path(root / "lab.manifest.json").is_file()


def test_a_manifest_inside_the_student_folder_is_refused(tmp_path, capsys):
    assert main(["exercises", "make", str(tmp_path / "lab"), "--only", IDS[0], "--manifest",
                 str(tmp_path / "lab" / "m.json")]) == 2
    assert "where the student can edit it" in capsys.readouterr().err
