"""What a run tells beyond its own files: an MQTT broker (``--mqtt``) and push notifications
(``--notify``). Opened first, so a broker that refuses the connection or the credentials, or a URL
Apprise cannot use, ends the run with one line (exit 2) before anything else starts; closed last.

    outlets = Outlets.open(settings)                          # UserError: exit 2
    sinks += outlets.add_source(name, info, stats, settings, names)   # per source; [] when off
    ...
    outlets.close()                                           # in a finally

paho-mqtt and Apprise are imported only when asked for (the start-up path stays lean).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from detector.settings import Settings
from detector.sources.base import SourceInfo
from detector.stages.classes import class_names, resolve_classes
from detector.stats import RunStats
from detector.types import Sink

if TYPE_CHECKING:
    from detector.mqtt.publisher import MqttPublisher
    from detector.notify.alerts import AlertNotifier
    from detector.notify.worker import Notifier
    from detector.review_items import ReviewUpdate

log = logging.getLogger(__name__)
Counters = list[tuple[str, str, dict[str, float]]]


class Listener(Sink, Protocol):
    """A sink that also listens to its source's review items."""

    def review(self, update: ReviewUpdate) -> None: ...


def kept_classes(wanted: list[int | str] | None, names: Mapping[int, str]) -> list[str]:
    """The classes a run keeps (``--classes``) by the model's names (``Person`` is ``person``, as the
    detections say it); none when it keeps them all."""
    return [names[i] for i in resolve_classes(wanted, names) or []]


def announced_classes(settings: Settings, names: Mapping[int, str]) -> list[str]:
    """The classes MQTT announces to Home Assistant: ``mqtt.classes``, else the review alert classes
    the run keeps and whatever ``--classes`` keeps (by the model's names)."""
    if settings.mqtt.classes is not None:
        return [names[i] for i in resolve_classes(settings.mqtt.classes, names, "mqtt.classes: ") or []]
    kept = kept_classes(settings.classes, names)
    spelled = {name.lower(): name for name in names.values()}  # as the detections say it
    alerts = [spelled.get(c.lower()) for c in class_names(settings.review.alert_classes, names)]
    return list(dict.fromkeys([*(c for c in alerts if c and (not kept or c in kept)), *kept]))


class Outlets:
    def __init__(self) -> None:
        self.mqtt: MqttPublisher | None = None
        self.notifier: Notifier | None = None
        self.alerts: list[AlertNotifier] = []
        self.closed = False

    @classmethod
    def open(cls, settings: Settings) -> Outlets:
        out = cls()
        try:
            if settings.mqtt.url:
                from detector.mqtt.publisher import MqttPublisher

                out.mqtt = MqttPublisher(settings.mqtt, connect_timeout=settings.connect_timeout).start()
            if settings.notify.urls:
                from detector.notify.sender import targets
                from detector.notify.worker import Notifier

                n = settings.notify
                out.notifier = Notifier(targets(n.urls, n.timeout), timeout=n.timeout, retries=n.retries)
                out.notifier.start()
                log.info("notifications to %s", ", ".join(t.name for t in out.notifier.targets))
        except BaseException:
            out.close()
            raise
        return out

    def add_source(
        self, name: str, info: SourceInfo, stats: RunStats, settings: Settings, names: Mapping[int, str]
    ) -> list[Listener]:
        """The sinks of one source (its own ``settings``: its zones); each one also listens to the
        source's review items (``review``)."""
        sinks: list[Listener] = []
        if self.mqtt is not None:
            classes = announced_classes(settings, names)
            zones = [z.name for z in settings.zones]
            sinks.append(self.mqtt.add_source(name, info.kind, stats, classes=classes, zones=zones))
        if self.notifier is not None:
            from detector.notify.alerts import AlertNotifier

            self.alerts.append(AlertNotifier(self.notifier, name, settings.notify, names))
            sinks.append(self.alerts[-1])
        return sinks

    def counters(self) -> Counters:
        """For ``/metrics``: (name, help, value by source)."""
        out: Counters = []
        if self.mqtt is not None:
            out += self.mqtt.counters()
        if self.notifier is not None:
            n = self.notifier.totals()
            out += [
                ("notifications_sent", "notifications every target took", n["sent"] or {"": 0.0}),
                ("notifications_failed", "notifications a target never took", n["failed"] or {"": 0.0}),
                ("notifications_dropped", "notifications never sent (queue full, or the run ended)",
                 n["dropped"] or {"": 0.0}),
            ]  # fmt: skip
            held = {a.source: float(a.report()["notify"]["skipped"]) for a in self.alerts}
            out.append(
                ("notifications_skipped", "alerts the cooldown or the filters held back", held or {"": 0.0})
            )
        return out

    def close(self) -> None:
        """Send what waits (bounded), say ``offline``, disconnect; never raises over the run's error.
        Once: later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        closers: list[Callable[[], None]] = []
        if self.notifier is not None:
            closers.append(self.notifier.close)
        if self.mqtt is not None:
            closers.append(self.mqtt.close)
        for close in closers:
            try:
                close()
            except Exception as exc:
                log.error("closing %s failed: %s", getattr(close, "__self__", close).__class__.__name__, exc)
