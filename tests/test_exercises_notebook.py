"""``from minideberta.exercises import check``: a function written in a notebook cell, checked in place."""
import numpy as np
import pytest

from minideberta import ops, optim
from minideberta.exercises import check


def my_layer_norm_backward(p, dy, cache):  # a student's answer with one sign wrong
    g, xhat = dy * p["weight"], cache.xhat
    dx = cache.rstd * (g - g.mean(-1, keepdims=True) + xhat * (g * xhat).mean(-1, keepdims=True))
    axes = tuple(range(dy.ndim - 1))
    return dx, {"weight": (dy * xhat).sum(axis=axes), "bias": dy.sum(axis=axes)}


def test_a_notebook_answer_gets_the_stages_the_diagnosis_and_hints(capsys):
    result = check("ops.layer_norm_backward", my_layer_norm_backward, hints=2)
    out = capsys.readouterr().out
    assert not result.passed and result["status"] == "fail"
    assert "stage 1/4: one row of 6, weight 1, bias 0  -> FAIL" in out
    assert "the -xhat * mean(g * xhat) term has the wrong sign" in out
    assert "hint 2/3: " in out and "hint 3/3" not in out
    assert repr(result) == "<check ops.layer_norm_backward: FAIL, 0 of 4 stages>"


def test_right_answers_pass_functions_and_methods(capsys):
    assert check("ops.gelu_backward", ops.gelu_backward, show=False).passed
    assert check("optim.AdamW.step", optim.AdamW.step, show=False).passed  # a method: a subclass overrides it

    def stuck_step(self, grads):
        self.t += 1  # forgets the update
    assert not check("optim.AdamW.step", stuck_step, show=False).passed
    assert capsys.readouterr().out == ""


def test_a_crash_in_the_cell_names_its_line():
    def crashes(dy, cache):
        return dy[99]
    report = check("ops.gelu_backward", crashes, show=False)
    message = report["stages"][0]["message"]
    assert message.startswith("IndexError") and __file__ in message


def test_what_a_notebook_cannot_check_is_refused():
    with pytest.raises(ValueError, match="is a part of attention.backward"):
        check("attention.backward.p2c", lambda *a: None)
    with pytest.raises(TypeError, match="expected the function you wrote"):
        check("ops.gelu_backward", np.zeros(3))
