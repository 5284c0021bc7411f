"""Our ByteTrack and its Kalman filter on synthetic boxes: ids kept through gaps and crossings, tracks
ending after the lost buffer (in seconds), frames stepped through with no detections, and the same
tracks as Ultralytics' ByteTrack on a random scene."""

from __future__ import annotations

import numpy as np
import pytest

from detector.tracking import ByteTrack
from detector.tracking.assign import assign, iou
from detector.tracking.kalman import BoxKalman, xyah_to_xyxy, xyxy_to_xyah
from detector.types import Detections

IMAGE = np.zeros((480, 640, 3), np.uint8)
NAMES = {0: "person", 1: "car"}


def dets(*boxes: tuple[float, float, float, float], score: float = 0.9, cls: int = 0) -> Detections:
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), score, np.float32),
        class_id=np.full(len(boxes), cls, np.int64),
        names=NAMES,
    )


def box_at(x: float, y: float = 100.0, w: float = 40.0, h: float = 80.0) -> tuple[float, float, float, float]:
    """A box whose top-left corner is (x, y)."""
    return (x, y, x + w, y + h)


def ids(out: Detections) -> list[int]:
    assert out.tracker_id is not None
    return out.tracker_id.tolist()


# -- Kalman filter ---------------------------------------------------------------------------------


def test_box_conversions_round_trip() -> None:
    boxes = np.array([[10, 20, 50, 100], [0, 0, 3, 1]], np.float64)
    xyah = xyxy_to_xyah(boxes)
    assert xyah[0].tolist() == [30, 60, 0.5, 80]
    assert np.allclose(xyah_to_xyxy(xyah), boxes)


def test_kalman_learns_a_constant_velocity_and_predicts_along_it() -> None:
    kf = BoxKalman()
    mean, cov = kf.initiate(xyxy_to_xyah([box_at(0)]))
    assert mean[0, 4:].tolist() == [0, 0, 0, 0], "a new track is at rest"
    for k in range(1, 20):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, xyxy_to_xyah([box_at(8 * k)]))
    assert mean[0, 4] == pytest.approx(8, abs=0.3) and abs(mean[0, 5]) < 0.1, mean
    x = mean[0, 0]
    before = np.trace(cov[0])
    mean, cov = kf.predict(mean, cov)
    assert mean[0, 0] == pytest.approx(x + mean[0, 4]), "the prediction moves the box by its velocity"
    assert np.trace(cov[0]) > before, "and is less certain than the corrected state"
    _, corrected = kf.update(mean, cov, xyxy_to_xyah([box_at(8 * 20)]))
    assert np.trace(corrected[0]) < np.trace(cov[0])


def test_kalman_works_on_many_tracks_at_once() -> None:
    kf = BoxKalman()
    boxes = np.array([box_at(0), box_at(100, 50, 20, 20), box_at(300, 10, 80, 40)])
    mean, cov = kf.initiate(xyxy_to_xyah(boxes))
    one = [kf.update(*kf.predict(*kf.initiate(xyxy_to_xyah([b]))), xyxy_to_xyah([b + 3])) for b in boxes]
    many = kf.update(*kf.predict(mean, cov), xyxy_to_xyah(boxes + 3))
    assert np.allclose(many[0], np.concatenate([m for m, _ in one]))
    assert np.allclose(many[1], np.concatenate([c for _, c in one]))


def test_assignment_takes_the_cheapest_pairs_under_the_limit() -> None:
    a = np.array([box_at(0), box_at(200), box_at(400)])
    b = np.array([box_at(205), box_at(2), box_at(900)])
    assert iou(a[:1], a[:1])[0, 0] == pytest.approx(1.0)
    pairs, rows, cols = assign(1 - iou(a, b), 0.5)
    assert sorted(pairs) == [(0, 1), (1, 0)] and rows == [2] and cols == [2]
    assert assign(np.zeros((0, 3)), 0.5) == ([], [], [0, 1, 2])


# -- ByteTrack -------------------------------------------------------------------------------------


def test_a_box_moving_at_constant_speed_keeps_its_id_through_a_gap() -> None:
    tracker = ByteTrack(frame_rate=30)
    seen = [ids(tracker.update(dets(box_at(10 * k)), IMAGE)) for k in range(10)]
    assert seen == [[1]] * 10
    for _ in range(5):  # five frames without the box
        assert len(tracker.update(dets(), IMAGE)) == 0
    out = tracker.update(dets(box_at(10 * 15)), IMAGE)
    assert ids(out) == [1], "found again where its velocity took it"
    assert tracker.ended == []


