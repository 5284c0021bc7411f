"""Review items as they travel (a core type, like ``detector.events``' records): the ``ReviewItem`` as it
stands, its ``BestShot`` and ``Picture``, the ``ReviewUpdate`` a ``ReviewConsumer`` is told of. Worked
out by ``detector.reviews``; kept by the event store, clipped by the clip recorder, sent by MQTT and
notifications."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from detector.types import Image

Severity = Literal["alert", "detection"]
UpdateType = Literal["new", "update", "end"]


@dataclass(frozen=True)
class BestShot:
    """The best view of an item's objects: the highest ``score * area`` (pixels of the source frame)."""

    track_id: int
    class_name: str
    score: float
    area: float
    xyxy: tuple[float, float, float, float]
    frame: int
    pts: float
    time: float  # Unix time of its frame

    @property
    def value(self) -> float:
        return self.score * self.area

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["xyxy"] = [round(v, 1) for v in self.xyxy]
        out.update(score=round(self.score, 4), area=round(self.area), time=round(self.time, 3))
        out["pts"] = round(self.pts, 3)
        return out


@dataclass(frozen=True)
class ReviewItem:
    """One item as it stands (a snapshot: the reviewer makes a new one for each update)."""

    id: str
    source: str
    severity: Severity
    start_time: float  # Unix time of its first review event
    end_time: float | None  # None while it is open
    last_time: float  # Unix time of its latest activity (its end so far)
    media_start: float  # pts of the same moments
    media_end: float
    objects: tuple[str, ...] = ()  # classes, sorted
    zones: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    tracks: tuple[int, ...] = ()
    events: tuple[str, ...] = ()  # ids of its event records, in order
    best: BestShot | None = None

    @property
    def open(self) -> bool:
        return self.end_time is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "severity": self.severity,
            "start_time": round(self.start_time, 3),
            "end_time": None if self.end_time is None else round(self.end_time, 3),
            "last_time": round(self.last_time, 3),
            "media_start": round(self.media_start, 3),
            "media_end": round(self.media_end, 3),
            "objects": list(self.objects),
            "zones": list(self.zones),
            "lines": list(self.lines),
            "tracks": list(self.tracks),
            "events": list(self.events),
            "best": None if self.best is None else self.best.to_dict(),
        }


@dataclass(frozen=True)
class Picture:
    """The frame of an item's best shot as the outputs show it, and where its object is (a JPEG of it
    with the object outlined: ``media.images.picture_jpeg``)."""

    image: Image  # shared with the frame's other outputs: never written to
    xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class ReviewUpdate:
    type: UpdateType
    before: ReviewItem
    after: ReviewItem
    picture: Picture | None = None  # the best shot's frame (None: the item has no best shot yet)
    split: bool = False  # ``end``: cut at a bound (time, a clip's size); ``new``: goes on from the one cut

    def to_dict(self) -> dict[str, Any]:
        """Frigate's ``reviews`` message: ``{"type", "before", "after"}``."""
        return {"type": self.type, "before": self.before.to_dict(), "after": self.after.to_dict()}


@runtime_checkable
class ItemBound(Protocol):
    """A listener whose file of an item has a bound (the clip recorder): once ``item_full``, the item
    is cut there and a new one goes on (``ReviewUpdate.split``)."""

    def item_full(self, item_id: str) -> bool: ...


class ReviewConsumer(Protocol):
    """Told of each item as it opens, changes and ends (on the lane's thread, in order): the clip
    recorder, the event store. It must not block for long (queue, do the work elsewhere)."""

    def review(self, update: ReviewUpdate) -> None: ...
