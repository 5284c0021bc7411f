"""Counting lines, zones and trails on synthetic scenes with known crossings (runtime ~2 s)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from detector.backends.base import Done
from detector.compose.run import run
from detector.errors import UserError
from detector.events import ZoneExit
from detector.settings import LineSpec, ZoneSpec, load_settings
from detector.stages.classes import resolve_classes
from detector.stages.lines import LineAnnotator, LineCounter
from detector.stages.track import TrackBook
from detector.stages.trails import TrailsStage
from detector.stages.zones import ZoneAnnotator, ZoneCounter
from detector.types import Detections

W, H = 320, 240
N = 40
NAMES = {0: "person", 2: "car"}
BOX_W, BOX_H = 16, 30
# Horizontal line at y=120 from x=32 to x=288, drawn left -> right: "in" = moving down.
GATE = LineSpec(name="gate", start=(0.1, 0.5), end=(0.9, 0.5))


def _ramp(i: int, a: float, b: float) -> float:
    return a + (b - a) * i / (N - 1)


def _wobble(i: int) -> float:
    # Crosses the line (y=120) beyond the hysteresis band 7 times, then settles below.
    return 200.0 if i >= 30 else (100.0 if (i // 4) % 2 == 0 else 140.0)


# track id -> (class id, box left x, bottom y per frame index or None when not visible)
SCENE: dict[int, tuple[int, int, Any]] = {
    1: (0, 40, lambda i: _ramp(i, 60, 200)),  # person, down: in
    2: (0, 80, lambda i: _ramp(i, 200, 60)),  # person, up: out
    3: (2, 120, lambda i: _ramp(i, 60, 200)),  # car, down: in
    4: (0, 160, _wobble),  # person wobbling across, finally below: in, once
    5: (0, 200, lambda i: 118.0 if i % 2 else 122.0),  # jitters inside the band: never
    6: (0, 296, lambda i: _ramp(i, 60, 200)),  # crosses the line's extension (x=304 > 288): never
    7: (0, 240, lambda i: 80.0 if i < 10 else (None if i < 30 else 180.0)),  # lost, back below: in
}
EXPECTED_IN = {"person": 3, "car": 1}
EXPECTED_OUT = {"person": 1}
COLORS = {tid: (40 * tid % 256, 255 - 30 * tid, 60 + 25 * tid) for tid in SCENE}


def scene_detections(i: int) -> Detections:
    boxes, classes, tids = [], [], []
    for tid, (cid, x, bottom) in SCENE.items():
        y2 = bottom(i)
        if y2 is not None:
            boxes.append([x, y2 - BOX_H, x + BOX_W, y2])
            classes.append(cid)
            tids.append(tid)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.array(classes, np.int64),
        tracker_id=np.array(tids, np.int64),
        names=NAMES,
    )


def run_line(spec: LineSpec, **kw: Any) -> tuple[LineCounter, list[dict[str, Any]]]:
    counter = LineCounter(spec, (W, H), **kw)
    events = []
    for i in range(N):
        events += [e.to_dict() for e in counter.update(scene_detections(i), i, i / 10)]
    return counter, events


def seen(book: TrackBook, detections: Detections) -> Detections:
    """What ``TrackStage`` does for the other stages: book the frame's track ids."""
    book.update([] if detections.tracker_id is None else detections.tracker_id.tolist())
    return detections


def test_line_counts_known_crossings_exactly_once():
    counter, events = run_line(GATE)
    assert counter.counts == {"in": EXPECTED_IN, "out": EXPECTED_OUT}
    assert counter.totals == {"in": 4, "out": 1}
    by_track = {e["track_id"]: e for e in events}
    assert len(by_track) == len(events) == 5, "each track counts at most once"
    assert set(by_track) == {1, 2, 3, 4, 7}, "the jittering track and the off-segment one never count"
    assert by_track[4]["direction"] == "in" and by_track[4]["frame"] == 4, "wobbler: its first crossing"
    assert by_track[7]["frame"] == 30, "a track lost on one side and found on the other counts on return"
    frame = by_track[2]["frame"]
    assert by_track[2] == {
        "event": "line_cross",
        "id": "",  # stamped by the lane
        "source": "",
        "wall_time": "",
        "track_id": 2,
        "class_name": "person",
        "confidence": 0.9,
        "xyxy": [round(float(v), 1) for v in scene_detections(frame).xyxy[1]],
        "line": "gate",
        "direction": "out",
        "frame": frame,
        "pts": round(frame / 10, 3),
    }


