"""Exceptions that map to exit codes.

``UserError`` is anything the user can fix (exit 2): the CLI prints its message as one line,
without a traceback. ``Interrupted`` ends a run after Ctrl-C (130) or SIGTERM (143), outputs
closed. Anything else escaping ``main`` is a bug (exit 1).
"""

from __future__ import annotations

import signal


class UserError(Exception):
    """A problem the user can fix: bad input, flag, config, output path or model."""

    exit_code = 2


class SourceError(UserError):
    """The source cannot be opened or read."""


class ModelError(UserError):
    """The model cannot be found, loaded, or is not a detection model."""


class StreamLost(UserError):
    """A live source went away and could not be reconnected."""


class Interrupted(BaseException):
    """The run was stopped by a signal; raised after outputs were closed (see ``detector.signals``)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def word(self) -> str:
        return "terminated" if self.signum == signal.SIGTERM else "interrupted"


class SourcesFailed(UserError):
    """Some sources of a multi-source run failed while the others ran to the end (exit 3)."""

    exit_code = 3
