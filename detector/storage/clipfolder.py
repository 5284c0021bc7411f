"""The ``--clips`` folder: file names that never collide, and its index, ``events.jsonl``.

One ``ClipFolder`` serves every source of a run that writes clips there. A file is named from the
source's unique name (``door-clip-0001.mp4``, ``door-event-0001.jpg``; a second source with the
same file stem is ``door-2``), numbered after the highest number of its kind already in the folder,
and reserved with an exclusive create before anything is written to it: a clip or snapshot never
replaces a file, whether an earlier run's, another source's or another output's. The folder is
made (with its parents) at the first event, so a run without events leaves none.

``EventsFile`` is the sink of ``DIR/events.jsonl``: one line per event that got a clip or a
snapshot, the finished record (the same one ``--json`` gets). It is appended to, run after run: the
folder's index keeps every clip it holds. It is also a media catalog: when retention deletes a clip
and its snapshots, ``removed`` rewrites the file without their lines (under the sink's lock, while
events go on being appended), and ``listed`` tells retention which snapshots go with which clip.
A full disk costs the lines that do not fit (whole lines stay); the next event tries again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path

from detector.catalog import MediaFile
from detector.errors import UserError
from detector.events import EventRecord
from detector.files import make_folder, reserve
from detector.sinks.jsonl import JsonLinesSink, read_jsonl
from detector.storage.layout import clip_name, parse_clip_name
from detector.types import FrameResult

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
MAX_TRIES = 10000


class ClipFolder:
    """``reserved``: the run's other outputs; a clip never takes one of their names, even before
    they exist (an ``--output`` is made at its first frame)."""

    def __init__(self, folder: Path, reserved: Iterable[Path] = ()) -> None:
        self.folder = folder
        self.reserved = {p.name for p in reserved}
        self._next: dict[tuple[str, str], int] = {}  # (source, kind) -> next number to try
        self._found = self._numbers()  # as the run found the folder: numbers go on after these, also
        # once retention has deleted them

    def ensure(self) -> None:
        """Make the folder (and its parents) if needed."""
        make_folder(self.folder, "clips folder")

    def claim(self, source: str, kind: str, suffix: str) -> Path:
        """A new, reserved (created empty) file ``{source}-{kind}-NNNN{suffix}`` in the folder."""
        self.ensure()
        key = (source, kind)
        if key not in self._next:
            self._next[key] = self._highest(source, kind, suffix) + 1
        for _ in range(MAX_TRIES):
            n = self._next[key]
            self._next[key] = n + 1
            path = self.folder / clip_name(source, kind, n, suffix)
            if path.name in self.reserved:
                continue
            if reserve(path, ""):
                return path
        raise UserError(f"clips folder {self.folder}: no free name for {source}-{kind}-NNNN{suffix}")

    def _numbers(self) -> dict[tuple[str, str, str], int]:
        """The highest number of each (source, kind, suffix) in the folder now."""
        found: dict[tuple[str, str, str], int] = {}
        try:
            names = os.listdir(self.folder)
        except OSError:
            return found
        for name in names:
            if parsed := parse_clip_name(name):
                source, kind, number, suffix = parsed
                key = (source, kind, suffix)
                found[key] = max(found.get(key, 0), number)
        return found

    def _highest(self, source: str, kind: str, suffix: str) -> int:
        key = (source, kind, suffix)
        return max(self._found.get(key, 0), self._numbers().get(key, 0))


class EventsFile:
    """``DIR/events.jsonl``: the events that have a clip or a snapshot, appended as they come; and the
    catalog of the clips and snapshots it names. ``on_resumed`` is told (with ``key``) when a line
    fits again after a full disk."""

    def __init__(self, folder: ClipFolder, on_resumed: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.lines = JsonLinesSink(folder.folder / EVENTS_FILE, append=True, resume=True)
        self.path = self.lines.path
        self.key = str(self.path)
        self.on_resumed = on_resumed

    @property
    def failed(self) -> str | None:
        return self.lines.failed

    def write(self, result: FrameResult) -> None:
        pass

    def event(self, record: EventRecord) -> None:
        if record.clip is not None or record.snapshot is not None:
            self.folder.ensure()
            failing = self.lines.failing
            self.lines.event(record)
            if failing and not self.lines.failing and self.on_resumed is not None:
                self.on_resumed(self.key)

    def close(self) -> None:
        self.lines.close()

    # -- MediaCatalog ---------------------------------------------------------------------------------
    def added(self, media: MediaFile) -> None:
        """Its lines are the events themselves (``event``)."""

    def removed(self, paths: Sequence[Path]) -> None:
        """Drop the lines of events whose clip or snapshot was deleted."""
        here = self.folder.folder.absolute()
        names = {p.name for p in paths if p.parent == here}
        if names:
            self.lines.drop_lines(lambda r: r.get("clip") in names or r.get("snapshot") in names)

    def listed(self, folder: Path) -> list[MediaFile]:
        """The clips and snapshots its lines name (a clip with the ids of all its events)."""
        here = self.folder.folder.absolute()
        if folder.absolute() != here or self.path is None or not self.path.exists():
            return []
        clips: dict[str, tuple[str, list[str], float | None]] = {}
        out: list[MediaFile] = []
        for line in read_jsonl(self.path):
            source, eid, wall = str(line.get("source", "")), str(line.get("id", "")), _epoch(line)
            snapshot, clip = line.get("snapshot"), line.get("clip")
            if isinstance(snapshot, str):
                out.append(
                    MediaFile("snapshot", source, here / snapshot, start=wall, end=wall, events=(eid,))
                )
            if isinstance(clip, str):
                clips.setdefault(clip, (source, [], wall))[1].append(eid)
        for name, (source, ids, wall) in clips.items():
            out.append(MediaFile("clip", source, here / name, start=wall, events=tuple(ids)))
        return out


def _epoch(line: dict[str, object]) -> float | None:
    text = line.get("wall_time")
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) and text else None
    except ValueError:
        return None
