"""Tracking: stable ids across frames (``--track``), the one rule for how long a track is remembered,
the tally of distinct tracks, and a ``track_new`` event for each new track of chosen classes
(``--clip-on``).

Ids people can read: the tracker's own ids (Ultralytics' counter also counts tentative tracks that
never showed, so a busy clip jumps to #308) are renumbered 1, 2, 3... per source in the order the
tracks are confirmed, that is, first returned. Every output (the drawn labels, JSONL, CSV, MOT and
events) sees only these.

One rule for forgetting: a track has *ended* once the tracker has not returned it for more than
``Tracker.lost_frames`` processed frames, the tracker's own buffer for a lost track (after that it
never returns it again), unless it is a parked stationary track (``stages.stationary``), kept while
it may be found again. ``TrackBook.ended`` lists the ids that ended with the latest frame; every
stage that keeps something per track (tally, lines, zones, trails) forgets them then, and a zone
counts such a track as a ``lost`` exit.

Frames the model did not run on (``Frame.inference``, from motion gating or ``--detect-fps``) are
stepped through with ``Tracker.predict``: held still where nothing moved, predicted in between runs
of ``--detect-fps``; the detections such a frame carries (the last ones) are not given to the tracker
as new sightings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from detector.events import EventRecord, TrackNew, object_fields
from detector.stages.base import Stage, StageResult
from detector.stages.stationary import StationaryBook
from detector.text import by_count
from detector.types import Column, Detections, Frame, FrameFacts, Image, Inference


class Tracker(Protocol):
    """Gives detections stable ``tracker_id``s across the frames of one source."""

    name: str
    lost_frames: int  # frames a track may go unseen before the tracker drops it for good

    def update(self, detections: Detections, image: Image) -> Detections: ...

    def predict(self, steps: int = 1, *, still: bool = False) -> Detections:
        """Step through frames the model did not run on; the tracked boxes on the last of them.
        ``still``: nothing moved, so the boxes stay put."""
        ...


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


class TrackBook:
    """The tracks of one source by their public ids: which are alive, and which ended just now."""

    def __init__(self, lost_frames: int) -> None:
        self.lost_frames = max(1, int(lost_frames))
        self.frame = 0  # processed frames so far
        self.ended: list[int] = []  # public ids that ended with the latest frame
        self._last_seen: dict[int, int] = {}  # public id -> frame it was last returned

    def update(self, ids: Sequence[int], keep: Sequence[int] = ()) -> None:
        """Book the ids on one frame; ``keep``: ids not on it that must not end yet (parked)."""
        self.frame += 1
        for tid in [*ids, *keep]:
            self._last_seen[tid] = self.frame
        horizon = self.frame - self.lost_frames
        self.ended = [t for t, seen in self._last_seen.items() if seen < horizon]
        for tid in self.ended:
            del self._last_seen[tid]

    def __len__(self) -> int:
        """Tracks alive (returned within the last ``lost_frames`` frames)."""
        return len(self._last_seen)


class TrackStage(Stage):
    """Passes on only tracked detections, each with its public ``tracker_id`` (1, 2, 3... in the order
    the tracks were confirmed). One per source: ids never carry over from another source."""

    name = "track"

    def __init__(self, tracker: Tracker, stationary: StationaryBook | None = None) -> None:
        self.tracker = tracker
        self.book = TrackBook(tracker.lost_frames)
        self.stationary = stationary
        self._public: dict[int, int] = {}  # the tracker's id -> ours
        self._next = 1
        self._born: dict[int, float] = {}  # public id -> pts it was first seen at

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        if frame.inference is Inference.RAN:
            tracked = self.tracker.update(detections, frame.image)
        else:
            tracked = self.tracker.predict(1, still=frame.inference is Inference.NO_MOTION)
        raw = [] if tracked.tracker_id is None else tracked.tracker_id.tolist()
        if self.stationary is not None:
            self._claim_parked(raw, tracked)
        ids = [self._public_id(t) for t in raw]
        tracked.tracker_id = np.asarray(ids, dtype=np.int64)
        pts = float(frame.pts)
        columns: dict[str, npt.NDArray[Any]] = {
            Column.TRACK_AGE: np.array([pts - self._born.setdefault(t, pts) for t in ids], np.float64)
        }
        facts: FrameFacts | None = None
        keep: list[int] = []
        if self.stationary is not None:
            still = self.stationary.observe(pts, ids, tracked.xyxy, tracked.class_id.tolist())
            facts = FrameFacts(stationary=still)
            columns[Column.STATIONARY] = np.isin(np.asarray(ids, np.int64), np.asarray(still, np.int64))
            keep = self.stationary.parked(pts, ids)
        self.book.update(ids, keep)
        if self.book.ended:
            ended = set(self.book.ended)
            self._public = {k: v for k, v in self._public.items() if v not in ended}
            for tid in ended:
                self._born.pop(tid, None)
            if self.stationary is not None:
                self.stationary.forget(ended)
        return StageResult(tracked.with_data(**columns), facts=facts)

    def _claim_parked(self, raw: list[int], tracked: Detections) -> None:
        """A new track over a parked stationary one is that object: it takes the parked id."""
        assert self.stationary is not None
        taken = {self._public[t] for t in raw if t in self._public}
        for k, t in enumerate(raw):
            if t not in self._public:
                tid = self.stationary.claim(tracked.xyxy[k], int(tracked.class_id[k]), taken)
                if tid is not None:
                    self._public[t] = tid
                    taken.add(tid)

    def _public_id(self, raw: int) -> int:
        tid = self._public.get(raw)
        if tid is None:
            tid = self._public[raw] = self._next
            self._next += 1
        return tid


class TrackTally(Stage):
    """Distinct tracks per class, counted under the class of their first sighting (for the report).

    With ``announce`` (class ids), each new track of those classes is also a ``track_new`` event
    (what ``--clip-on`` clips). Ids are forgotten when their track ends (``TrackBook``), so memory
    stays flat; public ids are never reused, so a track is never counted twice.
    """

    name = "tally"

    def __init__(self, book: TrackBook | None = None, announce: Sequence[int] | None = None) -> None:
        self.book = book
        self.announce = None if announce is None else set(announce)
        self.counts: Counter[str] = Counter()
        self._seen: set[int] = set()

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        new = self.count(detections)
        if not self.announce or not new:
            return StageResult(detections)
        assert detections.tracker_id is not None
        events: list[EventRecord] = [
            TrackNew(
                frame=int(frame.index),
                pts=round(float(frame.pts), 3),
                **object_fields(
                    detections.tracker_id[i],
                    detections.class_name(int(detections.class_id[i])),
                    detections.confidence[i],
                    detections.xyxy[i],
                ),
            )
            for i in new
            if int(detections.class_id[i]) in self.announce
        ]
        return StageResult(detections, events)

    def count(self, detections: Detections) -> list[int]:
        """Book one frame's tracks; returns the indices of the detections whose track is new."""
        new: list[int] = []
        if detections.tracker_id is not None:
            pairs = zip(detections.tracker_id.tolist(), detections.class_id.tolist(), strict=True)
            for i, (tid, cid) in enumerate(pairs):
                if tid not in self._seen:
                    self._seen.add(tid)
                    self.counts[detections.class_name(cid)] += 1
                    new.append(i)
        if self.book is not None:
            self._seen.difference_update(self.book.ended)
        return new

    def per_class(self) -> dict[str, int]:
        return by_count(self.counts)

    def report(self) -> dict[str, Any]:
        return {"tracks_per_class": self.per_class()}
