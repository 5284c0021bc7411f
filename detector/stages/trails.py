"""Motion trails: the last N box centres of each track, drawn as a fading polyline."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from detector.drawing import Color, class_color, style_of
from detector.stages.base import Layer, Stage, StageResult
from detector.stages.track import TrackBook
from detector.types import Detections, Frame, Image

log = logging.getLogger(__name__)

_BUCKETS = 3  # age groups drawn with their own opacity and width: oldest faintest and thinnest


@dataclass
class _Trail:
    points: deque[tuple[int, int]]
    color: Color
    visible: bool = field(default=True)


class TrailsStage(Stage):
    """Keeps the last ``length`` centre points per track id and draws them.

    A trail is dropped when its track ends (``book``, see ``stages.track``), so memory is
    bounded by the tracks of the last few seconds. Only tracks present in the latest
    ``update`` are drawn; one that reappears before its track ends continues its trail.
    Untracked detections have no trail.
    """

    name = "trails"
    layer = Layer.TRAILS

    def __init__(self, length: int = 30, book: TrackBook | None = None) -> None:
        if length < 2:
            raise ValueError(f"trail length must be >= 2, got {length}")
        self.length = length
        self.book = book
        self._trails: dict[int, _Trail] = {}

    def __len__(self) -> int:
        """Tracks currently remembered."""
        return len(self._trails)

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        self.remember(detections)
        return StageResult(detections)

    def annotate(self, scene: Image, detections: Detections) -> Image:
        return self.draw(scene)

    def remember(self, detections: Detections) -> None:
        for old in self._trails.values():
            old.visible = False
        if detections.tracker_id is not None and len(detections):
            xyxy = np.nan_to_num(detections.xyxy.astype(np.float64)).clip(-1e6, 1e6)
            cx = np.rint((xyxy[:, 0] + xyxy[:, 2]) / 2).astype(np.int64).tolist()
            cy = np.rint((xyxy[:, 1] + xyxy[:, 3]) / 2).astype(np.int64).tolist()
            for i, tid in enumerate(detections.tracker_id.tolist()):
                color = class_color(int(detections.class_id[i]))
                trail = self._trails.get(tid)
                if trail is None:
                    trail = self._trails[tid] = _Trail(deque(maxlen=self.length), color)
                trail.points.append((cx[i], cy[i]))
                trail.color, trail.visible = color, True
        for tid in self.book.ended if self.book is not None else ():
            self._trails.pop(tid, None)

    def draw(self, image: Image) -> Image:
        """Draw the visible trails on ``image`` in place and return it.

        Segments are split into ``_BUCKETS`` age groups; each group is drawn on a copy
        of the trails' bounding rectangle and blended with its own opacity (newest
        opaque), so the cost is a few blends of that rectangle, not of the frame.
        """
        trails = [t for t in self._trails.values() if t.visible and len(t.points) >= 2]
        if not trails:
            return image
        h, w = image.shape[:2]
        lw = style_of(image).line_width
        allpts = np.array([p for t in trails for p in t.points], dtype=np.int64)
        pad = lw + 2
        x0, y0 = (max(0, int(v) - pad) for v in allpts.min(axis=0))
        x1, y1 = (int(v) + pad + 1 for v in allpts.max(axis=0))
        x1, y1 = min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            return image
        roi = image[y0:y1, x0:x1]
        offset = np.array([x0, y0], dtype=np.int64)
        for b in range(_BUCKETS):
            layer = roi if b == _BUCKETS - 1 else roi.copy()
            width = max(1, round(lw * (b + 1) / _BUCKETS))
            drew = False
            for trail in trails:
                pts = np.array(trail.points, dtype=np.int64) - offset
                n = len(pts) - 1  # segments
                lo, hi = (n * b) // _BUCKETS, (n * (b + 1)) // _BUCKETS
                if hi > lo:
                    seg = pts[lo : hi + 1].astype(np.int32).reshape(-1, 1, 2)
                    cv2.polylines(layer, [seg], False, trail.color, width, cv2.LINE_AA)
                    drew = True
            if drew and layer is not roi:
                alpha = (b + 1) / _BUCKETS
                cv2.addWeighted(layer, alpha, roi, 1.0 - alpha, 0.0, dst=roi)
        return image
