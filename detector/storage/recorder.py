"""Continuous recording of the annotated video (``record.mode: annotated``), in segments.

``SegmentRecorder`` is a ``PacketOutput`` of the video sink, like the clip recorder: it gets the H.264
packets the sink encoded once for ``--output`` and the clips, and writes them to one segment after
another. A segment starts on a keyframe (they come every ``encoder.fragment_seconds``): the first
keyframe at least ``seconds`` after the segment's own first frame closes it and opens the next.
Each segment is an ``Mp4Writer``: fragmented while written (kill -9 keeps all but the last fragment),
a faststart MP4 once closed. Closing one (the trailer and the faststart rewrite) is done on a thread
of its own (``Finisher``), so the pipeline never waits for it; the closed segment is then told to the
media catalog (``segments.jsonl``, retention, the event store).

``SegmentBook`` is what this recorder and the raw one (``storage.raw``) share: the names, the
catalog entries, and what a full disk does. A write that fails for want of storage closes the
segment (playable up to its last whole fragment), raises one ``StorageError`` (the lane reports it
and retention runs at once), and drops the video until, at a keyframe, the disk has room again
(``RESUME_SECONDS`` of the recent bitrate, and ``retain.min_free``): then a new segment starts and
``on_resumed`` is told.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import av

from detector.catalog import MediaCatalog, MediaFile
from detector.errors import StorageError, UserError, raise_together
from detector.media.encoder import Encoded, H264Encoder
from detector.media.mp4writer import Mp4Writer
from detector.settings.storage import size_text
from detector.storage.disk import free_bytes
from detector.storage.layout import claim_segment, live_stem, media_stem
from detector.types import FrameResult

log = logging.getLogger(__name__)

RESUME_SECONDS = 3.0  # after a full disk: room for this much of the recent video before writing again
RESUME_MIN_BYTES = 256 * 1024


@dataclass
class RecordHooks:
    """What a recorder tells the run: a segment is about to open (retention checks), and it resumed
    after a full disk (``key``); ``min_free``: the free space retention keeps (``retain.min_free``)."""

    opening: Callable[[], None] = lambda: None
    resumed: Callable[[str], None] = lambda key: None
    min_free: int = 0


@dataclass
class Segment:
    """One segment being written: its file and the span it covers."""

    path: Path
    start_wall: float
    start_media: float
    end_wall: float = 0.0
    end_media: float = 0.0
    frames: int = 0
    bytes: int = 0  # of the packets written (the file holds at least as much)
    failed: StorageError | None = None
    writer: Any = None  # the recorder's own handle (an Mp4Writer, a PyAV container)
    extra: dict[str, Any] = field(default_factory=dict)


class SegmentBook:
    """Segments of one source under ``root``: names, catalog entries, and the full-disk state."""

    def __init__(
        self,
        root: Path,
        source: str,
        *,
        seconds: float,
        live: bool,
        mode: str,
        catalog: MediaCatalog | None = None,
        hooks: RecordHooks | None = None,
    ) -> None:
        self.root = root
        self.source = source
        self.seconds = float(seconds)
        self.live = live
        self.mode = mode
        self.catalog = catalog
        self.hooks = hooks or RecordHooks()
        self.key = f"record:{source}"
        self.day = date.today()  # files: the day folder of every segment of the run
        self.segments = 0
        self.bytes = 0
        self.incomplete = 0
        self.waiting = False  # a full disk: nothing is written until there is room again
        self._rate = 0.0  # bytes per second of the recent segments
        self._lock = threading.Lock()
        self._full: list[StorageError] = []

    def open(self, wall: float, media: float) -> Segment:
        """A new segment starting now (``wall``) at ``media`` seconds into the source."""
        self.hooks.opening()
        day, clock = live_stem(wall) if self.live else media_stem(self.day, media)
        path = claim_segment(self.root, self.source, day, clock)
        return Segment(path, wall, media, wall, media)

    def room(self) -> bool:
        """After a full disk: is there room to write again?"""
        free = free_bytes(self.root)
        need = max(RESUME_MIN_BYTES, RESUME_SECONDS * self._rate) + self.hooks.min_free
        return free is None or free >= need

    def failed(self, segment: Segment | None, exc: StorageError) -> None:
        """A write failed for want of storage: raise it (once) from the sink's next call, and wait."""
        exc.key = self.key
        if segment is not None:
            segment.failed = exc
        with self._lock:
            if not self.waiting:
                self._full.append(exc)
                log.info("%s: recording paused until the disk has room again", self.source)
            self.waiting = True

    def resumed(self) -> None:
        with self._lock:
            self.waiting = False
            for exc in self._full:  # not raised yet (the raw recorder's thread is quick): not failing
                exc.resumed = True
        log.info("%s: recording resumed (the disk has room again)", self.source)
        self.hooks.resumed(self.key)

    def raise_pending(self) -> None:
        with self._lock:
            full, self._full = self._full, []
        raise_together(full)

    def finished(self, segment: Segment) -> None:
        """The segment's file is closed: log it and tell the catalog (from the thread that closed it).
        One cut short before its first whole frame holds nothing: it goes."""
        if segment.failed is not None and not holds_a_frame(segment.path):
            log.info("%s: %s was cut short before its first frame; removed", self.source, segment.path)
            segment.path.unlink(missing_ok=True)
            return
        try:
            size = segment.path.stat().st_size
        except OSError:
            return  # nothing was kept (no frame reached it)
        extra: dict[str, Any] = {"mode": self.mode, "frames": segment.frames, **segment.extra}
        if segment.failed is not None:
            extra["incomplete"] = segment.failed.reason
            self.incomplete += 1
        seconds = segment.end_media - segment.start_media
        if seconds > 0.5 and segment.failed is None:
            self._rate = size / seconds
        self.segments += 1
        self.bytes += size
        cut = "" if segment.failed is None else f", cut short: {segment.failed.reason}"
        log.info(
            "segment %s: %d frames, %.1f s, %s%s", segment.path, segment.frames, seconds, size_text(size), cut
        )
        if self.catalog is not None:
            self.catalog.added(
                MediaFile("segment", self.source, segment.path.absolute(), start=segment.start_wall,
                          end=segment.end_wall, media_start=segment.start_media, media_end=segment.end_media,
                          bytes=size, extra=extra)
            )  # fmt: skip

    def report(self) -> dict[str, Any]:
        return {
            "recording": {
                "folder": str(self.root),
                "mode": self.mode,
                "segment_s": self.seconds,
                "segments": self.segments,
                "bytes": self.bytes,
                "incomplete": self.incomplete,
            }
        }


