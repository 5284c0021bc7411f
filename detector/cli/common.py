"""What every subcommand shares: an argparse that raises one-line errors, the general flags, logging."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, NoReturn

from detector.errors import UserError
from detector.text import one_line


class ArgParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def whole_number(text: str) -> int:
    """For flags that are not settings (``--frames``, ``--workers``); ``Settings`` validates the rest."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_general_flags(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    group = parser.add_argument_group("general")
    if config:
        group.add_argument(
            "-c", "--config", metavar="FILE.yaml", help="YAML settings (see configs/default.yaml)"
        )
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    group.add_argument("--debug", action="store_true", help="debug logging and tracebacks")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests swap it; a stale stream would be closed)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(debug: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("detector").setLevel(level)


def error_line(exc: BaseException) -> str:
    """The one stderr line for a ``UserError``; newlines (e.g. inside a file name) are escaped."""
    return f"detector: error: {one_line(str(exc))}"
