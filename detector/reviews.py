"""Review items: what happened on a source, one item per stretch of activity (Frigate 0.14's review
items), worked out in the lane's flow, whoever listens: the clip recorder (one item is one clip), the
event store, and later MQTT and notifications.

Activity is made of the objects worth reviewing. An object (a track) joins the activity with its
first *review event*: an event that makes a clip (``EventRecord.clip_worthy``: a line crossing, a zone
entry, with ``--clip-on`` a new track of those classes). From then on it is activity for as long as
it stays in view and moves (a stationary object, ``stationary.seconds``, is no longer activity: a car
parked in a zone ends its item instead of opening a new one every ``MAX_ITEM_S``). Activity on one
source whose times overlap, or lie within ``review.gap`` seconds,
is one item; so an item starts at its first review event and ends when none of its objects has been
seen, and no review event has come, for ``review.gap`` seconds (or when the source ends). A busy
scene does not make one endless item: an item is closed after ``review.max_seconds`` (``MAX_ITEM_S``
unless given), or once a listener's file of it is full (``ItemBound``: the clip recorder, at
``review.max_size`` or its clip's length), and the objects still in view go on in the next one
(both updates say ``split``).

An item has its start and end (Unix time, and the media time ``pts``), a severity (``alert`` when
one of its objects is of ``review.alert_classes`` or it has a line or zone event, else
``detection``; it can only go up), its objects' classes, zones and lines, the ids of its events and
tracks, and its best shot: of all its objects in all the frames they were seen in while the item
was open, the one with the highest score x area. The picture of the best shot is that frame as every
output shows it (annotated, covered by ``--blur``), kept by reference (no copy, no encoding per
frame: a ``FrameResult``'s image is never written to once the sinks have it); a listener encodes it
if it wants one (``Picture.jpeg``). So an item has a picture even where no event snapshot was made.

Listeners get ``ReviewUpdate``s, shaped like Frigate's ``reviews`` topic: ``new`` when an item opens,
``update`` when what it holds changes (an object, zone, line or event joins, the severity goes up;
not for each frame it lasts), ``end`` once it is over, each with the item ``before`` and ``after``
(for ``new`` both are the new item; ``end_time`` is None until ``end``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.events import EventRecord, LineCross, ObjectEvent, ZoneEnter, ZoneExit, new_id
from detector.review_items import (
    BestShot,
    ItemBound,
    Picture,
    ReviewConsumer,
    ReviewItem,
    ReviewUpdate,
    Severity,
    UpdateType,
)
from detector.settings.review import ReviewSettings
from detector.stages.classes import class_names
from detector.types import FrameResult

log = logging.getLogger(__name__)

MAX_ITEM_S = 300.0  # a busy scene gets a new item (and clip) every 5 minutes, not one endless one


@dataclass
class _Open:
    """The item being built (mutable; ``snapshot`` freezes it for an update)."""

    id: str
    start_time: float
    media_start: float
    last_time: float
    media_end: float
    severity: Severity = "detection"
    tracks: dict[int, str] = field(default_factory=dict)  # track id -> class name
    zones: set[str] = field(default_factory=set)
    lines: set[str] = field(default_factory=set)
    events: list[str] = field(default_factory=list)
    best: BestShot | None = None
    picture: Picture | None = None


class Reviewer:
    """The review items of one source (``source``: its unique name). The lane calls ``frame`` after each
    frame reached its sinks, ``event`` for each stamped event record (before the clip recorder attaches
    its clip), and ``finish`` when the source ends."""

    def __init__(
        self,
        source: str,
        consumers: Sequence[ReviewConsumer],
        *,
        gap: float = 5.0,
        alert_classes: Iterable[str] = ("person", "car"),
        max_seconds: float | None = None,
    ) -> None:
        self.source = source
        self.max_seconds = max_seconds  # None: MAX_ITEM_S
        self.consumers = list(consumers)
        self.gap = float(gap)
        self.alert = {c.lower() for c in alert_classes}
        self.item: _Open | None = None
        self.last: ReviewItem | None = None  # as the consumers last heard of the open item
        self.items = 0  # items opened so far
        self._latest: tuple[FrameResult, float] | None = None  # the newest frame, with its Unix time

    # -- the lane's calls ---------------------------------------------------------------------------------
    def frame(self, result: FrameResult, wall: float) -> None:
        """A frame reached the sinks (``wall``: its Unix time). Its objects that belong to the open item
        keep it going; an item whose activity stopped ``gap`` seconds ago ends."""
        self._latest = (result, wall)
        item = self.item
        if item is None:
            return
        pts = float(result.frame.pts)
        dets = result.detections
        still = set(result.facts.stationary or ())  # parked: in view, but no longer activity
        if dets.tracker_id is not None and len(dets):
            for i, tid in enumerate(dets.tracker_id.tolist()):
                if tid in item.tracks and tid not in still:
                    item.last_time, item.media_end = max(item.last_time, wall), max(item.media_end, pts)
                    self._consider(item, tid, float(dets.confidence[i]), dets.xyxy[i], result, wall)
        if pts - item.media_end > self.gap:
            self._end()
        elif item.media_end - item.media_start >= self._max_s() or self._full(item.id):
            ids = dets.tracker_id.tolist() if dets.tracker_id is not None else []
            seen = [t for t in ids if t not in still]
            classes = {t: item.tracks[t] for t in seen if t in item.tracks}
            self._end(split=True)
            if classes:  # the objects still in view go on in a new item
                self._open(wall, pts)
                assert self.item is not None
                for tid, name in classes.items():
                    self._join(self.item, tid, name)
                self._tell("new", split=True)

    def event(self, record: EventRecord, wall: float) -> None:
        """A stamped event record (``wall``: its Unix time): a review event opens an item or joins the
        open one; another event of an object of the open item is added to it."""
        if not isinstance(record, ObjectEvent) or record.track_id is None:
            return
        item = self.item
        pts = float(record.pts) if record.pts is not None else (item.media_end if item else 0.0)
        if not record.clip_worthy:
            if item is not None and record.track_id in item.tracks:
                item.events.append(record.id)
                self._add_place(item, record)
                self._tell("update")
            return
        if item is not None and pts - item.media_end > self.gap:
            self._end()
            item = None
        opened = item is None
        if item is None:
            item = self._open(wall, pts)
        item.last_time, item.media_end = max(item.last_time, wall), max(item.media_end, pts)
        self._join(item, int(record.track_id), record.class_name)
        item.events.append(record.id)
        self._add_place(item, record)
        if record.xyxy is not None and record.confidence is not None:
            latest = self._latest
            shown = latest is not None and latest[0].frame.index == record.frame
            result = latest[0] if latest is not None and shown else None
            self._consider(item, int(record.track_id), record.confidence, record.xyxy, result, wall, pts)
        self._tell("new" if opened else "update")

    def finish(self) -> None:
        """The source ended: the open item ends with it."""
        if self.item is not None:
            self._end()

    # -- the item -----------------------------------------------------------------------------------------
    def _max_s(self) -> float:
        return MAX_ITEM_S if self.max_seconds is None else self.max_seconds

    def _full(self, item_id: str) -> bool:
        """A listener's file of the item (its clip) reached its bound of time or size."""
        return any(c.item_full(item_id) for c in self.consumers if isinstance(c, ItemBound))

    def _open(self, wall: float, pts: float) -> _Open:
        self.item = _Open(id=new_id(), start_time=wall, media_start=pts, last_time=wall, media_end=pts)
        self.items += 1
        self.last = None
        return self.item

    def _join(self, item: _Open, track_id: int, class_name: str) -> None:
        item.tracks.setdefault(track_id, class_name)
        if class_name.lower() in self.alert:
            item.severity = "alert"

    def _add_place(self, item: _Open, record: EventRecord) -> None:
        if isinstance(record, ZoneEnter | ZoneExit):
            item.zones.add(record.zone)
            item.severity = "alert"
        elif isinstance(record, LineCross):
            item.lines.add(record.line)
            item.severity = "alert"

    def _consider(
        self,
        item: _Open,
        track_id: int,
        score: float,
        xyxy: Any,
        result: FrameResult | None,
        wall: float,
        pts: float | None = None,
    ) -> None:
        """A sighting of one of the item's objects: the best shot if its score x area beats the best."""
        x1, y1, x2, y2 = (float(v) for v in list(xyxy)[:4])
        area = area_of((x1, y1, x2, y2))
        if item.best is not None and score * area <= item.best.value:
            return
        if result is None and item.best is not None:
            return  # no frame to show it: keep the one that has a picture
        frame = result.frame if result is not None else None
        item.best = BestShot(
            track_id=track_id,
            class_name=item.tracks.get(track_id, ""),
            score=float(score),
            area=area,
            xyxy=(x1, y1, x2, y2),
            frame=int(frame.index) if frame is not None else -1,
            pts=float(frame.pts) if frame is not None else float(pts or 0.0),
            time=wall,
        )
        if result is not None:
            item.picture = Picture(result.annotated, (x1, y1, x2, y2))

    def _snapshot(self, item: _Open, ended: bool) -> ReviewItem:
        return ReviewItem(
            id=item.id,
            source=self.source,
            severity=item.severity,
            start_time=item.start_time,
            end_time=item.last_time if ended else None,
            last_time=item.last_time,
            media_start=item.media_start,
            media_end=item.media_end,
            objects=tuple(sorted(set(item.tracks.values()))),
            zones=tuple(sorted(item.zones)),
            lines=tuple(sorted(item.lines)),
            tracks=tuple(sorted(item.tracks)),
            events=tuple(item.events),
            best=item.best,
        )

    def _tell(self, kind: UpdateType, split: bool = False) -> None:
        item = self.item
        assert item is not None
        after = self._snapshot(item, ended=kind == "end")
        before = self.last or after
        if kind == "update" and before == after:
            return
        self.last = after
        update = ReviewUpdate(kind, before, after, item.picture, split)
        for consumer in self.consumers:
            try:
                consumer.review(update)
            except Exception as exc:  # one listener's failure must not lose the item for the others
                log.error("%s: review item %s not taken: %s", type(consumer).__name__, item.id, exc)

    def _end(self, split: bool = False) -> None:
        self._tell("end", split)
        self.item = None
        self.last = None


def reviewer_for(
    source: str, consumers: Sequence[ReviewConsumer], settings: ReviewSettings, names: Mapping[int, str]
) -> Reviewer | None:
    """A source's reviewer, if anyone listens to its items (the clip recorder, the event store...)."""
    if not consumers:
        return None
    alert = class_names(settings.alert_classes, names)
    return Reviewer(
        source, consumers, gap=settings.gap, alert_classes=alert, max_seconds=settings.max_seconds
    )


def area_of(xyxy: Sequence[float] | np.ndarray) -> float:
    x1, y1, x2, y2 = (float(v) for v in list(xyxy)[:4])
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)
