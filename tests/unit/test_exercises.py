"""Exercises: the reference passes every stage, a student copy imports and runs, stubs say "not implemented"."""
import ast
import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from minideberta.apps.cli.main import main
from minideberta.apps.exercises import catalog
from minideberta.apps.exercises.cases import load_student, reference
from minideberta.apps.exercises.check import check_exercise
from minideberta.apps.exercises.make import MANIFEST, make, remove

REPO = Path(__file__).resolve().parents[2]
WHOLE = [e for e in catalog.EXERCISES if not e.part]
PARTIAL = [e for e in catalog.EXERCISES if e.part]


@pytest.fixture(scope="session")
def ref():
    return reference()


@pytest.fixture(scope="session")
def whole_copy(tmp_path_factory):
    """One student copy with every whole-function exercise removed, made once per session."""
    folder = tmp_path_factory.mktemp("class") / "lab"
    make(folder)
    return folder


@pytest.fixture(scope="session")
def student(whole_copy):
    return load_student(whole_copy)


@pytest.mark.parametrize("exercise", catalog.EXERCISES, ids=lambda e: e.id)
def test_the_reference_passes_every_stage(exercise, ref):
    """The installed package checked as if it were a student's: every stage, every output PASS."""
    report = check_exercise(exercise, ref, ref)
    failed = [(s["stage"], s.get("message"), [r for r in s["outputs"] if r["status"] != "PASS"])
              for s in report["stages"] if s["status"] != "pass"]
    assert report["status"] == "pass", failed
    assert len(report["stages"]) >= 3
    rows = [r for s in report["stages"] for r in s["outputs"]]
    assert rows and all(r["error"] <= 1e-9 for r in rows if "expected" in r)
    assert all(r["numeric_error"] <= r["numeric_expected"] for r in rows if "numeric_error" in r)
    if exercise.target.endswith("backward"):  # every gradient also against central differences
        gradients = [r for r in rows if r["output"].startswith("d")]  # a loss value is checked as a forward
        assert len(gradients) >= 3 and all("numeric_error" in r for r in gradients)


@pytest.mark.parametrize("exercise", WHOLE, ids=lambda e: e.id)
def test_a_removed_function_is_reported_not_implemented(exercise, student, ref):
    report = check_exercise(exercise, student, ref)
    assert report["status"] == "not implemented"
    assert report["stages"][0]["status"] == "not implemented"
    assert report["stages"][0]["missing"] == exercise.id
    assert {s["status"] for s in report["stages"][1:]} <= {"not run"}


def _functions(tree, prefix=""):
    """{qualified name: node} of every function and method of a module."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out.update(_functions(node, f"{prefix}{node.name}."))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[prefix + node.name] = node
    return out


def test_the_copy_keeps_everything_that_is_not_an_exercise(whole_copy):
    """Byte for byte outside the removed bodies: every other function has the reference's AST,
    every removed one keeps its signature and its docstring's first paragraph and raises the stub."""
    removed = {(e.file, e.module[1]): e.id for e in WHOLE}
    removed.update({(catalog.file_of(name), catalog.module_of(name)[1]): e.id for e in WHOLE for name in e.also})
    package = REPO / "minideberta"
    files = sorted(p.relative_to(REPO) for p in package.rglob("*.py"))
    assert files == sorted(p.relative_to(whole_copy) for p in (whole_copy / "minideberta").rglob("*.py"))
    for rel in files:
        mine, theirs = (ast.parse((root / rel).read_text()) for root in (REPO, whole_copy))
        mine_f, theirs_f = _functions(mine), _functions(theirs)
        assert mine_f.keys() == theirs_f.keys(), rel
        for name, node in mine_f.items():
            copy = theirs_f[name]
            if (str(rel), name) in removed:
                assert ast.dump(copy.args) == ast.dump(node.args)
                # The docstring's first paragraph (the question) stays; what follows may be the answer, and
                # the copy neither keeps it nor says where it is.
                if ast.get_docstring(node) is not None:
                    assert ast.get_docstring(copy).rstrip() == ast.get_docstring(node).split("\n\n")[0]
                stub = copy.body[-1]
                assert isinstance(stub, ast.Raise) and f"exercise {removed[str(rel), name]}: " in ast.unparse(stub)
            else:
                assert ast.dump(copy) == ast.dump(node), f"{rel}:{name} changed"
    manifest = json.loads((whole_copy / MANIFEST).read_text())
    assert manifest == {"exercises": [e.id for e in WHOLE], "hints": {}}
    for path in whole_copy.rglob("*"):  # self-contained: nothing in the copy points at the reference
        if path.is_file():
            assert str(REPO) not in path.read_text(encoding="utf-8", errors="replace"), path
    assert "python -m minideberta exercises check" in (whole_copy / "README.md").read_text()


