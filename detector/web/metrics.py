"""``/metrics``: Prometheus text from ``prometheus_client``, every name prefixed ``detector_``.

Counters and gauges are read from the feeds when scraped (a custom collector: nothing per frame);
the two latency histograms are fed each sample as it is measured, through ``StageTimer.observers``
(inference on the inference thread, end-to-end on the pipeline's). A registry of its own, so
several runs in one process (tests) never clash.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from detector.web.feeds import Board, Feed
from detector.web.storage_health import storage_metrics

CONTENT_TYPE = CONTENT_TYPE_LATEST
INFERENCE_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
PER_SOURCE_COUNTERS = {
    "frames_read": "frames decoded from the source",
    "frames_processed": "frames analysed (through the stages to the sinks), with the model or without",
    "frames_dropped": "live frames dropped because newer ones arrived",
    "frames_detected": "processed frames the model ran on",
    "frames_motion_skipped": "processed frames that skipped the model: nothing moved",
    "frames_rate_skipped": "processed frames that skipped the model: between two runs of --detect-fps",
    "reconnects": "live sources reconnected after a loss (gap events)",
}
STATS_FIELD = {"reconnects": "gaps"}  # metric name -> RunStats field, where they differ


class _RunCollector:
    """Scrape-time figures of every source."""

    def __init__(self, board: Board, viewers: Callable[[], dict[str, int]], encodes: Callable[[], int]):
        self.board = board
        self.viewers = viewers
        self.encodes = encodes

    def collect(self) -> Iterator[Metric]:
        feeds = self.board.sources()
        for name, doc in PER_SOURCE_COUNTERS.items():
            family = CounterMetricFamily(f"detector_{name}", doc, labels=["source"])
            for feed in feeds:
                family.add_metric([feed.name], getattr(feed.stats, STATS_FIELD.get(name, name)))
            yield family
        detections = CounterMetricFamily(
            "detector_detections", "objects detected, per class", labels=["source", "class"]
        )
        for feed in feeds:
            for cls, n in feed.totals.get("detections", {}).items():
                detections.add_metric([feed.name, cls], n)
        yield detections
        fps = GaugeMetricFamily("detector_fps", "recent processed frames per second", labels=["source"])
        up = GaugeMetricFamily(
            "detector_source_up", "1 while frames flow, 0 once stalled or ended", labels=["source"]
        )
        stall = self.board.stall_timeout
        for feed in feeds:
            fps.add_metric([feed.name], feed.stats.fps_meter.value or 0.0)
            up.add_metric([feed.name], 0.0 if feed.finished or feed.stalled_for() > stall else 1.0)
        yield fps
        yield up
        viewers = GaugeMetricFamily("detector_viewers", "open web streams", labels=["kind"])
        for kind, n in self.viewers().items():
            viewers.add_metric([kind], n)
        yield viewers
        yield CounterMetricFamily(
            "detector_jpeg_encodes", "frames JPEG-encoded for the web view", value=self.encodes()
        )
        for read in self.board.counters:  # MQTT, notifications
            for name, doc, values in read():
                labelled = any(values)
                family = CounterMetricFamily(f"detector_{name}", doc, labels=["source"] if labelled else None)
                for source, value in values.items():
                    family.add_metric([source] if labelled else [], value)
                yield family
        uptime = time.monotonic() - self.board.started_at
        yield GaugeMetricFamily("detector_uptime_seconds", "seconds since the web view started", value=uptime)
        yield from storage_metrics(self.board.storage)


class Metrics:
    def __init__(self, board: Board, viewers: Callable[[], dict[str, int]], encodes: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.inference = Histogram(
            "detector_inference_seconds",
            "time the inference thread spent on a frame",
            ["source"],
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "detector_latency_seconds",
            "end to end: from capture (the frame leaving the decoder) to the sinks",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_RunCollector(board, viewers, encodes))
        self._observing: list[tuple[list[Callable[[float], None]], Callable[[float], None]]] = []

    def attach(self, feed: Feed) -> None:
        """Feed this source's samples into the histograms from now on."""
        for timer, histogram in (
            (feed.stats.stages["inference"], self.inference),
            (feed.stats.latency, self.latency),
        ):
            child = histogram.labels(feed.name)

            def observe(ms: float, child: Any = child) -> None:
                child.observe(ms / 1000)

            timer.observers.append(observe)
            self._observing.append((timer.observers, observe))

    def detach(self) -> None:
        """Stop observing (the server is closing)."""
        for observers, observe in self._observing:
            with contextlib.suppress(ValueError):
                observers.remove(observe)
        self._observing.clear()

    def render(self) -> bytes:
        return generate_latest(self.registry)
