"""Megabytes of event snapshots per hour on a busy camera, before and after bounded snapshots (issue 29,
item 3); not a test.

    python tests/measure_snapshots.py [--width 1920] [--frames 377] [--choices]

car-detection.mp4 (a parking lot seen from above, cars driving across), scaled to ``--width`` (1920:
the 1080p street of the issue; 0: as it is, 768x432) into a temporary file, is run through ``detector
run --track --clip-on CLASSES --clips DIR`` twice: as snapshots were before (the whole frame at full
resolution, JPEG quality 90: ``--snapshot-width 16384 --snapshot-quality 90``) and at the defaults
(and, with ``--choices``, per item and cropped to the object). Prints, for each, the snapshots made,
their mean and largest size, and MB per hour (bytes / seconds of video x 3600), and the ratio
after/before. ``PYTHONPATH`` picks the code measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import imageio_ffmpeg

CLIP = "car-detection.mp4"
FPS = 12.5
CLASSES = ["car", "cell phone", "truck", "bus", "suitcase"]  # what the model calls cars seen from above
BEFORE = ["--snapshot-width", "16384", "--snapshot-quality", "90"]


def scaled(source: Path, width: int, out: Path) -> Path:
    if not width:
        return source
    path = out / f"busy-{width}.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source)]
    cmd += ["-vf", f"scale={width}:-2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", str(path)]
    subprocess.run(cmd, check=True, timeout=600)
    return path


def one_run(video: Path, frames: int, extra: list[str], out: Path) -> dict[str, Any]:
    clips = out / "clips"
    cmd = [sys.executable, "-m", "detector", "run", str(video), "--track", "--clip-on", *CLASSES]
    cmd += ["--clips", str(clips), "--max-frames", str(frames), "--events-db", "off", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    subprocess.run(cmd, check=True, capture_output=True, timeout=1800, env={**env, "YOLO_OFFLINE": "1"})
    sizes = [p.stat().st_size for p in clips.glob("*.jpg")]
    seconds = frames / FPS
    return {
        "snapshots": len(sizes),
        "mean_kb": round(sum(sizes) / len(sizes) / 1000, 1) if sizes else 0,
        "max_kb": round(max(sizes) / 1000, 1) if sizes else 0,
        "mb_per_hour": round(sum(sizes) / seconds * 3600 / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=1920, help="scale the footage to this width (0: as is)")
    parser.add_argument("--frames", type=int, default=377, help="frames measured (the clip has 377)")
    parser.add_argument(
        "--choices", action="store_true", help="also --snapshots per-item, --snapshot-area object"
    )
    args = parser.parse_args()
    source = Path(os.environ.get("DETECTOR_TEST_VIDEOS", "../shared/videos")) / CLIP
    with tempfile.TemporaryDirectory() as tmp:
        video = scaled(source, args.width, Path(tmp))
        before = one_run(video, args.frames, BEFORE, Path(tmp) / "before")
        after = one_run(video, args.frames, [], Path(tmp) / "after")
        choices = {}
        if args.choices:
            choices["per_item"] = one_run(video, args.frames, ["--snapshots", "per-item"], Path(tmp) / "item")
            choices["object"] = one_run(
                video, args.frames, ["--snapshot-area", "object"], Path(tmp) / "object"
            )
    ratio = round(after["mb_per_hour"] / before["mb_per_hour"], 3) if before["mb_per_hour"] else None
    summary = {"width": args.width or 768, "seconds": args.frames / FPS, "before": before, "after": after}
    print(json.dumps({**summary, "ratio_after_to_before": ratio, **choices}, indent=2))


if __name__ == "__main__":
    main()