def test_swapping_ends_swaps_directions_and_classes_filter():
    flipped, _ = run_line(LineSpec(name="gate", start=(288, 120), end=(32, 120)))
    assert flipped.counts == {"in": EXPECTED_OUT, "out": EXPECTED_IN}
    cars, events = run_line(GATE, class_ids=[2])
    assert cars.counts == {"in": {"car": 1}, "out": {}}
    assert [e["track_id"] for e in events] == [3]


def test_wide_hysteresis_ignores_the_wobble():
    # Band of 30 px: the wobbler (100 <-> 140, 20 px either side) never leaves the band before
    # settling at 200, so no crossing is proven and it is not counted; the others still are.
    counter, events = run_line(GATE, hysteresis_px=30)
    assert sorted(e["track_id"] for e in events) == [1, 2, 3, 7]
    assert counter.counts == {"in": {"person": 2, "car": 1}, "out": EXPECTED_OUT}


def test_untracked_detections_are_ignored():
    counter = LineCounter(GATE, (W, H))
    for i in range(N):
        dets = scene_detections(i)
        dets.tracker_id = None
        assert counter.update(dets, i, i / 10) == []
    assert counter.totals == {"in": 0, "out": 0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-40, 40), min_size=2, max_size=60))
def test_line_counts_first_crossing_of_any_path(offsets: list[int]):
    """Counted exactly once iff the anchor was ever beyond the band on both sides; direction = first."""
    counter = LineCounter(GATE, (W, H), hysteresis_px=5)
    events = []
    for i, off in enumerate(offsets):
        box = [[150, 120 + off - BOX_H, 166, 120 + off]]
        dets = Detections(xyxy=box, confidence=[0.9], class_id=[0], tracker_id=[9], names=NAMES)
        events += counter.update(dets, i, i / 10)
    sides = [1 if o > 5 else -1 for o in offsets if abs(o) > 5]
    if len(set(sides)) == 2:
        assert len(events) == 1
        assert events[0].direction == ("in" if sides[0] < 0 else "out")
    else:
        assert events == []


def test_track_state_is_forgotten():
    book = TrackBook(lost_frames=10)
    counter = LineCounter(GATE, (W, H), book=book)
    for i in range(200):  # a new track every frame at 10 fps
        box = [[50, 60, 66, 90]]
        counter.update(seen(book, Detections(box, [0.9], [0], tracker_id=[i], names=NAMES)), i, i / 10)
    assert len(counter._tracks) <= 12


def test_points_in_fractions_or_pixels_and_validation():
    frac = LineCounter(LineSpec(name="v", start=(0.5, 0), end=(0.5, 1)), (W, H))
    assert frac.start.tolist() == [160, 0] and frac.end.tolist() == [160, 240]
    px = LineCounter(LineSpec(name="v", start=(10, 20), end=(0.5, 1)), (W, H))
    assert px.end.tolist() == [0.5, 1], "one coordinate above 1 makes all of them pixels"
    with pytest.raises(ValidationError, match="same point"):
        LineSpec(name="x", start=(1, 1), end=(1, 1))
    with pytest.raises(ValidationError, match="Extra inputs"):
        LineSpec.model_validate({"name": "x", "start": [0, 0], "end": [1, 1], "clases": ["person"]})
    assert LineSpec(name="x", start=(0, 0), end=(1, 1), classes="person, car").classes == ["person", "car"]  # type: ignore[arg-type]
    assert resolve_classes(["car", "0"], NAMES, "line 'x': ") == [0, 2]
    with pytest.raises(UserError, match="line 'x': unknown class name 'persn'; did you mean 'person'"):
        resolve_classes(["persn"], NAMES, "line 'x': ")


def test_draw_line_draws_in_place_on_the_line():
    counter, _ = run_line(GATE)
    img = np.zeros((H, W, 3), np.uint8)
    out = LineAnnotator().annotate(img, counter)
    assert out is img
    assert (img[120, 40:60] > 0).any(axis=1).all(), "the line is drawn along y=120"
    assert img[20:60, 280:].max() == 0 and img[200:, :20].max() == 0, "nothing far from the line"
    mid = img[100:140, 110:210]
    assert len(np.unique(mid.reshape(-1, 3), axis=0)) > 2, "a label with the counts sits on the line"


