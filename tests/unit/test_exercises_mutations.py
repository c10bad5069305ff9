"""Broken solutions, generated here from the reference, are caught, and diagnosed where a diagnosis exists.

The "student" is the reference loaded as a student's copy (the ``student`` fixture of conftest.py),
with one function replaced: the reference's own result changed (scaled, sign flipped, axes
swapped, zeroed) or the reference's source with one line edited (a missing term, a forgotten
scale, an accumulation turned into an assignment).
"""
import inspect
import math
import re
import sys
import textwrap

import numpy as np
import pytest

from minideberta.apps.exercises import catalog
from minideberta.apps.exercises.check import check_exercise
from minideberta.apps.exercises.diagnose import array_diagnoses


def _map_floats(value, f):
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return f(value)
    if isinstance(value, tuple):
        return tuple(_map_floats(v, f) for v in value)
    if isinstance(value, dict):
        return {k: _map_floats(v, f) for k, v in value.items()}
    return value


def results(f):
    """A mutation that calls the reference function and changes every float array it returns."""
    def mutate(fn):
        return lambda *args, **kwargs: _map_floats(fn(*args, **kwargs), f)
    return mutate


def edit(old, new, pattern=False, **names):
    """A mutation that recompiles the reference function's source with ``old`` (a regular
    expression if ``pattern``) replaced by ``new``, in the student module's namespace plus ``names``."""
    def mutate(fn, namespace):
        source = textwrap.dedent(inspect.getsource(fn))
        expression = old if pattern else re.escape(old)
        assert len(re.findall(expression, source)) == 1, f"the reference no longer has {old!r}: update this mutation"
        scope = {}
        exec(compile(re.sub(expression, lambda _: new, source), f"<mutated {fn.__qualname__}>", "exec"),
             {**namespace, **names} if names else namespace, scope)
        return scope[fn.__name__]
    mutate.edits = True
    return mutate


def install(monkeypatch, student, ref, dotted, mutation):
    """Replace ``dotted`` in the student's copy by the mutation of the reference's function."""
    owner_name, _, attr = dotted.rpartition(".")
    owner = student.get(owner_name)  # a module, or a class for a method
    namespace = vars(sys.modules[owner.__module__]) if isinstance(owner, type) else vars(owner)
    original = ref.get(dotted)
    mutated = mutation(original, namespace) if getattr(mutation, "edits", False) else mutation(original)
    if isinstance(inspect.getattr_static(owner, attr), staticmethod) and not isinstance(mutated, staticmethod):
        mutated = staticmethod(mutated)
    monkeypatch.setattr(owner, attr, mutated)


def masked_only(fn):
    """Right everywhere except the masked entries (where the right gradient is exactly 0)."""
    def wrong(dprobs, cache):
        ds = fn(dprobs, cache)
        return ds + (ds == 0) * dprobs
    return wrong


