"""The run's MQTT side: one broker link and outbox for every source, ``{prefix}/available``, the
stats message every ``mqtt.stats_interval`` seconds, and a sink per source (``add_source``).

When Home Assistant comes back (``homeassistant/status`` = ``online``, its birth message) or the
broker does (a reconnect), every retained state is sent again: discovery configs, counts, status,
snapshots. At the end: the final stats, the sources' counts at 0 (nothing is in view once the run
stops looking), ``offline``, then the connection closes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from detector.mqtt.discovery import Discovery
from detector.mqtt.link import BrokerLink
from detector.mqtt.outbox import Outbox
from detector.mqtt.sink import MqttSink, as_json
from detector.mqtt.topics import ONLINE, Topics, stats_message
from detector.settings.mqtt import MqttSettings
from detector.stats import RunStats

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # seconds the end of a run waits for the broker, at most


class MqttPublisher:
    def __init__(self, settings: MqttSettings, *, connect_timeout: float = 10.0) -> None:
        self.settings = settings
        self.link = BrokerLink(settings, connect_timeout=connect_timeout)
        self.topics = Topics(self.link.prefix)
        self.outbox = Outbox(self.link, qos=settings.qos, capacity=settings.outbox)
        self.sinks: list[MqttSink] = []
        self.started = time.monotonic()
        self._next_stats = self.started + settings.stats_interval
        self._lock = threading.Lock()
        self.outbox.ticks.append(self._tick)
        self.link.on_connected = self.outbox.resend
        if settings.discovery:
            self.link.subscriptions.append(f"{settings.discovery_prefix}/status")
            self.link.on_message = self._home_assistant

    @property
    def name(self) -> str:
        return self.link.name

    def start(self) -> MqttPublisher:
        """Connect (``UserError`` when the broker cannot be had) and say ``online``."""
        self.link.start()
        self.outbox.set(self.topics.available, ONLINE)
        self.outbox.start()
        return self

    def add_source(
        self, name: str, kind: str, stats: RunStats, *, classes: Iterable[str] = (), zones: Iterable[str] = ()
    ) -> MqttSink:
        s = self.settings
        discovery = Discovery(s.discovery_prefix, self.topics, name, kind) if s.discovery else None
        sink = MqttSink(
            self.outbox, self.topics, name, stats, discovery=discovery, classes=classes, zones=zones,
            snapshot_width=s.snapshot_width, count_interval=s.count_interval,
            snapshot_interval=s.snapshot_interval, figures=self.figures,
        )  # fmt: skip
        with self._lock:
            self.sinks.append(sink)
        return sink

    def close(self) -> None:
        self._stats()
        for sink in self.sinks:
            sink.close()  # done by its lane already, unless the run failed before it ran
        self.outbox.close(CLOSE_TIMEOUT)
        self.link.close(CLOSE_TIMEOUT)
        dropped = int(sum(self.outbox.totals()[1].values()))
        if dropped:
            log.warning("MQTT: %d messages were dropped (the broker was away or slow)", dropped)
        link = self.link
        if self.settings.qos and link.acknowledged < link.handed:
            log.warning(
                "MQTT: the broker acknowledged %d of the %d messages handed to it; the other %d may be lost",
                link.acknowledged, link.handed, link.handed - link.acknowledged,
            )  # fmt: skip

    # -- figures --------------------------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        """What the run report says of MQTT (run-wide)."""
        latency = self.outbox.latency
        published, dropped = self.outbox.totals()
        return {
            "broker": self.name,
            "run_published": int(sum(published.values())),  # every source's, and the run's own
            "run_dropped": int(sum(dropped.values())),
            "qos": self.settings.qos,
            "run_acknowledged": self.link.acknowledged,  # by the broker (QoS 0: written to the socket)
            "reconnects": self.link.reconnects,
            "latency_ms": {"p50": round(latency.percentile(50), 1), "p95": round(latency.percentile(95), 1)},
        }

    def counters(self) -> list[tuple[str, str, dict[str, float]]]:
        """``/metrics`` counters: (name, help, value by source; "" = the run's own)."""
        published, dropped = self.outbox.totals()
        return [
            ("mqtt_messages_published", "MQTT messages handed to the broker", published or {"": 0.0}),
            ("mqtt_messages_dropped", "MQTT messages dropped: the outbox was full, or the broker away",
             dropped or {"": 0.0}),
            ("mqtt_messages_acknowledged", "MQTT messages the broker acknowledged (QoS 1 and 2)",
             {"": float(self.link.acknowledged)}),
            ("mqtt_reconnects", "times the broker connection was made again", {"": self.link.reconnects}),
        ]  # fmt: skip

    # -- the outbox's thread --------------------------------------------------------------------------------
    def _tick(self) -> None:
        with self._lock:
            sinks = list(self.sinks)
        for sink in sinks:
            sink.tick()
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + self.settings.stats_interval
            self._stats()

    def _stats(self) -> None:
        with self._lock:
            sinks = list(self.sinks)
        if not sinks:
            return
        box = self.outbox

        def message() -> dict[str, Any]:
            published, dropped = box.totals()
            rows = [
                (s.source, s.stats, int(published.get(s.source, 0)), int(dropped.get(s.source, 0)))
                for s in sinks
            ]
            return stats_message(rows, time.monotonic() - self.started, self.link.reconnects)

        box.put(self.topics.stats, as_json(message))

    # -- paho's network thread --------------------------------------------------------------------------
    def _home_assistant(self, topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":  # Home Assistant (re)started: announce everything again
            self.outbox.resend()
