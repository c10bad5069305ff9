"""The command line: ``main.py`` is the one dispatcher of ``python -m minideberta COMMAND`` (and of the
``minideberta`` console script); ``errors.py`` is its contract (one ``error:`` line per failure)."""
