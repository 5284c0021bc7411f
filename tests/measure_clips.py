"""How long the lane stalls when a long clip is finished (issue 27, bug 3); not a test.

    python tests/measure_clips.py [--seconds 120] [--repeat 2] [--width 1920]

Frames of car-detection.mp4 (looped, scaled to ``--width``) go through a video sink with a clip
recorder and a reviewer, as a lane runs them: one object in view for ``--seconds``, so one item and
one clip of that length. Each lane step (``sink.write`` and ``reviewer.frame``) is timed. The clip
is finished in the step after it settles: ``finisher`` (the recorder's Finisher thread, as now) or
``inline`` (the old way: the trailer and the faststart rewrite run inside that step). Paired, in
turn, ``--repeat`` times. Prints, per mode, the step that finished the clip (the stall), the slowest
and the median step, the clip's size, and the ratio of the finishing steps (medians over the
repeats).
``PYTHONPATH`` picks the code measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from detector.events import LineCross, stamp
from detector.reviews import Reviewer
from detector.sinks import clips as clips_mod
from detector.sinks.video import VideoWriterSink
from detector.storage.clipfolder import ClipFolder
from detector.storage.clips import ClipRecorder
from detector.types import Detections, Frame, FrameResult

CLIP = "car-detection.mp4"


class Inline:
    """The old way: a clip finished inside the lane's call."""

    def __init__(self, name: str) -> None:
        pass

    def submit(self, job: Callable[[], None]) -> None:
        job()

    def close(self, timeout: float = 120.0) -> None:
        pass


def source_frames(count: int, width: int) -> tuple[list[np.ndarray], float]:
    path = Path(os.environ.get("DETECTOR_TEST_VIDEOS", "../shared/videos")) / CLIP
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or 25)
        images = []
        for frame in c.decode(stream):
            image = frame.to_ndarray(format="bgr24")
            if width and width != image.shape[1]:  # a 1080p street, as in the issue
                image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1] / 2) * 2))
            images.append(image)
            if len(images) == count:
                break
    return images, fps


def one_run(mode: str, images: list[np.ndarray], fps: float, seconds: float, out: Path) -> dict[str, Any]:
    clips_mod.Finisher = clips_mod_finisher if mode == "finisher" else Inline  # type: ignore[misc]
    folder = out / mode
    recorder = ClipRecorder(ClipFolder(folder), before=1.0, after=1.0, source="cam", gap=2.0)
    reviewer = Reviewer("cam", [recorder], gap=2.0)
    sink = VideoWriterSink(None, fps=Fraction(fps).limit_denominator(1000), live=False, outputs=[recorder])
    h, w = images[0].shape[:2]
    seen_until = round(seconds * fps)
    steps: list[float] = []
    finish_step = None  # the step in which the clip was finished (inline) or handed over
    for i in range(seen_until + round(6 * fps)):
        t = i / fps
        dets = Detections.empty({0: "car"})
        if i <= seen_until:
            dets = Detections(
                xyxy=np.array([[w / 4, h / 4, w / 2, h / 2]], np.float32),
                confidence=np.array([0.9], np.float32), class_id=np.array([0]), tracker_id=np.array([1]),
                names={0: "car"},
            )  # fmt: skip
        image = images[i % len(images)]
        result = FrameResult(Frame(image=image, index=i, pts=t, capture_time=t), dets, image, fps)
        started = time.perf_counter()
        sink.write(result)
        reviewer.frame(result, 1e9 + t)
        if i == 2:
            record = stamp(LineCross(line="l", track_id=1, class_name="car", direction="in", frame=i, pts=t),
                           "cam", 1e9 + t)  # fmt: skip
            reviewer.event(record, 1e9 + t)
            recorder.attach(record)
        steps.append((time.perf_counter() - started) * 1000)
        if finish_step is None and i > 2 and not recorder.open:
            finish_step = steps[-1]
    reviewer.finish()
    sink.close()
    size = sum(p.stat().st_size for p in folder.glob("*.mp4"))
    return {
        "mode": mode,
        "finish_step_ms": None if finish_step is None else round(finish_step, 1),
        "slowest_step_ms": round(max(steps), 1),
        "median_step_ms": round(statistics.median(steps), 2),
        "clip_mb": round(size / 1e6, 1),
        "clips": len(list(folder.glob("*.mp4"))),
    }


clips_mod_finisher = clips_mod.Finisher


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the item (and clip)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--width", type=int, default=1920, help="frames scaled to this width (0: as they are)"
    )
    args = parser.parse_args()
    images, fps = source_frames(60, args.width)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            for mode in ("inline", "finisher") if k % 2 == 0 else ("finisher", "inline"):
                out = Path(tmp) / str(k)
                row = one_run(mode, images, fps, args.seconds, out)
                rows.append(row)
                print(json.dumps(row), flush=True)
    inline = statistics.median(r["finish_step_ms"] for r in rows if r["mode"] == "inline")
    finisher = statistics.median(r["finish_step_ms"] for r in rows if r["mode"] == "finisher")
    summary = {"seconds": args.seconds, "size": f"{images[0].shape[1]}x{images[0].shape[0]}",
               "stall_ms_inline": inline, "stall_ms_finisher": finisher,
               "stall_ratio_finisher_to_inline": round(finisher / inline, 3)}  # fmt: skip
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.exit(main())