# ---- zones -----------------------------------------------------------------------------------------

ZONE = ZoneSpec(name="lot", polygon=[(100, 100), (200, 100), (200, 200), (100, 200)])


def _box(anchor_x: float, anchor_y: float) -> list[float]:
    return [anchor_x - 8, anchor_y - 30, anchor_x + 8, anchor_y]  # bottom-centre at the anchor


def zone_frame(i: int) -> Detections:
    boxes, classes, tids = [], [], []
    # track 1, person: outside, inside for frames 10..24, outside again
    boxes.append(_box(150 if 10 <= i < 25 else 50, 150))
    classes.append(0)
    tids.append(1)
    if 5 <= i < 15:  # track 2, car: appears inside, vanishes inside after frame 14
        boxes.append(_box(170, 170))
        classes.append(2)
        tids.append(2)
    boxes.append(_box(99 if i % 2 == 0 else 101, 120))  # track 3: jitters on the border
    classes.append(0)
    tids.append(3)
    if i >= 30:  # track 4: inside from frame 30 to the end
        boxes.append(_box(120, 180))
        classes.append(0)
        tids.append(4)
    return Detections(boxes, [0.9] * len(boxes), classes, tracker_id=tids, names=NAMES)


def test_zone_enter_exit_dwell_and_occupancy():
    book = TrackBook(lost_frames=9)
    zone = ZoneCounter(ZONE, (W, H), book=book)
    events, occupancy = [], []
    for i in range(N):
        events += [dict(e.to_dict(), at=i) for e in zone.update(seen(book, zone_frame(i)), i, i / 10)]
        occupancy.append(zone.occupancy())
    events += [e.to_dict() for e in zone.finish(N - 1, (N - 1) / 10)]
    simple = [(e["event"], e["track_id"], e["frame"], e.get("dwell_s"), e.get("reason")) for e in events]
    assert simple == [
        ("zone_enter", 2, 5, None, None),  # first seen inside: enters at once
        ("zone_enter", 1, 10, None, None),
        ("zone_exit", 2, 24, 0.9, "lost"),  # last seen at frame 14: its track ends 10 frames later
        ("zone_exit", 1, 25, 1.5, None),
        ("zone_enter", 4, 30, None, None),
        ("zone_exit", 4, 39, 0.9, "end"),
    ], "the border jitterer (track 3) never enters or exits"
    assert events[0] == {
        "event": "zone_enter",
        "id": "",
        "source": "",
        "wall_time": "",
        "track_id": 2,
        "class_name": "car",
        "confidence": 0.9,
        "xyxy": [float(v) for v in _box(170, 170)],
        "zone": "lot",
        "frame": 5,
        "pts": 0.5,
        "at": 5,
    }
    assert occupancy[0] == {} and occupancy[5] == {"car": 1}
    assert occupancy[12] == {"car": 1, "person": 1}
    assert occupancy[20] == {"person": 1}, "a vanished track is not inside any more"
    assert occupancy[27] == {} and occupancy[35] == {"person": 1}
    summary = zone.summary()
    assert summary["entered"] == {"person": 2, "car": 1} and summary["exited"] == {"person": 2, "car": 1}
    assert summary["max_occupancy"] == {"car": 1, "person": 1} and summary["max_inside"] == 2
    assert summary["dwell_s"] == {"count": 3, "mean": 1.1, "max": 1.5}


def test_zone_border_jitter_after_entering_is_not_an_exit():
    zone = ZoneCounter(ZONE, (W, H), hysteresis_px=3)
    xs = [150, 150, *([102, 98] * 5), 150, 90, 101, 99]  # inside; +-2 px on the border; in; out; jitter
    events = []
    for i, x in enumerate(xs):
        events += zone.update(Detections([_box(x, 150)], [0.9], [0], tracker_id=[5], names=NAMES), i, i)
    assert [(e.kind, e.frame) for e in events] == [("zone_enter", 0), ("zone_exit", 13)]
    assert isinstance(events[1], ZoneExit) and events[1].dwell_s == 13.0


