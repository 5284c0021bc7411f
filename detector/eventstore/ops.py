"""What goes on the event store's queue: one small typed operation per write (``EventStore.put``),
and the writer's own markers (a flush to wait for, the stop)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from detector.catalog import MediaFile
from detector.events import EventRecord
from detector.review_items import Picture, ReviewItem


@dataclass(frozen=True)
class EventOp:
    """An event record's row, with the item it belongs to (if any)."""

    record: EventRecord
    review_id: str | None


@dataclass(frozen=True)
class ReviewOp:
    """An item's row as it is now; ``picture``: its best shot's frame, for the thumbnail (None: keep
    the one written before)."""

    item: ReviewItem
    picture: Picture | None


@dataclass(frozen=True)
class MediaOp:
    """A finished clip, snapshot or segment to list; ``found``: an earlier run's, found on disk at
    start, listed only if it is not yet."""

    media: MediaFile
    found: bool = False


@dataclass(frozen=True)
class RemovedOp:
    """Files retention deleted: their rows go (a clip's with its item)."""

    paths: tuple[Path, ...]


Write = EventOp | ReviewOp | MediaOp | RemovedOp


@dataclass(frozen=True)
class Flush:
    done: threading.Event


class Stop:
    """The last operation: write what is left, end the run's row, close."""


def pictured(op: object) -> bool:
    """A review op that holds its best shot's frame."""
    return isinstance(op, ReviewOp) and op.picture is not None
