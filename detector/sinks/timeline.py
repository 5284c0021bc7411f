"""What an HTML report draws over time, gathered as frames and events go by (memory stays flat).

Frames fall into time buckets (by source time) of ``bucket_s`` seconds; when there are more than
``MAX_BUCKETS``, neighbours merge and the bucket doubles, so a day-long stream costs as little as a
clip. Per bucket: frames, summed detections per class (the chart shows the mean per frame), the most
objects in each zone, and line crossings per direction. Latency keeps the last 20000 frames (for its
histogram); the event list keeps the first ``max_events`` records (with their clip and snapshot).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from detector.events import EventRecord, Gap, LineCross
from detector.media.images import data_uri, fit_width
from detector.types import FrameResult, Image

log = logging.getLogger(__name__)

MAX_BUCKETS = 400
HEATMAP_WIDTH = 960  # pixels of the heatmap picture inlined in the page


class TimelineSink:
    def __init__(
        self, heatmap: Callable[[], Image] | None = None, *, bucket_s: float = 1.0, max_events: int = 300
    ) -> None:
        self.heatmap = heatmap
        self.bucket_s = bucket_s
        self.max_events = max_events
        self.t0: float | None = None
        self.frames: list[int] = []
        self.classes: dict[str, list[float]] = {}
        self.zones: dict[str, list[int]] = {}
        self.lines: dict[str, dict[str, list[int]]] = {}
        self.latency: deque[float] = deque(maxlen=20000)
        self.events: list[dict[str, Any]] = []
        self.events_total = 0
        self._last = 0

    def _bucket(self, pts: float) -> int:
        if self.t0 is None:
            self.t0 = pts
        b = max(0, int((pts - self.t0) / self.bucket_s))
        while b >= MAX_BUCKETS:
            self._merge()
            b = max(0, int((pts - self.t0) / self.bucket_s))
        while len(self.frames) <= b:  # pad every series to the new length
            self.frames.append(0)
            for series in self.classes.values():
                series.append(0.0)
            for occ in self.zones.values():
                occ.append(0)
            for line in self.lines.values():
                for crossings in line.values():
                    crossings.append(0)
        self._last = b
        return b

    def _merge(self) -> None:
        """Halve the resolution: bucket pairs become one bucket of twice the length."""

        def pairs(xs: list[Any], how: Callable[[Any, Any], Any]) -> list[Any]:
            return [how(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]

        def add(a: Any, b: Any) -> Any:
            return a + b

        self.bucket_s *= 2
        self.frames = pairs(self.frames, add)
        self.classes = {k: pairs(v, add) for k, v in self.classes.items()}
        self.zones = {k: pairs(v, max) for k, v in self.zones.items()}
        self.lines = {k: {d: pairs(v, add) for d, v in line.items()} for k, line in self.lines.items()}

    def _series(self, table: dict[str, list[Any]], key: str, zero: Any) -> list[Any]:
        if key not in table:
            table[key] = [zero] * len(self.frames)
        return table[key]

    def write(self, result: FrameResult) -> None:
        b = self._bucket(result.frame.pts)
        self.frames[b] += 1
        for name, n in result.detections.counts().items():
            self._series(self.classes, name, 0.0)[b] += n
        for zone, per_class in (result.facts.zones or {}).items():
            occ = self._series(self.zones, zone, 0)
            occ[b] = max(occ[b], sum(per_class.values()))
        self.latency.append(float(result.latency_ms))

    def event(self, record: EventRecord) -> None:
        if isinstance(record, Gap):  # a live source's outage: in the report's counts, not the event list
            return
        if isinstance(record, LineCross) and record.direction in ("in", "out") and self.frames:
            b = self._bucket(float(record.pts or 0.0))
            line = self.lines.setdefault(record.line, {})
            self._series(line, "out", 0)
            self._series(line, "in", 0)[b] += record.direction == "in"
            line["out"][b] += record.direction == "out"
        self.events_total += 1
        if len(self.events) < self.max_events:
            self.events.append(record.to_dict())

    def close(self) -> None:
        pass

    def _heatmap(self) -> str | None:
        if self.heatmap is None or not self.frames:
            return None
        return data_uri(fit_width(self.heatmap(), HEATMAP_WIDTH), "png")

    def report(self) -> dict[str, Any]:
        frames = np.maximum(np.asarray(self.frames, dtype=np.float64), 1.0)
        lines = {
            name: {d: np.cumsum(series).astype(int).tolist() for d, series in sorted(line.items())}
            for name, line in self.lines.items()
        }
        return {
            "timeline": {
                "t0": self.t0 or 0.0,
                "bucket_s": self.bucket_s,
                "frames": list(self.frames),
                "classes": {k: np.round(np.asarray(v) / frames, 3).tolist() for k, v in self.classes.items()},
                "zones": {k: list(v) for k, v in self.zones.items()},
                "lines": lines,
                "latency_ms": [round(x, 1) for x in self.latency],
                "events": self.events,
                "events_total": self.events_total,
                "heatmap": self._heatmap(),
            }
        }
