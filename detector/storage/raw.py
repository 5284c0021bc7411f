"""Raw recording (``record.mode: raw``): the source's own packets, stream-copied into segments with no
decode or encode, the cheap and unaltered evidence copy. Detection still runs on the decoded frames.

The recorder is a packet tap of a PyAV source (``sources.video.PyAVSource.set_tap``): the capture
thread hands it a copy of each demuxed packet before decoding, which only appends to a queue: the
capture thread never waits on a disk. A live source whose recorder falls ``MAX_QUEUE_BYTES`` behind
loses packets (counted; the segment picks up again at the next keyframe); a file waits, since
nothing is lost by reading it later. Everything else happens on the recorder's own thread: segments
open on the source's keyframes (the first at least ``seconds`` after the segment's start closes it),
as fragmented MP4s, closed into faststart MP4s and told to the catalog. A reconnect (a new stream)
ends the segment; the next starts at the new stream's first keyframe. A full disk works as for the
annotated recording (``recorder.SegmentBook``); the error reaches the lane through the sink's next
``write``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections import deque
from typing import Any

import av

from detector.errors import StorageError, UserError, storage_error
from detector.events import EventRecord
from detector.media.mp4files import faststart, lost_on_close, trim_torn
from detector.media.mp4writer import FRAGMENTED_MOVFLAGS
from detector.storage.recorder import Segment, SegmentBook
from detector.types import FrameResult

log = logging.getLogger(__name__)

COPYABLE = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})  # codecs an MP4 takes as they are
MAX_QUEUE_BYTES = 64 * 1024 * 1024
STOP_TIMEOUT_S = 120.0


def check_copyable(name: str, kind: str, codec: str, has_packets: bool) -> None:
    """One line for a source that raw recording cannot copy."""
    if not has_packets:
        what = "a camera read through OpenCV" if kind == "camera" else "a folder of images"
        raise UserError(
            f"--record-mode raw copies a source's own packets, and {name} is {what}, which has none; "
            "use --record-mode annotated"
        )
    if codec not in COPYABLE:
        raise UserError(
            f"--record-mode raw: {name} is {codec or 'in a codec'} video, which cannot be copied into MP4 "
            f"as it is ({', '.join(sorted(COPYABLE))} can); use --record-mode annotated"
        )


class _Template:
    """A stream's codec parameters, kept in a container of our own: the source's may be closed (a
    reconnect) while segments are still made from it."""

    def __init__(self, stream: Any) -> None:
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        self.stream = self._holder.add_stream_from_template(stream)
        self.time_base = stream.time_base
        self.rate = stream.average_rate

    def close(self) -> None:
        """Once no segment will be made from it (the streams made from it keep their own copy)."""
        with contextlib.suppress(av.FFmpegError, OSError):
            self._holder.close()


class RawRecorder:
    """A source's packets recorded in segments: its tap (capture thread), writer (own thread) and sink."""

    def __init__(self, book: SegmentBook) -> None:
        self.book = book
        self.packets_dropped = 0  # live: the queue was full
        self.packets_refused = 0  # the muxer would not take them (broken timestamps)
        self._queue: deque[tuple[str, Any, float]] = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._warned = False
        self._template: _Template | None = None
        self._new_stream = False
        self._origin: float | None = None  # media time (s) of the first packet
        self.current: Segment | None = None
        self._thread = threading.Thread(target=self._run, name=f"raw {book.source}", daemon=True)
        self._thread.start()

    # -- the tap (the capture thread) -----------------------------------------------------------------
    def stream(self, stream: Any) -> None:
        """The source (re)opened this stream: its packets follow."""
        self._put("stream", _Template(stream), 0)

    def packet(self, packet: Any) -> None:
        """A demuxed packet, before it is decoded (copied here: the decoder goes on with the original)."""
        copy = av.Packet(bytes(packet))
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.is_keyframe, copy.duration = packet.is_keyframe, packet.duration
        self._put("packet", copy, copy.size)

    def _put(self, kind: str, item: Any, size: int) -> None:
        with self._cond:
            while self._queued_bytes + size > MAX_QUEUE_BYTES and not self._stopping:
                if self.book.live:
                    self.packets_dropped += 1
                    if not self._warned:
                        self._warned = True
                        log.warning("%s: raw recording fell behind; dropping packets", self.book.source)
                    return
                self._cond.wait(0.5)
            self._queue.append((kind, item, time.time()))
            self._queued_bytes += size
            self._cond.notify_all()

    # -- the sink (the main thread) -------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        self.book.raise_pending()

    def event(self, record: EventRecord) -> None:
        pass

    def close(self) -> None:
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():  # pragma: no cover - a disk that hangs
            log.warning("%s: raw recording still writing after %.0f s", self.book.source, STOP_TIMEOUT_S)
        self.book.raise_pending()

    def report(self) -> dict[str, Any]:
        out = self.book.report()
        out["recording"].update(packets_dropped=self.packets_dropped, packets_refused=self.packets_refused)
        return out

    # -- the writer (its own thread) ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    break
                kind, item, wall = self._queue.popleft()
                self._queued_bytes -= item.size if kind == "packet" else 0
                self._cond.notify_all()
            try:
                if kind == "stream":
                    self._roll()  # the old stream's segment ends with it, not at the new one's keyframe
                    if self._template is not None:
                        self._template.close()
                    self._template, self._new_stream = item, True
                else:
                    self._write(item, wall)
            except Exception as exc:  # never let one packet end the recording
                log.error("%s: raw recording: %s", self.book.source, exc)
        self._roll()
        if self._template is not None:
            self._template.close()

    def _seconds(self, packet: Any) -> float | None:
        ticks = packet.pts if packet.pts is not None else packet.dts
        return None if ticks is None or packet.time_base is None else float(ticks * packet.time_base)

    def _write(self, packet: Any, wall: float) -> None:
        t = self._seconds(packet)
        if t is None or self._template is None:
            self.packets_refused += 1
            return
        if self._origin is None:
            self._origin = t
        media = t - self._origin
        current = self.current
        due = current is None or self._new_stream or media - current.start_media >= self.book.seconds - 1e-3
        if packet.is_keyframe and due:
            self._roll()
            self._start(packet, wall, media)
        segment = self.current
        if segment is None:
            return
        container, stream, shift = segment.writer
        packet.stream = stream
        packet.dts = None if packet.dts is None else packet.dts - shift
        packet.pts = packet.dts if packet.pts is None else packet.pts - shift
        size = packet.size  # muxing takes the packet's data
        try:
            container.mux(packet)
        except OSError as exc:
            full = storage_error(exc, segment.path, f"writing {segment.path} failed: {exc.strerror or exc}")
            if full is None:
                raise
            self.book.failed(segment, full)
            self._roll()
            return
        except (av.FFmpegError, ValueError):  # out-of-order timestamps: this packet is left out
            self.packets_refused += 1
            return
        segment.frames += 1
        segment.bytes += size
        segment.end_wall, segment.end_media = wall, max(segment.end_media, media)

    def _start(self, first: Any, wall: float, media: float) -> None:
        book, template = self.book, self._template
        assert template is not None
        if book.waiting and not book.room():
            return
        try:
            segment = book.open(wall, media)
        except StorageError as exc:
            book.failed(None, exc)
            return
        options = {"movflags": FRAGMENTED_MOVFLAGS, "flush_packets": "1"}
        if book.live:
            options["frag_duration"] = "2000000"
        try:
            container = av.open(str(segment.path), "w", format="mp4", options=options)
            stream = container.add_stream_from_template(template.stream)
            stream.time_base = template.time_base
        except OSError as exc:
            segment.path.unlink(missing_ok=True)  # claimed, but nothing will be written to it
            full = storage_error(exc, segment.path, f"cannot create {segment.path}: {exc.strerror or exc}")
            if full is None:
                raise
            book.failed(segment, full)
            return
        self._new_stream = False
        self.current = segment
        shift = first.dts if first.dts is not None else first.pts  # the segment starts at time 0
        segment.writer = (container, stream, shift)
        if book.waiting:
            book.resumed()

    def _roll(self) -> None:
        """Close the open segment: its trailer, the faststart rewrite, then the catalog."""
        segment, self.current = self.current, None
        if segment is None:
            return
        container = segment.writer[0]
        try:
            container.close()
            lost = lost_on_close(segment.path, segment.bytes) if segment.failed is None else None
            if lost is not None:
                raise lost
        except OSError as exc:
            full = storage_error(exc, segment.path, f"closing {segment.path} failed: {exc.strerror or exc}")
            if full is None:
                log.error("%s: closing %s failed: %s", self.book.source, segment.path, exc)
            else:
                self.book.failed(segment, full)
        except av.FFmpegError as exc:
            log.error("%s: closing %s failed: %s", self.book.source, segment.path, exc)
        if segment.frames == 0:
            segment.path.unlink(missing_ok=True)
            return
        if segment.failed is None:
            faststart(segment.path)
        else:  # a full disk tore its last fragment: cut back to the last whole one
            trim_torn(segment.path)
        self.book.finished(segment)
