"""Exceptions that map to exit codes.

``UserError`` is anything the user can fix (exit 2): the CLI prints its message as one line,
without a traceback. ``Interrupted`` ends a run after Ctrl-C (130) or SIGTERM (143), outputs
closed. Anything else escaping ``main`` is a bug (exit 1).

``StorageError`` is the one way an output says that a write failed for want of storage (a full
disk, a quota, an I/O error): the output has closed what it had (it stays readable up to its last
whole fragment or line), and its lane catches the error per sink, so detection and the other outputs
go on (``pipeline.lane``). A run that ends with such an output incomplete exits 4
(``OutputsIncomplete``).
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path

STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


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


class StorageError(UserError):
    """A write failed for want of storage (``STORAGE_ERRNOS``). ``path``: the file; ``reason``: the
    system's words (``No space left on device``); ``key``: which output it is, for the one that later
    says it resumed (a recording's next segment); ``others``: more outputs that failed in the same
    call (one encoded packet written to several files on one disk); ``resumed``: the output already
    writes again (it resumed before the lane heard of the failure): counted, but no longer failing."""

    exit_code = 4

    def __init__(self, message: str, *, path: Path | None, reason: str, key: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.key = key or str(path)
        self.others: list[StorageError] = []
        self.resumed = False

    def all(self) -> list[StorageError]:
        return [self, *self.others]


def is_storage_error(exc: BaseException) -> bool:
    """An ``OSError`` that says the storage is full or failing (not a permission or a bad name)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def storage_error(
    exc: OSError, path: Path | None, message: str, *, key: str | None = None
) -> StorageError | None:
    """``exc`` as a ``StorageError`` (``message`` says what is kept), or None when it is another kind of
    failure (which stays fatal for its output)."""
    if not is_storage_error(exc):
        return None
    return StorageError(message, path=path, reason=exc.strerror or str(exc), key=key)


def raise_together(errors: list[StorageError]) -> None:
    """Raise the first of ``errors`` carrying the others (``StorageError.others``); nothing if empty."""
    if errors:
        first = errors[0]
        first.others.extend(e for err in errors[1:] for e in err.all())
        raise first


class OutputsIncomplete(UserError):
    """The run ended, but some output is incomplete: a write failed for want of storage (exit 4)."""

    exit_code = 4
