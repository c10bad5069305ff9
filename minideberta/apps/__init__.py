"""What runs on top of the model, one subpackage per job (each ``__init__.py`` lists its files).

- ``cli/``: the command line. ``main.py`` is the one dispatcher of ``python -m minideberta COMMAND`` and of
  the ``minideberta`` console script: it builds the parser of the commands it defines itself and hands
  the commands that parse their own options to their subpackage; ``errors.py`` is the contract every
  command keeps (one ``error:`` line, exit 2 for a user's mistake).
- ``inference/``: running a checkpoint on text. ``pipelines.py`` (fill-mask, rtd, classify, tokens, qa,
  choose), ``show.py`` (their tables), ``commands.py`` (the six task commands), ``demo.py``.
- ``bench/``: minideberta held against transformers. ``verify.py`` (the numbers, tensor by tensor) and
  the timings of ``bench``: ``model.py``, ``gpu.py``, ``pretrain.py``, ``tokenizer.py``; ``cli.py``.
- ``train/``: fine-tuning, and the machinery pre-training shares with it. ``loop.py``, ``checkpointing.py``
  (exact resume), ``history.py``, ``cli.py`` (the ``train`` command).
- ``pretrain/``: pre-training a small DeBERTaV3. ``corpus.py`` / ``corpus_sources.py``, ``rtd.py`` (one
  replaced-token-detection step), ``loop.py``, ``evaluate.py`` / ``everyday.py``, ``cli.py``
  (``pretrain``, ``pretrain-eval``, ``pretrain-export``).
- ``wordnet_tasks/``: the labelled tasks of the ``tasks`` command, built from WordNet (named so that it does
  not read like ``minideberta.tasks``, the model classes). ``wordnet.py``, ``build.py``, ``finetune.py``,
  ``compare.py``, ``export.py``, ``readme.py``, ``cli.py``.
- ``course/``: the read-along notebooks. ``__init__.py`` is what every notebook imports (the model it runs
  on, word-piece helpers); ``render.py`` / ``html.py`` execute the notebooks and write them as HTML.
- ``exercises/``: the classroom exercises (``catalog.py``, ``make.py``, ``check.py``, ``cli.py``...).

Why this split: a folder per command family, so that a reader looking for what ``pretrain`` does opens
``pretrain/`` and finds its loop, its step, its evaluation and its options together, and the file names
inside drop the prefixes that stood in for folders (``pretrain_cli.py`` is ``pretrain/cli.py``). Code two
jobs share lives with the job that owns it and is imported from there: pre-training uses
``train/checkpointing.py`` and ``train/loop.example_order``; the labelled tasks use
``pretrain/corpus.py`` (the held-out words) and ``train/cli.py`` (the classifier loader).
Each subpackage's ``cli.py`` (or ``commands.py``) defines its commands; ``cli/main.py`` only lists them.
"""
