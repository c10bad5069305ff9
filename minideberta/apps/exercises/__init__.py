"""Classroom exercises: a student copy with functions removed, and a checker that says what is wrong.

    python -m minideberta exercises list                  every exercise: id, file, statement, difficulty
    python -m minideberta exercises make DIR [--only ID]  a complete copy of the package with bodies removed
    python -m minideberta exercises check [ID] --path DIR run the student's code in stages, with diagnoses

An exercise id is the dotted name of the function it removes, relative to the package
(``ops.layer_norm_backward``, ``optim.AdamW.step``); a partial exercise adds the name of the
marked region (``ngie.conv1d_backward.col2im``). ``catalog.py`` lists them, ``make.py`` writes
the copy (found with ``ast``, the source cut by line numbers so everything else stays as it is),
``check.py`` runs the stages that ``stages_*.py`` define and ``diagnose.py`` reads the errors.
The ground truth is the installed package: central differences of its forward, its backward,
its forward functions. Nothing is hidden from the student but the removed bodies.
"""
