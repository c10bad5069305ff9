"""Classroom exercises: a student copy with functions removed, and a checker that says what is wrong.

    python -m minideberta exercises list                  every exercise: id, file, statement, difficulty
    python -m minideberta exercises make DIR [--only ID]  a complete copy of the package with bodies removed
    python -m minideberta exercises check [ID] --path DIR run the student's code in stages, with diagnoses
    python -m minideberta exercises check --manifest DIR.manifest.json --path s1 s2 ... --csv F --feedback D
                                                          grade a class (grade.py)

An exercise id is the dotted name of the function it removes, relative to the package
(``ops.layer_norm_backward``, ``optim.AdamW.step``); a partial exercise adds the name of the
marked region (``ngie.conv1d_backward.col2im``). ``catalog.py`` lists them, ``make.py`` writes
the copy (found with ``ast``, the source cut by line numbers so everything else stays as it is),
``check.py`` runs the stages that ``stages_*.py`` define, ``terms.py`` (with the tables of the
stages and ``tables_model.py``) names the term of a formula a wrong answer got wrong and
``diagnose.py`` reads the shape of the other errors. ``isolate.py`` runs one student's exercise
in a process of its own, ``grade.py`` grades a class against the teacher's manifest (``manifest.py``) and
``notebook.py`` checks a function written in a notebook cell.
The ground truth is the installed package: central differences of its forward, its backward,
its forward functions. Nothing is hidden from the student but the removed bodies (and the
docstring paragraphs after the first, which may state the answer).
"""
