"""Home Assistant MQTT discovery: each source is a device with a sensor per class count, a
binary_sensor per zone (occupied while ``{zone}/all`` is above 0) and an image entity per class
snapshot, all available while ``{prefix}/available`` says ``online``.

Configs go to ``{discovery_prefix}/{component}/{node}/{object}/config``, retained; ``node`` is the
topic prefix and ``object`` the source and what it counts, in the characters discovery allows
(``[A-Za-z0-9_-]``). Only the classes of ``mqtt.classes`` are announced, at start (by default the
review alert classes and the classes ``--classes`` keeps), so the potted plant or the bench the model
once saw do not become idle sensors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from detector.mqtt.topics import ALL, Topics

ORIGIN = {"name": "detector"}


def object_id(*parts: str) -> str:
    """Discovery's id characters only: ``front door`` + ``person`` -> ``front_door_person``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", "_".join(parts)).strip("_") or "_"


def entity_slug(oid: str) -> str:
    """The object part of a Home Assistant entity id: ``[a-z0-9_]``, no ``__``, no ``_`` at either end."""
    return re.sub(r"[^a-z0-9]+", "_", oid.lower()).strip("_") or "detector"


@dataclass(frozen=True)
class Discovery:
    """The discovery configs of one source."""

    prefix: str  # Home Assistant's, usually ``homeassistant``
    topics: Topics
    source: str
    kind: str  # the source's kind: camera, stream, file...

    @property
    def node(self) -> str:
        return object_id(self.topics.prefix)

    @property
    def device(self) -> dict[str, object]:
        return {
            "identifiers": [f"detector_{self.node}_{object_id(self.source)}"],
            "name": self.source,
            "manufacturer": "detector",
            "model": f"detector ({self.kind})",
        }

    def _config(self, component: str, what: str, body: dict[str, object]) -> tuple[str, str]:
        oid = object_id(self.source, what)
        payload = {
            "unique_id": f"detector_{self.node}_{oid}",
            # the entity id Home Assistant gives it (``object_id`` is deprecated since 2025.10 and goes in
            # 2026.4; older versions drop keys they do not know, and name the entity after it instead)
            "default_entity_id": f"{component}.{entity_slug(oid)}",
            "availability_topic": self.topics.available,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": self.device,
            "origin": ORIGIN,
            **body,
        }
        return f"{self.prefix}/{component}/{self.node}/{oid}/config", json.dumps(payload)

    def count(self, class_name: str) -> tuple[str, str]:
        """The sensor of the class count (``all``: every object in view)."""
        name = "objects" if class_name == ALL else class_name
        return self._config("sensor", f"{class_name}_count", {
            "name": f"{name} count",
            "state_topic": self.topics.count(self.source, class_name),
            "state_class": "measurement",
            "icon": "mdi:account-group" if class_name == "person" else "mdi:counter",
        })  # fmt: skip

    def zone(self, zone: str) -> tuple[str, str]:
        """The zone's occupancy: on while anything (``all``) is inside."""
        return self._config("binary_sensor", f"{zone}_occupancy", {
            "name": f"{zone} occupancy",
            "state_topic": self.topics.zone_count(self.source, zone, ALL),
            "value_template": "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}",
            "device_class": "occupancy",
        })  # fmt: skip

    def snapshot(self, class_name: str) -> tuple[str, str]:
        """The image entity of the class's latest snapshot."""
        return self._config("image", f"{class_name}_snapshot", {
            "name": f"{class_name} snapshot",
            "image_topic": self.topics.snapshot(self.source, class_name),
            "content_type": "image/jpeg",
        })  # fmt: skip

    def status(self) -> tuple[str, str]:
        """The source's status: online, offline or reconnecting."""
        return self._config("sensor", "status", {
            "name": "status",
            "state_topic": self.topics.status(self.source),
            "icon": "mdi:cctv",
        })  # fmt: skip
