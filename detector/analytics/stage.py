"""The analytics stage: lines, zones, trails and track tallies for one run, in frame order.

The pipeline calls ``update`` for each frame (events + per-frame JSONL extras), ``draw``
on the annotated copy, and ``finish`` at the end (zone exits of objects still inside).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detector.analytics.common import check_classes
from detector.analytics.lines import LineCounter, LineSpec, draw_line
from detector.analytics.trails import TrailAnnotator, TrailSettings
from detector.analytics.zones import ZoneCounter, ZoneSpec, draw_zone
from detector.report import TrackTally
from detector.types import Detections, Frame

log = logging.getLogger(__name__)


class AnalyticsStage:
    """Everything beyond boxes that one run was configured with."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        names: Mapping[int, str],
        *,
        lines: Sequence[LineSpec] = (),
        zones: Sequence[ZoneSpec] = (),
        trails: TrailSettings | None = None,
        tracking: bool = False,
    ) -> None:
        for spec in lines:
            check_classes(f"line '{spec.name}'", spec.classes, names)
        for zone in zones:
            check_classes(f"zone '{zone.name}'", zone.classes, names)
        self.lines = [LineCounter(spec, frame_size) for spec in lines]
        self.zones = [ZoneCounter(spec, frame_size) for spec in zones]
        self.trails = TrailAnnotator(trails.length) if trails is not None else None
        self.tracks = TrackTally()
        self.tracking = tracking
        if (self.lines or self.trails) and not tracking:
            log.warning("lines and trails need track ids; add --track (or tracker: bytetrack) to count them")
        self._last: Frame | None = None

    @property
    def active(self) -> bool:
        return bool(self.lines or self.zones or self.trails or self.tracking)

    def update(self, frame: Frame, detections: Detections) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Events completed by this frame, and extras for its JSONL line."""
        self._last = frame
        self.tracks.update(detections, frame.pts)
        events: list[dict[str, Any]] = []
        for counter in self.lines:
            events.extend(counter.update(detections, frame.index, frame.pts))
        for zone in self.zones:
            events.extend(zone.update(detections, frame.index, frame.pts))
        if self.trails is not None:
            self.trails.update(detections, frame.index)
        extra = {"zones": {z.name: z.occupancy() for z in self.zones}} if self.zones else {}
        return events, extra

    def draw(self, image: np.ndarray) -> np.ndarray:
        """Zones, then trails, then lines, in place on the (already copied) annotated frame."""
        for zone in self.zones:
            draw_zone(image, zone)
        if self.trails is not None:
            self.trails.draw(image)
        for counter in self.lines:
            draw_line(image, counter)
        return image

    def finish(self) -> list[dict[str, Any]]:
        """Exit events for objects still inside a zone when the source ends."""
        if self._last is None:
            return []
        events: list[dict[str, Any]] = []
        for zone in self.zones:
            events.extend(zone.finish(self._last.index, self._last.pts))
        return events
