"""ByteTrack (Zhang et al., 2022) on NumPy and ``lap``: stable ids for detections across frames.

The algorithm and its defaults are those of Ultralytics' ``bytetrack.yaml`` tracker, so a run gives
the same tracks; what differs is that no torch is imported, that a frame can be stepped through with
no detections (``predict``), that the ids of the tracks that ended are listed (``ended``), and that
the lost-track buffer is in seconds of video. Per frame (``update``):

1. Every track that is tracked or lost moves one frame ahead (Kalman prediction; a lost track's
   height stops changing).
2. Confident detections (score >= ``high_thresh``) are matched to those tracks by IoU, weighted by
   the detection score (``fuse_score``), at a cost of at most ``match_thresh``. A lost track that
   matches is found again, with its old id.
3. The tracked tracks left over are matched to the weak detections (``low_thresh`` < score <
   ``high_thresh``) by plain IoU, cost at most 0.5; those still left over become lost.
4. Tentative tracks (born last frame) are matched to the confident detections left over (cost at
   most 0.7). One that matches is confirmed; one that does not is dropped: a detection must be seen
   on two frames running to become a track (or on the tracker's first frame).
5. A confident detection still left over, with score >= ``new_track_thresh``, starts a tentative
   track.
6. A lost track unmatched for more than ``lost_s`` seconds of video ends.
7. A tracked and a lost track whose boxes overlap by IoU > 0.85 are one object twice: the younger
   one ends.

Ids are given when a track is confirmed, counting 1, 2, 3... per tracker, and never reused.
Only confirmed tracks that are tracked on this frame are returned, with their filtered boxes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np

from detector.tracking.assign import Array, assign, iou, iou_cost
from detector.tracking.kalman import BoxKalman, xyah_to_xyxy, xyxy_to_xyah
from detector.types import Detections, Image

DUPLICATE_IOU = 0.85  # a tracked and a lost track overlapping more than this are the same object
LOW_MATCH = 0.5  # stage 3's cost limit (weak detections)
TENTATIVE_MATCH = 0.7  # stage 4's cost limit (confirming a track born last frame)


class State(Enum):
    TRACKED = 1
    LOST = 2
    ENDED = 3


@dataclass(eq=False)
class _Track:
    mean: Array  # (8,): Kalman state
    cov: Array  # (8, 8)
    score: float
    class_id: int
    born: int  # frame of its first detection
    seen: int  # frame of its last matched detection
    state: State = State.TRACKED
    track_id: int = 0  # 0 until confirmed

    @property
    def confirmed(self) -> bool:
        return self.track_id > 0


@dataclass
class _Found:
    """The detections of one confidence band: boxes as corners and as Kalman measurements."""

    xyxy: Array
    xyah: Array
    score: Array
    class_id: np.ndarray


class ByteTrack:
    """ByteTrack for one source. ``frame_rate``: the frames per second this tracker is given (the
    source's rate divided by any stride), so that ``lost_s`` can be counted in frames.

    Every call of ``update`` or ``predict`` is one frame. A frame stepped through with ``predict``
    counts toward a lost track's ``lost_s`` like any other: a track ends when more than ``lost_s``
    seconds of frames (predicted or detected) have passed since a detection last matched it. A
    tracked track never ends on predicted frames alone; it can only be lost on a frame that has
    detections (``update``), when none of them matches it."""

    name = "bytetrack"

    def __init__(
        self,
        frame_rate: float = 30.0,
        *,
        high_thresh: float = 0.25,
        low_thresh: float = 0.1,
        new_track_thresh: float = 0.25,
        match_thresh: float = 0.8,
        lost_s: float = 1.0,
        fuse_score: bool = True,
    ) -> None:
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        self.high_thresh, self.low_thresh = high_thresh, low_thresh
        self.new_track_thresh, self.match_thresh = new_track_thresh, match_thresh
        self.fuse_score = fuse_score
        self.lost_frames = max(1, round(lost_s * frame_rate))  # frames
        self.kalman = BoxKalman()
        self.frame = 0
        self.tracked: list[_Track] = []  # tracked tracks, confirmed or tentative, in order of arrival
        self.lost: list[_Track] = []
        self.ended: list[int] = []  # ids of the confirmed tracks that ended on the last frame
        self._last_id = 0
        self._names: Mapping[int, str] = {}

    def update(self, detections: Detections, image: Image | None = None) -> Detections:
        """One frame with detections: the confirmed tracks on it, ``tracker_id`` filled."""
        self.frame += 1
        self.ended = []
        self._names = detections.names
        high, low = self._split(detections)
        tentative = [t for t in self.tracked if not t.confirmed]
        pool = [t for t in self.tracked if t.confirmed] + self.lost
        self._predict(pool)

        # 2: confident detections against tracked and lost tracks
        cost = iou_cost(_boxes(pool), high.xyxy, high.score if self.fuse_score else None)
        pairs, left_tracks, left_high = assign(cost, self.match_thresh)
        refound = self._correct([(pool[i], high, j) for i, j in pairs])

        # 3: weak detections against the tracked tracks still unmatched
        rest = [pool[i] for i in left_tracks if pool[i].state is State.TRACKED]
        pairs, unmatched, _ = assign(iou_cost(_boxes(rest), low.xyxy), LOW_MATCH)
        self._correct([(rest[i], low, j) for i, j in pairs])
        for i in unmatched:
            rest[i].state = State.LOST

        # 4: tentative tracks against the confident detections still unmatched
        high = _subset(high, left_high)
        cost = iou_cost(_boxes(tentative), high.xyxy, high.score if self.fuse_score else None)
        pairs, unmatched, left_high = assign(cost, TENTATIVE_MATCH)
        self._correct([(tentative[i], high, j) for i, j in pairs])
        for i in unmatched:
            tentative[i].state = State.ENDED

        # 5: new tracks
        starts = [j for j in left_high if high.score[j] >= self.new_track_thresh]
        mean, cov = self.kalman.initiate(high.xyah[starts])
        born = [
            _Track(mean[k], cov[k], float(high.score[j]), int(high.class_id[j]), self.frame, self.frame)
            for k, j in enumerate(starts)
        ]
        if self.frame == 1:
            for track in born:
                self._confirm(track)

        self._end_stale()
        self._merge(born + refound)
        return self._output(t for t in self.tracked if t.confirmed)

    def predict(self, steps: int = 1, *, still: bool = False) -> Detections:
        """Step through ``steps`` frames that have no detections (not analysed by the model): the
        Kalman state moves on, and the confirmed tracked tracks are returned at their predicted
        boxes, with the score and class of their last detection. ``ended`` lists the lost tracks
        that ran out of time on these frames.

        ``still``: nothing moved on these frames (the motion check saw no change), so the tracks
        stay where they are and their velocity is zero; over a long still spell, prediction would
        otherwise let every box drift away by its last velocity."""
        self.ended = []
        for _ in range(steps):
            self.frame += 1
            if still:
                for t in self.tracked + self.lost:
                    t.mean[4:] = 0.0
            else:
                self._predict(self.tracked + self.lost)
            self._end_stale()
            self.lost = [t for t in self.lost if t.state is State.LOST]
        return self._output(t for t in self.tracked if t.confirmed)

    # -- steps ------------------------------------------------------------------------------------

    def _split(self, detections: Detections) -> tuple[_Found, _Found]:
        xyxy = detections.xyxy.astype(np.float64)
        score = detections.confidence.astype(np.float64)
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # the measurement divides by h
        xyxy, score, class_id = xyxy[valid], score[valid], detections.class_id[valid]
        every = _Found(xyxy, xyxy_to_xyah(xyxy), score, class_id)
        high = np.flatnonzero(score >= self.high_thresh)
        low = np.flatnonzero((score > self.low_thresh) & (score < self.high_thresh))
        return _subset(every, high), _subset(every, low)

    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        mean = np.array([t.mean for t in tracks])
        lost = np.array([t.state is not State.TRACKED for t in tracks])
        mean[lost, 7] = 0.0  # a lost track keeps its last height
        mean, cov = self.kalman.predict(mean, np.array([t.cov for t in tracks]))
        for k, t in enumerate(tracks):
            t.mean, t.cov = mean[k], cov[k]

    def _correct(self, matches: list[tuple[_Track, _Found, int]]) -> list[_Track]:
        """Update each matched track with its detection; all of them are tracked afterwards. Returns
        those that were lost (found again)."""
        if not matches:
            return []
        refound = [t for t, _, _ in matches if t.state is State.LOST]
        mean = np.array([t.mean for t, _, _ in matches])
        cov = np.array([t.cov for t, _, _ in matches])
        z = np.array([found.xyah[j] for _, found, j in matches])
        mean, cov = self.kalman.update(mean, cov, z)
        for k, (t, found, j) in enumerate(matches):
            t.mean, t.cov = mean[k], cov[k]
            t.score, t.class_id, t.seen = float(found.score[j]), int(found.class_id[j]), self.frame
            t.state = State.TRACKED
            if not t.confirmed:
                self._confirm(t)
        return refound

    def _confirm(self, track: _Track) -> None:
        self._last_id += 1
        track.track_id = self._last_id

    def _end_stale(self) -> None:
        for t in self.lost:
            if self.frame - t.seen > self.lost_frames:
                self._end(t)

    def _end(self, track: _Track) -> None:
        if track.state is State.ENDED:
            return
        track.state = State.ENDED
        if track.confirmed:
            self.ended.append(track.track_id)

    def _merge(self, joined: list[_Track]) -> None:
        """The new tracked and lost lists (``joined``: tracks born or found again on this frame),
        without duplicates (7)."""
        tracked = [t for t in self.tracked if t.state is State.TRACKED] + joined
        lost = [t for t in self.lost if t.state is State.LOST]
        lost += [t for t in self.tracked if t.state is State.LOST and t not in lost]
        if tracked and lost:
            overlap = iou(_boxes(tracked), _boxes(lost)) > DUPLICATE_IOU
            for i, j in zip(*np.nonzero(overlap), strict=True):
                a, b = tracked[i], lost[j]
                self._end(b if a.seen - a.born > b.seen - b.born else a)
        self.tracked = [t for t in tracked if t.state is State.TRACKED]
        self.lost = [t for t in lost if t.state is State.LOST]

    def _output(self, tracks: Iterable[_Track]) -> Detections:
        shown = list(tracks)
        return Detections(
            xyxy=_boxes(shown).astype(np.float32),
            confidence=np.array([t.score for t in shown], dtype=np.float32),
            class_id=np.array([t.class_id for t in shown], dtype=np.int64),
            tracker_id=np.array([t.track_id for t in shown], dtype=np.int64),
            names=self._names,
        )


def _boxes(tracks: list[_Track]) -> Array:
    if not tracks:
        return np.zeros((0, 4))
    return xyah_to_xyxy(np.array([t.mean[:4] for t in tracks]))


def _subset(found: _Found, keep: list[int] | np.ndarray) -> _Found:
    return _Found(found.xyxy[keep], found.xyah[keep], found.score[keep], found.class_id[keep])
