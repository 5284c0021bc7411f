"""The motion check on clips made with ffmpeg: a still camera with sensor noise shows no motion, real
motion shows, the boxes cover the moving object, and an ignore mask over it hides it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_clip
from quiet_camera import NOISE, ffmpeg  # NOISE: issue 23's sensor noise, new on every frame

from detector.motion import MotionDetector
from detector.types import Image

FPS = 10
STILL_S, MOVING_S = 4, 2


def frames(path: Path) -> Iterator[Image]:
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield image
    finally:
        cap.release()


@pytest.fixture(scope="module")
def quiet_camera(videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1280x720 at 10 fps: the doorway clip's first frame, frozen, for 4 s, then 2 s of the clip
    from 17 s (a person walks to the door), all with sensor noise."""
    out = tmp_path_factory.mktemp("motion")
    clip = videos_dir / "one-by-one-person-detection.mp4"
    ffmpeg("-i", str(clip), "-frames:v", "1", "-update", "1", str(out / "still.png"))
    scaled = f"scale=1280:720,fps={FPS},setsar=1"
    ffmpeg(
        "-loop", "1", "-t", str(STILL_S), "-i", str(out / "still.png"),
        "-ss", "17", "-t", str(MOVING_S), "-i", str(clip),
        "-filter_complex", f"[0:v]{scaled}[a];[1:v]{scaled}[b];[a][b]concat=n=2:v=1,{NOISE},format=yuv420p",
        "-c:v", "libx264", "-crf", "23", str(out / "quiet.mp4"),
    )  # fmt: skip
    return out / "quiet.mp4"


@pytest.fixture(scope="module")
def quiet_motion(quiet_camera: Path) -> dict[int, list[bool]]:
    """Per threshold (the default, 25, and a low one), whether each frame had motion."""
    detectors = {t: MotionDetector((1280, 720), threshold=t) for t in (25, 8)}
    moving: dict[int, list[bool]] = {t: [] for t in detectors}
    for image in frames(quiet_camera):
        for t, detector in detectors.items():
            moving[t].append(detector.detect(image).moving)
    assert all(len(m) == FPS * (STILL_S + MOVING_S) for m in moving.values())
    return moving


def test_a_still_camera_with_sensor_noise_shows_no_motion(quiet_motion: dict[int, list[bool]]) -> None:
    """Noise differs by up to ~23 grey levels pixel to pixel; the downscale and the blur bring it
    under 4, so even a threshold of 8 sees nothing."""
    for threshold, moving in quiet_motion.items():
        still = moving[: FPS * STILL_S]
        assert sum(still) == 0, (
            f"threshold {threshold}: motion on frames {[i for i, m in enumerate(still) if m]}"
        )


def test_real_motion_shows(quiet_motion: dict[int, list[bool]]) -> None:
    moving = quiet_motion[25][FPS * STILL_S :]
    assert moving[0], "the cut from the frozen picture to the live one is a change"
    assert sum(moving) >= 0.7 * len(moving), moving


def _square_clip(tmp_path: Path, noise: bool = True) -> tuple[Path, list[tuple[int, int, int, int]]]:
    """``write_clip``'s white square crossing a 640x360 gradient in 40 frames, with sensor noise;
    and where the square is on each frame."""
    w, h, n = 640, 360, 40
    raw = write_clip(tmp_path / "square.mp4", frames=n, size=(w, h), fps=FPS)  # type: ignore[arg-type]
    squares = [(x := int((w - 40) * i / (n - 1)), h // 2 - 20, x + 40, h // 2 + 20) for i in range(n)]
    if not noise:
        return raw, squares
    ffmpeg("-i", str(raw), "-vf", f"{NOISE},format=yuv420p", "-c:v", "libx264", str(tmp_path / "noisy.mp4"))
    return tmp_path / "noisy.mp4", squares


def _overlaps(box: np.ndarray, square: tuple[int, int, int, int]) -> bool:
    return bool(box[0] < square[2] and square[0] < box[2] and box[1] < square[3] and square[1] < box[3])


def test_motion_boxes_cover_the_moving_object(tmp_path: Path) -> None:
    clip, squares = _square_clip(tmp_path)
    detector = MotionDetector((640, 360))
    found = [detector.detect(image) for image in frames(clip)]
    assert not found[0].moving, "the first frame only starts the background"
    for i, (motion, square) in enumerate(zip(found[1:], squares[1:], strict=True), 1):
        assert motion.moving, i
        assert _overlaps(motion.boxes[0], square), (i, motion.boxes.tolist(), square)
        assert all(box[1] > 100 and box[3] < 260 for box in motion.boxes), (i, motion.boxes.tolist())


def test_an_ignore_mask_over_the_moving_object_hides_it(tmp_path: Path) -> None:
    clip, _ = _square_clip(tmp_path)
    band = [(0.0, 0.3), (1.0, 0.3), (1.0, 0.7), (0.0, 0.7)]  # fractions: the square's path
    elsewhere = [(0, 0), (640, 0), (640, 60), (0, 60)]  # pixels: a strip at the top
    hidden, masked_elsewhere = (
        MotionDetector((640, 360), masks=[band]),
        MotionDetector((640, 360), masks=[elsewhere]),
    )
    images = list(frames(clip))
    assert not any(hidden.detect(image).moving for image in images)
    assert sum(masked_elsewhere.detect(image).moving for image in images) == len(images) - 1


def test_min_area_is_a_fraction_of_the_frame() -> None:
    """A 16x16 px change is 0.11% of 640x360: motion at min_area 0.0005, none at 0.005."""
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), np.uint8), (15, 15), 0)
    small, big = MotionDetector((640, 360), min_area=0.0005), MotionDetector((640, 360), min_area=0.005)
    for detector in (small, big):
        detector.detect(scene)
    moved = scene.copy()
    moved[200:216, 300:316] = 255
    a, b = small.detect(moved), big.detect(moved)
    assert a.moving and not b.moving
    x0, y0, x1, y1 = a.boxes[0]
    assert x0 <= 300 and y0 <= 200 and x1 >= 316 and y1 >= 216, a.boxes
    assert x1 - x0 < 40 and y1 - y0 < 40, "the box is about the changed square, in source pixels"


def test_the_frame_must_have_the_size_it_was_made_for() -> None:
    with pytest.raises(ValueError, match="640x360"):
        MotionDetector((1280, 720)).detect(np.zeros((360, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="min_area"):
        MotionDetector((640, 360), min_area=5)


def test_an_object_that_stops_leaves_no_ghost_motion() -> None:
    """A square slides for 1 s, then stands still: the background takes ~20 frames to forget where it
    was, but nothing moves there any more, so there is no motion from the frame after it stops."""
    rng = np.random.default_rng(2)
    base = np.tile(np.linspace(40, 200, 640, dtype=np.uint8), (360, 1))
    detector = MotionDetector((640, 360))
    moving = []
    for i in range(40):
        image = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
        x = 100 + 12 * min(i, 10)  # moves on frames 1-10, then stays
        cv2.rectangle(image, (x, 160), (x + 40, 200), (255, 255, 255), -1)
        noisy = np.clip(image.astype(np.int16) + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
        moving.append(detector.detect(noisy).moving)
    assert all(moving[1:11]), moving
    assert not any(moving[11:]), [i for i, m in enumerate(moving) if m]
