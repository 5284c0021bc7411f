"""The capture stage: a thread that reads a ``Source`` into a ``Channel``.

Files never drop a frame (backpressure). Live sources keep only the newest frame and
reconnect with exponential backoff when they stall or drop; the gap is reported as an
event, never filled with fake frames. A gated source's motion check (``look``) runs here, on
every frame forwarded, in parallel with the other sources' and with inference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from detector.errors import SourceError, StreamLost
from detector.events import EventRecord, Gap
from detector.pipeline.channel import Channel
from detector.sources.base import Source
from detector.stats import RunStats
from detector.types import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEvent:
    """An event of the source itself, not of a frame (a reconnect gap); its lane stamps it."""

    record: EventRecord


@dataclass(frozen=True)
class EndOfStream:
    error: BaseException | None = None


Item = Frame | StreamEvent | EndOfStream


class FrameReader:
    """Reads frames on its own thread; ``stop()`` drains the channel before joining, so nothing hangs."""

    def __init__(
        self,
        source: Source,
        out: Channel[Item],
        stop: threading.Event,
        stats: RunStats,
        *,
        max_frames: int | None = None,
        vid_stride: int = 1,
        reconnect_max: int = 5,
        backoff: tuple[float, float] = (0.5, 8.0),
        look: Callable[[Frame], Frame] | None = None,
    ) -> None:
        self.source = source
        self.out = out
        self._stop = stop
        self.stats = stats
        self.max_frames = max_frames
        self.vid_stride = vid_stride
        self.reconnect_max = reconnect_max
        self.backoff = backoff
        self.look = look  # the motion check, on every frame forwarded (``Gate.look``)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as exc:  # handed to the consumer, which re-raises it in the main thread
            error = exc
        finally:
            self.out.put(EndOfStream(error), control=True)

    def _read(self) -> Frame | None:
        t = time.perf_counter()
        frame = self.source.read()
        self.stats.stages["decode"].add((time.perf_counter() - t) * 1000)
        return frame

    def _loop(self) -> None:
        forwarded = 0
        last: Frame | None = None
        live = self.source.info.live
        while not self._stop.is_set():
            if self.max_frames is not None and forwarded >= self.max_frames:
                return
            try:
                frame = self._read()
                if frame is None and live and self.reconnect_max > 0:
                    raise ConnectionError("the stream ended")
            except (ConnectionError, TimeoutError) as exc:
                if not live:
                    raise
                frame = self._reconnect(exc, last)
            if frame is None:
                return
            self.stats.frames_read += 1
            last = frame
            if frame.index % self.vid_stride:
                continue
            if self.look is not None:
                frame = self.look(frame)
            if not self.out.put(frame):
                return
            forwarded += 1

    def _reconnect(self, exc: BaseException, last: Frame | None) -> Frame | None:
        self.stats.reconnecting = True
        try:
            return self._reconnect_attempts(exc, last)
        finally:
            self.stats.reconnecting = False

    def _reconnect_attempts(self, exc: BaseException, last: Frame | None) -> Frame | None:
        name = self.source.info.name
        delay, cap = self.backoff
        lost_at = time.monotonic()
        for attempt in range(1, self.reconnect_max + 1):
            log.warning(
                "%s: %s; reconnect attempt %d/%d in %.1f s", name, exc, attempt, self.reconnect_max, delay
            )
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, cap)
            try:
                self.source.reopen()
                frame = self._read()
            except (SourceError, ConnectionError, TimeoutError) as again:
                exc = again
                continue
            if frame is None:
                exc = ConnectionError("stream ended right after reconnecting")
                continue
            log.info("%s: reconnected after %.1f s", name, time.monotonic() - lost_at)
            self.stats.gaps += 1
            gap = Gap(
                frame=frame.index,
                pts=round(frame.pts, 3),
                after_frame=None if last is None else last.index,
                from_pts=None if last is None else round(last.pts, 3),
                to_pts=round(frame.pts, 3),
                seconds=round(time.monotonic() - lost_at, 3),
                attempts=attempt,
            )
            self.out.put(StreamEvent(gap), control=True)
            return frame
        raise StreamLost(
            f"lost {name} ({exc}) and could not reconnect after {self.reconnect_max} attempts; "
            "check the source, or raise --reconnect-max"
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end, unblock it, and wait for it."""
        self._stop.set()
        self.out.drain()
        if self._thread.ident is None:  # never started
            return
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a source stuck inside FFmpeg
            log.warning("capture thread did not stop within %.0f s", timeout)
