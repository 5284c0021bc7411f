"""The event store's writer: one thread owns the store's connection and writes in batches, so the
pipeline only ever puts a reference on a queue.

Each source's lane writes through a ``StoreHandle``: a sink for its finished event records and a
listener of its review items (``detector.reviews``). The store itself is a ``MediaCatalog``: it lists
the clips and snapshots (and, with recordings, the segments) of its sources as they are finished,
and forgets files as retention deletes them (``removed``: a clip takes its review item with it, with
the item's events and their snapshots' rows, leaving a ``deleted_reviews`` row that says when). At
start it lists what a run killed before it could left unlisted (``found``).

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

A batch the store cannot take now (locked by another process past the 10 s busy timeout, a full
disk) is kept and tried with the next, up to ``MAX_KEPT`` operations (past that the oldest are lost);
one that fails otherwise (a damaged file) is lost. Losses count the rows missing: ``lost`` (and
``dropped``) events, ``items_lost``, ``files_lost``. A clean close truncates the WAL (no ``-wal``).
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
from pathlib import Path
from typing import Any

from detector import __version__
from detector.catalog import MediaFile
from detector.events import EventRecord
from detector.eventstore.ops import EventOp, Flush, MediaOp, RemovedOp, ReviewOp, Stop, Write, pictured
from detector.eventstore.rows import (
    EVENT_SQL,
    MEDIA_SQL,
    end_dead_runs,
    event_row,
    list_found,
    media_row,
    remove_media,
    write_review,
)
from detector.eventstore.schema import check_store, close_store, connect, failure, migrate, rollback
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
MAX_KEPT = 4 * MAX_BATCH  # operations of failed batches kept to be tried again
FINAL_TRIES_S = 8.0  # at the close, a kept batch is tried again this long (each try: <= 10 s busy)
RETRY_S = 1.0


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
        self.queue: queue.Queue[Write | Flush | Stop] = queue.Queue(MAX_QUEUE)
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, tuple[float, MediaFile]] = {}  # event id -> (since, its snapshot)
        self._thumbs: dict[str, BestShot | None] = {}  # item id -> the best shot its thumbnail shows
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._pictures = 0  # queued (or kept) ops that hold a frame
        self._kept: list[Write] = []  # a failed batch's ops, tried again with the next batch
        self._failing: str | None = None  # why the kept ops failed
        self._items: set[str] = set()  # the items with a row
        self._items_lost: set[str] = set()  # items none of whose updates could be written
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
            self.put(MediaOp(media))

    def found(self, media: MediaFile) -> None:  # an earlier run's file found at start: listed if it is not
        if media.source in self.sources:
            self.put(MediaOp(media, found=True))

    def removed(self, paths: Sequence[Path]) -> None:
        if paths:
            self.put(RemovedOp(tuple(Path(p) for p in paths)))

    # -- the queue ----------------------------------------------------------------------------------------
    def put(self, op: Write) -> None:
        with self._lock:  # enqueued under the lock too: nothing slips in after ``close`` queued the stop
            if self._closed:
                self._lost([op], "the store was closed", lost="lost")
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-store", daemon=True)
                self._thread.start()
            crowded = self._pictures >= MAX_PICTURES
            if isinstance(op, ReviewOp) and op.picture is not None and op.item.end_time is None and crowded:
                op = ReviewOp(op.item, None)  # a later update (its end) brings one
                self.counts["pictures_dropped"] += 1
            try:
                self.queue.put_nowait(op)
            except queue.Full:
                self._lost([op], "", lost="dropped")
                if self.counts["dropped_ops"] == 1:
                    log.warning("event store %s cannot keep up: dropping what does not fit", self.path)
                return
            self._pictures += pictured(op)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything put so far is committed (tests, ``detector serve`` next to a run)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self.queue.put(Flush(done), timeout=timeout)
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
        self.queue.put(Stop())
        thread.join(JOIN_SECONDS)
        if thread.is_alive():
            log.error("event store %s: the writer did not finish within %.0f s", self.path, JOIN_SECONDS)

    # -- the writer's thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            try:  # kept operations are tried again within RETRY_S, even with nothing new
                batch: list[Write | Flush | Stop] = [self.queue.get(timeout=RETRY_S if self._kept else None)]
            except queue.Empty:
                self._write([])
                continue
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < MAX_BATCH and not isinstance(batch[-1], Flush | Stop):
                wait = deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=wait))
                except queue.Empty:
                    break
            stop = isinstance(batch[-1], Stop)
            ops = [op for op in batch if not isinstance(op, Flush | Stop)]
            self._write(ops, final=stop)
            tries_until = time.monotonic() + FINAL_TRIES_S
            while stop and self._kept and time.monotonic() < tries_until:
                time.sleep(0.5)  # the store was busy at the close: a few more tries, then it is lost
                self._write([], final=True)
            if stop and self._kept:
                self._lose(self._kept, self._failing or "")
            for op in batch:
                if isinstance(op, Flush):
                    op.done.set()
            self.cpu_s = time.thread_time()  # the writer's CPU time so far (encoding thumbnails included)
        self._finish()

    def _write(self, ops: list[Write], *, final: bool = False) -> None:
        ops, self._kept = [*self._kept, *ops], []
        if not ops and not self._pending and not (final and self._db is not None):
            return
        # what the batch changes in memory, put back if it is rolled back (it is tried again)
        pending, thumbs, written = dict(self._pending), dict(self._thumbs), Counter[str]()
        try:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            for op in ops:
                self._apply(db, op, written)
            self._write_pending(db, 0.0 if final else PENDING_S, written)
            if final and self.run_id is not None:
                db.execute("UPDATE runs SET ended = ? WHERE id = ?", (time.time(), self.run_id))
            db.execute("COMMIT")
        except Exception as exc:  # sqlite3, the disk, a thumbnail (cv2.error): never the writer's end
            if self._db is not None and not rollback(self._db):
                self._db = None  # in an unknown state: the next batch opens the file anew
            self._pending, self._thumbs = pending, thumbs
            retry = isinstance(exc, sqlite3.OperationalError | OSError)  # busy, locked, full: may pass
            return (self._keep if retry else self._lose)(ops, failure(exc))
        with self._lock:
            self.counts.update(written)
            self.counts["batches"] += 1
            self._items.update(op.item.id for op in ops if isinstance(op, ReviewOp))
            self._items_lost -= self._items
            self.counts["items_lost"] = len(self._items_lost)
            self._pictures -= sum(map(pictured, ops))
        if self._failing is not None:
            log.warning("event store %s: written again (%d operations were waiting)", self.path, len(ops))
            self._failing = None

    def _keep(self, ops: list[Write], why: str) -> None:
        """A batch that could not be written, tried again with the next one (the newest ``MAX_KEPT``)."""
        if self._failing is None:
            log.warning("event store %s: cannot write now (%s); trying again", self.path, why)
        self._failing = why
        if len(ops) > MAX_KEPT:
            self._lose(ops[: len(ops) - MAX_KEPT], why)
        self._kept = ops[-MAX_KEPT:]

    def _lose(self, ops: list[Write], why: str) -> None:
        with self._lock:
            self._pictures -= sum(map(pictured, ops))
            self._lost(ops, why, lost="lost")

    def _lost(self, ops: list[Write], why: str, *, lost: str) -> None:
        """Count (under the lock) the rows ``ops`` would have written, events as ``lost``; log the first."""
        for op in ops:
            self.counts[f"{lost}_ops"] += 1
            if isinstance(op, EventOp):
                self.counts[lost] += 1
            elif isinstance(op, MediaOp):
                self.counts["files_lost"] += op.media.source in self.sources
            elif isinstance(op, ReviewOp) and op.item.id not in self._items:
                self._items_lost.add(op.item.id)
        self.counts["items_lost"] = len(self._items_lost)
        if why and self.failed is None:
            log.error("event store %s: %d writes lost: %s", self.path, len(ops), why)
        self.failed = why or self.failed

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
            for run, pid in end_dead_runs(db):
                log.info("event store %s: ended the open items of run %d (pid %d, gone)", self.path, run, pid)
            if self.run_id is None:  # not when opened again after a failure
                self.run_id = db.execute(
                    "INSERT INTO runs (started, host, pid, version) VALUES (?, ?, ?, ?)",
                    (time.time(), socket.gethostname(), os.getpid(), __version__),
                ).lastrowid
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _apply(self, db: sqlite3.Connection, op: Write, written: Counter[str]) -> None:
        if isinstance(op, EventOp):
            db.execute(EVENT_SQL, event_row(op.record, op.review_id))
            written["events"] += 1
            waiting = self._pending.pop(op.record.id, None)
            if waiting is not None:
                self._media(db, waiting[1], written)
        elif isinstance(op, ReviewOp):
            self._review(db, op.item, op.picture, written)
        elif isinstance(op, MediaOp) and op.found:
            written["media"] += list_found(db, op.media, self.root)
        elif isinstance(op, MediaOp):
            media = op.media
            known = media.kind != "snapshot" or not media.events
            if not known and db.execute("SELECT 1 FROM events WHERE id = ?", (media.events[0],)).fetchone():
                known = True
            if known:
                self._media(db, media, written)
            else:
                self._pending[media.events[0]] = (time.monotonic(), media)
        else:
            remove_media(db, op.paths, self.root, written)

    def _review(
        self, db: sqlite3.Connection, item: ReviewItem, picture: Picture | None, written: Counter[str]
    ) -> None:
        write_review(db, item, self.run_id)
        known = item.id in self._thumbs
        written["reviews"] += 0 if known else 1
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

    def _media(self, db: sqlite3.Connection, media: MediaFile, written: Counter[str]) -> None:
        db.execute(MEDIA_SQL, media_row(media, self.root))
        written["media"] += 1

    def _write_pending(self, db: sqlite3.Connection, older_than: float, written: Counter[str]) -> None:
        now = time.monotonic()
        for event_id, (since, media) in list(self._pending.items()):
            if now - since >= older_than:
                del self._pending[event_id]
                self._media(db, media, written)

    def _finish(self) -> None:
        """Close the file (the run's row was ended with the last batch), its WAL written back first."""
        db, self._db = self._db, None
        if db is not None and (why := close_store(db)) is not None:
            log.error("event store %s: closing failed: %s", self.path, why)

    def report(self) -> dict[str, Any]:
        keys = ("events", "reviews", "media", "removed", "dropped", "lost", "items_lost", "files_lost")
        with self._lock:
            counts = {k: self.counts[k] for k in (*keys, "batches")}
        return {"events_db": {"path": str(self.path), **counts, "writer_cpu_s": round(self.cpu_s, 3)}}


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
        self.store.put(EventOp(record, self._item_of.pop(record.id, None)))

    def review(self, update: ReviewUpdate) -> None:
        item = update.after
        told = self._told.get(item.id, 0)
        for event_id in item.events[told:]:
            self._item_of[event_id] = item.id
        if item.end_time is None:
            self._told[item.id] = len(item.events)
        else:
            self._told.pop(item.id, None)
        self.store.put(ReviewOp(item, update.picture))

    def close(self) -> None:
        """The run closes the store once every lane has ended (a clip may still be listed after)."""

    def report(self) -> dict[str, Any]:
        return self.store.report()
