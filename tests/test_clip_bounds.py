"""Clips and review items that stay bounded on a scene that never goes quiet (issue 29, item 2): at
``review.max_seconds`` or ``review.max_size`` a clip ends at a keyframe and the next item's clip goes
on from there, so the clips of one scene add up frame for frame and the store has an item per clip."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest
from test_clips import FPS, ListCatalog, crossing, result

from detector.events import stamp
from detector.media.mp4files import top_boxes
from detector.reviews import Reviewer
from detector.settings.model import EncoderSettings
from detector.sinks.video import VideoWriterSink
from detector.storage.clipfolder import ClipFolder
from detector.storage.clips import ClipRecorder

# A scene that never goes quiet for the model: a person at the table from 6.4 s on, in view throughout.
# (car-detection.mp4, the busy parking lot, is seen from above: the model finds a car there now and
# then, so an item there ends before any bound.)
BUSY = "one-by-one-person-detection.mp4"  # 10 fps


def frames_of(path: Path) -> tuple[int, float]:
    """Frames, and the time of the last one."""
    with av.open(str(path)) as c:
        times = [float(f.time) for f in c.decode(c.streams.video[0])]
    return len(times), times[-1]


@pytest.mark.model
def test_a_busy_scene_is_cut_into_clips_and_items_under_the_bound(videos_dir: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    cmd = [sys.executable, "-m", "detector", "run", str(videos_dir / BUSY), "--track", "--clip-on", "person"]
    cmd += ["--clips", str(clips), "--max-frames", "220", "--clip-max-seconds", "4", "--clip-before", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**env, "YOLO_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in clips.glob("*.mp4"))
    assert len(names) >= 3, names
    with sqlite3.connect(clips / "events.db") as db:
        items = db.execute("SELECT id FROM reviews ORDER BY start_time").fetchall()
        media = db.execute(
            "SELECT review_id, path, media_start, media_end FROM media WHERE kind = 'clip' ORDER BY path"
        ).fetchall()
    assert [Path(p).name for _, p, _, _ in media] == names
    assert len(items) == len(names) and {r for r, *_ in media} == {i for (i,) in items}, "an item per clip"
    for (_, _, start, end), name in zip(media, names, strict=True):
        frames, last = frames_of(clips / name)
        assert last < 4.0, f"{name}: {last} s, over the 4 s bound"
        boxes = [box for box, _, _ in top_boxes(clips / name)]  # finished off the lane, at the end too
        assert boxes.index("moov") < boxes.index("mdat") and "moof" not in boxes, f"{name}: faststart"
        assert frames == round((end - start) * 10) + 1, f"{name}: its frames, as the store says"
    for before, after in itertools.pairwise(media):
        assert after[2] == pytest.approx(before[3] + 0.1), "the next clip goes on at the next frame"
    assert sum(frames_of(clips / n)[0] for n in names) == round((media[-1][3] - media[0][2]) * 10) + 1


def test_a_clip_is_cut_at_its_size(tmp_path: Path) -> None:
    """``max_bytes``: the clips of a scene that never goes quiet stay under it, and follow on."""
    catalog = ListCatalog()
    recorder = ClipRecorder(
        ClipFolder(tmp_path), before=1.0, after=1.0, source="cam", catalog=catalog, gap=30.0, max_bytes=60_000
    )
    reviewer = Reviewer("cam", [recorder], gap=30.0)
    sink = VideoWriterSink(
        None, fps=Fraction(FPS), live=False, encoder=EncoderSettings(threads=1, crf=10), outputs=[recorder]
    )
    for i in range(150):
        frame = result(i)
        sink.write(frame)
        reviewer.frame(frame, 1e9 + i / FPS)
        if i == 5:
            record = stamp(crossing(i), "cam", 1e9 + i / FPS)
            reviewer.event(record, 1e9 + i / FPS)
            recorder.attach(record)
    reviewer.finish()
    sink.close()
    clips = [m for m in catalog.files if m.kind == "clip"]
    assert len(clips) >= 3
    assert all(m.bytes <= 60_000 for m in clips), [m.bytes for m in clips]
    assert sum(frames_of(m.path)[0] for m in clips) == 150, "from the first keyframe to the end, once"
    assert len({m.extra["review"] for m in clips}) == len(clips), "an item per clip"
