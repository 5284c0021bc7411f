"""Counting line: tracked objects crossing a segment, per direction and class.

Rules (see ``detector.stages.geometry`` for coordinates and anchors):

* Only tracked detections count (``tracker_id`` set); untracked ones are ignored.
* Side: the sign of the cross product of ``end - start`` and ``anchor - start``.
  Direction ``in`` means crossing from the left-hand side to the right-hand side of
  someone walking from ``start`` to ``end`` *as seen on screen* (image y points down).
  For a horizontal line drawn left to right, ``in`` is moving down the screen; swap
  ``start`` and ``end`` to swap ``in`` and ``out``.
* Hysteresis: a side is only taken when the anchor is more than ``hysteresis_px``
  from the line, so an anchor jittering on the line never counts. A crossing is the
  anchor moving from beyond the band on one side to beyond it on the other, with the
  crossing point inside the segment (not on its extension).
* Each track counts at most once per line: its first crossing, in that crossing's
  direction. Wobbling back and forth afterwards changes nothing.
* A track is forgotten when it ends (``stages.track.TrackBook``), so memory stays flat on endless
  streams; ids are never reused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from detector.drawing import draw_label, style_of
from detector.errors import UserError
from detector.events import EventRecord, LineCross
from detector.settings.analytics import LineSpec
from detector.stages.base import Layer, StageResult
from detector.stages.counting import CountingStage, ShapeCounter
from detector.stages.geometry import resolve_points
from detector.stages.track import TrackBook
from detector.types import Detections, Frame, Image

log = logging.getLogger(__name__)

DIRECTIONS = ("in", "out")


@dataclass
class _Track:
    side: int = 0  # -1 left, +1 right, 0 not yet beyond the band
    point: npt.NDArray[np.float64] | None = None  # last anchor beyond the band
    dist: float = 0.0  # its signed distance
    counted: bool = False


class LineCounter(ShapeCounter[LineSpec, _Track]):
    """Counts crossings of one line; ``update`` once per processed frame, in order.

    ``frame_size`` is ``(width, height)`` of the source frames; ``book`` says when tracks end.
    """

    noun = "line"
    kinds = DIRECTIONS

    def __init__(
        self,
        spec: LineSpec,
        frame_size: tuple[int, int],
        class_ids: Sequence[int] | None = None,
        hysteresis_px: float | None = None,
        book: TrackBook | None = None,
    ) -> None:
        super().__init__(spec, frame_size, class_ids, hysteresis_px, book)
        self.start, self.end = resolve_points([spec.start, spec.end], frame_size)
        self.vector = self.end - self.start
        self.length = float(math.hypot(*self.vector))
        if self.length < 1.0:
            raise UserError(f"line '{spec.name}' is shorter than one pixel on a {frame_size} frame")

    @property
    def totals(self) -> dict[str, int]:
        """Crossings per direction, all classes together."""
        return {d: sum(self.counts[d].values()) for d in DIRECTIONS}

    def signed_distance(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Pixels from the (infinite) line; positive on the right-hand ("in") side."""
        rel = points - self.start
        return (self.vector[0] * rel[:, 1] - self.vector[1] * rel[:, 0]) / self.length

    def update(self, detections: Detections, frame_index: int, pts: float) -> list[EventRecord]:
        """Feed one frame; return the crossing events it completed (usually none)."""
        events: list[EventRecord] = []
        if detections.tracker_id is not None and len(detections):
            keep, anchors = self.candidates(detections)
            dists = self.signed_distance(anchors)
            for k, i in enumerate(keep.tolist()):
                tid = int(detections.tracker_id[i])
                track = self._tracks.setdefault(tid, _Track())
                d = float(dists[k])
                if not math.isfinite(d) or abs(d) <= self.hysteresis:
                    continue
                side = 1 if d > 0 else -1
                crossed = track.side and side != track.side and not track.counted
                if crossed and self._within_segment(track.point, track.dist, anchors[k], d):
                    track.counted = True
                    events.append(self._count(tid, detections, i, side, frame_index, pts))
                track.side, track.point, track.dist = side, anchors[k], d
        self.forget_ended()
        return events

    def _within_segment(
        self, p0: npt.NDArray[np.float64] | None, d0: float, p1: npt.NDArray[np.float64], d1: float
    ) -> bool:
        """Does the path p0 -> p1 (on opposite sides) meet the line between start and end?"""
        if p0 is None:
            return False
        hit = p0 + (p1 - p0) * (d0 / (d0 - d1))
        u = float(np.dot(hit - self.start, self.vector)) / (self.length * self.length)
        return 0.0 <= u <= 1.0

    def _count(
        self, tid: int, detections: Detections, i: int, side: int, frame_index: int, pts: float
    ) -> EventRecord:
        direction = "in" if side > 0 else "out"
        cls = detections.class_name(int(detections.class_id[i]))
        self.tally(direction, cls)
        log.debug(
            "line %s: track %d (%s) crossed %s at frame %d", self.name, tid, cls, direction, frame_index
        )
        where = self.where(tid, cls, detections.confidence[i], detections.xyxy[i], frame_index, pts)
        return LineCross(direction=direction, **where)

    def summary(self) -> dict[str, Any]:
        """Counts for the report: per direction and class, plus totals."""
        return {**self.tallies(), "total": self.totals}


def _px(point: npt.NDArray[np.float64]) -> tuple[int, int]:
    x, y = np.rint(np.clip(point, -1e6, 1e6)).astype(np.int64).tolist()
    return int(x), int(y)


class LineAnnotator:
    """Draws a line, an arrow pointing to its ``in`` side, and ``name  in N  out M`` on it."""

    def annotate(self, scene: Image, counter: LineCounter) -> Image:
        """Draws on ``scene`` in place and returns it (coordinates of the counter's frame size)."""
        lw = style_of(scene).line_width
        color = counter.color
        p0, p1 = _px(counter.start), _px(counter.end)
        cv2.line(scene, p0, p1, color, lw, cv2.LINE_AA)
        for p in (p0, p1):
            cv2.circle(scene, p, lw + 2, color, cv2.FILLED, cv2.LINE_AA)
        # Arrow at a quarter of the way along, perpendicular, towards the "in" (right-hand) side.
        unit = counter.vector / counter.length
        normal = np.array([-unit[1], unit[0]])  # right-hand side in image coordinates
        base = counter.start + 0.25 * counter.vector
        size = max(12.0, 0.04 * (scene.shape[0] + scene.shape[1]) / 2)
        tip = base + normal * size
        cv2.arrowedLine(scene, _px(base), _px(tip), color, max(1, lw - 1), cv2.LINE_AA, tipLength=0.35)
        totals = counter.totals
        mid = (counter.start + counter.end) / 2
        draw_label(scene, f"{counter.name}  in {totals['in']}  out {totals['out']}", (mid[0], mid[1]), color)
        return scene


class LinesStage(CountingStage[LineSpec, LineCounter]):
    """Every counting line of a source: ``line_cross`` events, drawn lines, totals in the report."""

    name = "lines"
    layer = Layer.LINES

    def __init__(
        self,
        specs: Sequence[LineSpec],
        frame_size: tuple[int, int],
        names: Mapping[int, str],
        book: TrackBook | None = None,
    ) -> None:
        super().__init__(self.build(LineCounter, specs, frame_size, names, book), LineAnnotator())

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        return StageResult(detections, self.count(frame, detections))
