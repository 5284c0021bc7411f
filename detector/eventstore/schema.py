"""The event store's tables, and the migrations that bring an older store up to date.

The store is one SQLite file in WAL mode (readers never wait for the writer, and a killed writer
leaves the last committed transaction, never half of one). ``PRAGMA user_version`` is the schema
version; ``PRAGMA application_id`` marks the file as ours, so another program's database is never
written into. Opening a store for writing runs the migrations it lacks, each in its own transaction:

1. ``runs``, ``events``, ``reviews`` (+ ``thumbnails``) and ``media``, with the indexes the API's
   newest-first lists walk.
2. ``review_labels``: each item's classes and zones with its start time, so that a class or zone
   filter walks one index instead of reading every item's JSON; filled from the items already there.
3. ``deleted_reviews``: the items retention deleted (with their clip), when and why, so that a link
   to one can say so (``queries.StoreReader.deleted``).

A store made by a newer detector (a higher version) is refused, not touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from detector.errors import UserError

APPLICATION_ID = 0x44455431  # "DET1"
SCHEMA_VERSION = 3
BUSY_MS = 10_000
READ_BUSY_MS = 2_000  # readers (WAL: they wait only for a lock that shuts out reading too)


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Each statement of ``sql`` in the open transaction (``executescript`` would commit it first)."""
    for statement in sql.split(";"):
        code = "\n".join(line.split("--")[0] for line in statement.splitlines()).strip()
        if code:
            db.execute(code)


def _v1(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started REAL NOT NULL,
            ended REAL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            version TEXT NOT NULL
        );
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,          -- UUID v7: sorts by time
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            time REAL NOT NULL,               -- Unix time of wall_time
            class_name TEXT,
            track_id INTEGER,
            zone TEXT,
            line TEXT,
            review_id TEXT,
            data TEXT NOT NULL                -- the record's JSON form (EventRecord.to_dict)
        );
        CREATE INDEX events_source ON events (source, id);
        CREATE INDEX events_class ON events (class_name, id);
        CREATE INDEX events_kind ON events (kind, id);
        CREATE INDEX events_review ON events (review_id);
        CREATE INDEX events_time ON events (time);
        CREATE TABLE reviews (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            run INTEGER,
            source TEXT NOT NULL,
            severity TEXT NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL,                    -- NULL while open
            last_time REAL NOT NULL,
            data TEXT NOT NULL                -- the item's JSON form (ReviewItem.to_dict)
        );
        CREATE INDEX reviews_start ON reviews (start_time, id);
        CREATE INDEX reviews_source ON reviews (source, start_time, id);
        CREATE INDEX reviews_severity ON reviews (severity, start_time, id);
        CREATE TABLE thumbnails (
            review_id TEXT PRIMARY KEY,
            jpeg BLOB NOT NULL
        );
        CREATE TABLE media (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,               -- segment | clip | snapshot
            source TEXT NOT NULL,
            path TEXT NOT NULL UNIQUE,        -- relative to the store's folder when inside it
            start_time REAL,
            end_time REAL,
            media_start REAL,
            media_end REAL,
            bytes INTEGER NOT NULL,
            review_id TEXT,                   -- a clip: its item
            event_id TEXT,                    -- a snapshot: its event
            events TEXT NOT NULL,             -- JSON list of event ids
            extra TEXT NOT NULL               -- JSON object
        );
        CREATE INDEX media_review ON media (review_id);
        CREATE INDEX media_event ON media (event_id);
        CREATE INDEX media_time ON media (kind, start_time);
        """,
    )


LABELS_SQL = "INSERT OR IGNORE INTO review_labels (kind, name, start_time, review_id) VALUES (?, ?, ?, ?)"


def labels(data: dict[str, object], start: float, review_id: str) -> list[tuple[str, str, float, str]]:
    """The ``review_labels`` rows of an item: one per class (``object``) and per zone."""
    rows = []
    for kind, key in (("object", "objects"), ("zone", "zones")):
        names = data.get(key)
        for name in names if isinstance(names, list) else []:
            rows.append((kind, str(name), start, review_id))
    return rows


def _v2(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE review_labels (
            kind TEXT NOT NULL,               -- object | zone
            name TEXT NOT NULL,
            start_time REAL NOT NULL,
            review_id TEXT NOT NULL,
            PRIMARY KEY (kind, name, start_time, review_id)
        ) WITHOUT ROWID;
        CREATE INDEX review_labels_item ON review_labels (review_id);
        """,
    )
    rows = db.execute("SELECT id, start_time, data FROM reviews")
    for review_id, start, data in rows.fetchall():
        db.executemany(LABELS_SQL, labels(json.loads(data), start, review_id))


