"""One house: the files kept on disk follow one naming rule, retention leaves the event store's
files to the store (it asks the store for their names), and the stages' per-detection facts are typed
columns of the detections."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from detector.catalog import Catalogs
from detector.events import LineCross, stamp
from detector.eventstore.names import DEFAULT_NAME, store_file_names
from detector.eventstore.writer import EventStore
from detector.settings import Settings
from detector.stages.build import build_stages
from detector.stats import RunStats
from detector.storage.clipfolder import ClipFolder
from detector.storage.layout import scan_clips
from detector.storage.retention import Limits, Retention
from detector.types import Column, Detections, Frame

DAY = 86400.0


def _age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    os.utime(path, (t, t))


def test_the_clips_a_folder_names_are_the_ones_retention_finds(tmp_path: Path) -> None:
    """Numbers go on after the clips and snapshots already there, and what the folder names is what
    retention counts as ours; a file of another shape (a clip number on a JPEG) is neither."""
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "door-clip-0007.mp4").write_bytes(b"old clip")
    (folder / "door-clip-0041.jpg").write_bytes(b"not ours: a clip is an MP4")
    (folder / "door-event-0003.jpg").write_bytes(b"old snapshot")
    clips = ClipFolder(folder)
    made = [clips.claim("door", "clip", ".mp4"), clips.claim("door", "event", ".jpg")]
    assert [p.name for p in made] == ["door-clip-0008.mp4", "door-event-0004.jpg"]
    found = {(m.kind, m.source, m.path.name) for m in scan_clips(folder)}
    assert found == {
        ("clip", "door", "door-clip-0007.mp4"),
        ("clip", "door", "door-clip-0008.mp4"),
        ("snapshot", "door", "door-event-0003.jpg"),
        ("snapshot", "door", "door-event-0004.jpg"),
    }


def test_retention_leaves_the_event_store_beside_the_clips(tmp_path: Path) -> None:
    """An old clip goes; the store (open, in WAL mode, with its side files) and its rows stay."""
    folder = tmp_path / "clips"
    clips = ClipFolder(folder)
    clip, newer = clips.claim("door", "clip", ".mp4"), clips.claim("door", "clip", ".mp4")
    for path, days in ((clip, 5), (newer, 0.5)):  # a camera's newest clip is kept whatever its age
        path.write_bytes(b"\0\0\0\x18ftypisom" + b"\0" * 1000)  # starts as an MP4 (retention checks)
        _age(path, days)
    store = EventStore(folder / DEFAULT_NAME)
    store.handle("door").event(
        stamp(LineCross(line="l", direction="in", frame=1, pts=0.1), "door", time.time())
    )
    assert store.flush(10)
    side = [folder / name for name in store_file_names() if (folder / name).exists()]
    assert folder / DEFAULT_NAME in side and len(side) >= 2, "the store and SQLite's side files"
    for path in side:
        _age(path, 5)
    retention = Retention(Limits(days=1), Catalogs([]))
    retention.watch(folder, "clips")
    retention.start(background=False)
    retention.check()
    retention.close()
    store.close()
    assert not clip.exists() and newer.exists(), "the old clip is deleted"
    assert (folder / DEFAULT_NAME).exists(), "the event store is not"
    with sqlite3.connect(folder / DEFAULT_NAME) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (1,)


NAMES = {0: "person", 2: "car"}


def test_per_detection_facts_are_typed_columns_of_the_detections() -> None:
    """A car parked in a zone for 4 s (10 fps), with a person walking past outside it: each detection
    carries its track's age, whether it is stationary and the zones it is inside, filtered with it."""
    settings = Settings(
        tracker="bytetrack",
        stationary={"seconds": 2.0},
        zones=[{"name": "lot", "polygon": [[0, 0], [400, 0], [400, 400], [0, 400]], "anchor": "center"}],
    )
    stages = build_stages(settings, (800, 480), NAMES, RunStats(), live=False, fps=10.0)
    for i in range(40):
        boxes = [[100, 100, 220, 180], [500 + 5 * i, 200, 540 + 5 * i, 300]]
        found = Detections(np.array(boxes, np.float32), [0.9, 0.8], [2, 0], names=NAMES)
        frame = Frame(np.zeros((480, 800, 3), np.uint8), i, i / 10, 0.0)
        for stage in stages:
            result = stage.update(frame, found)
            found = result.detections
    by_class = {NAMES[int(c)]: k for k, c in enumerate(found.class_id)}
    car, person = by_class["car"], by_class["person"]
    assert found.data[Column.ZONES][car] == ("lot",) and found.data[Column.ZONES][person] == ()
    assert bool(found.data[Column.STATIONARY][car]) and not bool(found.data[Column.STATIONARY][person])
    assert 3.5 < float(found.data[Column.TRACK_AGE][car]) <= 3.9
    only_car = found[found.class_id == 2]
    assert only_car.data[Column.ZONES].tolist() == [("lot",)] and len(only_car.data[Column.TRACK_AGE]) == 1
