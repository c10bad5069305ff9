"""What runs on top of the model: the command line and the jobs it starts.

- the command line: ``cli.py`` (``python -m minideberta``), ``forwarded.py`` (the commands that parse
  their own options), ``errors.py`` (one ``error:`` line per failure), ``show.py`` (how results print);
- the task commands: ``pipelines.py`` (fill-mask, rtd, classify, tokens, qa, choose);
- fine-tuning: ``train.py`` / ``train_cli.py`` (the loop and its command), ``checkpointing.py`` (model,
  optimizer and trainer state, exact resume), ``history.py`` (the record of a run);
- pre-training: ``corpus.py`` (corpus and vocabulary), ``rtd_pretraining.py`` (the generator, the
  discriminator and their shared embeddings), ``pretrain.py`` / ``pretrain_cli.py`` (the loop and its
  command), ``pretrain_eval.py`` (what the pair can do on held-out text);
- checks and timings: ``verify.py`` (layer-by-layer comparison with transformers), ``demo.py``,
  ``bench.py`` / ``bench_gpu.py`` / ``bench_tokenizer.py``;
- teaching: ``course.py`` / ``course_render.py`` (the read-along notebooks), ``exercises/``.
"""
