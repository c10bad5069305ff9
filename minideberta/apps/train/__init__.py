"""Fine-tuning, and the machinery pre-training shares: ``loop.py`` (the training loop, evaluation, the
example order), ``checkpointing.py`` (model, optimizer and trainer state, exact resume), ``history.py``
(the record of a run), ``cli.py`` (the ``train`` command)."""
