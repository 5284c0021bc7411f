"""The ``review`` section: how activity on a source becomes review items (``detector.reviews``)."""

from __future__ import annotations

from pydantic import field_validator

from detector.settings.base import StrictModel, option, split_list


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

    _split = field_validator("alert_classes", mode="before")(split_list)
