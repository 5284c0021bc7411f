"""Shared helpers for lines and zones: point resolution, anchors, class filters, labels.

Coordinate rule (lines and zones): points are pixels of the source frame, unless
*every* coordinate of the shape lies within [0, 1], in which case they are fractions
of the frame width (x) and height (y). So ``[[0.5, 0], [0.5, 1]]`` is a vertical line
through the middle of any frame, and a pixel shape must use at least one value above 1.

Anchor: the point of a box that is tested against a line or zone. ``bottom_center``
(default) is where a person's feet or a vehicle's wheels touch the ground, which is
what a line painted on the floor or a zone drawn on the road means; ``center`` suits
objects seen from above.
"""

from __future__ import annotations

import difflib
import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from detector.errors import UserError
from detector.overlay import class_color
from detector.types import Detections

log = logging.getLogger(__name__)

Point = tuple[float, float]
Anchor = Literal["bottom_center", "center"]
Color = tuple[int, int, int]
Image = npt.NDArray[np.uint8]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class StrictModel(BaseModel):
    """Config models reject unknown keys, like ``detector.config``'s."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def split_classes(value: Any) -> Any:
    """``"person, car"`` or ``"person"`` -> ``["person", "car"]``; lists pass through (as strings)."""
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    return value


def check_classes(
    what: str, classes: Sequence[str] | None, model_names: Mapping[int, str]
) -> list[int] | None:
    """Class names (or ids as strings) -> class ids, raising ``UserError`` for an unknown one."""
    if classes is None:
        return None
    by_name = {n: i for i, n in model_names.items()}
    ids: list[int] = []
    for c in classes:
        if c.isdigit() and int(c) in model_names:
            ids.append(int(c))
        elif c in by_name:
            ids.append(by_name[c])
        else:
            close = difflib.get_close_matches(c, list(by_name), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UserError(f"{what}: unknown class '{c}'{hint}")
    return ids


def is_fractional(points: Sequence[Point]) -> bool:
    return all(0.0 <= v <= 1.0 for p in points for v in p)


def resolve_points(points: Sequence[Point], frame_size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """Points as pixel coordinates (N, 2) for a frame of ``(width, height)``; see the module doc."""
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(arr).all():
        raise UserError(f"coordinates must be finite numbers, got {list(points)}")
    w, h = frame_size
    if is_fractional(points):
        return arr * np.array([w, h], dtype=np.float64)
    outside = (arr[:, 0] < 0) | (arr[:, 0] > w) | (arr[:, 1] < 0) | (arr[:, 1] > h)
    if outside.any():
        log.warning("points %s lie outside the %dx%d frame", arr[outside].tolist(), w, h)
    return arr


def anchor_points(xyxy: npt.NDArray[np.float32], anchor: Anchor) -> npt.NDArray[np.float64]:
    """The anchor of each box (N, 2)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x = (b[:, 0] + b[:, 2]) / 2.0
    y = b[:, 3] if anchor == "bottom_center" else (b[:, 1] + b[:, 3]) / 2.0
    return np.stack([x, y], axis=1)


def class_mask(detections: Detections, classes: Sequence[str] | None) -> npt.NDArray[np.bool_]:
    """Which detections belong to ``classes`` (names, or ids as strings); all when ``None``."""
    if classes is None:
        return np.ones(len(detections), dtype=bool)
    wanted = set(classes)
    return np.array(
        [detections.class_name(int(c)) in wanted or str(int(c)) in wanted for c in detections.class_id],
        dtype=bool,
    )


def default_band(frame_size: tuple[int, int], fraction: float = 0.01) -> float:
    """Default hysteresis: ``fraction`` of the frame diagonal, at least 2 px."""
    return max(2.0, fraction * math.hypot(*frame_size))


def name_color(name: str) -> Color:
    """A stable palette colour for a line or zone name."""
    return class_color(zlib.crc32(name.encode("utf-8")))


def ui_scale(image: Image) -> tuple[float, int, int]:
    """(font scale, text thickness, line width) for an image, matching the overlay's sizing."""
    h, w = image.shape[:2]
    size = (h + w) / 2.0
    font_scale = max(0.33, size * 0.0008)
    return font_scale, max(1, round(font_scale * 1.6)), max(2, round(size * 0.004))


def draw_label(image: Image, text: str, center: tuple[float, float], bg: Color) -> None:
    """Text on a filled box centred at ``center``, moved inside the image when needed (in place)."""
    h, w = image.shape[:2]
    scale, thick, _ = ui_scale(image)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    pad = max(2, round(scale * 5))
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    left = int(min(max(0, round(center[0] - bw / 2)), max(0, w - bw)))
    top = int(min(max(0, round(center[1] - bh / 2)), max(0, h - bh)))
    cv2.rectangle(image, (left, top), (left + bw - 1, top + bh - 1), bg, cv2.FILLED)
    b, g, r = bg
    fg = (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
    cv2.putText(image, text, (left + pad, top + pad + th), _FONT, scale, fg, thick, cv2.LINE_AA)


def per_class_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "0"
