"""Beyond boxes: counting lines, zones with dwell time, motion trails.

Config models (one section each in the YAML): ``LineSpec`` (``lines:`` list),
``ZoneSpec`` (``zones:`` list), ``TrailSettings`` (``trails:``). Lines, zone events and
trails need tracked detections (``tracker_id``: the ``tracker`` setting).
"""

from __future__ import annotations

from detector.analytics.common import check_classes
from detector.analytics.lines import LineCounter, LineSpec, draw_line
from detector.analytics.trails import TrailAnnotator, TrailSettings
from detector.analytics.zones import ZoneCounter, ZoneSpec, draw_zone

__all__ = [
    "LineCounter",
    "LineSpec",
    "TrailAnnotator",
    "TrailSettings",
    "ZoneCounter",
    "ZoneSpec",
    "check_classes",
    "draw_line",
    "draw_zone",
]
