"""Heatmap: where the detections were over the run, as a colour map over a frame of the video.

Each kept detection (of ``class_ids``, all when None) adds one count at its box centre to a grid of
cells (about 480 across the frame's long side, so memory and time stay small at any resolution).
Rendering smooths the counts with a Gaussian of 2% of the frame diagonal, scales them to their 99.5th
percentile, colours them with OpenCV's TURBO map (dark blue to bright red) and blends that over the
background with an opacity that follows the square root of the heat (rarely visited places still show).

The background is the emptiest frame seen (fewest detections, checked once a second), taken at
``Layer.BACKGROUND``: after privacy covering, before anything is drawn, so it is covered like every
other output. With ``overlay.heatmap`` the map so far is drawn live under the boxes, re-rendered twice
a second.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from detector.stages.base import Layer, Stage, StageResult
from detector.stages.classes import class_mask
from detector.stages.geometry import anchor_points
from detector.types import Detections, Frame, Image

log = logging.getLogger(__name__)

GRID_CELLS = 480  # cells along the long side of the frame
SIGMA = 0.02  # smoothing, as a fraction of the frame diagonal
OPACITY = 0.65  # of the hottest place
TOP_INDEX = 230  # of TURBO's 255: its last tenth darkens to maroon, which reads as cold on a dark scene
BACKGROUND_EVERY_S = 1.0
LIVE_EVERY_S = 0.5

FloatImage = npt.NDArray[np.float32]


class HeatmapStage(Stage):
    name = "heatmap"
    layer = Layer.BACKGROUND

    def __init__(
        self,
        frame_size: tuple[int, int],
        class_ids: Sequence[int] | None,
        names: Mapping[int, str],
        *,
        live: bool = False,
    ) -> None:
        w, h = frame_size
        self.size = (w, h)
        self.class_ids = None if class_ids is None else list(class_ids)
        self.class_names = None if class_ids is None else [names.get(i, str(i)) for i in class_ids]
        self.live = live
        self.cell = max(1.0, max(w, h) / GRID_CELLS)
        self.grid = np.zeros((math.ceil(h / self.cell), math.ceil(w / self.cell)), np.float32)
        self.points = 0
        self.background: Image | None = None
        self._background_count = math.inf
        self._background_due = -math.inf
        self._count = 0
        self._pts = 0.0
        self._live_due = -math.inf
        self._live: tuple[tuple[int, int, int, int], Image, FloatImage, FloatImage] | None = None

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        self._count, self._pts = len(detections), frame.pts
        if len(detections):
            keep = class_mask(detections, self.class_ids)
            centres = anchor_points(detections.xyxy[keep], "center") / self.cell
            if len(centres):
                gh, gw = self.grid.shape
                xs = np.clip(np.nan_to_num(centres[:, 0]), 0, gw - 1).astype(np.intp)
                ys = np.clip(np.nan_to_num(centres[:, 1]), 0, gh - 1).astype(np.intp)
                np.add.at(self.grid, (ys, xs), 1.0)
                self.points += len(xs)
        return StageResult(detections)

    def annotate(self, scene: Image, detections: Detections) -> Image:
        if self._pts >= self._background_due or self.background is None:
            self._background_due = self._pts + BACKGROUND_EVERY_S
            if self._count < self._background_count:
                self.background, self._background_count = scene.copy(), self._count
        if self.live:
            self._draw_live(scene)
        return scene

    # -- rendering ----------------------------------------------------------------------------------
    def heat(self) -> FloatImage:
        """The smoothed heat at grid resolution, scaled to [0, 1]."""
        sigma = SIGMA * math.hypot(*self.size) / self.cell
        heat = cv2.GaussianBlur(self.grid, (0, 0), sigma)
        positive = heat[heat > heat.max() * 1e-3]
        top = float(np.percentile(positive, 99.5)) if positive.size else 0.0
        if top <= 0:
            return np.zeros_like(heat)
        return np.clip(heat / top, 0.0, 1.0)

    def colour(self, size: tuple[int, int]) -> tuple[Image, FloatImage]:
        """The colour map and its per-pixel opacity at ``size`` (width, height)."""
        level = cv2.resize(self.heat(), size, interpolation=cv2.INTER_LINEAR)
        coloured = np.asarray(
            cv2.applyColorMap(np.rint(level * TOP_INDEX).astype(np.uint8), cv2.COLORMAP_TURBO), dtype=np.uint8
        )
        weight = (OPACITY * np.sqrt(level)).astype(np.float32)
        weight[level < 0.01] = 0.0
        return coloured, weight

    def render(self, base: Image | None = None) -> Image:
        """The heatmap blended over ``base`` (default: the background frame), at the source's size."""
        w, h = self.size
        if base is None:
            base = self.background if self.background is not None else np.zeros((h, w, 3), np.uint8)
        if (base.shape[1], base.shape[0]) != (w, h):
            base = np.asarray(cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        coloured, weight = self.colour((w, h))
        return np.asarray(cv2.blendLinear(base, coloured, 1.0 - weight, weight), dtype=np.uint8)

    def _draw_live(self, scene: Image) -> None:
        if self._pts >= self._live_due:
            self._live_due = self._pts + LIVE_EVERY_S
            coloured, weight = self.colour((scene.shape[1], scene.shape[0]))
            ys, xs = np.nonzero(weight)
            if len(xs) == 0:
                self._live = None
            else:  # only the rectangle that has heat is blended each frame
                x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
                w = np.ascontiguousarray(weight[y0:y1, x0:x1])
                self._live = ((x0, y0, x1, y1), np.ascontiguousarray(coloured[y0:y1, x0:x1]), 1.0 - w, w)
        if self._live is not None:
            (x0, y0, x1, y1), coloured, keep, add = self._live
            roi = scene[y0:y1, x0:x1]
            if roi.shape[:2] == keep.shape:  # a frame of another size (a camera that changed) is left alone
                roi[:] = cv2.blendLinear(roi, coloured, keep, add)

    def report(self) -> dict[str, Any]:
        return {"heatmap": {"classes": self.class_names, "points": self.points}}
