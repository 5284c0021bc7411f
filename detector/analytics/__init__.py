"""Beyond boxes: counting lines, zones with dwell time, motion trails.

Config models (one section each in the YAML): ``LineSpec`` (``lines:`` list),
``ZoneSpec`` (``zones:`` list), ``TrailSettings`` (``trails:``), ``TrackerSettings``
(``tracker:``). Lines and zone events need tracked detections (``tracker_id``).
"""

from __future__ import annotations

from typing import Literal

from detector.analytics.common import StrictModel, check_classes
from detector.analytics.lines import LineCounter, LineSpec, draw_line
from detector.analytics.trails import TrailAnnotator, TrailSettings
from detector.analytics.zones import ZoneCounter, ZoneSpec, draw_zone


class TrackerSettings(StrictModel):
    """``tracker:`` config section: which Ultralytics tracker assigns the track ids."""

    type: Literal["bytetrack", "botsort"] = "bytetrack"

    @property
    def config_file(self) -> str:
        """The tracker YAML name Ultralytics' ``model.track(tracker=...)`` takes."""
        return f"{self.type}.yaml"


__all__ = [
    "LineCounter",
    "LineSpec",
    "TrackerSettings",
    "TrailAnnotator",
    "TrailSettings",
    "ZoneCounter",
    "ZoneSpec",
    "check_classes",
    "draw_line",
    "draw_zone",
]
