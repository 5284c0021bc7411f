"""The event store's writer: one thread owns the store's connection and writes in batches, so the
pipeline only ever puts a reference on a queue.

Each source's lane writes through a ``StoreHandle``: a sink for its finished event records and a
listener of its review items (``detector.reviews``). The store itself is a ``MediaCatalog``: it lists
the clips and snapshots (and, with recordings, the segments) of its sources as they are finished,
and forgets files as retention deletes them (``removed``: a clip takes its review item with it, with
the item's events and their snapshots' rows).

A batch is what came within ``flush_seconds`` (0.5 s), written in one transaction. So a run killed
with ``kill -9`` leaves a store as it was after its last commit: every row whole, an item's events
never without their item, a snapshot's row never without its event (a snapshot listed before its
event was written waits for it, up to ``PENDING_S``), and every listed file complete (files are only
listed once finished). The next run that writes the store ends the items a dead run left open, at
their last activity. The file is created at the first write (a run with no events makes none).

The queue holds up to ``MAX_QUEUE`` operations; if the disk cannot keep up beyond that, what does
not fit is dropped and counted (the pipeline never waits for the store). An item's update holds its
best shot's frame (a full decoded image) until the writer encodes the thumbnail, so at most
``MAX_PICTURES`` updates in the queue keep theirs; beyond that an update goes without (the item's
``end`` always keeps its picture: the thumbnail ends up right).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector import __version__
from detector.catalog import MediaFile
from detector.errors import UserError
from detector.events import EventRecord
from detector.eventstore.rows import (
    EVENT_SQL,
    MEDIA_SQL,
    delete_review,
    event_row,
    media_row,
    pid_alive,
    stored_path,
    write_review,
)
from detector.eventstore.schema import check_store, connect, migrate
from detector.files import make_parents
from detector.media.images import picture_jpeg
from detector.review_items import BestShot, Picture, ReviewItem, ReviewUpdate
from detector.types import FrameResult

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
MAX_BATCH = 5000
MAX_QUEUE = 100_000
MAX_PICTURES = 32  # queued frames of best shots (1080p: 6 MB each)
PENDING_S = 5.0  # a snapshot waits this long for its event's row, then is written alone
THUMB_WIDTH = 320  # the list shows them 8rem wide: 2x for sharp screens
JOIN_SECONDS = 30.0


@dataclass(frozen=True)
class _Flush:
    done: threading.Event


_STOP = object()


class EventStore:
    """One store file (``path``), written by its own thread."""

    def __init__(self, path: Path, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.path = Path(path).expanduser()
        self.root = self.path.absolute().parent
        self.flush_seconds = flush_seconds
        self.sources: set[str] = set()
        self.counts: Counter[str] = Counter()  # rows written, by kind; "dropped", "lost"
        self.failed: str | None = None
        self.run_id: int | None = None
        self.cpu_s = 0.0
        self.queue: queue.Queue[Any] = queue.Queue(MAX_QUEUE)
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, tuple[float, MediaFile]] = {}  # event id -> (since, its snapshot)
        self._thumbs: dict[str, BestShot | None] = {}  # item id -> the best shot its thumbnail shows
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._pictures = 0  # queued ops that hold a frame
        self.check()

    def check(self) -> None:
        """An existing file must be a store this detector can write (``UserError`` if not)."""
        check_store(self.path)

    def handle(self, source: str) -> StoreHandle:
        """The way in for the source named ``source``."""
        self.sources.add(source)
        return StoreHandle(self, source)

    # -- MediaCatalog (any thread) ------------------------------------------------------------------------
    def added(self, media: MediaFile) -> None:
        if media.source in self.sources:
            self.put(("media", media))

    def removed(self, paths: Sequence[Path]) -> None:
        if paths:
            self.put(("removed", [Path(p) for p in paths]))

    # -- the queue ----------------------------------------------------------------------------------------
    def put(self, op: Any) -> None:
        pictured = _pictured(op)
        with self._lock:
            if self._closed:
                log.debug("event store %s is closed: %s not written", self.path, op[0])
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-store", daemon=True)
                self._thread.start()
            if pictured and self._pictures >= MAX_PICTURES and op[1].end_time is None:
                op, pictured = (op[0], op[1], None), False  # a later update (its end) brings one
                self.counts["pictures_dropped"] += 1
            self._pictures += pictured
        try:
            self.queue.put_nowait(op)
        except queue.Full:
            self._taken(int(pictured))
            self.counts["dropped"] += 1
            if self.counts["dropped"] == 1:
                log.warning("event store %s cannot keep up: dropping what does not fit", self.path)

    def _taken(self, pictures: int) -> None:
        if pictures:
            with self._lock:
                self._pictures -= pictures

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything put so far is committed (tests, ``detector serve`` next to a run)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self.queue.put(_Flush(done), timeout=timeout)
        return done.wait(timeout)

    def close(self) -> None:
        """Write what is queued, end the run's row, close the file (waits up to ``JOIN_SECONDS``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self.queue.put(_STOP)
        thread.join(JOIN_SECONDS)
        if thread.is_alive():
            log.error("event store %s: the writer did not finish within %.0f s", self.path, JOIN_SECONDS)

    # -- the writer's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self.queue.get()]
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < MAX_BATCH and not isinstance(batch[-1], _Flush) and batch[-1] is not _STOP:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=wait))
                except queue.Empty:
                    break
            stop = batch[-1] is _STOP
            self._write([op for op in batch if isinstance(op, tuple)], final=stop)
            self._taken(sum(map(_pictured, batch)))
            for op in batch:
                if isinstance(op, _Flush):
                    op.done.set()
            self.cpu_s = time.thread_time()  # the writer's CPU time so far (encoding thumbnails included)
        self._finish()

    def _write(self, ops: list[tuple[Any, ...]], *, final: bool = False) -> None:
        if not ops and not self._pending:
            return
        try:
            db = self._open()
        except (UserError, sqlite3.Error, OSError) as exc:
            self._lose(len(ops), f"cannot be opened: {exc}")
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            for op in ops:
                self._apply(db, op)
            self._write_pending(db, 0.0 if final else PENDING_S)
            db.execute("COMMIT")
            self.counts["batches"] += 1
        except Exception as exc:  # sqlite3, the disk, a thumbnail (cv2.error): never the writer's end
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._lose(len(ops), str(exc))

    def _lose(self, n: int, why: str) -> None:
        self.counts["lost"] += n
        if self.failed is None:
            log.error("event store %s: %d writes lost: %s", self.path, n, why)
        self.failed = why

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        make_parents(self.path)
        db = connect(self.path)
        try:
            old = migrate(db, self.path)
            if old:
                log.debug("event store %s: schema %d", self.path, old)
            db.execute("BEGIN IMMEDIATE")
            self._recover(db)
            cursor = db.execute(
                "INSERT INTO runs (started, host, pid, version) VALUES (?, ?, ?, ?)",
                (time.time(), socket.gethostname(), os.getpid(), __version__),
            )
            self.run_id = cursor.lastrowid
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _recover(self, db: sqlite3.Connection) -> None:
        """End the items of runs on this machine that died without closing the store."""
        host, me = socket.gethostname(), os.getpid()
        rows = db.execute("SELECT id, started, pid FROM runs WHERE ended IS NULL AND host = ?", (host,))
        for run, started, pid in rows.fetchall():
            if pid == me or pid_alive(pid):
                continue
            ended = db.execute("SELECT max(last_time) FROM reviews WHERE run = ?", (run,)).fetchone()[0]
            db.execute(
                "UPDATE reviews SET end_time = last_time, data = json_set(data, '$.end_time', last_time)"
                " WHERE run = ? AND end_time IS NULL",
                (run,),
            )
            db.execute("UPDATE runs SET ended = ? WHERE id = ?", (ended or started, run))
            log.info("event store %s: ended the open items of run %d (pid %d, gone)", self.path, run, pid)

    def _apply(self, db: sqlite3.Connection, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "event":
            record, review_id = op[1], op[2]
            db.execute(EVENT_SQL, event_row(record, review_id))
            self.counts["events"] += 1
            waiting = self._pending.pop(record.id, None)
            if waiting is not None:
                self._media(db, waiting[1])
        elif kind == "review":
            self._review(db, op[1], op[2])
        elif kind == "media":
            media: MediaFile = op[1]
            known = media.kind != "snapshot" or not media.events
            if not known and db.execute("SELECT 1 FROM events WHERE id = ?", (media.events[0],)).fetchone():
                known = True
            if known:
                self._media(db, media)
            else:
                self._pending[media.events[0]] = (time.monotonic(), media)
        elif kind == "removed":
            self._remove(db, op[1])

    def _review(self, db: sqlite3.Connection, item: ReviewItem, picture: Picture | None) -> None:
        write_review(db, item, self.run_id)
        known = item.id in self._thumbs
        self.counts["reviews"] += 0 if known else 1
        shown = self._thumbs.get(item.id)
        if picture is not None and item.best is not None and (not known or shown != item.best):
            db.execute(
                "INSERT INTO thumbnails (review_id, jpeg) VALUES (?, ?)"
                " ON CONFLICT (review_id) DO UPDATE SET jpeg = excluded.jpeg",
                (item.id, picture_jpeg(picture, THUMB_WIDTH, quality=75)),
            )
            shown = item.best
        if item.end_time is not None:
            self._thumbs.pop(item.id, None)
        else:
            self._thumbs[item.id] = shown

    def _media(self, db: sqlite3.Connection, media: MediaFile) -> None:
        db.execute(MEDIA_SQL, media_row(media, self.root))
        self.counts["media"] += 1

    def _write_pending(self, db: sqlite3.Connection, older_than: float) -> None:
        now = time.monotonic()
        for event_id, (since, media) in list(self._pending.items()):
            if now - since >= older_than:
                del self._pending[event_id]
                self._media(db, media)

    def _remove(self, db: sqlite3.Connection, paths: list[Path]) -> None:
        for path in paths:
            stored = stored_path(path, self.root)
            row = db.execute("SELECT id, kind, review_id FROM media WHERE path = ?", (stored,)).fetchone()
            if row is None:
                continue
            media_id, kind, review_id = row
            db.execute("DELETE FROM media WHERE id = ?", (media_id,))
            self.counts["removed"] += 1
            if kind == "clip" and review_id:
                self.counts["events_removed"] += delete_review(db, review_id)

    def _finish(self) -> None:
        db = self._db
        if db is None:
            return
        try:
            if self.run_id is not None:
                db.execute("UPDATE runs SET ended = ? WHERE id = ?", (time.time(), self.run_id))
            db.close()
        except sqlite3.Error as exc:
            log.error("event store %s: closing failed: %s", self.path, exc)
        self._db = None

    def report(self) -> dict[str, Any]:
        keys = ("events", "reviews", "media", "removed", "dropped", "lost", "batches")
        counts = {k: self.counts[k] for k in keys}
        return {"events_db": {"path": str(self.path), **counts, "writer_cpu_s": round(self.cpu_s, 3)}}


def _pictured(op: Any) -> bool:
    """A review op that holds its best shot's frame."""
    return isinstance(op, tuple) and op[0] == "review" and op[2] is not None


class StoreHandle:
    """One source's way into the store: the sink of its event records (each written with the item it
    belongs to) and a listener of its review items."""

    def __init__(self, store: EventStore, source: str) -> None:
        self.store = store
        self.source = source
        self._item_of: dict[str, str] = {}  # event id -> its item, until the event's row is queued
        self._told: dict[str, int] = {}  # item id -> how many of its events it has mapped

    def write(self, result: FrameResult) -> None:
        pass

    def event(self, record: EventRecord) -> None:
        self.store.put(("event", record, self._item_of.pop(record.id, None)))

    def review(self, update: ReviewUpdate) -> None:
        item = update.after
        told = self._told.get(item.id, 0)
        for event_id in item.events[told:]:
            self._item_of[event_id] = item.id
        if item.end_time is None:
            self._told[item.id] = len(item.events)
        else:
            self._told.pop(item.id, None)
        self.store.put(("review", item, update.picture))

    def close(self) -> None:
        """The run closes the store once every lane has ended (a clip may still be listed after)."""

    def report(self) -> dict[str, Any]:
        return self.store.report()
