"""Ignore masks: detections whose anchor falls inside an ``ignore:`` polygon are dropped.

Placed before the class filter and tracking, so a person on a TV screen, a poster or a mirror is never
tracked, counted, drawn, written or clipped. (Privacy covering runs before it and still covers them:
what is ignored for counting is not therefore shown.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from detector.errors import UserError
from detector.settings.analytics import IgnoreSpec
from detector.stages.base import Stage, StageResult
from detector.stages.classes import class_mask, resolve_classes
from detector.stages.geometry import anchor_points, resolve_points
from detector.text import by_count
from detector.types import Detections, Frame


class IgnoreStage(Stage):
    """Drops detections inside any of the ``ignore`` polygons (of their classes)."""

    name = "ignore"

    def __init__(
        self, specs: Sequence[IgnoreSpec], frame_size: tuple[int, int], names: Mapping[int, str]
    ) -> None:
        self.specs = list(specs)
        self.contours = []
        self.class_ids = []
        for k, spec in enumerate(specs):
            label = spec.name or f"#{k + 1}"
            contour = resolve_points(spec.polygon, frame_size).astype(np.float32).reshape(-1, 1, 2)
            if abs(cv2.contourArea(contour)) < 1.0:
                w, h = frame_size
                raise UserError(f"ignore mask {label} has no area on a {w}x{h} frame")
            self.contours.append(contour)
            self.class_ids.append(resolve_classes(spec.classes, names, f"ignore mask {label}: "))
        self.dropped: Counter[str] = Counter()

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        if not len(detections):
            return StageResult(detections)
        drop = np.zeros(len(detections), dtype=bool)
        for spec, contour, ids in zip(self.specs, self.contours, self.class_ids, strict=True):
            candidates = np.flatnonzero(class_mask(detections, ids) & ~drop)
            anchors = anchor_points(detections.xyxy[candidates], spec.anchor)
            for i, (x, y) in zip(candidates.tolist(), anchors.tolist(), strict=True):
                if cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0:
                    drop[i] = True
        if not drop.any():
            return StageResult(detections)
        for cid in detections.class_id[drop].tolist():
            self.dropped[detections.class_name(cid)] += 1
        return StageResult(detections[~drop])

    def report(self) -> dict[str, Any]:
        return {"ignored": by_count(self.dropped)}
