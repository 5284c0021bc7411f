"""Event snapshots that stay bounded (issue 29, item 3): scaled down to ``snapshots.width`` and encoded
at ``snapshots.quality``; ``per-track`` (one per event that makes a clip), ``per-item`` (one per
review item: its best shot), ``off``; the whole frame or a crop around the object."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from test_clips import FPS, SIZE, WALL0, ListCatalog, crossing, events_file, result

from detector.events import EventRecord, stamp
from detector.reviews import Reviewer
from detector.settings.model import EncoderSettings
from detector.settings.review import SnapshotSettings
from detector.sinks.video import VideoWriterSink
from detector.storage.clipfolder import ClipFolder, EventsFile
from detector.storage.clips import ClipRecorder


def run(
    folder: Path,
    frames: int,
    events: dict[int, EventRecord],
    snapshots: SnapshotSettings,
    big: int | None = None,
) -> ListCatalog:
    """As ``test_clips.run``, with these snapshot settings; the person is in view at its events (and
    seen twice as large at frame ``big``)."""
    catalog = ListCatalog()
    clip_folder = ClipFolder(folder)
    recorder = ClipRecorder(
        clip_folder, before=1.0, after=1.0, source="cam", catalog=catalog, gap=1.0, snapshots=snapshots
    )
    reviewer = Reviewer("cam", [recorder], gap=1.0)
    index = EventsFile(clip_folder)
    sink = VideoWriterSink(
        None, fps=Fraction(FPS), live=False, encoder=EncoderSettings(threads=1), outputs=[recorder]
    )
    for i in range(frames):
        frame = result(i, seen=any(abs(i - e) <= 3 for e in events))
        if i == big:
            x1, y1, x2, y2 = frame.detections.xyxy[0]
            frame.detections.xyxy[0] = (x1 - 20, y1 - 20, x2 + 20, y2 + 20)
        wall = WALL0 + i / FPS
        sink.write(frame)
        reviewer.frame(frame, wall)
        if i in events:
            record = stamp(events[i], "cam", wall)
            reviewer.event(record, wall)
            index.event(recorder.attach(record))
    reviewer.finish()
    sink.close()
    index.close()
    return catalog


# Two items: events at 2.0 and 2.5 s (one item), and at 6.0 s.
EVENTS = {20: crossing(20), 25: crossing(25), 60: crossing(60)}


def jpegs(folder: Path) -> list[Any]:
    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg"))]


def test_per_track_scaled_to_the_width(tmp_path: Path) -> None:
    catalog = run(tmp_path, 90, EVENTS, SnapshotSettings(width=200, quality=60))
    images = jpegs(tmp_path)
    assert len(images) == 3, "one per event"
    assert all(img.shape[1] == 200 and img.shape[0] == round(SIZE[1] * 200 / SIZE[0]) for img in images)
    assert [m.kind for m in catalog.files].count("snapshot") == 3
    full = run(tmp_path / "full", 90, EVENTS, SnapshotSettings(width=4000, quality=95))
    small = sum(m.bytes for m in catalog.files if m.kind == "snapshot")
    assert small < sum(m.bytes for m in full.files if m.kind == "snapshot"), "smaller than full size"


def test_per_item_keeps_one_snapshot_per_item(tmp_path: Path) -> None:
    catalog = run(tmp_path, 90, EVENTS, SnapshotSettings(mode="per-item"))
    assert len(jpegs(tmp_path)) == 2, "one per item"
    records = events_file(tmp_path)
    assert [r.get("snapshot") for r in records] == ["cam-event-0001.jpg", None, "cam-event-0002.jpg"]
    snaps = [m for m in catalog.files if m.kind == "snapshot"]
    assert [m.path.name for m in snaps] == ["cam-event-0001.jpg", "cam-event-0002.jpg"]
    assert [m.events for m in snaps] == [(records[0]["id"],), (records[2]["id"],)]
    assert all(m.bytes == m.path.stat().st_size for m in snaps)


def test_per_item_is_the_items_best_shot(tmp_path: Path) -> None:
    """The item's snapshot, named on its first event (frame 20), ends up showing its best shot: the
    person seen largest, at frame 22."""
    catalog = run(tmp_path, 40, {20: crossing(20)}, SnapshotSettings(mode="per-item"), big=22)
    (snap,) = [m for m in catalog.files if m.kind == "snapshot"]
    assert snap.path.name == "cam-event-0001.jpg" and snap.media_start == 2.2
    (image,) = jpegs(tmp_path)
    red = (image[..., 2] > 200) & (image[..., 1] < 60) & (image[..., 0] < 60)
    assert red.sum() > 40 * 40 * 0.9, "the object is there"
    columns = np.flatnonzero(red.any(axis=0))
    assert abs(columns[0] - 154) <= 2 and abs(columns[-1] - 193) <= 2, "frame 22's: its square at x = 154"


def test_off_makes_none(tmp_path: Path) -> None:
    catalog = run(tmp_path, 90, EVENTS, SnapshotSettings(mode="off"))
    assert jpegs(tmp_path) == []
    assert [m.kind for m in catalog.files] == ["clip", "clip"]
    assert all("snapshot" not in r or r["snapshot"] is None for r in events_file(tmp_path))


def test_a_crop_is_smaller_than_the_frame_and_shows_the_object(tmp_path: Path) -> None:
    run(tmp_path, 30, {20: crossing(20)}, SnapshotSettings(area="object"))
    (crop,) = jpegs(tmp_path)
    assert crop.shape[0] < SIZE[1] and crop.shape[1] < SIZE[0]
    # The object is a 40x40 red square (BGR 0, 0, 255) at x = 140 in frame 20: it fills the crop's middle.
    h, w = crop.shape[:2]
    middle = crop[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8].astype(int)
    assert np.all(middle[..., 2] > 200) and np.all(middle[..., 1] < 60), "the object, in the middle"
    assert 70 <= w <= 90 and 70 <= h <= 90, "as much again of its surroundings around its 40x40 box"
