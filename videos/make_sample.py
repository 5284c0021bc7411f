"""Build ``videos/sample.mp4``: an 8 s, 30 fps, 640x360 H.264 clip from the Ultralytics sample images.

A slow Ken Burns pan/zoom over ``bus.jpg`` (~4 s), a short crossfade, then over ``zidane.jpg``
(~4 s). The crop windows keep the people in view, so a detector finds them in every frame.
The output is deterministic (fixed inputs, single-threaded x264)::

    python videos/make_sample.py [--out videos/sample.mp4]
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import ultralytics

log = logging.getLogger("make_sample")

Image = npt.NDArray[np.uint8]

WIDTH, HEIGHT, FPS = 640, 360, 30
TOTAL_FRAMES = 8 * FPS  # 240
FADE_FRAMES = 12  # 0.4 s crossfade
SEGMENT_FRAMES = (TOTAL_FRAMES + FADE_FRAMES) // 2  # 126 frames per image, overlapping by FADE_FRAMES
ASSETS = Path(ultralytics.__file__).parent / "assets"
DEFAULT_OUT = Path(__file__).resolve().parent / "sample.mp4"


@dataclass(frozen=True)
class Window:
    """A 16:9 crop window in source pixels: centre and width (height follows from the aspect)."""

    cx: float
    cy: float
    w: float

    def lerp(self, other: Window, t: float) -> Window:
        return Window(
            self.cx + (other.cx - self.cx) * t,
            self.cy + (other.cy - self.cy) * t,
            self.w + (other.w - self.w) * t,
        )


@dataclass(frozen=True)
class Shot:
    image: str
    start: Window
    end: Window


# People in bus.jpg (810x1080) span y 392..904, x 0..810; in zidane.jpg (1280x720) y 42..712.
# The windows keep every head in frame; the bus shot shows the people from head to at least the knees.
SHOTS = (
    Shot("bus.jpg", Window(405.0, 525.0, 810.0), Window(400.0, 592.0, 760.0)),
    Shot("zidane.jpg", Window(640.0, 360.0, 1280.0), Window(645.0, 348.0, 1100.0)),
)


def ease(t: float) -> float:
    """Smoothstep: starts and ends at rest, so the motion has no jerk at the cuts."""
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def prescale(image: Image, shot: Shot) -> tuple[Image, float]:
    """Downscale once (INTER_AREA) so per-frame sampling is near 1:1 and does not alias."""
    factor = min(shot.start.w, shot.end.w) / WIDTH
    if factor <= 1.0:
        return image, 1.0
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
    return small, factor


def render(image: Image, win: Window, factor: float) -> Image:
    """Crop ``win`` (source pixels) out of the prescaled ``image`` and resize it to WIDTH x HEIGHT.

    Done as one affine warp so the window moves by sub-pixel amounts (an integer crop
    followed by ``cv2.resize`` makes a slow pan judder).
    """
    scale = WIDTH / win.w  # output pixels per source pixel
    x0, y0 = win.cx - win.w / 2.0, win.cy - win.w * HEIGHT / WIDTH / 2.0
    s = scale * factor  # output pixels per prescaled pixel
    m = np.array([[s, 0.0, -x0 * scale + 0.5 * (s - 1)], [0.0, s, -y0 * scale + 0.5 * (s - 1)]])
    return cv2.warpAffine(image, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def frames() -> list[Image]:
    shots = []
    for shot in SHOTS:
        path = ASSETS / shot.image
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {path}")
        shots.append((shot, *prescale(image, shot)))

    def shot_frame(k: int, i: int) -> Image:
        shot, image, factor = shots[k]
        t = ease(i / (SEGMENT_FRAMES - 1))
        return render(image, shot.start.lerp(shot.end, t), factor)

    second_start = TOTAL_FRAMES - SEGMENT_FRAMES
    out: list[Image] = []
    for n in range(TOTAL_FRAMES):
        if n < second_start:
            out.append(shot_frame(0, n))
        elif n >= SEGMENT_FRAMES:
            out.append(shot_frame(1, n - second_start))
        else:
            alpha = (n - second_start + 1) / (FADE_FRAMES + 1)
            a, b = shot_frame(0, n), shot_frame(1, n - second_start)
            out.append(cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0))
    return out


def encode(images: list[Image], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as container:
        stream = container.add_stream(
            "libx264",
            rate=FPS,
            options={"crf": "28", "preset": "slow", "threads": "1", "x264-params": "keyint=60:min-keyint=30"},
        )
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = 2 * FPS
        stream.codec_context.time_base = Fraction(1, FPS)
        for pts, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    encode(frames(), args.out)
    log.info("wrote %s (%d frames, %.0f KB)", args.out, TOTAL_FRAMES, args.out.stat().st_size / 1024)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
