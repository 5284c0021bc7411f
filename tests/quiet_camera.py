"""Issue 23's "quiet camera", made with the ffmpeg that imageio-ffmpeg ships: a fixed camera that is
still most of the time.

From a stretch of real footage (the doorway clip by default), cut into pieces of ``moving`` seconds,
each piece is preceded by its own first frame frozen for ``still`` seconds: the scene stops, then goes
on from where it stopped, so there is no jump. Sensor noise (``noise=alls=6:allf=t``, new on every
frame) covers the whole stream, so a frozen frame is not a copy of the one before it. Keyframes every
second let a server start the stream at any whole second (``StreamServer(offset=...)``).

    python tests/quiet_camera.py OUT.mp4 [--start 15] [--cycles 3]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import imageio_ffmpeg

DOORWAY = "one-by-one-person-detection.mp4"
NOISE = "noise=alls=6:allf=t"


def ffmpeg(*args: str, timeout: float = 600) -> None:
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([exe, "-y", "-loglevel", "error", *args], check=True, timeout=timeout)


def make_quiet_camera(
    clip: Path,
    out: Path,
    *,
    start: float = 15.0,
    cycles: int = 3,
    still: float = 8.0,
    moving: float = 2.0,
    size: tuple[int, int] = (1280, 720),
    fps: int = 10,
) -> Path:
    """Write the quiet camera to ``out`` (H.264 MP4): ``cycles`` times ``still`` s frozen, then
    ``moving`` s of ``clip`` (from ``start`` s on, the pieces in order)."""
    w, h = size
    pieces = [f"[p{k}]" for k in range(cycles)]
    graph = [f"[0:v]scale={w}:{h},fps={fps},setsar=1,split={cycles}{''.join(pieces)}"]
    for k in range(cycles):
        graph.append(
            f"[p{k}]trim=start={k * moving:g}:end={(k + 1) * moving:g},setpts=PTS-STARTPTS,"
            f"tpad=start_mode=clone:start_duration={still:g}[c{k}]"
        )
    joined = "".join(f"[c{k}]" for k in range(cycles))
    graph.append(f"{joined}concat=n={cycles}:v=1:a=0,{NOISE},format=yuv420p[v]")
    ffmpeg(
        "-ss", f"{start:g}", "-t", f"{cycles * moving:g}", "-i", str(clip),
        "-filter_complex", ";".join(graph), "-map", "[v]",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", str(fps), "-an", str(out),
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--clip", type=Path, default=Path("/work/shared/videos") / DOORWAY)
    parser.add_argument("--start", type=float, default=15.0)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    make_quiet_camera(args.clip, args.out, start=args.start, cycles=args.cycles)


if __name__ == "__main__":
    main()