def off_by_one_beyond(fn):
    def wrong(relative_pos, bucket_size, max_position):
        out = fn(relative_pos, bucket_size, max_position)
        return out + np.sign(out) * (np.abs(relative_pos) > bucket_size // 2)
    return wrong


def no_position_gradient(fn):
    def wrong(p, dquery, cache):
        dhidden, grads = fn(p, dquery, cache)
        return dhidden, {**grads, "embeddings.position_embeddings.weight":
                         np.zeros_like(grads["embeddings.position_embeddings.weight"])}
    return wrong


def leak_at_padding(fn):
    """dhidden is exactly 0 at padded tokens; this one is not."""
    def wrong(p, dcontext, cache):
        (dhidden, dqueries, drel), grads = fn(p, dcontext, cache)
        return (dhidden + (dhidden == 0) * 1.0, dqueries, drel), grads
    return wrong


def scatter_assign_rows(n_rows, rows, values):
    """A gather's gradient written with an assignment: a row read several times keeps one gradient."""
    out = np.zeros((n_rows, values.shape[-1]))
    out[rows] = values
    return out


# (exercise, function patched, mutation, first failing stage, words of the expected diagnosis or None)
MUTATIONS = {
    "scaled by 1.001": ("ops.layer_norm_backward", None, results(lambda a: a * 1.001), 0, "1.001 times"),
    "sign flipped": ("ops.gelu_backward", None, results(lambda a: -a), 0, "a sign is flipped"),
    "wrong at masked entries": ("ops.masked_softmax_backward", None, masked_only, 1, "wrong only on masked entries"),
    "forgotten mean": ("losses.cross_entropy_backward", None, edit(r"\(dloss / .*\)", "dloss", pattern=True), 0,
                       "a missing division by 4"),
    "ignored rows counted": ("losses.cross_entropy_backward", None,
                             edit("counted[:, None] * (dloss", "(dloss"), 1,
                             "the ignored rows (label -100) get softmax - onehot too"),
    "transposed axes": ("relative_position.rel_to_abs", None, results(lambda a: a.swapaxes(-1, -2)), 0,
                        "agrees with the right answer with axes 0 and 1 swapped"),
    "log buckets off by one": ("relative_position.make_log_bucket_position", None, off_by_one_beyond, 1,
                               "entries wrong; input -23: got"),
    "missing [CLS] term": ("heads.rtd_head_backward", None, edit("dhidden[:, 0] += dsum.sum(axis=1)", "pass"), 0,
                           "the [CLS] sum (every position's gradient, added at position 0) term is missing"),
    "col2im without accumulation": ("ngie.conv1d_backward.col2im", "ngie.conv1d_backward",
                                    edit("dpadded[:, t:t + n] += dcols", "dpadded[:, t:t + n] = dcols"), 1, None),
    "position gradient never added": ("emd.backward", None, no_position_gradient, 0, "all zeros"),
    "one decoder pass": ("emd.forward", None, edit("range(PASSES)", "range(1)"), 0, None),
    "no bias correction": ("optim.AdamW.step", None, edit("step_size = lr / (1 - beta1 ** self.t)",
                                                          "step_size = lr"), 0, None),
    "decay on every parameter": ("optim.AdamW.step", None, edit("if self.decays[name] and", "if"), 1, None),
    "attention scaled by 1.001": ("attention.backward", None, results(lambda a: a * 1.001), 0, "1.001 times"),
    "attention scale forgotten": ("attention.backward", None, edit("dterm = dscores * c.scale", "dterm = dscores"),
                                  0, "a factor 1/sqrt(5) missing"),
    "attention scale without 1 + terms": ("attention.backward", None,
                                          edit("dterm = dscores * c.scale",
                                               "dterm = dscores / math.sqrt(c.config.attention_head_size)"),
                                          2, "a factor 1/sqrt(2) missing"),
    "p2c term missing": ("attention.backward", None, edit("dk += dk_term", "pass"), 3, None),
    "gradient at padded positions": ("attention.backward", None, leak_at_padding, 1,
                                     "wrong only on padded positions"),
    "c2p sign flipped": ("attention.c2p_scores", None, results(lambda a: -a), 0, "a sign is flipped"),
    "p2c not transposed": ("attention.p2c_scores", None, results(lambda a: a.swapaxes(-1, -2)), 0,
                           "axes 2 and 3 swapped: probably the axes are exchanged (query and key, or c2p and p2c)"),
    "shared rows assigned": ("attention.position_projection_backward", None,
                             edit("scatter_add_rows(", "scatter_assign_rows(", scatter_assign_rows=scatter_assign_rows),
                             1, "the gather's gradient assigned (dtable[rows] = ...) instead of added"),
    "attention with shared rows assigned": ("attention.backward", "attention.position_projection_backward",
                                            edit("scatter_add_rows(", "scatter_assign_rows(",
                                                 scatter_assign_rows=scatter_assign_rows),
                                            5, "wrong only on rows shared by several distances"),
    "partial p2c missing": ("attention.backward.p2c", "attention.backward", edit("dk += dk_term", "pass"), 3, None),
    "ties broken the other way": ("tokenizer.unigram.Unigram.segment", "tokenizer.unigram.Unigram._relax",
                                  edit("candidate > best[end]", "candidate >= best[end]"), 3, None),
}


def diagnoses(report):
    return [d for s in report["stages"] for r in s["outputs"] for d in r["diagnosis"]]


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_broken_solution_is_caught_and_diagnosed(name, student, ref, monkeypatch):
    exercise_id, patched, mutation, first_failing, words = MUTATIONS[name]
    install(monkeypatch, student, ref, patched or exercise_id, mutation)
    exercise = catalog.get(exercise_id)
    report = check_exercise(exercise, student, ref)
    statuses = [s["status"] for s in report["stages"]]
    assert report["status"] == "fail", statuses
    assert statuses.index("fail") == first_failing, statuses
    assert all(s == "pass" for s in statuses[:first_failing])
    assert report["first_failing_stage"] == exercise.stages()[first_failing].name
    if first_failing > 0:
        assert report["summary"].endswith(exercise.stages()[first_failing].adds)
    if words is not None:
        assert any(words in d for d in diagnoses(report)), diagnoses(report)
        facts = ("entries wrong;", "matches the answer with this mistake", " term is missing (in the formula",
                 " term has the wrong sign (in the formula")  # identified exactly, not guessed
        guesses = [d for d in diagnoses(report) if words in d and not any(f in d for f in facts)]
        assert all("probably" in d for d in guesses)


def test_a_scale_without_its_1_plus_terms_is_named_at_each_stage(student, ref, monkeypatch):
    """1/sqrt(d) instead of 1/sqrt(d (1 + terms)): right for c2c, sqrt(2) off with c2p, sqrt(3) with both."""
    install(monkeypatch, student, ref, "attention.backward",
            edit("dterm = dscores * c.scale", "dterm = dscores / math.sqrt(c.config.attention_head_size)"))
    report = check_exercise(catalog.get("attention.backward"), student, ref)
    by_stage = {s["stage"]: [d for r in s["outputs"] for d in r["diagnosis"]] for s in report["stages"]}
    assert by_stage["c2c only"] == [] and by_stage["padding"] == []
    assert any("1.41421 times the right one: probably a factor 1/sqrt(2) missing" in d for d in by_stage["c2p"])
    assert any("1.73205 times the right one: probably a factor 1/sqrt(3) missing" in d for d in by_stage["p2c"])


def test_the_diagnoses_on_plain_arrays():
    rng = np.random.default_rng(0)
    want = rng.normal(size=(2, 4, 4))
    assert "3 times the right one: probably a missing division by 3" in array_diagnoses(want * 3, want, 1e-9)[0]
    (ratio,) = array_diagnoses(want / math.sqrt(3), want, 1e-9)
    assert "0.57735 times" in ratio and "1/sqrt(3) too many" in ratio and "scale" in ratio and "applied twice" in ratio
    assert "sqrt(8)" in array_diagnoses(want * math.sqrt(8), want, 1e-9)[0]
    assert "axes 1 and 2 swapped" in array_diagnoses(want.swapaxes(1, 2), want, 1e-9)[0]
    partly = want.copy()
    partly[0, 1] = 0
    assert "missing accumulation" in array_diagnoses(partly, want, 1e-9)[0]
    assert "all zeros" in array_diagnoses(np.zeros_like(want), want, 1e-9)[0]
    shared = np.zeros(want.shape, bool)
    shared[:, 0] = True
    noisy = want + shared * 0.1
    (only,) = array_diagnoses(noisy, want, 1e-9, {"rows shared": (shared, "the sum over a run is missing")})
    assert only == "wrong only on rows shared, right elsewhere: probably the sum over a run is missing"
    assert "no pattern" in array_diagnoses(want + rng.normal(size=want.shape), want, 1e-9)[0]
    assert array_diagnoses(want + 1e-12, want, 1e-9) == []


def test_a_crash_names_the_students_line_and_a_wrong_result_says_so(student, ref, monkeypatch):
    def crashes(dy, cache):
        return dy[99]  # IndexError inside the student's function

    crashes.__code__ = compile("def crashes(dy, cache):\n    return dy[99]\n", str(student.file / "ops.py"),
                               "exec").co_consts[0]
    monkeypatch.setattr(student.get("ops"), "gelu_backward", crashes)
    report = check_exercise(catalog.get("ops.gelu_backward"), student, ref)
    stage = report["stages"][0]
    assert report["status"] == "fail" and stage["status"] == "error"
    assert stage["message"].startswith("IndexError: ") and f"(at {student.file / 'ops.py'}:2)" in stage["message"]

    monkeypatch.setattr(student.get("ops"), "layer_norm_backward", lambda p, dy, cache: dy)  # no grads dict
    stage = check_exercise(catalog.get("ops.layer_norm_backward"), student, ref)["stages"][0]
    assert stage["status"] == "error" and "does it return what the docstring says?" in stage["message"]

    monkeypatch.setattr(student.get("tokenizer.unigram").Unigram, "segment", lambda self, text: np.zeros(3))
    stage = check_exercise(catalog.get("tokenizer.unigram.Unigram.segment"), student, ref)["stages"][0]
    assert stage["status"] == "fail" and stage["outputs"][0]["diagnosis"][0].startswith("got array(")
