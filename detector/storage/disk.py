"""What a filesystem says of a folder on it (or one to be made there): free space, and what a file takes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists (a folder not made yet is on its parent's disk)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Free space (for an unprivileged writer) on the filesystem that holds ``path``, or would. None if
    it cannot be told."""
    try:
        st = os.statvfs(existing(path))
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def block_size(path: Path) -> int:
    """The allocation unit of the filesystem ``path`` is (or would be) on; 4096 when it cannot be told."""
    try:
        return max(1, os.statvfs(existing(path)).f_frsize)
    except OSError:
        return 4096


def allocated(size: int, block: int) -> int:
    """The bytes a file of ``size`` takes on a filesystem that allocates in ``block``s."""
    return -(-size // block) * block


def disk_usage(folder: Path) -> int:
    """What ``folder`` and everything in it take on disk, as ``du`` says (symlinks not followed, so a
    symlinked folder counts as the link); 0 if it does not exist."""
    total = 0
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):  # deleted meanwhile
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total
