"""The pieces a stage is made of: the two packages (reference and student) and the kinds of case.

A *stage* is one small, fully determined problem (tiny float64 arrays, fixed seeds). It runs
the student's function and the reference's on the same inputs and returns, per output, the two
answers; for a gradient also central differences of the reference forward at a sample of
entries. ``check.py`` measures and judges; nothing here prints.
"""
import importlib
import importlib.util
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REFERENCE_NAME = __name__.split(".")[0]  # the installed package: the ground truth
STUDENT_MARK = "exercise "  # every removed body raises NotImplementedError("exercise ID: ...")
_loads = itertools.count()


class Package:
    """One copy of minideberta; ``get("optim.AdamW.step")`` finds a function, class or method in it."""

    def __init__(self, name):
        self.name = name
        self.root = importlib.import_module(name)

    def get(self, dotted):
        obj = self.root
        for part in dotted.split("."):
            inner = f"{obj.__name__}.{part}" if hasattr(obj, "__path__") else None  # a subpackage or module
            if inner is not None and importlib.util.find_spec(inner) is not None:
                obj = importlib.import_module(inner)
            else:
                obj = getattr(obj, part)
        return obj

    @property
    def file(self):
        return Path(self.root.__file__).parent


def reference():
    return Package(REFERENCE_NAME)


def load_student(folder):
    """Import ``folder/minideberta`` under a name of its own, so the installed package is untouched.

    Its relative imports resolve inside the copy; the reference stays ``minideberta``. No
    bytecode is written: a student may edit and re-check within the same second.
    """
    init = Path(folder) / "minideberta" / "__init__.py"
    if not init.is_file():
        raise FileNotFoundError(f"{folder} holds no minideberta/ package; make one with "
                                f"`python -m minideberta exercises make {folder}`")
    name = f"minideberta_student_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.dont_write_bytecode = writes
    return Package(name)


def copies(arrays):
    return {k: np.array(v, copy=True) for k, v in arrays.items()}


@dataclass
class Output:
    """One answer of a stage: the student's, the reference's, and (gradients) central differences."""

    name: str
    got: object
    want: object
    numeric: tuple = None  # (flat indices, values) of central differences of the reference forward
    regions: dict = field(default_factory=dict)  # name -> (bool mask like want, what an error only there means)
    labels: object = None  # integer outputs: what each entry stands for, to name a wrong one
    terms: list = field(default_factory=list)  # [terms.Term]: the formula's terms, computed apart
    variants: list = field(default_factory=list)  # [terms.Variant]: whole answers of named mistakes


@dataclass
class Stage:
    """``run(student, reference) -> [Output]``; ``adds`` says what this stage switches on."""

    name: str
    adds: str
    run: Callable


def value_stage(name, adds, call, regions=None, labels=None):
    """A forward exercise: ``call(package) -> {output name: value}``, the student's against the reference's."""

    def run(student, ref):
        want = call(ref)
        got = call(student)
        return [Output(k, got.get(k), v, regions=(regions or {}).get(k, {}),
                       labels=None if labels is None else labels.get(k)) for k, v in want.items()]

    return Stage(name, adds, run)


def gradient_stage(name, adds, forward, backward, arrays, seed=0, max_entries=12,
                   regions=None, h=1e-5, terms=None):
    """A backward exercise on one tiny float64 case.

    ``forward(package, arrays) -> (y, cache)`` runs a package's forward on the arrays (a dict
    name -> array); ``backward(package, dy, cache, arrays) -> {name: gradient}`` the backward.
    The student's backward gets the cache of the student's own forward, or of the reference's
    where that forward needs a removed function (an exercise of its own). Central differences of the reference
    forward at ``max_entries`` random entries of every array are the independent ground truth.
    The upstream gradient dy has a random stream of its own (not the one that drew the arrays).
    ``terms(ref, dy, cache, arrays, want) -> {name: ([Term], [Variant])}``: the formula's terms
    for the term-level diagnosis (terms.py), from the reference's cache; they must add up to ``want``.
    """

    def run(student, ref):
        from ...gradcheck import numerical_gradient  # the reference's, never the student's
        from .terms import check_terms

        rng = np.random.default_rng(seed)
        y, cache = forward(ref, copies(arrays))
        dy = np.random.default_rng([seed, 1]).normal(size=np.shape(y))
        want = backward(ref, dy.copy(), cache, copies(arrays))
        table = terms(ref, dy.copy(), cache, copies(arrays), want) if terms is not None else {}
        for key, (key_terms, _) in table.items():
            check_terms(f"d{key} in stage {name!r}", want[key], key_terms)
        try:
            _, cache = forward(student, copies(arrays))
        except NotImplementedError as error:
            if not str(error).startswith(STUDENT_MARK):
                raise
            _, cache = forward(ref, copies(arrays))  # it needs another exercise: the reference's cache, fresh
        got = backward(student, dy.copy(), cache, copies(arrays))
        master = copies(arrays)

        def f():
            return float(np.sum(forward(ref, copies(master))[0] * dy))

        outputs = []
        for key, w in want.items():
            x = master[key]
            picked = np.arange(x.size) if x.size <= max_entries else rng.choice(x.size, max_entries, replace=False)
            numeric = numerical_gradient(f, x, h, picked).reshape(-1)[picked]
            key_terms, key_variants = table.get(key, ([], []))
            outputs.append(Output(f"d{key}", got.get(key) if isinstance(got, dict) else None, w, (picked, numeric),
                                  (regions or {}).get(key, {}), terms=key_terms, variants=key_variants))
        return outputs

    return Stage(name, adds, run)


def random_params(shapes, rng, std=0.4):
    """Arrays of std ``std``; LayerNorm weights around 1 (as the gradient-check tests draw them)."""
    return {k: (1.0 if k.endswith("LayerNorm.weight") else 0.0) + std * rng.normal(size=s) for k, s in shapes.items()}


def padding_mask(batch, n, lengths):
    """(B, N) 1/0: sequence b has lengths[b] real tokens, then padding."""
    return (np.arange(n)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


def dx_of(result):
    """The input gradient of a backward that returns ``dx`` or ``(dx, grads)`` (both styles are in use)."""
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        return result[0]
    return result
