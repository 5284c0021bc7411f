"""The inference loop: one thread that owns the model and serves every lane.

It takes frames round-robin from the lanes that have one waiting (so no live source starves and
each drops only its own oldest frames), keeps up to ``detector.max_in_flight`` of them in flight,
and hands the results on in order per lane (the model's in submit order), so each lane's frames
stay in order. Control items (a reconnect gap, the end of a source) travel in the same queue, behind
the lane's earlier frames.
It sleeps on one ``bell``: set when any lane gets a frame and when a result becomes ready.

A lane with a ``gate`` (motion, ``--detect-fps``) decides here, frame by frame and in order, whether
the model runs (``Gate.admit``). A frame that skips it takes no model slot: it waits only for the
lane's earlier frames (not for other lanes' inference) and leaves with the lane's latest detections
(``Gate.held``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from detector.backends.base import Detector, Pending
from detector.pipeline.capture import EndOfStream, Item, StreamEvent
from detector.pipeline.channel import Channel, Empty
from detector.pipeline.lane import Lane
from detector.types import Detections, Frame, Inference


@dataclass(frozen=True)
class Detected:
    """A frame with its raw detections, on its way to the lane's stages."""

    frame: Frame
    detections: Detections


@dataclass(frozen=True)
class Fatal:
    """The inference thread failed: the whole run ends with ``error``."""

    error: BaseException


Routed = tuple[Lane | None, Detected | StreamEvent | EndOfStream | Fatal]


@dataclass
class _Job:
    lane: Lane
    item: Item
    pending: Pending | None = None
    submit_ms: float = 0.0


class InferenceLoop:
    def __init__(
        self,
        lanes: Sequence[Lane],
        detector: Detector,
        results: Channel[Routed],
        halt: threading.Event,
        bell: threading.Event,
    ) -> None:
        self.lanes = list(lanes)
        self.detector = detector
        self.results = results
        self.halt = halt
        self.bell = bell
        self.depth = max(1, detector.max_in_flight)
        self.batch = max(1, detector.max_batch)
        self.most_pending = self.depth + 2 * len(self.lanes)  # frames that skip the model queue too
        self._turn = 0
        self.thread = threading.Thread(target=self.run, name="inference", daemon=True)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # handed to the main thread, which ends the run with it
            self.results.put((None, Fatal(exc)), control=True)

    def _next(self, open_lanes: set[Lane]) -> tuple[Lane, Item] | None:
        """The next waiting item, taking lanes in turn."""
        n = len(self.lanes)
        for k in range(n):
            lane = self.lanes[(self._turn + k) % n]
            if lane not in open_lanes:
                continue
            try:
                item = lane.frames.get_nowait()
            except Empty:
                continue
            self._turn = (self._turn + k + 1) % n
            return lane, item
        return None

    def _take(self, open_lanes: set[Lane]) -> list[tuple[Lane, Item]]:
        """The next item, or up to ``batch`` frames for the model (a control item ends the batch;
        frames that skip the model come along without counting)."""
        taken: list[tuple[Lane, Item]] = []
        wanted = 0
        while wanted < self.batch and (got := self._next(open_lanes)) is not None:
            lane, item = got
            if isinstance(item, Frame) and lane.gate is not None:
                item = lane.gate.admit(item)
            elif isinstance(item, StreamEvent) and lane.gate is not None:
                lane.gate.restart()  # a reconnect: the first frame after it goes to the model
            taken.append((lane, item))
            if not isinstance(item, Frame):
                break
            wanted += item.inference is Inference.RAN
        return taken

    def _submit(self, taken: list[tuple[Lane, Item]], open_lanes: set[Lane]) -> list[_Job]:
        """Start inference on the frames taken for the model (one batch, or one frame in flight); the
        jobs keep the order taken."""
        frames = [item for _, item in taken if isinstance(item, Frame) and item.inference is Inference.RAN]
        pendings: list[Pending] = []
        each = 0.0
        if frames:
            t = time.perf_counter()
            if len(frames) == 1:
                pendings = [self.detector.submit(frames[0].image, on_ready=self.bell.set)]
            else:
                pendings = self.detector.submit_batch([item.image for item in frames])
            each = (time.perf_counter() - t) * 1000 / len(frames)
        results = iter(pendings)
        jobs: list[_Job] = []
        for lane, item in taken:
            if isinstance(item, Frame) and item.inference is Inference.RAN:
                jobs.append(_Job(lane, item, next(results), each))
                continue
            if isinstance(item, EndOfStream):
                open_lanes.discard(lane)
            jobs.append(_Job(lane, item))
        return jobs

    def _loop(self) -> None:
        pending: deque[_Job] = deque()
        try:
            self._serve(pending)
        finally:  # never leave a request running: its completion would call back into a dying process
            for job in pending:
                if job.pending is not None:
                    with contextlib.suppress(Exception):  # the run is ending anyway
                        job.pending.result()

    def _serve(self, pending: deque[_Job]) -> None:
        open_lanes = set(self.lanes)
        head_since = time.perf_counter()  # when the oldest model job started waiting at the head
        while open_lanes or pending:
            if self.halt.is_set():
                return
            self.bell.clear()
            leaving = self._leaving(pending)
            for job in leaving:
                pending.remove(job)
                if not self._deliver(job, head_since):
                    return
                if job.pending is not None:
                    head_since = time.perf_counter()
            in_flight = sum(job.pending is not None for job in pending)
            room = in_flight < self.depth and len(pending) < self.most_pending
            if room and (taken := self._take(open_lanes)):
                if not in_flight:
                    head_since = time.perf_counter()
                pending.extend(self._submit(taken, open_lanes))
                continue
            if not leaving:
                self.bell.wait(0.1)

    @staticmethod
    def _leaving(pending: deque[_Job]) -> list[_Job]:
        """The jobs that can be handed on now, in order: each lane's items keep their order, and the
        model's results are collected in submit order (a request is reused ``depth`` submits later).
        So a frame that skipped the model waits only for its own lane's earlier frames."""
        out: list[_Job] = []
        waiting: set[Lane] = set()
        model_waits = False
        for job in pending:
            if job.lane in waiting:
                continue
            if job.pending is not None and (model_waits or not job.pending.ready()):
                waiting.add(job.lane)
                model_waits = True
                continue
            out.append(job)
        return out

    def _deliver(self, job: _Job, head_since: float) -> bool:
        gate = job.lane.gate
        if job.pending is None:
            if isinstance(job.item, Frame):  # it skipped the model: the lane's latest detections stand
                held = gate.held if gate is not None else None
                detections = held[:] if held is not None else Detections.empty(self.detector.names)
                return self.results.put((job.lane, Detected(job.item, detections)))
            return self.results.put((job.lane, job.item), control=True)
        detections = job.pending.result()
        assert isinstance(job.item, Frame)
        if gate is not None:
            gate.held = detections
        spent = job.submit_ms + (time.perf_counter() - head_since) * 1000  # this thread's time for it
        job.lane.stats.stages["inference"].add(spent)
        return self.results.put((job.lane, Detected(job.item, detections)))
