"""Outputs on a real disk that fills (tmpfs mounts; CI runs as root), sink by sink, no model: each keeps
what it had (an MP4 plays up to its last whole fragment, a JSONL keeps whole lines), says so once
(``StorageError``), and the ones that can write again do once there is room."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_clips import crossing, result

from detector.catalog import MediaFile
from detector.errors import StorageError
from detector.events import stamp
from detector.media.encoder import H264Encoder
from detector.media.mp4writer import Mp4Writer
from detector.reviews import Reviewer
from detector.settings.model import EncoderSettings
from detector.sinks.jsonl import JsonLinesSink, read_jsonl
from detector.sinks.video import VideoWriterSink
from detector.storage.clipfolder import ClipFolder, EventsFile
from detector.storage.clips import ClipRecorder
from detector.storage.segments import SegmentList


def fill(disk: Path, leave: int = 0) -> Path:
    """Someone else's file taking all of ``disk`` but ``leave`` bytes."""
    path = disk / "theirs.bin"
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    st = os.statvfs(disk)
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave + st.f_bavail * st.f_frsize))
    return path


def whole_frames(path: Path) -> int:
    """Frames that decode: every packet but a torn last one (the one being written when the disk
    filled), which only the last may be."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = [p for p in c.demux(stream) if p.size]
        assert not any(p.is_corrupt for p in packets[:-1]), f"{path}: a torn packet before the last"
        whole = [p for p in packets if not p.is_corrupt]
        return sum(len(stream.decode(p)) for p in whole) + len(stream.decode(None))


def noise(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_a_last_fragment_lost_at_close_is_found(small_disk: Callable[[str], Path]) -> None:
    """PyAV's ``close`` says nothing when the trailer (the last fragment) does not fit: the writer finds
    it by the file's size and raises the full disk; the file plays its whole fragments."""
    disk = small_disk("400k")
    enc = H264Encoder(fps=Fraction(10), live=False, fragment_seconds=1.0)
    writer = Mp4Writer(disk / "a.mp4", enc)
    for i in range(25):  # two whole fragments (keyframes at 0, 10, 20), the third still buffered
        for packet in enc.encode(noise(i), 0.0, i / 10):
            writer.write(packet)
    fill(disk)
    with pytest.raises(StorageError, match="No space left on device; the video up to here is kept"):
        writer.close()
    assert writer.failed == "No space left on device"
    assert 20 <= whole_frames(disk / "a.mp4") < 25, "the two whole fragments (and what fit of the third)"


def test_jsonl_keeps_whole_lines_and_says_so_once(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("64k")
    sink = JsonLinesSink(disk / "out.jsonl")
    raised = 0
    for i in range(2000):
        try:
            sink.write(result(i))
        except StorageError as exc:
            raised += 1
            assert exc.reason == "No space left on device"
    sink.close()
    assert raised == 1, "once, then the sink takes no more"
    lines = (disk / "out.jsonl").read_bytes()
    assert lines.endswith(b"\n"), "no torn last line"
    assert [r["frame"] for r in read_jsonl(disk / "out.jsonl")] == list(range(len(lines.splitlines())))


def test_clips_cut_short_and_whole_again_once_there_is_room(small_disk: Callable[[str], Path]) -> None:
    """A clip the disk fills under is closed playable (its whole fragments); the error is raised once,
    from the video sink; once space is freed the next event's clip is whole and ``on_resumed`` is
    told; events.jsonl keeps whole lines throughout."""
    disk = small_disk("1m")
    folder = ClipFolder(disk / "clips")
    resumed: list[str] = []
    listed: list[MediaFile] = []

    class Catalog:
        def added(self, media: MediaFile) -> None:
            listed.append(media)

        def removed(self, paths: object) -> None:
            pass

    recorder = ClipRecorder(
        folder, before=1.0, after=1.0, source="cam", catalog=Catalog(), on_resumed=resumed.append, gap=1.0
    )
    reviewer = Reviewer("cam", [recorder], gap=1.0)  # one item (and clip) per event group, as a lane has
    index = EventsFile(folder)
    sink = VideoWriterSink(
        None, fps=Fraction(10), live=False, encoder=EncoderSettings(threads=2, crf=0), outputs=[recorder]
    )
    theirs: Path | None = None
    raised: list[StorageError] = []
    for i in range(160):
        if i == 30:
            theirs = fill(disk, leave=20_000)  # the first clip (events at 20 and 28) fills the rest
        if i == 90 and theirs is not None:
            theirs.unlink()
        frame = result(i, seen=20 <= i <= 30 or 120 <= i <= 125)
        try:
            sink.write(frame)
        except StorageError as exc:
            raised.extend(exc.all())
        reviewer.frame(frame, 1e9 + i / 10)
        if i in (20, 28, 120):
            stamped = stamp(crossing(i), "cam", time.time())
            reviewer.event(stamped, 1e9 + i / 10)
            record = recorder.attach(stamped)
            try:
                index.event(record)
            except StorageError as exc:
                raised.extend(exc.all())
    reviewer.finish()
    sink.close()
    index.close()
    clips = [m for m in listed if m.kind == "clip"]
    assert len(clips) == 2, listed
    assert clips[0].extra.get("incomplete") == "No space left on device"
    assert "incomplete" not in clips[1].extra
    assert raised and raised[0].key == recorder.key, "the clip recorder's full disk, raised"
    assert len([e for e in raised if e.key == recorder.key]) == 1, "once"
    assert resumed == [recorder.key], "told when a clip was whole again"
    assert 1 <= whole_frames(clips[0].path) < 30, "cut short, and plays"
    assert whole_frames(clips[1].path) >= 20
    assert (disk / "clips" / "events.jsonl").read_bytes().endswith(b"\n")


def test_segment_lines_a_full_disk_kept_out_are_written_later(small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("64k")
    segments = SegmentList(disk / "rec")
    day = disk / "rec" / "cam" / "2026-01-01"
    media = [MediaFile("segment", "cam", day / f"10.00.0{i}.mp4", start=1.0, end=2.0) for i in range(3)]
    theirs = fill(disk)  # not a page left for the list's first line
    with pytest.raises(StorageError):
        segments.added(media[0])
    segments.added(media[1])  # no second error: kept out too
    assert (disk / "rec" / "segments.jsonl").read_bytes() == b""
    theirs.unlink()
    segments.added(media[2])
    segments.close()
    listed = [line["path"] for line in read_jsonl(disk / "rec" / "segments.jsonl")]
    assert listed == [f"cam/2026-01-01/10.00.0{i}.mp4" for i in range(3)], "in order, none lost"
