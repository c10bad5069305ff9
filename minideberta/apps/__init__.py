"""What runs on top of the model: the command line and the jobs it starts.

``cli.py`` (``python -m minideberta``), ``pipelines.py`` (fill-mask, rtd, classify, tokens, qa, choose),
``train.py`` / ``train_cli.py`` (the fine-tuning loop and its command), ``verify.py`` (layer-by-layer
comparison with transformers), ``bench.py`` / ``bench_tokenizer.py``, ``demo.py``.
"""
