"""The pipelined loop: capture threads -> one inference thread -> stages and sinks on the main thread.

    source 1 -> capture thread -> frames ─┐
    source 2 -> capture thread -> frames ─┼-> inference thread (owns the model) -> results
    ...                                    ┘        -> main thread: lane.emit: stages -> sinks

Threads are joined by bounded ``Channel``s. Files block (backpressure, never a dropped frame);
live sources keep only their newest frame, so latency cannot build up. A lane whose source ends or
fails is closed at once, while the others go on; the run ends when every lane has ended, when a
``stop`` event is set (Ctrl-C, the window's q) or when the model fails. Nothing hangs on an
error: every thread is stopped with an event, its queue drained, and joined with a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from detector.backends.base import Detector
from detector.pipeline.capture import EndOfStream, FrameReader, Item, StreamEvent
from detector.pipeline.channel import Channel
from detector.pipeline.inference import Detected, Fatal, InferenceLoop, Routed
from detector.pipeline.lane import Lane
from detector.signals import interrupts
from detector.sources.base import Source
from detector.stages.base import Stage
from detector.stats import RunStats
from detector.types import Sink

log = logging.getLogger(__name__)
LIVE_GATED_DEPTH = 2  # frames a gated live lane keeps waiting (an ungated one: the newest only)


@dataclass
class PipelineOptions:
    max_frames: int | None = None  # per source: processed frames
    vid_stride: int = 1
    queue_size: int = 4  # frames buffered per file source
    reconnect_max: int = 5
    started_at: float | None = None  # for "first frame after" (default: when run() starts)
    stop: Sequence[threading.Event] = field(default_factory=tuple)  # any set: end at a frame boundary


class Pipeline:
    """Runs one or more lanes (a source each) through one detector; ``run()`` returns their stats."""

    def __init__(
        self, lanes: Lane | Sequence[Lane], detector: Detector, options: PipelineOptions | None = None
    ):
        self.lanes = [lanes] if isinstance(lanes, Lane) else list(lanes)
        if not self.lanes:
            raise ValueError("a pipeline needs at least one lane")
        self.detector = detector
        self.options = options or PipelineOptions()
        self.halt = threading.Event()  # every thread of this pipeline stops
        bell = threading.Event()
        opts = self.options
        self._readers: list[FrameReader] = []
        for lane in self.lanes:
            lane.stats.backend = detector.backend
            live = lane.live
            # Live: keep only the newest frame; a gated lane the newest two: most of its frames skip the
            # model and leave at once, but model runs on several lanes at once can hold the inference
            # loop for a frame's time (12 quiet cameras: 92-95% of frames analysed with one, 96-97% with
            # two, p95 latency 150 -> 220 ms). Files: block, never drop.
            watch = lane.gate if lane.gate is not None and lane.gate.watches_motion else None
            depth = LIVE_GATED_DEPTH if lane.gate is not None else 1
            lane.frames = Channel(
                depth if live else opts.queue_size, keep_latest=live, stop=lane.stop, bell=bell,
                merge=None if watch is None else watch.carry,
            )  # fmt: skip
            lane.reader = reader = FrameReader(
                lane.source,
                lane.frames,
                lane.stop,
                lane.stats,
                max_frames=None if live else opts.max_frames,  # live: counted where frames are processed
                vid_stride=opts.vid_stride,
                reconnect_max=opts.reconnect_max,
                look=None if watch is None else watch.look,
            )
            self._readers.append(reader)
        self.results: Channel[Routed] = Channel(2 * len(self.lanes), keep_latest=False, stop=self.halt)
        self.inference = InferenceLoop(self.lanes, detector, self.results, self.halt, bell)

    @classmethod
    def single(
        cls,
        source: Source,
        detector: Detector,
        stages: Sequence[Stage] = (),
        sinks: Sequence[Sink] = (),
        options: PipelineOptions | None = None,
    ) -> Pipeline:
        """One source: ``Pipeline.single(source, detector, stages, sinks)``."""
        return cls(Lane(source, stages, sinks), detector, options)

    @property
    def stats(self) -> RunStats:
        """The first (for one source: the) lane's stats."""
        return self.lanes[0].stats

    def _stopping(self) -> bool:
        return any(e.is_set() for e in self.options.stop)

    def run(self) -> list[RunStats]:
        """Process until every lane has ended. With one source its failure is raised; with several,
        a failed source leaves its error in ``lane.error`` and the others go on."""
        t0 = time.monotonic()
        started_at = self.options.started_at if self.options.started_at is not None else t0
        for lane, reader in zip(self.lanes, self._readers, strict=True):
            lane.started_at = started_at
            reader.start()
        self.inference.thread.start()
        clean = False
        try:
            while not all(lane.closed for lane in self.lanes) and not self._stopping():
                try:
                    target, item = self.results.get(timeout=0.1)
                except TimeoutError:
                    continue
                if isinstance(item, Fatal):
                    raise item.error
                assert target is not None
                if not target.closed:
                    self._handle(target, item)
                    if target.closed:  # its own active time: a source that ended early is not
                        target.stats.wall_seconds = time.monotonic() - t0  # timed over the others
            clean = True
        finally:
            for lane in self.lanes:
                if not lane.closed:
                    lane.stats.wall_seconds = time.monotonic() - t0
            self._shutdown(clean)
        if len(self.lanes) == 1 and self.lanes[0].error is not None:
            raise self.lanes[0].error
        return [lane.stats for lane in self.lanes]

    def _handle(self, lane: Lane, item: Detected | StreamEvent | EndOfStream) -> None:
        try:
            if isinstance(item, EndOfStream):
                lane.end(item.error)
            elif isinstance(item, StreamEvent):
                lane.send([item.record])
            else:
                with interrupts().frame():  # a first Ctrl-C waits for this frame, FRAME_GRACE_S at most
                    lane.emit(item.frame, item.detections)
                limit = self.options.max_frames
                if limit is not None and lane.stats.frames_processed >= limit:
                    lane.end()
        except Exception as exc:  # this lane fails; the others go on
            if len(self.lanes) > 1:
                log.error("%s failed: %s", lane.name, exc)
            lane.end(exc)

    def _shutdown(self, clean: bool) -> None:
        """Stop every thread and close every lane, whatever happened."""
        self.halt.set()
        for lane in self.lanes:
            lane.stop.set()
        for lane in self.lanes:
            lane.stop_capture()
        self.results.drain()
        self.inference.thread.join(5.0)
        if self.inference.thread.is_alive():  # pragma: no cover - a backend stuck in a native call
            log.warning("inference thread did not stop within 5 s")
        for lane in self.lanes:
            lane.frames.drain()
            lane.stats.frames_dropped = lane.frames.dropped
            lane.stats.frames_corrupt = lane.source.corrupt
            if clean:
                lane.end()
            else:
                lane.close()


__all__ = ["Item", "Lane", "Pipeline", "PipelineOptions"]
