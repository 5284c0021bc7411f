"""The event store on its own (no model): what a run writes is read back whole, writes happen in
batches on the store's thread, an older store is migrated, a foreign or newer one is refused,
retention's ``removed`` takes rows with their media, and items a dead run left open are ended.
The kill -9 test with the real model is in test_store_runs.py."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_reviews import WALL0, feed, new_track

from detector.catalog import MediaFile
from detector.errors import UserError
from detector.events import ZoneEnter, stamp
from detector.eventstore import writer as writer_mod
from detector.eventstore.filters import ReviewQuery
from detector.eventstore.ops import ReviewOp
from detector.eventstore.queries import StoreReader
from detector.eventstore.rows import write_review
from detector.eventstore.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, connect, migrate
from detector.eventstore.writer import EventStore
from detector.review_items import BestShot, Picture, ReviewItem
from detector.reviews import Reviewer


class Lane:
    """What a lane does with a store: a reviewer whose listener is the store's handle, and each stamped
    record to the reviewer first, then to the handle as a sink."""

    def __init__(self, store: EventStore, source: str = "cam", gap: float = 2.0) -> None:
        self.handle = store.handle(source)
        self.reviewer = Reviewer(source, [self.handle], gap=gap)
        self.sent: list[dict[str, Any]] = []
        reviewed = self.reviewer.event

        def event(record: Any, wall: float) -> None:
            reviewed(record, wall)
            self.handle.event(record)
            self.sent.append(record.to_dict())

        self.reviewer.event = event  # type: ignore[method-assign]

    def run(self, frames: int, seen: dict[int, Any], events: dict[int, list[Any]]) -> None:
        feed(self.reviewer, frames, seen, events)


def two_items(store: EventStore) -> Lane:
    lane = Lane(store)
    person = {7: (0, 0.8, 40.0)}
    dog = {9: (16, 0.9, 60.0)}
    seen = {i: person for i in range(10, 40)} | {i: dog for i in range(80, 100)}
    enter = ZoneEnter(
        zone="porch", track_id=7, class_name="person", confidence=0.8, xyxy=(0, 10, 40, 50), frame=20, pts=2.0
    )
    lane.run(140, seen, {10: [new_track(10, 7)], 20: [enter], 80: [new_track(80, 9, "dog")]})
    return lane


def test_items_and_events_are_read_back_whole_with_thumbnails(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    lane = two_items(store)
    store.close()
    reader = StoreReader(tmp_path / "events.db")
    items, cursor = reader.reviews(ReviewQuery())
    assert cursor is None and [i["objects"] for i in items] == [["dog"], ["person"]], "newest first"
    dog, person = items
    assert person["zones"] == ["porch"] and person["severity"] == "alert" and dog["severity"] == "detection"
    assert person["end_time"] == pytest.approx(WALL0 + 3.9) and not person["in_progress"]
    assert person["media_start"] == pytest.approx(1.0) and person["best"]["frame"] >= 10
    detail = reader.review(person["id"])
    assert detail is not None
    assert detail["records"] == [r for r in lane.sent if r["track_id"] == 7], (
        "the records as every sink got them"
    )
    jpeg = reader.thumbnail(dog["id"])
    assert jpeg is not None
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[:2] == (240, 320), "the frame of the best shot, at its size (at most 320 px wide)"
    for record in lane.sent:
        got = reader.event(record["id"])
        assert got is not None and got["review_id"] in (person["id"], dog["id"])


def test_writes_are_batched_on_the_stores_own_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = writer_mod.connect

    def spy(*args: Any, **kw: Any) -> sqlite3.Connection:
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(writer_mod, "connect", spy)
    store = EventStore(tmp_path / "events.db")
    handle = store.handle("cam")
    for i in range(3000):
        handle.event(stamp(new_track(i, i), "cam", WALL0 + i))
    assert store.flush()
    assert threads == ["event-store"], "the pipeline's thread never opens the store"
    assert store.counts["events"] == 3000 and store.counts["batches"] <= 3, store.counts
    store.close()
    with sqlite3.connect(tmp_path / "events.db") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 3000


def test_a_run_with_no_events_makes_no_file(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "sub" / "events.db")
    store.handle("cam")
    store.close()
    assert not (tmp_path / "sub").exists()


def v1_store(path: Path) -> str:
    """A store as version 1 left it: no review_labels; one item with a class and a zone."""
    db = connect(path)
    db.execute("BEGIN")
    MIGRATIONS[1](db)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    item = ReviewItem(
        id="01900000-0000-7000-8000-000000000001",
        source="cam",
        severity="alert",
        start_time=WALL0,
        end_time=WALL0 + 5,
        last_time=WALL0 + 5,
        media_start=0.0,
        media_end=5.0,
        objects=("person",),
        zones=("porch",),
    )
    db.execute(
        "INSERT INTO reviews (id, source, severity, start_time, end_time, last_time, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (item.id, "cam", "alert", WALL0, WALL0 + 5, WALL0 + 5, json.dumps(item.to_dict())),
    )
    db.execute("COMMIT")
    db.close()
    return item.id


def test_an_older_store_is_migrated_and_its_items_found_by_the_new_filters(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    old_id = v1_store(path)
    with pytest.raises(UserError, match="schema 1"):
        StoreReader(path).reviews(ReviewQuery())
    store = EventStore(path)
    two_items(store)
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    reader = StoreReader(path)
    found, _ = reader.reviews(ReviewQuery(zone="porch"))
    assert old_id in [i["id"] for i in found] and len(found) == 2
    found, _ = reader.reviews(ReviewQuery(class_name="person"))
    assert len(found) == 2 and found[-1]["id"] == old_id


def test_the_api_of_a_run_whose_older_store_is_not_migrated_yet_says_why(tmp_path: Path) -> None:
    """A run migrates its store at its first write; until then the history's API answers 503 with
    the reason, not a 500."""
    from web_client import get

    from detector.web.config import ServeConfig
    from detector.web.view import WebView

    path = tmp_path / "events.db"
    v1_store(path)
    view = WebView(ServeConfig("127.0.0.1", 0, token=None))
    view.set_store(path)
    view.start()
    try:
        assert view.url is not None
        for route in ("/api/reviews", "/api/facets"):
            reply = get(view.url, route)
            assert reply.status == 503 and b"schema 1" in reply.body, (route, reply.status, reply.body)
    finally:
        view.close()


def test_detector_serve_migrates_an_older_store_too(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    v1_store(path)
    # the migration runs before anything is served: a bad bind fails after it, with exit 2
    code = subprocess.run(
        [sys.executable, "-m", "detector", "serve", "--events-db", str(path), "--serve", "0.0.0.0:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DETECTOR_SERVE_TOKEN": ""},
    )
    assert code.returncode == 2 and "reachable from other machines" in code.stderr, code.stderr
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_after_finds_an_item_longer_than_max_item_s_of_unix_time(tmp_path: Path) -> None:
    """A file processed slower than it plays: 300 s of video can span an hour of Unix time. An item
    that overlaps ``after`` is listed however long before it it started."""
    path = tmp_path / "events.db"
    db = connect(path)
    migrate(db, path)

    def item(n: int, start: float, length: float) -> str:
        review = ReviewItem(id=f"01900000-0000-7000-8000-00000000000{n}", source="cam", severity="alert",
                            start_time=start, end_time=start + length, last_time=start + length,
                            media_start=0.0, media_end=min(length, 300.0), objects=("person",))  # fmt: skip
        db.execute("BEGIN")
        write_review(db, review, None)
        db.execute("COMMIT")
        return review.id

    slow = item(1, WALL0, 3000.0)
    reader = StoreReader(path)
    for q in (ReviewQuery(after=WALL0 + 2500), ReviewQuery(after=WALL0 + 2500, class_name="person")):
        assert [i["id"] for i in reader.reviews(q)[0]] == [slow], q
    slower = item(2, WALL0 - 9000.0, 9000.0 + 2600)  # written after the reader's first look
    assert [i["id"] for i in reader.reviews(ReviewQuery(after=WALL0 + 2550))[0]] == [slow, slower]
    assert reader.reviews(ReviewQuery(after=WALL0 + 3100))[0] == []
    db.close()


@pytest.mark.parametrize("kind", ["newer", "foreign", "not sqlite", "folder"])
def test_a_file_that_is_not_a_store_we_can_write_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "events.db"
    if kind == "newer":
        with sqlite3.connect(path) as db:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        message = "made by a newer detector"
    elif kind == "foreign":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE notes (text TEXT)")
            db.execute("INSERT INTO notes VALUES ('mine')")
        message = "not a detector event store"
    elif kind == "not sqlite":
        path.write_text("hello\n" * 100)
        message = "not an SQLite database"
    else:
        path.mkdir()
        message = "is a folder"
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(UserError, match=message):
        EventStore(path)
    assert before is None or path.read_bytes() == before, "not touched"


def updates(n: int, shade: int = 0) -> list[ReviewOp]:
    """``n`` updates of one open item, each with a better best shot on a frame of its own (the last
    one's frame is ``shade`` grey), then its end."""
    base = ReviewItem(id="01900000-0000-7000-8000-0000000000aa", source="cam", severity="alert",
                      start_time=WALL0, end_time=None, last_time=WALL0,
                      media_start=0.0, media_end=0.0)  # fmt: skip
    ops = []
    for k in range(n + 1):
        best = BestShot(7, "person", 0.5, 100.0 + k, (0, 0, 10, 10), k, k / 10, WALL0 + k / 10)
        item = dataclasses.replace(
            base, best=best, last_time=WALL0 + k, end_time=WALL0 + n if k == n else None
        )
        image = np.full((240, 320, 3), shade if k == n else 10, np.uint8)
        ops.append(ReviewOp(item, Picture(image, (0.0, 0.0, 10.0, 10.0))))
    return ops


def test_a_stalled_writer_holds_a_bounded_number_of_frames(tmp_path: Path) -> None:
    """Each update of an item holds its best shot's frame: a writer that cannot keep up must not keep
    thousands of them; the item's end keeps its own, so the thumbnail is still the best shot."""
    store = EventStore(tmp_path / "events.db")
    gate = threading.Event()
    write = store._write

    def stalled(ops: list[Any], *, final: bool = False) -> None:
        gate.wait(30)
        write(ops, final=final)

    store._write = stalled  # type: ignore[method-assign]
    for op in updates(500, shade=200):
        store.put(op)
    held = [op for op in list(store.queue.queue) if isinstance(op, ReviewOp) and op.picture is not None]
    assert len(held) <= writer_mod.MAX_PICTURES + 1 and held[-1].item.end_time is not None, len(held)
    assert store.counts["pictures_dropped"] >= 400 and store.counts["dropped"] == 0
    gate.set()
    store.close()
    assert store._pictures == 0
    jpeg = StoreReader(tmp_path / "events.db").thumbnail(held[-1].item.id)
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert abs(int(np.median(image)) - 200) < 10, "the thumbnail is the end's best shot"


def test_a_batch_that_raises_does_not_stop_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EventStore(tmp_path / "events.db")
    monkeypatch.setattr(writer_mod, "picture_jpeg", lambda *a, **kw: (_ for _ in ()).throw(cv2.error("bad")))
    for op in updates(2):
        store.put(op)
    assert store.flush(10) and store.failed is not None and store.counts["items_lost"] == 1, store.counts
    monkeypatch.undo()
    handle = store.handle("cam")
    handle.event(stamp(new_track(1, 1), "cam", WALL0))
    assert store.flush(10), "the writer goes on"
    store.close()
    assert store.counts["events"] == 1


def test_removed_deletes_rows_with_their_media(tmp_path: Path) -> None:
    """What retention (issue 20) calls after deleting files: a clip takes its item, the item's events
    and their snapshots' rows with it; a segment only its row; a file the store never listed nothing."""
    path = tmp_path / "events.db"
    store = EventStore(path)
    lane = two_items(store)
    person_events = [r["id"] for r in lane.sent if r["track_id"] == 7]
    store.flush()
    reader = StoreReader(path)
    items, _ = reader.reviews(ReviewQuery())
    person = next(i for i in items if i["objects"] == ["person"])
    clip = tmp_path / "cam-clip-0001.mp4"
    snap = tmp_path / "cam-event-0001.jpg"
    segment = tmp_path / "rec" / "cam" / "2026-12-01" / "09.00.00.mp4"
    store.added(
        MediaFile("clip", "cam", clip, bytes=10, events=tuple(person_events), extra={"review": person["id"]})
    )
    store.added(MediaFile("snapshot", "cam", snap, bytes=10, events=(person_events[0],)))
    store.added(MediaFile("segment", "cam", segment, bytes=10, extra={"mode": "annotated"}))
    store.added(MediaFile("clip", "other", tmp_path / "not-ours.mp4", bytes=10))  # a source it does not hold
    store.flush()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT kind, path FROM media ORDER BY id").fetchall() == [
            ("clip", "cam-clip-0001.mp4"),
            ("snapshot", "cam-event-0001.jpg"),
            ("segment", "rec/cam/2026-12-01/09.00.00.mp4"),
        ], "paths inside the store's folder are kept relative to it"
    store.removed([segment, tmp_path / "never-listed.mp4"])
    store.flush()
    assert reader.review(person["id"]) is not None
    store.removed([clip, snap])
    store.close()
    assert reader.review(person["id"]) is None
    assert all(reader.event(e) is None for e in person_events)
    left, _ = reader.reviews(ReviewQuery())
    assert [i["objects"] for i in left] == [["dog"]]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM media").fetchone()[0] == 0
        assert (
            db.execute("SELECT count(*) FROM review_labels WHERE review_id = ?", (person["id"],)).fetchone()[
                0
            ]
            == 0
        )
        assert (
            db.execute("SELECT count(*) FROM thumbnails WHERE review_id = ?", (person["id"],)).fetchone()[0]
            == 0
        )


def test_items_a_dead_run_left_open_are_shown_ended_and_ended_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = EventStore(path)
    lane = Lane(store)
    lane.reviewer.frame(feed_frame(10), WALL0 + 1)
    record = stamp(new_track(10), "cam", WALL0 + 1)
    lane.reviewer.event(record, WALL0 + 1)
    store.flush()
    with sqlite3.connect(path) as db:  # as if the run had been that process, killed with its item open
        db.execute("UPDATE runs SET pid = ?", (dead.pid,))
    store._db = None  # drop this run's connection unclosed, like a killed process
    reader = StoreReader(path)
    (item,), _ = reader.reviews(ReviewQuery())
    assert not item["in_progress"] and item["end_time"] == pytest.approx(WALL0 + 1)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT end_time FROM reviews").fetchone()[0] is None
    again = EventStore(path)
    two_items(again)
    again.close()
    with sqlite3.connect(path) as db:
        first = db.execute("SELECT end_time, data FROM reviews ORDER BY start_time LIMIT 1").fetchone()
        assert first[0] == pytest.approx(WALL0 + 1) and json.loads(first[1])["end_time"] == pytest.approx(
            WALL0 + 1
        )
        assert db.execute("SELECT count(*) FROM runs WHERE ended IS NULL").fetchone()[0] == 0


def feed_frame(i: int) -> Any:
    from test_reviews import frame

    return frame(i, {7: (0, 0.8, 40.0)})


def test_a_run_given_a_foreign_store_stops_before_anything_starts(
    sample_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from detector.cli import main

    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = path.read_bytes()
    argv = ["run", str(sample_clip), "--model", str(tmp_path / "no-model-needed"), "--events-db", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a detector event store" in err, err
    assert path.read_bytes() == before
