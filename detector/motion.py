"""A cheap motion check: where did a frame change, against a slowly updated picture of the scene?

Meant to run on every frame of a fixed camera, so that the model runs only when something moves.
On a small grey copy of the frame (``width`` pixels wide, 320 by default; downscaled, then blurred,
so that sensor noise and compression flicker average out):

1. the background is a running average of past frames (``cv2.accumulateWeighted``, weight ``alpha``
   for the new frame: with 0.05, a change fades into the background in about 20 frames);
2. a pixel *changed* when it differs from the background by more than ``threshold`` (grey levels,
   0-255);
3. pixels inside an ignore mask never change (polygons in source-frame pixels, or fractions of the
   frame when every coordinate is within [0, 1], as for zones: swaying trees, clocks, burned-in
   timestamps);
4. the changed pixels are dilated, so the parts of one moving object join up, and each connected
   region with at least ``min_area`` of changed pixels (a fraction of the frame's area, so that it
   means the same at every resolution; counted before the dilation) is a motion box,
5. if something in it changed since the previous frame too (by more than ``threshold``, at a tenth
   of ``min_area`` of its pixels at least). A region that differs from the background alone is a
   *ghost*: where an object was (or how the light was) before it moved off or stopped, still fading
   from the background, for ~20 frames at alpha 0.05. It is no motion: nothing is moving there now.

The first frame only starts the background: it has no motion. Boxes are in source-frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detector.settings.analytics import Point
from detector.stages.geometry import resolve_points
from detector.types import FloatArray, Image


@dataclass(frozen=True)
class Motion:
    """What moved in one frame: boxes (N, 4) as corners in source pixels, biggest first."""

    boxes: FloatArray

    @property
    def moving(self) -> bool:
        return len(self.boxes) > 0


NO_MOTION = Motion(np.zeros((0, 4), np.float32))
_KERNEL = np.ones((3, 3), np.uint8)


class MotionDetector:
    """Motion boxes, frame after frame, for one source of ``frame_size`` (width, height)."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        *,
        threshold: int = 25,
        min_area: float = 0.0005,
        masks: Sequence[Sequence[Point]] = (),
        width: int = 320,
        alpha: float = 0.05,
    ) -> None:
        if not 0 < threshold < 255:
            raise ValueError(f"threshold must be within (0, 255) grey levels, got {threshold}")
        if not 0 < min_area <= 1:
            raise ValueError(f"min_area is a fraction of the frame, within (0, 1], got {min_area}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be within (0, 1], got {alpha}")
        w, h = frame_size
        self.frame_size = (w, h)
        self.size = (min(width, w), max(1, round(h * min(width, w) / w)))  # the small copy's (w, h)
        self.threshold, self.alpha = threshold, alpha
        self.min_pixels = min_area * self.size[0] * self.size[1]
        self._scale = np.array([w / self.size[0], h / self.size[1]] * 2, np.float32)
        self._watched = self._mask(masks) if masks else None
        self._background: np.ndarray | None = None
        self._previous: np.ndarray | None = None  # the last frame's small grey copy

    def _mask(self, masks: Sequence[Sequence[Point]]) -> np.ndarray:
        """255 where motion counts, 0 inside the ignore polygons (on the small copy)."""
        watched = np.full(self.size[::-1], 255, np.uint8)
        small = np.array(self.size, np.float64) / np.array(self.frame_size, np.float64)
        polygons = [np.rint(resolve_points(m, self.frame_size) * small).astype(np.int32) for m in masks]
        cv2.fillPoly(watched, polygons, 0)
        return watched

    def detect(self, image: Image) -> Motion:
        """The motion boxes of this frame (the frame then joins the background)."""
        h, w = image.shape[:2]
        if (w, h) != self.frame_size:
            raise ValueError(f"frame is {w}x{h}, the motion detector was made for {self.frame_size}")
        # INTER_LINEAR reads only 2x2 source pixels per output pixel: ~8x cheaper than INTER_AREA at
        # 1080p, and the blur after it does the averaging that noise needs.
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        previous, self._previous = self._previous, grey
        if self._background is None or previous is None:
            self._background = grey.astype(np.float32)
            return NO_MOTION
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(grey, self._background, self.alpha)
        if self._watched is not None:
            diff = cv2.bitwise_and(diff, self._watched)
        _, changed = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        if not cv2.countNonZero(changed):
            return NO_MOTION
        # Connected regions of the dilated mask (the outer contours of cv2.findContours, with their
        # boxes and labels in one call); a region's area counts its changed pixels, before dilation.
        joined = cv2.dilate(changed, _KERNEL, iterations=2)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        area = np.bincount(labels[changed > 0], minlength=count)
        now = cv2.absdiff(grey, previous) > self.threshold  # what changed since the previous frame
        moving = np.bincount(labels[now & (changed > 0)], minlength=count)
        keep = [
            i
            for i in np.argsort(-area)
            if i > 0 and area[i] >= self.min_pixels and moving[i] >= self.min_pixels / 10
        ]
        if not keep:
            return NO_MOTION
        x, y, bw, bh = stats[keep, :4].T.astype(np.float32)
        return Motion(np.stack([x, y, x + bw, y + bh], axis=1) * self._scale)
