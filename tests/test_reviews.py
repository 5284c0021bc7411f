"""Review items from the reviewer alone (no store, no clips): what MQTT and notifications will get.
Synthetic frames of tracked objects, fed as a lane feeds them (each frame after its sinks, each
stamped record before the attachers); what a listener hears is checked: when an item opens, what it
holds, when it ends, its severity and its best shot."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from detector import reviews as reviews_mod
from detector.events import EventRecord, LineCross, TrackNew, ZoneEnter, ZoneExit, stamp
from detector.media.images import picture_jpeg
from detector.review_items import ReviewUpdate
from detector.reviews import Reviewer
from detector.types import Detections, Frame, FrameFacts, FrameResult

FPS = 10
WALL0 = 1_790_000_000.0
NAMES = {0: "person", 1: "car", 16: "dog"}


class Heard:
    def __init__(self) -> None:
        self.updates: list[ReviewUpdate] = []

    def review(self, update: ReviewUpdate) -> None:
        self.updates.append(update)

    def kinds(self) -> list[str]:
        return [u.type for u in self.updates]


def frame(i: int, objects: dict[int, tuple[int, float, float]]) -> FrameResult:
    """Frame ``i`` with ``objects``: track id -> (class id, confidence, box side in pixels)."""
    image = np.full((240, 320, 3), i % 200, np.uint8)
    tids = sorted(objects)
    boxes = [[10.0 * k, 10.0, 10.0 * k + objects[t][2], 10.0 + objects[t][2]] for k, t in enumerate(tids)]
    dets = Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.array([objects[t][1] for t in tids], np.float32),
        class_id=np.array([objects[t][0] for t in tids], np.int64),
        tracker_id=np.array(tids, np.int64),
        names=NAMES,
    )
    return FrameResult(Frame(image, i, i / FPS, 0.0), dets, image, 10.0)


def feed(
    reviewer: Reviewer,
    frames: int,
    seen: dict[int, dict[int, tuple[int, float, float]]],
    events: dict[int, list[EventRecord]],
) -> dict[int, FrameResult]:
    shown = {}
    for i in range(frames):
        result = frame(i, seen.get(i, {}))
        shown[i] = result
        wall = WALL0 + i / FPS
        reviewer.frame(result, wall)
        for draft in events.get(i, []):
            reviewer.event(stamp(draft, "cam", wall), wall)
    reviewer.finish()
    return shown


def new_track(i: int, tid: int = 7, cls: str = "person") -> TrackNew:
    return TrackNew(track_id=tid, class_name=cls, confidence=0.5, xyxy=(0, 10, 10, 20), frame=i, pts=i / FPS)


def test_an_item_opens_at_its_first_review_event_and_ends_gap_after_its_objects_leave() -> None:
    heard = Heard()
    person = {7: (0, 0.8, 40.0)}
    seen = {i: person for i in range(20, 61)}  # in view from 2.0 to 6.0 s
    feed(Reviewer("cam", [heard], gap=2.0), 120, seen, {25: [new_track(25)]})
    assert heard.kinds() == ["new", "end"], "one item; no update for each frame it lasts"
    new, end = heard.updates
    assert new.before == new.after and new.after.end_time is None
    item = end.after
    assert item.media_start == pytest.approx(2.5) and item.media_end == pytest.approx(6.0)
    assert item.start_time == pytest.approx(WALL0 + 2.5) and item.end_time == pytest.approx(WALL0 + 6.0)
    assert item.objects == ("person",) and item.tracks == (7,) and item.severity == "alert"
    assert end.before.end_time is None, "before: the item as the listener last heard of it"
    message = end.to_dict()
    assert set(message) == {"type", "before", "after"} and message["after"]["end_time"] is not None


def test_activity_closer_than_the_gap_is_one_item_and_farther_is_two() -> None:
    heard = Heard()
    seen = {i: {7: (0, 0.8, 30.0)} for i in (10, 40)} | {i: {8: (0, 0.8, 30.0)} for i in (45, 100)}
    events = {10: [new_track(10, 7)], 45: [new_track(45, 8)], 100: [new_track(100, 9)]}
    # 1.0 s then 4.5 s (3.5 s later, within a 4 s gap): one item; 10.0 s (5.5 s after 4.5): another.
    feed(Reviewer("cam", [heard], gap=4.0), 130, seen, events)
    ended = [u.after for u in heard.updates if u.type == "end"]
    assert [(i.media_start, i.media_end) for i in ended] == [
        (pytest.approx(1.0), pytest.approx(4.5)),
        (pytest.approx(10.0), pytest.approx(10.0)),
    ]
    assert ended[0].tracks == (7, 8) and ended[1].tracks == (9,)
    assert heard.kinds() == ["new", "update", "end", "new", "end"]


def test_objects_that_raised_no_review_event_do_not_keep_an_item_open() -> None:
    heard = Heard()
    seen = {i: {7: (0, 0.8, 30.0), 3: (0, 0.9, 30.0)} for i in range(10, 15)}
    seen |= {i: {3: (0, 0.9, 30.0)} for i in range(15, 100)}  # a passer-by (track 3) stays
    feed(Reviewer("cam", [heard], gap=2.0), 100, seen, {10: [new_track(10, 7)]})
    end = heard.updates[-1].after
    assert end.media_end == pytest.approx(1.4) and end.tracks == (7,)


def test_severity_alert_for_alert_classes_and_any_line_or_zone_event() -> None:
    heard = Heard()
    dog = {5: (16, 0.7, 30.0)}
    seen = {i: dog for i in range(10, 40)}
    cross = LineCross(line="gate", direction="in", track_id=5, class_name="dog", frame=30, pts=3.0)
    events = {10: [new_track(10, 5, "dog")], 30: [cross]}
    feed(Reviewer("cam", [heard], gap=2.0, alert_classes=["person", "car"]), 80, seen, events)
    new, update, end = heard.updates
    assert new.after.severity == "detection", "a dog alone is a detection"
    assert update.type == "update" and update.before.severity == "detection"
    assert update.after.severity == "alert" and update.after.lines == ("gate",), (
        "a line event makes it an alert"
    )
    assert end.after.severity == "alert" and end.after.objects == ("dog",)
    heard = Heard()
    feed(Reviewer("cam", [heard], gap=2.0), 80, {10: dog}, {10: [new_track(10, 5, "dog")]})
    assert [u.after.severity for u in heard.updates] == ["detection", "detection"]


def test_zones_and_every_event_of_its_objects_belong_to_the_item() -> None:
    heard = Heard()
    person = {7: (0, 0.8, 30.0)}
    seen = {i: person for i in range(10, 30)}
    enter = ZoneEnter(zone="porch", track_id=7, class_name="person", frame=12, pts=1.2)
    leave = ZoneExit(zone="porch", dwell_s=1.5, track_id=7, class_name="person", frame=27, pts=2.7)
    other = ZoneExit(zone="porch", dwell_s=1.0, track_id=99, class_name="person", frame=28, pts=2.8)
    feed(Reviewer("cam", [heard], gap=2.0), 80, seen, {12: [enter], 27: [leave], 28: [other]})
    item = heard.updates[-1].after
    assert item.zones == ("porch",) and item.severity == "alert"
    assert len(item.events) == 2, "the exit of its own object joins, another object's does not"
    assert heard.kinds() == ["new", "update", "end"]


def test_the_best_shot_is_the_highest_score_times_area_with_its_frame() -> None:
    heard = Heard()
    # confidence x side^2: frame 30 (0.6 x 80^2 = 3840) beats frame 40 (0.95 x 60^2 = 3420) and the rest.
    sizes = {i: (0.9, 40.0) for i in range(10, 50)} | {30: (0.6, 80.0), 40: (0.95, 60.0)}
    seen = {i: {7: (0, c, s)} for i, (c, s) in sizes.items()}
    shown = feed(Reviewer("cam", [heard], gap=2.0), 90, seen, {10: [new_track(10)]})
    end = heard.updates[-1]
    best = end.after.best
    assert best is not None and best.frame == 30 and best.track_id == 7 and best.area == pytest.approx(6400)
    assert best.score == pytest.approx(0.6) and best.value == pytest.approx(3840, rel=1e-3)
    assert end.picture is not None and end.picture.image is shown[30].annotated, "that frame, not a copy"
    jpeg = cv2.imdecode(np.frombuffer(picture_jpeg(end.picture), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (240, 320, 3)
    edge = jpeg[10:90, 0:3].reshape(-1, 3).astype(int)  # the box's left side, outlined in yellow
    assert (np.abs(edge - (0, 255, 255)).max(axis=1) < 60).sum() > 20
    small = cv2.imdecode(np.frombuffer(picture_jpeg(end.picture, width=160), np.uint8), cv2.IMREAD_COLOR)
    assert small.shape == (120, 160, 3)


def test_a_busy_scene_gets_a_new_item_every_max_item_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reviews_mod, "MAX_ITEM_S", 5.0)
    heard = Heard()
    seen = {i: {7: (0, 0.8, 30.0)} for i in range(10, 140)}
    feed(Reviewer("cam", [heard], gap=2.0), 160, seen, {10: [new_track(10)]})
    items = [u.after for u in heard.updates if u.type == "end"]
    assert len(items) == 3, [(i.media_start, i.media_end) for i in items]
    assert all(i.media_end - i.media_start <= 5.0 + 1e-6 for i in items)
    assert [i.tracks for i in items] == [(7,)] * 3, "the object still in view goes on in the next item"
    assert items[-1].media_end == pytest.approx(13.9)


def test_a_listener_that_fails_does_not_lose_the_item_for_the_others(caplog: Any) -> None:
    class Broken:
        def review(self, update: ReviewUpdate) -> None:
            raise RuntimeError("disk gone")

    heard = Heard()
    feed(Reviewer("cam", [Broken(), heard], gap=2.0), 50, {10: {7: (0, 0.8, 30.0)}}, {10: [new_track(10)]})
    assert heard.kinds() == ["new", "end"]
    assert "disk gone" in caplog.text


def test_a_stationary_object_is_no_longer_activity() -> None:
    """A car that drives in and parks (listed in the frame's "stationary" from 4 s on) ends its item
    ``gap`` after it stopped moving, though it stays in view for the rest of the run; without the
    mark the item would last as long as the car is there."""
    car = {7: (1, 0.8, 40.0)}
    events = {15: [ZoneEnter(zone="lot", track_id=7, class_name="car", frame=15, pts=1.5)]}

    def run(parked_from: int | None) -> list[ReviewUpdate]:
        heard = Heard()
        reviewer = Reviewer("cam", [heard], gap=2.0)
        for i in range(300):
            result = frame(i, car if i >= 10 else {})
            if parked_from is not None and i >= parked_from:
                result = FrameResult(result.frame, result.detections, result.annotated, 10.0,
                                     FrameFacts(stationary=[7]))  # fmt: skip
            wall = WALL0 + i / FPS
            reviewer.frame(result, wall)
            for draft in events.get(i, []):
                reviewer.event(stamp(draft, "cam", wall), wall)
        reviewer.finish()
        return heard.updates

    parked = run(40)
    ends = [u for u in parked if u.type == "end"]
    assert parked[0].type == "new" and len(ends) == 1
    assert ends[0].after.media_end == pytest.approx(3.9, abs=0.05), "the item ends where the car stopped"
    always = [u for u in run(None) if u.type == "end"]
    assert always[0].after.media_end == pytest.approx(29.9, abs=0.05), "in view, moving: to the end"
