"""Zones: polygons that count who is inside, and when tracked objects enter and leave.

Rules (see ``detector.analytics.common`` for coordinates and anchors):

* Occupancy (``occupancy()``): objects whose anchor is inside the polygon in the
  current frame, per class. Tracked objects count by their enter/exit state;
  untracked detections count too, by a plain inside test, so occupancy works
  without a tracker. Enter/exit events need a tracker.
* A tracked object *enters* when its anchor goes deeper than ``hysteresis_px``
  inside the polygon, and *exits* when it goes further than that outside, so an
  anchor jittering on the border does not flicker. One first seen inside (or on
  the border) enters at once.
* An object that vanishes while inside (left the frame, occluded, track lost) exits
  ``lost_after_s`` seconds later with ``"reason": "lost"`` and its dwell up to when
  it was last seen. ``finish()`` closes whoever is still inside at the end of the
  run (``"reason": "end"``).
* ``dwell_s`` = pts of the exit frame (or of the last sighting) - pts of the enter frame.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import Field, field_validator

from detector.analytics.common import (
    Anchor,
    Image,
    Point,
    StrictModel,
    anchor_points,
    class_mask,
    default_band,
    draw_label,
    name_color,
    per_class_text,
    resolve_points,
    split_classes,
    ui_scale,
)
from detector.errors import UserError
from detector.types import Detections

log = logging.getLogger(__name__)


class ZoneSpec(StrictModel):
    """One zone from the config (``zones:`` list)."""

    name: str = Field(min_length=1)
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    classes: list[str] | None = Field(None, description="class names to count; null = all")
    anchor: Anchor = "bottom_center"
    hysteresis: float | None = Field(
        None, ge=0, description="pixels either side of the border; null = 0.5% of the frame diagonal"
    )

    _split = field_validator("classes", mode="before")(split_classes)


@dataclass
class _Track:
    inside: bool
    class_name: str
    last_seen: float
    entered_pts: float = 0.0


def _sorted(counts: Counter[str] | dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


class ZoneCounter:
    """Occupancy and enter/exit events for one zone; ``update`` once per processed frame, in order."""

    def __init__(
        self,
        spec: ZoneSpec,
        frame_size: tuple[int, int],
        hysteresis_px: float | None = None,
        lost_after_s: float = 1.0,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.polygon = resolve_points(spec.polygon, frame_size)
        self._contour = self.polygon.astype(np.float32).reshape(-1, 1, 2)
        if abs(cv2.contourArea(self._contour)) < 1.0:
            raise UserError(f"zone '{spec.name}' has no area on a {frame_size[0]}x{frame_size[1]} frame")
        band = hysteresis_px if hysteresis_px is not None else spec.hysteresis
        self.hysteresis = float(band if band is not None else default_band(frame_size, 0.005))
        self.lost_after_s = lost_after_s
        self.color = name_color(spec.name)
        self.entered: Counter[str] = Counter()
        self.exited: Counter[str] = Counter()
        self.max_occupancy: Counter[str] = Counter()  # per class, over frames
        self.max_inside = 0  # all classes together, over frames
        self.dwell_count = 0
        self.dwell_total = 0.0
        self.dwell_max = 0.0
        self._occupancy: Counter[str] = Counter()
        self._tracks: dict[int, _Track] = {}

    def occupancy(self) -> dict[str, int]:
        """Objects inside in the last updated frame, per class (most first)."""
        return _sorted(self._occupancy)

    def distance(self, point: tuple[float, float]) -> float:
        """Signed pixels from the border: positive inside, negative outside."""
        return float(cv2.pointPolygonTest(self._contour, (float(point[0]), float(point[1])), True))

    def update(self, detections: Detections, frame_index: int, pts: float) -> list[dict[str, Any]]:
        """Feed one frame; return its enter/exit events."""
        events: list[dict[str, Any]] = []
        occupancy: Counter[str] = Counter()
        seen: set[int] = set()
        keep = np.flatnonzero(class_mask(detections, self.spec.classes))
        anchors = anchor_points(detections.xyxy[keep], self.spec.anchor)
        tids = detections.tracker_id
        for k, i in enumerate(keep.tolist()):
            cls = detections.class_name(int(detections.class_id[i]))
            d = self.distance(anchors[k])
            if tids is None:
                if d >= 0:
                    occupancy[cls] += 1
                continue
            tid = int(tids[i])
            seen.add(tid)
            track = self._tracks.get(tid)
            if track is None:
                track = self._tracks[tid] = _Track(inside=False, class_name=cls, last_seen=pts)
                if d >= 0:
                    events.append(self._enter(tid, track, cls, frame_index, pts))
            elif not track.inside and d > self.hysteresis:
                events.append(self._enter(tid, track, cls, frame_index, pts))
            elif track.inside and d < -self.hysteresis:
                events.append(self._exit(tid, track, frame_index, pts, pts))
            track.last_seen = pts
            if track.inside:
                occupancy[track.class_name] += 1
        for tid in [t for t in self._tracks if t not in seen]:
            track = self._tracks[tid]
            if abs(pts - track.last_seen) > self.lost_after_s:
                if track.inside:
                    events.append(self._exit(tid, track, frame_index, pts, track.last_seen, "lost"))
                del self._tracks[tid]
        self._occupancy = +occupancy
        for cls, n in self._occupancy.items():
            self.max_occupancy[cls] = max(self.max_occupancy[cls], n)
        self.max_inside = max(self.max_inside, sum(self._occupancy.values()))
        return events

    def finish(self, frame_index: int, pts: float) -> list[dict[str, Any]]:
        """Exit events for everyone still inside at the end of the run; forgets all tracks."""
        events = [
            self._exit(tid, t, frame_index, pts, t.last_seen, "end")
            for tid, t in self._tracks.items()
            if t.inside
        ]
        self._tracks.clear()
        return events

    def _event(self, kind: str, tid: int, cls: str, frame_index: int, pts: float) -> dict[str, Any]:
        return {
            "event": kind,
            "zone": self.name,
            "track_id": tid,
            "class_name": cls,
            "frame": int(frame_index),
            "pts": round(float(pts), 3),
        }

    def _enter(self, tid: int, track: _Track, cls: str, frame_index: int, pts: float) -> dict[str, Any]:
        track.inside, track.class_name, track.entered_pts = True, cls, pts
        self.entered[cls] += 1
        return self._event("zone_enter", tid, cls, frame_index, pts)

    def _exit(
        self, tid: int, track: _Track, frame_index: int, pts: float, left_at: float, reason: str | None = None
    ) -> dict[str, Any]:
        track.inside = False
        dwell = max(0.0, left_at - track.entered_pts)
        self.exited[track.class_name] += 1
        self.dwell_count += 1
        self.dwell_total += dwell
        self.dwell_max = max(self.dwell_max, dwell)
        event = self._event("zone_exit", tid, track.class_name, frame_index, pts)
        event["dwell_s"] = round(dwell, 3)
        if reason:
            event["reason"] = reason
        return event

    def summary(self) -> dict[str, Any]:
        """Totals for the report."""
        return {
            "entered": _sorted(self.entered),
            "exited": _sorted(self.exited),
            "max_occupancy": _sorted(self.max_occupancy),
            "max_inside": self.max_inside,
            "dwell_s": {
                "count": self.dwell_count,
                "mean": round(self.dwell_total / self.dwell_count, 3) if self.dwell_count else None,
                "max": round(self.dwell_max, 3) if self.dwell_count else None,
            },
        }


def draw_zone(image: Image, counter: ZoneCounter, alpha: float = 0.25) -> Image:
    """Tinted polygon, its outline and ``name: person 2, car 1`` (in place; returns ``image``).

    Only the polygon's bounding rectangle is blended, so a small zone costs little.
    """
    h, w = image.shape[:2]
    _, _, lw = ui_scale(image)
    pts = np.rint(counter.polygon).astype(np.int32)
    x, y, bw, bh = cv2.boundingRect(pts)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
    if x1 > x0 and y1 > y0 and alpha > 0:
        roi = image[y0:y1, x0:x1]
        tinted = roi.copy()
        cv2.fillPoly(tinted, [pts - np.array([x0, y0], np.int32)], counter.color, cv2.LINE_AA)
        cv2.addWeighted(tinted, alpha, roi, 1.0 - alpha, 0.0, dst=roi)
    cv2.polylines(image, [pts], True, counter.color, max(1, lw - 1), cv2.LINE_AA)
    label = f"{counter.name}: {per_class_text(counter.occupancy())}"
    draw_label(image, label, (x + bw / 2, y), counter.color)
    return image
