"""Frame times of every container we read: JSONL ``pts`` rise strictly, and the annotated MP4 decoded
back is evenly spaced, for H.264 with and without B-frames, and across a timestamp reset. Clips are
made with the ffmpeg that imageio-ffmpeg ships; the run uses the fake detector (timing only).
(The variable-frame-rate case, with the real model and audio, is in test_cli_run.py.)

Runtime: ~15 s.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from conftest import FakeDetector, frame_times

from detector.compose.run import run
from detector.settings import load_settings
from detector.sources.timing import FrameClock

FPS = 10
STEP = 1 / FPS
CONTAINERS = {"avi": "avi", "mpg": "mpeg", "mkv": "matroska", "mp4": "mp4", "ts": "mpegts"}


def ffmpeg_clip(path: Path, *, seconds: float, bframes: int, start: float = 0.0) -> Path:
    """``seconds`` of testsrc2 at 10 fps (from ``start`` s of its clock), H.264 with ``bframes``. With
    x264's default preset some frames are small enough to share an MPEG-PS packet (and get no time)."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}", "-ss", str(start), "-t", str(seconds),
        "-c:v", "libx264", "-bf", str(bframes), "-pix_fmt", "yuv420p",
        "-f", CONTAINERS[path.suffix[1:]], str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=60)
    return path


def run_clip(clip: Path, tmp_path: Path) -> tuple[list[float], list[float]]:
    """Run ``clip`` to JSONL and MP4: (the JSONL pts, the MP4's frame times decoded back)."""
    js, video = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    settings = load_settings(None, {"json": str(js), "output": str(video)}, env={})
    run(str(clip), settings, detector=FakeDetector())  # type: ignore[arg-type]
    pts = [json.loads(line)["pts"] for line in js.read_text().splitlines()]
    return pts, frame_times(video)


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 4) for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize("bframes", [0, 3])
@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_frame_times_rise_and_output_is_evenly_spaced(tmp_path: Path, ext: str, bframes: int) -> None:
    clip = ffmpeg_clip(tmp_path / f"clip.{ext}", seconds=3, bframes=bframes)
    pts, out = run_clip(clip, tmp_path)
    assert len(pts) == len(out) == 30
    assert [g for g in gaps(pts) if g != STEP] == [], f"JSONL pts do not step by {STEP} s: {pts}"
    assert [g for g in gaps(out) if g != STEP] == [], f"the MP4's frames are not {STEP} s apart: {out}"


def test_joined_clips_continue_across_the_timestamp_reset(tmp_path: Path) -> None:
    """Two MPEG-TS clips concatenated (each starting at its own 0): one timeline, 4 s, no jump back."""
    a = ffmpeg_clip(tmp_path / "a.ts", seconds=2, bframes=3)
    b = ffmpeg_clip(tmp_path / "b.ts", seconds=2, bframes=3, start=30)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    pts, out = run_clip(joined, tmp_path)
    assert len(pts) == len(out) == 40
    assert [g for g in gaps(pts) if g != STEP] == [], pts
    assert [g for g in gaps(out) if g != STEP] == [], out
    assert out[-1] == pytest.approx(3.9, abs=1e-3)


def test_clock_keeps_real_gaps_but_not_a_discontinuous_containers_jumps() -> None:
    """A 20 s jump ahead is a pause in an MP4 (variable frame rate: kept), a reset in MPEG-TS (stitched)."""
    ticks = [0, 9000, 18000, 18000 + 20 * 90000, 18000 + 21 * 90000]
    times = {}
    for discontinuous in (False, True):
        clock = FrameClock(1 / 90000, STEP, discontinuous=discontinuous)
        times[discontinuous] = [round(clock.time(t, t), 6) for t in ticks]
    assert times[False] == [0, 0.1, 0.2, 20.2, 21.2]
    assert times[True] == [0, 0.1, 0.2, 0.3, 1.3]


def test_clock_fills_frames_without_times_one_frame_on() -> None:
    """MPEG-PS leaves most frames without a time: each is one frame after the one before."""
    clock = FrameClock(1 / 90000, STEP)
    ticks = [45000, None, None, 72000, None, 90000]
    assert [round(clock.time(t, t), 6) for t in ticks] == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