def test_zone_classes_untracked_and_fractions():
    book = TrackBook(lost_frames=9)
    cars = ZoneCounter(ZONE, (W, H), class_ids=[2], book=book)
    kinds = [e.class_name for i in range(N) for e in cars.update(seen(book, zone_frame(i)), i, i / 10)]
    assert kinds == ["car", "car"]
    untracked = ZoneCounter(ZONE, (W, H))
    dets = zone_frame(12)
    dets.tracker_id = None
    assert untracked.update(dets, 12, 1.2) == [], "no tracker: no events"
    assert untracked.occupancy() == {"car": 1, "person": 1}, "but occupancy still counts"
    assert untracked.update(Detections.empty(NAMES), 13, 1.3) == [] and untracked.occupancy() == {}
    frac = ZoneCounter(ZoneSpec(name="f", polygon=[(0.25, 0.5), (0.5, 0.5), (0.5, 1)]), (W, H))
    assert frac.polygon.tolist() == [[80, 120], [160, 120], [160, 240]]
    with pytest.raises(UserError, match="no area"):
        ZoneCounter(ZoneSpec(name="flat", polygon=[(0, 0), (10, 10), (20, 20)]), (W, H))
    with pytest.raises(ValidationError):
        ZoneSpec(name="two", polygon=[(0, 0), (10, 10)])


def test_draw_zone_tints_only_the_polygon():
    zone = ZoneCounter(ZoneSpec(name="tri", polygon=[(100, 60), (300, 60), (300, 220)]), (W, H))
    zone.update(zone_frame(12), 12, 1.2)
    img = np.full((H, W, 3), 128, np.uint8)
    assert ZoneAnnotator().annotate(img, zone) is img
    assert (img[200, 290] != 128).any(), "inside the triangle is tinted"
    assert (img[200, 110] == 128).all(), "inside the bounding rectangle but outside the triangle: untouched"
    assert (img[:, :60] == 128).all(), "outside the bounding rectangle: untouched"


# ---- trails ----------------------------------------------------------------------------------------


def test_trail_draws_fading_path_of_recent_points():
    trails = TrailsStage(length=10)
    for i in range(20):  # centre moves from x=20 to x=210 along y=100
        x = 20 + 10 * i
        trails.remember(Detections([[x - 5, 95, x + 5, 105]], [0.9], [2], tracker_id=[7], names=NAMES))
    img = np.zeros((H, W, 3), np.uint8)
    assert trails.draw(img) is img
    color = np.array((243, 243, 243))  # class 2 in Ultralytics' palette: F3F3F3
    newest, middle, oldest = (img[100, x].astype(int) for x in (205, 165, 125))
    assert np.abs(newest - color).max() <= 10, "the newest segment is opaque in the class colour"
    assert 0 < oldest.max() < 0.5 * newest.max() < middle.max() < newest.max(), "older = fainter"
    assert img[100, 20:100].max() == 0, "points older than `length` are dropped"
    assert img[150:].max() == 0 and img[:50].max() == 0, "nothing away from the path"
    trails.remember(Detections.empty(NAMES))
    blank = np.zeros((H, W, 3), np.uint8)
    trails.draw(blank)
    assert blank.max() == 0, "a track not in the latest frame is not drawn"


def test_trail_memory_is_bounded():
    book = TrackBook(lost_frames=10)
    trails = TrailsStage(length=5, book=book)
    for i in range(1000):  # a new track every frame, each seen three times
        ids = [i, i - 1, i - 2]
        boxes = [[i % 300, 10, i % 300 + 10, 20]] * 3
        trails.remember(seen(book, Detections(boxes, [0.9] * 3, [0] * 3, tracker_id=ids, names=NAMES)))
    assert len(trails) <= 13
    assert max(len(t.points) for t in trails._trails.values()) <= 5
    trails.remember(seen(book, Detections([[0, 0, 5, 5]], [0.9], [0], names=NAMES)))  # untracked: no trail
    assert len(trails) <= 13


# ---- end to end through the pipeline ---------------------------------------------------------------


class ColorTracker:
    """Finds each track's colour in the frame: its box, class and id (a perfect tracker)."""

    backend = "fake"
    model_path = "fake"
    names = NAMES
    max_in_flight = 1
    max_batch = 1

    def detect(self, image: np.ndarray) -> Detections:
        boxes, classes, tids = [], [], []
        for tid, color in COLORS.items():
            ys, xs = np.nonzero((image == color).all(axis=2))
            if len(xs):
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                classes.append(SCENE[tid][0])
                tids.append(tid)
        return Detections(boxes, [0.9] * len(boxes), classes, tracker_id=tids, names=NAMES)

    def submit(self, image: np.ndarray, on_ready: Any = None) -> Done:
        return Done(self.detect(image))

    def submit_batch(self, images: list[np.ndarray]) -> list[Done]:
        return [self.submit(image) for image in images]


