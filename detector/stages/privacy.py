"""Privacy: blur or pixelate detections of chosen classes, and cover fixed polygons, in every output.

The stage runs first: ``update`` remembers the boxes to cover from *all* detections (before the class
filter, ignore masks or tracking can remove one), and ``annotate`` covers them at ``Layer.PRIVACY``,
the bottom layer, on the annotated copy before anything is drawn on it. Everything made from that
copy (the video, clips, snapshots, the window, the web view, the heatmap's background) is covered;
the untouched frame only goes to the model and the tracker. On a frame the model skipped (motion
gating, ``--detect-fps``) the detections are the last ones, so ``annotate`` also covers the boxes of
those classes where the tracker carried the objects since.

Covers (OpenCV only; a region is shrunk and grown back, which costs about as much as copying it):

* ``blur``: the region shrunk to at most ``_BLUR_CELLS`` pixels across its short side, smoothed and
  scaled back up: shapes and colours stay, faces and plates do not;
* ``pixelate``: blocks of 1/``_PIXEL_BLOCKS`` of the short side (at least 6 px), edges softened;
* ``fill``: solid black (``privacy_masks`` only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detector.settings.analytics import Cover, PrivacyMaskSpec
from detector.stages.base import Layer, Stage, StageResult
from detector.stages.classes import class_mask
from detector.stages.geometry import resolve_points
from detector.types import Detections, Frame, Image, Inference

log = logging.getLogger(__name__)

_BLUR_CELLS = 8  # a blurred box keeps this many pixels of detail across its short side
_PIXEL_BLOCKS = 8  # a pixelated box is this many blocks across its short side
_MIN_BLOCK = 6
_Box = tuple[int, int, int, int, Cover]
_PAD = 0.05  # boxes grow by this fraction of their size on each side: detections are often tight


def _shrink(region: Image, width: int, height: int) -> Image:
    """``region`` averaged down to ``width`` x ``height``. A large region is first sampled every few
    pixels (about 8 samples a side per output pixel): the same averages to within noise, at 1/20 of the
    cost of averaging every pixel of a 1080p person."""
    h, w = region.shape[:2]
    step = max(1, min(w // max(1, width), h // max(1, height)) // 8)
    return np.asarray(cv2.resize(region[::step, ::step], (width, height), interpolation=cv2.INTER_AREA))


def blur(region: Image, out: Image | None = None) -> Image:
    """``region`` heavily blurred, into ``out`` (may be ``region`` itself; default a new image)."""
    h, w = region.shape[:2]
    scale = min(1.0, _BLUR_CELLS / max(1, min(w, h)))
    small = _shrink(region, max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), dtype=np.uint8)
    return np.asarray(cv2.resize(small, (w, h), dst=out, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def pixelate(region: Image, out: Image | None = None) -> Image:
    """``region`` as coarse blocks of its average colours, into ``out`` (may be ``region``)."""
    h, w = region.shape[:2]
    block = max(_MIN_BLOCK, min(w, h) // _PIXEL_BLOCKS)
    small = _shrink(region, max(1, math.ceil(w / block)), max(1, math.ceil(h / block)))
    blocks = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    # Soften the block edges by a pixel: the grid itself is not detail, and hard edges would read as it.
    return np.asarray(cv2.blur(blocks, (3, 3), dst=out), dtype=np.uint8)


def cover(region: Image, how: Cover, out: Image | None = None) -> Image:
    """``region`` covered ``how``, into ``out`` (may be ``region`` itself; default a new image)."""
    if how == "blur":
        return blur(region, out)
    if how == "pixelate":
        return pixelate(region, out)
    if out is None:
        return np.zeros_like(region)
    out[:] = 0
    return out


@dataclass(frozen=True)
class _Mask:
    """A privacy polygon: its bounding rectangle and which pixels of that rectangle it covers."""

    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    inside: npt.NDArray[np.bool_]  # (y1 - y0, x1 - x0)
    how: Cover


def _mask(spec: PrivacyMaskSpec, frame_size: tuple[int, int]) -> _Mask | None:
    w, h = frame_size
    pts = np.rint(resolve_points(spec.polygon, frame_size)).astype(np.int32)
    x, y, bw, bh = cv2.boundingRect(pts)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
    if x1 <= x0 or y1 <= y0:
        log.warning("privacy mask %s lies outside the %dx%d frame", spec.name or spec.polygon, w, h)
        return None
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(inside, [pts - np.array([x0, y0], np.int32)], 1)
    return _Mask((x0, y0, x1, y1), inside.astype(bool), spec.cover)


class PrivacyStage(Stage):
    """Covers detections of ``blur_ids`` / ``pixelate_ids`` (pixelate wins for a class in both) and the
    ``masks`` polygons, in every annotated frame."""

    name = "privacy"
    layer = Layer.PRIVACY

    def __init__(
        self,
        blur_ids: Sequence[int] | None,
        pixelate_ids: Sequence[int] | None,
        masks: Sequence[PrivacyMaskSpec],
        frame_size: tuple[int, int],
    ) -> None:
        self.blur_ids = list(blur_ids or [])
        self.pixelate_ids = list(pixelate_ids or [])
        self.masks = [m for m in (_mask(spec, frame_size) for spec in masks) if m is not None]
        self.covered = 0  # detections covered over the run
        self._boxes: list[_Box] = []
        self._skipped = False  # the latest frame skipped the model

    def update(self, frame: Frame, detections: Detections) -> StageResult:
        self._boxes = self._to_cover(detections, frame.width, frame.height)
        self.covered += len(self._boxes)
        self._skipped = frame.inference is not Inference.RAN
        return StageResult(detections)

    def _to_cover(self, detections: Detections, width: int, height: int) -> list[_Box]:
        boxes: list[_Box] = []
        kinds: list[tuple[list[int], Cover]] = [(self.blur_ids, "blur"), (self.pixelate_ids, "pixelate")]
        for ids, how in kinds:
            if not ids or not len(detections):
                continue
            for box in detections.xyxy[class_mask(detections, ids)]:
                x0, y0, x1, y1 = _padded(box, width, height)
                if x1 > x0 and y1 > y0:
                    boxes.append((x0, y0, x1, y1, how))
        return boxes

    def annotate(self, scene: Image, detections: Detections) -> Image:
        boxes = self._boxes
        if self._skipped:  # the model skipped this frame: its detections are the last ones, so cover
            # where the tracker puts the objects now as well (--detect-fps: they moved on since)
            boxes = boxes + self._to_cover(detections, scene.shape[1], scene.shape[0])
        for mask in self.masks:
            x0, y0, x1, y1 = mask.rect
            roi = scene[y0:y1, x0:x1]
            np.copyto(roi, cover(roi, mask.how), where=mask.inside[..., None])
        # Pixelated boxes last: for one object in both lists, the pixelation is what stays.
        for x0, y0, x1, y1, how in sorted(boxes, key=lambda b: b[4] == "pixelate"):
            roi = scene[y0:y1, x0:x1]
            cover(roi, how, out=roi)
        return scene

    def report(self) -> dict[str, object]:
        return {"privacy": {"covered_detections": self.covered, "masks": len(self.masks)}}


def _padded(box: npt.NDArray[np.float32], width: int, height: int) -> tuple[int, int, int, int]:
    """The box grown by ``_PAD`` on each side, in whole pixels inside the frame."""
    x1, y1, x2, y2 = (float(v) if math.isfinite(float(v)) else 0.0 for v in box)
    dx, dy = (x2 - x1) * _PAD, (y2 - y1) * _PAD
    return (
        int(min(max(0.0, math.floor(x1 - dx)), width)),
        int(min(max(0.0, math.floor(y1 - dy)), height)),
        int(min(max(0.0, math.ceil(x2 + dx)), width)),
        int(min(max(0.0, math.ceil(y2 + dy)), height)),
    )
