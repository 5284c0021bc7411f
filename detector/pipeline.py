"""The pipelined loop: capture thread -> inference thread -> overlay + sinks (main thread).

Stages are joined by bounded ``Channel``s and one stop ``Event``. An error in any stage
ends the run cleanly (never a hang): the stage hands its exception downstream as
``EndOfStream(error)``, the main thread re-raises it after closing everything.
One thread owns the model. The main thread owns the window (OpenCV GUI) and signals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from detector.analytics.stage import AnalyticsStage
from detector.capture import EndOfStream, FrameReader, Item, StreamEvent
from detector.channel import Channel, Closed
from detector.detection import Detector, Tracker, filter_classes
from detector.overlay import FpsMeter, OverlayRenderer, PanelInfo
from detector.progress import Progress
from detector.sinks.base import FrameResult, Sink
from detector.sinks.window import WindowSink
from detector.sources import Source
from detector.stats import RunStats
from detector.types import Detections, Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detected:
    frame: Frame
    detections: Detections


Stage2Item = Detected | StreamEvent | EndOfStream


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Delay SIGINT/SIGTERM to the end of the block (main thread only), then deliver them.

    Keeps every sink in step: a frame is written to all of them or to none.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old: dict[int, Any] = {}
    for sig in _HELD_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):  # only Python handlers (Ctrl-C, our SIGTERM) raise mid-frame
            old[sig] = signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for held, handler in old.items():
            signal.signal(held, handler)
        for signum in caught:
            signal.raise_signal(signum)  # now, to the real handler


def _force_exit(signum: int, _frame: object) -> None:  # pragma: no cover - exercised by signal tests
    os._exit(128 + signum)


class Pipeline:
    """Runs one source through one detector into the sinks; ``run()`` returns the stats."""

    def __init__(
        self,
        source: Source,
        detector: Detector,
        renderer: OverlayRenderer,
        sinks: Sequence[Sink],
        *,
        window: WindowSink | None = None,
        tracker: Tracker | None = None,
        analytics: AnalyticsStage | None = None,
        class_ids: Sequence[int] | None = None,
        max_frames: int | None = None,
        vid_stride: int = 1,
        queue_size: int = 4,
        reconnect_max: int = 5,
        progress: Progress | None = None,
        started_at: float | None = None,
    ) -> None:
        self.source = source
        self.detector = detector
        self.renderer = renderer
        self.sinks = list(sinks)
        self.window = window
        self.tracker = tracker
        self.max_frames = max_frames
        self.analytics = analytics if analytics is not None and analytics.active else None
        if tracker is not None:
            tracker.reset()  # track ids never carry over from another source
        self.class_ids = class_ids
        self.progress = progress
        self.started_at = time.monotonic() if started_at is None else started_at
        self.stop_event = threading.Event()
        live = source.info.live
        self.stats = RunStats(source=source.info.name, backend=getattr(detector, "backend", "?"))
        # Live: keep only the newest frame. Files: block, never drop.
        self.frames: Channel[Item] = Channel(
            1 if live else queue_size, keep_latest=live, stop=self.stop_event
        )
        self.detected: Channel[Stage2Item] = Channel(2, keep_latest=False, stop=self.stop_event)
        self.reader = FrameReader(
            source,
            self.frames,
            self.stop_event,
            self.stats,
            max_frames=None if live else max_frames,  # live: counted where frames are processed
            vid_stride=vid_stride,
            reconnect_max=reconnect_max,
        )
        self._infer_thread = threading.Thread(target=self._infer_loop, name="inference", daemon=True)
        self.fps_meter = FpsMeter()

    # -- inference stage (its own thread; owns the model) ---------------------------------
    def _infer_loop(self) -> None:
        """Files keep ``depth`` frames in flight (backends with ``submit``); results leave in order."""
        timer = self.stats.stages["inference"]
        submit = getattr(self.detector, "submit", None)
        depth = (
            1 if self.source.info.live or submit is None else max(1, getattr(self.detector, "requests", 1))
        )
        pending: deque[tuple[Frame, Callable[[], Detections], float]] = deque()

        def finish_oldest() -> bool:
            frame, result, spent = pending.popleft()
            t = time.perf_counter()
            dets = filter_classes(result(), self.class_ids)
            if self.tracker is not None:
                dets = self.tracker.update(dets, frame.image)
            timer.add(spent + (time.perf_counter() - t) * 1000)  # this thread's time for the frame
            return self.detected.put(Detected(frame, dets))

        try:
            while True:
                try:
                    item = self.frames.get()
                except Closed:
                    return
                if isinstance(item, Frame):
                    t = time.perf_counter()
                    if depth > 1 and submit is not None:
                        result = submit(item.image)
                    else:
                        dets = self.detector.detect(item.image)
                        result = lambda dets=dets: dets  # noqa: E731
                    pending.append((item, result, (time.perf_counter() - t) * 1000))
                    if len(pending) >= depth and not finish_oldest():
                        return
                    continue
                while pending:  # a control item: everything before it leaves first
                    if not finish_oldest():
                        return
                self.detected.put(item, control=True)
                if isinstance(item, EndOfStream):
                    return
        except BaseException as exc:
            self.detected.put(EndOfStream(exc), control=True)

    # -- overlay + sinks (main thread) ----------------------------------------------------
    def _emit(self, item: Detected) -> None:
        frame, dets = item.frame, item.detections
        t = time.perf_counter()
        info = PanelInfo(
            fps=self.fps_meter.value,
            latency_ms=self.stats.latency.mean
            if self.source.info.live and self.stats.latency.count
            else None,
            extra=[f"dropped {self.frames.dropped}"] if self.frames.dropped else [],
        )
        annotated = self.renderer.annotate(frame.image, dets, info)
        events: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        if self.analytics is not None:
            events, extra = self.analytics.update(frame, dets)
            self.analytics.draw(annotated)
        t2 = time.perf_counter()
        self.stats.stages["overlay"].add((t2 - t) * 1000)
        latency = (time.monotonic() - frame.capture_time) * 1000
        result = FrameResult(
            frame=frame, detections=dets, annotated=annotated, latency_ms=latency, extra=extra
        )
        with _signals_held():  # a Ctrl-C here would leave one sink a frame ahead of another
            for sink in self.sinks:
                sink.write(result)
            self.stats.frames_processed += 1
        self._events(events)
        self.stats.stages["write"].add((time.perf_counter() - t2) * 1000)
        self.stats.latency.add(latency)
        if self.stats.first_frame_seconds is None:
            self.stats.first_frame_seconds = time.monotonic() - self.started_at
        for name, n in dets.counts().items():
            self.stats.detections_per_class[name] += n
        self.fps_meter.tick()
        if self.window is not None:
            self.window.write(result)

    def _events(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            for sink in self.sinks:
                sink.event(record)

    def run(self) -> RunStats:
        t0 = time.monotonic()
        self.reader.start()
        self._infer_thread.start()
        try:
            while True:
                item = self.detected.get()
                if isinstance(item, EndOfStream):
                    if item.error is not None:
                        raise item.error
                    if self.analytics is not None:
                        self._events(self.analytics.finish())
                    break
                if isinstance(item, StreamEvent):
                    self._events([item.record])
                    continue
                self._emit(item)
                if self.progress is not None:
                    self.progress.update(self.stats.frames_processed, self.fps_meter.value or 0.0)
                if self.max_frames is not None and self.stats.frames_processed >= self.max_frames:
                    break
                if self.window is not None and self.window.quit_requested:
                    log.info("quit requested from the window")
                    break
        finally:
            self.stats.wall_seconds = time.monotonic() - t0
            self._shutdown()
        return self.stats

    def _shutdown(self) -> None:
        """Stop every stage and close every output, whatever happened. A second Ctrl-C forces exit."""
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:  # a second Ctrl-C or SIGTERM during shutdown exits at once
            old = {sig: signal.signal(sig, _force_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.stop_event.set()
            self.reader.stop()
            self.detected.drain()
            self._infer_thread.join(5.0)
            self.frames.drain()
            self.stats.frames_dropped = self.frames.dropped + self.detected.dropped
            self.stats.frames_corrupt = self.source.corrupt
            if self.progress is not None:
                self.progress.close()
            errors: list[BaseException] = []
            closers: list[Any] = [*self.sinks, *([self.window] if self.window else []), self.source]
            for closer in closers:
                try:
                    closer.close()
                except BaseException as exc:
                    log.error("closing %s failed: %s", type(closer).__name__, exc)
                    errors.append(exc)
            if errors:
                raise errors[0]
        finally:
            if in_main:
                for sig, handler in old.items():
                    signal.signal(sig, handler)
