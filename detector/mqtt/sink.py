"""One source's MQTT sink: counts per class and per zone (sent on change), every event record, the
snapshot of each class, the source's status, its review items, and its Home Assistant device.

On the pipeline's thread it only compares a few counts and puts into the outbox; JSON and JPEG are
made on the outbox's thread (a frame's annotated image is never written to once the sinks have it,
so keeping a reference is safe). A class's snapshot is the latest of: the frame of an object event
that makes a clip (a zone entry, a line crossing), with its object outlined; a review item's new best
shot of that class. Review items go to ``{prefix}/reviews``.

Quieter than every change: a count topic says at most one value every ``count_interval`` seconds and
a class's snapshot one picture every ``snapshot_interval`` (``throttle``: the latest waits for its
time, so the final state always goes out). Home Assistant hears of ``classes`` only (``mqtt.classes``),
at start, not of every class the model happens to see."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from detector.events import EventRecord, ObjectEvent
from detector.media.images import jpeg, picture_jpeg
from detector.mqtt.discovery import Discovery
from detector.mqtt.outbox import Outbox, Payload
from detector.mqtt.throttle import Throttle
from detector.mqtt.topics import ALL, OFFLINE, ONLINE, RECONNECTING, Topics, changes, with_all
from detector.review_items import ReviewUpdate
from detector.sinks.jsonl import dumps_line
from detector.stats import RunStats
from detector.storage.snapshot import highlight
from detector.types import FrameResult

JPEG_QUALITY = 85


def as_json(data: Callable[[], dict[str, Any]]) -> Callable[[], str]:
    """A payload made when it is published: ``data()`` as compact JSON."""
    return lambda: dumps_line(data()).rstrip("\n")


class MqttSink:
    """The sink (and review listener) of one source."""

    def __init__(
        self,
        outbox: Outbox,
        topics: Topics,
        source: str,
        stats: RunStats,
        *,
        discovery: Discovery | None = None,
        classes: Iterable[str] = (),
        zones: Iterable[str] = (),
        snapshot_width: int = 640,
        count_interval: float = 0.0,
        snapshot_interval: float = 0.0,
        figures: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        classes = [c for c in classes if c != ALL]
        self.outbox = outbox
        self.topics = topics
        self.source = source
        self.stats = stats
        self.discovery = discovery
        self.snapshot_width = snapshot_width
        self.figures = figures  # the run's MQTT figures (broker, reconnects, latency) for the report
        self.zones = list(zones)
        self.counts: dict[str, int] = {}
        self.zone_counts: dict[str, dict[str, int]] = {zone: {} for zone in self.zones}
        self.announced: set[str] = set()
        self.counts_throttle = Throttle(count_interval)
        self.snapshots_throttle = Throttle(snapshot_interval)
        self.latest: FrameResult | None = None
        self.closed = False
        self.status: str | None = None
        self._lock = threading.Lock()
        self._set(topics.status(source), ONLINE)
        self.status = ONLINE
        if discovery is not None:
            self._set(*discovery.status())
            for zone in self.zones:
                self._set(*discovery.zone(zone))
        self._announce([ALL, *classes])
        self._send_counts({ALL: 0, **dict.fromkeys(classes, 0)}, None)
        self.counts = {ALL: 0}
        for zone in self.zones:
            self._send_zone(zone, {ALL: 0}, None)
            self.zone_counts[zone] = {ALL: 0}

    def _set(self, topic: str, payload: Any, born: float | None = None, slow: bool = False) -> None:
        self.outbox.set(topic, payload, source=self.source, born=born, slow=slow)

    # -- the pipeline's thread ----------------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        self.latest = result
        born = time.monotonic()  # the frame reached the sinks: the outbox's delay runs from here
        counts = with_all(result.detections.counts())
        if counts != self.counts:
            self._send_counts(changes(self.counts, counts), born)
            self.counts = counts
        if self.zones:
            inside = result.facts.zones
            inside = inside if isinstance(inside, dict) else {}
            for zone in self.zones:
                now = with_all(dict(inside.get(zone) or {}))
                if now != self.zone_counts[zone]:
                    self._send_zone(zone, changes(self.zone_counts[zone], now), born)
                    self.zone_counts[zone] = now

    def event(self, record: EventRecord) -> None:
        latest = self.latest
        shown = latest if latest is not None and latest.frame.index == record.frame else None
        self.outbox.put(
            self.topics.events, as_json(record.to_dict), source=self.source, born=time.monotonic()
        )
        if isinstance(record, ObjectEvent) and record.clip_worthy and shown is not None:
            width = self.snapshot_width

            def picture(result: FrameResult = shown, event: EventRecord = record) -> bytes | None:
                return jpeg(highlight(result.annotated, result, event), width, JPEG_QUALITY)

            self._snapshot(record.class_name, picture)

    def review(self, update: ReviewUpdate) -> None:
        """A review item opened, changed or ended: to ``{prefix}/reviews``; a new best shot becomes its
        class's snapshot."""
        self.outbox.put(self.topics.reviews, as_json(update.to_dict), source=self.source)
        best, picture = update.after.best, update.picture
        if best is None or picture is None or (update.type != "new" and update.before.best == best):
            return
        width = self.snapshot_width
        self._snapshot(best.class_name, lambda: picture_jpeg(picture, width=width, quality=JPEG_QUALITY))

    def close(self) -> None:
        """The source ended: nothing is in view any more (every count to 0), and it is ``offline``."""
        if self.closed:
            return
        self.closed = True
        self._release(lambda throttle: throttle.flush(time.monotonic()))  # the last values held back
        self._send_counts(changes(self.counts, {}), None)
        self.counts = {}
        for zone in self.zones:
            self._send_zone(zone, changes(self.zone_counts[zone], {}), None)
            self.zone_counts[zone] = {}
        self.tick()

    # -- the outbox's thread ------------------------------------------------------------------------------
    def tick(self) -> None:
        """Publish the counts and snapshots held back whose time is up, and the status when it changed
        (a live source reconnecting, the source ended)."""
        now = time.monotonic()
        self._release(lambda throttle: throttle.due(now))
        status = OFFLINE if self.closed else RECONNECTING if self.stats.reconnecting else ONLINE
        with self._lock:
            if status == self.status:
                return
            self.status = status
        self._set(self.topics.status(self.source), status)

    # -- helpers ------------------------------------------------------------------------------------------
    def _send_counts(self, counts: dict[str, int], born: float | None) -> None:
        for name, n in counts.items():
            self._count(self.topics.count(self.source, name), str(n), born)

    def _send_zone(self, zone: str, counts: dict[str, int], born: float | None) -> None:
        for name, n in counts.items():
            self._count(self.topics.zone_count(self.source, zone, name), str(n), born)

    def _count(self, topic: str, value: str, born: float | None) -> None:
        """A count now (``born`` None: the start or the end, always sent), or once its topic's time is up."""
        with self._lock:
            if born is None or self.counts_throttle.offer(topic, value, born):
                self._set(topic, value, born)

    def _snapshot(self, class_name: str, picture: Payload) -> None:
        """A class's snapshot now, or once its time is up (the picture is made only when it is sent)."""
        topic = self.topics.snapshot(self.source, class_name)
        with self._lock:
            if self.snapshots_throttle.offer(topic, picture, time.monotonic()):
                self._set(topic, picture, slow=True)

    def _release(self, take: Callable[[Throttle], list[tuple[str, Any]]]) -> None:
        """Send what ``take`` gives of the held counts and snapshots."""
        with self._lock:
            for topic, value in take(self.counts_throttle):
                self._set(topic, value)
            for topic, value in take(self.snapshots_throttle):
                self._set(topic, value, slow=True)

    def _announce(self, classes: Iterable[str]) -> None:
        """Home Assistant's count sensor and snapshot image of each class not announced yet."""
        for name in classes:
            if name in self.announced:
                continue
            self.announced.add(name)
            if self.discovery is not None:
                self._set(*self.discovery.count(name))
                if name != ALL:
                    self._set(*self.discovery.snapshot(name))

    def report(self) -> dict[str, Any]:
        run = self.figures() if self.figures is not None else {}
        own = {"published": self.outbox.published[self.source], "dropped": self.outbox.dropped[self.source]}
        return {"mqtt": {**run, **own}}