def _v3(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE deleted_reviews (
            review_id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            start_time REAL,                  -- the item's
            deleted_at REAL NOT NULL,         -- Unix time
            reason TEXT NOT NULL              -- retention
        );
        """,
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1, 2: _v2, 3: _v3}


def check_store(path: Path) -> None:
    """An existing file at ``path`` must be a store this detector can write (``UserError`` if not); no
    file is fine (it is made at the first write). What ``--events-db`` is checked with before a run
    starts, and what ``EventStore`` checks as it is made."""
    if not os.path.lexists(path):
        return
    if path.is_dir():
        raise UserError(f"event store {path} is a folder; give a file name")
    db = connect(path)
    try:
        version_of(db, path)
    finally:
        db.close()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), waiting up to 10 s for a lock (a
    reader: 2 s)."""
    busy = READ_BUSY_MS if readonly else BUSY_MS
    if readonly:  # opened for writing where the file allows it, but refusing writes (query_only): the
        # last connection to close, a reader too, then removes the WAL and its index (a read-only one
        # cannot: it left events.db-wal and -shm behind)
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=busy / 1000,
                             isolation_level=None, check_same_thread=False)  # fmt: skip
        db.execute("PRAGMA query_only = 1")
    else:
        db = sqlite3.connect(path, timeout=busy / 1000, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout = {busy}")
    return db


def rollback(db: sqlite3.Connection) -> bool:
    """End the open transaction, if any; False when even that failed (the connection is then closed:
    open the file anew)."""
    if not db.in_transaction:
        return True
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            db.close()
        return False
    return True


def close_store(db: sqlite3.Connection) -> str | None:
    """Close a writer's connection, its WAL written back and truncated first, so that a clean exit
    leaves only the store's file (the last connection to close removes the WAL and its index; a
    reader open elsewhere keeps them, empty). Why closing failed, if it did."""
    with contextlib.suppress(sqlite3.Error):  # busy (a reader): the WAL stays whole, for the next one
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    try:
        db.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None


def failure(exc: BaseException, busy_ms: int = BUSY_MS) -> str:
    """Why a write or read failed, in words: a lock held past the busy timeout is named for what it is."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"locked by another process for more than {busy_ms / 1000:g} s ({text})"
    return text


def unreadable(path: Path, exc: sqlite3.DatabaseError, busy_ms: int = BUSY_MS) -> str:
    """One line on a store that SQLite cannot read: locked, damaged, or not a database at all."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"event store {path} is {failure(exc, busy_ms)}; try again once it lets go"
    if "malformed" in text:
        return f"event store {path} is damaged ({text}); restore a copy, or rescue it with sqlite3 .recover"
    if "not a database" in text:
        return f"event store {path} is not an SQLite database ({text}); choose another file"
    return f"event store {path} cannot be read ({text})"


def check_whole(db: sqlite3.Connection, path: Path) -> None:
    """``UserError`` (one line) if SQLite finds the store damaged (``PRAGMA quick_check``: every page
    read once, so about as long as reading the file)."""
    try:
        found = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UserError(unreadable(path, exc)) from exc
    if found != "ok":
        raise UserError(unreadable(path, sqlite3.DatabaseError(f"database disk image is malformed: {found}")))


def version_of(db: sqlite3.Connection, path: Path) -> int:
    """The store's schema version (0: a new, empty file); ``UserError`` if it is not a store of ours
    or was made by a newer detector."""
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        app = int(db.execute("PRAGMA application_id").fetchone()[0])
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        busy = int(db.execute("PRAGMA busy_timeout").fetchone()[0])
        raise UserError(unreadable(path, exc, busy)) from exc
    if app != APPLICATION_ID and (app or tables):
        raise UserError(f"{path} is an SQLite database, but not a detector event store; choose another file")
    if version > SCHEMA_VERSION:
        raise UserError(
            f"event store {path} has schema version {version}, made by a newer detector (this one "
            f"knows up to {SCHEMA_VERSION}); upgrade detector or use another file"
        )
    return version


def existing_store(path: Path, whole: bool = False) -> int:
    """The schema version of the store at ``path``, read without writing a byte (``detector serve``
    and ``detector events`` only read); ``UserError`` if there is no such file, it is not a store of
    ours, or it is empty (a run would make a store in it; reading it must not). ``whole``: also read
    every page once, so that a damaged store is said at the start, not as 503s in the browser."""
    if not path.is_file():
        raise UserError(f"event store {path} does not exist")
    db = connect(path, readonly=True)
    try:
        version = version_of(db, path)
        if whole and version:
            check_whole(db, path)
    finally:
        db.close()
    if version == 0:
        raise UserError(f"{path} is empty, not an event store (give the --events-db FILE a run wrote)")
    return version


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring the store up to ``SCHEMA_VERSION`` (in WAL mode); returns the version it had."""
    old = version_of(db, path)
    db.execute("PRAGMA journal_mode = WAL")
    for version in range(old + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if version_of(db, path) >= version:  # another process migrated it meanwhile
                db.execute("ROLLBACK")
                continue
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return old
