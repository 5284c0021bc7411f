"""What every subcommand shares: an argparse that raises one-line errors, the general flags, logging."""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from detector.errors import UserError
from detector.redact import Redacting, redact
from detector.text import one_line


class ArgParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line; flags are
    never abbreviated (``--out`` is not ``--output``) and an unknown one gets a "did you mean". A
    subcommand's flags and positionals go in any order (``settings.flags.free_order``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._intermixing = False

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._subparsers is not None or self._intermixing:  # the top level, or intermixed's own calls
            return super().parse_known_args(args, namespace)
        from detector.settings.flags import free_order

        self._intermixing = True
        try:
            parsed, extras = self.parse_known_intermixed_args(free_order(self, list(args or [])), namespace)
        finally:
            self._intermixing = False
        unknown = [a for a in extras if a.startswith("-") and a != "-"]
        if unknown:
            self.error(self._unknown_flag(unknown[0]))
        return parsed, extras

    def _unknown_flag(self, word: str) -> str:
        """``unknown flag --ouptut; did you mean --output?``; ``--out`` is told flags are never cut short."""
        name = word.split("=", 1)[0]
        flags = [f for f in self._option_string_actions if f.startswith("--")]
        longer = sorted(f for f in flags if f.startswith(name) and len(name) > 2)
        if longer:
            return f"unknown flag {name} (flags are not abbreviated); did you mean {' or '.join(longer[:3])}?"
        close = difflib.get_close_matches(name.lstrip("-"), [f[2:] for f in flags], n=1, cutoff=0.6)
        return f"unknown flag {name}" + (f"; did you mean --{close[0]}?" if close else "")


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
    handler.setFormatter(Redacting("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("detector").setLevel(level)


def error_line(exc: BaseException) -> str:
    """The one stderr line for a ``UserError``; newlines (e.g. inside a file name) are escaped, secrets
    masked."""
    return f"detector: error: {one_line(redact(str(exc)))}"
