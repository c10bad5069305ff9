"""``python -m minideberta``: the command line of ``cli.py``."""
import sys

from .apps.cli import main

sys.exit(main())
