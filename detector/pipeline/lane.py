"""A lane: one source and everything downstream of it — its stages, sinks, stats and progress.

The pipeline feeds each lane its detected frames, in order, on the main thread. ``emit`` runs the
stages (every ``update`` in order, then every drawing stage's ``annotate`` by layer) and hands the
result to the sinks: a frame reaches all of its lane's sinks or none. Then the events the stages made
are finished here, before any sink sees one: stamped (id, source name, wall time), then given their
clip and snapshot by the ``attachers`` (the clip recorder), and the one finished record goes to every
sink. The lane's ``reviewer`` (``detector.reviews``) sees each frame after its sinks and each stamped
record before the attachers, and makes the review items. ``end`` closes the lane.

A sink whose write fails for want of storage raises ``StorageError`` (once): the lane catches it per
sink, so the frame and the events still reach the others, then reports it (``on_storage``: the run's
storage status, which has retention run at once) and sends a ``storage_full`` event to every sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from detector.errors import StorageError
from detector.events import Attacher, EventRecord, StorageFull, stamp
from detector.pipeline.capture import FrameReader, Item
from detector.pipeline.channel import Channel
from detector.pipeline.gate import Gate
from detector.progress import Progress
from detector.sources.base import Source
from detector.stages.base import Stage
from detector.stats import RunStats
from detector.storage.disk import free_bytes
from detector.types import Detections, Frame, FrameFacts, FrameResult, Sink

if TYPE_CHECKING:  # made only when someone listens to review items
    from detector.reviews import Reviewer

log = logging.getLogger(__name__)


class Lane:
    def __init__(
        self,
        source: Source,
        stages: Sequence[Stage] = (),
        sinks: Sequence[Sink] = (),
        *,
        name: str | None = None,
        stats: RunStats | None = None,
        progress: Progress | None = None,
        attachers: Sequence[Attacher] = (),
        reviewer: Reviewer | None = None,
        gate: Gate | None = None,
        on_storage: Callable[[str, StorageError], None] | None = None,
    ) -> None:
        self.source = source
        self.stages = list(stages)
        self.drawers = sorted((s for s in self.stages if s.layer is not None), key=lambda s: s.layer or 0)
        self.sinks = list(sinks)
        self.name = name or source.info.name
        self.stats = stats or RunStats(source=source.info.name)
        self.progress = progress
        self.attachers = list(attachers)
        self.reviewer = reviewer
        self.gate = gate  # whether the model runs on a frame (motion, --detect-fps); None: always
        self.on_storage = on_storage
        self.storage_errors: list[StorageError] = []  # outputs cut short by a full disk
        self.stop = threading.Event()  # ends this lane's capture
        self.error: BaseException | None = None
        self.closed = False
        self.started_at = time.monotonic()
        self.frames: Channel[Item]  # set by the pipeline, with its queue policy
        self.reader: FrameReader | None = None  # set by the pipeline

    @property
    def live(self) -> bool:
        return self.source.info.live

    def emit(self, frame: Frame, detections: Detections) -> None:
        """Run the stages on one frame and write it to every sink."""
        t = time.perf_counter()
        self.stats.frames_dropped = self.frames.dropped  # for the panel
        events: list[EventRecord] = []
        facts = FrameFacts()
        for stage in self.stages:
            result = stage.update(frame, detections)
            detections = result.detections
            events.extend(result.events)
            if result.facts is not None:
                facts.update(result.facts)
        annotated = frame.image
        if self.drawers:
            annotated = frame.image.copy()
            for stage in self.drawers:
                annotated = stage.annotate(annotated, detections)
        t2 = time.perf_counter()
        self.stats.stages["stages"].add((t2 - t) * 1000)
        latency = (time.monotonic() - frame.capture_time) * 1000
        out = FrameResult(frame, detections, annotated, latency, facts, source=self.name)
        full: list[StorageError] = []
        for sink in self.sinks:
            try:
                sink.write(out)
            except StorageError as exc:  # that output stopped (or paused); the others go on
                full += exc.all()
        self.stats.count_frame(detections.counts(), latency, self.started_at, frame.inference)
        if self.reviewer is not None or events:
            wall = self._wall_time(frame)
            if self.reviewer is not None:
                self.reviewer.frame(out, wall)
            if events:
                self.send(events, wall)
        if full:
            self.storage_full(full, frame)
        self.stats.stages["write"].add((time.perf_counter() - t2) * 1000)
        if self.progress is not None:
            self.progress.update(self.stats.frames_processed, self.stats.fps_meter.value or 0.0)

    def _wall_time(self, frame: Frame) -> float:
        """When the frame happened, as Unix time: captured (live sources), or processed (files)."""
        now = time.time()
        return now - (time.monotonic() - frame.capture_time) if self.live else now

    def send(self, events: Sequence[EventRecord], wall_time: float | None = None) -> None:
        """Event records (gaps, line crossings...), finished, to every sink, after the frame that
        completed them. ``wall_time``: Unix time of that frame (default: now)."""
        when = time.time() if wall_time is None else wall_time
        full: list[StorageError] = []
        for draft in events:
            record = stamp(draft, self.name, when)
            if self.reviewer is not None:
                self.reviewer.event(record, when)
            for attacher in self.attachers:
                record = attacher.attach(record)
            for sink in self.sinks:
                try:
                    sink.event(record)
                except StorageError as exc:
                    full += exc.all()
        if full:
            self.storage_full(full)

    def storage_full(self, errors: Sequence[StorageError], frame: Frame | None = None) -> None:
        """Outputs hit a full disk: log and report each, and tell every sink (a ``storage_full``)."""
        records = []
        for exc in errors:
            self._storage_failed(exc)
            records.append(
                StorageFull(
                    output=str(exc.path),
                    error=exc.reason,
                    free_bytes=None if exc.path is None else free_bytes(exc.path),
                    frame=None if frame is None else frame.index,
                    pts=None if frame is None else round(frame.pts, 3),
                )
            )
        self.send(records)

    def _storage_failed(self, exc: StorageError) -> None:
        log.error("%s: %s", self.name, exc)
        self.storage_errors.append(exc)
        if self.on_storage is not None:
            self.on_storage(self.name, exc)

    def end(self, error: BaseException | None = None) -> None:
        """The source ended (or failed, or the run stops): open events are closed, outputs finalized."""
        if self.closed:
            return
        if error is None:
            try:
                self.send([event for stage in self.stages for event in stage.finish()])
            except Exception as exc:  # a sink that cannot take them: still close everything
                error = exc
        if self.reviewer is not None:
            self.reviewer.finish()  # the open review item ends (and its clip with it)
        self.error = self.error or error
        self.close()

    def stop_capture(self) -> None:
        """Stop this lane's capture thread (drain, join with a timeout) before its source is closed."""
        self.stop.set()
        if self.reader is not None:
            self.reader.stop()

    def close(self) -> None:
        """Close the sinks, the progress bar and the source; the first failure becomes ``error``.

        The source is closed only once its capture thread has ended (a decoder closed under a
        running thread crashes); one stuck in FFmpeg past the timeout keeps its source open."""
        if self.closed:
            return
        self.closed = True
        if self.progress is not None:
            self.progress.close()
        self.stop_capture()
        capturing = self.reader is not None and self.reader.alive
        closers: list[Sink | Source] = [*self.sinks, *([] if capturing else [self.source])]
        for closer in closers:
            try:
                closer.close()
            except StorageError as exc:  # what it had is kept; the run ends incomplete
                for each in exc.all():
                    self._storage_failed(each)
            except Exception as exc:
                log.error("%s: closing %s failed: %s", self.name, type(closer).__name__, exc)
                self.error = self.error or exc
