"""Points, anchors and bands for lines and zones.

Coordinates: pixels of the source frame, unless *every* coordinate of the shape lies within
[0, 1], in which case they are fractions of the frame width (x) and height (y). So
``[[0.5, 0], [0.5, 1]]`` is a vertical line through the middle of any frame.

Anchor: the point of a box tested against a line or zone. ``bottom_center`` (default) is where a
person's feet or a vehicle's wheels touch the ground; ``center`` suits objects seen from above.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from detector.errors import UserError
from detector.settings.analytics import Anchor, Point

log = logging.getLogger(__name__)


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


def default_band(frame_size: tuple[int, int], fraction: float = 0.01) -> float:
    """Default hysteresis: ``fraction`` of the frame diagonal, at least 2 px."""
    return max(2.0, fraction * math.hypot(*frame_size))
