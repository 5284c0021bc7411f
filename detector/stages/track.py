"""Tracking: stable ``tracker_id``s across frames (``--track``), and the tally of distinct tracks."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, Protocol

from detector.stages.base import Stage, StageResult
from detector.text import by_count
from detector.types import Detections, Frame, Image


class Tracker(Protocol):
    """Gives detections stable ``tracker_id``s across the frames of one source."""

    name: str

    def update(self, detections: Detections, image: Image) -> Detections: ...


log = logging.getLogger(__name__)
_preload: threading.Thread | None = None


def _import_trackers() -> None:
    try:
        from detector.backends.ultralytics import import_trackers

        import_trackers()
    except Exception as exc:  # load_tracker imports again and reports it properly
        log.debug("preloading the tracker failed: %s", exc)


def preload_tracker() -> None:
    """Start importing the tracker (Ultralytics, so torch: ~1.5 s) in a thread, while the model compiles
    and the sources open, so the first tracked frame is not late by that import."""
    global _preload
    if _preload is None:
        _preload = threading.Thread(target=_import_trackers, name="tracker-import", daemon=True)
        _preload.start()


def load_tracker(name: str) -> Tracker:
    """ByteTrack or BoT-SORT (Ultralytics' implementations), run on any backend's detections."""
    if _preload is not None:
        _preload.join()
    from detector.backends.ultralytics import UltralyticsTracker

    return UltralyticsTracker(name)


class TrackStage(Stage):
    """Passes on only tracked detections, each with its ``tracker_id``. One per source: ids never
    carry over from another source."""

    name = "track"

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        return StageResult(self.tracker.update(detections, frame.image))


class TrackTally(Stage):
    """Distinct track ids per class, counted under the class of their first sighting (for the report).

    Ids unseen for ``forget_after_s`` seconds (pts) are forgotten, so memory stays flat; trackers
    never reuse an id, so a forgotten id is never counted twice.
    """

    name = "tally"

    def __init__(self, forget_after_s: float = 60.0) -> None:
        self.forget_after_s = forget_after_s
        self.counts: Counter[str] = Counter()
        self._last_seen: dict[int, float] = {}

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        self.count(detections, frame.pts)
        return StageResult(detections)

    def count(self, detections: Detections, pts: float) -> None:
        if detections.tracker_id is not None:
            for tid, cid in zip(detections.tracker_id.tolist(), detections.class_id.tolist(), strict=True):
                if tid not in self._last_seen:
                    self.counts[detections.class_name(cid)] += 1
                self._last_seen[tid] = pts
        stale = [t for t, seen in self._last_seen.items() if abs(pts - seen) > self.forget_after_s]
        for t in stale:
            del self._last_seen[t]

    def per_class(self) -> dict[str, int]:
        return by_count(self.counts)

    def report(self) -> dict[str, Any]:
        return {"tracks_per_class": self.per_class()}
