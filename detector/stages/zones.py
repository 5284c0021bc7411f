"""Zones: polygons that count who is inside, and when tracked objects enter and leave.

Rules (see ``detector.stages.geometry`` for coordinates and anchors):

* Occupancy (``occupancy()``): objects whose anchor is inside the polygon in the
  current frame, per class. Tracked objects count by their enter/exit state;
  untracked detections count too, by a plain inside test, so occupancy works
  without a tracker. Enter/exit events need a tracker.
* A tracked object *enters* when its anchor goes deeper than ``hysteresis_px``
  inside the polygon, and *exits* when it goes further than that outside, so an
  anchor jittering on the border does not flicker. One first seen inside (or on
  the border) enters at once.
* An object that vanishes while inside (left the frame, occluded) exits when its track
  ends (``stages.track.TrackBook``: the tracker gave up on it) with ``"reason": "lost"``
  and its dwell up to when it was last seen; one that comes back before that is still
  inside. ``finish()`` closes whoever is still inside at the end of the run
  (``"reason": "end"``).
* ``dwell_s`` = pts of the exit frame (or of the last sighting) - pts of the enter frame.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from detector.drawing import draw_label, style_of
from detector.errors import UserError
from detector.events import EventRecord, ZoneEnter, ZoneExit
from detector.settings.analytics import ZoneSpec
from detector.stages.base import Layer, StageResult
from detector.stages.counting import CountingStage, ShapeCounter
from detector.stages.geometry import resolve_points
from detector.stages.track import TrackBook
from detector.text import by_count, counts_text
from detector.types import Column, Detections, Frame, FrameFacts, Image

log = logging.getLogger(__name__)


@dataclass
class _Track:
    inside: bool
    class_name: str
    last_seen: float  # pts
    entered_pts: float = 0.0
    confidence: float | None = None  # at the last sighting
    xyxy: Any = None


class ZoneCounter(ShapeCounter[ZoneSpec, _Track]):
    """Occupancy and enter/exit events for one zone; ``update`` once per processed frame, in order."""

    noun = "zone"
    kinds = ("entered", "exited")
    band_fraction = 0.005

    def __init__(
        self,
        spec: ZoneSpec,
        frame_size: tuple[int, int],
        class_ids: Sequence[int] | None = None,
        hysteresis_px: float | None = None,
        book: TrackBook | None = None,
    ) -> None:
        super().__init__(spec, frame_size, class_ids, hysteresis_px, book)
        self.polygon = resolve_points(spec.polygon, frame_size)
        self._contour = self.polygon.astype(np.float32).reshape(-1, 1, 2)
        if abs(cv2.contourArea(self._contour)) < 1.0:
            raise UserError(f"zone '{spec.name}' has no area on a {frame_size[0]}x{frame_size[1]} frame")
        self.max_occupancy: Counter[str] = Counter()  # per class, over frames
        self.max_inside = 0  # all classes together, over frames
        self.dwell_count = 0
        self.dwell_total = 0.0
        self.dwell_max = 0.0
        self._occupancy: Counter[str] = Counter()
        self.inside: npt.NDArray[np.bool_] = np.zeros(0, np.bool_)  # per detection of the latest frame

    def occupancy(self) -> dict[str, int]:
        """Objects inside in the last updated frame, per class (most first)."""
        return by_count(self._occupancy)

    def distance(self, point: tuple[float, float]) -> float:
        """Signed pixels from the border: positive inside, negative outside."""
        return float(cv2.pointPolygonTest(self._contour, (float(point[0]), float(point[1])), True))

    def update(self, detections: Detections, frame_index: int, pts: float) -> list[EventRecord]:
        """Feed one frame; return its enter/exit events."""
        events: list[EventRecord] = []
        occupancy: Counter[str] = Counter()
        seen: set[int] = set()
        keep, anchors = self.candidates(detections)
        tids = detections.tracker_id
        self.inside = np.zeros(len(detections), np.bool_)  # which detections are inside, as counted
        for k, i in enumerate(keep.tolist()):
            cls = detections.class_name(int(detections.class_id[i]))
            d = self.distance(anchors[k])
            if tids is None:
                if d >= 0:
                    occupancy[cls] += 1
                    self.inside[i] = True
                continue
            tid = int(tids[i])
            seen.add(tid)
            track = self._tracks.get(tid)
            is_new = track is None
            if track is None:
                track = self._tracks[tid] = _Track(inside=False, class_name=cls, last_seen=pts)
            track.last_seen, track.confidence, track.xyxy = (
                pts,
                float(detections.confidence[i]),
                detections.xyxy[i],
            )
            if (is_new and d >= 0) or (not track.inside and d > self.hysteresis):
                events.append(self._enter(tid, track, cls, frame_index, pts))
            elif track.inside and d < -self.hysteresis:
                events.append(self._exit(tid, track, frame_index, pts, pts))
            if track.inside:
                occupancy[track.class_name] += 1
                self.inside[i] = True
        for tid, gone in self.forget_ended():
            if gone.inside and tid not in seen:
                events.append(self._exit(tid, gone, frame_index, pts, gone.last_seen, "lost"))
        self._occupancy = +occupancy
        for cls, n in self._occupancy.items():
            self.max_occupancy[cls] = max(self.max_occupancy[cls], n)
        self.max_inside = max(self.max_inside, sum(self._occupancy.values()))
        return events

    def finish(self, frame_index: int, pts: float) -> list[EventRecord]:
        """Exit events for everyone still inside at the end of the run; forgets all tracks."""
        events = [
            self._exit(tid, t, frame_index, pts, t.last_seen, "end")
            for tid, t in self._tracks.items()
            if t.inside
        ]
        self._tracks.clear()
        return events

    def _where(self, tid: int, track: _Track, frame_index: int, pts: float) -> dict[str, Any]:
        return self.where(tid, track.class_name, track.confidence, track.xyxy, frame_index, pts)

    def _enter(self, tid: int, track: _Track, cls: str, frame_index: int, pts: float) -> EventRecord:
        track.inside, track.class_name, track.entered_pts = True, cls, pts
        self.tally("entered", cls)
        return ZoneEnter(**self._where(tid, track, frame_index, pts))

    def _exit(
        self, tid: int, track: _Track, frame_index: int, pts: float, left_at: float, reason: str | None = None
    ) -> EventRecord:
        track.inside = False
        dwell = max(0.0, left_at - track.entered_pts)
        self.tally("exited", track.class_name)
        self.dwell_count += 1
        self.dwell_total += dwell
        self.dwell_max = max(self.dwell_max, dwell)
        return ZoneExit(dwell_s=round(dwell, 3), reason=reason, **self._where(tid, track, frame_index, pts))

    def summary(self) -> dict[str, Any]:
        """Totals for the report."""
        return {
            **self.tallies(),
            "max_occupancy": by_count(self.max_occupancy),
            "max_inside": self.max_inside,
            "dwell_s": {
                "count": self.dwell_count,
                "mean": round(self.dwell_total / self.dwell_count, 3) if self.dwell_count else None,
                "max": round(self.dwell_max, 3) if self.dwell_count else None,
            },
        }


class ZoneAnnotator:
    """A tinted polygon, its outline and ``name: person 2, car 1``.

    Only the polygon's bounding rectangle is blended, so a small zone costs little.
    """

    def __init__(self, alpha: float = 0.25) -> None:
        self.alpha = alpha

    def annotate(self, scene: Image, zone: ZoneCounter) -> Image:
        h, w = scene.shape[:2]
        lw = style_of(scene).line_width
        pts = np.rint(zone.polygon).astype(np.int32)
        x, y, bw, bh = cv2.boundingRect(pts)
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
        if x1 > x0 and y1 > y0 and self.alpha > 0:
            roi = scene[y0:y1, x0:x1]
            tinted = roi.copy()
            cv2.fillPoly(tinted, [pts - np.array([x0, y0], np.int32)], zone.color, cv2.LINE_AA)
            cv2.addWeighted(tinted, self.alpha, roi, 1.0 - self.alpha, 0.0, dst=roi)
        cv2.polylines(scene, [pts], True, zone.color, max(1, lw - 1), cv2.LINE_AA)
        draw_label(scene, f"{zone.name}: {counts_text(zone.occupancy(), '0')}", (x + bw / 2, y), zone.color)
        return scene


class ZonesStage(CountingStage[ZoneSpec, ZoneCounter]):
    """Every zone of a source: occupancy in each JSONL line, enter/exit events, tinted zones drawn."""

    name = "zones"
    layer = Layer.ZONES

    def __init__(
        self,
        specs: Sequence[ZoneSpec],
        frame_size: tuple[int, int],
        names: Mapping[int, str],
        book: TrackBook | None = None,
    ) -> None:
        super().__init__(self.build(ZoneCounter, specs, frame_size, names, book), ZoneAnnotator())
        self._last: Frame | None = None

    @property
    def zones(self) -> list[ZoneCounter]:
        return self.counters

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        self._last = frame
        events = self.count(frame, detections)
        inside = np.empty(len(detections), object)  # per detection: the zones it is inside
        for i in range(len(detections)):
            inside[i] = tuple(z.name for z in self.zones if z.inside[i])
        detections = detections.with_data(**{Column.ZONES: inside})
        return StageResult(detections, events, FrameFacts(zones={z.name: z.occupancy() for z in self.zones}))

    def finish(self) -> list[EventRecord]:
        """Exit events for objects still inside a zone when the source ends."""
        if self._last is None:
            return []
        last, self._last = self._last, None
        return [event for zone in self.zones for event in zone.finish(last.index, last.pts)]
