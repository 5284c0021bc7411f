"""One house: the files kept on disk follow one naming rule, and retention leaves the event store's
files to the store (it asks the store for their names)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from detector.catalog import Catalogs
from detector.events import LineCross, stamp
from detector.eventstore.schema import DEFAULT_NAME, store_file_names
from detector.eventstore.writer import EventStore
from detector.storage.clipfolder import ClipFolder
from detector.storage.layout import scan_clips
from detector.storage.retention import Limits, Retention

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
    clip = ClipFolder(folder).claim("door", "clip", ".mp4")
    clip.write_bytes(b"\0" * 1000)
    _age(clip, 5)
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
    assert not clip.exists(), "the old clip is deleted"
    assert (folder / DEFAULT_NAME).exists(), "the event store is not"
    with sqlite3.connect(folder / DEFAULT_NAME) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (1,)
