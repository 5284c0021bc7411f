"""Config sections for what runs beyond boxes: counting lines, zones, trails, ignore and privacy masks
(YAML only, no flags).

Coordinates: pixels of the source frame, unless *every* coordinate of the shape lies within
[0, 1], in which case they are fractions of the frame width (x) and height (y).
Anchor: the point of a box tested against a line or zone; ``bottom_center`` (feet, wheels) or
``center`` (objects seen from above).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from detector.settings.base import StrictModel, split_list

Point = tuple[float, float]
Anchor = Literal["bottom_center", "center"]
Cover = Literal["blur", "pixelate", "fill"]
ClassList = list[int | str]


def bare_polygon(value: Any) -> Any:
    """A mask given as just its points (``- [[x, y], ...]``) means ``{polygon: [[x, y], ...]}``."""
    return {"polygon": value} if isinstance(value, list | tuple) else value


class LineSpec(StrictModel):
    """One counting line (``lines:`` list)."""

    name: str = Field(min_length=1)
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

    name: str = Field(min_length=1)
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    classes: ClassList | None = Field(None, description="class names or ids to count; null = all")
    anchor: Anchor = "bottom_center"
    hysteresis: float | None = Field(
        None, ge=0, description="pixels either side of the border; null = 0.5% of the frame diagonal"
    )

    _split = field_validator("classes", mode="before")(split_list)


class TrailSettings(StrictModel):
    """``trails:`` section (absent/null = no trails)."""

    length: int = Field(30, ge=2, le=1000, description="points kept per track")


class IgnoreSpec(StrictModel):
    """One ``ignore:`` polygon: detections whose anchor falls inside are dropped before anything else."""

    name: str | None = None
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    classes: ClassList | None = Field(None, description="class names or ids to drop; null = all")
    anchor: Anchor = "bottom_center"

    _bare = model_validator(mode="before")(bare_polygon)
    _split = field_validator("classes", mode="before")(split_list)


class PrivacyMaskSpec(StrictModel):
    """One ``privacy_masks:`` polygon, covered in every frame, detected or not."""

    name: str | None = None
    polygon: list[Point] = Field(min_length=3, description="vertices in order, pixels or fractions")
    cover: Cover = Field("blur", description="blur, pixelate, or fill (solid black)")

    _bare = model_validator(mode="before")(bare_polygon)
