"""Event records: what happened in a source, typed and immutable, one class per kind.

A stage (or the capture thread, for a gap) makes a record with what it knows: the kind's own fields,
the object (``class_name``, ``track_id``, ``confidence``, ``xyxy``) and the media time (``frame``,
``pts``). Its lane then *stamps* it (``stamp``: a unique ``id``, the run's ``source`` name and the
``wall_time``) and lets the clip recorder *attach* its clip and snapshot, each step making a new
record (``dataclasses.replace``). Only then does any sink see it, and every sink sees the same one:
the JSONL files, the clips' ``events.jsonl``, the report, the web view, and later the event store
and MQTT all name an event by the same ``id``.

``to_dict`` is the JSON form (``"event"`` holds the kind): the field names the JSONL has always
used, plus ``id``, ``source``, ``wall_time``, ``confidence`` and ``xyxy``; ``clip``,
``clip_offset_s``, ``snapshot`` and ``reason`` only when set. ``from_dict`` reads one back.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, ClassVar, Protocol

_HEAD = ("id", "source", "wall_time")  # after "event"
_TAIL = ("frame", "pts", "clip", "clip_offset_s", "snapshot")
_OMIT_NONE = frozenset({"clip", "clip_offset_s", "snapshot", "reason"})


_id_lock = threading.Lock()
_id_last = [0, 0]  # the (milliseconds, sequence) of the latest id


def new_id() -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit sequence that counts up
    within a millisecond (the RFC's "method 1", so ids made here sort in the order they were made),
    then 62 random bits. Ids sort by time, which the event store's index and cursors like, and never
    repeat across runs or machines. Written here: the standard library has no ``uuid7`` before 3.14."""
    with _id_lock:
        ms, seq = max(time.time_ns() // 1_000_000, _id_last[0]), 0
        if ms == _id_last[0]:
            seq = _id_last[1] + 1
            if seq > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms, seq = ms + 1, 0
        _id_last[:] = [ms, seq]
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0x2 << 62 | rand
    return str(uuid.UUID(int=value))


def iso_time(epoch: float) -> str:
    """ISO 8601 local time with its UTC offset, to the millisecond: ``2026-12-01T09:42:07.123+01:00``."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone().isoformat(timespec="milliseconds")


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """Fields every event has. ``id``, ``source`` and ``wall_time`` are empty until the lane stamps it;
    ``clip``, ``clip_offset_s`` and ``snapshot`` are set by the clip recorder (``--clips``)."""

    kind: ClassVar[str] = "event"
    clip_worthy: ClassVar[bool] = False  # does it start or extend a clip (with --clips)?

    id: str = ""
    source: str = ""
    wall_time: str = ""  # live sources: capture time; files: processing time
    frame: int | None = None  # 0-based index in the source
    pts: float | None = None  # media time in seconds
    clip: str | None = None  # relative to the clips folder
    clip_offset_s: float | None = None  # where in the clip the event is
    snapshot: str | None = None  # relative to the clips folder

    @cached_property
    def _dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        own = [k for k in values if k not in _HEAD and k not in _TAIL]
        out: dict[str, Any] = {"event": self.kind}
        for key in (*_HEAD, *own, *_TAIL):
            value = values[key]
            if value is None and key in _OMIT_NONE:
                continue
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (a fresh dict each call; the record itself never changes)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self._dict.items()}


@dataclass(frozen=True, kw_only=True)
class ObjectEvent(EventRecord):
    """An event about one detected object."""

    track_id: int | None = None
    class_name: str = ""
    confidence: float | None = None
    xyxy: tuple[float, float, float, float] | None = None  # source-frame pixels


@dataclass(frozen=True, kw_only=True)
class TrackNew(ObjectEvent):
    """A track of a ``--clip-on`` class was confirmed."""

    kind: ClassVar[str] = "track_new"
    clip_worthy: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class LineCross(ObjectEvent):
    """A tracked object crossed a counting line (at most once per track and line)."""

    kind: ClassVar[str] = "line_cross"
    clip_worthy: ClassVar[bool] = True
    line: str
    direction: str  # "in" or "out"


@dataclass(frozen=True, kw_only=True)
class ZoneEnter(ObjectEvent):
    kind: ClassVar[str] = "zone_enter"
    clip_worthy: ClassVar[bool] = True
    zone: str


@dataclass(frozen=True, kw_only=True)
class ZoneExit(ObjectEvent):
    """Left the zone; ``reason`` is ``lost`` (the track ended inside) or ``end`` (the source ended)."""

    kind: ClassVar[str] = "zone_exit"
    zone: str
    dwell_s: float
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Gap(EventRecord):
    """A live source was lost and came back: nothing was seen from ``from_pts`` to ``to_pts``."""

    kind: ClassVar[str] = "gap"
    after_frame: int | None
    from_pts: float | None
    to_pts: float
    seconds: float
    attempts: int


@dataclass(frozen=True, kw_only=True)
class StorageFull(EventRecord):
    """An output could not be written (a full disk, a quota, an I/O error): it closed what it had, and
    detection and the other outputs go on. ``output``: the file; ``error``: why; ``free_bytes``: free
    space left on its filesystem then (None if unknown)."""

    kind: ClassVar[str] = "storage_full"
    output: str
    error: str
    free_bytes: int | None = None


KINDS: dict[str, type[EventRecord]] = {
    cls.kind: cls for cls in (TrackNew, LineCross, ZoneEnter, ZoneExit, Gap, StorageFull)
}


def from_dict(data: Mapping[str, Any]) -> EventRecord:
    """The record of a ``to_dict`` form; keys this version does not know are ignored."""
    kind = str(data.get("event", ""))
    cls = KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    if isinstance(values.get("xyxy"), list):
        values["xyxy"] = tuple(float(v) for v in values["xyxy"])
    return cls(**values)


def stamp(record: EventRecord, source: str, epoch: float) -> EventRecord:
    """The record with a fresh ``id``, its source's name and ``wall_time`` (``epoch``: Unix seconds)."""
    return dataclasses.replace(record, id=new_id(), source=source, wall_time=iso_time(epoch))


class Attacher(Protocol):
    """Adds files to a stamped record before any sink sees it (the clip recorder)."""

    def attach(self, record: EventRecord) -> EventRecord: ...


def object_fields(
    track_id: int | None, class_name: str, confidence: float | None, xyxy: Any
) -> dict[str, Any]:
    """The object part of an event, rounded like the JSONL's detections."""
    box = None if xyxy is None else tuple(round(float(v), 1) for v in list(xyxy)[:4])
    return {
        "track_id": None if track_id is None else int(track_id),
        "class_name": class_name,
        "confidence": None if confidence is None else round(float(confidence), 4),
        "xyxy": box,
    }
