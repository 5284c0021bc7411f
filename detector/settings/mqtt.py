"""The ``mqtt`` section: publishing to an MQTT broker (``--mqtt mqtt://[user:pass@]host[:port][/prefix]``).

``parse_mqtt_url`` is the one reader of the URL; the password may also come from the section or from
``$DETECTOR_MQTT_PASSWORD`` (``detector.mqtt.link`` picks it, so it is never written anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import field_validator, model_validator

from detector.settings.base import RUN, StrictModel, option, split_list

SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}  # scheme -> TLS
DEFAULT_PREFIX = "detector"
PREFIX_MAX = 200  # characters of a topic prefix: MQTT topics end at 65,535 bytes, and names add to it
ID_MAX = 200  # characters of a client id or user name (an MQTT string ends at 65,535 bytes)


@dataclass(frozen=True)
class BrokerAddress:
    """What an ``mqtt://`` URL says: where the broker is, who we are, and the topic prefix."""

    host: str
    port: int | None  # None: 1883, or 8883 with TLS
    tls: bool
    prefix: str
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://user:pass@host:1884/home/cams`` -> host, port 1884, prefix ``home/cams``. ``mqtts://``
    (or ``ssl://``) means TLS. Raises ``ValueError`` saying what is wrong (never showing a password)."""
    scheme, sep, _ = url.strip().partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError("should be mqtt://[user:pass@]host[:port][/prefix] (or mqtts:// for TLS)")
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("has no host: mqtt://HOST[:PORT][/prefix]")
    if port == 0:
        raise ValueError("has port 0; give the broker's port (1883 by default)")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    tail = url.strip().partition("://")[2].partition("/")[2]  # the prefix as typed (# starts a fragment)
    if any(c in tail for c in "+#?\0"):
        raise ValueError("has a topic prefix with a wildcard (+ or #) or a '?'")
    if len(prefix) > PREFIX_MAX:
        raise ValueError(f"has a topic prefix of {len(prefix):,} characters; at most {PREFIX_MAX}")
    if parts.username and len(parts.username) > ID_MAX:
        raise ValueError(f"has a user name of {len(parts.username):,} characters; at most {ID_MAX}")
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        tls=SCHEMES[scheme.lower()],
        prefix=prefix,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class MqttSettings(StrictModel):
    """MQTT: events, review items, counts, snapshots, status and stats, with Home Assistant discovery."""

    url: str | None = option(
        None,
        "publish to this MQTT broker: events, reviews, counts per class and zone, snapshots, status, "
        "stats, Home Assistant discovery; mqtts:// for TLS",
        flag="--mqtt", commands=(RUN,), metavar="mqtt://[USER:PASS@]HOST[:PORT][/PREFIX]",
        default_text="off", repr=False,
    )  # fmt: skip
    username: str | None = option(
        None, "broker user name, when the URL has none", flag=False, max_length=ID_MAX
    )
    password: str | None = option(
        None,
        "broker password, when the URL has none",
        flag=False,
        default_text="$DETECTOR_MQTT_PASSWORD",
        repr=False,
    )
    tls: bool = option(False, "connect with TLS (as mqtts:// does)", flag=False)
    ca_certs: str | None = option(
        None, "CA certificates (PEM) that sign the broker's certificate", flag=False,
        default_text="the system's",
    )  # fmt: skip
    client_id: str | None = option(
        None, "MQTT client id; two clients with one id push each other off the broker", flag=False,
        default_text="detector-<random>", max_length=ID_MAX,
    )  # fmt: skip
    qos: int = option(1, "QoS of every message: 0, 1 or 2", flag=False, ge=0, le=2)
    stats_interval: float = option(
        60.0, "seconds between {prefix}/stats messages (fps, latency, drops per source)", flag=False,
        gt=0, le=86400,
    )  # fmt: skip
    discovery: bool = option(True, "announce each source to Home Assistant (MQTT discovery)", flag=False)
    classes: list[int | str] | None = option(
        None, "the classes Home Assistant discovery announces (a count sensor and a snapshot image each) "
        "and whose counts start at 0", flag=False,
        default_text="review.alert_classes and the classes --classes keeps",
    )  # fmt: skip
    discovery_prefix: str = option(
        "homeassistant", "Home Assistant's discovery prefix", flag=False, max_length=PREFIX_MAX
    )
    outbox: int = option(
        1000, "messages waiting for the broker, at most; past it the oldest are dropped (counted)",
        flag=False, ge=10, le=1_000_000,
    )  # fmt: skip
    count_interval: float = option(
        1.0, "seconds between two messages of one count topic (a class, a zone's class), at least; the "
        "latest count is always sent, at most this late; 0: every change", flag=False, ge=0, le=3600,
    )  # fmt: skip
    snapshot_interval: float = option(
        5.0, "seconds between two snapshots of one class on one source, at least; the latest is sent "
        "once the time is up; 0: every one", flag=False, ge=0, le=86400,
    )  # fmt: skip
    snapshot_width: int = option(
        640, "widest snapshot JPEG published; wider frames are scaled down", flag=False, ge=64, le=7680
    )
    keepalive: int = option(
        30, "seconds between keep-alive pings; the broker sends the last will 1.5x after silence",
        flag=False, ge=5, le=3600,
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _bare_url(cls, data: Any) -> Any:
        """``mqtt: mqtt://broker`` in a config means ``mqtt: {url: mqtt://broker}``."""
        return {"url": data} if isinstance(data, str) else data

    _split = field_validator("classes", mode="before")(split_list)

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is not None:
            parse_mqtt_url(v)
        return v

    @field_validator("discovery_prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not v or any(c in v for c in "+#\0"):
            raise ValueError("should be a topic without wildcards, such as homeassistant")
        return v
