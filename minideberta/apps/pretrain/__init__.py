"""Pre-training a small DeBERTaV3: ``corpus.py`` / ``corpus_sources.py`` (the corpus, its vocabulary, the
sources and their licences), ``rtd.py`` (one step: generator, discriminator, replaced-token detection and
the shared embeddings), ``loop.py`` (the loop, resumable), ``evaluate.py`` / ``everyday.py`` (what the pair
can do on held-out and everyday text), ``cli.py`` (``pretrain``, ``pretrain-eval``, ``pretrain-export``)."""
