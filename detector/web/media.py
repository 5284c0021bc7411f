"""Opening a file the event store lists, for ``/media``, without trusting the store.

A store can be copied, handed over or written by anyone who can write its folder, so a row's path
is not taken at its word. A row is served only when:

- its path is relative to the store's folder (as a run writes a file inside it) with no ``..``, or
  absolute and inside one of the media folders the serving process was given itself (a run's
  ``--clips`` and ``--record`` folders; never folders a store names);
- every folder on the way below that root, and the file itself, is no symlink: each step is opened
  with ``O_NOFOLLOW`` relative to the one before (``openat``), so nothing can be swapped in between
  a check and the open;
- it is a regular file (``fstat`` of the open descriptor; opened with ``O_NONBLOCK`` so a FIFO named
  like a clip cannot hang the server).

The response is served from that descriptor (``FdFileResponse``), Range requests included.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Refused(Exception):
    """A row that breaks the rules above (the message says which; the API answers 404)."""


class Gone(Exception):
    """A row that is fine, but its file is not there (deleted by retention, say)."""


def _parts_under(stored: str, store_root: Path, roots: Sequence[Path]) -> tuple[Path, list[str]]:
    """The root a stored path lies under, and its components below it; ``Refused`` otherwise."""
    path = PurePosixPath(stored)
    if not stored or "\x00" in stored or ".." in path.parts:
        raise Refused(f"its path {stored!r} leaves the store's folder")
    if not path.is_absolute():
        return store_root, list(path.parts)
    for root in roots:
        try:
            return root, list(path.relative_to(PurePosixPath(os.path.abspath(root))).parts)
        except ValueError:
            continue
    raise Refused(f"its path {stored!r} is absolute and in none of this run's media folders")


def open_media(stored: str, store_root: Path, roots: Sequence[Path] = ()) -> tuple[int, os.stat_result]:
    """An open descriptor of the file of a stored path, and its ``fstat``; ``Refused`` or ``Gone``."""
    root, parts = _parts_under(stored, store_root, roots)
    parts = [p for p in parts if p not in ("", ".")]
    if not parts:
        raise Refused(f"its path {stored!r} names no file")
    try:
        here = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root itself may be a link
    except OSError as exc:
        raise Gone(f"its folder {root} cannot be opened: {exc.strerror}") from None
    try:
        for name in parts[:-1]:
            try:
                step = os.open(name, _DIR_FLAGS, dir_fd=here)
            except OSError as exc:
                raise _why(exc, f"its folder {name!r} is a symlink or not a folder") from None
            os.close(here)
            here = step
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=here)
        except OSError as exc:
            raise _why(exc, "it is a symlink") from None
    finally:
        os.close(here)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Refused("it is not a regular file")
    return fd, st


def _why(exc: OSError, link: str) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a symlink (or a file on the way)
        return Refused(link)
    return Gone(exc.strerror or str(exc))


class FdFileResponse(FileResponse):
    """Starlette's ``FileResponse`` (Range, ETag, HEAD) of an already open descriptor, which it closes
    once sent (or not sent). It reads ``/dev/fd/N``: that opens the very file the descriptor has open
    (on Linux a link to the open file itself, no path is walked again), so nothing a row names is
    looked up after the checks above, with any version of Starlette."""

    def __init__(self, fd: int, st: os.stat_result, **kwargs: Any) -> None:
        super().__init__(f"/dev/fd/{fd}", stat_result=st, **kwargs)
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        try:
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:
            self.close()
