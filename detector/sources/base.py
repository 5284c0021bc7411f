"""What every source is: ``SourceInfo`` (facts once open) and the ``Source`` protocol (decode one frame
per ``read()``, ``None`` at the end). Threading, drop policy and reconnects live in ``capture``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from detector.errors import SourceError
from detector.types import Frame

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = frozenset(  # what a folder is searched for by ``detector batch``
    {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".gif", ".ts", ".flv", ".wmv", ".mpg", ".mpeg"}
)
URL_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp"}
SourceKind = Literal["file", "camera", "stream", "images"]
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|sig|cred", re.IGNORECASE)
HIDDEN = "***"


@dataclass
class SourceInfo:
    """What we know about a source once it is open."""

    name: str
    kind: SourceKind
    width: int
    height: int
    fps: Fraction
    frame_count: int | None = None  # an estimate from the header; never trusted for correctness
    codec: str = ""
    duration: float | None = None

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "stream")


class Source(Protocol):
    info: SourceInfo
    corrupt: int  # frames or packets skipped because they would not decode

    def read(self) -> Frame | None: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...


def valid_rate(rate: Fraction | None) -> Fraction | None:
    if rate is None:
        return None
    try:
        value = float(rate)
    except (ZeroDivisionError, TypeError, ValueError):
        return None
    if not math.isfinite(value) or value <= 0 or value > 1000:
        return None
    return Fraction(rate).limit_denominator(1001)


def redact_url(spec: str) -> str:
    """``spec`` without credentials: a URL's user and password become ``***``, and so do the values
    of query parameters whose names look secret (``password=``, ``token=``, ``key=``...)."""
    if "://" not in spec:
        return spec
    try:
        parts = urlsplit(spec)
    except ValueError:  # not parseable as a URL: show only the scheme
        return spec.partition("://")[0] + "://" + HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{key}={HIDDEN}" if sep and _SECRET_KEY.search(key) else f"{key}{sep}{value}"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&"))
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", parts.fragment))


def check_url(spec: str) -> None:
    """Reject a malformed URL before anything slow happens (model load, connect)."""
    scheme, _, rest = spec.strip().partition("://")
    if scheme.lower() not in URL_SCHEMES:
        raise SourceError(
            f"URL scheme '{scheme}' is not supported; use one of {', '.join(sorted(URL_SCHEMES))}"
        )
    if not rest.strip("/"):
        raise SourceError(f"URL {redact_url(spec)} has no host")


def is_live_spec(spec: str) -> bool:
    """A camera index or a URL: a source that runs in real time."""
    spec = spec.strip()
    return spec.isdigit() or "://" in spec
