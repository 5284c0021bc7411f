"""What the web view knows of each source, written by the pipeline and read by the server.

The pipeline's thread calls ``Feed.publish`` once per frame and ``Feed.add_event`` per event; both
do O(1) work: keep a reference to the newest result, stamp the time, and poke the server's
``listener`` (which does nothing while nobody watches). Encoding, JSON and HTTP all happen on the
server's side. What cannot be read safely from another thread while the pipeline changes it
(per-class totals, the stages' line and zone tallies) is copied here on the pipeline's thread, at
most every ``SNAPSHOT_SECONDS``.

The annotated image a ``FrameResult`` holds is a fresh array per frame that nothing writes to
after the sinks have it; a feed keeps the newest one for the viewers.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from detector.events import EventRecord
from detector.sources.base import SourceInfo
from detector.stages.base import Stage
from detector.stats import RunStats
from detector.text import by_count
from detector.types import FrameResult, part_reports

if TYPE_CHECKING:
    from detector.storage.setup import Storage

SNAPSHOT_SECONDS = 0.25
RECENT_EVENTS = 20


class Phase:
    """What the page says a run or a source is doing."""

    STARTING = "starting"
    LOADING = "loading the model"
    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    FINISHED = "finished"


class Listener(Protocol):
    """The server's side: told of each frame and event (from the pipeline's thread)."""

    def frame(self, feed: Feed, result: FrameResult) -> None: ...

    def event(self, feed: Feed, record: EventRecord) -> None: ...


class Feed:
    """One source as the web view sees it."""

    def __init__(
        self,
        name: str,
        info: SourceInfo,
        stats: RunStats,
        stages: Sequence[Stage] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.info = info
        self.stats = stats
        self.stages = list(stages)
        self.clock = clock
        self.added_at = clock()
        self.latest: tuple[int, FrameResult] | None = None  # (sequence number from 1, result)
        self.last_frame_at: float | None = None
        self.finished = False
        self.totals: dict[str, Any] = {}  # copied on the pipeline's thread (see the module doc)
        self.listener: Listener | None = None
        self._events: deque[EventRecord] = deque(maxlen=RECENT_EVENTS)
        self._lock = threading.Lock()
        self._snapshot_at = float("-inf")

    # -- the pipeline's thread --------------------------------------------------------------------------
    def publish(self, result: FrameResult) -> None:
        seq = self.latest[0] + 1 if self.latest is not None else 1
        self.latest = (seq, result)
        now = self.clock()
        self.last_frame_at = now
        if now - self._snapshot_at >= SNAPSHOT_SECONDS:
            self._snapshot_at = now
            self.snapshot(result)
        listener = self.listener
        if listener is not None:
            listener.frame(self, result)

    def add_event(self, record: EventRecord) -> None:
        with self._lock:
            self._events.append(record)
        listener = self.listener
        if listener is not None:
            listener.event(self, record)

    def finish(self) -> None:
        if self.latest is not None:
            self.snapshot(self.latest[1])
        self.finished = True

    def snapshot(self, result: FrameResult | None = None) -> None:
        """Copy what the status page shows and cannot read from another thread."""
        report: dict[str, Any] = {}
        for part in part_reports(self.stages):
            report.update(part)
        zones = report.get("zones", {})
        self.totals = {
            "counts": result.detections.counts() if result is not None else {},
            "detections": by_count(self.stats.detections_per_class),
            "tracks": report.get("tracks_per_class", {}),
            "lines": report.get("lines", {}),
            "zones": {name: {**z, "inside": _inside(result, name)} for name, z in zones.items()},
        }

    # -- the server's thread ----------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        latest = self.latest
        return 0 if latest is None else latest[0]

    def events(self) -> list[dict[str, Any]]:
        """The latest events (their JSON form), newest last."""
        with self._lock:
            recent = list(self._events)
        return [record.to_dict() for record in recent]

    def phase(self) -> str:
        if self.finished:
            return Phase.FINISHED
        if self.stats.reconnecting:
            return Phase.RECONNECTING
        return Phase.RUNNING if self.latest is not None else Phase.CONNECTING

    def stalled_for(self) -> float:
        """Seconds since the last frame (or since the source was added, before the first one)."""
        since = self.last_frame_at if self.last_frame_at is not None else self.added_at
        return max(0.0, self.clock() - since)


@dataclass
class Board:
    """The whole run as the web view shows it: its phase, model and sources (by name)."""

    stall_timeout: float = 5.0
    feeds: dict[str, Feed] = field(default_factory=dict)
    phase: str = Phase.STARTING
    model: str = ""
    backend: str = ""
    started_at: float = field(default_factory=time.monotonic)
    # more counters for /metrics, read when scraped: [(name, help, {source: value})], "" = no source
    counters: list[Callable[[], list[tuple[str, str, dict[str, float]]]]] = field(default_factory=list)
    store: Path | None = None  # the event store the history page reads (``web.history``)
    media_roots: list[Path] = field(default_factory=list)  # absolute rows /media may serve (``web.media``)
    storage: Storage | None = None  # the run's recording, retention and storage health

    def sources(self) -> list[Feed]:
        return list(self.feeds.values())


def _inside(result: FrameResult | None, zone: str) -> dict[str, int]:
    """Who is inside ``zone`` in the newest frame (the zones stage's per-frame extra)."""
    if result is None:
        return {}
    zones = result.facts.zones
    value = zones.get(zone) if isinstance(zones, dict) else None
    return dict(value) if isinstance(value, dict) else {}
