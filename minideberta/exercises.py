"""Checking an exercise from a notebook: ``from minideberta.exercises import check``.

    check("ops.layer_norm_backward", my_layer_norm_backward)

prints the checker's stages, errors and diagnoses for the function you wrote (see
``apps/exercises/notebook.py``); ``python -m minideberta exercises list`` names the exercises.
"""
from .apps.exercises.catalog import EXERCISES
from .apps.exercises.notebook import check

__all__ = ["EXERCISES", "check"]
