"""``python -m minideberta``: the command line of ``apps/cli/main.py``."""
import sys

from .apps.cli.main import main

sys.exit(main())
