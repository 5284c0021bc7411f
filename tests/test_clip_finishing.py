"""A finished clip's trailer and faststart rewrite run off the lane (issue 27, bug 3): the lane's call
that finishes a clip returns while the rewrite is still going, the clip is listed once it is finished,
and at the end of a run every clip is a faststart MP4 that plays."""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from test_clips import FPS, ListCatalog, crossing, result

from detector.events import stamp
from detector.media import mp4writer as video_mod
from detector.media.mp4files import top_boxes
from detector.reviews import Reviewer
from detector.settings.model import EncoderSettings
from detector.sinks.video import VideoWriterSink
from detector.storage.clipfolder import ClipFolder
from detector.storage.clips import ClipRecorder


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def test_the_lane_does_not_wait_for_a_clip_to_be_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release, done = threading.Event(), threading.Event(), threading.Event()
    real = video_mod.faststart

    def slow_faststart(path: Path, audio: Any = None) -> bool:  # a long clip's rewrite, held up
        started.set()
        release.wait(10)
        ok = real(path, audio)
        done.set()
        return ok

    monkeypatch.setattr(video_mod, "faststart", slow_faststart)
    folder, catalog = tmp_path / "clips", ListCatalog()
    recorder = ClipRecorder(ClipFolder(folder), before=1.0, after=1.0, source="cam", catalog=catalog, gap=1.0)
    reviewer = Reviewer("cam", [recorder], gap=1.0)
    sink = VideoWriterSink(
        None, fps=Fraction(FPS), live=False, encoder=EncoderSettings(threads=1), outputs=[recorder]
    )
    events = {20: crossing(20), 70: crossing(70)}
    for i in range(60):  # the first item ends at 3 s, its clip at 4 s: finished by 5 s
        frame = result(i, seen=i in events)
        sink.write(frame)
        reviewer.frame(frame, 1000.0 + i / FPS)
        if i in events:
            record = stamp(events[i], "cam", 1000.0 + i / FPS)
            reviewer.event(record, 1000.0 + i / FPS)
            recorder.attach(record)
    assert started.wait(10), "the first clip was handed over to be finished"
    assert not done.is_set(), "the lane's calls returned while the clip was still being rewritten"
    assert catalog.files == [m for m in catalog.files if m.kind == "snapshot"], "listed once finished"
    release.set()
    for i in range(60, 100):
        frame = result(i, seen=i in events)
        sink.write(frame)
        reviewer.frame(frame, 1000.0 + i / FPS)
        if i in events:
            record = stamp(events[i], "cam", 1000.0 + i / FPS)
            reviewer.event(record, 1000.0 + i / FPS)
            recorder.attach(record)
    reviewer.finish()
    sink.close()  # waits until every clip is finished and listed
    clips = [m for m in catalog.files if m.kind == "clip"]
    assert [m.path.name for m in clips] == ["cam-clip-0001.mp4", "cam-clip-0002.mp4"]
    for media in clips:
        boxes = [box for box, _, _ in top_boxes(media.path)]
        assert "moov" in boxes and boxes.index("moov") < boxes.index("mdat"), "faststart"
        assert "moof" not in boxes and media.bytes == media.path.stat().st_size
        assert frames_in(media.path) >= 20
