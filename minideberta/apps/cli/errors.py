"""How every command reports a failure: one ``error:`` line on stderr, exit status 2, no traceback.

The contract of ``python -m minideberta COMMAND``:

- exit 0: done (``verify``: the numbers agree);
- exit 2: a mistake the user can fix: a bad option, a missing or damaged file, a refused pickle,
  a wrong config, bad text; stderr gets one line ``error: <what was wrong and what to do>``;
- exit 1: ``verify`` found a difference, or an internal error (a bug: please report it), also as
  one ``error:`` line; exit 130: interrupted with Ctrl-C.

A traceback is printed only on request: ``--debug`` anywhere before a ``--`` on the command line,
or the environment variable ``MINIDEBERTA_DEBUG=1``. The library raises ``ValueError`` or
``FileNotFoundError`` for what it cannot read (DESIGN.md, "Reading files"), and ``pickle.UnpicklingError``
for a ``.bin`` whose pickle it refuses; :func:`reported` is the one place that turns them into the line.
"""
import argparse
import os
import pickle
import sys
import traceback
import warnings

from ...checks import check_integer

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "MINIDEBERTA_DEBUG"
USER_STATUS, INTERNAL_STATUS, INTERRUPTED_STATUS = 2, 1, 130  # 130: the shell's status for Ctrl-C
MAX_PARTS = 12  # a long error (every missing parameter of a checkpoint) is cut here on one line; --debug has all


class UserError(Exception):
    """A mistake in the command line the user can fix; printed as one ``error:`` line."""


# What a user can cause: wrong input, unreadable or refused files (OSError: missing, unreadable, a folder).
USER_ERRORS = (UserError, ValueError, OSError, pickle.UnpicklingError)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one ``error:`` line (naming ``--help``) instead of usage + message."""

    def error(self, message):
        self.exit(USER_STATUS, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def split_debug(argv):
    """``(debug, argv without --debug)``: ``--debug`` counts anywhere before a ``--``; so does MINIDEBERTA_DEBUG=1."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = DEBUG_FLAG in argv[:end] or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    return debug, [a for a in argv[:end] if a != DEBUG_FLAG] + argv[end:]


def one_line(error):
    """The message of ``error`` on one line: its lines joined by "; ", cut after MAX_PARTS of them."""
    parts = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    if len(parts) > MAX_PARTS:
        parts = parts[:MAX_PARTS] + [f"... and {len(parts) - MAX_PARTS} more lines (--debug shows them all)"]
    return "; ".join(parts)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {one_line(message)}", file=sys.stderr if file is None else file)


def reported(command, debug):
    """Run ``command()`` and return its exit status; a failure becomes one ``error:`` line on stderr,
    and a warning one ``warning:`` line (with --debug: Python's usual form, file and line)."""
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _show_warning
            return command()
    except USER_ERRORS as error:
        if debug:
            traceback.print_exc()
        if isinstance(error, pickle.UnpicklingError):
            message = f"a checkpoint's pickle was refused, nothing in it was run: {one_line(error)}"
        else:
            message = one_line(error)
        print(f"error: {message}", file=sys.stderr)
        return USER_STATUS
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED_STATUS
    except Exception as error:  # a bug, not the user's mistake
        if debug:
            traceback.print_exc()
        hint = "" if debug else "; run again with --debug for the traceback"
        print(f"error: internal error, please report it: {type(error).__name__}: {one_line(error)}{hint}",
              file=sys.stderr)
        return INTERNAL_STATUS


def positive(text):
    """argparse type of a count (``--top-k``, ``--repeats``...): an integer >= 1, else one ``error:`` line."""
    value = int(text)  # not an integer: argparse says "invalid positive value: 'x'"
    try:
        return check_integer(value, None, minimum=1)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
