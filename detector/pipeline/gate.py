"""The gate of one source: does the model run on this frame?

Two rules, each optional (``gate_for`` builds a gate only when one is on):

* **motion** (``motion.enabled``; auto = live sources): the capture thread runs the cheap motion check
  (``detector.motion``) on every frame it forwards (``look``), so the background keeps up with the
  scene even on frames a live queue later drops. A frame where nothing moved skips the model, except
  that the model runs at least every ``motion.recheck`` seconds, so that a tracked object that was
  taken away without a visible move (or a change the check missed) still shows. Motion is not lost
  on the way: a live frame the queue drops hands its motion boxes to the frame that replaced it
  (``carry``), and motion on a frame the rate holds back makes the next frame it allows run;
* **rate** (``detect_fps``): the model runs at most N times a second of the source's time; frames
  in between skip it.

``admit`` (the inference thread, in frame order) marks each frame with ``Frame.inference``: RAN,
NO_MOTION (the last detections stand and tracks hold still) or BETWEEN (tracks move on by
prediction). Times are the frames' ``pts``, so a file gives the same result on every run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from detector.pipeline.capture import Item
from detector.settings import Settings
from detector.settings.motion import MotionSettings
from detector.stats import RunStats, StageTimer
from detector.types import Detections, Frame, Inference

if TYPE_CHECKING:
    from detector.motion import MotionDetector

log = logging.getLogger(__name__)


class Gate:
    """Per source: the motion check (capture thread) and the decision (inference thread).

    ``motion``: the motion settings when motion gating is on, else None; ``detect_fps``: the most
    model runs per second, or None. ``held`` is the latest detections the model gave for this source
    (the inference thread keeps it, in frame order): what a frame that skipped the model carries."""

    def __init__(
        self,
        motion: MotionSettings | None = None,
        detect_fps: float | None = None,
        stats: RunStats | None = None,
    ) -> None:
        self.motion = motion
        self.period = 1.0 / detect_fps if detect_fps else 0.0
        self.recheck = motion.recheck if motion is not None else math.inf
        self.held: Detections | None = None
        self._detector: MotionDetector | None = None
        self._last_run: float | None = None  # pts of the last frame the model ran on
        self._next_run = -math.inf  # pts from which the rate allows the next run
        self._stirred = False  # motion since the last run, on a frame the rate held back
        self._timer: StageTimer | None = None
        if stats is not None and motion is not None:
            self._timer = stats.stages.setdefault("motion", StageTimer())

    @property
    def watches_motion(self) -> bool:
        return self.motion is not None

    # -- capture thread ---------------------------------------------------------------------------------

    def look(self, frame: Frame) -> Frame:
        """The frame with its motion boxes (``Frame.motion``); the frame joins the background."""
        if self.motion is None:
            return frame
        t = time.perf_counter()
        size = (frame.width, frame.height)
        if self._detector is None or self._detector.frame_size != size:  # first frame, or a new size
            from detector.motion import MotionDetector  # only when motion gating is on

            m = self.motion
            masks = [mask.polygon for mask in m.masks]
            self._detector = MotionDetector(size, threshold=m.threshold, min_area=m.min_area, masks=masks)
        boxes = self._detector.detect(frame.image).boxes
        if self._timer is not None:
            self._timer.add((time.perf_counter() - t) * 1000)
        return dataclasses.replace(frame, motion=boxes)

    @staticmethod
    def carry(dropped: Item, new: Item) -> Item:
        """A live queue dropped ``dropped`` for ``new`` (capture thread): ``new`` takes its motion boxes
        too, so that motion seen only on dropped frames still runs the model."""
        if not (isinstance(dropped, Frame) and isinstance(new, Frame)):
            return new
        if dropped.motion is None or not len(dropped.motion) or new.motion is None:
            return new
        boxes = np.concatenate([new.motion, dropped.motion])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return dataclasses.replace(new, motion=boxes[np.argsort(-area, kind="stable")])

    # -- inference thread -------------------------------------------------------------------------------

    def admit(self, frame: Frame) -> Frame:
        """The frame marked with whether the model runs on it (``Frame.inference``)."""
        pts = float(frame.pts)
        if self._last_run is not None and pts < self._last_run:  # time went back (a new stream)
            self.restart()
        if self.motion is not None and not self._moving(frame, pts):
            return dataclasses.replace(frame, inference=Inference.NO_MOTION)
        if self.period and pts < self._next_run - 1e-6:
            self._stirred = self.motion is not None  # moving (or a recheck): run when the rate allows
            return dataclasses.replace(frame, inference=Inference.BETWEEN)
        if self.period:
            # Keep the schedule while on time (N runs a second on average); after a pause, start anew
            # from this frame, so that no burst of runs follows it.
            late = pts - self._next_run
            self._next_run = self._next_run + self.period if late < self.period else pts + self.period
        self._last_run = pts
        self._stirred = False
        return frame

    def _moving(self, frame: Frame, pts: float) -> bool:
        moved = frame.motion is None or len(frame.motion) > 0  # unchecked: assume it moved
        due = self._last_run is None or pts - self._last_run >= self.recheck - 1e-6
        return moved or due or self._stirred

    def restart(self) -> None:
        """Forget the timing: the next frame that may run, runs (after a reconnect, say)."""
        self._last_run = None
        self._next_run = -math.inf
        self._stirred = False


def gate_for(settings: Settings, live: bool, stats: RunStats | None = None) -> Gate | None:
    """The gate of a source with these settings, or None when the model runs on every frame."""
    motion = settings.motion if settings.motion.on(live) else None
    if motion is None and not settings.detect_fps:
        return None
    return Gate(motion, settings.detect_fps, stats)