def test_two_crossing_boxes_keep_their_ids() -> None:
    """Two people walk past each other on one line, the boxes covering each other for four frames;
    only their velocities tell them apart then."""
    tracker = ByteTrack(frame_rate=30)
    by_direction: dict[str, set[int]] = {"right": set(), "left": set()}
    for k in range(30):
        right, left = box_at(20 + 10 * k, 100), box_at(320 - 10 * k, 104)
        out = tracker.update(dets(right, left), IMAGE)
        assert len(out) == 2, k
        if abs(right[0] - left[0]) < 20:
            continue  # too close to say which is which
        for tid, box in zip(ids(out), out.xyxy, strict=True):
            nearest = "right" if abs(box[0] - right[0]) < abs(box[0] - left[0]) else "left"
            by_direction[nearest].add(tid)
    assert by_direction == {"right": {1}, "left": {2}}


def test_a_track_unseen_longer_than_the_buffer_ends_and_is_listed_once() -> None:
    tracker = ByteTrack(frame_rate=10, lost_s=1.0)  # 10 frames
    for k in range(3):
        tracker.update(dets(box_at(5 * k)), IMAGE)
    ended = []
    for _ in range(12):
        tracker.update(dets(), IMAGE)
        ended.append(list(tracker.ended))
    assert ended == [[]] * 10 + [[1], []], "ended more than 10 frames after its last detection"
    assert ids(tracker.update(dets(box_at(10)), IMAGE)) == [], "the same place later: a new, tentative track"
    assert ids(tracker.update(dets(box_at(10)), IMAGE)) == [2]


def test_the_lost_buffer_is_in_seconds_of_video() -> None:
    def survives(frame_rate: float, gap: int) -> bool:
        tracker = ByteTrack(frame_rate=frame_rate)
        for _ in range(3):
            tracker.update(dets(box_at(0)), IMAGE)
        for _ in range(gap):
            tracker.update(dets(), IMAGE)
        return ids(tracker.update(dets(box_at(0)), IMAGE)) == [1]

    assert survives(30, 20) and not survives(10, 20), "20 frames are 0.67 s at 30 fps, 2 s at 10 fps"
    assert survives(10, 10) and not survives(10, 11)


def test_predict_moves_the_boxes_along_their_velocity() -> None:
    tracker = ByteTrack(frame_rate=30)
    for k in range(40):
        last = tracker.update(dets(box_at(6 * k, 100 + 2 * k)), IMAGE)
    x0, y0, x1 = last.xyxy[0, :3]
    for step in range(1, 4):
        out = tracker.predict()
        assert ids(out) == [1] and out.names == NAMES and out.class_name(int(out.class_id[0])) == "person"
        assert out.confidence[0] == pytest.approx(0.9)
        dx, dy = out.xyxy[0, 0] - x0, out.xyxy[0, 1] - y0
        assert dx == pytest.approx(6 * step, abs=0.5) and dy == pytest.approx(2 * step, abs=0.3)
        assert out.xyxy[0, 2] - out.xyxy[0, 0] == pytest.approx(x1 - x0, abs=0.5)
    out = tracker.update(dets(box_at(6 * 43, 100 + 2 * 43)), IMAGE)
    assert ids(out) == [1], "the detection after the predicted frames matches the predicted box"
    assert out.xyxy[0, 0] == pytest.approx(6 * 43, abs=1)


def test_predicted_frames_count_toward_losing_a_track() -> None:
    tracker = ByteTrack(frame_rate=10)  # 10 frames
    tracker.update(dets(box_at(0)), IMAGE)
    tracker.update(dets(box_at(0)), IMAGE)
    assert ids(tracker.predict(5)) == [1], "predicted frames keep a tracked track"
    assert ids(tracker.update(dets(), IMAGE)) == [], "a frame with detections, none of them its own: lost"
    assert ids(tracker.predict(4)) == [] and tracker.ended == []
    tracker.predict(1)
    assert tracker.ended == [1], "ended 11 frames (predicted or not) after its last detection"


