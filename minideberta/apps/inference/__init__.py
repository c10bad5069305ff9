"""Running a checkpoint on text: ``pipelines.py`` (fill-mask, rtd, classify, tokens, qa, choose: text in,
a JSON-ready dict out), ``show.py`` (how those dicts print as tables), ``commands.py`` (the six task commands
and ``verify``'s options), ``demo.py`` (the library in one offline run)."""
