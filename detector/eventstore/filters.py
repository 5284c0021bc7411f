"""What a query of the store asks: the filters of ``/api/reviews``, ``/api/events`` and
``detector events``, read from text (times, cursors, limits) and refused with one line (``BadQuery``)
when they cannot be read. ``store.queries`` runs them."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime

MAX_LIMIT = 500


class BadQuery(ValueError):
    """A filter or cursor that cannot be read (the API answers 400 with the message)."""


@dataclass(frozen=True)
class ReviewQuery:
    source: str | None = None
    severity: str | None = None
    class_name: str | None = None
    zone: str | None = None
    after: float | None = None
    before: float | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class EventQuery:
    source: str | None = None
    kind: str | None = None
    class_name: str | None = None
    zone: str | None = None
    line: str | None = None
    review: str | None = None
    after: float | None = None
    before: float | None = None
    limit: int = 50
    cursor: str | None = None


def limit_of(n: int) -> int:
    if not 1 <= n <= MAX_LIMIT:
        raise BadQuery(f"limit must be 1-{MAX_LIMIT}, got {n}")
    return n


def review_cursor(cursor: str) -> tuple[float, str]:
    start, sep, review_id = cursor.partition("_")
    try:
        if not sep or not review_id:
            raise ValueError
        if not math.isfinite(float(start)):
            raise ValueError
        return float(start), review_id
    except ValueError:
        raise BadQuery(f"not a cursor of this list: {cursor[:80]!r}") from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def read_time(text: str, now: float) -> float:
    """A point in time as Unix seconds, from Unix seconds (``1764578527``), an ISO 8601 date or time
    (``2026-12-01``, ``2026-12-01T09:42``: local time unless it says its offset), or how long ago
    (``90s``, ``15m``, ``2h``, ``3d``, ``1w``)."""
    text = text.strip()
    seconds: float | None = None
    with contextlib.suppress(ValueError):
        seconds = float(text)
    if seconds is None and len(text) > 1 and text[-1].lower() in _UNITS:
        with contextlib.suppress(ValueError):
            seconds = now - float(text[:-1]) * _UNITS[text[-1].lower()]
    if seconds is None:
        with contextlib.suppress(ValueError, OverflowError):
            seconds = datetime.fromisoformat(text).timestamp()
    if seconds is not None and math.isfinite(seconds):  # nan, inf, 1e400 or 9 x 5000 are no time
        return seconds
    raise ValueError(
        f"not a time: {text[:40]!r} (give Unix seconds, an ISO date or time such as 2026-12-01T09:00, "
        "or how long ago: 90s, 15m, 2h, 3d)"
    )


def id_at(seconds: float) -> str:
    """The smallest UUID v7 made at Unix time ``seconds`` (ids sort as text by time)."""
    h = f"{max(0, int(seconds * 1000)):012x}"
    return f"{h[:8]}-{h[8:]}"