def test_a_detection_on_one_frame_only_never_becomes_a_track() -> None:
    tracker = ByteTrack(frame_rate=30)
    assert ids(tracker.update(dets(box_at(0)), IMAGE)) == [1], "on the first frame, tracks start at once"
    assert ids(tracker.update(dets(box_at(0), box_at(300)), IMAGE)) == [1], "later ones are tentative"
    assert ids(tracker.update(dets(box_at(0)), IMAGE)) == [1], "and dropped when not seen again"
    assert ids(tracker.update(dets(box_at(0), box_at(500)), IMAGE)) == [1]
    assert ids(tracker.update(dets(box_at(0), box_at(500)), IMAGE)) == [1, 2], "ids count confirmed tracks"


def test_a_weak_detection_keeps_a_track_but_does_not_start_one() -> None:
    tracker = ByteTrack(frame_rate=30)
    for k in range(5):
        tracker.update(dets(box_at(4 * k)), IMAGE)
    weak = tracker.update(dets(box_at(20), score=0.15), IMAGE)
    assert ids(weak) == [1] and weak.confidence[0] == pytest.approx(0.15)
    for _ in range(3):
        assert ids(tracker.update(dets(box_at(300), score=0.15), IMAGE)) == []


def test_a_lost_track_drifting_onto_a_tracked_one_is_the_same_object_and_ends() -> None:
    """A lost track keeps moving by its velocity; when its box covers a tracked one (IoU > 0.85), the
    younger of the two ends, well before the lost buffer runs out."""
    tracker = ByteTrack(frame_rate=30)  # 30 frames
    parked = box_at(300, 100, 100, 200)
    for _ in range(20):
        assert ids(tracker.update(dets(parked), IMAGE)) == [1]
    for k in range(10):  # a newer object passes, then is missed
        out = tracker.update(dets(parked, box_at(100 + 10 * k, 100, 100, 200)), IMAGE)
    assert sorted(ids(out)) == [1, 2]
    gap = 0
    while not tracker.ended and gap < 30:
        assert ids(tracker.update(dets(parked), IMAGE)) == [1]
        gap += 1
    assert tracker.ended == [2] and gap < 20, gap


def test_a_track_takes_the_class_of_its_latest_detection() -> None:
    tracker = ByteTrack(frame_rate=30)
    tracker.update(dets(box_at(0), cls=0), IMAGE)
    out = tracker.update(dets(box_at(2), cls=1), IMAGE)
    assert ids(out) == [1] and out.class_id.tolist() == [1]


def _random_scene(rng: np.random.Generator, frames: int) -> list[Detections]:
    """Objects crossing a 640x480 frame at random speeds, some missed, some weak, some overlapping."""
    objects = [
        tuple(rng.uniform(lo, hi) for lo, hi in ((0, 600), (0, 400), (-6, 6), (-4, 4), (20, 90)))
        for _ in range(12)
    ]
    scene = []
    for f in range(frames):
        boxes, scores = [], []
        for x, y, vx, vy, size in objects:
            if rng.random() < 0.15:
                continue
            cx, cy = x + vx * f + rng.normal(0, 1.5), y + vy * f + rng.normal(0, 1.5)
            boxes.append((cx, cy, cx + size * 0.6, cy + size))
            scores.append(rng.choice([rng.uniform(0.11, 0.3), rng.uniform(0.3, 0.95)], p=[0.25, 0.75]))
        d = Detections(np.array(boxes).reshape(-1, 4), np.array(scores), np.zeros(len(boxes)), names=NAMES)
        scene.append(d)
    return scene


def test_the_same_tracks_as_ultralytics_bytetrack_on_a_random_scene() -> None:
    """Box for box and frame for frame, with one mapping of ids, over 300 frames of a busy scene
    (Ultralytics keeps lost tracks 30 frames: the same as 1 s at 30 fps)."""
    pytest.importorskip("ultralytics")
    from detector.backends.ultralytics import UltralyticsTracker

    for seed in range(3):
        theirs, ours = UltralyticsTracker("bytetrack"), ByteTrack(frame_rate=30)
        mapping: dict[int, int] = {}
        for f, d in enumerate(_random_scene(np.random.default_rng(seed), 300)):
            a, b = theirs.update(d, IMAGE), ours.update(d, IMAGE)
            assert len(a) == len(b), (seed, f)
            for tid, box in zip(ids(a), a.xyxy, strict=True):
                j = int(np.abs(b.xyxy - box).sum(axis=1).argmin())
                assert np.abs(b.xyxy[j] - box).max() < 1e-2, (seed, f)
                assert mapping.setdefault(tid, ids(b)[j]) == ids(b)[j], (seed, f, "an id changed")
        assert len(mapping) == len(set(mapping.values())) > 12, "the scene has tracks, each its own id"