def write_scene(folder: Path) -> Path:
    """The scene as lossless PNG frames: each track a rectangle in its own colour on grey."""
    folder.mkdir()
    for i in range(N):
        img = np.full((H, W, 3), 90, np.uint8)
        d = scene_detections(i)
        for b, tid in zip(d.xyxy, d.tracker_id, strict=True):  # type: ignore[arg-type]
            x1, y1, x2, y2 = (int(v) for v in b)
            img[y1:y2, x1:x2] = COLORS[int(tid)]
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return folder


SCENE_CONFIG = """
image_fps: 10
lines:
  - {name: gate, start: [0.1, 0.5], end: [0.9, 0.5]}
zones:
  - {name: bottom, polygon: [[0, 130], [320, 130], [320, 240], [0, 240]]}
"""


def test_pipeline_end_to_end_counts(tmp_path: Path) -> None:
    """The scene through a whole run (config file -> stages built from settings -> pipeline -> JSONL,
    CSV, report, video): the counts a user reads in each file are the scene's, by hand.

    Zone ``bottom`` (y >= 130, band 2 px): tracks 1, 3, 6 enter once; 2 starts inside and leaves; 4
    wobbles in and out 4 times; 7 comes back below; 5 jitters above it. So 8 persons and 1 car enter,
    and the same exit (3 of them at the end); at the end 1, 4, 6, 7 and the car are inside."""
    config = tmp_path / "scene.yaml"
    config.write_text(SCENE_CONFIG)
    out = {"json": tmp_path / "s.jsonl", "csv": tmp_path / "s.csv", "report": tmp_path / "s.json",
           "output": tmp_path / "s.mp4"}  # fmt: skip
    settings = load_settings(config, {k: str(v) for k, v in out.items()}, env={})
    assert settings.tracker == "bytetrack", "lines and zones turn tracking on"
    settings = settings.model_copy(update={"tracker": None})  # ColorTracker gives the ids itself
    stats = run(str(write_scene(tmp_path / "scene")), settings, detector=ColorTracker())  # type: ignore[arg-type]
    assert stats.frames_processed == N

    lines = [json.loads(x) for x in out["json"].read_text().splitlines()]
    frames = [r for r in lines if "event" not in r]
    events = [r for r in lines if "event" in r]
    assert [r["frame"] for r in frames] == list(range(N))
    crossings = [e for e in events if e["event"] == "line_cross"]
    counted: dict[str, Counter[str]] = {"in": Counter(), "out": Counter()}
    for e in crossings:
        counted[e["direction"]][e["class_name"]] += 1
    assert counted == {"in": EXPECTED_IN, "out": EXPECTED_OUT}
    assert sorted(e["track_id"] for e in crossings) == [1, 2, 3, 4, 7]
    assert frames[-1]["zones"] == {"bottom": {"person": 4, "car": 1}}
    assert all(set(r["zones"]) == {"bottom"} for r in frames)
    enters = Counter(e["class_name"] for e in events if e["event"] == "zone_enter")
    exits = [e for e in events if e["event"] == "zone_exit"]
    assert enters == {"person": 8, "car": 1} == Counter(e["class_name"] for e in exits)
    assert sorted(e["track_id"] for e in exits if e.get("reason") == "end") == [1, 3, 4, 6, 7]
    assert Counter(e["track_id"] for e in exits)[4] == 4, "the wobbling track leaves 4 times"

    report = json.loads(out["report"].read_text())
    assert report["lines"]["gate"] == {"in": EXPECTED_IN, "out": EXPECTED_OUT, "total": {"in": 4, "out": 1}}
    zone = report["zones"]["bottom"]
    assert zone["entered"] == zone["exited"] == {"person": 8, "car": 1}
    assert zone["max_inside"] == 5 and zone["max_occupancy"] == {"person": 4, "car": 1}
    assert zone["dwell_s"]["count"] == 9
    with out["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert (
        len(rows)
        == sum(len(r["detections"]) for r in frames)
        == sum(len(scene_detections(i)) for i in range(N))
    )
    with av.open(str(out["output"])) as c:
        last = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)][-1]
    assert (np.abs(last[120, 40:60].astype(int) - 90) > 40).any(axis=1).all(), "the gate line is drawn"
