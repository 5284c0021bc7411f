"""``DIR/segments.jsonl``: the recordings' list, one line per closed segment, as a media catalog.

    {"source": "door", "start": "2026-12-01T09:40:00.012+01:00", "end": "2026-12-01T09:49:59.950+01:00",
     "bytes": 31457280, "path": "door/2026-12-01/09.40.00.mp4", "mode": "annotated", "frames": 5999,
     "media_start": 0.0, "media_end": 599.9}

``path`` is relative to DIR; ``start``/``end`` are the wall times (ISO 8601 with offset) of its first
and last frame (for files: when they were processed), ``media_start``/``media_end`` their times in
the source. A segment cut short by a full disk also says ``"incomplete": "No space left on device"``.
Appended as segments close (``added``), rewritten without the segments retention deletes
(``removed``); ``listed`` reads it back for retention's start, and ``found`` lists a segment a killed
run left unlisted. A line that does not fit (the disk is
full: it is, like as not, the recordings' own) waits, and is written before the next one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from detector.catalog import MediaFile
from detector.errors import UserError
from detector.events import iso_time
from detector.sinks.jsonl import JsonLinesSink, read_jsonl
from detector.storage.layout import SEGMENTS_FILE

log = logging.getLogger(__name__)


def _epoch(text: object) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) and text else None
    except ValueError:
        return None


class SegmentList:
    """The catalog of the segments under ``root`` (thread-safe: recorders add from their threads)."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.lines = JsonLinesSink(self.root / SEGMENTS_FILE, append=True, resume=True)
        self.path = self.lines.path
        self._waiting: deque[dict[str, Any]] = deque()  # lines a full disk kept out, oldest first
        self._lock = threading.Lock()
        self._known: set[str] | None = None  # the paths listed, for ``found`` (read at its first call)

    def _relative(self, path: Path) -> str | None:
        try:
            return path.absolute().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def added(self, media: MediaFile) -> None:
        relative = self._relative(media.path)
        if media.kind != "segment" or relative is None:
            return
        line: dict[str, Any] = {
            "source": media.source,
            "start": None if media.start is None else iso_time(media.start),
            "end": None if media.end is None else iso_time(media.end),
            "bytes": media.bytes,
            "path": relative,
            **media.extra,
            "media_start": None if media.media_start is None else round(media.media_start, 3),
            "media_end": None if media.media_end is None else round(media.media_end, 3),
        }
        with self._lock:
            self._waiting.append(line)
            self._write_waiting()

    def _write_waiting(self) -> None:
        """Write the lines kept out so far, in order, until one does not fit (raised the first time)."""
        while self._waiting:
            self.lines.write_record(self._waiting[0])
            if self.lines.failing:
                return
            self._waiting.popleft()

    def found(self, media: MediaFile) -> None:
        """An earlier run's segment found at start: a line if it has none (that run was killed before
        it closed the segment)."""
        relative = self._relative(media.path)
        if media.kind != "segment" or relative is None:
            return
        with self._lock:
            if self._known is None:
                index = self.path
                lines = read_jsonl(index) if index is not None and index.exists() else []
                self._known = {str(r.get("path")) for r in lines}
            if relative in self._known:
                return
            self._known.add(relative)
        log.info("%s: listing %s (the run that wrote it ended before it did)", self.path, relative)
        self.added(media)

    def removed(self, paths: Sequence[Path]) -> None:
        gone = {r for p in paths if (r := self._relative(p)) is not None}
        if gone:
            self.lines.drop_lines(lambda line: line.get("path") in gone)

    def listed(self, folder: Path) -> list[MediaFile]:
        if folder.absolute() != self.root or self.path is None or not self.path.exists():
            return []
        out = []
        for line in read_jsonl(self.path):
            path = line.get("path")
            if isinstance(path, str):
                out.append(
                    MediaFile(
                        "segment",
                        str(line.get("source", "")),
                        self.root / path,
                        start=_epoch(line.get("start")),
                        end=_epoch(line.get("end")),
                        bytes=int(line.get("bytes") or 0),
                    )
                )
        return out

    def close(self) -> None:
        with self._lock:
            if self._waiting:
                try:
                    self._write_waiting()
                except (OSError, UserError) as exc:  # a full disk still
                    log.error("%s: %d segments could not be listed: %s", self.path, len(self._waiting), exc)
            self.lines.close()
