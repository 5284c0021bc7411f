"""Config sections for what runs beyond boxes: counting lines, zones, trails, ignore and privacy masks
(YAML only, no flags).

Coordinates: pixels of the source frame, unless *every* coordinate of the shape lies within
[0, 1], in which case they are fractions of the frame width (x) and height (y).
Anchor: the point of a box tested against a line or zone; ``bottom_center`` (feet, wheels) or
``center`` (objects seen from above).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from detector.settings.base import StrictModel, split_list

Point = tuple[float, float]
Anchor = Literal["bottom_center", "center"]
Cover = Literal["blur", "pixelate", "fill"]
ClassList = list[int | str]
MAX_VERTICES = 1000  # a drawn zone has tens; OpenCV fills 20,000 crossing vertices in ~30 s a frame
NAME_MAX = 64  # characters of a line's, zone's or mask's name (as of a source's): names go into MQTT topics


def bare_polygon(value: Any) -> Any:
    """A mask given as just its points (``- [[x, y], ...]``) means ``{polygon: [[x, y], ...]}``."""
    return {"polygon": value} if isinstance(value, list | tuple) else value


def check_vertices(points: list[Point], what: str) -> None:
    if len(points) > MAX_VERTICES:
        raise ValueError(
            f"{what} has {len(points)} vertices; at most {MAX_VERTICES} are allowed (simplify the polygon)"
        )


def _side(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Sign of the turn a -> b -> p (+1 left, -1 right, 0 on the line), broadcast over arrays of points."""
    cross = (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        p[..., 0] - a[..., 0]
    )
    return np.sign(cross)


def first_crossing(points: list[Point]) -> tuple[int, int] | None:
    """The first two edges of the closed polygon ``points`` that cross or touch, not being neighbours
    (edge i runs from vertex i to the next), or None for a simple polygon. Vectorized O(n^2), a block
    of edges at a time; crossing is the same in fractions and in pixels (scaling keeps it)."""
    pts = np.asarray(points, np.float64)
    pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]  # a repeated vertex is not a crossing
    n = len(pts)
    if n < 4:
        return None
    a, b = pts, np.roll(pts, -1, axis=0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    index = np.arange(n)
    for start in range(0, n, 256):
        i = index[start : start + 256, None]
        a1, b1 = a[i[:, 0], None], b[i[:, 0], None]
        d1, d2 = _side(a, b, a1), _side(a, b, b1)  # block's ends against every edge
        d3, d4 = _side(a1, b1, a[None]), _side(a1, b1, b[None])  # every edge's ends against the block's
        boxes = np.all((lo[i[:, 0], None] <= hi[None]) & (lo[None] <= hi[i[:, 0], None]), axis=2)
        meet = (d1 * d2 <= 0) & (d3 * d4 <= 0) & boxes  # boxes: collinear edges must overlap
        neighbours = (index[None] == i) | (index[None] == (i + 1) % n) | (index[None] == (i - 1) % n)
        hits = np.argwhere(meet & ~neighbours & (index[None] > i))
        if len(hits):
            return int(i[hits[0, 0], 0]), int(hits[0, 1])
    return None


def _edge(points: list[Point], k: int) -> str:
    (x0, y0), (x1, y1) = points[k], points[(k + 1) % len(points)]
    return f"({x0:g}, {y0:g})-({x1:g}, {y1:g})"


class LineSpec(StrictModel):
    """One counting line (``lines:`` list)."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    start: Point
    end: Point
    classes: ClassList | None = Field(None, description="class names or ids to count; null = all")
    anchor: Anchor = "bottom_center"
    hysteresis: float | None = Field(
        None, ge=0, description="pixels either side of the line; null = 1% of the frame diagonal"
    )

    _split = field_validator("classes", mode="before")(split_list)

    @model_validator(mode="after")
    def _distinct_ends(self) -> LineSpec:
        if self.start == self.end:
            raise ValueError(f"line '{self.name}': start and end are the same point")
        return self


class ZoneSpec(StrictModel):
    """One zone (``zones:`` list)."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    classes: ClassList | None = Field(None, description="class names or ids to count; null = all")
    anchor: Anchor = "bottom_center"
    hysteresis: float | None = Field(
        None, ge=0, description="pixels either side of the border; null = 0.5% of the frame diagonal"
    )

    _split = field_validator("classes", mode="before")(split_list)

    @model_validator(mode="after")
    def _simple_polygon(self) -> ZoneSpec:
        check_vertices(self.polygon, f"zone '{self.name}'")
        crossing = first_crossing(self.polygon)
        if crossing is not None:
            first, second = (_edge(self.polygon, k) for k in crossing)
            raise ValueError(
                f"zone '{self.name}' crosses itself: its edge {first} crosses its edge {second}; "
                "list the vertices in order around the zone"
            )
        return self


class TrailSettings(StrictModel):
    """``trails:`` section (absent/null = no trails)."""

    length: int = Field(30, ge=2, le=1000, description="points kept per track")


class IgnoreSpec(StrictModel):
    """One ``ignore:`` polygon: detections whose anchor falls inside are dropped before anything else."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    classes: ClassList | None = Field(None, description="class names or ids to drop; null = all")
    anchor: Anchor = "bottom_center"

    _bare = model_validator(mode="before")(bare_polygon)
    _split = field_validator("classes", mode="before")(split_list)

    @model_validator(mode="after")
    def _bounded(self) -> IgnoreSpec:
        check_vertices(self.polygon, f"ignore polygon '{self.name}'" if self.name else "an ignore polygon")
        return self


class PrivacyMaskSpec(StrictModel):
    """One ``privacy_masks:`` polygon, covered in every frame, detected or not."""

    name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    cover: Cover = Field("blur", description="blur, pixelate, or fill (solid black)")

    _bare = model_validator(mode="before")(bare_polygon)

    @model_validator(mode="after")
    def _bounded(self) -> PrivacyMaskSpec:
        check_vertices(self.polygon, f"privacy mask '{self.name}'" if self.name else "a privacy mask")
        return self
