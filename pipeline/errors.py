"""How both command-line tools (``python -m pipeline``, ``python -m annotation``) answer a
wrong argument or bad input: one line on stderr (``error: ...``) and a non-zero exit, because
the line names the file, record or key, and a traceback would bury it. ``--debug`` or
PIPELINE_DEBUG=1 shows the traceback instead. Exceptions a tool does not list as user errors
are bugs: they always keep their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

DEBUG_VAR = "PIPELINE_DEBUG"


class Parser(argparse.ArgumentParser):
    """argparse, but a wrong argument gets one line, not the usage block before it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the arguments)\n")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an error (or set {DEBUG_VAR}=1)")


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (unbounded above if None), so
    ``--seed -1`` or ``--sample -3`` is a wrong argument, not a silent slice or a late error."""
    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer {bound}")
        return value

    return parse


def one_line(message: str) -> str:
    """Library messages (YAML, jsonschema) may span lines; the answer is one."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


def answer(command: Callable[[], int], debug: bool,
           explain: Callable[[Exception], str | None]) -> int:
    """Run ``command``; an exception ``explain`` turns into a message is answered in one line
    (exit 1) unless debugging; any other exception propagates with its traceback."""
    try:
        return command()
    except Exception as exc:
        message = explain(exc)
        if message is None or debug or os.environ.get(DEBUG_VAR) == "1":
            raise
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 1
