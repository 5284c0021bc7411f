"""Reading a store: the review items and events that ``/api/reviews``, ``/api/events``, the history
page and ``detector events`` show, newest first, a page at a time.

Pages are keyset-paginated: a page's ``next`` cursor names its last row, and the next page starts
after it (``(start_time, id)`` for items, the time-ordered UUID v7 ``id`` for events), so a page
costs the same deep in a long history as at its top, and rows written meanwhile never shift a page.
Every filter walks an index: items by start time, by source or severity, by class or zone
(``review_labels``); events by id, by source, class or kind.

Times (``after``, ``before``) are Unix seconds: an item is listed when its span overlaps them, an
event when its time lies within them. (An item's span in Unix time has no fixed bound: a file processed
slower than it plays stretches its ``MAX_ITEM_S`` of video, so ``after`` looks back as far as the
store's longest item.) An item that a run left open when it was killed is shown as
ended at its last activity (``in_progress`` only while its run is alive on this machine, or on
another one).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from detector.errors import UserError
from detector.eventstore.rows import pid_alive, real_path
from detector.eventstore.schema import SCHEMA_VERSION, connect, version_of

MAX_LIMIT = 500
ID_MARGIN_S = 600.0  # an event's id is made at most this long after its wall_time (capture time)


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


def _limit(n: int) -> int:
    if not 1 <= n <= MAX_LIMIT:
        raise BadQuery(f"limit must be 1-{MAX_LIMIT}, got {n}")
    return n


def _review_cursor(cursor: str) -> tuple[float, str]:
    start, sep, review_id = cursor.partition("_")
    try:
        if not sep or not review_id:
            raise ValueError
        return float(start), review_id
    except ValueError:
        raise BadQuery(f"not a cursor of this list: {cursor!r}") from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def read_time(text: str, now: float) -> float:
    """A point in time as Unix seconds, from Unix seconds (``1764578527``), an ISO 8601 date or time
    (``2026-12-01``, ``2026-12-01T09:42``: local time unless it says its offset), or how long ago
    (``90s``, ``15m``, ``2h``, ``3d``, ``1w``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if len(text) > 1 and text[-1].lower() in _UNITS:
        try:
            return now - float(text[:-1]) * _UNITS[text[-1].lower()]
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (give Unix seconds, an ISO date or time such as 2026-12-01T09:00, "
            "or how long ago: 90s, 15m, 2h, 3d)"
        ) from None


def id_at(seconds: float) -> str:
    """The smallest UUID v7 made at Unix time ``seconds`` (ids sort as text by time)."""
    h = f"{max(0, int(seconds * 1000)):012x}"
    return f"{h[:8]}-{h[8:]}"


class StoreReader:
    """Queries on the store at ``path``, from any thread (each thread gets its own read-only
    connection). A store not written yet reads as empty."""

    def __init__(self, path: Path, *, must_exist: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.root = self.path.absolute().parent
        if must_exist and not self.path.is_file():
            raise UserError(f"event store {self.path} does not exist")
        self._local = threading.local()
        self._host = socket.gethostname()

    def _db(self) -> sqlite3.Connection | None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if not self.path.is_file():
                return None
            db = connect(self.path, readonly=True)
            version = version_of(db, self.path)
            if version == 0:
                db.close()
                return None  # being created
            if version != SCHEMA_VERSION:
                db.close()
                raise UserError(f"event store {self.path} has schema {version}: open it with `detector run` "
                                f"(or `detector serve`) of this version to migrate it")  # fmt: skip
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
            self._local.longest = None

    # -- review items -------------------------------------------------------------------------------------
    def reviews(self, q: ReviewQuery) -> tuple[list[dict[str, Any]], str | None]:
        """A page of items, newest first, and the cursor of the next page (None: the last page)."""
        limit = _limit(q.limit)
        db = self._db()
        if db is None:
            return [], None
        where: list[str] = []
        args: list[Any] = []
        label = ("object", q.class_name) if q.class_name else ("zone", q.zone) if q.zone else None
        if label is not None:
            frm = "review_labels l JOIN reviews r ON r.id = l.review_id"
            key = ("l.start_time", "l.review_id")
            where.append("l.kind = ? AND l.name = ?")
            args += label
            if q.class_name and q.zone:
                where.append("EXISTS (SELECT 1 FROM review_labels z WHERE z.kind = 'zone' AND z.name = ?"
                             " AND z.review_id = r.id)")  # fmt: skip
                args.append(q.zone)
        else:
            frm, key = "reviews r", ("r.start_time", "r.id")
        for column, value in (("r.source", q.source), ("r.severity", q.severity)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if q.before is not None:
            where.append(f"{key[0]} < ?")
            args.append(q.before)
        if q.after is not None:
            where.append(f"{key[0]} > ? AND coalesce(r.end_time, r.last_time) >= ?")
            args += [q.after - self._longest(db) - 1.0, q.after]
        if q.cursor:
            where.append(f"({key[0]}, {key[1]}) < (?, ?)")
            args += _review_cursor(q.cursor)
        sql = (
            f"SELECT r.id, r.data, r.end_time, r.last_time, r.run, r.start_time FROM {frm}"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY {key[0]} DESC, {key[1]} DESC LIMIT ?"
        )
        rows = db.execute(sql, [*args, limit + 1]).fetchall()
        alive = self._alive_runs(db)
        items = [self._item(db, row, alive) for row in rows[:limit]]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return items, f"{last[5]!r}_{last[0]}" if last is not None else None

    def review(self, review_id: str) -> dict[str, Any] | None:
        """One item with its events (their records, newest last) and its media."""
        db = self._db()
        if db is None:
            return None
        row = db.execute(
            "SELECT id, data, end_time, last_time, run, start_time FROM reviews WHERE id = ?", (review_id,)
        ).fetchone()
        if row is None:
            return None
        item = self._item(db, row, self._alive_runs(db))
        events = db.execute("SELECT data FROM events WHERE review_id = ? ORDER BY id", (review_id,))
        item["records"] = [json.loads(data) for (data,) in events.fetchall()]
        media = db.execute(
            "SELECT id, kind, path, event_id FROM media WHERE review_id = ?"
            " OR event_id IN (SELECT id FROM events WHERE review_id = ?) ORDER BY id",
            (review_id, review_id),
        )
        item["media"] = [
            {"id": m, "kind": kind, "name": Path(path).name, "event": event}
            for m, kind, path, event in media.fetchall()
        ]
        return item

    def _longest(self, db: sqlite3.Connection) -> float:
        """The longest span of the store's items (Unix seconds), read again only once another
        connection has committed since."""
        version = db.execute("PRAGMA data_version").fetchone()[0]
        known: tuple[int, float] | None = getattr(self._local, "longest", None)
        if known is None or known[0] != version:
            span = db.execute("SELECT max(last_time - start_time) FROM reviews").fetchone()[0]
            known = (version, max(0.0, float(span or 0.0)))
            self._local.longest = known
        return known[1]

    def _alive_runs(self, db: sqlite3.Connection) -> set[int]:
        alive = set()
        for run, host, pid in db.execute("SELECT id, host, pid FROM runs WHERE ended IS NULL"):
            if host != self._host or pid_alive(int(pid)):
                alive.add(int(run))
        return alive

    def _item(self, db: sqlite3.Connection, row: Sequence[Any], alive: set[int]) -> dict[str, Any]:
        review_id, data, end_time, last_time, run, _ = row
        item: dict[str, Any] = json.loads(data)
        in_progress = end_time is None and run in alive
        if end_time is None and not in_progress:
            item["end_time"] = round(last_time, 3)  # its run died with it open
        item["in_progress"] = in_progress
        item["thumbnail"] = bool(
            db.execute("SELECT 1 FROM thumbnails WHERE review_id = ?", (review_id,)).fetchone()
        )
        clip = db.execute(
            "SELECT id, path, media_start, media_end FROM media WHERE review_id = ? AND +kind = 'clip'",
            (review_id,),
        ).fetchone()
        item["clip"] = None
        if clip is not None:
            start, end = clip[2], clip[3]
            duration = None if start is None or end is None else round(end - start, 3)
            item["clip"] = {
                "id": clip[0],
                "name": Path(clip[1]).name,
                "media_start": None if start is None else round(start, 3),
                "duration": duration,
            }
        return item

    def _row(self, sql: str, args: Sequence[Any]) -> Any:
        db = self._db()
        return None if db is None else db.execute(sql, args).fetchone()

    def thumbnail(self, review_id: str) -> bytes | None:
        row = self._row("SELECT jpeg FROM thumbnails WHERE review_id = ?", (review_id,))
        return bytes(row[0]) if row is not None else None

    # -- events -------------------------------------------------------------------------------------------
    def events(self, q: EventQuery) -> tuple[list[dict[str, Any]], str | None]:
        limit = _limit(q.limit)
        db = self._db()
        if db is None:
            return [], None
        where: list[str] = []
        args: list[Any] = []
        columns = (("source", q.source), ("kind", q.kind), ("class_name", q.class_name), ("zone", q.zone),
                   ("line", q.line), ("review_id", q.review))  # fmt: skip
        for column, value in columns:
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if q.after is not None:
            where.append("id >= ? AND time >= ?")
            args += [id_at(q.after - ID_MARGIN_S), q.after]
        if q.before is not None:
            where.append("id < ? AND time < ?")
            args += [id_at(q.before + ID_MARGIN_S), q.before]
        if q.cursor:
            where.append("id < ?")
            args.append(q.cursor)
        sql = (
            f"SELECT id, data, review_id FROM events{' WHERE ' + ' AND '.join(where) if where else ''}"
            " ORDER BY id DESC LIMIT ?"
        )
        rows = db.execute(sql, [*args, limit + 1]).fetchall()
        out = [self._event(db, row) for row in rows[:limit]]
        return out, rows[limit - 1][0] if len(rows) > limit else None

    def event(self, event_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT id, data, review_id FROM events WHERE id = ?", (event_id,))
        db = self._db()
        return self._event(db, row) if db is not None and row is not None else None

    def _event(self, db: sqlite3.Connection, row: Sequence[Any]) -> dict[str, Any]:
        event_id, data, review_id = row
        record: dict[str, Any] = json.loads(data)
        record["review_id"] = review_id
        snap = db.execute("SELECT id, path FROM media WHERE event_id = ? AND +kind = 'snapshot'", (event_id,))
        found = snap.fetchone()
        record["snapshot_media"] = None if found is None else {"id": found[0], "name": Path(found[1]).name}
        clip = None
        if review_id:
            clip = db.execute("SELECT id, path FROM media WHERE review_id = ? AND +kind = 'clip'",
                              (review_id,)).fetchone()  # fmt: skip
        record["clip_media"] = None if clip is None else {"id": clip[0], "name": Path(clip[1]).name}
        return record

    # -- media and what the filters offer -----------------------------------------------------------------
    def media(self, media_id: int) -> tuple[Path, str] | None:
        """Where the file of media row ``media_id`` is, and its kind; None if the store has no such row."""
        row = self._row("SELECT path, kind FROM media WHERE id = ?", (media_id,))
        return None if row is None else (real_path(row[0], self.root), str(row[1]))

    def facets(self) -> dict[str, Any]:
        """What the history page's filters offer: sources, classes, zones, and the first and last day."""
        db = self._db()
        if db is None:
            return {"sources": [], "classes": [], "zones": [], "severities": [], "first": None, "last": None}
        sources = [r[0] for r in db.execute("SELECT DISTINCT source FROM reviews ORDER BY source")]
        names: dict[str, list[str]] = {"object": [], "zone": []}
        for kind in names:
            names[kind] = [r[0] for r in db.execute(
                "SELECT DISTINCT name FROM review_labels WHERE kind = ? ORDER BY name", (kind,))]  # fmt: skip
        severities = [r[0] for r in db.execute("SELECT DISTINCT severity FROM reviews ORDER BY severity")]
        first, last = db.execute("SELECT min(start_time), max(start_time) FROM reviews").fetchone()
        return {"sources": sources, "classes": names["object"], "zones": names["zone"],
                "severities": severities, "first": first, "last": last}  # fmt: skip