def test_the_copy_differs_only_by_one_stub_line_per_removed_body(whole_copy):
    """Text, not just syntax: comments, blank lines and formatting outside the removed bodies are kept;
    a removed function's docstring loses what follows its first paragraph (it may state the answer)."""
    by_file = {}
    for e in WHOLE:
        for name in (e.target, *e.also):
            by_file.setdefault(catalog.file_of(name), []).append(e.id)
    for name in sorted({str(p.relative_to(REPO)) for p in (REPO / "minideberta").rglob("*.py")}):
        original = (REPO / name).read_text().splitlines()
        copy = (whole_copy / name).read_text().splitlines()
        changes = [op for op in difflib.SequenceMatcher(None, original, copy, autojunk=False).get_opcodes()
                   if op[0] != "equal"]
        stubs = []
        for tag, i1, i2, j1, j2 in changes:
            if tag == "delete" or (j2 - j1 == 1 and copy[j1].strip() == '"""'):  # a docstring's answer, cut
                assert not any("NotImplementedError" in line for line in copy[j1:j2])
                continue
            assert tag == "replace" and j2 - j1 == 1, (name, original[i1:i2], copy[j1:j2])
            stubs.append(copy[j1].strip())
        named = sorted(stub.split("'exercise ")[1].split(":")[0] for stub in stubs)
        assert named == sorted(by_file.get(name, [])), name
        for stub, exercise_id in zip(sorted(stubs), named):
            assert stub.startswith(f"raise NotImplementedError('exercise {exercise_id}: ")
            assert stub.endswith(f"python -m minideberta exercises check {exercise_id} --path {whole_copy}')")


def test_what_is_not_removed_still_runs(tmp_path, ref):
    """A copy without the GELU backward runs the model forward exactly as the reference does; its
    backward stops at the stub, which names the exercise and the command that checks it."""
    make(tmp_path / "lab", ["ops.gelu_backward"])
    student = load_student(tmp_path / "lab")
    ids = np.array([[1, 5, 3, 2, 6]])
    outputs = []
    for pkg in (ref, student):
        config = pkg.get("config.DebertaV2Config")(vocab_size=9, hidden_size=8, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=12,
                                                   max_position_embeddings=16, relative_attention=True,
                                                   position_buckets=4, pos_att_type="c2p|p2c", share_att_key=True,
                                                   norm_rel_ebd="layer_norm", position_biased_input=False)
        model = pkg.get("tasks.DebertaV2ForSequenceClassification")(config, seed=0, dtype=np.float64)
        outputs.append(model(ids, labels=np.array([1])))
        if pkg is student:
            with pytest.raises(NotImplementedError, match=r"exercise ops\.gelu_backward: .*check ops\.gelu_backward"):
                model.backward()
    np.testing.assert_array_equal(outputs[0].logits, outputs[1].logits)


@pytest.mark.parametrize("exercise", PARTIAL, ids=lambda e: e.id)
def test_a_partial_exercise_removes_only_its_region(exercise, tmp_path, ref):
    make(tmp_path / "lab", [exercise.id])
    source = (tmp_path / "lab" / exercise.file).read_text()
    original = (REPO / exercise.file).read_text()
    node = _functions(ast.parse(source))[exercise.module[1]]
    body = ast.get_source_segment(source, node)
    assert f"exercise {exercise.id}:" in body
    assert f"BEGIN EXERCISE {exercise.id}" in original and f"BEGIN EXERCISE {exercise.id}" not in source
    kept = [line for line in ast.get_source_segment(original, _functions(ast.parse(original))[exercise.module[1]])
            .splitlines() if "EXERCISE" not in line]
    assert len(body.splitlines()) < len(kept)
    assert body.splitlines()[-1] == kept[-1]  # the lines after the region are still there
    for name in exercise.also:  # a helper that would give the answer away goes too (p2c: p2c_scores_backward)
        helper_file = (tmp_path / "lab" / catalog.file_of(name)).read_text()
        helper = _functions(ast.parse(helper_file))[catalog.module_of(name)[1]]
        assert isinstance(helper.body[-1], ast.Raise) and f"exercise {exercise.id}:" in ast.unparse(helper.body[-1])
    report = check_exercise(exercise, load_student(tmp_path / "lab"), ref)
    assert report["status"] == "not implemented"
    first = next(s for s in report["stages"] if s["status"] != "pass")  # the stages before the part may pass
    assert first["status"] == "not implemented" and first["missing"] == exercise.id


