"""The ``review`` section: how activity on a source becomes review items (``detector.reviews``), and how
long and large an item's clip may grow; the ``snapshots`` section: the JPEGs of events."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from detector.settings.base import RUN, StrictModel, option, split_list
from detector.settings.storage import parse_size

SnapshotMode = Literal["per-track", "per-item", "off"]
SnapshotArea = Literal["frame", "object"]


class ReviewSettings(StrictModel):
    """Review items: one per stretch of activity on a source, each with its clip."""

    gap: float = option(
        5.0,
        "seconds without activity (no object of the item in view, no event) that end a review item; "
        "activity closer together than this is one item",
        flag=False, gt=0, le=3600,
    )  # fmt: skip
    alert_classes: list[int | str] = option(
        help="an item with an object of these classes (or any line or zone event) is an alert, any "
        "other a detection",
        flag=False, default_factory=lambda: ["person", "car"],
    )  # fmt: skip
    max_seconds: float = option(
        300.0,
        "the longest clip (and review item) on a scene that never goes quiet: a new item and clip go on "
        "where it ends",
        flag="--clip-max-seconds", commands=(RUN,), metavar="SECONDS", ge=2, le=86400,
    )  # fmt: skip
    max_size: int = option(
        "200MB",
        "the largest clip: at this size it ends and a new item and clip go on (500MB, 1GB)",
        flag="--clip-max-size", commands=(RUN,), metavar="SIZE", validate_default=True,
    )  # fmt: skip

    _split = field_validator("alert_classes", mode="before")(split_list)

    @field_validator("max_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        return parse_size(v)


class SnapshotSettings(StrictModel):
    """The JPEG snapshots of events in the clips folder."""

    mode: SnapshotMode = option(
        "per-track",
        "per-track: one for each event that makes a clip (each new object); per-item: one per review "
        "item, its best shot; off: none",
        flag="--snapshots", commands=(RUN,),
    )  # fmt: skip
    width: int = option(
        960, "widest snapshot; wider frames (or crops) are scaled down",
        flag="--snapshot-width", commands=(RUN,), metavar="PIXELS", ge=32, le=16384,
    )  # fmt: skip
    quality: int = option(
        70, "JPEG quality of snapshots", flag="--snapshot-quality", commands=(RUN,), ge=10, le=100
    )
    area: SnapshotArea = option(
        "frame",
        "frame: the whole frame, the object outlined; object: a crop around the object, with as much "
        "again of its surroundings",
        flag="--snapshot-area", commands=(RUN,),
    )  # fmt: skip
