"""Tracking: stable ``tracker_id``s across frames (``--track``), the tally of distinct tracks, and a
``track_new`` event for each new track of chosen classes (``--clip-on``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from detector.stages.base import Stage, StageResult
from detector.text import by_count
from detector.types import Detections, Event, Frame, Image


class Tracker(Protocol):
    """Gives detections stable ``tracker_id``s across the frames of one source."""

    name: str

    def update(self, detections: Detections, image: Image) -> Detections: ...


def load_tracker(name: str, frame_rate: float = 30.0) -> Tracker:
    """A tracker for one source whose stages see ``frame_rate`` frames a second (after any stride).

    ``bytetrack``: ours (``detector.tracking``), on NumPy and ``lap``; it gives the same tracks as
    Ultralytics' ByteTrack, keeps lost tracks for 1 s of video, and imports no torch.
    ``botsort``: Ultralytics' BoT-SORT (camera-motion compensation, ReID), which imports torch
    (~0.9 s warm, ~1.9 s from a cold disk cache, this machine); it keeps lost tracks 30 frames."""
    if name == "bytetrack":
        from detector.tracking import ByteTrack

        return ByteTrack(frame_rate if frame_rate > 0 else 30.0)
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
    never reuse an id, so a forgotten id is never counted twice. With ``announce`` (class ids), each
    new track of those classes is also a ``track_new`` event (what ``--clip-on`` clips).
    """

    name = "tally"

    def __init__(self, forget_after_s: float = 60.0, announce: Sequence[int] | None = None) -> None:
        self.forget_after_s = forget_after_s
        self.announce = None if announce is None else set(announce)
        self.counts: Counter[str] = Counter()
        self._last_seen: dict[int, float] = {}

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        new = self.count(detections, frame.pts)
        if not self.announce or not new:
            return StageResult(detections)
        assert detections.tracker_id is not None
        events: list[Event] = [
            {
                "event": "track_new",
                "track_id": int(detections.tracker_id[i]),
                "class_name": detections.class_name(int(detections.class_id[i])),
                "frame": int(frame.index),
                "pts": round(float(frame.pts), 3),
            }
            for i in new
            if int(detections.class_id[i]) in self.announce
        ]
        return StageResult(detections, events)

    def count(self, detections: Detections, pts: float) -> list[int]:
        """Book one frame's tracks; returns the indices of the detections whose track is new."""
        new: list[int] = []
        if detections.tracker_id is not None:
            pairs = zip(detections.tracker_id.tolist(), detections.class_id.tolist(), strict=True)
            for i, (tid, cid) in enumerate(pairs):
                if tid not in self._last_seen:
                    self.counts[detections.class_name(cid)] += 1
                    new.append(i)
                self._last_seen[tid] = pts
        stale = [t for t, seen in self._last_seen.items() if abs(pts - seen) > self.forget_after_s]
        for t in stale:
            del self._last_seen[t]
        return new

    def per_class(self) -> dict[str, int]:
        return by_count(self.counts)

    def report(self) -> dict[str, Any]:
        return {"tracks_per_class": self.per_class()}
