"""Our names on disk: where a segment goes, and which files in a folder are ours (retention deletes
nothing else).

Recordings: ``DIR/{source}/{YYYY-MM-DD}/{HH.MM.SS}.mp4``, from the segment's first frame: local
capture time for live sources; for files the media time (``00.10.00.mp4`` is ten minutes in), under
the day the run started. A name already taken (two segments in one second, a file recorded twice)
gets ``-2``, ``-3``... and is reserved with an exclusive create, so a segment never replaces a file.
Clips and event snapshots (``storage.clipfolder`` claims them): ``{source}-clip-NNNN.mp4`` and
``{source}-event-NNNN.jpg`` (``clip_name``); the one rule that names them is also the one that tells
which files in a folder are ours and which number comes next (``parse_clip_name``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from detector.catalog import MediaFile, MediaKind
from detector.errors import UserError
from detector.files import make_folder, reserve
from detector.storage.safety import subfolders

SEGMENTS_FILE = "segments.jsonl"
MAX_TRIES = 1000
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # ``sources.naming.safe`` names
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SEGMENT = re.compile(r"\d{2,}\.\d{2}\.\d{2}(-\d+)?\.mp4")
_CLIP = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)-(clip|event)-(\d{4,})(\.mp4|\.jpg)")
CLIP_SUFFIXES = {"clip": ".mp4", "event": ".jpg"}  # an event clip, an event snapshot


def clip_name(source: str, kind: str, number: int, suffix: str) -> str:
    """The name of a source's clip (``kind`` "clip", ".mp4") or event snapshot ("event", ".jpg")."""
    return f"{source}-{kind}-{number:04d}{suffix}"


def parse_clip_name(name: str) -> tuple[str, str, int, str] | None:
    """(source, kind, number, suffix) of a name ``clip_name`` gives, else None."""
    match = _CLIP.fullmatch(name)
    if match is None or CLIP_SUFFIXES[match.group(2)] != match.group(4):
        return None
    return match.group(1), match.group(2), int(match.group(3)), match.group(4)


def live_stem(wall: float) -> tuple[str, str]:
    """(day folder, clock) of a live segment that starts at Unix time ``wall``, in local time."""
    when = datetime.fromtimestamp(wall)
    return when.strftime("%Y-%m-%d"), when.strftime("%H.%M.%S")


def media_stem(day: date, seconds: float) -> tuple[str, str]:
    """(day folder, clock) of a file's segment that starts ``seconds`` into the file."""
    total = max(0, int(seconds))
    return day.isoformat(), f"{total // 3600:02d}.{total // 60 % 60:02d}.{total % 60:02d}"


def claim_segment(root: Path, source: str, day: str, clock: str) -> Path:
    """A new, reserved (created empty) ``root/source/day/clock[-N].mp4``; folders made as needed."""
    folder = root / source / day
    make_folder(folder, "recording folder")
    for n in range(1, MAX_TRIES + 1):
        path = folder / (f"{clock}.mp4" if n == 1 else f"{clock}-{n}.mp4")
        if reserve(path, "recording segment"):
            return path
    raise UserError(f"recording folder {folder}: no free name for {clock}.mp4")


def is_segment(root: Path, path: Path) -> bool:
    """``path`` is named as one of our segments under ``root``."""
    try:
        source, day, name = path.relative_to(root).parts
    except ValueError:
        return False
    return bool(_SOURCE.fullmatch(source) and _DAY.fullmatch(day) and _SEGMENT.fullmatch(name))


def _files(folder: Path, ours: Callable[[str], object]) -> list[tuple[os.DirEntry[str], os.stat_result]]:
    """The regular files in ``folder`` whose names are ``ours``, with their stat (``scandir``: one call a
    file)."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if ours(entry.name) and entry.is_file(follow_symlinks=False):
                    found.append((entry, entry.stat(follow_symlinks=False)))
    except OSError:
        pass
    return found


def scan_recordings(root: Path, skipped: list[Path] | None = None) -> list[MediaFile]:
    """Every segment in our naming under ``root`` (absolute), its end time taken from its mtime. A
    source's or day's folder that is a symlink is not walked (it leads elsewhere): it goes to
    ``skipped``."""
    root = root.absolute()
    links: list[Path] = [] if skipped is None else skipped
    found: list[MediaFile] = []
    for source in subfolders(root, links):
        if not _SOURCE.fullmatch(source):
            continue
        for day in subfolders(root / source, links):
            if _DAY.fullmatch(day):
                for entry, st in _files(root / source / day, _SEGMENT.fullmatch):
                    found.append(
                        MediaFile("segment", source, Path(entry.path), end=st.st_mtime, bytes=st.st_size)
                    )
    return found


def scan_clips(folder: Path) -> list[MediaFile]:
    """Every clip and snapshot in our naming in ``folder`` (absolute)."""
    found: list[MediaFile] = []
    for entry, st in _files(folder.absolute(), parse_clip_name):
        kind: MediaKind = "clip" if entry.name.endswith(".mp4") else "snapshot"
        parsed = parse_clip_name(entry.name)
        assert parsed is not None
        found.append(MediaFile(kind, parsed[0], Path(entry.path), end=st.st_mtime, bytes=st.st_size))
    return found


def empty_days(root: Path, keep: set[Path]) -> list[Path]:
    """Day folders of the recordings left empty, except the newest of each source and ``keep``."""
    out: list[Path] = []
    for source in subfolders(root, []):
        days = sorted(d for d in subfolders(root / source, []) if _DAY.fullmatch(d))
        for day in days[:-1]:
            folder = root / source / day
            if folder not in keep and not _listdir(folder):
                out.append(folder)
    return out


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []
