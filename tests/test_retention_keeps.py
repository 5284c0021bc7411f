"""Retention keeps what it should and stays inside its folders (issues 29 and 30): each source's
newest segment and clip are never deleted (a cap too small for them says what it needs instead),
symlinked folders lead nowhere, a file only named like ours is never deleted, a future mtime counts,
a file that cannot be deleted is said once, a killed run's leftovers are taken stock of, the store
says when retention deleted an item, and two writers of one index lose no line to a rewrite.
The real runs are in test_retention_runs.py."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from test_retention import DAY, put, segment
from test_store import Lane, two_items
from test_web_server import metrics
from web_client import get, wait_for

from detector.catalog import Catalogs, MediaFile
from detector.errors import UserError
from detector.eventstore.queries import ReviewQuery, StoreReader
from detector.eventstore.writer import EventStore
from detector.settings import Settings
from detector.settings.storage import size_text
from detector.sinks.jsonl import JsonLinesSink, read_jsonl
from detector.sinks.paths import check_clips_dir
from detector.storage.retention import Limits, Retention, Unit, choose, needs
from detector.storage.segments import SegmentList
from detector.storage.setup import Storage
from detector.web.config import ServeConfig
from detector.web.view import WebView


def unit(source: str, name: str, end: float, size: int = 100, kind: str = "segment") -> Unit:
    path = Path(f"/rec/{source}/2026-01-01/{name}.mp4") if kind == "segment" else Path(f"/c/{name}.mp4")
    return Unit([MediaFile(kind, source, path, end=end, bytes=size)])  # type: ignore[arg-type]


def kept_names(units: list[Unit], doomed: list) -> list[str]:  # type: ignore[type-arg]
    gone = {id(d.unit) for d in doomed}
    return sorted(u.files[0].path.stem for u in units if id(u) not in gone)


# -- the policy -------------------------------------------------------------------------------------------
def test_a_cap_smaller_than_the_room_keeps_each_sources_newest_segment() -> None:
    """Issue 29: room for three 73 MB segments per source is more than a 200 MB cap; retention
    deleted every finished segment of both cameras. Now each camera's newest stays."""
    mb = 1_000_000
    units = [unit(cam, f"{cam}-{i}", 1000.0 + i, 73 * mb) for cam in ("street", "campus") for i in range(3)]
    headroom = 2 * 3 * 73 * mb
    doomed = choose({Path("/rec"): units}, Limits(max_size=200 * mb), now=2000.0, free=None,
                    headroom={Path("/rec"): headroom})  # fmt: skip
    assert kept_names(units, doomed) == ["campus-2", "street-2"]
    assert needs(units, headroom=headroom) == 2 * 73 * mb + headroom, "the two newest and the room"
    assert "holds 438.0 MB, 438.0 MB kept for what is being written: over 200.0 MB" in doomed[0].why


def test_the_newest_clip_of_each_source_stays_whatever_the_limits() -> None:
    """Issue 29: the only clip of a camera (and with it its review item) went at Ctrl-C."""
    now = 100 * DAY
    units = [
        unit("front", "front-clip-0001", now - 9 * DAY, 500, "clip"),
        unit("front", "front-clip-0002", now - 8 * DAY, 500, "clip"),
        unit("yard", "yard-clip-0001", now - 9 * DAY, 500, "clip"),
    ]
    doomed = choose({Path("/c"): units}, Limits(days=1, max_size=1, min_free=10**12), now=now, free=0,
                    headroom={Path("/c"): 10**6})  # fmt: skip
    assert kept_names(units, doomed) == ["front-clip-0002", "yard-clip-0001"]


# -- on real files ----------------------------------------------------------------------------------------
def watched(
    root: Path, limits: Limits, kind: str = "recordings", catalogs: Catalogs | None = None
) -> Retention:
    catalogs = catalogs or Catalogs()
    retention = Retention(limits, catalogs)
    catalogs.add(retention)
    retention.watch(root, kind)  # type: ignore[arg-type]
    retention.start(background=False)
    return retention


def test_symlinked_folders_and_fake_files_survive(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 30: a source's or a day's folder that is a symlink was walked and old files in its
    target deleted; a user's text file named ``10.00.00.mp4`` was deleted."""
    root, outside = tmp_path / "rec", tmp_path / "elsewhere"
    mine = [segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=10 - i) for i in range(3)]
    theirs = [segment(outside, "cam", "2026-01-01", f"10.00.0{i}", days_old=10) for i in range(3)]
    (root / "yard").symlink_to(outside / "cam")  # a source folder that leads out
    (root / "door" / "2026-01-02").symlink_to(outside / "cam" / "2026-01-01")  # a day folder too
    text = put(root / "door" / "2026-01-01" / "09.00.00.mp4", b"my notes, not a video\n", 30)
    caplog.set_level(logging.INFO, "detector.storage")
    retention = watched(root, Limits(days=1, max_size=1))
    retention.added(  # told of a file under a symlinked folder: not deleted either
        MediaFile("segment", "door", root / "door" / "2026-01-02" / "10.00.00.mp4", end=1.0, bytes=10)
    )
    for _ in range(3):
        retention.check()
    retention.close()
    assert all(p.exists() for p in theirs), "nothing outside the folder is deleted"
    assert text.read_bytes() == b"my notes, not a video\n", "a file only named like ours stays"
    assert [p.exists() for p in mine] == [False, False, True], "ours go, but the newest"
    said = [r.getMessage() for r in caplog.records]
    assert sum("symlink to a folder: not walked" in m for m in said) == 2, said
    assert sum(f"left {text}: not an MP4 or JPEG of ours" in m for m in said) == 1, said
    assert sum("is a symlink, not a folder of" in m for m in said) == 1, said


def test_a_file_that_cannot_be_deleted_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 30: logged at every check. (As root no permission stops an unlink: it is made to fail.)"""
    root = tmp_path / "rec"
    stuck, newest = (segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=5 - i) for i in range(2))
    unlink = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self == stuck:
            raise PermissionError(13, "Permission denied")
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    caplog.set_level(logging.WARNING, "detector.storage")
    retention = watched(root, Limits(days=1))
    for _ in range(4):
        retention.check()
    assert stuck.exists() and newest.exists()
    said = [r.getMessage() for r in caplog.records if "cannot delete it" in r.getMessage()]
    assert said == [f"retention: left {stuck}: cannot delete it: Permission denied"]


def test_a_segment_with_a_future_mtime_counts_against_the_cap(tmp_path: Path) -> None:
    """Issue 30: a file dated ahead was taken for one being written and never counted."""
    root = tmp_path / "rec"
    block = os.statvfs(tmp_path).f_frsize
    old = [segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=3 - i, size=block) for i in range(3)]
    ahead = segment(root, "door", "2026-01-02", "10.00.00", days_old=-2, size=block)
    # counted: 4 blocks and room for 3 more, over a cap of 6: the oldest goes
    retention = watched(root, Limits(max_size=6 * block))
    doomed = retention.check()
    assert [d.unit.files[0].path for d in doomed] == [old[0].absolute()]
    assert ahead.exists() and old[1].exists()


def test_a_cap_too_small_is_said_with_the_size_it_needs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "rec"
    block = os.statvfs(tmp_path).f_frsize
    for i in range(3):
        segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=1, size=block)
    caplog.set_level(logging.WARNING, "detector.storage")
    retention = watched(root, Limits(max_size=2 * block))
    retention.check()
    retention.check()
    [short] = retention.shortfalls()
    assert short["needs_bytes"] == 4 * block, "the newest segment and room for three"
    assert retention.report()["folders"][str(root.absolute())]["needs_bytes"] == 4 * block
    said = [r.getMessage() for r in caplog.records if "needs" in r.getMessage()]
    assert len(said) == 1 and f"set retain.max_size to {size_text(4 * block)} or more" in said[0], said


def test_a_killed_runs_leftovers_are_taken_stock_of(tmp_path: Path) -> None:
    """Issue 30: after ``kill -9`` and a restart the killed run's last segment stayed unlisted, its
    reserved (empty) next one on disk, and its last clip out of the store."""
    root = tmp_path / "rec"
    listed = segment(root, "door", "2026-01-01", "10.00.00", days_old=0.01)
    unlisted = segment(root, "door", "2026-01-01", "10.00.10", days_old=0.01)
    empty = put(root / "door" / "2026-01-01" / "10.00.20.mp4", b"", 0.01)
    busy = put(root / "door" / "2026-01-01" / "10.00.30.mp4", b"", 0)  # another run may fill it now
    segments = SegmentList(root)
    segments.added(MediaFile("segment", "door", listed.absolute(), start=1.0, end=2.0, bytes=1000))
    retention = watched(root, Limits(), catalogs=Catalogs([segments]))
    retention.close()
    segments.close()
    assert not empty.exists() and busy.exists()
    paths = [line["path"] for line in read_jsonl(root / "segments.jsonl")]
    assert paths == ["door/2026-01-01/10.00.00.mp4", "door/2026-01-01/10.00.10.mp4"]
    assert unlisted.exists()

    store_path = tmp_path / "clips" / "events.db"
    store = EventStore(store_path)
    lane = two_items(store)  # the killed run's items and events made it to the store; its clip did not
    store.flush()
    person = next(i for i in StoreReader(store_path).reviews(ReviewQuery())[0] if i["objects"] == ["person"])
    clip = put(tmp_path / "clips" / "cam-clip-0001.mp4", b"\0" * 100, 0.01)
    events = tuple(r["id"] for r in lane.sent if r["track_id"] == 7)
    catalogs = Catalogs([store])
    catalogs.listed = lambda folder: [MediaFile("clip", "cam", clip.absolute(), events=events)]  # type: ignore[method-assign]
    watched(tmp_path / "clips", Limits(), "clips", catalogs).close()
    store.close()
    item = StoreReader(store_path).review(person["id"])
    assert item is not None and [m["name"] for m in item["media"] if m["kind"] == "clip"] == [clip.name]


def test_the_store_says_when_retention_deleted_an_item(tmp_path: Path) -> None:
    """Issue 29: a link to a deleted item got a bare 404; the page can now say what became of it."""
    path = tmp_path / "events.db"
    store = EventStore(path)
    lane: Lane = two_items(store)
    store.flush()
    reader = StoreReader(path)
    person = next(i for i in reader.reviews(ReviewQuery())[0] if i["objects"] == ["person"])
    clip = tmp_path / "cam-clip-0001.mp4"
    events = tuple(r["id"] for r in lane.sent if r["track_id"] == 7)
    store.added(MediaFile("clip", "cam", clip, bytes=10, events=events, extra={"review": person["id"]}))
    store.flush()
    assert reader.deleted(person["id"]) is None, "still there"
    before = time.time()
    store.removed([clip])
    store.close()
    assert reader.review(person["id"]) is None
    gone = reader.deleted(person["id"])
    assert gone is not None and gone["reason"] == "retention" and gone["source"] == "cam"
    assert before <= gone["deleted_at"] <= time.time() and gone["start_time"] == person["start_time"]
    assert reader.deleted("never-was") is None


def test_an_index_rewritten_by_another_writer_loses_no_appended_line(tmp_path: Path) -> None:
    """Issue 30: two runs share a folder; one's retention replaced ``segments.jsonl`` while the other
    appended to its open descriptor of the old file, and its lines were lost. Two sinks of one file
    are two runs' descriptors."""
    path = tmp_path / "segments.jsonl"
    appender, rewriter = JsonLinesSink(path, append=True), JsonLinesSink(path, append=True)
    rewriter.write_record({"path": "doomed", "n": -1})
    written: list[int] = []
    stop = threading.Event()

    def append() -> None:
        n = 0
        while not stop.is_set() and n < 20_000:
            appender.write_record({"path": "kept", "n": n})
            written.append(n)
            n += 1

    thread = threading.Thread(target=append)
    thread.start()
    rewrites = 0
    deadline = time.monotonic() + 60  # a bound only: the loop ends on what both did, not on time
    while (rewrites <= 10 or len(written) <= 100) and time.monotonic() < deadline:
        rewriter.write_record({"path": "doomed", "n": -1})
        rewrites += rewriter.drop_lines(lambda line: line["path"] == "doomed")
        time.sleep(0.001)  # the appender's turn, also on a loaded machine
    stop.set()
    thread.join(10)
    appender.close()
    rewriter.close()
    lines = read_jsonl(path)
    assert rewrites > 10 and len(written) > 100, "both wrote while the other did"
    assert [line["n"] for line in lines if line["path"] == "kept"] == written, "every appended line"


def test_healthz_says_a_cap_too_small_and_metrics_what_du_says(tmp_path: Path) -> None:
    """Issue 29: ``detector_storage_used_bytes`` read 0 mid-run while ``du`` showed 190 MB (retention
    had deleted every finished segment: it counted only those); a cap too small is said on
    ``/healthz`` (still 200: recording goes on)."""
    root = tmp_path / "rec"
    block = os.statvfs(tmp_path).f_frsize
    for i in range(3):
        segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=1, size=block)
    open_one = put(root / "door" / "2026-01-02" / "10.00.00.mp4", b"\0" * 5 * block, 0)  # being written
    settings = Settings.model_validate({"record": {"dir": str(root)}, "retain": {"max_size": 2 * block}})
    storage = Storage(settings, Catalogs())
    view = WebView(ServeConfig("127.0.0.1", 0, token=None)).start()
    try:
        view.set_storage(storage)
        storage.start([])
        wait_for("the first check", lambda: storage.retention.checks > 0)
        reply = get(view.url, "/healthz")
        assert reply.status == 200 and reply.json()["retention_short"] == [
            {"folder": str(root.absolute()), "max_size": 2 * block, "needs_bytes": 5 * block}
        ], "the newest segment, room for three and segments.jsonl (the segments found got their lines)"
        used = metrics(view.url)[f"detector_storage_used_bytes{{folder={root.absolute()}}}"]
        du = sum(p.lstat().st_blocks * 512 for p in root.rglob("*"))
        assert used == du >= 6 * block, "the open file counts too"
        assert open_one.exists()
    finally:
        storage.close()
        view.close()


def test_runs_started_at_once_into_one_new_folder_all_pass_its_check(tmp_path: Path) -> None:
    """Two runs sharing a folder that does not exist yet: one's check made and removed a file at its
    name, and the other, checking at that moment, was told "recording folder rec is a file"."""
    refused: list[str] = []
    for i in range(100):
        folder = tmp_path / f"rec{i}"
        start = threading.Barrier(4)

        def check(folder: Path = folder, start: threading.Barrier = start) -> None:
            start.wait(10)
            try:
                check_clips_dir(folder, False, what="recording folder")
            except UserError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=check) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert refused == []
