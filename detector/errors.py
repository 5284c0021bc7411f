"""Exceptions that map to exit codes.

``UserError`` is anything the user can fix (exit 2): the CLI prints its message as
one line, without a traceback. Anything else escaping ``main`` is a bug (exit 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, flag, config, output path or model."""

    exit_code = 2


class SourceError(UserError):
    """The source cannot be opened or read."""


class ModelError(UserError):
    """The model cannot be found, loaded, or is not a detection model."""


class StreamLost(UserError):
    """A live source went away and could not be reconnected."""


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so ``finally`` blocks close outputs (exit 143)."""

    exit_code = 143
