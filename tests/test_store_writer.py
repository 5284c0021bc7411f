"""The event store's writer when things go wrong (no model): a rollback that fails does not end the
writer, an operation put while the store closes is written (not silently lost), and the same for a
notification submitted while the notifier closes.

Runtime: a few seconds.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import cv2
import pytest
from test_reviews import WALL0, new_track
from test_store import updates

from detector.events import stamp
from detector.eventstore import writer as writer_mod
from detector.eventstore.ops import EventOp
from detector.eventstore.writer import EventStore
from detector.notify.worker import Note, Notifier


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


class NoRollback:
    """A real connection whose ROLLBACK fails (as it can on a disk that went away)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "ROLLBACK":
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(sql, *args)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def close(self) -> None:
        self.db.close()


def test_a_rollback_that_fails_does_not_end_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch fails (a thumbnail that cannot be encoded), then its ROLLBACK fails too: the writer goes
    on (flush answers at once, a later event is written) and the run's row is ended at the close."""
    path = tmp_path / "events.db"
    connect = writer_mod.connect
    monkeypatch.setattr(writer_mod, "connect", lambda p: NoRollback(connect(p)))
    store = EventStore(path)
    store.handle("cam").event(stamp(new_track(1, 1), "cam", WALL0))
    assert store.flush(10)
    monkeypatch.setattr(writer_mod, "picture_jpeg", lambda *a, **kw: (_ for _ in ()).throw(cv2.error("bad")))
    for op in updates(1):
        store.put(op)
    assert store.flush(5), "the writer answers"
    assert store.failed is not None and store.counts["items_lost"] == 1
    monkeypatch.undo()
    store.handle("cam").event(stamp(new_track(2, 2), "cam", WALL0 + 1))
    assert store.flush(5), "the writer goes on"
    store.close()
    assert rows(path, "SELECT count(*) FROM events") == [(2,)]
    assert [ended is not None for (ended,) in rows(path, "SELECT ended FROM runs")] == [True], "the run ended"


def test_an_event_put_while_the_store_closes_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lane puts its last event just as the run closes the store: it is written before the writer
    stops (it was put on the queue after the stop, never written and never counted)."""
    path = tmp_path / "events.db"
    store = EventStore(path)
    store.handle("cam").event(stamp(new_track(1, 1), "cam", WALL0))
    assert store.flush(10)
    entered, release = threading.Event(), threading.Event()
    put_nowait = store.queue.put_nowait

    def slow_put(op: Any) -> None:  # the lane's thread is switched out just before it enqueues
        entered.set()
        release.wait(5)
        put_nowait(op)

    monkeypatch.setattr(store.queue, "put_nowait", slow_put)
    late = stamp(new_track(2, 2), "cam", WALL0 + 1)
    lane = threading.Thread(target=store.put, args=(EventOp(late, None),))
    lane.start()
    assert entered.wait(5)
    closing = threading.Thread(target=store.close)
    closing.start()
    closing.join(1.0)  # the close waits for the put (or, before, went ahead without it)
    release.set()
    lane.join(5)
    closing.join(10)
    assert not closing.is_alive() and not lane.is_alive()
    ids = [i for (i,) in rows(path, "SELECT id FROM events")]
    assert late.id in ids or store.counts["lost"] == 1, "written, or at least counted as lost"
    assert late.id in ids


class Slow:
    name = "slow"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, note: Note) -> bool:
        self.sent.append(note.title)
        return True


def test_a_notification_submitted_while_the_notifier_closes_is_sent_or_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = Slow()
    notifier = Notifier([target], timeout=2.0).start()
    entered, release = threading.Event(), threading.Event()
    put_nowait = notifier._queue.put_nowait
    first = [True]

    def slow_put(job: Any) -> None:
        if job is not None and first[0]:
            first[0] = False
            entered.set()
            release.wait(5)
        put_nowait(job)

    monkeypatch.setattr(notifier._queue, "put_nowait", slow_put)
    lane = threading.Thread(target=notifier.submit, args=("cam", "late", "body"))
    lane.start()
    assert entered.wait(5)
    closing = threading.Thread(target=notifier.close)
    closing.start()
    closing.join(1.0)
    release.set()
    lane.join(5)
    closing.join(10)
    assert not closing.is_alive() and not lane.is_alive()
    totals = notifier.totals()
    counted = sum(sum(c.values()) for c in totals.values())
    assert counted == 1, f"the late notification is sent, failed or dropped, and counted: {totals}"
