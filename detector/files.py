"""Writing files safely: the one atomic write, and a run that removes only what it made.

``atomic_write(path, write)`` has ``write`` fill a temporary file beside ``path`` (created with the
mode ``umask`` allows, like any other output, not ``mkstemp``'s 0600), makes it durable, and renames
it over ``path`` in one step: a reader, a crash or a full disk never sees half a file. Every
whole-file output uses it: reports, pictures (snapshots, heatmaps), the faststart rewrite of an MP4.

``reserve(path, what)`` creates ``path`` empty unless a file has that name: how a clip, a snapshot or a
recording segment claims its name, so that nothing ever replaces a file.

``Preexisting`` notes, before a run opens anything, which output paths already exist. After a failed
start, ``remove_made`` deletes the regular files that did not exist then (and the empty folders made
for them), and nothing else: never an old output, never a device such as ``/dev/full``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from detector.errors import UserError, storage_error

log = logging.getLogger(__name__)

_counter = itertools.count()
_lock = threading.Lock()


def temp_beside(path: Path) -> Path:
    """A hidden name next to ``path`` that no other writer (thread or process) uses."""
    with _lock:
        n = next(_counter)
    return path.with_name(f".{path.stem}.{os.getpid()}.{n}.tmp{path.suffix}")


def fsync_folder(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable (where the file system allows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` writes the whole file at ``tmp``; then it replaces ``path`` atomically.

    Raises what ``write`` raises, or ``OSError``; the temporary file never stays behind (also on
    SIGTERM's ``Terminated`` mid-write)."""
    tmp = temp_beside(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_folder(path.parent)


def write_text(path: Path, text: str) -> None:
    """A text file (UTF-8), atomically."""

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def reserve(path: Path, what: str) -> bool:
    """Create ``path`` empty, unless something has that name (False). A failure to create it is a
    ``StorageError`` (a full disk) or a ``UserError``, both saying "cannot create {what} {path}"."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        return False
    except OSError as exc:
        message = f"cannot create {what}{' ' if what else ''}{path}: {exc.strerror or exc}"
        raise storage_error(exc, path, message) or UserError(message) from exc
    return True


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _missing_folders(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    out: list[Path] = []
    folder = path.parent
    while folder != folder.parent and not os.path.lexists(folder):
        out.append(folder)
        folder = folder.parent
    return out


class Preexisting:
    """The output paths of a run, and which of them (and of their folders) existed at its start."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.new_files = [p for p in dict.fromkeys(paths) if not os.path.lexists(p)]
        self.new_folders = [f for p in self.new_files for f in _missing_folders(p)]

    def remove_made(self) -> list[Path]:
        """Delete what the run made of these: regular files that were not there, then the folders made
        for them if they are empty. Returns what was removed."""
        removed: list[Path] = []
        for path in self.new_files:
            with contextlib.suppress(OSError):
                if _is_regular(path):
                    path.unlink()
                    removed.append(path)
                elif path.is_dir() and not path.is_symlink():  # a folder output (--clips): if empty
                    path.rmdir()
                    removed.append(path)
        for folder in dict.fromkeys(self.new_folders):  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
                removed.append(folder)
        if removed:
            log.debug("removed what the failed run made: %s", ", ".join(map(str, removed)))
        return removed


def make_folder(folder: Path, what: str = "folder", *, for_path: str | Path | None = None) -> None:
    """Make ``folder`` and its parents if missing: the one place an output's folder is made (a full
    disk is a ``StorageError``, anything else a ``UserError``; the message names ``what`` it was, and
    the file it was for)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        target = "" if for_path is None else f" for {for_path}"
        message = f"cannot create {what} {folder}{target}: {exc.strerror or exc}"
        raise storage_error(exc, Path(for_path or folder), message) or UserError(message) from exc


def make_parents(path: str | Path) -> None:
    """Make the missing folders above ``path``: every output calls this as it opens its file (the
    output checks of ``sinks.paths`` only look, so a run that fails to start makes no folders)."""
    make_folder(Path(path).expanduser().parent, for_path=path)