def test_remove_keeps_indentation_comments_and_other_functions():
    source = ('import math\n\n\nclass A:\n    def f(self, x):\n        """Doc."""\n        # the answer:\n'
              '        return x  # here\n\n    def g(self):\n        return 1  # kept\n\n\n'
              'def h(y):\n    w = y  # kept too\n    # BEGIN EXERCISE m.h.part\n    z = y * 2\n'
              '    # END EXERCISE m.h.part\n    return z\n')
    method = SimpleNamespace(id="m.A.f", statement="write f", part=False, module=("m", "A.f"))
    part = SimpleNamespace(id="m.h.part", statement="double", part=True, module=("m", "h"))
    out = remove(source, [method, part], "DIR", "m.py")
    stub = ("raise NotImplementedError('exercise {}: {}. Check with: python -m minideberta exercises check {} "
            "--path DIR')")
    assert out == ('import math\n\n\nclass A:\n    def f(self, x):\n        """Doc."""\n'
                   f'        {stub.format("m.A.f", "write f", "m.A.f")}\n\n'
                   '    def g(self):\n        return 1  # kept\n\n\n'
                   f'def h(y):\n    w = y  # kept too\n    {stub.format("m.h.part", "double", "m.h.part")}\n'
                   '    return z\n')
    with pytest.raises(ValueError, match="no '# BEGIN EXERCISE m.h.other'"):
        remove(source, [SimpleNamespace(id="m.h.other", statement="", part=True, module=("m", "h"))], "D", "m.py")
    with pytest.raises(ValueError, match="A.nope is not defined in m.py"):
        remove(source, [SimpleNamespace(id="m.A.nope", statement="", part=False, module=("m", "A.nope"))], "D", "m.py")


def test_make_refuses_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "work.py").write_text("x = 1\n")
    assert main(["exercises", "make", str(tmp_path / "lab")]) == 2
    assert capsys.readouterr().err.startswith("error: ") and (tmp_path / "lab" / "work.py").read_text() == "x = 1\n"
    assert main(["exercises", "make", str(tmp_path / "new"), "--only", "ops.no_such"]) == 2
    assert "unknown exercise 'ops.no_such'" in capsys.readouterr().err


