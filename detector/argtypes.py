"""Argument types shared by the ``detector`` subcommands (one-line errors, no usage dump)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum`` (ranges of run settings are checked by the config instead)."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse
