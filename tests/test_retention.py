"""Retention's choices (``storage.retention.choose``), and retention on real files: only our names under
our folders go, oldest first, a clip with its snapshots and its ``events.jsonl`` lines, the segment's
``segments.jsonl`` line, while other threads go on appending. Sizes as users write them."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from detector.catalog import Catalogs, MediaFile
from detector.events import LineCross, stamp
from detector.settings.storage import parse_size
from detector.sinks.jsonl import read_jsonl
from detector.storage.clipfolder import ClipFolder, EventsFile
from detector.storage.layout import claim_segment, media_stem
from detector.storage.retention import Limits, Retention, Unit, choose
from detector.storage.segments import SegmentList

DAY = 86400.0


def unit(name: str, end: float, size: int = 100) -> Unit:
    return Unit([MediaFile("segment", "cam", Path(f"/rec/cam/2026-01-01/{name}.mp4"), end=end, bytes=size)])


def names(doomed: list) -> list[str]:  # type: ignore[type-arg]
    return [d.unit.files[0].path.stem for d in doomed]


# -- choose -----------------------------------------------------------------------------------------------
def test_over_the_size_cap_the_oldest_go_first() -> None:
    folder = Path("/rec")
    units = [unit(f"{i:02d}", end=1000.0 + i) for i in (5, 1, 9, 3, 7, 2, 8, 4, 6, 0)]  # 10 x 100 B
    doomed = choose({folder: units}, Limits(max_size=550), now=2000.0, free=None, headroom={})
    assert names(doomed) == ["00", "01", "02", "03", "04"], "oldest first, until 500 B are left"
    assert [d.why for d in doomed[:2]] == [
        "/rec holds 1.0 kB, 0 B kept for what is being written: over 550 B",
        "/rec holds 900 B, 0 B kept for what is being written: over 550 B",
    ], "what the folder holds as each goes"


def test_the_room_for_what_is_being_written_counts_against_the_cap() -> None:
    folder = Path("/rec")
    units = [unit(f"{i:02d}", end=1000.0 + i) for i in range(10)]
    doomed = choose({folder: units}, Limits(max_size=550), now=2000.0, free=None, headroom={folder: 200})
    assert names(doomed) == [f"{i:02d}" for i in range(7)], "300 B left, plus 200 B being written"


def test_a_folders_index_counts_against_its_cap_but_not_against_free_space() -> None:
    """The index files are part of the folder (``du`` counts them) but are already on the disk: they
    take nothing from the free space ``min_free`` keeps."""
    folder = Path("/rec")
    units = [unit(f"{i:02d}", end=1000.0 + i) for i in range(10)]
    capped = choose(
        {folder: units}, Limits(max_size=550), now=2000.0, free=None, headroom={}, held={folder: 100}
    )
    assert names(capped) == [f"{i:02d}" for i in range(6)], "400 B left, plus the 100 B index"
    freed = choose(
        {folder: units}, Limits(min_free=300), now=2000.0, free=100, headroom={}, held={folder: 100}
    )
    assert names(freed) == ["00", "01"], "200 B more free: the index takes nothing"


def test_old_units_go_whatever_the_size() -> None:
    folder = Path("/rec")
    now = 100 * DAY
    units = [unit("new", now - 0.5 * DAY), unit("old", now - 3 * DAY), unit("edge", now - 2 * DAY + 1)]
    doomed = choose({folder: units}, Limits(days=2), now=now, free=None, headroom={})
    assert names(doomed) == ["old"] and doomed[0].why == "older than 2 days"


def test_a_unit_is_deleted_once_when_several_limits_want_it() -> None:
    folder = Path("/rec")
    now = 100 * DAY
    units = [unit(f"{i}", now - (5 - i) * DAY) for i in range(5)]  # 4, 3, 2, 1, 0 days old
    doomed = choose(
        {folder: units}, Limits(days=2.5, max_size=150, min_free=10_000), now=now, free=0, headroom={}
    )
    assert names(doomed) == ["0", "1", "2", "3"], "the newest segment stays, whatever the limits"
    assert [d.why for d in doomed[:3]] == ["older than 2.5 days"] * 3


def test_min_free_takes_the_oldest_across_the_folders_of_one_disk() -> None:
    rec, clips = Path("/disk/rec"), Path("/disk/clips")
    folders = {
        rec: [unit("rec-a", 10.0), unit("rec-b", 30.0), unit("rec-c", 50.0)],
        clips: [unit("clip-a", 20.0), unit("clip-b", 40.0)],
    }
    doomed = choose(folders, Limits(min_free=1000), now=100.0, free=750, headroom={rec: 50})
    assert names(doomed) == ["rec-a", "clip-a", "rec-b"], "oldest first, whichever folder: 1050 B free"
    assert {d.folder for d in doomed} == {rec, clips}


def test_nothing_goes_without_limits_or_under_them() -> None:
    folder = Path("/rec")
    units = [unit(f"{i}", float(i)) for i in range(5)]
    assert choose({folder: units}, Limits(), now=1e9, free=0, headroom={}) == []
    assert choose({folder: units}, Limits(max_size=500, min_free=10), now=1e9, free=10, headroom={}) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("50GB", 50 * 10**9), ("500MB", 500 * 10**6), ("500 mb", 500 * 10**6), ("1.5GiB", 3 * 2**29),
     ("300k", 300_000), ("2048", 2048), (4096, 4096), ("10KiB", 10240), ("1T", 10**12)],
)  # fmt: skip
def test_sizes_as_people_write_them(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["abc", "50 GBs", "-5MB", "0", "", "5XB", True])
def test_sizes_that_are_not(text: object) -> None:
    with pytest.raises(ValueError, match="should be"):
        parse_size(text)


# -- retention on real files ------------------------------------------------------------------------------
MP4 = b"\0\0\0\x20ftypisom"  # how our MP4s start (retention deletes no file that does not)
JPEG = b"\xff\xd8\xff\xe0"


def put(path: Path, data: bytes, days_old: float) -> Path:
    """``data`` at ``path`` (behind the header of an MP4 or a JPEG if ``data`` is zeros, as the name
    says), last written ``days_old`` days ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data and not data.strip(b"\0"):
        head = JPEG if path.suffix == ".jpg" else MP4
        data = head + data[len(head) :]
    path.write_bytes(data)
    t = time.time() - days_old * DAY
    os.utime(path, (t, t))
    return path


def segment(root: Path, source: str, day: str, clock: str, days_old: float, size: int = 1000) -> Path:
    return put(claim_segment(root, source, day, clock), b"\0" * size, days_old)


def test_only_our_old_segments_go_and_their_lines_with_them(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    old = [segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=10 - i) for i in range(3)]
    new = segment(root, "door", "2026-01-09", "10.00.00", days_old=0.5)
    other = segment(root, "yard-2", "2026-01-01", "09.59.59", days_old=9)  # another source: ours too
    foreign = [
        root / "notes.txt",
        root / "door" / "2026-01-01" / "holiday.mp4",  # not a segment's name
        root / "door" / "misc" / "10.00.00.mp4",  # not a day folder
        root / "10.00.00.mp4",  # not in a source's folder
        root / "door" / "2026-01-01" / ".10.00.00.123.0.tmp.mp4",  # a faststart rewrite a kill left
        root / ".hidden" / "2026-01-01" / "10.00.00.mp4",  # not a source's name
    ]
    for path in foreign:
        put(path, b"not ours", 30)
    catalogs = Catalogs()
    segments = SegmentList(root)
    catalogs.add(segments)
    for path in [*old, new, other]:
        segments.added(MediaFile("segment", path.parts[-3], path, start=1.0, end=2.0, bytes=1000))
    retention = Retention(Limits(days=2), catalogs)
    catalogs.add(retention)
    retention.watch(root, "recordings")
    retention.start(background=False)  # the test checks itself
    doomed = retention.check()
    retention.close()
    assert sorted(d.unit.files[0].path for d in doomed) == sorted(old)
    assert [p for p in old if p.exists()] == []
    assert other.exists(), "the newest segment of a source stays, whatever its age"
    assert new.exists() and all(p.exists() for p in foreign), "never a file not in our naming"
    assert [line["path"] for line in read_jsonl(root / "segments.jsonl")] == [
        "door/2026-01-09/10.00.00.mp4",
        "yard-2/2026-01-01/09.59.59.mp4",
    ]
    assert (root / "door" / "2026-01-01").exists(), "a day folder with a foreign file stays"
    assert (root / "door" / "2026-01-09").exists()
    report = retention.report()["folders"][str(root.absolute())]
    assert report["deleted_files"] == 3 and report["deleted_bytes"] == 3000


def test_a_file_written_moments_ago_is_left_alone_at_start(tmp_path: Path) -> None:
    """Another run may still be writing it; this run's own files come through the catalog."""
    root = tmp_path / "rec"
    busy = segment(root, "door", "2026-01-01", "10.00.00", days_old=0)
    retention = Retention(Limits(max_size=1), Catalogs())
    retention.watch(root, "recordings")
    retention.start(background=False)
    assert retention.check() == []
    retention.close()
    assert busy.exists()


def test_a_clip_goes_with_its_snapshots_and_lines_while_events_are_appended(tmp_path: Path) -> None:
    """The clip of an earlier run goes with its two snapshots and its two lines in events.jsonl; a
    thread appending events all the while loses none of its lines; a foreign file stays."""
    folder = ClipFolder(tmp_path / "clips")
    index = EventsFile(folder)
    clip, snaps = folder.claim("door", "clip", ".mp4"), [folder.claim("door", "event", ".jpg") for _ in "ab"]
    keep_clip, keep_snap = folder.claim("door", "clip", ".mp4"), folder.claim("door", "event", ".jpg")
    records = [
        stamp(LineCross(line="l", direction="in", frame=i, pts=i), "door", time.time()) for i in range(3)
    ]
    pairs = [(clip, snaps[0]), (clip, snaps[1]), (keep_clip, keep_snap)]
    for record, (c, s) in zip(records, pairs, strict=True):
        index.event(dataclasses.replace(record, clip=c.name, snapshot=s.name))
    for path in [clip, *snaps]:
        put(path, b"\0" * 500, 5)
    for path in (keep_clip, keep_snap):
        put(path, b"\0" * 500, 0.5)
    foreign = put(folder.folder / "door-clip-draft.mp4", b"mine", 30)
    catalogs = Catalogs([index])
    retention = Retention(Limits(days=1), catalogs)
    catalogs.add(retention)
    retention.watch(folder.folder, "clips")
    retention.start(background=False)

    appended: list[str] = []
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set() and len(appended) < 2000:
            record = stamp(LineCross(line="x", direction="out", frame=9, pts=9.0), "yard", time.time())
            index.event(dataclasses.replace(record, snapshot="yard-event-0001.jpg"))
            appended.append(record.id)

    writer = threading.Thread(target=append)
    writer.start()
    time.sleep(0.05)
    doomed = retention.check()
    stop.set()
    writer.join(10)
    retention.close()
    index.close()
    [gone] = doomed
    assert sorted(m.path.name for m in gone.unit.files) == sorted([clip.name, *(s.name for s in snaps)])
    assert not any(p.exists() for p in [clip, *snaps])
    assert keep_clip.exists() and keep_snap.exists() and foreign.exists()
    lines = read_jsonl(folder.folder / "events.jsonl")
    assert [line["id"] for line in lines if line["source"] == "door"] == [records[2].id]
    assert [line["id"] for line in lines if line["source"] == "yard"] == appended, "no appended line lost"
    assert appended, "the writer ran during the rewrite"


def test_this_runs_files_come_through_the_catalog_and_a_clip_waits_for_its_snapshot(tmp_path: Path) -> None:
    """During a run retention knows only finished files (``added``); a snapshot whose clip is still
    open is not a unit of its own, and goes with the clip once that is finished."""
    folder = tmp_path / "clips"
    folder.mkdir()
    retention = Retention(Limits(max_size=1), Catalogs())
    retention.watch(folder, "clips")
    snap = put(folder / "cam-event-0001.jpg", b"\0" * 10, 0)
    retention.added(MediaFile("snapshot", "cam", snap.absolute(), end=1.0, bytes=10, events=("e1",)))
    assert retention.check() == [] and snap.exists(), "its clip is still being written"
    clip = put(folder / "cam-clip-0001.mp4", b"\0" * 10, 0)
    retention.added(MediaFile("clip", "cam", clip.absolute(), end=2.0, bytes=10, events=("e1", "e2")))
    newer = put(folder / "cam-clip-0002.mp4", b"\0" * 10, 0)
    retention.added(MediaFile("clip", "cam", newer.absolute(), end=3.0, bytes=10))
    [gone] = retention.check()
    assert [m.path.name for m in gone.unit.files] == [clip.name, snap.name]
    assert not clip.exists() and not snap.exists() and newer.exists()


def test_the_cap_counts_the_disk_a_folder_takes_with_room_for_three_segments(tmp_path: Path) -> None:
    """A user's cap is what ``du`` says: files rounded up to the disk's blocks, the folder's index
    (``segments.jsonl``) too, and room for the open segment while the one before is closed and copied."""
    root = tmp_path / "rec"
    block = os.statvfs(tmp_path).f_frsize
    catalogs = Catalogs()
    segments = SegmentList(root)
    catalogs.add(segments)
    # 6 segments of one block and a byte: two blocks each on disk
    paths = [segment(root, "door", "2026-01-01", f"10.00.0{i}", days_old=0, size=block + 1) for i in range(6)]
    retention = Retention(Limits(max_size=9 * block), catalogs)
    catalogs.add(retention)
    retention.watch(root, "recordings")
    for i, path in enumerate(paths):
        media = MediaFile("segment", "door", path.absolute(), start=i, end=i + 1.0, bytes=block + 1)
        segments.added(media)
        retention.added(media)
    index = -(-(root / "segments.jsonl").stat().st_size // block) * block
    assert index == block, "one block of index lines"
    doomed = retention.check()
    # the index (1 block) and room for 3 x 2 blocks: 7 of 9 blocks; a segment takes 2: one is kept
    assert [d.unit.files[0].path for d in doomed] == [p.absolute() for p in paths[:5]]
    kept = sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())
    assert kept + 2 * 2 * block <= 9 * block, "with the next segment open and this one's copy, under the cap"


def test_segment_names_never_replace_a_file(tmp_path: Path) -> None:
    day, clock = media_stem(date(2026, 1, 2), 3725.9)
    assert (day, clock) == ("2026-01-02", "01.02.05"), "a file's segment: its media time"
    first = claim_segment(tmp_path, "cam", day, clock)
    first.write_bytes(b"kept")
    second = claim_segment(tmp_path, "cam", day, clock)
    assert (first.name, second.name) == ("01.02.05.mp4", "01.02.05-2.mp4")
    assert first.parent == tmp_path / "cam" / "2026-01-02" and first.read_bytes() == b"kept"


def test_taking_stock_leaves_this_runs_snapshot_waiting_for_its_clip(tmp_path: Path) -> None:
    """A snapshot this run made before the scan at start ended still waits for its clip (it is not an
    orphan of an earlier run, to be deleted on its own while its clip is written)."""
    folder = tmp_path / "clips"
    old = put(folder / "cam-event-0001.jpg", b"\0" * 10, 5)  # an earlier run's, its clip gone
    retention = Retention(Limits(max_size=1), Catalogs())
    retention.watch(folder, "clips")
    snap = put(folder / "cam-event-0002.jpg", b"\0" * 10, 0)
    retention.added(MediaFile("snapshot", "cam", snap.absolute(), end=time.time(), bytes=10, events=("e2",)))
    retention.start(background=False)
    assert [d.unit.files[0].path for d in retention.check()] == [old.absolute()]
    assert snap.exists(), "its clip is still being written"


def test_the_report_says_what_a_folder_holds_without_limits(tmp_path: Path) -> None:
    """No limits: no check ever runs, and ``/metrics`` still has what is used and free."""
    root = tmp_path / "rec"
    segment(root, "door", "2026-01-01", "10.00.00", days_old=1, size=1000)
    retention = Retention(Limits(), Catalogs())
    retention.watch(root, "recordings")
    retention.start(background=False)  # takes stock; no check follows
    new = segment(root, "door", "2026-01-02", "10.00.00", days_old=0, size=500)
    retention.added(MediaFile("segment", "door", new.absolute(), end=time.time(), bytes=500))
    [figures] = retention.report()["folders"].values()
    du = sum(p.lstat().st_blocks * 512 for p in [*root.rglob("*")])
    assert figures["used_bytes"] == du >= 1500 and figures["free_bytes"] > 0, "what du says"
    retention.close()
