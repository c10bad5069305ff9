"""Checking an answer written in a notebook cell, without a student copy on disk.

    from minideberta.exercises import check
    check("ops.layer_norm_backward", my_layer_norm_backward)            # stages, diagnoses, printed
    check("ops.layer_norm_backward", my_layer_norm_backward, hints=1)   # and the first hint

The same stages, judgements and diagnoses as ``exercises check``: the "student" is the installed
package with the exercise's function replaced by the one given (a method: a subclass with it
overridden), so everything around it is the reference. It runs in this process: no time limit,
and a crash in the function is the notebook's.
"""
import types
from pathlib import Path

from . import catalog
from .cases import reference
from .check import check_exercise, format_report


class WithFunction:
    """The reference ``Package`` with one function (dotted path) replaced by ``function``."""

    def __init__(self, ref, target, function):
        self.ref, self.target, self.function = ref, target, function

    def get(self, dotted):
        if dotted == self.target:
            return self.function
        obj = self.ref.get(dotted)
        if self.target.startswith(dotted + "."):
            return _replaced(obj, self.target[len(dotted) + 1:], self.function)
        return obj

    @property
    def file(self):
        code = getattr(self.function, "__code__", None)
        return Path(code.co_filename) if code is not None else self.ref.file


def _replaced(owner, rest, function):
    """``owner`` (a module or a class) with the attribute path ``rest`` replaced by ``function``."""
    name, _, deeper = rest.partition(".")
    value = function if not deeper else _replaced(getattr(owner, name), deeper, function)
    if isinstance(owner, type):
        return type(owner.__name__, (owner,), {name: value, "__module__": owner.__module__})
    proxy = types.ModuleType(owner.__name__)
    proxy.__dict__.update(vars(owner))
    setattr(proxy, name, value)
    return proxy


class CheckResult(dict):
    """The report (a dict, as ``check --json`` prints per exercise); ``.passed``; a one-line repr."""

    @property
    def passed(self):
        return self["status"] == "pass"

    def __repr__(self):
        return f"<check {self['id']}: {self['status'].upper()}, {self['stages_passed']} of {len(self['stages'])} stages>"


def check(exercise_id, function, hints=0, show=True):
    """Check ``function`` as the answer to ``exercise_id``; print the report (and ``hints`` hints)."""
    exercise = catalog.get(exercise_id)
    if exercise.part:
        raise ValueError(f"{exercise_id} is a part of {exercise.function}: write the whole function and check "
                         f"it as {exercise.function}, or check the part in a student copy (exercises make)")
    if not callable(function):
        raise TypeError(f"check({exercise_id!r}, function): expected the function you wrote, got {function!r}")
    ref = reference()
    result = CheckResult(check_exercise(exercise, WithFunction(ref, exercise.target, function), ref))
    result["hints"] = list(exercise.hints[:hints])
    if show:
        print(format_report(result))
        for i, hint in enumerate(result["hints"], 1):
            print(f"  hint {i}/{len(exercise.hints)}: {hint}")
    return result
