"""Term-level diagnosis: which term of a backward's formula a wrong answer got wrong.

A backward's answer is a sum of terms (LayerNorm: ``dx = rstd * (g - mean(g) - xhat * mean(g xhat))``
has three). A stage that knows its formula returns, next to the right answer, each term
computed apart by the reference (``Term``), and whole wrong answers that a named mistake gives
(``Variant``: a reduction over the wrong axis, a factor left out, an approximation). When the
student's answer is wrong, the one-term mistakes are tried against the error ``got - want``:

- the error is ``-term``: the term is missing;
- ``-2 term``: the term has its sign flipped;
- ``(f - 1) term``: the term is scaled by f, named when f is one of the term's known factors
  (D for a sum where a mean is wanted, 2, the attention's scale, ...) and given as a number if not;
- ``variant - want``: the variant's mistake.

A match must hold at every entry to round-off (``MATCH``), so a diagnosis is an identification,
not a guess about the closest candidate. The table's terms must add up to the right answer:
a stage checks that on the reference (``check_terms``), so a table cannot drift from the code.
"""
from dataclasses import dataclass, field

import numpy as np

MATCH = 1e-7  # relative to the answer's scale: float64 round-off of a differently ordered formula, with margin
LINE = "in the formula {line}"


@dataclass
class Term:
    name: str  # how the student would name it: "x̂ · mean(g x̂)"
    line: str  # the formula line it belongs to
    value: object  # its contribution to the answer, signed as in the formula
    factors: dict = field(default_factory=dict)  # f -> words: what the term scaled by f probably means


@dataclass
class Variant:
    mistake: str  # "the means are taken over the rows (axis 0), not over the D features"
    value: object  # the whole answer that mistake gives


COMMON_FACTORS = {2.0: "counted twice", 0.5: "halved (a factor 1/2 too many)"}


def _close(a, b, scale):
    return float(np.max(np.abs(a - b), initial=0.0)) <= MATCH * scale


def _factor_words(term, f):
    for known, words in {**COMMON_FACTORS, **term.factors}.items():
        if abs(f - known) <= 1e-6 * max(1.0, abs(known)):
            return words
    return None


def term_diagnoses(got, want, terms=(), variants=(), scale=None):
    """Diagnoses naming one term's mistake (or a variant's) that explains ``got`` exactly; [] if none."""
    if not terms and not variants:
        return []
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want), initial=0.0)) if scale is None else scale
    scale = max(scale, np.finfo(np.float64).tiny)
    if got.shape != want.shape or not np.all(np.isfinite(got)) or _close(got, want, scale):
        return []
    for variant in variants:
        value = np.broadcast_to(np.asarray(variant.value, dtype=np.float64), want.shape)
        if not _close(value, want, scale) and _close(got, value, scale):
            return [f"matches the answer with this mistake: {variant.mistake}"]
    error = got - want
    found = []
    for term in terms if len(terms) > 1 else ():  # one term is the whole answer: diagnose.py reads that

        t = np.broadcast_to(np.asarray(term.value, dtype=np.float64), want.shape)
        size = float(np.sum(t * t))
        if size <= (MATCH * scale) ** 2:
            continue
        c = float(np.sum(error * t)) / size
        if not _close(error, c * t, scale):
            continue
        where = LINE.format(line=term.line)
        if abs(c + 1) < 1e-6:
            found.append(f"the {term.name} term is missing ({where})")
        elif abs(c + 2) < 1e-6:
            found.append(f"the {term.name} term has the wrong sign ({where})")
        else:
            f = 1 + c
            words = _factor_words(term, f)
            found.append(f"the {term.name} term is {f:.6g} times what it should be"
                         + (f": {words}" if words else "") + f" ({where})")
    return found


def nothing_explains(terms, variants):
    names = ", ".join(t.name for t in terms)
    return (f"no one-term mistake explains it: each term ({names}) was tried missing, with its sign flipped "
            f"and scaled, and {len(variants)} known mistake(s) of the formula; more than one thing is wrong, "
            "or something else")


def check_terms(name, want, terms):
    """The terms must add up to the reference's answer, or the table is out of date with the code."""
    if not terms:
        return
    total = sum(np.broadcast_to(np.asarray(t.value, dtype=np.float64), np.shape(want)) for t in terms)
    scale = max(float(np.max(np.abs(want), initial=0.0)), np.finfo(np.float64).tiny)
    if not _close(total, want, scale / 100):  # 1e-9 relative
        raise AssertionError(f"the term table of {name} does not add up to the reference's answer "
                             f"(off by {float(np.max(np.abs(total - want))) / scale:.1e}): update it with the code")
