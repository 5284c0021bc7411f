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

import atexit
import contextlib
import functools
import json
import socket
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from detector.errors import UserError
from detector.eventstore.filters import EventQuery, ReviewQuery, id_at, limit_of, review_cursor
from detector.eventstore.rows import pid_alive
from detector.eventstore.schema import READ_BUSY_MS, SCHEMA_VERSION, connect, unreadable, version_of

ID_MARGIN_S = 600.0  # an event's id is made at most this long after its wall_time (capture time)


T = TypeVar("T")
_READERS: weakref.WeakSet[StoreReader] = weakref.WeakSet()


@atexit.register
def _close_readers() -> None:
    for reader in list(_READERS):
        reader.close_all()


def _reading(query: Callable[..., T]) -> Callable[..., T]:
    """A query whose store SQLite cannot read (damaged, locked by another process) raises ``UserError``
    with one line that says so (the API answers 503 with it, ``detector events`` exits with it)."""

    @functools.wraps(query)
    def read(self: StoreReader, *args: Any, **kwargs: Any) -> T:
        try:
            return query(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            self.close()  # this thread's connection: opened anew by the next query
            raise UserError(unreadable(self.path, exc, READ_BUSY_MS)) from exc

    return read


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
        self._open: list[sqlite3.Connection] = []  # every thread's, closed at exit (``close_all``)
        self._open_lock = threading.Lock()
        _READERS.add(self)

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
            with self._open_lock:
                self._open.append(db)
        return db

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            with self._open_lock:
                if db in self._open:
                    self._open.remove(db)
            db.close()
            self._local.db = None
            self._local.longest = None

    def close_all(self) -> None:
        """Close every thread's connection (at exit: the web server's threads never close theirs, and
        the last connection to close removes the WAL)."""
        with self._open_lock:
            dbs, self._open = self._open, []
        for db in dbs:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    # -- review items -------------------------------------------------------------------------------------
    @_reading
    def reviews(self, q: ReviewQuery) -> tuple[list[dict[str, Any]], str | None]:
        """A page of items, newest first, and the cursor of the next page (None: the last page)."""
        limit = limit_of(q.limit)
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
            args += review_cursor(q.cursor)
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

    @_reading
    def deleted(self, review_id: str) -> dict[str, Any] | None:
        """What became of an item that is no more: ``{"review_id", "source", "start_time",
        "deleted_at", "reason"}`` (``reason``: ``retention``), or None (never known, or still there)."""
        db = self._db()
        if db is None:
            return None
        keys = ("review_id", "source", "start_time", "deleted_at", "reason")
        sql = f"SELECT {', '.join(keys)} FROM deleted_reviews WHERE review_id = ?"
        row = db.execute(sql, (review_id,)).fetchone()
        return None if row is None else dict(zip(keys, row, strict=True))

    @_reading
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

    @_reading
    def thumbnail(self, review_id: str) -> bytes | None:
        row = self._row("SELECT jpeg FROM thumbnails WHERE review_id = ?", (review_id,))
        return bytes(row[0]) if row is not None else None

    # -- events -------------------------------------------------------------------------------------------
    @_reading
    def events(self, q: EventQuery) -> tuple[list[dict[str, Any]], str | None]:
        limit = limit_of(q.limit)
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

    @_reading
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
    @_reading
    def media(self, media_id: int) -> tuple[str, str] | None:
        """The path media row ``media_id`` keeps (as stored: relative to the store's folder, or
        absolute; ``web.media`` decides whether to serve it) and its kind; None if there is no such row."""
        if not 0 < media_id < 2**63:  # SQLite's integers (a larger one is an OverflowError)
            return None
        row = self._row("SELECT path, kind FROM media WHERE id = ?", (media_id,))
        return None if row is None else (str(row[0]), str(row[1]))

    @_reading
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
