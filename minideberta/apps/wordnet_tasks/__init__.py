"""Labelled tasks built from WordNet (``tasks`` command; not the model classes of ``minideberta.tasks``):
``wordnet.py`` (reading WordNet), ``build.py`` (the five tasks), ``finetune.py`` (fine-tuning on them),
``compare.py`` (baselines against fine-tuning), ``export.py`` (heads as model folders), ``readme.py``
(the tasks' README), ``cli.py`` (``tasks build | compare | export``)."""
