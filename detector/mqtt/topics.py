"""The topics a run publishes under its prefix (``detector`` unless the URL's path says another):

    {prefix}/available                  online / offline, retained (offline is also the last will)
    {prefix}/events                     every event record as JSON (QoS 1)
    {prefix}/reviews                    review items: {"type": "new"|"update"|"end", "before", "after"}
    {prefix}/stats                      JSON every mqtt.stats_interval seconds
    {prefix}/{source}/status            online / offline / reconnecting, retained
    {prefix}/{source}/{class}           objects of the class in view now, retained, sent on change
    {prefix}/{source}/{zone}/{class}    objects of the class in the zone now, retained, on change
    {prefix}/{source}/{class}/snapshot  JPEG of the latest best snapshot of the class, retained

``all`` is a class too: every object (in view, or in the zone), as Frigate does; Home Assistant's
zone occupancy reads ``{zone}/all``. Names go into topics slugged: letters, digits, ``_``, ``-`` and ``.``
kept, any run of other characters (a space, ``/``, ``+``, ``#``) made one ``_``: the class
``potted plant`` is ``potted_plant``, the camera ``front door`` is ``front_door``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.stats import RunStats

ALL = "all"
ONLINE, OFFLINE, RECONNECTING = "online", "offline", "reconnecting"
_OTHER = re.compile(r"[^\w.-]+")  # \w: letters and digits of any script, and _


def segment(name: str) -> str:
    """One level of a topic, slugged: ``potted plant`` -> ``potted_plant``, ``a/b+`` -> ``a_b``
    (never empty, no wildcard, no space)."""
    return _OTHER.sub("_", name).strip("_") or "_"


@dataclass(frozen=True)
class Topics:
    prefix: str

    @property
    def available(self) -> str:
        return f"{self.prefix}/available"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def reviews(self) -> str:
        return f"{self.prefix}/reviews"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    def status(self, source: str) -> str:
        return f"{self.prefix}/{segment(source)}/status"

    def count(self, source: str, class_name: str) -> str:
        return f"{self.prefix}/{segment(source)}/{segment(class_name)}"

    def zone_count(self, source: str, zone: str, class_name: str) -> str:
        return f"{self.prefix}/{segment(source)}/{segment(zone)}/{segment(class_name)}"

    def snapshot(self, source: str, class_name: str) -> str:
        return f"{self.count(source, class_name)}/snapshot"


def with_all(counts: Mapping[str, int]) -> dict[str, int]:
    """Per-class counts plus ``all``, their sum."""
    return {**counts, ALL: sum(counts.values())}


def changes(before: Mapping[str, int], now: Mapping[str, int]) -> dict[str, int]:
    """The counts to send: those that changed, and 0 for every class that left."""
    out = {k: v for k, v in now.items() if before.get(k) != v}
    out.update({k: 0 for k, v in before.items() if k not in now and v})
    return out


def source_stats(stats: RunStats, published: int, dropped: int) -> dict[str, Any]:
    """One source in ``{prefix}/stats``: frame rate, latency, frames and drops."""
    return {
        "fps": round(stats.fps_meter.value or 0.0, 2),
        "latency_ms": {
            "p50": round(stats.latency.percentile(50), 1),
            "p95": round(stats.latency.percentile(95), 1),
        },
        "frames": {
            "read": stats.frames_read,
            "processed": stats.frames_processed,
            "dropped": stats.frames_dropped,
        },
        "gaps": stats.gaps,
        "reconnecting": stats.reconnecting,
        "mqtt": {"published": published, "dropped": dropped},
    }


def stats_message(
    sources: Sequence[tuple[str, RunStats, int, int]], uptime: float, reconnects: int
) -> dict[str, Any]:
    """The ``{prefix}/stats`` payload: every source's figures (name, stats, published, dropped)."""
    return {
        "uptime_s": round(uptime, 1),
        "mqtt": {"reconnects": reconnects},
        "sources": {name: source_stats(stats, pub, drop) for name, stats, pub, drop in sources},
    }
