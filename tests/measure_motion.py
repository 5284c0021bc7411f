"""Time the motion check per frame at 1280x720 and 1920x1080; not a test.

    PYTHONPATH=. python tests/measure_motion.py [CLIP] [--seconds 4] [--rounds 3]

Builds issue 23's "quiet camera" with ffmpeg at each size, 10 fps: the clip's first frame frozen
with sensor noise (``noise=alls=6:allf=t``), then as many seconds of the clip itself (from 17 s, a
person walking), decoded into memory. Then times ``MotionDetector.detect`` on every frame, still
and moving apart, with OpenCV's default threads and with one thread. Prints ms per frame (median,
p95) and the frames with motion.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from detector.motion import MotionDetector

DOORWAY = "/work/shared/videos/one-by-one-person-detection.mp4"


def quiet_camera(clip: str, size: tuple[int, int], seconds: int, folder: Path) -> list[np.ndarray]:
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error"]
    still, out = folder / "still.png", folder / f"quiet-{size[0]}.mp4"
    subprocess.run([*ffmpeg, "-i", clip, "-frames:v", "1", "-update", "1", str(still)], check=True)
    scaled = f"scale={size[0]}:{size[1]},fps=10,setsar=1"
    graph = f"[0:v]{scaled}[a];[1:v]{scaled}[b];[a][b]concat=n=2:v=1,noise=alls=6:allf=t,format=yuv420p"
    subprocess.run(
        [*ffmpeg, "-loop", "1", "-t", str(seconds), "-i", str(still), "-ss", "17", "-t", str(seconds),
         "-i", clip, "-filter_complex", graph, "-c:v", "libx264", str(out)],
        check=True,
    )  # fmt: skip
    cap = cv2.VideoCapture(str(out))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip", nargs="?", default=DOORWAY)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    default_threads = cv2.getNumThreads()
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((1280, 720), (1920, 1080)):
            frames = quiet_camera(args.clip, size, args.seconds, Path(tmp))
            half = len(frames) // 2
            for threads in (default_threads, 1):
                cv2.setNumThreads(threads)
                times: dict[str, list[float]] = {"still": [], "moving": []}
                moving = 0
                for _ in range(args.rounds):
                    detector = MotionDetector(size)
                    moving = 0
                    for i, image in enumerate(frames):
                        t = time.perf_counter()
                        motion = detector.detect(image)
                        times["still" if i < half else "moving"].append((time.perf_counter() - t) * 1e3)
                        moving += motion.moving
                for part, ms in times.items():
                    p95 = statistics.quantiles(ms, n=20)[-1]
                    print(f"{size[0]}x{size[1]} threads={threads} {part:6s}: "
                          f"{statistics.median(ms):.3f} ms median, {p95:.3f} ms p95")  # fmt: skip
                print(f"{size[0]}x{size[1]}: motion on {moving} of {len(frames)} frames ({half} still first)")
            cv2.setNumThreads(default_threads)


if __name__ == "__main__":
    main()
