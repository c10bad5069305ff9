"""minideberta held against transformers: ``verify.py`` (the numbers, tensor by tensor) and the timings of
``bench``: ``model.py`` (forward and backward on the CPU; the shared ``measure``), ``gpu.py`` (the CuPy path),
``pretrain.py`` (one pre-training step against torch), ``tokenizer.py`` (tokenizer throughput),
``cli.py`` (the ``bench`` command's options)."""