def holds_a_frame(path: Path) -> bool:
    """A file cut short still holds a whole packet of video (a keyframe: a player shows it)."""
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size and not packet.is_corrupt:
                    return True
    except (av.FFmpegError, OSError, IndexError, ValueError):
        return False
    return False


class Finisher:
    """One thread that runs jobs in order (closing segments and clips), so the pipeline never waits on
    them."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.name = name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception as exc:  # a job that fails must not stop the ones after it
                log.error("%s: finishing a file failed: %s", self.name, exc)

    def close(self, timeout: float = 120.0) -> None:
        """Run what is queued, then stop (bounded)."""
        self._jobs.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a remux stuck on a dying disk
            log.warning("%s: files were still being closed after %.0f s", self.name, timeout)


class SegmentRecorder:
    """The annotated video of one source, recorded in segments (a ``PacketOutput``)."""

    def __init__(self, book: SegmentBook) -> None:
        self.book = book
        self.encoder: H264Encoder | None = None
        self.current: Segment | None = None
        self._to_wall: float | None = None  # live: Unix time = source pts + this
        self._finisher = Finisher(f"segments {book.source}")
        self._closed = False

    # -- PacketOutput ---------------------------------------------------------------------------------
    def bind(self, encoder: H264Encoder) -> None:
        self.encoder = encoder

    def frame(self, result: FrameResult) -> None:
        if self._to_wall is None and self.book.live:
            frame = result.frame
            self._to_wall = time.time() - (time.monotonic() - frame.capture_time) - frame.pts

    def packets(self, packets: Sequence[Encoded]) -> None:
        for packet in packets:
            self._packet(packet)
        self.book.raise_pending()

    def close(self) -> None:
        """Close the open segment and wait until every segment is closed and listed."""
        if self._closed:
            return
        self._closed = True
        if self.current is not None:
            self._roll()
        self._finisher.close()
        self.book.raise_pending()

    def report(self) -> dict[str, Any]:
        return self.book.report()

    # -- segments -------------------------------------------------------------------------------------
    def _wall(self, pts: float) -> float:
        return pts + self._to_wall if self._to_wall is not None else time.time()

    def _packet(self, packet: Encoded) -> None:
        book, current = self.book, self.current
        t = packet.source_pts
        due = current is None or t - current.start_media >= book.seconds - self._half_frame()
        if packet.keyframe and due:
            if current is not None:
                self._roll()
            if not self._start(packet):
                return
        segment = self.current
        if segment is None:
            return  # waiting for a keyframe (the first, or after a full disk)
        try:
            segment.writer.write(packet)
        except StorageError as exc:  # this segment ends here, playable up to its last fragment
            book.failed(segment, exc)
            self._roll()
            return
        segment.frames += 1
        segment.end_media = max(segment.end_media, t)
        segment.end_wall = self._wall(segment.end_media)

    def _half_frame(self) -> float:
        return 0.5 / float(self.encoder.fps) if self.encoder is not None else 0.0

    def _start(self, packet: Encoded) -> bool:
        book = self.book
        if book.waiting and not book.room():
            return False
        assert self.encoder is not None, "bind() the encoder first"
        t = packet.source_pts
        try:
            segment = book.open(self._wall(t), t)
        except StorageError as exc:
            book.failed(None, exc)
            return False
        enc = self.encoder
        segment.writer = Mp4Writer(
            segment.path, enc, from_zero=True, fragment_seconds=float(enc.gop / enc.fps)
        )
        self.current = segment
        if book.waiting:
            book.resumed()
        return True

    def _roll(self) -> None:
        """Hand the open segment to the finisher (trailer, faststart rewrite, catalog)."""
        segment, self.current = self.current, None
        if segment is not None:
            self._finisher.submit(lambda: self._finish(segment))

    def _finish(self, segment: Segment) -> None:
        try:
            segment.writer.close()
        except StorageError as exc:
            self.book.failed(segment, exc)
        except UserError as exc:
            log.error("%s: %s", self.book.source, exc)
        self.book.finished(segment)
