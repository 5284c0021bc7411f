"""Soak: thousands of frames through the real pipeline, video and JSONL sinks, with a fast fake detector.

Memory must stay flat (RSS after warm-up vs at the end), no stage thread may outlive the run, and
the outputs must hold every frame. Runtime: ~70 s on 2 cores (18000 frames = a 10-minute clip, 320x240).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeDetector, decode, write_clip

from detector.pipeline.engine import Pipeline
from detector.settings.model import EncoderSettings
from detector.sinks.jsonl import JsonLinesSink, read_jsonl
from detector.sinks.video import VideoWriterSink
from detector.sources import open_source
from detector.stages.overlay import OverlayStage
from detector.types import FrameResult

pytestmark = pytest.mark.slow

FRAMES = 18000  # 10 minutes at 30 fps
SIZE = (320, 240)
FPS = Fraction(30)
WARMUP = 600
MAX_GROWTH_MB = 30.0  # measured: ~1.5 MB


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def long_clip(path: Path) -> Path:
    """FRAMES frames of a white square moving over a gradient (x264 ultrafast: a few seconds)."""
    return write_clip(path, FRAMES, SIZE, FPS, options={"preset": "ultrafast", "crf": "30"})


class RssProbe:
    """A sink that samples RSS: once after warm-up, then every 500 frames."""

    def __init__(self) -> None:
        self.samples: dict[int, float] = {}

    def write(self, result: FrameResult) -> None:
        i = result.frame.index
        if i == WARMUP or (i > WARMUP and i % 500 == 0) or i == FRAMES - 1:
            self.samples[i] = rss_mb()

    def event(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def soak(folder: str) -> dict[str, Any]:
    """The run itself; executed in a fresh process so RSS reflects this run, not earlier tests."""
    tmp_path = Path(folder)
    clip = long_clip(tmp_path / "long.mp4")
    video, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    source = open_source(str(clip))
    probe = RssProbe()
    sinks = [
        JsonLinesSink(js),
        VideoWriterSink(video, fps=FPS, live=False, encoder=EncoderSettings(preset="ultrafast")),
        probe,
    ]
    pipe = Pipeline.single(source, FakeDetector(), [OverlayStage()], sinks)
    threads_before = set(threading.enumerate())
    started = time.perf_counter()
    [stats] = pipe.run()
    seconds = time.perf_counter() - started
    time.sleep(0.2)
    return {
        "frames": stats.frames_processed,
        "dropped": stats.frames_dropped,
        "seconds": seconds,
        "warm": probe.samples[WARMUP],
        "peak": max(probe.samples.values()),
        "end": rss_mb(),
        "left": [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()],
        "video": str(video),
        "jsonl": str(js),
    }


def test_soak_memory_flat_threads_gone_outputs_complete(tmp_path: Path) -> None:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import test_soak; "
        "print(json.dumps(test_soak.soak(sys.argv[2])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    growth = r["peak"] - r["warm"]
    report = (
        f"soak: {r['frames']} frames in {r['seconds']:.1f} s ({r['frames'] / r['seconds']:.0f} fps); "
        f"RSS after {WARMUP} frames {r['warm']:.1f} MB, peak {r['peak']:.1f} MB, "
        f"at the end {r['end']:.1f} MB, growth {growth:+.1f} MB"
    )
    print(report)  # shown with -rP
    assert r["frames"] == FRAMES and r["dropped"] == 0
    assert growth < MAX_GROWTH_MB, report
    assert r["end"] - r["warm"] < MAX_GROWTH_MB, report
    assert not r["left"], f"threads still running after the run: {r['left']}"

    records = read_jsonl(Path(r["jsonl"]))
    assert [x["frame"] for x in records] == list(range(FRAMES))
    assert sum(1 for x in records if x["detections"]) > FRAMES * 0.95, "the fake detector sees the square"
    _, n, rate, size, codec = decode(Path(r["video"]))
    assert (n, rate, size, codec) == (FRAMES, FPS, SIZE, "h264")
