"""The recorders' parts on their own, no model, no source: the raw recorder (``storage.raw``) fed
demuxed packets as a PyAV source's tap is, and the segment book's full-disk state."""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from conftest import write_clip

from detector.errors import StorageError, storage_error
from detector.storage.raw import RawRecorder
from detector.storage.recorder import RecordHooks, SegmentBook
from detector.storage.status import StorageStatus


def packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as c:
        return [p for p in c.demux(c.streams.video[0]) if p.size]


def test_a_reconnect_ends_the_segment_and_the_next_starts_at_the_new_streams_keyframe(tmp_path: Path) -> None:
    """Packets of the new stream before its first keyframe go nowhere: not into the old stream's segment
    (other timestamps, maybe another size), nor into a segment of their own."""
    first = write_clip(tmp_path / "a.mp4", frames=30, options={"g": "10", "bf": "0"})
    second = write_clip(
        tmp_path / "b.mp4", frames=30, size=(160, 120), fps=Fraction(30), options={"g": "10", "bf": "0"}
    )
    root = tmp_path / "rec"
    recorder = RawRecorder(SegmentBook(root, "cam", seconds=600, live=False, mode="raw"))
    for clip, skip in ((first, 0), (second, 5)):  # the stream came back mid-GOP
        with av.open(str(clip)) as c:
            recorder.stream(c.streams.video[0])
            for packet in list(c.demux(c.streams.video[0]))[skip:]:
                if packet.size:
                    recorder.packet(packet)
    recorder.close()
    made = sorted(root.glob("cam/*/*.mp4"), key=lambda p: (len(p.name), p.name))  # 00.00.00, 00.00.00-2
    assert [len(packets(p)) for p in made] == [30, 20], made
    with av.open(str(made[1])) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (160, 120)
    assert recorder.packets_refused == 0


def test_a_segment_that_cannot_be_opened_leaves_no_empty_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_clip(tmp_path / "a.mp4", frames=10)
    root = tmp_path / "rec"
    real_open = av.open

    def full_disk(file: Any, mode: str = "r", **kwargs: Any) -> Any:
        if mode == "w" and str(file).startswith(str(root)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, mode, **kwargs)

    recorder = RawRecorder(SegmentBook(root, "cam", seconds=600, live=False, mode="raw"))
    with av.open(str(clip)) as c:
        recorder.stream(c.streams.video[0])
        monkeypatch.setattr(av, "open", full_disk)
        for packet in c.demux(c.streams.video[0]):
            if packet.size:
                recorder.packet(packet)
        with pytest.raises(StorageError, match="No space left on device"):
            recorder.close()
    assert list(root.glob("cam/*/*")) == [], "no empty segment in our naming"


def test_a_recording_that_resumed_before_its_failure_was_reported_is_not_failing(tmp_path: Path) -> None:
    """The raw recorder's thread may find room again (and resume) before the main thread raises its
    full disk to the lane: the failure is counted, but ``/healthz`` does not stay 503 for good."""
    status = StorageStatus()
    book = SegmentBook(
        tmp_path, "cam", seconds=2, live=True, mode="raw", hooks=RecordHooks(resumed=status.resumed)
    )
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    book.failed(None, storage_error(full, tmp_path / "a.mp4", "full") or pytest.fail("a storage error"))
    book.resumed()
    with pytest.raises(StorageError) as raised:
        book.raise_pending()
    status.failed("cam", raised.value)  # what the lane does with it
    assert status.problems() == [] and status.failures_by_source() == {"cam": 1}
