"""What retention may delete: a regular file inside its folder, reached by no symlink, whose first
bytes are those of what we write there.

A folder under ``--record DIR`` or a clips folder that is a symlink (a source's folder, a day's
folder) leads out of the folder: it is never walked (``subfolders``) and nothing under it is deleted
(``unsafe``). A file only named like ours (a user's ``10.00.00.mp4`` that is a text file) is not ours
either: a segment or a clip starts with an MP4 ``ftyp`` box, a snapshot with JPEG's start-of-image
marker. No library says "this file is ours"; the checks are a few ``lstat`` calls and one small read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

HEADER_BYTES = 12


def subfolders(folder: Path, skipped: list[Path]) -> list[str]:
    """The names of the real folders in ``folder`` (not symlinks to folders: those go to ``skipped``)."""
    names: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    names.append(entry.name)
                elif entry.is_symlink() and entry.is_dir():
                    skipped.append(Path(entry.path))
    except OSError:
        pass
    return names


def looks_ours(path: Path) -> bool:
    """The file starts as an MP4 (an ``ftyp`` box) or a JPEG (FF D8 FF) does; read without following
    a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        head = os.read(fd, HEADER_BYTES)
    except OSError:
        return False
    finally:
        os.close(fd)
    if path.suffix == ".jpg":
        return head[:3] == b"\xff\xd8\xff"
    return head[4:8] == b"ftyp"


def unsafe(root: Path, path: Path, *, header: bool = True) -> str | None:
    """Why ``path`` must not be deleted by retention of ``root`` (None: it may): outside ``root``,
    under a symlinked folder, not a regular file, or (``header``) not starting as ours."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return f"outside {root}"
    if not parts or ".." in parts:
        return f"outside {root}"
    folder = root
    try:
        for part in parts[:-1]:
            folder = folder / part
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return f"{folder} is a symlink, not a folder of {root}"
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "not a regular file"
    except FileNotFoundError:
        return None  # gone already: nothing to delete
    except OSError as exc:
        return exc.strerror or str(exc)
    if header and not looks_ours(path):
        return "not an MP4 or JPEG of ours (its first bytes)"
    return None