def test_list_names_every_exercise(capsys):
    assert main(["exercises", "list"]) == 0
    text = capsys.readouterr().out
    assert all(e.id in text and e.file in text for e in catalog.EXERCISES)
    assert main(["exercises", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [e.id for e in catalog.EXERCISES]
    assert {r["level"] for r in rows} <= set(catalog.LEVELS)
    assert main(["exercises", "--help"]) == 0
    assert "exercises check" in capsys.readouterr().out


def test_check_json_and_hints(whole_copy, capsys):
    exit_code = main(["exercises", "check", "ops.gelu_backward", "losses.cross_entropy_backward", "--path",
                      str(whole_copy), "--json"])
    assert exit_code == 1
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == "minideberta-grades/1" and document["passed"] is False
    (student,) = document["students"]
    assert [e["status"] for e in student["exercises"]] == ["not implemented", "not implemented"]
    assert all(e["hints_source"] == "student folder" for e in student["exercises"])
    exercise = catalog.get("ops.layer_norm_backward")
    for shown in (1, 2, 3, 3):
        assert main(["exercises", "check", exercise.id, "--path", str(whole_copy), "--hint"]) == 1
        out = capsys.readouterr().out
        assert f"hint {shown}/{len(exercise.hints)}: {exercise.hints[shown - 1]}" in out
        assert f"hint {shown + 1}/" not in out
    assert main(["exercises", "check", "--path", str(whole_copy), "--hint"]) == 2
    assert "one exercise" in capsys.readouterr().err


def test_grading_a_class(whole_copy, tmp_path, capsys):
    """Several folders at once: the same schema as one, one entry per student, in the order given."""
    folders = [str(REPO), str(whole_copy), str(tmp_path / "empty")]
    assert main(["exercises", "check", "ops.gelu_backward", "--path", *folders, "--json"]) == 1
    grades = json.loads(capsys.readouterr().out)["students"]
    assert [g["path"] for g in grades] == folders
    assert [g["exercises"][0]["status"] for g in grades] == ["passed", "not implemented", "does not import"]
    assert [g["exercises_passed"] for g in grades] == [1, 0, 0]
    assert "holds no minideberta/ package" in grades[2]["exercises"][0]["diagnosis"]


def test_check_of_the_reference_folder_exits_0(capsys):
    assert main(["exercises", "check", "ops.gelu_backward", "relative_position.rel_to_abs", "--path", str(REPO)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 exercises pass" in out and "FAIL" not in out


def test_check_from_inside_the_student_folder_uses_the_reference(whole_copy):
    """`python -m minideberta` run inside DIR imports the student's copy first; it hands over to the
    reference rather than judging the student against their own stubs."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "minideberta", "exercises", "check", "ops.gelu_backward"],
                          cwd=whole_copy, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "NOT IMPLEMENTED" in done.stdout and "ops.gelu_backward is not implemented yet" in done.stdout


def test_a_copy_that_does_not_import_is_an_error_not_a_crash(tmp_path, capsys):
    make(tmp_path / "lab", ["ops.gelu_backward"])
    ops = tmp_path / "lab" / "minideberta" / "ops.py"
    ops.write_text(ops.read_text().replace("def gelu_backward(dy, cache):", "def gelu_backward(dy, cache)"))
    assert main(["exercises", "check", "ops.gelu_backward", "--path", str(tmp_path / "lab")]) == 1
    assert "does not import: SyntaxError" in capsys.readouterr().out
    assert main(["exercises", "check", "ops.gelu_backward", "--path", str(tmp_path / "nothing")]) == 2
    assert "exercises make" in capsys.readouterr().err


def test_the_readme_lists_every_exercise():
    readme = (REPO / "README.md").read_text()
    for e in catalog.EXERCISES:
        assert f"| `{e.id}` | {e.statement} | {e.level} | ~{e.minutes} min |" in readme, e.id


STUDENT_LAYER_NORM = """\
    d = cache.xhat.shape[-1]
    g = dy * p["weight"]
    dx = cache.rstd / d * (d * g - g.sum(-1, keepdims=True)
                           - cache.xhat * (g * cache.xhat).sum(-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, {"weight": (dy * cache.xhat).sum(axis=axes), "bias": dy.sum(axis=axes)}
"""


def test_a_student_who_writes_the_function_passes(tmp_path, capsys):
    """The whole flow through files: make, write a solution of one's own into the stub, check."""
    folder = tmp_path / "lab"
    assert main(["exercises", "make", str(folder), "--only", "ops.layer_norm_backward"]) == 0
    ops = folder / "minideberta" / "ops.py"
    lines = ops.read_text().splitlines(keepends=True)
    stub = next(line for line in lines if "exercise ops.layer_norm_backward" in line)
    ops.write_text(ops.read_text().replace(stub, STUDENT_LAYER_NORM))
    capsys.readouterr()
    assert main(["exercises", "check", "--path", str(folder)]) == 0
    assert "result: PASS: every stage passed" in capsys.readouterr().out
    projection = "\n                           - cache.xhat * (g * cache.xhat).sum(-1, keepdims=True))"
    wrong = STUDENT_LAYER_NORM.replace(projection, ")")  # forgets the component along xhat
    assert wrong != STUDENT_LAYER_NORM
    ops.write_text(ops.read_text().replace(STUDENT_LAYER_NORM, wrong))
    assert main(["exercises", "check", "--path", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)["students"][0]["exercises"][0]
    assert report["status"] == "failed" and report["first_failing_stage"] == "one row of 6, weight 1, bias 0"
    assert "the -xhat * mean(g * xhat) term is missing" in report["diagnosis"]
    rows = {r["output"]: r["status"] for r in report["stages"][0]["outputs"]}
    assert rows == {"dx": "FAIL", "dweight": "PASS", "dbias": "PASS"}


def test_every_exercise_a_notebook_points_to_exists():
    """The notebooks end with ``python -m minideberta exercises check ID``: each ID is in the catalog."""
    import re

    from minideberta.apps.exercises import catalog

    known = {e.id for e in catalog.EXERCISES}
    pointed = {}
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        text = re.sub(r"\n#\s*", " ", path.read_text(encoding="utf-8"))  # join wrapped markdown lines
        for exercise_id in re.findall(r"exercises check\s+([\w.]+[\w])", text):
            pointed.setdefault(exercise_id, path.name)
    assert len(pointed) >= 10, pointed  # the course points at most of the catalog
    unknown = {i: name for i, name in pointed.items() if i not in known}
    assert not unknown, f"notebooks point to exercises the checker does not have: {unknown}"


def test_every_stage_draws_an_upstream_gradient_of_its_own(ref):
    """LayerNorm's first stage once drew dy from the stream that drew x: dy was along x - mean(x) and the
    true dx was round-off (1e-7), so every printed error was relative to noise."""
    stage = catalog.get("ops.layer_norm_backward").stages()[0]
    dx = next(o for o in stage.run(ref, ref) if o.name == "dx")
    assert np.max(np.abs(dx.want)) > 0.1
